//! What the benchmarks share: a private nats-server, a PostgreSQL database of their own on
//! the development server, and writing a generated history to the event log.

use std::future::IntoFuture;

use anyhow::Context;
use async_nats::jetstream::{self, message::PublishMessage};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio_postgres::NoTls;
use wangge_engine::log::codec::encode_events;
use wangge_engine::log::{JetStreamLog, StoredCommit};
use wangge_testkit::NatsServer;

use crate::report;

/// A nats-server of the benchmark's own (a fresh store, stopped when dropped), or the one
/// `url` names.
pub struct Nats {
    _server: Option<NatsServer>,
    pub client: async_nats::Client,
}

impl Nats {
    pub async fn start(url: Option<&str>) -> anyhow::Result<Self> {
        let (server, url) = match url {
            Some(url) => (None, url.to_owned()),
            None => {
                let server = NatsServer::start();
                let url = server.url();
                (Some(server), url)
            }
        };
        let client = async_nats::connect(&url)
            .await
            .with_context(|| format!("connect to {url}"))?;
        Ok(Self {
            _server: server,
            client,
        })
    }
}

/// Writes commits straight to the event stream, as the engine would have written them.
pub async fn write_commits(
    client: &async_nats::Client,
    log: &JetStreamLog,
    commits: &[StoredCommit],
    label: &str,
) -> anyhow::Result<()> {
    let bar = report::progress(label, commits.len() as u64);
    write_commits_counted(client, log, commits, &bar).await?;
    bar.finish();
    Ok(())
}

/// [`write_commits`], counting on a progress bar of the caller's (a log written in parts).
pub async fn write_commits_counted(
    client: &async_nats::Client,
    log: &JetStreamLog,
    commits: &[StoredCommit],
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let messages = commits.iter().map(|commit| {
        (
            log.config().case_subject(commit.case_id),
            PublishMessage::build().payload(encode_events(&commit.events)),
        )
    });
    publish_windowed(client, messages, bar).await?;
    Ok(())
}

/// Publishes `messages` (subject, message) as they come, with a window of acks in flight,
/// counting each ack on `bar`; every subject with the stream sequence its message got, in
/// the order the acks came.
pub async fn publish_windowed(
    client: &async_nats::Client,
    messages: impl IntoIterator<Item = (String, PublishMessage)>,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<(String, u64)>> {
    const WINDOW: usize = 4096;
    let context = jetstream::new(client.clone());
    let mut stored = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    for (subject, message) in messages {
        let ack = context.send_publish(subject.clone(), message).await?;
        in_flight.push(async move { (subject, ack.into_future().await) });
        if in_flight.len() >= WINDOW {
            if let Some((subject, ack)) = in_flight.next().await {
                stored.push((subject, ack?.sequence));
                bar.inc(1);
            }
        }
    }
    while let Some((subject, ack)) = in_flight.next().await {
        stored.push((subject, ack?.sequence));
        bar.inc(1);
    }
    Ok(stored)
}

/// A database of the benchmark's own on the development PostgreSQL
/// (`$WANGGE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432`).
pub struct BenchDatabase {
    pub name: String,
    server: String,
}

impl BenchDatabase {
    /// The database `name`, dropped first if it exists.
    pub async fn fresh(name: &str) -> anyhow::Result<Self> {
        let database = Self::named(name);
        database.drop_it().await?;
        database
            .admin()
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("create database {name}"))?;
        Ok(database)
    }

    /// The database `name`, whether or not it exists yet.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            server: wangge_testkit::postgres_server_url(),
        }
    }

    pub async fn exists(&self) -> anyhow::Result<bool> {
        let row = self
            .admin()
            .await?
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&self.name],
            )
            .await?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    /// `postgres://…/<name>`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url()).await
    }

    pub async fn drop_it(&self) -> anyhow::Result<()> {
        self.admin()
            .await?
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .with_context(|| format!("drop database {}", self.name))
    }

    async fn admin(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&format!("{}/postgres", self.server)).await
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.with_context(|| {
        format!("connect to {url} (start PostgreSQL with `bash deploy/dev/ensure-services.sh`)")
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

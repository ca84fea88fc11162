//! Group commit under fsync on every write (issue 11): the engine's commit rate with
//! `sync_interval: always`, against raw durable publishes, a PostgreSQL reference that shares
//! one fsync across concurrent commits, and the engine's own rate with lazy fsync — all in
//! one run, at 1, 10 and 512 commands in flight.
//!
//! - **engine, fsync always**: `CaseService` reports on new cases (load, decide, stamp, seal,
//!   append) on a private nats-server with `sync_interval: always`, group commit on, as
//!   `wangge serve` runs.
//! - **engine, fsync always, no group commit**: the same, every append a publish of its own
//!   (what the engine did before group commit).
//! - **raw durable publish**: one JetStream publish per message (a new-case commit's bytes),
//!   the acknowledgement awaited, on the same server.
//! - **PostgreSQL reference**: one `INSERT` of an event-sized row per command with
//!   `synchronous_commit = on`, from as many connections as commands in flight, capped at 100
//!   (PostgreSQL's default `max_connections`); PostgreSQL's WAL writer shares one fsync among
//!   the commits waiting for it (group commit).
//! - **engine, lazy fsync**: the engine on a second private nats-server with the default
//!   sync interval (2 minutes), the rate durability is measured against.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use wangge_engine::app::{CaseService, SystemClock};
use wangge_engine::log::{JetStreamLog, JetStreamLogConfig, SealKey};
use wangge_schemas::CaseId;
use wangge_testkit::NatsServer;

use crate::commit::{report_request, sample_create_commit};
use crate::report::{self, Row};
use crate::setup::BenchDatabase;

#[derive(Debug, Args)]
pub struct DurableArgs {
    /// Commands in flight at each level.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 10, 512])]
    in_flight: Vec<usize>,
    /// Commands per measurement at one in flight.
    #[arg(long, default_value_t = 1_000)]
    commands_alone: usize,
    /// Commands per measurement at more than one in flight.
    #[arg(long, default_value_t = 20_000)]
    commands: usize,
    /// Most PostgreSQL connections (its default `max_connections` is 100, some reserved).
    #[arg(long, default_value_t = 100)]
    max_pg_connections: usize,
}

/// One measured phase: commands per second and each command's latency.
struct Measured {
    rate: f64,
    latency: Histogram<u64>,
}

impl Measured {
    fn figure(&self) -> String {
        format!(
            "{:.0} /s; p50 {:.2} ms, p99 {:.2} ms",
            self.rate,
            report::millis(&self.latency, 0.5),
            report::millis(&self.latency, 0.99)
        )
    }

    fn p99(&self) -> f64 {
        report::millis(&self.latency, 0.99)
    }
}

pub async fn run(args: DurableArgs) -> anyhow::Result<()> {
    let durable = NatsServer::start_durable();
    let lazy = NatsServer::start();
    eprintln!(
        "private nats-servers: fsync always at {} (store {}), lazy fsync at {}",
        durable.url(),
        durable.store_dir().display(),
        lazy.url()
    );
    let key = Arc::new(SealKey::generate());
    let grouped = engine(&durable, true, &key).await?;
    let ungrouped = engine(&durable, false, &key).await?;
    let lazy_engine = engine(&lazy, true, &key).await?;
    let raw = jetstream::new(durable.connect().await);
    raw.get_or_create_stream(stream::Config {
        name: "BENCH_RAW_DURABLE".into(),
        subjects: vec!["bench.raw.>".into()],
        ..Default::default()
    })
    .await?;
    let (body, _) = sample_create_commit();
    let database = BenchDatabase::fresh("wangge_bench_durable").await?;
    prepare_reference(&database).await?;
    let fsync_setting = database
        .connect()
        .await?
        .query_one("SHOW fsync", &[])
        .await?
        .get::<_, String>(0);

    let mut rows = Vec::new();
    for &in_flight in &args.in_flight {
        let total = if in_flight == 1 {
            args.commands_alone
        } else {
            args.commands
        };
        let grouped_figures_before = grouped.log().group_commit_figures().unwrap_or_default();
        let durable_engine = engine_phase(&grouped, total, in_flight, "engine, fsync").await?;
        let figures = grouped.log().group_commit_figures().unwrap_or_default();
        let batches = figures.batches_stored - grouped_figures_before.batches_stored;
        let batched = figures.appends_batched - grouped_figures_before.appends_batched;
        let alone = figures.appends_alone - grouped_figures_before.appends_alone;
        let no_group = engine_phase(&ungrouped, total, in_flight, "no group commit").await?;
        let raw_single = raw_phase(&raw, body.clone(), total, in_flight).await?;
        let connections = in_flight.min(args.max_pg_connections);
        let reference = reference_phase(&database, body.clone(), total, connections).await?;
        let lazy_rate = engine_phase(&lazy_engine, total, in_flight, "engine, lazy").await?;

        let label = format!("{in_flight} in flight, {total} commands");
        rows.push(Row::new(
            format!("engine, fsync always, group commit ({label})"),
            durable_engine.figure(),
            "p99 ≤ 20 ms",
            Some(durable_engine.p99() <= 20.0),
        ));
        rows.push(Row::new(
            format!("… appends per fsync ({label})"),
            format!(
                "{batches} atomic batches of {:.1} on average; {alone} alone",
                if batches > 0 {
                    batched as f64 / batches as f64
                } else {
                    0.0
                }
            ),
            "",
            None,
        ));
        rows.push(Row::new(
            format!("engine, fsync always, one publish per append ({label})"),
            no_group.figure(),
            "before group commit",
            None,
        ));
        rows.push(Row::new(
            format!("raw durable publish, one at a time per sender ({label})"),
            raw_single.figure(),
            "",
            None,
        ));
        rows.push(Row::new(
            format!(
                "PostgreSQL INSERT, synchronous_commit on, {connections} connections ({label})"
            ),
            reference.figure(),
            "reference",
            None,
        ));
        rows.push(Row::new(
            format!("engine, lazy fsync ({label})"),
            lazy_rate.figure(),
            "",
            None,
        ));
        let of_lazy = durable_engine.rate / lazy_rate.rate;
        rows.push(Row::new(
            format!("engine fsync always ÷ engine lazy ({in_flight} in flight)"),
            format!("{:.0} %", of_lazy * 100.0),
            "≥ 50 %",
            Some(of_lazy >= 0.5),
        ));
        let of_reference = durable_engine.rate / reference.rate;
        let wanted = if in_flight == 1 { 1.0 } else { 3.0 };
        rows.push(Row::new(
            format!("engine fsync always ÷ PostgreSQL ({in_flight} in flight)"),
            format!("{of_reference:.2}×"),
            format!("≥ {wanted:.0}×"),
            Some(of_reference >= wanted),
        ));
    }
    database.drop_it().await?;

    println!();
    println!("PostgreSQL fsync = {fsync_setting}, synchronous_commit = on (set per session)");
    report::print_table(&rows);
    Ok(())
}

/// A sealed case service on `server`, with or without group commit. Each gets a stream of
/// its own, so the phases do not share subjects.
async fn engine(
    server: &NatsServer,
    group_commit: bool,
    key: &Arc<SealKey>,
) -> anyhow::Result<Arc<CaseService<JetStreamLog>>> {
    let suffix = if group_commit { "GROUPED" } else { "SINGLE" };
    let config = JetStreamLogConfig {
        stream_name: format!("WANGGE_EVENTS_{suffix}"),
        subject_prefix: format!("wangge.events-{}", suffix.to_lowercase()),
        group_commit,
        ..JetStreamLogConfig::default()
    };
    let log = JetStreamLog::open(server.connect().await, config)
        .await?
        .with_seal_key(key.clone());
    Ok(Arc::new(CaseService::new(log, Arc::new(SystemClock))))
}

/// `total` new-case reports through the engine, `in_flight` at a time.
async fn engine_phase(
    service: &Arc<CaseService<JetStreamLog>>,
    total: usize,
    in_flight: usize,
    label: &str,
) -> anyhow::Result<Measured> {
    let senders = (0..in_flight).map(|_| {
        let service = service.clone();
        move || {
            let service = service.clone();
            async move {
                let request = report_request(CaseId::new_v7(), &uuid::Uuid::now_v7().to_string());
                service.handle(request).await?;
                Ok(())
            }
        }
    });
    timed_senders(label, total, senders.collect()).await
}

/// `total` plain publishes of a commit's bytes to new subjects, each awaited by its sender.
async fn raw_phase(
    context: &jetstream::Context,
    body: Bytes,
    total: usize,
    in_flight: usize,
) -> anyhow::Result<Measured> {
    let senders = (0..in_flight).map(|_| {
        let (context, body) = (context.clone(), body.clone());
        move || {
            let (context, body) = (context.clone(), body.clone());
            async move {
                let subject = format!("bench.raw.{}", uuid::Uuid::now_v7().simple());
                context.publish(subject, body).await?.await?;
                Ok(())
            }
        }
    });
    timed_senders("raw durable publish", total, senders.collect()).await
}

async fn prepare_reference(database: &BenchDatabase) -> anyhow::Result<()> {
    database
        .connect()
        .await?
        .batch_execute(
            "CREATE TABLE events (
                 position bigserial PRIMARY KEY,
                 case_id uuid NOT NULL,
                 idempotency_key text NOT NULL UNIQUE,
                 payload jsonb NOT NULL,
                 recorded_at timestamptz NOT NULL DEFAULT now()
             );
             CREATE INDEX events_by_case ON events (case_id, position);",
        )
        .await
        .context("create the reference table")
}

/// `total` INSERTs of an event-sized row, each its own transaction with
/// `synchronous_commit = on`, from `connections` connections.
async fn reference_phase(
    database: &BenchDatabase,
    body: Bytes,
    total: usize,
    connections: usize,
) -> anyhow::Result<Measured> {
    let payload: serde_json::Value = serde_json::from_slice(&body)?;
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = Arc::new(database.connect().await?);
        client.batch_execute("SET synchronous_commit = on").await?;
        let insert = client
            .prepare("INSERT INTO events (case_id, idempotency_key, payload) VALUES ($1, $2, $3)")
            .await?;
        let payload = payload.clone();
        senders.push(move || {
            let (client, insert, payload) = (client.clone(), insert.clone(), payload.clone());
            async move {
                let case_id = uuid::Uuid::now_v7();
                let key = case_id.simple().to_string();
                client.execute(&insert, &[&case_id, &key, &payload]).await?;
                Ok(())
            }
        });
    }
    timed_senders("PostgreSQL reference", total, senders).await
}

/// Runs the senders at once, each sending one command after another, until `total` commands
/// have been sent; times every command.
async fn timed_senders<Sender, Fut>(
    label: &str,
    total: usize,
    senders: Vec<Sender>,
) -> anyhow::Result<Measured>
where
    Sender: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let bar = report::progress(label, total as u64);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(senders.len());
    for mut send in senders {
        let (next, bar) = (next.clone(), bar.clone());
        handles.push(tokio::spawn(async move {
            let mut latency = report::histogram();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let sent = Instant::now();
                send().await?;
                report::record(&mut latency, sent.elapsed());
                bar.inc(1);
            }
            Ok::<_, anyhow::Error>(latency)
        }));
    }
    let mut histograms = Vec::with_capacity(handles.len());
    for handle in handles {
        histograms.push(handle.await??);
    }
    bar.finish_and_clear();
    Ok(measured(total, started, histograms))
}

fn measured(total: usize, started: Instant, histograms: Vec<Histogram<u64>>) -> Measured {
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let mut latency = report::histogram();
    for histogram in histograms {
        latency
            .add(histogram)
            .expect("histograms of one shape add up");
    }
    Measured { rate, latency }
}

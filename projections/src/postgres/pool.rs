//! Connections to PostgreSQL: the pool the stores and queries share (deadpool-postgres over
//! tokio-postgres), dedicated connections for what must not go back to a pool (a runner's
//! advisory lock, LISTEN), and creating the database on first use.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{Client, Config, NoTls};
use tracing::{info, warn};

use super::PostgresError;

/// How many pooled connections one process keeps at most (runners, queries, the API).
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The sessions' settings unless the URL gives `options` of its own: no parallel workers
/// for a query. The API asks many short questions at once; a parallel plan takes cores from
/// the other askers and costs more to start than it saves. At a million cases on two cores,
/// four clients at once: p99 of all dashboard requests 52.0 ms with PostgreSQL's default of
/// two workers, 21.2 ms without (`benches/RESULTS.md`, "Indicators by month").
pub const SESSION_OPTIONS: &str = "-c max_parallel_workers_per_gather=0";

/// Parses a `postgres://user@host:port/database` URL (or a key=value string).
pub fn parse_url(url: &str) -> Result<Config, PostgresError> {
    let mut config: Config =
        url.parse()
            .map_err(|e: tokio_postgres::Error| PostgresError::InvalidUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
    if config.get_dbname().is_none() {
        return Err(PostgresError::InvalidUrl {
            url: url.to_owned(),
            reason: "it names no database".to_owned(),
        });
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    // A dead peer is noticed by the kernel, not only at the next query.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    if config.get_application_name().is_none() {
        config.application_name("wangge");
    }
    if config.get_options().is_none() {
        config.options(SESSION_OPTIONS);
    }
    Ok(config)
}

/// A pool over `config`.
pub fn pool(config: &Config, size: usize) -> Result<Pool, PostgresError> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| PostgresError::Connect(e.to_string()))
}

/// One connection of its own, outside the pool. The returned handle resolves when the
/// connection ends (closed, or lost).
pub async fn dedicated(
    config: &Config,
) -> Result<(Client, tokio::task::JoinHandle<()>), PostgresError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| PostgresError::Connect(e.to_string()))?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            warn!(%error, "postgres connection ended");
        }
    });
    Ok((client, driver))
}

/// Creates the database `config` names if the server does not have it yet (connecting to
/// the `postgres` database of the same server to do so).
pub async fn ensure_database(config: &Config) -> Result<(), PostgresError> {
    let Some(name) = config.get_dbname().map(str::to_owned) else {
        return Err(PostgresError::InvalidUrl {
            url: format!("{config:?}"),
            reason: "it names no database".to_owned(),
        });
    };
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let (client, driver) = dedicated(&maintenance).await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(query_error)?
        .is_some();
    if !exists {
        let statement = format!("CREATE DATABASE {}", quote_identifier(&name));
        match client.batch_execute(&statement).await {
            Ok(()) => info!(database = name, "created the read-model database"),
            // Someone else created it at the same moment.
            Err(error)
                if error.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(error) => return Err(query_error(error)),
        }
    }
    drop(client);
    driver.await.ok();
    Ok(())
}

/// `"name"`, with inner quotes doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn query_error(error: tokio_postgres::Error) -> PostgresError {
    PostgresError::Query(describe(&error))
}

/// The server's message (with its detail) when there is one, else the client's.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {detail}", db.message()),
            None => db.message().to_owned(),
        },
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_plan_without_parallel_workers_unless_the_url_says_otherwise() {
        let config = parse_url("postgres://postgres@127.0.0.1:5432/wangge").expect("a url");
        assert_eq!(config.get_options(), Some(SESSION_OPTIONS));
        let config = parse_url(
            "postgres://postgres@127.0.0.1:5432/wangge?options=-c%20max_parallel_workers_per_gather%3D4",
        )
        .expect("a url");
        assert_eq!(
            config.get_options(),
            Some("-c max_parallel_workers_per_gather=4")
        );
    }
}

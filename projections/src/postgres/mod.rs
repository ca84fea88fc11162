//! The read models in PostgreSQL: the production store of the four projections, behind the
//! same [`ReadModels`](crate::query::ReadModels) interface as the memory store, answering
//! every query the same.
//!
//! - [`pool`]: the connection pool and dedicated connections; creating the database.
//! - [`schema`]: migrations (refinery) and which tables belong to which projection.
//! - [`store`]: [`ProjectionStore`](crate::runner::ProjectionStore) for each projection:
//!   states as JSONB, a batch's rows as multi-row `UNNEST` statements, with the checkpoint
//!   moved in the same transaction, only from where the batch started.
//! - [`rollup`]: the indicators kept again per community and per district, and which level
//!   a query reads.
//! - [`queries`]: the `ReadModels` queries: SQL selects and sums, the shared
//!   [`answer`](crate::answer) functions present.
//! - [`listen`]: `subscribe()` over LISTEN/NOTIFY, so an instance hears every instance's
//!   commits; on a read replica, heard from the primary and passed on once the replica
//!   shows them.
//! - [`exclusive`]: one active runner per projection across instances (a session-level
//!   advisory lock on a dedicated connection); the others stand by.
//! - [`rebuild`]: a projection rebuilt from the start of the log into shadow tables and
//!   swapped in, in one transaction.
//! - [`audit`]: reading stored trails back for `wangge audit verify`.
//! - [`api_keys`]: the API keys other systems read the HTTP API with (not a projection).

pub mod api_keys;
pub mod audit;
pub mod exclusive;
pub mod listen;
pub mod pool;
pub mod queries;
pub mod rebuild;
pub mod rollup;
pub mod schema;
pub mod store;
pub mod text;

use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use tokio_postgres::Config;

use crate::fold::FoldContext;
use crate::query::Progress;
use crate::runner::StoreError;
use wangge_engine::log::LogError;

pub use exclusive::{spawn_runners, ExclusiveRunnerConfig, ProjectionRunners, RunnerRole};
pub use rebuild::{RebuildOutcome, RebuildProgress};
pub use store::PostgresStore;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("invalid postgres url `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to postgres: {0}")]
    Connect(String),
    #[error("read-model schema migration failed: {0}")]
    Migration(String),
    #[error("postgres query failed: {0}")]
    Query(String),
    #[error("no projection `{0}` (there are: cases, audit, indicators, patrols)")]
    UnknownProjection(String),
    #[error("a rebuild of `{0}` is already running")]
    RebuildRunning(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The four read models in PostgreSQL.
pub struct PostgresReadModels {
    context: FoldContext,
    config: Config,
    pool: Pool,
    store: PostgresStore,
    progress: tokio::sync::broadcast::Sender<Progress>,
    /// The LISTEN task, started by the first `subscribe()`.
    listener: Mutex<Option<tokio::task::AbortHandle>>,
    /// Read models opened on a hot standby: the primary they replicate, where commits are
    /// announced (a standby can neither LISTEN nor be written).
    primary: Option<Config>,
}

impl PostgresReadModels {
    /// Connects to the database `url` names, creating it if the server lacks it, and brings
    /// its schema up to date.
    pub async fn connect(url: &str, context: FoldContext) -> Result<Arc<Self>, PostgresError> {
        let config = pool::parse_url(url)?;
        pool::ensure_database(&config).await?;
        Self::open(config, context, pool::DEFAULT_POOL_SIZE).await
    }

    /// Opens an existing database and migrates it.
    pub async fn open(
        config: Config,
        context: FoldContext,
        pool_size: usize,
    ) -> Result<Arc<Self>, PostgresError> {
        schema::migrate(&config).await?;
        Self::assemble(config, context, pool_size, None)
    }

    /// The read models over a pool on `config`; `primary` when `config` is its replica.
    fn assemble(
        config: Config,
        context: FoldContext,
        pool_size: usize,
        primary: Option<Config>,
    ) -> Result<Arc<Self>, PostgresError> {
        let pool = pool::pool(&config, pool_size)?;
        Ok(Arc::new(Self {
            context,
            store: PostgresStore::live(pool.clone()),
            config,
            pool,
            progress: tokio::sync::broadcast::channel(1024).0,
            listener: Mutex::new(None),
            primary,
        }))
    }

    /// Read models served from a read replica (a hot standby of `primary_url`'s server) for
    /// the API: queries go to the replica; the live stream hears commits from the primary
    /// and announces each once the replica shows it, so a dashboard that reloads on an
    /// announcement never reads rows older than it was told of. Nothing is migrated or
    /// written here: the engine with `--postgres-url` keeps the primary's schema, and this
    /// waits (up to `schema_wait`) until the replica has replayed the schema it expects.
    pub async fn connect_replica(
        replica_url: &str,
        primary_url: &str,
        context: FoldContext,
        schema_wait: std::time::Duration,
    ) -> Result<Arc<Self>, PostgresError> {
        let config = pool::parse_url(replica_url)?;
        let primary = pool::parse_url(primary_url)?;
        schema::wait_for_replica_schema(&config, schema_wait).await?;
        Self::assemble(config, context, pool::DEFAULT_POOL_SIZE, Some(primary))
    }

    /// Whether these read models are served from a replica.
    pub fn is_replica(&self) -> bool {
        self.primary.is_some()
    }

    pub fn context(&self) -> &FoldContext {
        &self.context
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The store of the live tables.
    pub fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, crate::query::ReadError> {
        self.pool
            .get()
            .await
            .map_err(|e| crate::query::ReadError::Unavailable(e.to_string()))
    }
}

impl Drop for PostgresReadModels {
    fn drop(&mut self) {
        let listener = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = listener.as_ref() {
            task.abort();
        }
    }
}

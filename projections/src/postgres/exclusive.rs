//! One active runner per projection across engine instances.
//!
//! Each instance runs a supervisor per projection. It opens a dedicated connection (never a
//! pooled one: the lock belongs to the session) and tries `pg_try_advisory_lock` on the
//! projection's key. The one that gets it runs the projection's [`ProjectionRunner`] for as
//! long as it holds the lock; the others stand by and try again every
//! [`ExclusiveRunnerConfig::standby_retry`]. The holder checks its connection every
//! [`ExclusiveRunnerConfig::heartbeat`]; when the connection is gone, the server has
//! released the lock (it is a session lock), so the runner stops at once and the supervisor
//! goes back to trying.
//!
//! The lock decides who works, never what is correct: a runner that lost its lock may still
//! have a batch in flight, but its commit moves the checkpoint only from the position the
//! batch started at, which the new holder has moved on from, so the late commit is refused
//! ([`StoreError::CheckpointMoved`](crate::runner::StoreError)) with nothing written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;
use tracing::{info, warn};
use wangge_engine::log::EventLog;

use super::pool::{dedicated, describe};
use super::{PostgresError, PostgresReadModels};
use crate::fold::audit::AuditProjection;
use crate::fold::cases::CasesProjection;
use crate::fold::indicators::IndicatorsProjection;
use crate::fold::patrols::PatrolsProjection;
use crate::fold::{Projection, PROJECTION_NAMES};
use crate::runner::{ProjectionRunner, ProjectionStore, RunnerConfig};

/// The advisory-lock class of the projection runners (`'WG'` and 1); the object is the
/// projection's index in [`PROJECTION_NAMES`]. Visible in `pg_locks` as classid/objid.
pub const RUNNER_LOCK_CLASS: i32 = 0x5747_0001;

/// The advisory lock of a projection's runner: `(class, object)`.
pub fn runner_lock_key(projection: &str) -> Option<(i32, i32)> {
    PROJECTION_NAMES
        .iter()
        .position(|name| *name == projection)
        .map(|index| (RUNNER_LOCK_CLASS, index as i32))
}

/// What a projection's supervisor is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerRole {
    /// Opening its lock connection (or opening it again after losing it).
    Connecting,
    /// Another instance holds the projection's lock.
    Standby,
    /// This instance holds the lock and runs the projection.
    Active,
    /// Shut down.
    Stopped,
}

#[derive(Debug, Clone)]
pub struct ExclusiveRunnerConfig {
    pub runner: RunnerConfig,
    /// How often a standby tries to take the lock.
    pub standby_retry: Duration,
    /// How often the holder checks its lock connection (and how long the check may take).
    pub heartbeat: Duration,
}

impl Default for ExclusiveRunnerConfig {
    fn default() -> Self {
        Self {
            runner: RunnerConfig::default(),
            standby_retry: Duration::from_secs(1),
            heartbeat: Duration::from_secs(2),
        }
    }
}

/// A dedicated connection that may hold one projection's lock.
struct LockConnection {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<()>,
    key: (i32, i32),
}

impl LockConnection {
    async fn open(models: &PostgresReadModels, key: (i32, i32)) -> Result<Self, PostgresError> {
        let (client, driver) = dedicated(models.config()).await?;
        Ok(Self {
            client,
            driver,
            key,
        })
    }

    async fn try_lock(&self) -> Result<bool, PostgresError> {
        let row = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&self.key.0, &self.key.1],
            )
            .await
            .map_err(|e| PostgresError::Query(describe(&e)))?;
        Ok(row.get(0))
    }

    /// Resolves when the connection (and so the lock) is gone.
    async fn lost(&mut self, heartbeat: Duration) {
        loop {
            tokio::select! {
                _ = &mut self.driver => return,
                _ = tokio::time::sleep(heartbeat) => {
                    let check = tokio::time::timeout(heartbeat, self.client.simple_query("SELECT 1")).await;
                    if !matches!(check, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }

    async fn release(self) {
        self.client
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&self.key.0, &self.key.1],
            )
            .await
            .ok();
        drop(self.client);
        self.driver.await.ok();
    }
}

/// Runs `projection` whenever this instance holds its lock, until `shutdown`; reports what
/// it does on `role`.
pub async fn run_exclusive<P, L>(
    models: Arc<PostgresReadModels>,
    projection: P,
    log: L,
    config: ExclusiveRunnerConfig,
    role: watch::Sender<RunnerRole>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    P: Projection + Clone,
    L: EventLog + Clone,
    PostgresReadModels: ProjectionStore<P>,
{
    let Some(key) = runner_lock_key(P::NAME) else {
        warn!(
            projection = P::NAME,
            "no lock key for this projection; not running it"
        );
        return;
    };
    let shutdown = shutdown.boxed().shared();
    let stopping = || shutdown.clone().now_or_never().is_some();
    'connect: loop {
        role.send_replace(RunnerRole::Connecting);
        let mut connection = tokio::select! {
            opened = LockConnection::open(&models, key) => match opened {
                Ok(connection) => connection,
                Err(error) => {
                    warn!(projection = P::NAME, %error, "cannot open the projection's lock connection; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(config.standby_retry) => continue 'connect,
                        _ = shutdown.clone() => break 'connect,
                    }
                }
            },
            _ = shutdown.clone() => break 'connect,
        };
        // Stand by until the lock is ours.
        loop {
            match connection.try_lock().await {
                Ok(true) => break,
                Ok(false) => {
                    if role.send_replace(RunnerRole::Standby) != RunnerRole::Standby {
                        info!(
                            projection = P::NAME,
                            "another instance runs this projection; standing by"
                        );
                    }
                }
                Err(error) => {
                    warn!(projection = P::NAME, %error, "lock connection failed; opening it again");
                    continue 'connect;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(config.standby_retry) => {}
                _ = shutdown.clone() => {
                    connection.release().await;
                    break 'connect;
                }
            }
        }
        role.send_replace(RunnerRole::Active);
        info!(
            projection = P::NAME,
            "took the projection's lock; running it"
        );
        let runner = ProjectionRunner::new(projection.clone(), models.clone(), log.clone())
            .with_config(config.runner.clone());
        let lock_gone = tokio::select! {
            () = runner.run(shutdown.clone()) => false,
            () = connection.lost(config.heartbeat) => true,
        };
        if lock_gone {
            // The runner stops at its next await: the select above dropped it.
            warn!(
                projection = P::NAME,
                "lost the projection's lock connection; runner stopped, standing by"
            );
            continue 'connect;
        }
        if stopping() {
            connection.release().await;
            break 'connect;
        }
        // The log ended (a memory log that was closed): nothing more to run.
        connection.release().await;
        break 'connect;
    }
    role.send_replace(RunnerRole::Stopped);
}

/// The four projections' supervisors of one instance.
pub struct ProjectionRunners {
    roles: BTreeMap<&'static str, watch::Receiver<RunnerRole>>,
    tasks: tokio::task::JoinSet<()>,
}

impl ProjectionRunners {
    /// What each projection's supervisor is doing now.
    pub fn roles(&self) -> Vec<(&'static str, RunnerRole)> {
        self.roles
            .iter()
            .map(|(name, role)| (*name, *role.borrow()))
            .collect()
    }

    /// The role of one projection's supervisor, to wait on.
    pub fn role(&self, projection: &str) -> Option<watch::Receiver<RunnerRole>> {
        self.roles.get(projection).cloned()
    }

    /// Waits until every supervisor has stopped.
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts the supervisors of all four projections on `log`; they stop at `shutdown`.
pub fn spawn_runners<L: EventLog + Clone>(
    models: Arc<PostgresReadModels>,
    log: L,
    config: ExclusiveRunnerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> ProjectionRunners {
    let shutdown = shutdown.boxed().shared();
    let mut runners = ProjectionRunners {
        roles: BTreeMap::new(),
        tasks: tokio::task::JoinSet::new(),
    };
    macro_rules! start {
        ($projection:expr) => {{
            let (role, watcher) = watch::channel(RunnerRole::Connecting);
            runners.roles.insert(projection_name(&$projection), watcher);
            runners.tasks.spawn(run_exclusive(
                models.clone(),
                $projection,
                log.clone(),
                config.clone(),
                role,
                shutdown.clone(),
            ));
        }};
    }
    start!(CasesProjection);
    start!(AuditProjection);
    start!(IndicatorsProjection);
    start!(PatrolsProjection);
    runners
}

fn projection_name<P: Projection>(_: &P) -> &'static str {
    P::NAME
}

impl PostgresReadModels {
    /// For each projection, the server process id of the session holding its runner lock
    /// (`None`: no runner active anywhere).
    pub async fn runner_holders(&self) -> Result<Vec<(&'static str, Option<i32>)>, PostgresError> {
        let client = self
            .pool()
            .get()
            .await
            .map_err(|e| PostgresError::Connect(e.to_string()))?;
        let rows = client
            .query(
                "SELECT objid::bigint, pid FROM pg_locks WHERE locktype = 'advisory' \
                 AND classid = $1::int::oid AND objsubid = 2 AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[&RUNNER_LOCK_CLASS],
            )
            .await
            .map_err(|e| PostgresError::Query(describe(&e)))?;
        Ok(PROJECTION_NAMES
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let pid = rows
                    .iter()
                    .find(|row| row.get::<_, i64>(0) == index as i64)
                    .map(|row| row.get::<_, i32>(1));
                (*name, pid)
            })
            .collect())
    }
}

//! The projection runner: reads the event log in order and keeps one projection's read
//! model up to date, batch by batch.
//!
//! Each batch is committed by the store together with the projection's checkpoint (the log
//! position of the batch's last commit), in one transaction, and only if the checkpoint is
//! still where the batch started ([`StoreError::CheckpointMoved`] otherwise: another runner,
//! or a rebuild, moved it — the runner then starts again from the stored checkpoint). A
//! commit at or below the checkpoint is never folded again, so a redelivery, a restart
//! mid-batch or a second runner changes nothing. Catching up is batched: a batch takes every
//! commit that is ready, up to [`RunnerConfig::max_batch`]; following the head, it waits at
//! most [`RunnerConfig::max_wait`] for more before committing what it has.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{debug, info, warn};
use wangge_engine::log::{EventLog, LogPosition, StoredCommit};
use wangge_schemas::CaseId;

use crate::fold::{fold_batch, Projection};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The checkpoint is not where the batch started: someone else moved it.
    #[error("checkpoint of `{projection}` moved: expected {expected}, found {actual}")]
    CheckpointMoved {
        projection: &'static str,
        expected: LogPosition,
        actual: LogPosition,
    },
    /// A stored state could not be read back.
    #[error("stored state of case {case_id} in `{projection}` is unreadable: {reason}")]
    Corrupt {
        projection: &'static str,
        case_id: CaseId,
        reason: String,
    },
    /// The store failed or could not be reached; worth retrying after a pause.
    #[error("read-model store unavailable: {0}")]
    Unavailable(String),
}

/// Where one projection's state, rows and checkpoint live.
#[async_trait::async_trait]
pub trait ProjectionStore<P: Projection>: Send + Sync + 'static {
    /// The log position of the last commit folded (0: none yet).
    async fn checkpoint(&self) -> Result<LogPosition, StoreError>;

    /// The projection's states of these cases (cases it has not seen are left out).
    async fn states(&self, cases: &[CaseId]) -> Result<HashMap<CaseId, P::State>, StoreError>;

    /// Writes a batch's changes and moves the checkpoint from `from` to `to` (whose last
    /// event was recorded at `recorded_at`), all or nothing; refuses with
    /// [`StoreError::CheckpointMoved`] when the checkpoint is not at `from`.
    async fn commit(
        &self,
        changes: P::Changes,
        from: LogPosition,
        to: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
}

/// How a runner batches.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The most commits in one batch (one transaction).
    pub max_batch: usize,
    /// Once a batch has a commit, how long to wait for more before committing it.
    pub max_wait: Duration,
    /// Pause after the store or the log failed.
    pub retry_delay: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            max_batch: 2_000,
            max_wait: Duration::from_millis(5),
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// Folds one batch of commits (all after `from`, in log order) into the store.
pub async fn project_batch<P: Projection, S: ProjectionStore<P> + ?Sized>(
    projection: &P,
    store: &S,
    from: LogPosition,
    batch: &[StoredCommit],
) -> Result<LogPosition, StoreError> {
    let batch: Vec<&StoredCommit> = batch.iter().filter(|c| c.position > from).collect();
    let Some(last) = batch.last() else {
        return Ok(from);
    };
    let to = last.position;
    let recorded_at = last.events.last().map(|e| e.recorded_at);
    let mut seen = HashSet::new();
    let cases: Vec<CaseId> = batch
        .iter()
        .map(|c| c.case_id)
        .filter(|id| seen.insert(*id))
        .collect();
    let states = store.states(&cases).await?;
    let changes = fold_batch(projection, states, batch);
    store.commit(changes, from, to, recorded_at).await?;
    Ok(to)
}

/// Keeps one projection up to date from a log.
pub struct ProjectionRunner<P, S: ?Sized, L> {
    projection: P,
    store: Arc<S>,
    log: L,
    config: RunnerConfig,
}

impl<P: Projection, S: ProjectionStore<P> + ?Sized, L: EventLog> ProjectionRunner<P, S, L> {
    pub fn new(projection: P, store: Arc<S>, log: L) -> Self {
        Self {
            projection,
            store,
            log,
            config: RunnerConfig::default(),
        }
    }

    pub fn with_config(mut self, config: RunnerConfig) -> Self {
        self.config = config;
        self
    }

    /// Follows the log until `shutdown`, committing batch after batch.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                outcome = self.follow() => match outcome {
                    Ok(()) => return,
                    Err(StoreError::CheckpointMoved { expected, actual, .. }) => {
                        info!(projection = P::NAME, expected, actual, "checkpoint moved elsewhere; starting again from it");
                    }
                    Err(error) => {
                        warn!(projection = P::NAME, %error, "projection runner failed; retrying");
                        tokio::time::sleep(self.config.retry_delay).await;
                    }
                },
                _ = &mut shutdown => return,
            }
        }
    }

    /// Reads the log from the stored checkpoint and commits batches; returns `Ok` when the
    /// log ends (a memory log that was closed), an error to start again.
    async fn follow(&self) -> Result<(), StoreError> {
        let mut position = self.store.checkpoint().await?;
        debug!(projection = P::NAME, position, "projection runner starting");
        let mut commits = self.log.read_from(position + 1);
        let mut batch: Vec<StoredCommit> = Vec::with_capacity(self.config.max_batch);
        loop {
            // The first commit of a batch: wait as long as it takes.
            match commits.next().await {
                Some(Ok(commit)) => batch.push(commit),
                Some(Err(error)) => return Err(StoreError::Unavailable(error.to_string())),
                None => return Ok(()),
            }
            // Then whatever else is ready, for a short while.
            let deadline = tokio::time::Instant::now() + self.config.max_wait;
            while batch.len() < self.config.max_batch {
                match tokio::time::timeout_at(deadline, commits.next()).await {
                    Ok(Some(Ok(commit))) => batch.push(commit),
                    Ok(Some(Err(error))) => return Err(StoreError::Unavailable(error.to_string())),
                    Ok(None) | Err(_) => break,
                }
            }
            position = project_batch(&self.projection, &*self.store, position, &batch).await?;
            batch.clear();
        }
    }
}

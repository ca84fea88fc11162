//! `wangge projections rebuild NAME`: a projection folded again from the start of the log
//! into shadow tables, then swapped in, while the live tables keep answering queries.
//!
//! 1. Take the projection's rebuild lock (one rebuild of a projection at a time).
//! 2. Create `<table>_rebuild` beside each of the projection's tables (`LIKE … INCLUDING
//!    ALL`: the same columns, constraints and indexes as the live table has now) and a
//!    checkpoint row `<name>_rebuild` at 0.
//! 3. Fold the log from its first commit into them with the same folds and the same store
//!    code as the live runner, batch by batch, up to the log's head (and the commits that
//!    arrived meanwhile).
//! 4. Swap, in one transaction: lock the live checkpoint row (`FOR UPDATE`: the row every
//!    commit of the live runner moves first, so its next commit waits for the swap), rename
//!    each live table away and the shadow table into its place, drop the old one, give the
//!    indexes back their names, and set the live checkpoint to where the rebuild got to.
//!    The live runner's waiting commit then finds the checkpoint moved, is refused with
//!    nothing written, and the runner carries on from the swapped-in checkpoint: the
//!    commits after it are folded into the new tables once. Queries wait for the swap's
//!    few milliseconds at most (it gives up and tries again rather than queue behind a long
//!    query).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{info, warn};
use wangge_engine::log::{EventLog, LogPosition, StoredCommit};

use super::pool::{dedicated, query_error, quote_identifier};
use super::schema::{shadow_checkpoint, tables_of, SHADOW_SUFFIX};
use super::store::{db_position, position_of, NOTIFY_CHANNEL};
use super::{PostgresError, PostgresReadModels, PostgresStore};
use crate::fold::audit::AuditProjection;
use crate::fold::cases::CasesProjection;
use crate::fold::indicators::IndicatorsProjection;
use crate::fold::patrols::PatrolsProjection;
use crate::fold::{Projection, PROJECTION_NAMES};
use crate::query::Progress;
use crate::runner::{project_batch, ProjectionStore, RunnerConfig};

/// The advisory-lock class of rebuilds (`'WG'` and 2); the object is the projection's index.
pub const REBUILD_LOCK_CLASS: i32 = 0x5747_0002;

/// How often the rebuild looks at the log's head again before swapping (commits keep
/// arriving; the live runner folds whatever comes after the swap).
const HEAD_REFRESHES: usize = 3;
/// How long the swap waits for a table lock before it gives up and tries again.
const SWAP_LOCK_TIMEOUT: &str = "2s";
const SWAP_ATTEMPTS: usize = 30;

/// How far a rebuild has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    /// The log position folded so far.
    pub position: LogPosition,
    /// The head it is folding towards.
    pub head: LogPosition,
    /// Commits folded so far.
    pub commits: u64,
}

/// What a finished rebuild swapped in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildOutcome {
    pub projection: &'static str,
    /// The checkpoint the new tables start from.
    pub position: LogPosition,
    pub commits: u64,
}

impl PostgresReadModels {
    /// Rebuilds the projection `name` from the start of `log` and swaps it in.
    pub async fn rebuild<L: EventLog>(
        &self,
        name: &str,
        log: &L,
        batching: &RunnerConfig,
        on_progress: impl FnMut(RebuildProgress) + Send,
    ) -> Result<RebuildOutcome, PostgresError> {
        match name {
            CasesProjection::NAME => {
                self.rebuild_one(CasesProjection, log, batching, on_progress)
                    .await
            }
            AuditProjection::NAME => {
                self.rebuild_one(AuditProjection, log, batching, on_progress)
                    .await
            }
            IndicatorsProjection::NAME => {
                self.rebuild_one(IndicatorsProjection, log, batching, on_progress)
                    .await
            }
            PatrolsProjection::NAME => {
                self.rebuild_one(PatrolsProjection, log, batching, on_progress)
                    .await
            }
            other => Err(PostgresError::UnknownProjection(other.to_owned())),
        }
    }

    async fn rebuild_one<P: Projection, L: EventLog>(
        &self,
        projection: P,
        log: &L,
        batching: &RunnerConfig,
        mut on_progress: impl FnMut(RebuildProgress) + Send,
    ) -> Result<RebuildOutcome, PostgresError>
    where
        PostgresStore: ProjectionStore<P>,
    {
        let name = P::NAME;
        let tables =
            tables_of(name).ok_or_else(|| PostgresError::UnknownProjection(name.into()))?;
        let index = PROJECTION_NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or_default() as i32;
        let (lock, lock_driver) = dedicated(self.config()).await?;
        let locked: bool = lock
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&REBUILD_LOCK_CLASS, &index],
            )
            .await
            .map_err(query_error)?
            .get(0);
        if !locked {
            return Err(PostgresError::RebuildRunning(name.to_owned()));
        }
        let outcome = self
            .rebuild_locked(projection, tables, log, batching, &mut on_progress)
            .await;
        drop(lock);
        lock_driver.await.ok();
        outcome
    }

    async fn rebuild_locked<P: Projection, L: EventLog>(
        &self,
        projection: P,
        tables: &[&str],
        log: &L,
        batching: &RunnerConfig,
        on_progress: &mut (impl FnMut(RebuildProgress) + Send),
    ) -> Result<RebuildOutcome, PostgresError>
    where
        PostgresStore: ProjectionStore<P>,
    {
        let name = P::NAME;
        let shadow_name = shadow_checkpoint(name);
        {
            let mut client = self.pool().get().await.map_err(pool_failed)?;
            let transaction = client.transaction().await.map_err(query_error)?;
            for table in tables {
                let shadow = quote_identifier(&format!("{table}{SHADOW_SUFFIX}"));
                let live = quote_identifier(table);
                transaction
                    .batch_execute(&format!(
                        "DROP TABLE IF EXISTS {shadow}; CREATE TABLE {shadow} (LIKE {live} INCLUDING ALL)"
                    ))
                    .await
                    .map_err(query_error)?;
                // LIKE copies columns and indexes, not the table's settings (autovacuum's
                // pace: V11): the table swapped in must keep them.
                let settings: Option<String> = transaction
                    .query_one(
                        "SELECT array_to_string(array_cat(c.reloptions, \
                         ARRAY(SELECT 'toast.' || o FROM unnest(t.reloptions) AS o)), ', ') \
                         FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
                         WHERE c.oid = $1::text::regclass",
                        &[&live],
                    )
                    .await
                    .map_err(query_error)?
                    .get(0);
                if let Some(settings) = settings.filter(|s| !s.is_empty()) {
                    transaction
                        .batch_execute(&format!("ALTER TABLE {shadow} SET ({settings})"))
                        .await
                        .map_err(query_error)?;
                }
            }
            transaction
                .execute(
                    "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, 0) \
                     ON CONFLICT (projection) DO UPDATE SET position = 0, recorded_at = NULL, \
                     updated_at = now()",
                    &[&shadow_name],
                )
                .await
                .map_err(query_error)?;
            transaction.commit().await.map_err(query_error)?;
        }
        info!(projection = name, "rebuilding into shadow tables");

        let store = PostgresStore::shadow(self.pool().clone());
        let mut position: LogPosition = 0;
        let mut commits_folded = 0u64;
        let mut head = log.head().await?;
        let mut refreshes = 0;
        on_progress(RebuildProgress {
            position,
            head,
            commits: 0,
        });
        let mut commits = log.read_from(1);
        let mut batch: Vec<StoredCommit> = Vec::with_capacity(batching.max_batch);
        while position < head {
            match commits.next().await {
                Some(commit) => batch.push(commit?),
                None => break,
            }
            let deadline = tokio::time::Instant::now() + batching.max_wait;
            while batch.len() < batching.max_batch
                && batch.last().is_some_and(|c| c.position < head)
            {
                match tokio::time::timeout_at(deadline, commits.next()).await {
                    Ok(Some(commit)) => batch.push(commit?),
                    Ok(None) | Err(_) => break,
                }
            }
            position = project_batch(&projection, &store, position, &batch).await?;
            commits_folded += batch.len() as u64;
            batch.clear();
            if position >= head && refreshes < HEAD_REFRESHES {
                refreshes += 1;
                head = log.head().await?.max(head);
            }
            on_progress(RebuildProgress {
                position,
                head,
                commits: commits_folded,
            });
        }
        drop(commits);

        let (shadow_position, shadow_recorded) = {
            let client = self.pool().get().await.map_err(pool_failed)?;
            let row = client
                .query_one(
                    "SELECT position, recorded_at FROM projection_checkpoints WHERE projection = $1",
                    &[&shadow_name],
                )
                .await
                .map_err(query_error)?;
            (
                position_of(row.get(0)),
                row.get::<_, Option<DateTime<Utc>>>(1),
            )
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .swap(name, tables, &shadow_name, shadow_position, shadow_recorded)
                .await
            {
                Ok(()) => break,
                Err(SwapError::LockTimeout) if attempt < SWAP_ATTEMPTS => {
                    warn!(projection = name, attempt, "swap waited too long for a table lock; trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(SwapError::LockTimeout) => {
                    return Err(PostgresError::Query(format!(
                        "could not lock the tables of `{name}` for the swap in {SWAP_ATTEMPTS} attempts"
                    )))
                }
                Err(SwapError::Failed(error)) => return Err(error),
            }
        }
        info!(
            projection = name,
            position = shadow_position,
            commits = commits_folded,
            "rebuilt tables swapped in"
        );
        Ok(RebuildOutcome {
            projection: name,
            position: shadow_position,
            commits: commits_folded,
        })
    }

    /// The swap transaction (see the module's documentation).
    async fn swap(
        &self,
        name: &'static str,
        tables: &[&str],
        shadow_name: &str,
        position: LogPosition,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<(), SwapError> {
        let mut client = self
            .pool()
            .get()
            .await
            .map_err(|e| SwapError::Failed(pool_failed(e)))?;
        let transaction = client.transaction().await.map_err(SwapError::from)?;
        transaction
            .batch_execute(&format!("SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
            .await?;
        // The live runner moves this row first in every commit: from here on it waits.
        transaction
            .query_opt(
                "SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
                &[&name],
            )
            .await?;
        for table in tables {
            let shadow = format!("{table}{SHADOW_SUFFIX}");
            let retired = format!("{table}_retired");
            let live_indexes = index_definitions(&transaction, table).await?;
            let shadow_indexes = index_definitions(&transaction, &shadow).await?;
            transaction
                .batch_execute(&format!(
                    "ALTER TABLE {live} RENAME TO {retired}; ALTER TABLE {shadow_q} RENAME TO {live}; \
                     DROP TABLE {retired}",
                    live = quote_identifier(table),
                    retired = quote_identifier(&retired),
                    shadow_q = quote_identifier(&shadow),
                ))
                .await?;
            // The swapped-in indexes got names of their own from CREATE TABLE … LIKE; give
            // them the live ones, so later migrations can name them.
            for (definition, shadow_index) in &shadow_indexes {
                if let Some(live_index) = live_indexes.get(definition) {
                    if live_index != shadow_index {
                        transaction
                            .batch_execute(&format!(
                                "ALTER INDEX {} RENAME TO {}",
                                quote_identifier(shadow_index),
                                quote_identifier(live_index)
                            ))
                            .await?;
                    }
                }
            }
        }
        transaction
            .execute(
                "UPDATE projection_checkpoints SET position = $1, recorded_at = $2, updated_at = now() \
                 WHERE projection = $3",
                &[&db_position(position), &recorded_at, &name],
            )
            .await?;
        transaction
            .execute(
                "DELETE FROM projection_checkpoints WHERE projection = $1",
                &[&shadow_name],
            )
            .await?;
        let payload = serde_json::to_string(&Progress {
            projection: name.to_owned(),
            position,
        })
        .unwrap_or_default();
        transaction
            .execute("SELECT pg_notify($1, $2)", &[&NOTIFY_CHANNEL, &payload])
            .await?;
        transaction.commit().await?;
        Ok(())
    }
}

enum SwapError {
    LockTimeout,
    Failed(PostgresError),
}

impl From<tokio_postgres::Error> for SwapError {
    fn from(error: tokio_postgres::Error) -> Self {
        if error.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
            Self::LockTimeout
        } else {
            Self::Failed(query_error(error))
        }
    }
}

fn pool_failed(error: deadpool_postgres::PoolError) -> PostgresError {
    PostgresError::Connect(error.to_string())
}

/// A table's indexes by what they index (their definition without their own and their
/// table's names) → their name.
async fn index_definitions(
    transaction: &deadpool_postgres::Transaction<'_>,
    table: &str,
) -> Result<HashMap<String, String>, tokio_postgres::Error> {
    let rows = transaction
        .query(
            "SELECT i.relname::text, pg_get_indexdef(i.oid), x.indisunique \
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = $1::text::regclass",
            &[&table],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let name: String = row.get(0);
            let definition: String = row.get(1);
            let unique: bool = row.get(2);
            let shape = definition
                .split_once(" USING ")
                .map_or(definition.as_str(), |(_, rest)| rest);
            (format!("{unique} {shape}"), name)
        })
        .collect())
}

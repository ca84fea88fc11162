//! The event log: where a case's events are appended and read back.
//!
//! One command's events form one *commit*, stored as one message, so they become visible
//! together or not at all. Concurrent commits of different cases are stored together as one
//! atomic batch under one fsync (`group_commit`): the commit is still the unit of
//! concurrency, idempotency and sealing. Every commit names
//! the log position it expects to follow for its case: optimistic concurrency, including the
//! very first commit of a case (expected position 0 = "the case must not exist yet").
//!
//! A log given a [`SealKey`] seals every commit it appends (`wangge_domain::seal`): an
//! Ed25519 signature over the case, the events, the payload bytes as appended and the link
//! to the case's previous commit, in the commit's headers (JetStream) or beside it (memory).

pub mod codec;
pub mod group_commit;
pub mod jetstream;
pub mod memory;
pub mod seal;

use std::future::Future;

use futures::stream::BoxStream;
use wangge_schemas::CaseId;

pub use jetstream::{JetStreamLog, JetStreamLogConfig};
pub use memory::MemoryLog;
pub use seal::{SealKey, SealKeyError};

pub use wangge_domain::commit::{CaseHistory, Commit, LogPosition, StoredCommit, StoredSeal};

/// The outcome of an append that the log accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub position: LogPosition,
    /// True when the log had this commit already (same idempotency key) and wrote nothing.
    pub duplicate: bool,
    /// The seal link the case's next commit signs (`None` for a duplicate, which wrote
    /// nothing), so a cached case appends again without reading its last commit back.
    pub next_seal_link: Option<wangge_domain::seal::SealLink>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Someone else committed to the case first: reload and decide again.
    #[error("case {case_id} moved on: expected position {expected}, log is at {actual}")]
    Conflict {
        case_id: CaseId,
        expected: LogPosition,
        actual: LogPosition,
    },
    /// A stored commit could not be read back (corrupt or from an unknown future version).
    #[error("stored commit at position {position} is unreadable: {reason}")]
    Corrupt {
        position: LogPosition,
        reason: String,
    },
    /// The log server failed or could not be reached; worth retrying after a pause.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
}

/// The log the engine writes to and reads from.
///
/// Implementations: [`JetStreamLog`] (production) and [`MemoryLog`] (demo and unit tests).
/// Both pass the same behavioural tests.
pub trait EventLog: Send + Sync + 'static {
    /// Appends one commit if the case's last commit is still at `expected`
    /// (0 = the case must have no commit yet).
    fn append(
        &self,
        commit: Commit,
        expected: LogPosition,
    ) -> impl Future<Output = Result<Appended, LogError>> + Send;

    /// Appends one commit after the case history the caller decided on. Same as
    /// [`EventLog::append`] with `history.last_position`, but lets a log record where the
    /// case's earlier commits are, so that loading it later is one round of reads.
    fn append_after(
        &self,
        commit: Commit,
        history: &CaseHistory,
    ) -> impl Future<Output = Result<Appended, LogError>> + Send {
        self.append(commit, history.last_position)
    }

    /// Loads one case's whole history in order.
    fn load(&self, case_id: CaseId) -> impl Future<Output = Result<CaseHistory, LogError>> + Send;

    /// Reads every commit of every case in log order, starting at `from` (inclusive), then
    /// keeps following new commits. For projections and timers.
    fn read_from(&self, from: LogPosition) -> BoxStream<'static, Result<StoredCommit, LogError>>;

    /// The position of the newest commit in the log (0 when empty).
    fn head(&self) -> impl Future<Output = Result<LogPosition, LogError>> + Send;
}

//! The log's values as the pure core sees them: a commit as appended, a commit as read back
//! with its position, and a case's history. The log itself (JetStream, memory) is the
//! engine's; these are plain data.

use wangge_schemas::{CaseId, EventEnvelope};

/// A position in the whole log (the JetStream stream sequence). Positions grow, with gaps.
pub type LogPosition = u64;

/// One command's events as they are appended: one message, all or nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub case_id: CaseId,
    /// The events, with gapless sequences continuing the case.
    pub events: Vec<EventEnvelope>,
    /// The key that makes a retry of the same commit harmless (the `Nats-Msg-Id`).
    pub idempotency_key: String,
}

/// A commit as read back, with its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCommit {
    pub position: LogPosition,
    pub case_id: CaseId,
    pub events: Vec<EventEnvelope>,
}

/// Everything known about one case: its events in order and where its commits sit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseHistory {
    pub events: Vec<EventEnvelope>,
    /// Position of the case's last commit; 0 when the case has no events.
    pub last_position: LogPosition,
    /// Positions of all the case's commits, oldest first (the last is `last_position`).
    pub commit_positions: Vec<LogPosition>,
}

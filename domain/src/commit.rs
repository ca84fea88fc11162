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
    /// The commit's seal headers as the log holds them, with the digest of its payload bytes
    /// as read; `None` when the commit carries no seal (written before sealing, or by a
    /// writer outside the engine). Checked by verifiers, never trusted by the reader.
    pub seal: Option<StoredSeal>,
}

/// What a reader found of a commit's seal ([`crate::seal`]): the raw header values (a forged
/// or damaged one may not even parse) and SHA-256 of the payload exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSeal {
    /// The `Wangge-Seal` header: `<key id>:<base64 signature>`.
    pub seal: String,
    /// The `Wangge-Seal-Link` header, hex.
    pub link: Option<String>,
    pub payload_sha256: [u8; 32],
}

/// Everything known about one case: its events in order and where its commits sit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseHistory {
    pub events: Vec<EventEnvelope>,
    /// Position of the case's last commit; 0 when the case has no events.
    pub last_position: LogPosition,
    /// Positions of all the case's commits, oldest first (the last is `last_position`).
    pub commit_positions: Vec<LogPosition>,
    /// The seal link the case's next commit signs ([`crate::seal::next_link_after`] of the
    /// last commit), when the log read it; `None` when unknown (the log then reads it again).
    pub next_seal_link: Option<crate::seal::SealLink>,
}

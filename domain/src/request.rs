//! A command addressed to one case, with everything the envelopes of its events need: who
//! asks, which message carried it (the idempotency key), when it happened, and what caused it.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use wangge_schemas::{Actor, CaseId, Source};

use crate::CaseCommand;

/// A command with everything the envelope of its events needs.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    pub case_id: CaseId,
    pub command: CaseCommand,
    pub actor: Actor,
    /// The message that carried the command; its id is the idempotency key.
    pub source: Source,
    /// When the command happened in the world (defaults to now).
    pub occurred_at: Option<DateTime<Utc>>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

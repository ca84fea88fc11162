//! The envelope every event travels in: who, when, where, why, and in which order.
//!
//! The envelope is the part of the contract that never depends on the event type, so other
//! systems can route, deduplicate and order events without understanding the payload.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::events::{CaseEvent, StepDeadlines};

/// Identifies one case for its whole life. Serialized as a hyphenated UUID string.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
pub struct CaseId(pub Uuid);

impl CaseId {
    /// A fresh, time-ordered case id (UUIDv7) for cases that have no external identity.
    #[cfg(feature = "new-ids")]
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }

    /// The case id for a message that another system sent with its own message id.
    ///
    /// Derived, not random: the same `(system, message_id)` always names the same case, so a
    /// report that is retried days later (long after the NATS duplicate window) still lands
    /// on the one case it created the first time. UUIDv8 marks it as derived.
    pub fn derived_from_source(source: &Source) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"wangge.case.v1\0");
        hasher.update(source.system.as_bytes());
        hasher.update(b"\0");
        hasher.update(source.message_id.as_bytes());
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(Uuid::new_v8(bytes))
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for CaseId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    pub kind: ActorKind,
    /// The actor's id in its own system: a resident's account, a worker's staff number, or
    /// the name of an automated component such as `sla-timer`.
    pub id: String,
}

impl Actor {
    pub fn system(component: &str) -> Self {
        Self {
            kind: ActorKind::System,
            id: component.to_owned(),
        }
    }
    pub fn resident(id: &str) -> Self {
        Self {
            kind: ActorKind::Resident,
            id: id.to_owned(),
        }
    }
    pub fn grid_worker(id: &str) -> Self {
        Self {
            kind: ActorKind::GridWorker,
            id: id.to_owned(),
        }
    }
    pub fn supervisor(id: &str) -> Self {
        Self {
            kind: ActorKind::Supervisor,
            id: id.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ActorKind {
    Resident,
    GridWorker,
    Supervisor,
    System,
}

/// Where a message came from: the publishing system and its own id for the message.
///
/// `(system, message_id)` is the idempotency key of everything that enters the engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The publishing system, e.g. `hotline-12345`, `miniprogram`, `kiosk-07`, `wangge-engine`.
    pub system: String,
    /// The publisher's own id for the message that caused this event.
    pub message_id: String,
}

/// A case's place in the three-tier grid: district → community → building.
///
/// Codes follow the published hierarchical scheme (area 6 digits + street 3 for the
/// district, + community 3, + cell 3 for the building), so each code is a prefix of the next.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GridLocation {
    pub district: String,
    pub community: String,
    pub building: String,
}

/// One immutable fact about one case, with everything needed to order, trace and verify it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Wangge event envelope")]
pub struct EventEnvelope {
    /// Unique id of this event (UUIDv7, time ordered).
    pub event_id: Uuid,
    /// The event type and its payload (`event_type` names the payload's shape).
    #[serde(flatten)]
    pub event: CaseEvent,
    /// Version of the payload's schema for this event type; older versions are upcast on load.
    #[schemars(range(min = 1))]
    pub schema_version: u16,
    pub case_id: CaseId,
    /// Position of the event within its case: 1, 2, 3, … without gaps.
    #[schemars(range(min = 1))]
    pub sequence: u64,
    /// When it happened in the world (a report's own timestamp, a worker's action).
    pub occurred_at: DateTime<Utc>,
    /// When the engine recorded it.
    pub recorded_at: DateTime<Utc>,
    pub actor: Actor,
    pub source: Source,
    /// Ties together every event that follows from one original message.
    pub correlation_id: Uuid,
    /// The event or message that directly caused this one; absent for the first report.
    pub causation_id: Option<Uuid>,
    pub location: GridLocation,
    /// The running step's clock as the engine computed it with this event: on the last
    /// event of a commit that started a step or changed its clock (a suspension, a
    /// resumption, an extension). Absent on other events, and on events written before
    /// clocks were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_clock: Option<StepDeadlines>,
}

impl EventEnvelope {
    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }
}

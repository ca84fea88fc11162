//! The grid as data: the grid file, the category catalogue, and the grid events that change
//! the grid at run time.
//!
//! - [`GridFile`]: a city's tree of cells (district → community → building), each with its
//!   supervisor, and the people who work in it ([`GridWorker`]). An operator maintains it;
//!   the engine loads it at start-up (`deploy/grid/sample-city.json` is the sample).
//! - [`CategoryFile`]: the case categories and how each one is routed
//!   (`deploy/grid/categories.json`).
//! - [`GridEvent`] in a [`GridEventEnvelope`]: a cell added, a worker registered, a worker's
//!   duty, skills or cells changed. The engine keeps them on the grid stream and folds them
//!   over the state loaded from the file.
//! - [`GridCommand`] and [`GridReply`]: how an operator's tool or another system asks for a
//!   grid event (request-reply on `wangge.grid.commands`), and the engine's answer.
//!
//! As for case events, these types are the source of truth and the JSON Schemas under
//! `schemas/json/grid/` are generated from them. The rules a grid must keep beyond its shape
//! (codes prefix their parent's, ids are unique, cells exist) are checked by the engine's
//! fold, which names the offending code.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::envelope::{Actor, Source};
use crate::events::{IntakeKind, Priority, Tier};
use crate::upcast::DecodeError;

/// The business calendar a district uses when its file names none.
pub const DEFAULT_CALENDAR: &str = "cn";

/// The skill that covers every category.
pub const ANY_SKILL: &str = "*";

fn default_calendar() -> String {
    DEFAULT_CALENDAR.to_owned()
}

// ---------------------------------------------------------------------------------------
// The grid file
// ---------------------------------------------------------------------------------------

/// A city's grid: its cells, their supervisors, and its grid workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge grid file")]
pub struct GridFile {
    /// The city's display name.
    pub city: String,
    pub districts: Vec<DistrictCell>,
    /// Everyone who can be dispatched to: building grid workers, community staff, district
    /// department staff. A worker covers the cells it lists, whatever their tier.
    #[serde(default)]
    pub workers: Vec<GridWorker>,
}

/// The top tier: a district or street office (区/县, 街道).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistrictCell {
    /// Area code (6 digits) + street (3), e.g. `330106001`.
    #[schemars(length(min = 1))]
    pub code: String,
    pub name: String,
    /// The person who answers for the cell: the district duty leader, who takes whatever
    /// nobody else can (兜底).
    #[schemars(length(min = 1))]
    pub supervisor: String,
    /// The id of the business calendar its time limits count in.
    #[serde(default = "default_calendar")]
    pub calendar: String,
    /// The leadership a case is referred to when the district's own limit is breached
    /// (督办): the supervision unit and the leaders who answer for it. Districts only.
    /// Absent: the district cell's `supervisor` is named instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervision: Option<DistrictSupervision>,
    pub communities: Vec<CommunityCell>,
}

/// Who supervises (督办) the cases a district lets run past its own limit: a unit of the
/// district's leadership and the people in it. A case under supervision stays with the
/// district's handler; the unit oversees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistrictSupervision {
    /// The supervision unit, e.g. `区委督查室` or `区网格化服务管理中心`.
    #[schemars(length(min = 1, max = 100))]
    pub unit: String,
    /// Person ids of the leaders who answer for supervision (valid person ids, like a
    /// supervisor's), at least one, the first the lead.
    #[schemars(length(min = 1, max = 16))]
    pub leaders: Vec<String>,
    /// How to reach the unit (a duty phone), for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub contact: Option<String>,
}

/// Most leaders one district's supervision names.
pub const MAX_SUPERVISION_LEADERS: usize = 16;

/// The middle tier: a community or village (社区/村).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommunityCell {
    /// The district's code + community (3), e.g. `330106001001`.
    #[schemars(length(min = 1))]
    pub code: String,
    pub name: String,
    /// The community secretary or duty leader.
    #[schemars(length(min = 1))]
    pub supervisor: String,
    pub buildings: Vec<BuildingCell>,
}

/// The smallest cell: a building or courtyard (楼栋/院落).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildingCell {
    /// The community's code + cell (3), e.g. `330106001001001`.
    #[schemars(length(min = 1))]
    pub code: String,
    pub name: String,
    /// The building leader (楼栋长).
    #[schemars(length(min = 1))]
    pub supervisor: String,
}

/// A person who can be dispatched to: a grid worker (网格员), community staff, or district
/// department staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GridWorker {
    /// Staff id, unique in the grid, e.g. `w-330106001001001`.
    #[schemars(length(min = 1))]
    pub id: String,
    pub name: String,
    /// The unit the person belongs to, e.g. `市政公用 utilities` for district staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Codes of the cells the person covers, at any tier.
    #[schemars(length(min = 1))]
    pub cells: Vec<String>,
    /// What the person may be dispatched for: a category code (`drainage.blocked`), a
    /// dotted prefix of codes (`drainage` covers `drainage.blocked`), or `*` for everything.
    pub skills: Vec<String>,
    /// Whether the person can be dispatched to now.
    pub on_duty: bool,
}

// ---------------------------------------------------------------------------------------
// The category catalogue
// ---------------------------------------------------------------------------------------

/// The category catalogue file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge category catalogue")]
pub struct CategoryFile {
    pub categories: Vec<Category>,
}

/// Whose cell a case goes to first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoutingRule {
    /// A thing someone owns (a manhole cover, a lamp post): the owner first, then the
    /// territory (先属主后属地).
    Facility,
    /// Something that happens somewhere (rubbish, illegal parking) and every service request:
    /// the territory first, then the owner (先属地后属主).
    #[default]
    Event,
}

/// One case category: what it is, who may file it, and how it is routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Dotted code, e.g. `drainage.blocked`. Stable: intake messages name it.
    pub code: String,
    pub name: String,
    /// Which intake kinds may use this category.
    #[schemars(length(min = 1))]
    pub intake_kinds: Vec<IntakeKind>,
    /// The territorial tier (属地): the cell at this tier that contains the case's location
    /// answers for it on the territory's side. For an event it is where the case is normally
    /// handled.
    pub handling_tier: Tier,
    pub default_priority: Priority,
    /// Owner first (`facility`) or territory first (`event`, the default).
    #[serde(default)]
    pub routing: RoutingRule,
    /// The tier of the owning unit (属主), e.g. `district` for the utilities department
    /// that owns manhole covers. Absent: the same as `handling_tier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_tier: Option<Tier>,
    /// The name of the time-limit policy for this category, e.g. `standard`, `sanitation`,
    /// `urgent_facility`, `service_request`, `construction`. Absent: `standard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_policy: Option<String>,
    /// The skill a worker needs to be dispatched a case of this category. Absent: the
    /// category's own code (which a worker's prefix skill such as `drainage` covers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
}

/// The time-limit policy of a category that names none.
pub const DEFAULT_SLA_POLICY: &str = "standard";

impl Category {
    /// The tier of the owning unit: `owner_tier`, or `handling_tier` when absent.
    pub fn owner_tier(&self) -> Tier {
        self.owner_tier.unwrap_or(self.handling_tier)
    }

    /// The skill a worker needs: `skill`, or the category's code when absent.
    pub fn skill(&self) -> &str {
        self.skill.as_deref().unwrap_or(&self.code)
    }

    /// The time-limit policy's name: `sla_policy`, or `standard` when absent.
    pub fn sla_policy(&self) -> &str {
        self.sla_policy.as_deref().unwrap_or(DEFAULT_SLA_POLICY)
    }
}

// ---------------------------------------------------------------------------------------
// Grid events
// ---------------------------------------------------------------------------------------

/// One change to the grid at run time. Serialized adjacently:
/// `{"event_type": "grid.worker_duty_changed", "payload": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event_type", content = "payload")]
pub enum GridEvent {
    #[serde(rename = "grid.cell_added")]
    CellAdded(CellAdded),
    #[serde(rename = "grid.worker_registered")]
    WorkerRegistered(WorkerRegistered),
    #[serde(rename = "grid.worker_duty_changed")]
    WorkerDutyChanged(WorkerDutyChanged),
    #[serde(rename = "grid.worker_skills_changed")]
    WorkerSkillsChanged(WorkerSkillsChanged),
    #[serde(rename = "grid.worker_cells_changed")]
    WorkerCellsChanged(WorkerCellsChanged),
    #[serde(rename = "grid.district_supervision_changed")]
    DistrictSupervisionChanged(DistrictSupervisionChanged),
}

/// `(event_type, current schema version)` for every grid event.
pub const GRID_EVENT_CATALOGUE: &[(&str, u16)] = &[
    ("grid.cell_added", 1),
    ("grid.worker_registered", 1),
    ("grid.worker_duty_changed", 1),
    ("grid.worker_skills_changed", 1),
    ("grid.worker_cells_changed", 1),
    ("grid.district_supervision_changed", 1),
];

/// The schema version a freshly written grid event of this type carries.
pub fn current_grid_schema_version(event_type: &str) -> Option<u16> {
    GRID_EVENT_CATALOGUE
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, version)| *version)
}

impl GridEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::CellAdded(_) => "grid.cell_added",
            Self::WorkerRegistered(_) => "grid.worker_registered",
            Self::WorkerDutyChanged(_) => "grid.worker_duty_changed",
            Self::WorkerSkillsChanged(_) => "grid.worker_skills_changed",
            Self::WorkerCellsChanged(_) => "grid.worker_cells_changed",
            Self::DistrictSupervisionChanged(_) => "grid.district_supervision_changed",
        }
    }

    /// The version this crate writes for this event's type.
    pub fn schema_version(&self) -> u16 {
        current_grid_schema_version(self.event_type())
            .expect("every GridEvent variant is listed in GRID_EVENT_CATALOGUE")
    }
}

/// A new cell. A district has no parent; a community's parent is a district and a
/// building's a community, and the cell's code starts with its parent's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CellAdded {
    pub tier: Tier,
    #[schemars(length(min = 1))]
    pub code: String,
    pub name: String,
    /// The parent cell's code; absent for a district.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[schemars(length(min = 1))]
    pub supervisor: String,
    /// A district's business calendar id (`cn` when absent). Only for districts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
}

/// A person joins the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerRegistered {
    pub worker: GridWorker,
}

/// A worker goes on or off duty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerDutyChanged {
    pub worker_id: String,
    pub on_duty: bool,
}

/// A worker's skills are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerSkillsChanged {
    pub worker_id: String,
    pub skills: Vec<String>,
}

/// A worker's cells are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerCellsChanged {
    pub worker_id: String,
    #[schemars(length(min = 1))]
    pub cells: Vec<String>,
}

/// A district names (or renames) the leadership that supervises (督办) its overdue cases;
/// it replaces whatever the district named before. A grid file's `supervision` on a
/// district is loaded as this event, after the district's `grid.cell_added`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistrictSupervisionChanged {
    /// The district's code; only a district cell may name supervision.
    #[schemars(length(min = 1))]
    pub district: String,
    pub supervision: DistrictSupervision,
}

/// The envelope a grid event travels in, on the grid stream (`WANGGE_GRID`, subject
/// `wangge.grid.events`): one message per event, in the order the grid changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Wangge grid event envelope")]
pub struct GridEventEnvelope {
    /// Unique id of this event: derived (UUIDv8) from `source`, so a command sent twice
    /// names the same event.
    pub event_id: Uuid,
    /// The event type and its payload.
    #[serde(flatten)]
    pub event: GridEvent,
    /// Version of the payload's schema for this event type.
    #[schemars(range(min = 1))]
    pub schema_version: u16,
    /// When the change took effect, per the sender (when the engine recorded it if the
    /// sender did not say).
    pub occurred_at: DateTime<Utc>,
    /// When the engine recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Who made the change: an operator (`supervisor`) or a system (`system`).
    pub actor: Actor,
    /// The sending system and its own id for the command; the idempotency key.
    pub source: Source,
}

impl GridEventEnvelope {
    /// Wraps `event` at its current schema version.
    pub fn new(event_id: Uuid, event: GridEvent, meta: GridEventMeta) -> Self {
        let schema_version = event.schema_version();
        Self {
            event_id,
            event,
            schema_version,
            occurred_at: meta.occurred_at,
            recorded_at: meta.recorded_at,
            actor: meta.actor,
            source: meta.source,
        }
    }

    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }
}

/// Everything about a grid event but the event itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridEventMeta {
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub actor: Actor,
    pub source: Source,
}

/// The id of the grid event a source message becomes: a UUIDv8 from SHA-256 of the
/// source, so the same `(system, message_id)` always names the same event.
pub fn grid_event_id(source: &Source) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(b"wangge.grid.v1\0");
    hasher.update(source.system.as_bytes());
    hasher.update(b"\0");
    hasher.update(source.message_id.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

// ---------------------------------------------------------------------------------------
// Grid commands: how operators and other systems change the grid
// ---------------------------------------------------------------------------------------

/// The subject grid commands are sent to, by request-reply.
pub const GRID_COMMAND_SUBJECT: &str = "wangge.grid.commands";

/// Largest grid command accepted, in bytes of JSON.
pub const MAX_GRID_COMMAND_BYTES: usize = 64 * 1024;

/// Longest source system, message id or actor id, in characters.
pub const MAX_GRID_ID_CHARS: usize = 128;

/// Longest name of a cell or a worker, or a worker's department, in characters.
pub const MAX_GRID_NAME_CHARS: usize = 100;

/// Most cells one worker covers, and most skills one worker has.
pub const MAX_GRID_LIST_ITEMS: usize = 256;

/// One change to the grid, as an operator's tool or another system sends it to
/// `wangge.grid.commands`. It is the grid event it asks for without what the engine adds
/// (`event_id`, `recorded_at`); `schema_version` is the version of the event type's payload.
///
/// Unknown fields are refused, at the top level and in the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Wangge grid command", extend("unevaluatedProperties" = false))]
pub struct GridCommand {
    /// The event type and its payload.
    #[serde(flatten)]
    pub event: GridEvent,
    /// Version of the payload's schema for this event type (see the event's own schema).
    #[schemars(range(min = 1))]
    pub schema_version: u16,
    /// The sending system and its own id for this command, unique per system. The
    /// idempotency key: the same command sent again, a second or a month later, changes
    /// the grid once; the reply then says `duplicate: true`.
    pub source: Source,
    /// Who makes the change.
    pub actor: Actor,
    /// When the change takes effect; absent: when the engine records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// The top-level fields a [`GridCommand`] may have.
pub const GRID_COMMAND_FIELDS: &[&str] = &[
    "event_type",
    "payload",
    "schema_version",
    "source",
    "actor",
    "occurred_at",
];

/// The engine's answer to a grid command (the reply of request-reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[schemars(title = "Wangge grid command reply")]
pub enum GridReply {
    /// The change is on the grid stream (or, on a retry, already was).
    Accepted {
        /// The grid event's id.
        event_id: Uuid,
        event_type: String,
        /// The event's position on the grid stream.
        position: u64,
        /// True when this command was seen before and nothing new was written.
        duplicate: bool,
    },
    /// The command was refused and changed nothing; it is kept in the rejected stream.
    Rejected {
        /// Machine-readable reason, e.g. `unknown_worker`, `duplicate_cell`.
        code: String,
        /// JSON path of the offending field, e.g. `payload.worker_id`; absent for
        /// whole-message errors.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// Human-readable explanation.
        reason: String,
        /// Where the refused message is kept (its sequence in the rejected stream).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejected_id: Option<u64>,
    },
}

/// Decodes one stored grid event, refusing unknown types and versions this crate cannot read.
///
/// Every grid event type is at version 1, so there is nothing to upcast yet; when a version
/// is bumped its upcaster goes here, as for case events in [`crate::upcast`].
pub fn decode_grid_event(value: Value) -> Result<GridEventEnvelope, DecodeError> {
    let object = value.as_object().ok_or(DecodeError::NotAnObject)?;
    let event_type = object
        .get("event_type")
        .and_then(Value::as_str)
        .ok_or(DecodeError::MissingField("event_type"))?;
    let current = current_grid_schema_version(event_type)
        .ok_or_else(|| DecodeError::UnknownEventType(event_type.to_owned()))?;
    let stored = match object.get("schema_version") {
        None => return Err(DecodeError::MissingField("schema_version")),
        Some(version) => version.as_u64().ok_or_else(|| DecodeError::Invalid {
            path: "$.schema_version".to_owned(),
            reason: format!("schema_version must be a positive integer, found {version}"),
        })?,
    };
    if stored != u64::from(current) {
        return Err(DecodeError::UnsupportedVersion {
            event_type: event_type.to_owned(),
            version: stored,
            current,
        });
    }
    serde_path_to_error::deserialize::<_, GridEventEnvelope>(value).map_err(|e| {
        let path = e.path().to_string();
        DecodeError::Invalid {
            path: if path == "." {
                "$".to_owned()
            } else {
                format!("$.{path}")
            },
            reason: e.into_inner().to_string(),
        }
    })
}

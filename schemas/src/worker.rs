//! Grid workers' messages: the commands a worker's app sends about a task, the engine's
//! replies, and the task messages that land in a worker's inbox.
//!
//! - [`WorkerCommandV1`] is sent by request-reply to `wangge.workers.commands`; the engine
//!   answers with a [`WorkerReply`].
//! - [`TaskMessage`] is what the engine publishes to a worker's durable inbox,
//!   `wangge.tasks.<worker_id>` (stream `WANGGE_TASKS`), when a case is given to or taken
//!   from that worker.
//!
//! Like intake messages, every struct refuses unknown fields, so a misspelt field is an
//! error and not silently ignored. The limits below are part of the contract.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::envelope::{CaseId, GridLocation};
use crate::events::{MediaRef, Priority, SlaStep, SuspendReason, Tier, TimeLimit};

/// The worker-command schema version this engine reads.
pub const WORKER_SCHEMA_VERSION: u16 = 1;
/// The task-message schema version this engine writes.
pub const TASK_SCHEMA_VERSION: u16 = 1;
/// Largest worker command accepted, in bytes of JSON.
pub const MAX_WORKER_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest `message_id`, in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 128;
/// Longest worker id, in characters. A worker id is also a NATS subject token and part of a
/// JetStream consumer name, see [`is_valid_worker_id`].
pub const MAX_WORKER_ID_CHARS: usize = 64;
/// Longest resident id acting on a case (the intake limit for ids).
pub const MAX_RESIDENT_ID_CHARS: usize = 128;
/// Longest reason (decline, extension, escalation), in characters.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest notes or note (resolution, verification, suspension, resumption), in characters.
pub const MAX_NOTES_CHARS: usize = 2000;
/// Most media references on one resolution.
pub const MAX_RESULT_MEDIA: usize = 10;

/// Whether `id` can name a worker: 1 to [`MAX_WORKER_ID_CHARS`] ASCII letters, digits, `-`
/// or `_`. Worker ids become the last token of the inbox subject `wangge.tasks.<worker_id>`
/// and part of the inbox consumer's name `inbox-<worker_id>`, where dots, wildcards,
/// whitespace and path separators are not allowed.
pub fn is_valid_worker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_WORKER_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A person acting on a case: a grid worker (or the supervisor of the case's cell), or the
/// resident who reported it (who may only verify the result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge worker command")]
pub struct WorkerCommandV1 {
    #[schemars(schema_with = "worker_version_one_schema")]
    pub schema_version: u16,
    /// The sender's own id for this message, unique per sender (a UUID is a good choice).
    /// It is the idempotency key: sending the same message again, a second or a month
    /// later, never acts twice; the reply then says `duplicate: true`.
    #[schemars(length(min = 1, max = MAX_MESSAGE_ID_CHARS))]
    pub message_id: String,
    /// The acting person: a grid worker's or supervisor's staff id — 1 to 64 ASCII letters,
    /// digits, `-` or `_`, as it names the worker's inbox — or, when `acting_as` is
    /// `resident`, the resident's account id as the reporting system gave it (up to 128
    /// characters).
    #[schemars(length(min = 1, max = MAX_RESIDENT_ID_CHARS))]
    pub worker_id: String,
    /// In which role the person acts; a grid worker unless stated.
    #[serde(default)]
    pub acting_as: ActingAs,
    pub case_id: CaseId,
    pub command: WorkerCommand,
}

/// The role of the person sending a [`WorkerCommandV1`]. Whether a grid worker is the
/// supervisor of the case's cell is looked up by the engine, never taken from the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActingAs {
    #[default]
    GridWorker,
    /// The resident who reported the case (verification only).
    Resident,
}

/// What the person does. Serialized with its name in `type`:
/// `{"type": "decline", "reason": "not my building"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkerCommand {
    /// Take the dispatched task.
    Acknowledge {},
    /// Refuse the dispatched task (回退); it goes back for dispatch.
    Decline {
        #[schemars(length(min = 1, max = MAX_REASON_CHARS))]
        reason: String,
    },
    /// Start handling an acknowledged task (处置).
    Start {},
    /// Stop the clock: waiting for the resident, for parts, or parked (挂账).
    Suspend {
        reason: SuspendReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_NOTES_CHARS))]
        note: Option<String>,
    },
    /// Ask for more time on a step (延期申请). From the assignee this is recorded on the case
    /// as a request (a comment) for the supervisor to grant; from the supervisor of the
    /// case's cell it is the grant itself.
    RequestExtension {
        step: SlaStep,
        extension: TimeLimit,
        #[schemars(length(min = 1, max = MAX_REASON_CHARS))]
        reason: String,
    },
    /// Start the clock again after a suspension.
    Resume {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_NOTES_CHARS))]
        note: Option<String>,
    },
    /// Report the result (反馈), with photos or documents of it.
    Resolve {
        #[schemars(length(min = 1, max = MAX_NOTES_CHARS))]
        notes: String,
        #[serde(default)]
        #[schemars(length(max = MAX_RESULT_MEDIA))]
        media: Vec<MediaRef>,
    },
    /// Hand the case up to the next tier of the grid (大事全网联动): the parent cell of the
    /// case's current cell takes it and dispatches it again.
    AskToEscalate {
        #[schemars(length(min = 1, max = MAX_REASON_CHARS))]
        reason: String,
    },
    /// Check a resolved case (核查): a pass closes it, a failure sends it back for rework and
    /// must say what to rework in `notes`.
    Verify {
        passed: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = MAX_NOTES_CHARS))]
        notes: Option<String>,
    },
}

impl WorkerCommand {
    /// Every command name, as written in `type`.
    pub const NAMES: [&'static str; 9] = [
        "acknowledge",
        "decline",
        "start",
        "suspend",
        "request_extension",
        "resume",
        "resolve",
        "ask_to_escalate",
        "verify",
    ];

    /// The stable snake_case name, as written in `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Acknowledge {} => "acknowledge",
            Self::Decline { .. } => "decline",
            Self::Start {} => "start",
            Self::Suspend { .. } => "suspend",
            Self::RequestExtension { .. } => "request_extension",
            Self::Resume { .. } => "resume",
            Self::Resolve { .. } => "resolve",
            Self::AskToEscalate { .. } => "ask_to_escalate",
            Self::Verify { .. } => "verify",
        }
    }
}

/// Most tasks one inbox request returns.
pub const MAX_INBOX_FETCH: usize = 100;
/// Longest an inbox request waits for a first task, in seconds.
pub const MAX_INBOX_WAIT_SECONDS: u64 = 20;

/// A worker's request to `wangge.workers.inbox`: acknowledge the tasks received before
/// (their `receipt`s), then fetch the next ones. For workers who reach the engine through
/// their NATS account's import and have no JetStream access of their own: the engine reads
/// the worker's durable inbox for them, and under proven identities only their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge worker inbox request")]
pub struct InboxRequestV1 {
    /// The worker whose inbox it is. Under proven identities it may be left out (the
    /// authenticated worker's own) and must otherwise be that worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Most tasks to return (0 to acknowledge only), at most [`MAX_INBOX_FETCH`].
    #[serde(default = "default_inbox_fetch")]
    pub max: usize,
    /// Seconds to wait for a first task when none is waiting, at most
    /// [`MAX_INBOX_WAIT_SECONDS`].
    #[serde(default)]
    pub wait_seconds: u64,
    /// Receipts of tasks received: they are not delivered again. A task not acknowledged
    /// within 30 seconds of its delivery is delivered again.
    #[serde(default)]
    #[schemars(length(max = MAX_INBOX_FETCH))]
    pub ack: Vec<String>,
}

fn default_inbox_fetch() -> usize {
    20
}

/// The engine's answer to an [`InboxRequestV1`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[schemars(title = "Wangge worker inbox reply")]
pub enum InboxReply {
    Tasks {
        /// How many receipts were acknowledged.
        acknowledged: usize,
        tasks: Vec<DeliveredTask>,
    },
    Rejected {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        reason: String,
    },
}

/// One task message from an inbox, with the receipt that acknowledges it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeliveredTask {
    pub task: TaskMessage,
    /// Opaque: send it back in `ack` once the task is safely received.
    pub receipt: String,
}

/// The engine's answer to a [`WorkerCommandV1`] (the reply of request-reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[schemars(title = "Wangge worker reply")]
pub enum WorkerReply {
    /// The command was carried out (or, on a retry of the same `message_id`, had been).
    Accepted {
        case_id: CaseId,
        /// The case's sequence number after the command.
        sequence: u64,
        /// True when this message was seen before and nothing new was written.
        duplicate: bool,
    },
    /// The command was refused and nothing was written.
    Rejected {
        /// Machine-readable reason, e.g. `not_assignee`, `invalid_transition`,
        /// `missing_field`.
        code: String,
        /// JSON path of the offending field, e.g. `command.reason`; absent when the problem
        /// is not one field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// Human-readable explanation, naming who may act when the sender may not.
        reason: String,
    },
}

/// One message in a worker's task inbox (`wangge.tasks.<worker_id>`).
///
/// Messages about one case follow the case's own order; each carries the case `sequence`
/// it reflects, so a reader that keeps, per case, only the message with the highest
/// sequence always knows whether the task is currently theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge task message")]
pub struct TaskMessage {
    #[schemars(schema_with = "task_version_one_schema")]
    pub schema_version: u16,
    pub kind: TaskKind,
    /// The worker whose inbox this is.
    pub worker_id: String,
    pub case_id: CaseId,
    /// The case event this message reflects, e.g. `case.dispatched`.
    pub event_type: String,
    /// The case's sequence number of that event.
    pub sequence: u64,
    /// When that event happened.
    pub occurred_at: DateTime<Utc>,
    pub title: String,
    pub description: String,
    /// The category set at acceptance (the reported one if the case was never accepted).
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    pub location: GridLocation,
    /// The tier and cell the task belongs (or, for `withdrawn`, belonged) to.
    pub tier: Tier,
    pub cell: String,
    /// When the case was dispatched (or reassigned) to this worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_at: Option<DateTime<Utc>>,
    /// Why the task was withdrawn or sent back, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What happened to the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// The case was dispatched or reassigned to this worker: acknowledge or decline it.
    Assigned,
    /// The case is no longer this worker's: reassigned, escalated, declined, closed, voided.
    Withdrawn,
    /// Verification failed (返工): the case is back with this worker for rework.
    ReworkRequested,
    /// 督办: the district let the case run past its limit and its leadership now supervises
    /// it; the case stays this worker's (`reason` names the unit and the breached step).
    Supervised,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Withdrawn => "withdrawn",
            Self::ReworkRequested => "rework_requested",
            Self::Supervised => "supervised",
        }
    }
}

fn worker_version_one_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "integer", "const": WORKER_SCHEMA_VERSION })
}

fn task_version_one_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "integer", "const": TASK_SCHEMA_VERSION })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn command(body: serde_json::Value) -> Result<WorkerCommandV1, serde_json::Error> {
        serde_json::from_value(json!({
            "schema_version": 1,
            "message_id": "m-1",
            "worker_id": "wang-li",
            "case_id": "01936b2e-7c1a-7d2b-9c3f-2a1b3c4d5e6f",
            "command": body,
        }))
    }

    #[test]
    fn every_command_round_trips_with_its_name_in_type() {
        let bodies = [
            json!({"type": "acknowledge"}),
            json!({"type": "decline", "reason": "not my building"}),
            json!({"type": "start"}),
            json!({"type": "suspend", "reason": "waiting_for_parts", "note": "lamp ordered"}),
            json!({"type": "request_extension", "step": "resolve",
                   "extension": {"amount": 2, "unit": "working_days"}, "reason": "parts"}),
            json!({"type": "resume"}),
            json!({"type": "resolve", "notes": "replaced", "media": [{"kind": "photo", "url": "s3://a"}]}),
            json!({"type": "ask_to_escalate", "reason": "needs the housing department"}),
            json!({"type": "verify", "passed": false, "notes": "still dark"}),
        ];
        for (body, name) in bodies.into_iter().zip(WorkerCommand::NAMES) {
            let parsed = command(body.clone()).expect("parses");
            assert_eq!(parsed.command.name(), name);
            assert_eq!(parsed.acting_as, ActingAs::GridWorker);
            let back = serde_json::to_value(&parsed.command).expect("serializes");
            assert_eq!(back, body);
        }
    }

    #[test]
    fn unknown_fields_are_refused_in_the_message_and_in_the_command() {
        assert!(command(json!({"type": "acknowledge", "note": "x"})).is_err());
        assert!(command(json!({"type": "start", "when": "now"})).is_err());
        assert!(command(json!({"type": "decline", "reason": "r", "extra": 1})).is_err());
        let with_extra: Result<WorkerCommandV1, _> = serde_json::from_value(json!({
            "schema_version": 1, "message_id": "m", "worker_id": "w",
            "case_id": "01936b2e-7c1a-7d2b-9c3f-2a1b3c4d5e6f",
            "command": {"type": "start"}, "urgent": true,
        }));
        assert!(with_extra.is_err());
    }

    fn validator<T: JsonSchema>() -> jsonschema::Validator {
        let schema = schemars::generate::SchemaSettings::draft2020_12()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the schema compiles")
    }

    #[test]
    fn the_generated_schemas_agree_with_serde() {
        let commands = validator::<WorkerCommandV1>();
        let message = json!({
            "schema_version": 1, "message_id": "m-1", "worker_id": "wang-li",
            "acting_as": "grid_worker", "case_id": "01936b2e-7c1a-7d2b-9c3f-2a1b3c4d5e6f",
            "command": {"type": "suspend", "reason": "waiting_for_resident"},
        });
        assert!(commands.is_valid(&message));
        let mut unknown = message.clone();
        unknown["command"]["minutes"] = json!(5);
        assert!(
            !commands.is_valid(&unknown),
            "unknown command fields are refused"
        );
        let mut version = message.clone();
        version["schema_version"] = json!(2);
        assert!(!commands.is_valid(&version));
        let mut blank = message;
        blank["worker_id"] = json!("");
        assert!(!commands.is_valid(&blank));

        let replies = validator::<WorkerReply>();
        let rejected = WorkerReply::Rejected {
            code: "not_assignee".to_owned(),
            field: None,
            reason: "`zhao` may not `acknowledge` this case".to_owned(),
        };
        assert!(replies.is_valid(&serde_json::to_value(rejected).unwrap()));

        let tasks = validator::<TaskMessage>();
        let task = json!({
            "schema_version": 1, "kind": "assigned", "worker_id": "wang-li",
            "case_id": "01936b2e-7c1a-7d2b-9c3f-2a1b3c4d5e6f", "event_type": "case.dispatched",
            "sequence": 3, "occurred_at": "2026-03-12T08:15:42Z", "title": "楼道灯坏了",
            "description": "", "category": "lighting.stairwell", "priority": "high",
            "location": {"district": "110101001", "community": "110101001002",
                         "building": "110101001002007"},
            "tier": "building", "cell": "110101001002007",
            "dispatched_at": "2026-03-12T08:15:42Z",
        });
        assert!(tasks.is_valid(&task));
        let parsed: TaskMessage = serde_json::from_value(task).expect("parses");
        assert_eq!(parsed.kind, TaskKind::Assigned);
    }

    #[test]
    fn worker_ids_are_subject_tokens() {
        assert!(is_valid_worker_id("wang-li"));
        assert!(is_valid_worker_id("GW_110101_007"));
        for bad in [
            "",
            "wang.li",
            "wang li",
            "a*",
            "a>",
            "a/b",
            "王丽",
            &"x".repeat(65),
        ] {
            assert!(!is_valid_worker_id(bad), "{bad:?} must be refused");
        }
    }
}

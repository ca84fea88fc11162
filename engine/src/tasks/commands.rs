//! A worker's command, from bytes to a committed event or a refusal that names the reason.
//!
//! 1. [`parse_worker_command`] (pure): bytes → [`WorkerCommandV1`], or a [`WorkerRejection`]
//!    naming the code and the field. Checks run outside in: size, JSON syntax, schema
//!    version, command type, shape, ids and text limits.
//! 2. [`translate`] (pure): the message and the case as it stands → the [`CaseCommand`], the
//!    [`Actor`] and the [`Source`] of its events.
//! 3. [`WorkerCommandService`]: loads the case, asks the [`SupervisorDirectory`], runs
//!    [`authorize`], and commits with [`CaseService::handle_if_unchanged`] at the version it
//!    authorized against, so "this person may do this" still holds at the commit.
//!
//! Two mappings are choices, documented here and in the schema:
//!
//! - `request_extension` (延期申请): from the assignee it is a *request*. It is recorded on the
//!   case as a `case.comment_added` whose text starts with [`EXTENSION_REQUEST_PREFIX`] and
//!   changes no deadline; the request must pass every rule a grant would (an open, accepted
//!   case; an amount of at least 1; a reason). Granting is the supervisor's: the same message
//!   from a supervisor of the case's cell becomes `case.extension_granted`. This is how city
//!   systems run it — the handling unit applies, the supervising centre approves.
//! - `ask_to_escalate`: escalates to the parent tier, to the parent cell of the case's current
//!   cell. Cell codes are hierarchical prefixes (district 9 digits, community 12, building
//!   15), so a building's community is its first 12 digits and a community's district its
//!   first 9. At the district, the top of the grid, the aggregate refuses with
//!   `not_an_escalation`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{debug, info};
use wangge_schemas::worker::{
    is_valid_worker_id, ActingAs, WorkerCommand, WorkerCommandV1, WorkerReply,
    MAX_MESSAGE_ID_CHARS, MAX_NOTES_CHARS, MAX_REASON_CHARS, MAX_RESIDENT_ID_CHARS,
    MAX_RESULT_MEDIA, MAX_WORKER_ID_CHARS, MAX_WORKER_MESSAGE_BYTES, WORKER_SCHEMA_VERSION,
};
use wangge_schemas::{Actor, GridLocation, Source, Tier, TimeUnit};

use crate::app::{CaseService, CommandError, CommandRequest};
use crate::domain::authorize::{authorize, case_cell, reporting_resident, reporting_system};
use crate::domain::{decide, replay, CaseCommand, CaseState, DomainError};
use crate::log::EventLog;
use crate::nats::{IdentityPolicy, IdentityRefusal, Party, Sender};

/// The `system` of the [`Source`] of a worker's events is this prefix and the worker id
/// (`worker:wang-li`): each worker's app is a publisher of its own, so two workers may
/// reuse a message id without one's command passing for a retry of the other's.
pub const WORKER_SOURCE_PREFIX: &str = "worker:";

/// The text a worker's extension request starts with on the case.
pub const EXTENSION_REQUEST_PREFIX: &str = "extension requested (延期申请)";

/// How often a command is tried again when the case moved on between authorizing it and
/// committing it.
const MAX_ATTEMPTS: usize = 8;

/// Why a worker's message was refused: a stable code, the field, and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRejection {
    pub code: String,
    /// JSON path of the offending field (`command.reason`), `None` for the whole message.
    pub field: Option<String>,
    pub reason: String,
}

impl WorkerRejection {
    fn new(code: &str, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }

    fn at(code: &str, field: &str, reason: impl Into<String>) -> Self {
        Self::new(code, Some(field), reason)
    }

    pub fn into_reply(self) -> WorkerReply {
        WorkerReply::Rejected {
            code: self.code,
            field: self.field,
            reason: self.reason,
        }
    }
}

impl From<IdentityRefusal> for WorkerRejection {
    fn from(refusal: IdentityRefusal) -> Self {
        Self::new(refusal.code, refusal.field, refusal.reason)
    }
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// Checks a worker command's bytes and reads them, or says what is wrong and where.
///
/// Codes: `payload_too_large`, `malformed_json`, `invalid_type`, `missing_field`,
/// `unsupported_version`, `unknown_command`, `unknown_field`, `invalid_value`, `control_character`, `empty_text`,
/// `text_too_long`, `too_many_items`.
pub fn parse_worker_command(bytes: &[u8]) -> Result<WorkerCommandV1, WorkerRejection> {
    if bytes.len() > MAX_WORKER_MESSAGE_BYTES {
        return Err(WorkerRejection::new(
            "payload_too_large",
            None,
            format!(
                "message is {} bytes, the limit is {MAX_WORKER_MESSAGE_BYTES}",
                bytes.len()
            ),
        ));
    }
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| {
        WorkerRejection::new(
            "malformed_json",
            None,
            format!("message is not valid json: {e}"),
        )
    })?;
    if let Some((field, c)) = wangge_domain::text::find_control_character(&value) {
        let reason = wangge_domain::text::control_character_reason(&field, c);
        return Err(WorkerRejection::new(
            "control_character",
            Some(&field),
            reason,
        ));
    }
    read_legacy_minutes(&mut value);
    let Value::Object(object) = &value else {
        return Err(WorkerRejection::new(
            "invalid_type",
            None,
            format!("message must be a json object, found {}", json_type(&value)),
        ));
    };
    read_schema_version(object.get("schema_version"))?;
    read_command_type(object.get("command"))?;
    let command = object.get("command").cloned();
    let message: WorkerCommandV1 = typed(value).map_err(|rejection| {
        // Inside the internally tagged command serde loses the path; ask again in a shape
        // that keeps it.
        match (rejection.field.as_deref(), &command) {
            (Some("command"), Some(command)) => command_rejection(command).unwrap_or(rejection),
            _ => rejection,
        }
    })?;
    check_limits(&message)?;
    Ok(message)
}

/// An extension request written before units meant one thing each said `minutes`, which for
/// an extension always meant working minutes (the step's own measure on the handling steps
/// extensions are asked for): read it as `working_minutes`, the unit's name today.
fn read_legacy_minutes(value: &mut Value) {
    let unit = value
        .get_mut("command")
        .and_then(|command| command.get_mut("extension"))
        .and_then(|extension| extension.get_mut("unit"));
    if let Some(unit) = unit {
        if unit.as_str() == Some("minutes") {
            *unit = Value::from("working_minutes");
        }
    }
}

fn read_schema_version(value: Option<&Value>) -> Result<(), WorkerRejection> {
    match value {
        None => Err(WorkerRejection::at(
            "missing_field",
            "schema_version",
            "field `schema_version` is required",
        )),
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(WORKER_SCHEMA_VERSION)) => Ok(()),
        Some(Value::Number(n)) => Err(WorkerRejection::at(
            "unsupported_version",
            "schema_version",
            format!(
                "schema version {n} is not supported; this engine reads version {WORKER_SCHEMA_VERSION}"
            ),
        )),
        Some(other) => Err(WorkerRejection::at(
            "invalid_type",
            "schema_version",
            format!(
                "`schema_version` must be an integer, found {}",
                json_type(other)
            ),
        )),
    }
}

fn read_command_type(command: Option<&Value>) -> Result<(), WorkerRejection> {
    let known = || WorkerCommand::NAMES.join(", ");
    let object = match command {
        None => {
            return Err(WorkerRejection::at(
                "missing_field",
                "command",
                "field `command` is required",
            ))
        }
        Some(Value::Object(object)) => object,
        Some(other) => {
            return Err(WorkerRejection::at(
                "invalid_type",
                "command",
                format!(
                    "`command` must be an object such as {{\"type\": \"acknowledge\"}}, found {}",
                    json_type(other)
                ),
            ))
        }
    };
    match object.get("type") {
        None => Err(WorkerRejection::at(
            "missing_field",
            "command.type",
            format!("field `command.type` is required; one of: {}", known()),
        )),
        Some(Value::String(name)) if WorkerCommand::NAMES.contains(&name.as_str()) => Ok(()),
        Some(Value::String(name)) => Err(WorkerRejection::at(
            "unknown_command",
            "command.type",
            format!("unknown command `{name}`; known commands: {}", known()),
        )),
        Some(other) => Err(WorkerRejection::at(
            "invalid_type",
            "command.type",
            format!(
                "`command.type` must be a string, found {}",
                json_type(other)
            ),
        )),
    }
}

/// Deserializes, turning serde's message into a code and a field path.
fn typed<T: DeserializeOwned>(value: Value) -> Result<T, WorkerRejection> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
        let path = error.path().to_string();
        classify_serde_error(&path, &error.inner().to_string())
    })
}

/// serde_json reports shape errors as text; its wording is stable and names the field.
fn classify_serde_error(path: &str, message: &str) -> WorkerRejection {
    let parent = (path != ".").then_some(path);
    let join = |name: &str| match parent {
        Some(parent) => format!("{parent}.{name}"),
        None => name.to_owned(),
    };
    if let Some(name) = backticked_after(message, "missing field ") {
        return WorkerRejection::at(
            "missing_field",
            &join(name),
            format!("field `{}` is required", join(name)),
        );
    }
    if let Some(name) = backticked_after(message, "unknown field ") {
        // The path already ends at the unknown field.
        let field = parent.map_or_else(|| name.to_owned(), str::to_owned);
        return WorkerRejection::at("unknown_field", &field, message.to_owned());
    }
    let code = if message.starts_with("invalid type") {
        "invalid_type"
    } else {
        "invalid_value"
    };
    WorkerRejection::new(code, parent, message.to_owned())
}

/// The command's own shape, read externally tagged (`{"suspend": {"reason": ...}}`) so that
/// serde reports the path of the field at fault. Checked against [`WorkerCommand`] by the
/// compiler (`remote`): a field added there must be added here.
#[derive(serde::Deserialize)]
#[serde(
    remote = "WorkerCommand",
    rename_all = "snake_case",
    deny_unknown_fields
)]
#[allow(dead_code)]
enum ExternallyTagged {
    Acknowledge {},
    Decline {
        reason: String,
    },
    Start {},
    Suspend {
        reason: wangge_schemas::SuspendReason,
        #[serde(default)]
        note: Option<String>,
    },
    RequestExtension {
        step: wangge_schemas::SlaStep,
        extension: wangge_schemas::TimeLimit,
        reason: String,
    },
    Resume {
        #[serde(default)]
        note: Option<String>,
    },
    Resolve {
        notes: String,
        #[serde(default)]
        media: Vec<wangge_schemas::MediaRef>,
    },
    AskToEscalate {
        reason: String,
    },
    Verify {
        passed: bool,
        #[serde(default)]
        notes: Option<String>,
    },
}

/// Read only for its error: the command itself comes from the whole message.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct ExternalCommand(#[serde(with = "ExternallyTagged")] WorkerCommand);

/// The precise refusal of a command object whose `type` is known, or `None` if it reads.
fn command_rejection(command: &Value) -> Option<WorkerRejection> {
    let mut body = command.as_object()?.clone();
    let name = body.remove("type")?.as_str()?.to_owned();
    let external = serde_json::json!({ name.clone(): body });
    let error = serde_path_to_error::deserialize::<_, ExternalCommand>(external).err()?;
    let path = error.path().to_string();
    let inner = path
        .strip_prefix(name.as_str())
        .map_or(path.as_str(), |rest| rest.trim_start_matches('.'));
    let path = if inner.is_empty() {
        "command".to_owned()
    } else {
        format!("command.{inner}")
    };
    Some(classify_serde_error(&path, &error.inner().to_string()))
}

fn backticked_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split('`').next()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), WorkerRejection> {
    if text.trim().is_empty() {
        return Err(WorkerRejection::at(
            "empty_text",
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(WorkerRejection::at(
            "text_too_long",
            field,
            format!("`{field}` is {chars} characters, the limit is {max_chars}"),
        ));
    }
    Ok(())
}

fn check_optional_text(
    field: &str,
    text: &Option<String>,
    max_chars: usize,
) -> Result<(), WorkerRejection> {
    match text {
        Some(text) => check_text(field, text, max_chars),
        None => Ok(()),
    }
}

fn check_limits(message: &WorkerCommandV1) -> Result<(), WorkerRejection> {
    check_text("message_id", &message.message_id, MAX_MESSAGE_ID_CHARS)?;
    if message.acting_as == ActingAs::Resident {
        check_text("worker_id", &message.worker_id, MAX_RESIDENT_ID_CHARS)?;
    } else if !is_valid_worker_id(&message.worker_id) {
        return Err(WorkerRejection::at(
            "invalid_value",
            "worker_id",
            format!(
                "`worker_id` must be 1 to {MAX_WORKER_ID_CHARS} ASCII letters, digits, `-` or `_` (it names the worker's inbox subject), got `{}`",
                message.worker_id
            ),
        ));
    }
    match &message.command {
        WorkerCommand::Acknowledge {} | WorkerCommand::Start {} => Ok(()),
        WorkerCommand::Decline { reason } | WorkerCommand::AskToEscalate { reason } => {
            check_text("command.reason", reason, MAX_REASON_CHARS)
        }
        WorkerCommand::Suspend { note, .. } | WorkerCommand::Resume { note } => {
            check_optional_text("command.note", note, MAX_NOTES_CHARS)
        }
        WorkerCommand::RequestExtension {
            extension, reason, ..
        } => {
            if extension.amount == 0 {
                return Err(WorkerRejection::at(
                    "invalid_value",
                    "command.extension.amount",
                    "`command.extension.amount` must be at least 1",
                ));
            }
            check_text("command.reason", reason, MAX_REASON_CHARS)
        }
        WorkerCommand::Resolve { notes, media } => {
            check_text("command.notes", notes, MAX_NOTES_CHARS)?;
            if media.len() > MAX_RESULT_MEDIA {
                return Err(WorkerRejection::at(
                    "too_many_items",
                    "command.media",
                    format!(
                        "{} media references, the limit is {MAX_RESULT_MEDIA}",
                        media.len()
                    ),
                ));
            }
            media.iter().enumerate().try_for_each(|(index, item)| {
                check_text(&format!("command.media[{index}].url"), &item.url, 2048)
            })
        }
        WorkerCommand::Verify { passed, notes } => {
            check_optional_text("command.notes", notes, MAX_NOTES_CHARS)?;
            if !passed && notes.is_none() {
                return Err(WorkerRejection::at(
                    "missing_field",
                    "command.notes",
                    "a failed verification must say what to rework in `command.notes`",
                ));
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Translation
// ---------------------------------------------------------------------------------------

/// A worker's message as the aggregate understands it.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    pub command: CaseCommand,
    pub actor: Actor,
    pub source: Source,
    /// A command whose rules this one must pass as well without being run: a worker's
    /// extension request must be one a supervisor could grant.
    pub must_also_allow: Option<CaseCommand>,
}

/// The source of a worker's events: `worker:<worker_id>` and the sender's message id.
pub fn worker_source(message: &WorkerCommandV1) -> Source {
    Source {
        system: format!("{WORKER_SOURCE_PREFIX}{}", message.worker_id),
        message_id: message.message_id.clone(),
    }
}

/// Turns a worker's message into the case command it stands for. Pure.
///
/// `actor_supervises_case_cell` is the grid's answer for the sender and
/// [`case_cell`]`(state)`. A supervisor who is not the assignee acts *for* the assignee: the
/// events name the assignee as the worker and the supervisor as the actor. Whether anyone
/// may send it is [`authorize`]'s question, asked next.
pub fn translate(
    message: &WorkerCommandV1,
    state: &CaseState,
    actor_supervises_case_cell: bool,
) -> Translated {
    let id = message.worker_id.as_str();
    let is_assignee = state.assignee.as_deref() == Some(id);
    let supervising = actor_supervises_case_cell && !is_assignee;
    let actor = match message.acting_as {
        ActingAs::Resident => Actor::resident(id),
        ActingAs::GridWorker if supervising => Actor::supervisor(id),
        ActingAs::GridWorker => Actor::grid_worker(id),
    };
    // The worker the handler's commands name: the assignee, when a supervisor acts for them.
    let handler = match (&state.assignee, supervising) {
        (Some(assignee), true) => assignee.clone(),
        _ => id.to_owned(),
    };
    let mut must_also_allow = None;
    let command = match &message.command {
        WorkerCommand::Acknowledge {} => CaseCommand::Acknowledge { worker_id: handler },
        WorkerCommand::Decline { reason } => CaseCommand::Decline {
            worker_id: handler,
            reason: reason.clone(),
        },
        WorkerCommand::Start {} => CaseCommand::StartHandling { worker_id: handler },
        WorkerCommand::Suspend { reason, note } => CaseCommand::Suspend {
            reason: *reason,
            note: note.clone(),
        },
        WorkerCommand::Resume { note } => CaseCommand::Resume { note: note.clone() },
        WorkerCommand::Resolve { notes, media } => CaseCommand::Resolve {
            worker_id: handler,
            notes: notes.clone(),
            media: media.clone(),
        },
        WorkerCommand::RequestExtension {
            step,
            extension,
            reason,
        } => {
            let grant = CaseCommand::GrantExtension {
                step: *step,
                extension: *extension,
                reason: reason.clone(),
            };
            if supervising {
                grant
            } else {
                must_also_allow = Some(grant);
                CaseCommand::Comment {
                    text: format!(
                        "{EXTENSION_REQUEST_PREFIX}: {} {} more for step {}: {reason}",
                        extension.amount,
                        unit_name(extension.unit),
                        serde_name(step),
                    ),
                }
            }
        }
        WorkerCommand::AskToEscalate { reason } => {
            let from_tier = state.tier.unwrap_or(Tier::Building);
            let current = case_cell(state).unwrap_or_default();
            // At the top there is nowhere to go: the aggregate says so (`not_an_escalation`).
            let (to_tier, cell) = parent_cell(from_tier, current, state.location.as_ref())
                .unwrap_or((from_tier, current.to_owned()));
            CaseCommand::Escalate {
                to_tier,
                cell,
                reason: reason.clone(),
            }
        }
        WorkerCommand::Verify { passed, notes } => CaseCommand::Verify {
            verifier: id.to_owned(),
            passed: *passed,
            notes: notes.clone(),
        },
    };
    Translated {
        command,
        actor,
        source: worker_source(message),
        must_also_allow,
    }
}

/// The tier above `tier` and the cell of that tier containing `cell`: the code's prefix
/// (district 9 digits, community 12, building 15), or the case's location when the cell
/// code is not in that scheme. `None` at the district.
pub fn parent_cell(
    tier: Tier,
    cell: &str,
    location: Option<&GridLocation>,
) -> Option<(Tier, String)> {
    let parent = tier.parent()?;
    let (own_len, parent_len) = match tier {
        Tier::Building => (15, 12),
        Tier::Community => (12, 9),
        Tier::District => return None,
    };
    if cell.len() == own_len && cell.bytes().all(|b| b.is_ascii_digit()) {
        return Some((parent, cell[..parent_len].to_owned()));
    }
    let location = location?;
    let code = match parent {
        Tier::Community => &location.community,
        Tier::District => &location.district,
        Tier::Building => return None,
    };
    Some((parent, code.clone()))
}

fn unit_name(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::WorkingMinutes => "working minutes",
        TimeUnit::WorkingHours => "working hours",
        TimeUnit::WorkingDays => "working days",
        TimeUnit::ClockMinutes => "clock minutes",
        TimeUnit::ClockHours => "clock hours",
        TimeUnit::CalendarDays => "calendar days",
    }
}

fn serde_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Supervision
// ---------------------------------------------------------------------------------------

/// Who supervises which grid cell. The grid directory implements it; the engine asks it
/// about the case's current cell ([`case_cell`]).
pub trait SupervisorDirectory: Send + Sync + 'static {
    /// Whether `person` supervises `cell` (a district, community or building code).
    fn supervises(&self, person: &str, cell: &str) -> bool;
}

/// The grid's own supervisors: a person supervises a cell when they are named its supervisor
/// or the supervisor of a cell above it (a community's secretary answers for its buildings).
impl SupervisorDirectory for crate::grid::GridDirectory {
    fn supervises(&self, person: &str, cell: &str) -> bool {
        let mut current = self.cell(cell);
        while let Some(found) = current {
            if found.supervisor == person {
                return true;
            }
            current = self.parent(&found.code);
        }
        false
    }
}

/// Nobody supervises anything: only assignees (and reporters, for verification) may act.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSupervisors;

impl SupervisorDirectory for NoSupervisors {
    fn supervises(&self, _person: &str, _cell: &str) -> bool {
        false
    }
}

/// Person → the cells they supervise. Cell codes are hierarchical prefixes, so a person who
/// supervises a community (or district) also supervises every cell inside it.
impl SupervisorDirectory for HashMap<String, Vec<String>> {
    fn supervises(&self, person: &str, cell: &str) -> bool {
        self.get(person).is_some_and(|cells| {
            cells
                .iter()
                .any(|own| !own.is_empty() && cell.starts_with(own.as_str()))
        })
    }
}

/// The simplest directory, for tests and small set-ups: person → the cell codes they
/// supervise (prefix rule above).
pub type MapSupervisors = HashMap<String, Vec<String>>;

impl<T: SupervisorDirectory + ?Sized> SupervisorDirectory for Arc<T> {
    fn supervises(&self, person: &str, cell: &str) -> bool {
        (**self).supervises(person, cell)
    }
}

// ---------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------

/// Processes one worker command end to end: parse, load, authorize, commit, reply.
pub struct WorkerCommandService<L, D> {
    cases: Arc<CaseService<L>>,
    directory: D,
    identity: IdentityPolicy,
}

impl<L: EventLog, D: SupervisorDirectory> WorkerCommandService<L, D> {
    /// A service that takes the actor from the message ([`IdentityPolicy::Claimed`]); see
    /// [`Self::with_identity`].
    pub fn new(cases: Arc<CaseService<L>>, directory: D) -> Self {
        Self {
            cases,
            directory,
            identity: IdentityPolicy::Claimed,
        }
    }

    /// Where the sender's identity comes from. Under [`IdentityPolicy::Proven`] a worker may
    /// act only as the grid id NATS authenticated, and a resident's verification is accepted
    /// only from the intake system that reported the case.
    pub fn with_identity(mut self, identity: IdentityPolicy) -> Self {
        self.identity = identity;
        self
    }

    pub fn cases(&self) -> &Arc<CaseService<L>> {
        &self.cases
    }

    /// Handles one message that arrived without headers; see [`Self::process_message`].
    pub async fn process(&self, payload: &[u8]) -> WorkerReply {
        self.process_message(&[], payload).await
    }

    /// Handles one message and returns the reply for its sender. Every refusal writes nothing.
    pub async fn process_message(
        &self,
        headers: &[(String, String)],
        payload: &[u8],
    ) -> WorkerReply {
        let sender = match self.identity.sender(headers) {
            Ok(sender) => sender,
            Err(refusal) => {
                info!(
                    code = refusal.code,
                    "worker command refused before reading: sender not proven"
                );
                return WorkerRejection::from(refusal).into_reply();
            }
        };
        let message = match parse_worker_command(payload) {
            Ok(message) => message,
            Err(rejection) => {
                info!(code = %rejection.code, field = rejection.field.as_deref().unwrap_or(""), "worker command refused");
                return rejection.into_reply();
            }
        };
        let speaking_system = match sender_may_send(&sender, &message) {
            Ok(system) => system,
            Err(refusal) => {
                info!(code = refusal.code, worker_id = %message.worker_id, ?sender, "worker command refused: not the sender's to send");
                return WorkerRejection::from(refusal).into_reply();
            }
        };
        let reply = self.execute_for(&message, speaking_system.as_deref()).await;
        match &reply {
            WorkerReply::Accepted {
                case_id,
                sequence,
                duplicate,
            } => {
                info!(%case_id, sequence, duplicate, worker_id = %message.worker_id, command = message.command.name(), "worker command accepted")
            }
            WorkerReply::Rejected { code, .. } => {
                info!(case_id = %message.case_id, worker_id = %message.worker_id, command = message.command.name(), code = %code, "worker command refused")
            }
        }
        reply
    }

    /// Runs a parsed message against its case, its sender taken as the message names it.
    pub async fn execute(&self, message: &WorkerCommandV1) -> WorkerReply {
        self.execute_for(message, None).await
    }

    /// Runs a parsed message against its case. `speaking_system` is the intake system NATS
    /// proved sent a resident's command: it must be the system that reported the case.
    async fn execute_for(
        &self,
        message: &WorkerCommandV1,
        speaking_system: Option<&str>,
    ) -> WorkerReply {
        let case_id = message.case_id;
        for attempt in 1..=MAX_ATTEMPTS {
            let history = match self.cases.log().load(case_id).await {
                Ok(history) => history,
                Err(error) => {
                    return WorkerRejection::new(
                        CommandError::from(error).code(),
                        None,
                        "the case could not be loaded; retry later",
                    )
                    .into_reply()
                }
            };
            let state = replay(&history.events);
            if !state.exists() {
                return WorkerRejection::at(
                    DomainError::CaseNotFound.code(),
                    "case_id",
                    format!("no case {case_id}"),
                )
                .into_reply();
            }
            if let Some(system) = speaking_system {
                if reporting_system(&history.events) != Some(system) {
                    // Which system reported it is not repeated: the sender may be probing.
                    return WorkerRejection::at(
                        "not_reporter",
                        "worker_id",
                        format!("`{system}` did not report case {case_id}; a system may speak only for the residents of the cases it reported"),
                    )
                    .into_reply();
                }
            }
            // A message already turned into events is answered from the case, before any
            // check that the case's later events could make fail (a retried decline).
            let source = worker_source(message);
            if let Some(&(_, last)) = state.processed_sources.get(&source) {
                return WorkerReply::Accepted {
                    case_id,
                    sequence: last,
                    duplicate: true,
                };
            }
            let supervises = message.acting_as == ActingAs::GridWorker
                && case_cell(&state)
                    .is_some_and(|cell| self.directory.supervises(&message.worker_id, cell));
            let translated = translate(message, &state, supervises);
            if let Err(refusal) = authorize(
                &state,
                &translated.actor,
                &translated.command,
                supervises,
                reporting_resident(&history.events),
            ) {
                let refusal = refusal.naming(message.command.name());
                return WorkerRejection::new(refusal.code(), None, refusal.to_string())
                    .into_reply();
            }
            if let Some(other) = &translated.must_also_allow {
                if let Err(error) = decide(&state, other, self.cases.clock().now()) {
                    return domain_rejection(&error, message.command.name());
                }
            }
            let request = CommandRequest {
                case_id,
                command: translated.command,
                actor: translated.actor,
                source: translated.source,
                occurred_at: None,
                correlation_id: None,
                causation_id: None,
            };
            match self.cases.handle_if_unchanged(request, state.version).await {
                Ok(outcome) => {
                    return WorkerReply::Accepted {
                        case_id,
                        sequence: outcome.sequence,
                        duplicate: outcome.duplicate,
                    }
                }
                Err(CommandError::Stale { .. }) => {
                    debug!(%case_id, attempt, "case moved on while authorizing, looking again");
                    continue;
                }
                Err(CommandError::Domain(error)) => {
                    return domain_rejection(&error, message.command.name())
                }
                Err(error) => {
                    return WorkerRejection::new(error.code(), None, error.to_string()).into_reply()
                }
            }
        }
        WorkerRejection::new(
            "contended",
            None,
            format!("case {case_id} kept changing while the command was checked; retry"),
        )
        .into_reply()
    }
}

/// Whether the proven `sender` may send `message`; for an intake system speaking for a
/// resident, the system's name, which must be the case's reporting system.
///
/// - A worker acts only as themselves (`worker_id` = their NATS user) and never as a resident.
/// - An intake system acts only for a resident (`acting_as: resident`): residents have no
///   NATS identity of their own, the system that reported their case vouches for them.
/// - A grid administrator does not act on cases.
fn sender_may_send(
    sender: &Sender,
    message: &WorkerCommandV1,
) -> Result<Option<String>, IdentityRefusal> {
    match sender {
        Sender::Claimed => Ok(None),
        Sender::Proven(Party::Worker(user)) => {
            if message.acting_as != ActingAs::GridWorker {
                return Err(IdentityRefusal::mismatch(
                    "acting_as",
                    format!("`{user}` is a grid worker and may not act as a resident"),
                ));
            }
            if message.worker_id != *user {
                return Err(IdentityRefusal::mismatch(
                    "worker_id",
                    format!(
                        "this connection is authenticated as `{user}`, who may act only as `{user}`, not as `{}`",
                        message.worker_id
                    ),
                ));
            }
            Ok(None)
        }
        Sender::Proven(Party::IntakeSystem(system)) => {
            if message.acting_as != ActingAs::Resident {
                return Err(IdentityRefusal::mismatch(
                    "acting_as",
                    format!("`{system}` is an intake system and may act only for a resident (`acting_as: resident`)"),
                ));
            }
            Ok(Some(system.clone()))
        }
        Sender::Proven(Party::GridAdmin(admin)) => Err(IdentityRefusal::forbidden(format!(
            "`{admin}` is a grid administrator and may not act on cases"
        ))),
    }
}

/// The aggregate's refusal, with the field named as it is in the worker's message.
fn domain_rejection(error: &DomainError, command_name: &'static str) -> WorkerReply {
    let (field, reason) = match error {
        DomainError::InvalidField { field, .. } => (
            Some(match *field {
                "worker_id" | "verifier" => "worker_id".to_owned(),
                "text" => "command.reason".to_owned(),
                "media.url" => "command.media".to_owned(),
                other => format!("command.{other}"),
            }),
            error.to_string(),
        ),
        // The worker sent `request_extension`, not `grant_extension`: say it in their words.
        DomainError::InvalidTransition { status, .. } => (
            None,
            DomainError::InvalidTransition {
                command: command_name,
                status: *status,
            }
            .to_string(),
        ),
        _ => (None, error.to_string()),
    };
    WorkerReply::Rejected {
        code: error.code().to_owned(),
        field,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wangge_schemas::CaseId;

    const CASE: &str = "01936b2e-7c1a-7d2b-9c3f-2a1b3c4d5e6f";

    fn message(command: Value) -> Value {
        json!({
            "schema_version": 1,
            "message_id": "m-1",
            "worker_id": "wang-li",
            "case_id": CASE,
            "command": command,
        })
    }

    fn refusal(body: Value) -> (String, Option<String>) {
        let rejection = parse_worker_command(body.to_string().as_bytes()).unwrap_err();
        (rejection.code, rejection.field)
    }

    fn pair(code: &str, field: Option<&str>) -> (String, Option<String>) {
        (code.to_owned(), field.map(str::to_owned))
    }

    #[test]
    fn a_control_character_anywhere_is_refused_with_its_path() {
        assert_eq!(
            refusal(message(json!({"type": "decline", "reason": "太远\u{0}"}))),
            pair("control_character", Some("command.reason"))
        );
        let mut body = message(json!({"type": "acknowledge"}));
        body["worker_id"] = json!("wang\u{1b}li");
        assert_eq!(refusal(body), pair("control_character", Some("worker_id")));
    }

    #[test]
    fn malformed_messages_are_refused_with_a_code_and_the_field() {
        assert_eq!(
            parse_worker_command(b"{not json").unwrap_err().code,
            "malformed_json"
        );
        assert_eq!(refusal(json!([1, 2])), pair("invalid_type", None));
        let mut body = message(json!({"type": "acknowledge"}));
        body["schema_version"] = json!(2);
        assert_eq!(
            refusal(body.clone()),
            pair("unsupported_version", Some("schema_version"))
        );
        body.as_object_mut().unwrap().remove("schema_version");
        assert_eq!(refusal(body), pair("missing_field", Some("schema_version")));
        assert_eq!(
            refusal(message(json!({"type": "fly"}))),
            pair("unknown_command", Some("command.type"))
        );
        assert_eq!(
            refusal(message(json!({"reason": "x"}))),
            pair("missing_field", Some("command.type"))
        );
        assert_eq!(
            refusal(message(json!("acknowledge"))),
            pair("invalid_type", Some("command"))
        );
        assert_eq!(
            refusal(message(json!({"type": "decline"}))),
            pair("missing_field", Some("command.reason"))
        );
        assert_eq!(
            refusal(message(json!({"type": "decline", "reason": "  "}))),
            pair("empty_text", Some("command.reason"))
        );
        assert_eq!(
            refusal(message(json!({"type": "start", "note": "x"}))),
            pair("unknown_field", Some("command.note"))
        );
        assert_eq!(
            refusal(message(json!({"type": "suspend", "reason": "lunch"}))),
            pair("invalid_value", Some("command.reason"))
        );
        assert_eq!(
            refusal(message(json!({"type": "verify", "passed": false}))),
            pair("missing_field", Some("command.notes"))
        );
        let mut body = message(json!({"type": "start"}));
        body["worker_id"] = json!("wang.li");
        assert_eq!(
            refusal(body.clone()),
            pair("invalid_value", Some("worker_id"))
        );
        body["worker_id"] = json!("wang-li");
        body["case_id"] = json!("case-7");
        assert_eq!(
            refusal(body.clone()),
            pair("invalid_value", Some("case_id"))
        );
        body["case_id"] = json!(CASE);
        body.as_object_mut().unwrap().remove("message_id");
        assert_eq!(
            refusal(body.clone()),
            pair("missing_field", Some("message_id"))
        );
        body["message_id"] = json!("m");
        body["priority"] = json!("high");
        assert_eq!(refusal(body), pair("unknown_field", Some("priority")));
    }

    fn state_at(tier: Tier, cell: &str, assignee: Option<&str>) -> CaseState {
        CaseState {
            status: crate::domain::CaseStatus::InProgress,
            tier: Some(tier),
            cell: Some(cell.to_owned()),
            assignee: assignee.map(str::to_owned),
            location: Some(GridLocation {
                district: "110101001".to_owned(),
                community: "110101001002".to_owned(),
                building: "110101001002007".to_owned(),
            }),
            ..CaseState::default()
        }
    }

    fn parsed(command: Value) -> WorkerCommandV1 {
        parse_worker_command(message(command).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn asking_to_escalate_goes_to_the_parent_cell() {
        let ask = parsed(json!({"type": "ask_to_escalate", "reason": "too big"}));
        let building = state_at(Tier::Building, "110101001002007", Some("wang-li"));
        assert_eq!(
            translate(&ask, &building, false).command,
            CaseCommand::Escalate {
                to_tier: Tier::Community,
                cell: "110101001002".to_owned(),
                reason: "too big".to_owned()
            }
        );
        let community = state_at(Tier::Community, "110101001002", Some("wang-li"));
        assert!(matches!(
            translate(&ask, &community, false).command,
            CaseCommand::Escalate { to_tier: Tier::District, ref cell, .. } if cell == "110101001"
        ));
        let district = state_at(Tier::District, "110101001", Some("wang-li"));
        assert!(matches!(
            translate(&ask, &district, false).command,
            CaseCommand::Escalate {
                to_tier: Tier::District,
                ..
            }
        ));
    }

    #[test]
    fn an_extension_request_is_a_comment_from_the_worker_and_a_grant_from_the_supervisor() {
        let request = parsed(json!({"type": "request_extension", "step": "resolve",
            "extension": {"amount": 2, "unit": "working_days"}, "reason": "waiting for a pump"}));
        let state = state_at(Tier::Building, "110101001002007", Some("wang-li"));
        let from_worker = translate(&request, &state, false);
        assert_eq!(
            from_worker.command,
            CaseCommand::Comment {
                text: format!("{EXTENSION_REQUEST_PREFIX}: 2 working days more for step resolve: waiting for a pump")
            }
        );
        assert!(matches!(
            from_worker.must_also_allow,
            Some(CaseCommand::GrantExtension { .. })
        ));
        let other = state_at(Tier::Building, "110101001002007", Some("zhao"));
        let from_supervisor = translate(&request, &other, true);
        assert!(matches!(
            from_supervisor.command,
            CaseCommand::GrantExtension { .. }
        ));
        assert_eq!(from_supervisor.actor, Actor::supervisor("wang-li"));
    }

    #[test]
    fn a_supervisor_acts_for_the_assignee() {
        let start = parsed(json!({"type": "start"}));
        let state = state_at(Tier::Building, "110101001002007", Some("zhao"));
        let translated = translate(&start, &state, true);
        assert_eq!(
            translated.command,
            CaseCommand::StartHandling {
                worker_id: "zhao".to_owned()
            }
        );
        assert_eq!(translated.actor, Actor::supervisor("wang-li"));
        assert_eq!(
            translated.source,
            Source {
                system: "worker:wang-li".to_owned(),
                message_id: "m-1".to_owned()
            }
        );
        assert_eq!(start.case_id, CASE.parse::<CaseId>().unwrap());
    }

    #[test]
    fn a_supervisor_of_a_community_supervises_its_buildings() {
        let mut map = MapSupervisors::new();
        map.insert("chen".to_owned(), vec!["110101001002".to_owned()]);
        assert!(map.supervises("chen", "110101001002007"));
        assert!(map.supervises("chen", "110101001002"));
        assert!(!map.supervises("chen", "110101001003001"));
        assert!(!map.supervises("chen", "110101001"));
        assert!(!map.supervises("wang", "110101001002007"));
    }
}

//! Checks an intake message from another system and turns it into a command, or says
//! exactly what is wrong with it: which field, and why.
//!
//! Pure: bytes and reference data in, a command or a rejection out. The checks run from the
//! outside in — size, JSON syntax, kind, schema version, shape, text limits, then what the
//! message refers to — so the first problem a sender has to fix is the one reported.
//!
//! [`check_intake`] reads any kind. A message that opens a case ends with its grid location
//! and category and becomes a `Report` command ([`ValidIntake`]). An evaluation refers to a
//! case the shell has to load first; [`evaluation`] checks it against that case's history.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use wangge_schemas::intake::{
    EvaluationV1, IntakeMessage, IntakeMessageKind, IntakeResident, PatrolFindingV1,
    ResidentReportV1, ServiceRequestV1, INTAKE_SCHEMA_VERSION, MAX_DESCRIPTION_CHARS, MAX_ID_CHARS,
    MAX_MEDIA, MAX_MESSAGE_BYTES, MAX_TITLE_CHARS,
};
use wangge_schemas::{
    Actor, CaseId, CaseReported, Coordinates, GridLocation, IntakeClock, IntakeKind, MediaRef,
    ReportDetails, Resident, ResidentContact, SealedContact, Source,
};

use crate::grid::{CategoryCatalogue, GridDirectory};
use crate::request::CommandRequest;
use crate::CaseCommand;

pub mod evaluation;

/// Subjects are `wangge.intake.<kind>`; the engine listens on `wangge.intake.>`.
pub const INTAKE_SUBJECT_PREFIX: &str = "wangge.intake";

/// Why a message was refused, in words a sender's developer can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeRejection {
    pub code: RejectCode,
    /// JSON path of the offending field (`resident.id`, `media[2].url`); `None` when the
    /// problem is the message as a whole.
    pub field: Option<String>,
    pub reason: String,
}

/// Stable, machine-readable rejection codes (part of the reply contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    PayloadTooLarge,
    MalformedJson,
    UnknownKind,
    KindMismatch,
    UnsupportedVersion,
    MissingField,
    InvalidType,
    InvalidValue,
    UnknownField,
    EmptyText,
    TextTooLong,
    TooManyItems,
    UnknownGridLocation,
    UnknownCategory,
    CategoryNotAllowed,
    /// An evaluation names a case that was never reported.
    UnknownCase,
    /// An evaluation from someone other than the resident who reported the case.
    NotReporter,
    /// An evaluation of a case that is not closed (still open, rejected, merged, voided).
    CaseNotClosed,
    /// A second evaluation of the same closure.
    AlreadyEvaluated,
    /// A message id the case already used for something else (its report, say).
    MessageIdReused,
    /// A `reported_at` or `evaluated_at` later than the engine's clock allows (a few minutes
    /// ahead, for clocks that drift): the sender's clock is wrong, or the message lies.
    TimeInFuture,
    /// A control character (U+0000 and the other C0 controls but tab, line feed and carriage
    /// return; DEL; the C1 controls) in any field.
    ControlCharacter,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PayloadTooLarge => "payload_too_large",
            Self::MalformedJson => "malformed_json",
            Self::UnknownKind => "unknown_kind",
            Self::KindMismatch => "kind_mismatch",
            Self::UnsupportedVersion => "unsupported_version",
            Self::MissingField => "missing_field",
            Self::InvalidType => "invalid_type",
            Self::InvalidValue => "invalid_value",
            Self::UnknownField => "unknown_field",
            Self::EmptyText => "empty_text",
            Self::TextTooLong => "text_too_long",
            Self::TooManyItems => "too_many_items",
            Self::UnknownGridLocation => "unknown_grid_location",
            Self::UnknownCategory => "unknown_category",
            Self::CategoryNotAllowed => "category_not_allowed",
            Self::UnknownCase => "unknown_case",
            Self::NotReporter => "not_reporter",
            Self::CaseNotClosed => "case_not_closed",
            Self::AlreadyEvaluated => "already_evaluated",
            Self::MessageIdReused => "message_id_reused",
            Self::TimeInFuture => "time_in_future",
            Self::ControlCharacter => "control_character",
        }
    }
}

impl IntakeRejection {
    fn new(code: RejectCode, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            code,
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }

    /// A refusal naming the field at fault.
    pub fn at(code: RejectCode, field: &str, reason: impl Into<String>) -> Self {
        Self::new(code, Some(field), reason)
    }
}

/// A message that passed every check, ready to become a case.
#[derive(Debug, Clone)]
pub struct ValidIntake {
    pub message: IntakeMessage,
    pub location: GridLocation,
    pub request: CommandRequest,
}

impl ValidIntake {
    /// The reporting resident's contact details as the sender gave them, with the sending
    /// system and the resident's id (what their data key is named by), when there are any.
    /// The request holds the resident's id only: encrypting needs a key and randomness,
    /// which the shell has, so the shell seals these and puts them in with
    /// [`ValidIntake::seal_reporter_contact`] before the event is written.
    pub fn reporter_contact(&self) -> Option<(&str, &str, ResidentContact)> {
        let (source, resident) = match &self.message {
            IntakeMessage::ResidentReport(m) => (&m.source, &m.resident),
            IntakeMessage::ServiceRequest(m) => (&m.source, &m.resident),
            IntakeMessage::PatrolFinding(_) => return None,
        };
        let contact = resident.contact();
        (!contact.is_empty()).then_some((source.system.as_str(), resident.id.as_str(), contact))
    }

    /// Puts the sealed contact into the report the request carries.
    pub fn seal_reporter_contact(&mut self, sealed: SealedContact) {
        if let CaseCommand::Report { report, .. } = &mut self.request.command {
            if let Some(resident) = report.details.resident_mut() {
                resident.contact = Some(Box::new(sealed));
            }
        }
    }
}

/// Everything validation looks things up in.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceData<'a> {
    pub grid: &'a GridDirectory,
    pub categories: &'a CategoryCatalogue,
    /// The engine's time as the message is checked: the time of acceptance.
    pub now: DateTime<Utc>,
    pub clock_bounds: ClaimedTimeBounds,
}

/// How far a sender's claimed time may stray from the engine's before intake acts on it.
///
/// No sender's clock is trusted: a case's clocks run from the engine's time of acceptance,
/// and the claim is kept beside it. A claim in the future beyond `max_ahead` is refused
/// (`time_in_future`): nothing can be reported before it happens, and a year-3000 report
/// would otherwise sort first forever. A claim further in the past than `flag_behind` is
/// accepted and flagged (`backdated`): hotlines do enter calls late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedTimeBounds {
    pub max_ahead: chrono::Duration,
    pub flag_behind: chrono::Duration,
}

impl Default for ClaimedTimeBounds {
    /// Five minutes of drift ahead; a day behind.
    fn default() -> Self {
        Self {
            max_ahead: chrono::Duration::minutes(5),
            flag_behind: chrono::Duration::hours(24),
        }
    }
}

impl ClaimedTimeBounds {
    /// Refuses a claim too far ahead of `now`; otherwise says whether it is backdated.
    pub fn check(
        &self,
        field: &str,
        claimed: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, IntakeRejection> {
        if claimed > now + self.max_ahead {
            return Err(IntakeRejection::at(
                RejectCode::TimeInFuture,
                field,
                format!(
                    "`{field}` is {}, later than the engine's clock ({}) allows: at most {} \
                     minutes ahead",
                    claimed.to_rfc3339(),
                    now.to_rfc3339(),
                    self.max_ahead.num_minutes()
                ),
            ));
        }
        Ok(claimed < now - self.flag_behind)
    }
}

/// A message that passed every check that needs no case.
#[derive(Debug, Clone)]
pub enum CheckedIntake {
    /// A message that opens a case, ready to commit (boxed: a report is several times the
    /// size of an evaluation).
    Report(Box<ValidIntake>),
    /// An evaluation, to be checked against the history of the case it names next
    /// ([`evaluation::evaluation_request`]). Boxed too: with the resident's contact fields
    /// it is the larger of the two.
    Evaluation(Box<EvaluationV1>),
}

/// Checks one intake message of any kind. `subject_kind` is the kind named by the subject the
/// message arrived on (`wangge.intake.<kind>`), if any; it must agree with the body's `kind`.
pub fn check_intake(
    subject_kind: Option<&str>,
    bytes: &[u8],
    reference: ReferenceData<'_>,
) -> Result<CheckedIntake, IntakeRejection> {
    let (kind, value) = read_envelope(subject_kind, bytes)?;
    match kind {
        IntakeMessageKind::Case(kind) => validate_report(kind, value, reference)
            .map(|valid| CheckedIntake::Report(Box::new(valid))),
        IntakeMessageKind::Evaluation => {
            let evaluation = evaluation::read_evaluation(value)?;
            reference
                .clock_bounds
                .check("evaluated_at", evaluation.evaluated_at, reference.now)?;
            Ok(CheckedIntake::Evaluation(Box::new(evaluation)))
        }
    }
}

/// Validates a message that opens a case (a resident report, patrol finding or service
/// request). An evaluation opens none and is refused here with `kind_mismatch`; the intake
/// service reads every kind with [`check_intake`].
pub fn validate_intake(
    subject_kind: Option<&str>,
    bytes: &[u8],
    reference: ReferenceData<'_>,
) -> Result<ValidIntake, IntakeRejection> {
    match check_intake(subject_kind, bytes, reference)? {
        CheckedIntake::Report(valid) => Ok(*valid),
        CheckedIntake::Evaluation(_) => Err(IntakeRejection::at(
            RejectCode::KindMismatch,
            "kind",
            "an evaluation does not open a case; it is checked against the case it names",
        )),
    }
}

/// The checks every kind shares: size, JSON syntax, an object, its kind (agreeing with the
/// subject) and its schema version.
fn read_envelope(
    subject_kind: Option<&str>,
    bytes: &[u8],
) -> Result<(IntakeMessageKind, Value), IntakeRejection> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(IntakeRejection::new(
            RejectCode::PayloadTooLarge,
            None,
            format!(
                "message is {} bytes, the limit is {MAX_MESSAGE_BYTES}",
                bytes.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        IntakeRejection::new(
            RejectCode::MalformedJson,
            None,
            format!("message is not valid json: {e}"),
        )
    })?;
    if let Some((field, c)) = crate::text::find_control_character(&value) {
        let reason = crate::text::control_character_reason(&field, c);
        return Err(IntakeRejection::at(
            RejectCode::ControlCharacter,
            &field,
            reason,
        ));
    }
    let Value::Object(object) = &value else {
        return Err(IntakeRejection::new(
            RejectCode::InvalidType,
            None,
            format!("message must be a json object, found {}", json_type(&value)),
        ));
    };
    let kind = read_kind(subject_kind, object.get("kind"))?;
    read_schema_version(object.get("schema_version"))?;
    Ok((kind, value))
}

/// The rest of the checks of a message that opens a case, after [`read_envelope`].
fn validate_report(
    kind: IntakeKind,
    value: Value,
    reference: ReferenceData<'_>,
) -> Result<ValidIntake, IntakeRejection> {
    let message = match kind {
        IntakeKind::ResidentReport => {
            IntakeMessage::ResidentReport(typed::<ResidentReportV1>(value)?)
        }
        IntakeKind::PatrolFinding => IntakeMessage::PatrolFinding(typed::<PatrolFindingV1>(value)?),
        IntakeKind::ServiceRequest => {
            IntakeMessage::ServiceRequest(typed::<ServiceRequestV1>(value)?)
        }
    };
    check_limits(&message)?;
    let claimed = message.reported_at();
    let backdated = reference
        .clock_bounds
        .check("reported_at", claimed, reference.now)?;
    let location = locate(&message, reference.grid)?;
    check_category(&message, reference.categories)?;
    let clock = IntakeClock {
        claimed_reported_at: claimed,
        backdated,
    };
    let request = report_request(&message, &location, clock);
    Ok(ValidIntake {
        message,
        location,
        request,
    })
}

fn read_kind(
    subject_kind: Option<&str>,
    body_kind: Option<&Value>,
) -> Result<IntakeMessageKind, IntakeRejection> {
    let known = || {
        IntakeMessageKind::ALL
            .map(IntakeMessageKind::as_str)
            .join(", ")
    };
    // The body is checked first: it is what the sender controls field by field.
    let body_kind = match body_kind {
        None => {
            return Err(IntakeRejection::at(
                RejectCode::MissingField,
                "kind",
                "field `kind` is required",
            ))
        }
        Some(Value::String(name)) => IntakeMessageKind::parse(name).ok_or_else(|| {
            IntakeRejection::at(
                RejectCode::UnknownKind,
                "kind",
                format!("unknown intake kind `{name}`; known kinds: {}", known()),
            )
        })?,
        Some(other) => {
            return Err(IntakeRejection::at(
                RejectCode::InvalidType,
                "kind",
                format!("`kind` must be a string, found {}", json_type(other)),
            ))
        }
    };
    match subject_kind {
        Some(name) if name != body_kind.as_str() => Err(IntakeRejection::at(
            RejectCode::KindMismatch,
            "kind",
            format!(
                "message says kind `{}` but was published on the subject for `{name}`; publish it to {}.{}",
                body_kind.as_str(),
                INTAKE_SUBJECT_PREFIX,
                body_kind.as_str()
            ),
        )),
        _ => Ok(body_kind),
    }
}

fn read_schema_version(value: Option<&Value>) -> Result<(), IntakeRejection> {
    match value {
        None => Err(IntakeRejection::at(
            RejectCode::MissingField,
            "schema_version",
            "field `schema_version` is required",
        )),
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(INTAKE_SCHEMA_VERSION)) => Ok(()),
        Some(Value::Number(n)) => Err(IntakeRejection::at(
            RejectCode::UnsupportedVersion,
            "schema_version",
            format!("schema version {n} is not supported; this engine reads version {INTAKE_SCHEMA_VERSION}"),
        )),
        Some(other) => Err(IntakeRejection::at(
            RejectCode::InvalidType,
            "schema_version",
            format!("`schema_version` must be an integer, found {}", json_type(other)),
        )),
    }
}

/// Deserializes into the kind's struct, turning serde's message into a code and a field path.
pub(crate) fn typed<T: DeserializeOwned>(value: Value) -> Result<T, IntakeRejection> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        classify_serde_error(&path, &message)
    })
}

/// serde_json reports shape errors as text; its wording is stable and names the field.
fn classify_serde_error(path: &str, message: &str) -> IntakeRejection {
    let parent = if path == "." { None } else { Some(path) };
    let join = |name: &str| match parent {
        Some(parent) => format!("{parent}.{name}"),
        None => name.to_owned(),
    };
    if let Some(name) = backticked_after(message, "missing field ") {
        return IntakeRejection::new(
            RejectCode::MissingField,
            Some(&join(name)),
            format!("field `{name}` is required"),
        );
    }
    if let Some(name) = backticked_after(message, "unknown field ") {
        // The path already ends at the unknown field.
        let field = parent.map_or_else(|| name.to_owned(), str::to_owned);
        return IntakeRejection::new(RejectCode::UnknownField, Some(&field), message.to_owned());
    }
    let code = if message.starts_with("invalid type") {
        RejectCode::InvalidType
    } else {
        RejectCode::InvalidValue
    };
    // chrono's parse errors ("input contains invalid characters") do not say what was
    // expected; the timestamp is the one field whose format a sender has to look up.
    if code == RejectCode::InvalidValue && matches!(path, "reported_at" | "evaluated_at") {
        return IntakeRejection::new(
            code,
            parent,
            format!("`{path}` must be an RFC 3339 date and time such as 2026-03-12T08:15:42+08:00 ({message})"),
        );
    }
    IntakeRejection::new(code, parent, message.to_owned())
}

fn backticked_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split('`').next()
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_text(
    field: &str,
    text: &str,
    max_chars: usize,
    required: bool,
) -> Result<(), IntakeRejection> {
    if required && text.trim().is_empty() {
        return Err(IntakeRejection::at(
            RejectCode::EmptyText,
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(IntakeRejection::at(
            RejectCode::TextTooLong,
            field,
            format!("`{field}` is {chars} characters, the limit is {max_chars}"),
        ));
    }
    Ok(())
}

fn check_source(source: &Source) -> Result<(), IntakeRejection> {
    check_text("source.system", &source.system, MAX_ID_CHARS, true)?;
    check_text("source.message_id", &source.message_id, MAX_ID_CHARS, true)
}

fn check_resident(resident: &IntakeResident) -> Result<(), IntakeRejection> {
    check_text("resident.id", &resident.id, MAX_ID_CHARS, true)?;
    if let Some(name) = &resident.name {
        check_text("resident.name", name, 64, false)?;
    }
    if let Some(phone) = &resident.phone {
        check_text("resident.phone", phone, 32, false)?;
    }
    if let Some(id_number) = &resident.id_number {
        check_id_number("resident.id_number", id_number)?;
    }
    Ok(())
}

/// A 居民身份证号码 (GB 11643-1999): 17 digits and a check digit, ISO 7064 MOD 11-2 over the
/// first 17 (weights 2^(17-i) mod 11; a remainder r gives "10X98765432"[r]).
pub fn check_id_number(field: &str, id_number: &str) -> Result<(), IntakeRejection> {
    let bytes = id_number.as_bytes();
    let shaped = bytes.len() == 18
        && bytes[..17].iter().all(u8::is_ascii_digit)
        && (bytes[17].is_ascii_digit() || bytes[17] == b'X');
    if !shaped {
        return Err(IntakeRejection::at(
            RejectCode::InvalidValue,
            field,
            format!("`{field}` must be 17 digits and a check digit (0-9 or X)"),
        ));
    }
    let sum: u32 = bytes[..17]
        .iter()
        .enumerate()
        .map(|(i, digit)| u32::from(digit - b'0') * ((1u32 << (17 - i)) % 11))
        .sum();
    let expected = b"10X98765432"[(sum % 11) as usize];
    if bytes[17] != expected {
        return Err(IntakeRejection::at(
            RejectCode::InvalidValue,
            field,
            format!("`{field}` has a wrong check digit"),
        ));
    }
    Ok(())
}

fn check_media(media: &[MediaRef]) -> Result<(), IntakeRejection> {
    if media.len() > MAX_MEDIA {
        return Err(IntakeRejection::at(
            RejectCode::TooManyItems,
            "media",
            format!("{} media references, the limit is {MAX_MEDIA}", media.len()),
        ));
    }
    for (index, item) in media.iter().enumerate() {
        check_text(&format!("media[{index}].url"), &item.url, 2048, true)?;
    }
    Ok(())
}

/// The published schema limits latitude to ±90 and longitude to ±180; a swapped pair or a
/// projected (non-WGS84) coordinate would otherwise put the case on the wrong map.
fn check_coordinates(coordinates: Option<&Coordinates>) -> Result<(), IntakeRejection> {
    let Some(coordinates) = coordinates else {
        return Ok(());
    };
    for (field, value, limit) in [
        ("coordinates.latitude", coordinates.latitude, 90.0),
        ("coordinates.longitude", coordinates.longitude, 180.0),
    ] {
        if !(-limit..=limit).contains(&value) {
            return Err(IntakeRejection::at(
                RejectCode::InvalidValue,
                field,
                format!(
                    "`{field}` is {value}, it must be between -{limit} and {limit} (WGS84 degrees)"
                ),
            ));
        }
    }
    Ok(())
}

fn check_limits(message: &IntakeMessage) -> Result<(), IntakeRejection> {
    check_source(message.source())?;
    match message {
        IntakeMessage::ResidentReport(m) => {
            check_resident(&m.resident)?;
            check_text("title", &m.title, MAX_TITLE_CHARS, true)?;
            check_text("description", &m.description, MAX_DESCRIPTION_CHARS, false)?;
            check_media(&m.media)?;
            check_coordinates(m.coordinates.as_ref())
        }
        IntakeMessage::PatrolFinding(m) => {
            check_text("worker_id", &m.worker_id, MAX_ID_CHARS, true)?;
            check_text("title", &m.title, MAX_TITLE_CHARS, true)?;
            check_text("description", &m.description, MAX_DESCRIPTION_CHARS, false)?;
            check_media(&m.media)?;
            check_coordinates(m.coordinates.as_ref())
        }
        IntakeMessage::ServiceRequest(m) => {
            check_resident(&m.resident)?;
            check_text("title", &m.title, MAX_TITLE_CHARS, true)?;
            check_text("description", &m.description, MAX_DESCRIPTION_CHARS, false)?;
            check_media(&m.media)
        }
    }
}

fn locate(message: &IntakeMessage, grid: &GridDirectory) -> Result<GridLocation, IntakeRejection> {
    let building = match message {
        IntakeMessage::ResidentReport(m) => &m.building,
        IntakeMessage::PatrolFinding(m) => &m.building,
        IntakeMessage::ServiceRequest(m) => &m.building,
    };
    grid.locate_building(building).cloned().ok_or_else(|| {
        // A community or district code is the commonest mistake: say so.
        let inside = grid
            .building_codes()
            .filter_map(|code| grid.locate_building(code))
            .filter(|cell| &cell.community == building || &cell.district == building)
            .map(|cell| cell.building.as_str())
            .min();
        let reason = match inside {
            Some(example) => format!(
                "`{building}` is a community or district cell of {}, not a building cell; name the building, e.g. `{example}`",
                grid.city()
            ),
            None => format!("no building cell `{building}` in the grid of {}", grid.city()),
        };
        IntakeRejection::at(RejectCode::UnknownGridLocation, "building", reason)
    })
}

fn check_category(
    message: &IntakeMessage,
    categories: &CategoryCatalogue,
) -> Result<(), IntakeRejection> {
    let (field, code) = match message {
        IntakeMessage::ResidentReport(m) => ("category", &m.category),
        IntakeMessage::PatrolFinding(m) => ("category", &m.category),
        IntakeMessage::ServiceRequest(m) => ("service", &m.service),
    };
    let kind = message.kind();
    let category = categories.get(code).ok_or_else(|| {
        let allowed = categories.codes_for(kind);
        let reason = match closest_code(code, &allowed) {
            Some(guess) => {
                format!("category `{code}` is not in the catalogue; did you mean `{guess}`?")
            }
            None => format!(
                "category `{code}` is not in the catalogue; categories for a {}: {}",
                kind.as_str(),
                allowed.join(", ")
            ),
        };
        IntakeRejection::at(RejectCode::UnknownCategory, field, reason)
    })?;
    if !category.intake_kinds.contains(&kind) {
        return Err(IntakeRejection::at(
            RejectCode::CategoryNotAllowed,
            field,
            format!(
                "category `{code}` cannot be used for a {}; allowed: {}",
                kind.as_str(),
                categories.codes_for(kind).join(", ")
            ),
        ));
    }
    Ok(())
}

/// The allowed code sharing the longest prefix with `code`, if they share the group and a
/// few characters more (`lighting.stairwell_lamp` → `lighting.stairwell_light_out`).
fn closest_code<'c>(code: &str, allowed: &[&'c str]) -> Option<&'c str> {
    let min_shared = code.find('.')? + 1 + 3;
    let common = |other: &str| {
        code.bytes()
            .zip(other.bytes())
            .take_while(|(a, b)| a == b)
            .count()
    };
    allowed
        .iter()
        .map(|candidate| (common(candidate), *candidate))
        .filter(|(shared, _)| *shared >= min_shared)
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, candidate)| candidate)
}

/// The `Report` command a valid message becomes, on the case its source message names.
fn report_request(
    message: &IntakeMessage,
    location: &GridLocation,
    clock: IntakeClock,
) -> CommandRequest {
    let (report, actor) = match message {
        IntakeMessage::ResidentReport(m) => (
            CaseReported {
                intake_clock: None,
                title: m.title.clone(),
                description: m.description.clone(),
                reported_category: m.category.clone(),
                media: m.media.clone(),
                coordinates: m.coordinates,
                details: ReportDetails::ResidentReport {
                    channel: m.channel,
                    // The id only: the shell seals the contact under the resident's key
                    // before the event is written ([`ValidIntake::reporter_contact`]).
                    resident: Resident::pseudonymous(&m.resident.id),
                },
            },
            Actor::resident(&m.resident.id),
        ),
        IntakeMessage::PatrolFinding(m) => (
            CaseReported {
                intake_clock: None,
                title: m.title.clone(),
                description: m.description.clone(),
                reported_category: m.category.clone(),
                media: m.media.clone(),
                coordinates: m.coordinates,
                details: ReportDetails::PatrolFinding {
                    worker_id: m.worker_id.clone(),
                    patrol_kind: m.patrol_kind,
                    fixed_on_spot: m.fixed_on_spot,
                },
            },
            Actor::grid_worker(&m.worker_id),
        ),
        IntakeMessage::ServiceRequest(m) => (
            CaseReported {
                intake_clock: None,
                title: m.title.clone(),
                description: m.description.clone(),
                reported_category: m.service.clone(),
                media: m.media.clone(),
                coordinates: None,
                details: ReportDetails::ServiceRequest {
                    channel: m.channel,
                    // The id only: the shell seals the contact under the resident's key
                    // before the event is written ([`ValidIntake::reporter_contact`]).
                    resident: Resident::pseudonymous(&m.resident.id),
                },
            },
            Actor::resident(&m.resident.id),
        ),
    };
    let report = CaseReported {
        intake_clock: Some(Box::new(clock)),
        ..report
    };
    let source = message.source().clone();
    CommandRequest {
        case_id: CaseId::derived_from_source(&source),
        command: CaseCommand::Report {
            location: location.clone(),
            report,
        },
        actor,
        source,
        // The engine's time of acceptance, not the sender's claim (kept in the report).
        occurred_at: None,
        correlation_id: None,
        causation_id: None,
    }
}

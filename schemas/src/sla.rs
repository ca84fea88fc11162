//! SLA reference data as an operator writes it: business calendars and time-limit policies.
//!
//! - [`CalendarFile`] (`deploy/sla/calendars.json`): working hours per weekday, public
//!   holidays, make-up working days (调休) and the date through which holidays are published.
//! - [`PolicyFile`] (`deploy/sla/policies.json`): how long each step of the closed loop may
//!   take, per priority, when to warn, and the escalation ladder after a breach. The category
//!   catalogue (`deploy/grid/categories.json`) says which policy a category runs under.
//!
//! - [`SlaEvent`] in an [`SlaEventEnvelope`]: calendars or policies published at run time
//!   (upserted by id or name), kept on the SLA stream and folded over the files.
//! - [`SlaCommand`] and [`SlaReply`]: how an operator's tool asks for an SLA event
//!   (request-reply on `wangge.sla.commands`), and the engine's answer.
//!
//! These are the formats; the rules beyond shape (intervals that do not overlap, a date not
//! both a holiday and a make-up day, names that exist) are checked by the domain crate, which
//! names the JSON path at fault. The JSON Schemas under `schemas/json/sla/` are generated from
//! these types.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::envelope::{Actor, Source};
use crate::events::{Priority, SlaStep, TimeLimit};
use crate::upcast::DecodeError;

const MINUTES_PER_DAY: u16 = 24 * 60;
/// The widest UTC offset accepted (ISO 8601 practice).
const WIDEST_OFFSET_MINUTES: i32 = 18 * 60;

// ---------------------------------------------------------------------------------------
// Calendars
// ---------------------------------------------------------------------------------------

/// One stretch of working time within a day, in local time, from `start` (inclusive) to
/// `end`, at minute precision. Written `"08:30-12:00"`; `"24:00"` ends a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkingInterval {
    start_minute: u16,
    end_minute: u16,
}

impl WorkingInterval {
    /// The interval between two minutes of the day, or `None` unless
    /// `start_minute < end_minute <= 1440`.
    pub fn from_minutes(start_minute: u16, end_minute: u16) -> Option<Self> {
        (start_minute < end_minute && end_minute <= MINUTES_PER_DAY).then_some(Self {
            start_minute,
            end_minute,
        })
    }

    /// Minutes after local midnight at which the interval starts.
    pub fn start_minute(self) -> u16 {
        self.start_minute
    }

    /// Minutes after local midnight at which the interval ends (1440 = midnight after).
    pub fn end_minute(self) -> u16 {
        self.end_minute
    }

    pub fn duration(self) -> Duration {
        Duration::minutes(i64::from(self.end_minute - self.start_minute))
    }
}

fn parse_clock_minute(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes != 0) {
        return None;
    }
    Some(hours * 60 + minutes)
}

impl FromStr for WorkingInterval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || format!("`{text}` is not a working interval `HH:MM-HH:MM`");
        let (start, end) = text.split_once('-').ok_or_else(malformed)?;
        let start = parse_clock_minute(start.trim()).ok_or_else(malformed)?;
        let end = parse_clock_minute(end.trim()).ok_or_else(malformed)?;
        Self::from_minutes(start, end)
            .ok_or_else(|| format!("working interval `{text}` must end after it starts"))
    }
}

impl TryFrom<String> for WorkingInterval {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<WorkingInterval> for String {
    fn from(interval: WorkingInterval) -> Self {
        interval.to_string()
    }
}

impl fmt::Display for WorkingInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

/// A fixed offset from UTC, written `"+08:00"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UtcOffset {
    minutes: i32,
}

impl UtcOffset {
    /// China Standard Time, all year.
    pub const CHINA: UtcOffset = UtcOffset { minutes: 8 * 60 };

    /// The offset of `minutes` east of UTC, or `None` beyond ±18 hours.
    pub fn from_minutes(minutes: i32) -> Option<Self> {
        (minutes.abs() <= WIDEST_OFFSET_MINUTES).then_some(Self { minutes })
    }

    /// Minutes east of UTC.
    pub fn minutes(self) -> i32 {
        self.minutes
    }

    pub fn fixed_offset(self) -> FixedOffset {
        FixedOffset::east_opt(self.minutes * 60)
            .expect("an offset within ±18 hours is a valid fixed offset")
    }
}

impl FromStr for UtcOffset {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || format!("`{text}` is not a UTC offset `+HH:MM` or `-HH:MM`");
        let (sign, rest) = match text.as_bytes().first() {
            Some(b'+') => (1, &text[1..]),
            Some(b'-') => (-1, &text[1..]),
            _ => return Err(malformed()),
        };
        let minutes = parse_clock_minute(rest).ok_or_else(malformed)?;
        Self::from_minutes(sign * i32::from(minutes))
            .ok_or_else(|| format!("UTC offset `{text}` is wider than ±18:00"))
    }
}

impl TryFrom<String> for UtcOffset {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<UtcOffset> for String {
    fn from(offset: UtcOffset) -> Self {
        offset.to_string()
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minutes < 0 { '-' } else { '+' };
        let minutes = self.minutes.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

/// Working intervals per weekday; a weekday left out has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeekSchedule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monday: Vec<WorkingInterval>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuesday: Vec<WorkingInterval>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wednesday: Vec<WorkingInterval>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thursday: Vec<WorkingInterval>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub friday: Vec<WorkingInterval>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saturday: Vec<WorkingInterval>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sunday: Vec<WorkingInterval>,
}

impl WeekSchedule {
    /// The same intervals from Monday to Friday, nothing at the weekend.
    pub fn weekdays(intervals: &[WorkingInterval]) -> Self {
        Self {
            monday: intervals.to_vec(),
            tuesday: intervals.to_vec(),
            wednesday: intervals.to_vec(),
            thursday: intervals.to_vec(),
            friday: intervals.to_vec(),
            ..Self::default()
        }
    }

    /// Monday first.
    pub fn days(&self) -> [(&'static str, &Vec<WorkingInterval>); 7] {
        [
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
            ("sunday", &self.sunday),
        ]
    }
}

/// Days off, both ends inclusive: `{"name": "国庆节 National Day", "from": "2026-10-01",
/// "to": "2026-10-07"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidaySpec {
    pub name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// A weekend day declared a working day (调休): `{"name": "国庆节调休", "date": "2026-10-10"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MakeUpDaySpec {
    pub name: String,
    pub date: NaiveDate,
}

/// A calendar as written in the file; [`BusinessCalendar`] is the checked, indexed form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// Stable id that districts refer to, e.g. `cn`.
    pub id: String,
    pub name: String,
    /// IANA name of the time zone, for people (`Asia/Shanghai`); arithmetic uses the offset.
    pub time_zone: String,
    /// The zone's fixed offset from UTC, e.g. `+08:00`.
    pub utc_offset: UtcOffset,
    pub working_hours: WeekSchedule,
    #[serde(default)]
    pub holidays: Vec<HolidaySpec>,
    #[serde(default)]
    pub make_up_working_days: Vec<MakeUpDaySpec>,
    /// The schedule of a make-up working day; Monday's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make_up_day_hours: Option<Vec<WorkingInterval>>,
    /// The last date for which the holidays are known (each year's schedule is published in
    /// November). Later dates follow the weekly schedule alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holidays_published_through: Option<NaiveDate>,
}

impl JsonSchema for WorkingInterval {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WorkingInterval".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Local working time from start to end, `HH:MM-HH:MM`; `24:00` ends a day.",
            "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
            "examples": ["08:30-12:00"]
        })
    }
}

impl JsonSchema for UtcOffset {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UtcOffset".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A fixed offset from UTC, `+HH:MM` or `-HH:MM`, within ±18:00.",
            "pattern": "^[+-]([01][0-9]|2[0-3]):[0-5][0-9]$",
            "examples": ["+08:00"]
        })
    }
}

/// `calendars.json`: the calendars an installation knows and the default one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge business calendars")]
pub struct CalendarFile {
    /// The calendar a district uses when its grid entry names none.
    pub default_calendar: String,
    pub calendars: Vec<CalendarSpec>,
}

// ---------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------

/// The share of a limit, in percent, at which a warning fires unless a policy says otherwise
/// (the supervisors' traffic light turns yellow).
pub const DEFAULT_WARNING_PERCENT: u8 = 80;

fn default_warning_percent() -> u8 {
    DEFAULT_WARNING_PERCENT
}

/// How a step's time is counted, which its limit's unit decides: in working time of the
/// district's business calendar (`working_*` units), or on the plain clock, day and night,
/// holidays included (`clock_*` units and `calendar_days`; emergencies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SlaClock {
    /// Working time of the business calendar.
    #[default]
    Business,
    /// Plain clock time, day and night, holidays included.
    Continuous,
}

/// One step's limit, per priority. A priority without its own entry uses `all`; before a
/// case is accepted its priority is unknown and `all` applies, else `normal`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepTargets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<TimeLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgent: Option<TimeLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<TimeLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal: Option<TimeLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<TimeLimit>,
}

impl StepTargets {
    /// The same limit for every priority.
    pub fn all(limit: TimeLimit) -> Self {
        Self {
            all: Some(limit),
            ..Self::default()
        }
    }

    /// The limit for a case of `priority` (`None`: not accepted yet).
    pub fn limit_for(&self, priority: Option<Priority>) -> Option<TimeLimit> {
        let own = match priority {
            Some(Priority::Urgent) => self.urgent,
            Some(Priority::High) => self.high,
            Some(Priority::Normal) => self.normal,
            Some(Priority::Low) => self.low,
            None => None,
        };
        match priority {
            Some(_) => own.or(self.all),
            None => self.all.or(self.normal),
        }
    }

    /// Every limit the targets set, for every priority.
    pub fn limits(&self) -> impl Iterator<Item = TimeLimit> {
        [self.all, self.urgent, self.high, self.normal, self.low]
            .into_iter()
            .flatten()
    }
}

/// What the timer service does when an escalation level falls due.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EscalationAction {
    /// Give the task to another worker of the same cell.
    ReassignInCell,
    /// Move the case to the tier above (building → community → district).
    EscalateTier,
}

/// One rung of a ladder: `action`, `after` the previous rung (the first: after the deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    pub action: EscalationAction,
    pub after: TimeLimit,
}

/// Limits, warning threshold, clock and escalation ladders for a kind of case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    /// Stable name that the category assignments refer to, e.g. `standard`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Share of a limit (1..=99 percent) at which a warning fires.
    #[serde(default = "default_warning_percent")]
    pub warning_percent: u8,
    /// The limit of each timed step; a step without an entry is not timed.
    pub targets: BTreeMap<SlaStep, StepTargets>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub escalation: BTreeMap<SlaStep, Vec<EscalationLevel>>,
}

impl SlaPolicy {
    /// The limit of `step` for a case of `priority` (`None`: not accepted yet), or `None`
    /// when the policy does not time that step.
    pub fn limit(&self, step: SlaStep, priority: Option<Priority>) -> Option<TimeLimit> {
        self.targets.get(&step)?.limit_for(priority)
    }

    /// The escalation ladder of `step`, lowest rung first (empty if it has none).
    pub fn ladder(&self, step: SlaStep) -> &[EscalationLevel] {
        self.escalation.get(&step).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// `policies.json`: the time-limit policies and the one a category without its own uses.
/// Which policy a category runs under is said once, in the category catalogue
/// (`sla_policy` of each category in `deploy/grid/categories.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge SLA policies")]
pub struct PolicyFile {
    /// The policy of a category whose catalogue entry names none.
    pub default_policy: String,
    pub policies: Vec<SlaPolicy>,
}

// ---------------------------------------------------------------------------------------
// SLA events: the reference data changed at run time
// ---------------------------------------------------------------------------------------

/// One change to the SLA reference data at run time. Serialized adjacently:
/// `{"event_type": "sla.calendars_published", "payload": {...}}`.
///
/// Both are upserts: a published calendar (policy) replaces the one with the same id (name)
/// and leaves the others as they are; only the ones listed in `removed` go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event_type", content = "payload")]
pub enum SlaEvent {
    #[serde(rename = "sla.calendars_published")]
    CalendarsPublished(CalendarsPublished),
    #[serde(rename = "sla.policies_published")]
    PoliciesPublished(PoliciesPublished),
}

/// `(event_type, current schema version)` for every SLA event.
pub const SLA_EVENT_CATALOGUE: &[(&str, u16)] = &[
    ("sla.calendars_published", 1),
    ("sla.policies_published", 1),
];

/// The schema version a freshly written SLA event of this type carries.
pub fn current_sla_schema_version(event_type: &str) -> Option<u16> {
    SLA_EVENT_CATALOGUE
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, version)| *version)
}

impl SlaEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::CalendarsPublished(_) => "sla.calendars_published",
            Self::PoliciesPublished(_) => "sla.policies_published",
        }
    }

    /// The version this crate writes for this event's type.
    pub fn schema_version(&self) -> u16 {
        current_sla_schema_version(self.event_type())
            .expect("every SlaEvent variant is listed in SLA_EVENT_CATALOGUE")
    }

    /// The calendar ids or policy names the event publishes, in its order.
    pub fn published(&self) -> Vec<String> {
        match self {
            Self::CalendarsPublished(published) => published
                .calendars
                .iter()
                .map(|calendar| calendar.id.clone())
                .collect(),
            Self::PoliciesPublished(published) => published
                .policies
                .iter()
                .map(|policy| policy.name.clone())
                .collect(),
        }
    }
}

/// Calendars published: each replaces the calendar with its id, or is added. A calendars
/// file (`calendars.json`, [`CalendarFile`]) is a valid payload as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarsPublished {
    /// The calendars, whole: a calendar's holidays are the ones listed here, so the next
    /// year's schedule is published together with the current year's.
    pub calendars: Vec<CalendarSpec>,
    /// The new default calendar (for districts that name none); absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_calendar: Option<String>,
    /// Ids of calendars to withdraw. A calendar a district uses, or the default, cannot go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

/// Policies published: each replaces the policy with its name, or is added. A policies file
/// (`policies.json`, [`PolicyFile`]) is a valid payload as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliciesPublished {
    pub policies: Vec<SlaPolicy>,
    /// The new default policy (for categories that name none); absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_policy: Option<String>,
    /// Names of policies to withdraw. A policy the category catalogue names, or the
    /// default, cannot go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

/// The envelope an SLA event travels in, on the SLA stream (`WANGGE_SLA`, subject
/// `wangge.sla.events`): one message per event, in the order the reference data changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Wangge SLA event envelope")]
pub struct SlaEventEnvelope {
    /// Unique id of this event: derived (UUIDv8) from `source`, so a command sent twice
    /// names the same event.
    pub event_id: Uuid,
    /// The event type and its payload.
    #[serde(flatten)]
    pub event: SlaEvent,
    /// Version of the payload's schema for this event type.
    #[schemars(range(min = 1))]
    pub schema_version: u16,
    /// When the change took effect, per the sender (when the engine recorded it if the
    /// sender did not say).
    pub occurred_at: DateTime<Utc>,
    /// When the engine recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Who published it: an operator (`supervisor`) or a system (`system`).
    pub actor: Actor,
    /// The sending system and its own id for the command; the idempotency key.
    pub source: Source,
}

impl SlaEventEnvelope {
    /// Wraps `event` at its current schema version.
    pub fn new(event_id: Uuid, event: SlaEvent, meta: SlaEventMeta) -> Self {
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

/// Everything about an SLA event but the event itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaEventMeta {
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub actor: Actor,
    pub source: Source,
}

/// The id of the SLA event a source message becomes: a UUIDv8 from SHA-256 of the source,
/// so the same `(system, message_id)` always names the same event.
pub fn sla_event_id(source: &Source) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(b"wangge.sla.v1\0");
    hasher.update(source.system.as_bytes());
    hasher.update(b"\0");
    hasher.update(source.message_id.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

/// Decodes one stored SLA event, refusing unknown types and versions this crate cannot read.
///
/// Both types are at version 1; when one is bumped its upcaster goes here, as for case
/// events in [`crate::upcast`].
pub fn decode_sla_event(value: Value) -> Result<SlaEventEnvelope, DecodeError> {
    let object = value.as_object().ok_or(DecodeError::NotAnObject)?;
    let event_type = object
        .get("event_type")
        .and_then(Value::as_str)
        .ok_or(DecodeError::MissingField("event_type"))?;
    let current = current_sla_schema_version(event_type)
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
    serde_path_to_error::deserialize::<_, SlaEventEnvelope>(value).map_err(|e| {
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

// ---------------------------------------------------------------------------------------
// SLA commands: how operators publish calendars and policies
// ---------------------------------------------------------------------------------------

/// The subject SLA commands are sent to, by request-reply.
pub const SLA_COMMAND_SUBJECT: &str = "wangge.sla.commands";

/// Largest SLA command accepted, in bytes of JSON: room for every calendar and policy of an
/// installation several times over.
pub const MAX_SLA_COMMAND_BYTES: usize = 256 * 1024;

/// Longest source system, message id or actor id, in characters.
pub const MAX_SLA_ID_CHARS: usize = 128;

/// Longest calendar id or policy name, in characters. Both are named from other data (a
/// district's `calendar`, a category's `sla_policy`), so they are short ASCII words.
pub const MAX_SLA_NAME_CHARS: usize = 64;

/// Longest display name, time zone name, description or holiday name, in characters.
pub const MAX_SLA_TEXT_CHARS: usize = 1000;

/// Most calendars or policies in one command, and most holidays or make-up days in one
/// calendar (decades of schedules).
pub const MAX_SLA_LIST_ITEMS: usize = 512;

/// A publish of calendars or policies, as an operator's tool sends it to
/// `wangge.sla.commands`: the SLA event it asks for without what the engine adds
/// (`event_id`, `recorded_at`).
///
/// Unknown fields are refused, at the top level and in the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Wangge SLA command", extend("unevaluatedProperties" = false))]
pub struct SlaCommand {
    /// The event type and its payload.
    #[serde(flatten)]
    pub event: SlaEvent,
    /// Version of the payload's schema for this event type (see the event's own schema).
    #[schemars(range(min = 1))]
    pub schema_version: u16,
    /// The sending system and its own id for this command, unique per system. The
    /// idempotency key: the same command sent again, a second or a month later, publishes
    /// once; the reply then says `duplicate: true`.
    pub source: Source,
    /// Who publishes.
    pub actor: Actor,
    /// When the change takes effect; absent: when the engine records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// The top-level fields an [`SlaCommand`] may have.
pub const SLA_COMMAND_FIELDS: &[&str] = &[
    "event_type",
    "payload",
    "schema_version",
    "source",
    "actor",
    "occurred_at",
];

/// The engine's answer to an SLA command (the reply of request-reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[schemars(title = "Wangge SLA command reply")]
pub enum SlaReply {
    /// The publish is on the SLA stream (or, on a retry, already was), and the answering
    /// engine's live SLA data holds it.
    Accepted {
        /// The SLA event's id.
        event_id: Uuid,
        event_type: String,
        /// The event's position on the SLA stream.
        position: u64,
        /// True when this command was seen before and nothing new was written.
        duplicate: bool,
        /// The calendar ids or policy names published, in the command's order.
        published: Vec<String>,
    },
    /// The command was refused and changed nothing; it is kept in the rejected stream.
    Rejected {
        /// Machine-readable reason, e.g. `overlapping_intervals`, `policy_in_use`.
        code: String,
        /// JSON path of the offending field, e.g. `payload.calendars[0].holidays[2].to`;
        /// absent for whole-message errors.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// Human-readable explanation.
        reason: String,
        /// Where the refused message is kept (its sequence in the rejected stream).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejected_id: Option<u64>,
    },
}

//! Intake messages: what other systems publish to open a case or to evaluate one, and what
//! they get back.
//!
//! Each message names its `kind` and `schema_version`; the body of each kind is a struct of
//! its own with unknown fields refused, so a typo in a field name is an error, not silence.
//! The limits below are part of the contract and appear in the generated JSON Schemas.
//!
//! Three kinds open a case ([`IntakeKind`], stored in `case.reported`); the fourth,
//! `evaluation` ([`EvaluationV1`]), is a resident's verdict on a case that was closed
//! (综合评价). [`IntakeMessageKind`] names all four, as subjects and `kind` fields do.

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::envelope::{CaseId, Source};
use crate::events::{Channel, Coordinates, IntakeKind, MediaRef, PatrolKind, SatisfactionLevel};

/// Largest intake message accepted, in bytes of JSON.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest title, in characters (not bytes: Chinese text is three bytes a character).
pub const MAX_TITLE_CHARS: usize = 100;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Most media references on one message.
pub const MAX_MEDIA: usize = 10;
/// Longest identifier (source system, message id, resident or worker id), in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest comment on an evaluation, in characters: as long as a description, because the
/// hotline's operator types what the resident said on the phone.
pub const MAX_COMMENT_CHARS: usize = MAX_DESCRIPTION_CHARS;

/// The intake schema version this engine reads.
pub const INTAKE_SCHEMA_VERSION: u16 = 1;

/// The resident as a sender publishes them: the pseudonymous account id of the sending
/// system — never a phone number: the id stays in the event log after the resident's
/// contact details are erased — and their contact details, which the engine seals under
/// the resident's own key before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakeResident {
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub phone: Option<String>,
    /// 居民身份证号码: 17 digits and a check digit (0-9 or X), checked (GB 11643).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{17}[0-9X]$"))]
    pub id_number: Option<String>,
}

impl IntakeResident {
    /// The contact details, without the id.
    pub fn contact(&self) -> crate::events::ResidentContact {
        crate::events::ResidentContact {
            name: self.name.clone(),
            phone: self.phone.clone(),
            id_number: self.id_number.clone(),
        }
    }
}

/// A resident's report of a problem (随手拍, 12345, WeChat group, kiosk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge intake: resident report")]
pub struct ResidentReportV1 {
    #[schemars(schema_with = "kind_schema::resident_report")]
    pub kind: String,
    #[schemars(schema_with = "version_one_schema")]
    pub schema_version: u16,
    pub source: Source,
    /// When the resident made the report, per the publishing system.
    pub reported_at: DateTime<Utc>,
    /// The building cell code the report is located in.
    pub building: String,
    pub channel: Channel,
    pub resident: IntakeResident,
    #[schemars(length(min = 1, max = MAX_TITLE_CHARS))]
    pub title: String,
    #[schemars(length(max = MAX_DESCRIPTION_CHARS))]
    pub description: String,
    /// A category code from the catalogue, e.g. `drainage.blocked`.
    pub category: String,
    #[serde(default)]
    #[schemars(length(max = MAX_MEDIA))]
    pub media: Vec<MediaRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<Coordinates>,
}

/// A grid worker's patrol finding (巡查).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge intake: patrol finding")]
pub struct PatrolFindingV1 {
    #[schemars(schema_with = "kind_schema::patrol_finding")]
    pub kind: String,
    #[schemars(schema_with = "version_one_schema")]
    pub schema_version: u16,
    pub source: Source,
    pub reported_at: DateTime<Utc>,
    pub building: String,
    pub worker_id: String,
    pub patrol_kind: PatrolKind,
    #[schemars(length(min = 1, max = MAX_TITLE_CHARS))]
    pub title: String,
    #[schemars(length(max = MAX_DESCRIPTION_CHARS))]
    pub description: String,
    pub category: String,
    /// The worker fixed it on the spot (自处理).
    #[serde(default)]
    pub fixed_on_spot: bool,
    #[serde(default)]
    #[schemars(length(max = MAX_MEDIA))]
    pub media: Vec<MediaRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<Coordinates>,
}

/// A resident's request for a service (居住证明, 高龄认证, 微心愿, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge intake: service request")]
pub struct ServiceRequestV1 {
    #[schemars(schema_with = "kind_schema::service_request")]
    pub kind: String,
    #[schemars(schema_with = "version_one_schema")]
    pub schema_version: u16,
    pub source: Source,
    pub reported_at: DateTime<Utc>,
    pub building: String,
    pub channel: Channel,
    pub resident: IntakeResident,
    /// The service's category code, e.g. `service.residence_certificate`.
    pub service: String,
    #[schemars(length(min = 1, max = MAX_TITLE_CHARS))]
    pub title: String,
    #[schemars(length(max = MAX_DESCRIPTION_CHARS))]
    pub description: String,
    #[serde(default)]
    #[schemars(length(max = MAX_MEDIA))]
    pub media: Vec<MediaRef>,
}

/// A resident's evaluation of a closed case (综合评价): how satisfied they are and, when they
/// were asked, whether the problem was solved (问题是否解决). Published by the system the
/// resident answered in — the mini-program, or the 12345 hotline calling them back (回访)
/// on their behalf — to `wangge.intake.evaluation`.
///
/// The case must be closed, the resident must be the one who reported it, and each closure
/// is evaluated once (a reopened and closed again case may be evaluated again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Wangge intake: evaluation")]
pub struct EvaluationV1 {
    #[schemars(schema_with = "kind_schema::evaluation")]
    pub kind: String,
    #[schemars(schema_with = "version_one_schema")]
    pub schema_version: u16,
    /// The idempotency key: the same evaluation sent again is answered, never recorded twice.
    /// It must not be the source of the report itself.
    pub source: Source,
    /// When the resident gave the evaluation, per the publishing system.
    pub evaluated_at: DateTime<Utc>,
    /// The case evaluated: the `case_id` of the accepted reply to its report.
    pub case_id: CaseId,
    /// The resident evaluating: the one who reported the case.
    pub resident: IntakeResident,
    /// How the evaluation came; the hotline acting for the resident sends `hotline12345`.
    pub channel: Channel,
    pub satisfaction: Satisfaction,
    /// The resident's answer to "was the problem solved?" (问题是否解决), when they were
    /// asked. The resolution rate (解决率) counts it; without it a satisfaction of 3 or more
    /// counts as solved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<bool>,
    /// What the resident said, in their words. Leave it out rather than send it empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_COMMENT_CHARS))]
    pub comment: Option<String>,
}

/// How satisfied a resident is, on either scale a publishing system uses: the hotlines'
/// three levels (`"satisfied"` 满意, `"basically_satisfied"` 基本满意, `"dissatisfied"` 不满意)
/// or a score from 1 (very dissatisfied) to 5 (very satisfied).
///
/// The engine stores a score: a level becomes 满意 5, 基本满意 4, 不满意 1
/// ([`SatisfactionLevel::score`]), so the satisfaction rate (满意率, a score of 4 or more)
/// counts 满意 and 基本满意, as the hotlines count them.
///
/// Reading refuses a score outside 1–5 and an unknown level with a message naming both
/// scales, so a value of this type always has a valid score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Satisfaction {
    Level(SatisfactionLevel),
    Score(u8),
}

impl Satisfaction {
    /// The lowest and highest score.
    pub const SCORES: std::ops::RangeInclusive<u8> = 1..=5;

    /// The score the engine stores, 1 to 5.
    pub fn score(self) -> u8 {
        match self {
            Self::Level(level) => level.score(),
            Self::Score(score) => score,
        }
    }

    /// The three-level word, when the resident answered on that scale.
    pub fn level(self) -> Option<SatisfactionLevel> {
        match self {
            Self::Level(level) => Some(level),
            Self::Score(_) => None,
        }
    }
}

impl Serialize for Satisfaction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Level(level) => level.serialize(serializer),
            Self::Score(score) => serializer.serialize_u8(*score),
        }
    }
}

/// What a sender reads when the value is neither a known level nor a score.
const SATISFACTION_EXPECTED: &str =
    "`satisfied`, `basically_satisfied`, `dissatisfied` or a score from 1 to 5";

impl<'de> Deserialize<'de> for Satisfaction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SatisfactionVisitor)
    }
}

struct SatisfactionVisitor;

impl SatisfactionVisitor {
    fn score<E: serde::de::Error>(value: i128) -> Result<Satisfaction, E> {
        match u8::try_from(value) {
            Ok(score) if Satisfaction::SCORES.contains(&score) => Ok(Satisfaction::Score(score)),
            _ => Err(E::custom(format_args!(
                "satisfaction score {value} is out of range; expected {SATISFACTION_EXPECTED}"
            ))),
        }
    }
}

impl serde::de::Visitor<'_> for SatisfactionVisitor {
    type Value = Satisfaction;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(SATISFACTION_EXPECTED)
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Satisfaction, E> {
        SatisfactionLevel::parse(value)
            .map(Satisfaction::Level)
            .ok_or_else(|| {
                E::custom(format_args!(
                    "unknown satisfaction level `{value}`; expected {SATISFACTION_EXPECTED}"
                ))
            })
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Satisfaction, E> {
        Self::score(i128::from(value))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Satisfaction, E> {
        Self::score(i128::from(value))
    }

    /// JSON Schema counts `4.0` as an integer; so does the engine. `4.5` is no score.
    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Satisfaction, E> {
        if value.fract() == 0.0 && (-1e6..=1e6).contains(&value) {
            return Self::score(value as i128);
        }
        Err(E::invalid_type(serde::de::Unexpected::Float(value), &self))
    }
}

impl JsonSchema for Satisfaction {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Satisfaction".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let level = generator.subschema_for::<SatisfactionLevel>();
        schemars::json_schema!({
            "description": "How satisfied the resident is: a level of the hotlines' three-level scale (stored as 满意 5, 基本满意 4, 不满意 1) or a score from 1 (very dissatisfied) to 5 (very satisfied).",
            "oneOf": [
                level,
                { "type": "integer", "minimum": 1, "maximum": 5 }
            ]
        })
    }
}

/// What an intake message's `kind` names, as its subject `wangge.intake.<kind>` does: one of
/// the ways a case comes in, or a resident's evaluation of a closed case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntakeMessageKind {
    /// Opens a case.
    Case(IntakeKind),
    /// Evaluates a closed case.
    Evaluation,
}

impl IntakeMessageKind {
    pub const ALL: [IntakeMessageKind; 4] = [
        Self::Case(IntakeKind::ResidentReport),
        Self::Case(IntakeKind::PatrolFinding),
        Self::Case(IntakeKind::ServiceRequest),
        Self::Evaluation,
    ];

    /// The name in `kind` fields and subjects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Case(kind) => kind.as_str(),
            Self::Evaluation => "evaluation",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A parsed intake message that opens a case, of any of its kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum IntakeMessage {
    ResidentReport(ResidentReportV1),
    PatrolFinding(PatrolFindingV1),
    ServiceRequest(ServiceRequestV1),
}

impl IntakeMessage {
    pub fn kind(&self) -> IntakeKind {
        match self {
            Self::ResidentReport(_) => IntakeKind::ResidentReport,
            Self::PatrolFinding(_) => IntakeKind::PatrolFinding,
            Self::ServiceRequest(_) => IntakeKind::ServiceRequest,
        }
    }

    pub fn source(&self) -> &Source {
        match self {
            Self::ResidentReport(m) => &m.source,
            Self::PatrolFinding(m) => &m.source,
            Self::ServiceRequest(m) => &m.source,
        }
    }

    /// The sender's claimed time of the report.
    pub fn reported_at(&self) -> DateTime<Utc> {
        match self {
            Self::ResidentReport(m) => m.reported_at,
            Self::PatrolFinding(m) => m.reported_at,
            Self::ServiceRequest(m) => m.reported_at,
        }
    }
}

/// The engine's answer to an intake message (the reply of request-reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[schemars(title = "Wangge intake reply")]
pub enum IntakeReply {
    /// The message opened (or, on a retry, had already opened) this case; for an
    /// evaluation, the case it evaluated.
    Accepted {
        case_id: CaseId,
        /// The case's sequence number after the message (1 for a new case).
        sequence: u64,
        /// True when this message was seen before and nothing new was written.
        duplicate: bool,
    },
    /// The message was refused; it is kept in the rejected stream for an operator.
    Rejected {
        /// Machine-readable reason, e.g. `missing_field`, `unknown_category`, `not_reporter`.
        code: String,
        /// JSON path of the offending field, e.g. `resident.id`; absent for whole-message errors.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// Human-readable explanation.
        reason: String,
        /// Where the rejected message is kept (its sequence in the rejected stream).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejected_id: Option<u64>,
    },
}

fn version_one_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "integer", "const": INTAKE_SCHEMA_VERSION })
}

mod kind_schema {
    pub fn resident_report(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "const": "resident_report" })
    }
    pub fn patrol_finding(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "const": "patrol_finding" })
    }
    pub fn service_request(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "const": "service_request" })
    }
    pub fn evaluation(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "const": "evaluation" })
    }
}

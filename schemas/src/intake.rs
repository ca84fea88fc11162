//! Intake messages: what other systems publish to open a case, and what they get back.
//!
//! Each message names its `kind` and `schema_version`; the body of each kind is a struct of
//! its own with unknown fields refused, so a typo in a field name is an error, not silence.
//! The limits below are part of the contract and appear in the generated JSON Schemas.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::envelope::{CaseId, Source};
use crate::events::{Channel, Coordinates, IntakeKind, MediaRef, PatrolKind, Resident};

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

/// The intake schema version this engine reads.
pub const INTAKE_SCHEMA_VERSION: u16 = 1;

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
    pub resident: Resident,
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
    pub resident: Resident,
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

/// A parsed intake message of any kind.
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
}

/// The engine's answer to an intake message (the reply of request-reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
#[schemars(title = "Wangge intake reply")]
pub enum IntakeReply {
    /// The message opened (or, on a retry, had already opened) this case.
    Accepted {
        case_id: CaseId,
        /// The case's sequence number after the report (1 for a new case).
        sequence: u64,
        /// True when this message was seen before and nothing new was written.
        duplicate: bool,
    },
    /// The message was refused; it is kept in the rejected stream for an operator.
    Rejected {
        /// Machine-readable reason, e.g. `missing_field`, `unknown_category`.
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
}

//! Reading stored events of any version: old payloads are upcast to the current shape.
//!
//! Events are immutable, so a payload change never rewrites history. Instead every stored
//! event keeps the `schema_version` it was written with, and loading runs it through the
//! chain of upcasters for its type until it reaches the version this crate writes. Each
//! upcaster is a pure function over JSON, registered in [`UPCASTERS`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::envelope::EventEnvelope;
use crate::events::{
    current_schema_version, Channel, Coordinates, IntakeClock, MediaKind, MediaRef, PatrolKind,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event is not valid json: {0}")]
    MalformedJson(String),
    #[error("event is not a json object")]
    NotAnObject,
    #[error("event has no `{0}` field")]
    MissingField(&'static str),
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    #[error(
        "event type `{event_type}` has schema version {version}, this engine reads up to {current}"
    )]
    UnsupportedVersion {
        event_type: String,
        version: u64,
        current: u16,
    },
    #[error("event does not match its schema at `{path}`: {reason}")]
    Invalid { path: String, reason: String },
}

/// One step up: rewrites a payload of `event_type` from `from_version` to `from_version + 1`.
///
/// Fallible because a stored payload may not match even its own old schema; such an event
/// must fail to load rather than lose the malformed field on the way up.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u16,
    pub upcast: fn(&mut Map<String, Value>) -> Result<(), DecodeError>,
}

/// Every upcaster, oldest first within a type.
pub const UPCASTERS: &[Upcaster] = &[
    Upcaster {
        event_type: "case.resolved",
        from_version: 1,
        upcast: resolved_v1_to_v2,
    },
    Upcaster {
        event_type: "case.extension_granted",
        from_version: 1,
        upcast: extension_granted_v1_to_v2,
    },
    Upcaster {
        event_type: "case.reported",
        from_version: 1,
        upcast: reported_v1_to_v2,
    },
];

/// `case.resolved` version 1: one optional photo. Kept to document (and generate the schema
/// of) what older publishers wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CaseResolvedV1 {
    pub worker_id: String,
    pub notes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
}

/// v1 → v2: the single `photo_url` becomes a one-element `media` list of kind photo.
fn resolved_v1_to_v2(payload: &mut Map<String, Value>) -> Result<(), DecodeError> {
    let media: Vec<MediaRef> = match payload.remove("photo_url") {
        Some(Value::String(url)) => vec![MediaRef {
            kind: MediaKind::Photo,
            url,
            sha256: None,
        }],
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(DecodeError::Invalid {
                path: "$.payload.photo_url".to_owned(),
                reason: format!("expected a string or null in a version 1 payload, got {other}"),
            })
        }
    };
    let media = serde_json::to_value(media).map_err(|error| DecodeError::Invalid {
        path: "$.payload.media".to_owned(),
        reason: error.to_string(),
    })?;
    payload.insert("media".to_owned(), media);
    Ok(())
}

/// The units of a time limit in version 1 events: `minutes` meant plain clock minutes in a
/// policy's limit but minutes of the step's own measure in an extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnitV1 {
    Minutes,
    WorkingHours,
    WorkingDays,
}

/// A time limit as version 1 events wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TimeLimitV1 {
    #[schemars(range(min = 1))]
    pub amount: u32,
    pub unit: TimeUnitV1,
}

/// `case.extension_granted` version 1. Kept to document (and generate the schema of) what
/// older engines wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExtensionGrantedV1 {
    pub step: crate::events::SlaStep,
    pub extension: TimeLimitV1,
    pub reason: String,
}

/// v1 → v2: `minutes` becomes `working_minutes`. Version 1 counted an extension's minutes in
/// the step's own measure, which for the handling steps extensions are granted on was
/// working time; `working_hours` and `working_days` keep their names and meaning.
fn extension_granted_v1_to_v2(payload: &mut Map<String, Value>) -> Result<(), DecodeError> {
    let unit = payload
        .get_mut("extension")
        .and_then(Value::as_object_mut)
        .and_then(|extension| extension.get_mut("unit"))
        .ok_or_else(|| DecodeError::Invalid {
            path: "$.payload.extension.unit".to_owned(),
            reason: "a version 1 extension must have a unit".to_owned(),
        })?;
    match unit.as_str() {
        Some("minutes") => *unit = Value::from("working_minutes"),
        Some("working_hours" | "working_days") => {}
        _ => {
            return Err(DecodeError::Invalid {
                path: "$.payload.extension.unit".to_owned(),
                reason: format!(
                    "expected `minutes`, `working_hours` or `working_days` in a version 1 \
                     payload, got {unit}"
                ),
            })
        }
    }
    Ok(())
}

/// A resident as version 1 of `case.reported` held them: name and phone in plain text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResidentV1 {
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub phone: Option<String>,
}

/// `ReportDetails` of version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "intake", rename_all = "snake_case")]
pub enum ReportDetailsV1 {
    ResidentReport {
        channel: Channel,
        resident: ResidentV1,
    },
    PatrolFinding {
        worker_id: String,
        patrol_kind: PatrolKind,
        fixed_on_spot: bool,
    },
    ServiceRequest {
        channel: Channel,
        resident: ResidentV1,
    },
}

/// `case.reported` version 1: the resident's contact in plain text. Kept to document (and
/// generate the schema of) what engines before sealed contacts wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CaseReportedV1 {
    pub title: String,
    pub description: String,
    pub reported_category: String,
    #[serde(default)]
    pub media: Vec<MediaRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<Coordinates>,
    pub details: ReportDetailsV1,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intake_clock: Option<Box<IntakeClock>>,
}

/// v1 → v2: a resident's plain `name` and `phone` move into `legacy_contact`, which says
/// what they are: readable, and beyond erasure without rewriting the stream. A patrol
/// finding has no resident and is left as it is.
fn reported_v1_to_v2(payload: &mut Map<String, Value>) -> Result<(), DecodeError> {
    let Some(resident) = payload
        .get_mut("details")
        .and_then(Value::as_object_mut)
        .and_then(|details| details.get_mut("resident"))
    else {
        return Ok(());
    };
    let Value::Object(resident) = resident else {
        return Err(DecodeError::Invalid {
            path: "$.payload.details.resident".to_owned(),
            reason: format!("expected an object in a version 1 payload, got {resident}"),
        });
    };
    let mut legacy = Map::new();
    for field in ["name", "phone"] {
        match resident.remove(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => {
                legacy.insert(field.to_owned(), Value::String(text));
            }
            Some(other) => {
                return Err(DecodeError::Invalid {
                    path: format!("$.payload.details.resident.{field}"),
                    reason: format!("expected a string in a version 1 payload, got {other}"),
                })
            }
        }
    }
    if !legacy.is_empty() {
        resident.insert("legacy_contact".to_owned(), Value::Object(legacy));
    }
    Ok(())
}

/// Decodes one stored event from JSON bytes, upcasting as needed.
pub fn decode_event_slice(bytes: &[u8]) -> Result<EventEnvelope, DecodeError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::MalformedJson(e.to_string()))?;
    decode_event(value)
}

/// Decodes one stored event, upcasting its payload to the current schema version.
pub fn decode_event(mut value: Value) -> Result<EventEnvelope, DecodeError> {
    upcast_in_place(&mut value)?;
    serde_path_to_error::deserialize::<_, EventEnvelope>(value).map_err(|e| {
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

/// Brings one event's JSON to the current version without deserializing it.
pub fn upcast_in_place(value: &mut Value) -> Result<(), DecodeError> {
    let object = value.as_object_mut().ok_or(DecodeError::NotAnObject)?;
    let event_type = object
        .get("event_type")
        .and_then(Value::as_str)
        .ok_or(DecodeError::MissingField("event_type"))?
        .to_owned();
    let current = current_schema_version(&event_type)
        .ok_or_else(|| DecodeError::UnknownEventType(event_type.clone()))?;
    let stored = match object.get("schema_version") {
        None => return Err(DecodeError::MissingField("schema_version")),
        Some(version) => version.as_u64().ok_or_else(|| DecodeError::Invalid {
            path: "$.schema_version".to_owned(),
            reason: format!("schema_version must be a positive integer, found {version}"),
        })?,
    };
    if stored == 0 || stored > u64::from(current) {
        return Err(DecodeError::UnsupportedVersion {
            event_type,
            version: stored,
            current,
        });
    }
    let mut version = stored as u16;
    while version < current {
        let step = UPCASTERS
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == version)
            .ok_or(DecodeError::UnsupportedVersion {
                event_type: event_type.clone(),
                version: stored,
                current,
            })?;
        let payload = object
            .get_mut("payload")
            .and_then(Value::as_object_mut)
            .ok_or(DecodeError::MissingField("payload"))?;
        (step.upcast)(payload)?;
        version += 1;
    }
    object.insert("schema_version".to_owned(), Value::from(current));
    Ok(())
}

//! The outer checks a reference-data command goes through before its own: grid commands
//! (`wangge.grid.commands`) and SLA commands (`wangge.sla.commands`) are both the event
//! they ask for plus `schema_version`, `source`, `actor` and `occurred_at`, and are refused
//! in the same words for the same faults — size, JSON syntax, a message that is not an
//! object, a control character anywhere in it, an unknown top-level field, an unknown event
//! type or version, a field of the wrong shape (named by its JSON path), text or lists too long.
//!
//! Each check answers with a [`Refusal`]; the grid's and the SLA's rejection types take it
//! with `From`, so their own codes stay theirs.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::intake::{json_type, typed};

/// A command refused by one of the shared checks: a code, the JSON path at fault (`None`:
/// the message as a whole) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: &'static str,
    pub field: Option<String>,
    pub reason: String,
}

impl Refusal {
    fn whole(code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            code,
            field: None,
            reason: reason.into(),
        }
    }

    fn at(code: &'static str, field: &str, reason: impl Into<String>) -> Self {
        Self {
            code,
            field: Some(field.to_owned()),
            reason: reason.into(),
        }
    }
}

/// The command's bytes as a JSON object with only the `allowed` top-level fields.
pub(crate) fn command_object(
    bytes: &[u8],
    max_bytes: usize,
    allowed: &[&str],
) -> Result<Map<String, Value>, Refusal> {
    if bytes.len() > max_bytes {
        return Err(Refusal::whole(
            "payload_too_large",
            format!("message is {} bytes, the limit is {max_bytes}", bytes.len()),
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Refusal::whole("malformed_json", format!("message is not valid json: {e}")))?;
    if let Some((field, c)) = crate::text::find_control_character(&value) {
        let reason = crate::text::control_character_reason(&field, c);
        return Err(Refusal::at("control_character", &field, reason));
    }
    let Value::Object(object) = value else {
        return Err(Refusal::whole(
            "invalid_type",
            format!("message must be a json object, found {}", json_type(&value)),
        ));
    };
    if let Some(unknown) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(Refusal::at(
            "unknown_field",
            unknown,
            format!(
                "unknown field `{unknown}`, expected one of {}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(object)
}

/// The `event_type` field: one of `catalogue`'s types (`kind` names them in the reason:
/// "grid", "sla").
pub(crate) fn read_event_type(
    value: Option<&Value>,
    catalogue: &'static [(&'static str, u16)],
    kind: &str,
) -> Result<&'static str, Refusal> {
    match value {
        None => Err(Refusal::at(
            "missing_field",
            "event_type",
            "field `event_type` is required",
        )),
        Some(Value::String(name)) => catalogue
            .iter()
            .find(|(known, _)| known == name)
            .map(|(known, _)| *known)
            .ok_or_else(|| {
                let known: Vec<&str> = catalogue.iter().map(|(name, _)| *name).collect();
                Refusal::at(
                    "unknown_event_type",
                    "event_type",
                    format!(
                        "unknown {kind} event type `{name}`; known types: {}",
                        known.join(", ")
                    ),
                )
            }),
        Some(other) => Err(Refusal::at(
            "invalid_type",
            "event_type",
            format!("`event_type` must be a string, found {}", json_type(other)),
        )),
    }
}

/// The `schema_version` field: exactly the version `current` this engine reads.
pub(crate) fn read_schema_version(
    event_type: &str,
    current: u16,
    value: Option<&Value>,
) -> Result<(), Refusal> {
    match value {
        None => Err(Refusal::at(
            "missing_field",
            "schema_version",
            "field `schema_version` is required",
        )),
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(current)) => Ok(()),
        Some(Value::Number(n)) => Err(Refusal::at(
            "unsupported_version",
            "schema_version",
            format!(
                "schema version {n} of `{event_type}` is not supported; this engine reads version {current}"
            ),
        )),
        Some(other) => Err(Refusal::at(
            "invalid_type",
            "schema_version",
            format!(
                "`schema_version` must be an integer, found {}",
                json_type(other)
            ),
        )),
    }
}

/// The required field `name`, taken out of `object` and deserialized.
pub(crate) fn field_of<T: DeserializeOwned>(
    object: &mut Map<String, Value>,
    name: &str,
) -> Result<T, Refusal> {
    let value = object
        .remove(name)
        .ok_or_else(|| Refusal::at("missing_field", name, format!("field `{name}` is required")))?;
    typed_at(name, value)
}

/// The optional `occurred_at` field, taken out of `object`.
pub(crate) fn occurred_at(
    object: &mut Map<String, Value>,
) -> Result<Option<DateTime<Utc>>, Refusal> {
    match object.remove("occurred_at") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => typed_at("occurred_at", value).map(Some).map_err(|mut refusal| {
            if refusal.code == "invalid_value" {
                refusal.reason = format!(
                    "`occurred_at` must be an RFC 3339 date and time such as 2026-03-02T09:30:00+08:00 ({})",
                    refusal.reason
                );
            }
            refusal
        }),
    }
}

/// Deserializes `value` found at `prefix` (`""`: the top of a document), naming the
/// offending field under it by its JSON path.
pub(crate) fn typed_at<T: DeserializeOwned>(prefix: &str, value: Value) -> Result<T, Refusal> {
    typed::<T>(value).map_err(|rejection| {
        let field = match rejection.field {
            Some(field) => Some(join(prefix, &field)),
            None if prefix.is_empty() => None,
            None => Some(prefix.to_owned()),
        };
        Refusal {
            code: rejection.code.as_str(),
            field,
            reason: rejection.reason,
        }
    })
}

/// A JSON path and a field name under it, for paths that may start at the top (`""`).
pub(crate) fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Text at `field`: at most `max_chars` characters, and not blank when `required`.
pub(crate) fn check_text(
    field: &str,
    text: &str,
    max_chars: usize,
    required: bool,
) -> Result<(), Refusal> {
    if required && text.trim().is_empty() {
        return Err(Refusal::at(
            "empty_text",
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(Refusal::at(
            "text_too_long",
            field,
            format!("`{field}` is {chars} characters, the limit is {max_chars}"),
        ));
    }
    Ok(())
}

/// A list at `field` of `len` items: at most `max_items`.
pub(crate) fn check_list(field: &str, len: usize, max_items: usize) -> Result<(), Refusal> {
    if len > max_items {
        return Err(Refusal::at(
            "too_many_items",
            field,
            format!("`{field}` has {len} items, the limit is {max_items}"),
        ));
    }
    Ok(())
}

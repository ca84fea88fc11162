//! How a commit is laid out on the wire: a JSON array of event envelopes, plus headers that
//! let tools and other systems route a commit without parsing its body.

use bytes::Bytes;
use serde_json::Value;
use wangge_schemas::{decode_event, CaseId, EventEnvelope};

/// Header naming the case of a commit (also encoded in the subject).
pub const HEADER_CASE_ID: &str = "Wangge-Case-Id";
/// Headers with the first and last event sequence within the case.
pub const HEADER_FIRST_SEQUENCE: &str = "Wangge-First-Sequence";
pub const HEADER_LAST_SEQUENCE: &str = "Wangge-Last-Sequence";
/// Comma-separated positions of the case's earlier commits, oldest first (empty for the
/// first commit). Lets a reader fetch a whole case in one round of direct gets.
pub const HEADER_EARLIER_POSITIONS: &str = "Wangge-Earlier-Positions";
/// Comma-separated event types in the commit, in order.
pub const HEADER_EVENT_TYPES: &str = "Wangge-Event-Types";

/// Serializes a commit's events as one JSON array.
pub fn encode_events(events: &[EventEnvelope]) -> Bytes {
    Bytes::from(serde_json::to_vec(events).expect("event envelopes always serialize"))
}

/// Reads a commit body back, upcasting old event versions. Checks that every event belongs
/// to `case_id` and that sequences are consecutive.
pub fn decode_events(case_id: CaseId, body: &[u8]) -> Result<Vec<EventEnvelope>, String> {
    // Fast path: a body written by this version decodes straight into the types. Anything
    // else (an old schema version, a body that does not fit) goes the careful way, through
    // JSON values and the upcasters, which also names what is wrong.
    let events = match serde_json::from_slice::<Vec<EventEnvelope>>(body) {
        Ok(events)
            if events
                .iter()
                .all(|e| e.schema_version == e.event.schema_version()) =>
        {
            events
        }
        _ => decode_upcasting(body)?,
    };
    check_commit(case_id, &events)?;
    Ok(events)
}

fn decode_upcasting(body: &[u8]) -> Result<Vec<EventEnvelope>, String> {
    let raw: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| format!("commit body is not a json array: {e}"))?;
    raw.into_iter()
        .map(|value| decode_event(value).map_err(|e| e.to_string()))
        .collect()
}

fn check_commit(case_id: CaseId, events: &[EventEnvelope]) -> Result<(), String> {
    if events.is_empty() {
        return Err("commit holds no events".to_owned());
    }
    for (index, event) in events.iter().enumerate() {
        if event.case_id != case_id {
            return Err(format!(
                "event {} belongs to case {}, not {case_id}",
                event.event_id, event.case_id
            ));
        }
        if index > 0 && event.sequence != events[index - 1].sequence + 1 {
            return Err(format!(
                "sequence jumps from {} to {}",
                events[index - 1].sequence,
                event.sequence
            ));
        }
    }
    Ok(())
}

/// The event types of a commit, for the [`HEADER_EVENT_TYPES`] header.
pub fn event_types(events: &[EventEnvelope]) -> String {
    events
        .iter()
        .map(EventEnvelope::event_type)
        .collect::<Vec<_>>()
        .join(",")
}

//! Wrapping decided facts in envelopes: identity, order, provenance and place.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use wangge_schemas::{Actor, CaseEvent, CaseId, EventEnvelope, GridLocation, Source};

use super::command::CaseCommand;
use super::state::CaseState;

/// What the shell knows about the message that caused the events; the same for every
/// event one command produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub actor: Actor,
    pub source: Source,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

/// Envelopes for `events`, numbered `state.version + 1`, `+ 2`, … without gaps, each with
/// the schema version this build writes for its type. Event ids come from `next_event_id`
/// so that the caller chooses how ids are made (UUIDv7 in production, a counter in tests).
pub fn stamp(
    state: &CaseState,
    case_id: CaseId,
    location: &GridLocation,
    events: Vec<CaseEvent>,
    meta: &EventMeta,
    mut next_event_id: impl FnMut() -> Uuid,
) -> Vec<EventEnvelope> {
    let mut sequence = state.version;
    events
        .into_iter()
        .map(|event| {
            sequence += 1;
            EventEnvelope {
                event_id: next_event_id(),
                schema_version: event.schema_version(),
                event,
                case_id,
                sequence,
                occurred_at: meta.occurred_at,
                recorded_at: meta.recorded_at,
                actor: meta.actor.clone(),
                source: meta.source.clone(),
                correlation_id: meta.correlation_id,
                causation_id: meta.causation_id,
                location: location.clone(),
                sla_clock: None,
            }
        })
        .collect()
}

/// Where the events of `command` take place: a report names its place, every later
/// command happens where the case is. `None` when there is no case and no report.
pub fn location_for(state: &CaseState, command: &CaseCommand) -> Option<GridLocation> {
    match command {
        CaseCommand::Report { location, .. } => Some(location.clone()),
        _ => state.location.clone(),
    }
}

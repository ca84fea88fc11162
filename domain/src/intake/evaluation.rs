//! A resident's evaluation of a closed case (综合评价), as another system sends it: the
//! message's own checks, then the rules of the case it names.
//!
//! Two pure steps, because the shell loads the case between them:
//!
//! 1. [`read_evaluation`]: shape, ids and text limits, after the checks every kind shares;
//! 2. [`evaluation_request`]: the message against the case's history → the `Evaluate`
//!    command, or the rule it breaks. The rules, in the order they are checked:
//!    - the case exists (`unknown_case`, field `case_id`);
//!    - the resident is the one who reported it; a patrol finding has no such resident
//!      (`not_reporter`, field `resident.id`). Checked before the case's status, so that
//!      a stranger learns nothing about where someone else's case stands;
//!    - the case is closed (`case_not_closed`);
//!    - this closure has not been evaluated yet (`already_evaluated`).
//!
//! A message the case has already turned into its evaluation passes, and the command handler
//! answers it with the earlier result (`duplicate: true`), so a retry hears what the first
//! copy heard. A message whose source the case used for something else — a hotline that
//! sends its work-order number as the id of both the report and the follow-up call — is
//! refused (`message_id_reused`, field `source.message_id`) instead of passing for a retry
//! of the report and being dropped.
//!
//! The status and once-per-closure rules are the aggregate's own: they are asked of
//! [`decide`] here, and again at the commit; [`rejection_for`] words its refusals the same
//! way both times, so a case that changed in between is refused with the same code.

use chrono::{DateTime, Utc};
use serde_json::Value;
use wangge_schemas::intake::{EvaluationV1, MAX_COMMENT_CHARS};
use wangge_schemas::{Actor, CaseEvent, EventEnvelope};

use super::{check_resident, check_source, check_text, typed, IntakeRejection, RejectCode};
use crate::authorize::reporting_resident;
use crate::request::CommandRequest;
use crate::{decide, replay, CaseCommand, DomainError};

/// Reads an evaluation whose size, JSON, kind and version have been checked: its shape
/// (the satisfaction's scale included: [`wangge_schemas::intake::Satisfaction`] refuses a
/// score outside 1–5 or an unknown level), then its ids and texts.
pub(super) fn read_evaluation(value: Value) -> Result<EvaluationV1, IntakeRejection> {
    let message: EvaluationV1 = typed(value)?;
    check_source(&message.source)?;
    check_resident(&message.resident)?;
    if let Some(comment) = &message.comment {
        check_text("comment", comment, MAX_COMMENT_CHARS, true)?;
    }
    Ok(message)
}

/// The `Evaluate` command `message` becomes on its case, whose history is `events` (oldest
/// first, as loaded), or the case rule it breaks. `now` is the engine's time, which the
/// aggregate decides with.
pub fn evaluation_request(
    message: &EvaluationV1,
    events: &[EventEnvelope],
    now: DateTime<Utc>,
) -> Result<CommandRequest, IntakeRejection> {
    let state = replay(events);
    let case_id = message.case_id;
    if !state.exists() {
        return Err(IntakeRejection::at(
            RejectCode::UnknownCase,
            "case_id",
            format!("no case {case_id} has been reported"),
        ));
    }
    let request = command_of(message);
    if let Some(&(first, last)) = state.processed_sources.get(&message.source) {
        if wrote_an_evaluation(events, first, last) {
            return Ok(request);
        }
        return Err(IntakeRejection::at(
            RejectCode::MessageIdReused,
            "source.message_id",
            format!(
                "case {case_id} already recorded message `{}` of `{}` as something other than an evaluation; give the evaluation a message id of its own",
                message.source.message_id, message.source.system
            ),
        ));
    }
    match reporting_resident(events) {
        Some(reporter) if reporter == message.resident.id => {}
        // The reporter's id is not repeated: the sender may be probing someone else's case.
        Some(_) => {
            return Err(IntakeRejection::at(
                RejectCode::NotReporter,
                "resident.id",
                format!(
                    "resident `{}` did not report case {case_id}; only the resident who reported a case may evaluate it",
                    message.resident.id
                ),
            ))
        }
        None => {
            return Err(IntakeRejection::at(
                RejectCode::NotReporter,
                "resident.id",
                format!(
                    "case {case_id} was not reported by a resident (a grid worker's patrol finding), so no resident may evaluate it"
                ),
            ))
        }
    }
    decide(&state, &request.command, now).map_err(|error| rejection_for(&error))?;
    Ok(request)
}

/// The aggregate's refusal of an `Evaluate` command, named as an evaluation's sender knows it.
pub fn rejection_for(error: &DomainError) -> IntakeRejection {
    match error {
        DomainError::CaseNotFound => IntakeRejection::at(
            RejectCode::UnknownCase,
            "case_id",
            "no case has been reported under this id",
        ),
        DomainError::InvalidTransition { status, .. } => IntakeRejection::new(
            RejectCode::CaseNotClosed,
            None,
            format!("the case is {status}; only a closed case can be evaluated"),
        ),
        DomainError::AlreadyEvaluated => {
            IntakeRejection::new(RejectCode::AlreadyEvaluated, None, error.to_string())
        }
        // The command's fields carry the message's names (`satisfaction`, `comment`).
        DomainError::InvalidField { field, .. } => {
            IntakeRejection::at(RejectCode::InvalidValue, field, error.to_string())
        }
        // The aggregate gives an `Evaluate` none of these; should it ever, the sender still
        // hears its words rather than nothing.
        DomainError::CaseAlreadyExists
        | DomainError::NotAssignee { .. }
        | DomainError::AlreadyRecorded { .. }
        | DomainError::NotPatrolReporter { .. }
        | DomainError::BreachBeforeDeadline { .. }
        | DomainError::NotAnEscalation { .. }
        | DomainError::NotAtDistrict { .. } => {
            IntakeRejection::new(RejectCode::InvalidValue, None, error.to_string())
        }
    }
}

/// The command, with the resident as its actor and the message as its source.
fn command_of(message: &EvaluationV1) -> CommandRequest {
    CommandRequest {
        case_id: message.case_id,
        command: CaseCommand::Evaluate {
            satisfaction: message.satisfaction.score(),
            comment: message.comment.clone(),
            resolved: message.resolved,
            level: message.satisfaction.level(),
            channel: Some(message.channel),
        },
        actor: Actor::resident(&message.resident.id),
        source: message.source.clone(),
        // The engine's time of acceptance; `evaluated_at` is the sender's claim, checked
        // against it at intake.
        occurred_at: None,
        correlation_id: None,
        causation_id: None,
    }
}

/// Whether the commit of sequences `first..=last` is an evaluation.
fn wrote_an_evaluation(events: &[EventEnvelope], first: u64, last: u64) -> bool {
    events
        .iter()
        .filter(|envelope| (first..=last).contains(&envelope.sequence))
        .any(|envelope| matches!(envelope.event, CaseEvent::Evaluated(_)))
}

//! The decision: given what a case is and what is asked of it, which facts follow.
//!
//! Checks run in a fixed order so that the answer is the most useful one: does the case
//! exist, may this command run in this status, are the fields valid, is the sender the
//! right person, and finally the business rules that depend on history.

use chrono::{DateTime, Utc};
use wangge_schemas::{
    CaseAccepted, CaseAcknowledged, CaseClosed, CaseDeclined, CaseDispatched, CaseEscalated,
    CaseEvaluated, CaseEvent, CaseMerged, CaseReassigned, CaseRejected, CaseReopened, CaseReported,
    CaseResolved, CaseResumed, CaseSuspended, CaseVerified, CaseVoided, ClosureKind, CommentAdded,
    ExtensionGranted, GridLocation, HandlingStarted, ReportDetails, ReworkRequested, SlaBreached,
    SlaWarning, SupervisionRequested, Tier,
};

use super::command::CaseCommand;
pub use super::error::DomainError;
use super::error::SlaRecordKind;
use super::rules::{media, must_be_assignee, optional, permits, required};
use super::state::CaseState;
use super::status::CaseStatus;

/// Decides what `command` does to the case. Pure: `now` is the only notion of time, and
/// an `Err` means nothing happened. An `Ok` always holds at least one event.
pub fn decide(
    state: &CaseState,
    command: &CaseCommand,
    now: DateTime<Utc>,
) -> Result<Vec<CaseEvent>, DomainError> {
    let is_report = matches!(command, CaseCommand::Report { .. });
    if !state.exists() && !is_report {
        return Err(DomainError::CaseNotFound);
    }
    if state.exists() && is_report {
        return Err(DomainError::CaseAlreadyExists);
    }
    if !permits(command, state.status) {
        return Err(DomainError::InvalidTransition {
            command: command.name(),
            status: state.status,
        });
    }

    use CaseCommand as C;
    let events = match command {
        C::Report { location, report } => report_case(location, report)?,
        C::Accept { category, priority } => vec![CaseEvent::Accepted(CaseAccepted {
            category: accepted_category(state, category)?,
            priority: *priority,
        })],
        C::Reject { reason } => {
            required("reason", reason)?;
            vec![CaseEvent::Rejected(CaseRejected {
                reason: reason.clone(),
            })]
        }
        C::Merge {
            into_case_id,
            reason,
        } => {
            optional("reason", reason)?;
            if state.case_id == Some(*into_case_id) {
                return Err(DomainError::InvalidField {
                    field: "into_case_id",
                    reason: "a case cannot be merged into itself".to_owned(),
                });
            }
            vec![CaseEvent::Merged(CaseMerged {
                into_case_id: *into_case_id,
                reason: reason.clone(),
            })]
        }
        C::Dispatch {
            tier,
            cell,
            assignee,
        } => vec![dispatched(*tier, cell, assignee)?],
        C::AcceptAndDispatch {
            category,
            priority,
            tier,
            cell,
            assignee,
        } => vec![
            CaseEvent::Accepted(CaseAccepted {
                category: accepted_category(state, category)?,
                priority: *priority,
            }),
            dispatched(*tier, cell, assignee)?,
        ],
        C::Acknowledge { worker_id } => {
            required("worker_id", worker_id)?;
            must_be_assignee(state, worker_id)?;
            vec![CaseEvent::Acknowledged(CaseAcknowledged {
                worker_id: worker_id.clone(),
            })]
        }
        C::Decline { worker_id, reason } => {
            required("worker_id", worker_id)?;
            required("reason", reason)?;
            must_be_assignee(state, worker_id)?;
            vec![CaseEvent::Declined(CaseDeclined {
                worker_id: worker_id.clone(),
                reason: reason.clone(),
            })]
        }
        C::Reassign {
            to_worker,
            tier,
            cell,
            reason,
        } => {
            required("to_worker", to_worker)?;
            required("cell", cell)?;
            required("reason", reason)?;
            if state.assignee.as_deref() == Some(to_worker.as_str()) {
                return Err(DomainError::InvalidField {
                    field: "to_worker",
                    reason: "the case is already with this worker".to_owned(),
                });
            }
            vec![CaseEvent::Reassigned(CaseReassigned {
                from_worker: state.assignee.clone(),
                to_worker: to_worker.clone(),
                tier: *tier,
                cell: cell.clone(),
                reason: reason.clone(),
            })]
        }
        C::StartHandling { worker_id } => {
            required("worker_id", worker_id)?;
            must_be_assignee(state, worker_id)?;
            vec![handling_started(worker_id)]
        }
        C::Suspend { reason, note } => {
            optional("note", note)?;
            vec![CaseEvent::Suspended(CaseSuspended {
                reason: *reason,
                note: note.clone(),
            })]
        }
        C::Resume { note } => {
            optional("note", note)?;
            vec![CaseEvent::Resumed(CaseResumed { note: note.clone() })]
        }
        C::GrantExtension {
            step,
            extension,
            reason,
        } => {
            required("reason", reason)?;
            if extension.amount == 0 {
                return Err(DomainError::InvalidField {
                    field: "extension.amount",
                    reason: "must be at least 1".to_owned(),
                });
            }
            vec![CaseEvent::ExtensionGranted(ExtensionGranted {
                step: *step,
                extension: *extension,
                reason: reason.clone(),
            })]
        }
        C::Resolve {
            worker_id,
            notes,
            media: result_media,
        } => {
            required("worker_id", worker_id)?;
            required("notes", notes)?;
            media("media.url", result_media)?;
            must_be_assignee(state, worker_id)?;
            let resolved = resolved(worker_id, notes, result_media);
            // Resolving straight from acknowledged implies the start; the log still says so,
            // so handling times stay measurable.
            if state.status == CaseStatus::Acknowledged {
                vec![handling_started(worker_id), resolved]
            } else {
                vec![resolved]
            }
        }
        C::Verify {
            verifier,
            passed,
            notes,
        } => {
            required("verifier", verifier)?;
            verify(verifier, *passed, notes)?
        }
        C::SelfHandle {
            worker_id,
            notes,
            media: result_media,
        } => {
            required("worker_id", worker_id)?;
            required("notes", notes)?;
            media("media.url", result_media)?;
            if state.patrol_worker.as_deref() != Some(worker_id.as_str()) {
                return Err(DomainError::NotPatrolReporter {
                    worker_id: worker_id.clone(),
                    reporter: state.patrol_worker.clone(),
                });
            }
            vec![
                handling_started(worker_id),
                resolved(worker_id, notes, result_media),
                CaseEvent::Closed(CaseClosed {
                    closure: ClosureKind::SelfHandled,
                }),
            ]
        }
        C::Reopen { reason } => {
            required("reason", reason)?;
            vec![CaseEvent::Reopened(CaseReopened {
                reason: reason.clone(),
            })]
        }
        C::Evaluate {
            satisfaction,
            comment,
            resolved,
            level,
            channel,
        } => {
            if !(1..=5).contains(satisfaction) {
                return Err(DomainError::InvalidField {
                    field: "satisfaction",
                    reason: format!("must be 1 to 5, got {satisfaction}"),
                });
            }
            // The stored score is what the rates count; a word that disagrees with it would
            // make the event say two things.
            if let Some(level) = level.filter(|level| level.score() != *satisfaction) {
                return Err(DomainError::InvalidField {
                    field: "satisfaction",
                    reason: format!(
                        "level `{}` is stored as {}, not {satisfaction}",
                        level.as_str(),
                        level.score()
                    ),
                });
            }
            optional("comment", comment)?;
            if state.evaluated {
                return Err(DomainError::AlreadyEvaluated);
            }
            vec![CaseEvent::Evaluated(CaseEvaluated {
                satisfaction: *satisfaction,
                comment: comment.clone(),
                resolved: *resolved,
                level: *level,
                channel: *channel,
            })]
        }
        C::Comment { text } => {
            required("text", text)?;
            vec![CaseEvent::CommentAdded(CommentAdded { text: text.clone() })]
        }
        C::Escalate {
            to_tier,
            cell,
            reason,
        } => {
            required("cell", cell)?;
            required("reason", reason)?;
            // Before any dispatch the report's own building cell answers for the case.
            let from_tier = state.tier.unwrap_or(Tier::Building);
            if *to_tier <= from_tier {
                return Err(DomainError::NotAnEscalation {
                    from_tier,
                    to_tier: *to_tier,
                });
            }
            vec![CaseEvent::Escalated(CaseEscalated {
                from_tier,
                to_tier: *to_tier,
                cell: cell.clone(),
                reason: reason.clone(),
            })]
        }
        C::RecordSlaWarning {
            step,
            deadline,
            threshold_percent,
        } => {
            if !(1..=99).contains(threshold_percent) {
                return Err(DomainError::InvalidField {
                    field: "threshold_percent",
                    reason: format!("must be 1 to 99, got {threshold_percent}"),
                });
            }
            // No check against `now`: a warning fires before its deadline by design.
            if state.sla_warnings.contains(&(*step, *deadline)) {
                return Err(DomainError::AlreadyRecorded {
                    kind: SlaRecordKind::Warning,
                    step: *step,
                    deadline: *deadline,
                });
            }
            vec![CaseEvent::SlaWarning(SlaWarning {
                step: *step,
                deadline: *deadline,
                threshold_percent: *threshold_percent,
            })]
        }
        C::RecordSlaBreach { step, deadline } => {
            // Checked first so that a redelivered timer hears "already recorded".
            if state.sla_breaches.contains(&(*step, *deadline)) {
                return Err(DomainError::AlreadyRecorded {
                    kind: SlaRecordKind::Breach,
                    step: *step,
                    deadline: *deadline,
                });
            }
            if *deadline > now {
                return Err(DomainError::BreachBeforeDeadline {
                    step: *step,
                    deadline: *deadline,
                    now,
                });
            }
            vec![CaseEvent::SlaBreached(SlaBreached {
                step: *step,
                deadline: *deadline,
            })]
        }
        C::RequestSupervision {
            district,
            cell,
            unit,
            leaders,
            contact,
            step,
            overdue_since,
            reason,
        } => vec![request_supervision(
            state,
            SupervisionRequested {
                district: district.clone(),
                cell: cell.clone(),
                unit: unit.clone(),
                leaders: leaders.clone(),
                contact: contact.clone(),
                assignee: state.assignee.clone(),
                step: *step,
                overdue_since: *overdue_since,
                reason: reason.clone(),
            },
            now,
        )?],
        C::Void { reason } => {
            required("reason", reason)?;
            vec![CaseEvent::Voided(CaseVoided {
                reason: reason.clone(),
            })]
        }
    };
    debug_assert!(
        !events.is_empty(),
        "an accepted command records at least one fact"
    );
    Ok(events)
}

/// 督办: once per breached step and deadline, only for a case the district holds, only once
/// the deadline has passed, naming at least one leader.
fn request_supervision(
    state: &CaseState,
    request: SupervisionRequested,
    now: DateTime<Utc>,
) -> Result<CaseEvent, DomainError> {
    // Checked first so that a repeated timer or a retry hears "already recorded".
    if state
        .supervision_requests
        .contains(&(request.step, request.overdue_since))
    {
        return Err(DomainError::AlreadyRecorded {
            kind: SlaRecordKind::Supervision,
            step: request.step,
            deadline: request.overdue_since,
        });
    }
    if state.tier != Some(Tier::District) {
        return Err(DomainError::NotAtDistrict { tier: state.tier });
    }
    required("district", &request.district)?;
    required("cell", &request.cell)?;
    required("reason", &request.reason)?;
    optional("unit", &request.unit)?;
    optional("contact", &request.contact)?;
    if request.district != state.location.as_ref().map_or("", |l| l.district.as_str()) {
        return Err(DomainError::InvalidField {
            field: "district",
            reason: format!(
                "the case is in district {}, not {}",
                state.location.as_ref().map_or("?", |l| l.district.as_str()),
                request.district
            ),
        });
    }
    if state.cell.as_deref() != Some(request.cell.as_str()) {
        return Err(DomainError::InvalidField {
            field: "cell",
            reason: format!(
                "the case is held in cell {}, not {}",
                state.cell.as_deref().unwrap_or("none"),
                request.cell
            ),
        });
    }
    if request.leaders.is_empty() {
        return Err(DomainError::InvalidField {
            field: "leaders",
            reason: "name at least one leader to supervise the case".to_owned(),
        });
    }
    request
        .leaders
        .iter()
        .try_for_each(|leader| required("leaders", leader))?;
    if request.overdue_since > now {
        return Err(DomainError::BreachBeforeDeadline {
            step: request.step,
            deadline: request.overdue_since,
            now,
        });
    }
    Ok(CaseEvent::SupervisionRequested(request))
}

fn report_case(
    location: &GridLocation,
    report: &CaseReported,
) -> Result<Vec<CaseEvent>, DomainError> {
    required("location.district", &location.district)?;
    required("location.community", &location.community)?;
    required("location.building", &location.building)?;
    required("title", &report.title)?;
    required("reported_category", &report.reported_category)?;
    media("media.url", &report.media)?;
    match &report.details {
        ReportDetails::PatrolFinding { worker_id, .. } => required("worker_id", worker_id)?,
        ReportDetails::ResidentReport { resident, .. }
        | ReportDetails::ServiceRequest { resident, .. } => required("resident.id", &resident.id)?,
    }
    Ok(vec![CaseEvent::Reported(report.clone())])
}

/// A blank category confirms the reported one; the event always names the category in
/// force, so the log never depends on this default.
fn accepted_category(state: &CaseState, category: &str) -> Result<String, DomainError> {
    if !category.trim().is_empty() {
        return Ok(category.to_owned());
    }
    match state.reported_category.as_deref() {
        Some(reported) if !reported.trim().is_empty() => Ok(reported.to_owned()),
        _ => Err(DomainError::InvalidField {
            field: "category",
            reason: "must not be empty when the report has no category".to_owned(),
        }),
    }
}

fn verify(
    verifier: &str,
    passed: bool,
    notes: &Option<String>,
) -> Result<Vec<CaseEvent>, DomainError> {
    if passed {
        optional("notes", notes)?;
        // Verification and closing are one decision: a verified case is never left open.
        return Ok(vec![
            CaseEvent::Verified(CaseVerified {
                verifier: verifier.to_owned(),
                notes: notes.clone(),
            }),
            CaseEvent::Closed(CaseClosed {
                closure: ClosureKind::Verified,
            }),
        ]);
    }
    let Some(reason) = notes.as_deref().filter(|text| !text.trim().is_empty()) else {
        return Err(DomainError::InvalidField {
            field: "notes",
            reason: "a failed verification must say what to rework".to_owned(),
        });
    };
    Ok(vec![CaseEvent::ReworkRequested(ReworkRequested {
        verifier: verifier.to_owned(),
        reason: reason.to_owned(),
    })])
}

fn handling_started(worker_id: &str) -> CaseEvent {
    CaseEvent::HandlingStarted(HandlingStarted {
        worker_id: worker_id.to_owned(),
    })
}

fn resolved(worker_id: &str, notes: &str, media: &[wangge_schemas::MediaRef]) -> CaseEvent {
    CaseEvent::Resolved(CaseResolved {
        worker_id: worker_id.to_owned(),
        notes: notes.to_owned(),
        media: media.to_vec(),
    })
}

/// 派遣 to `assignee` in `cell` of `tier`.
fn dispatched(tier: Tier, cell: &str, assignee: &str) -> Result<CaseEvent, DomainError> {
    required("cell", cell)?;
    required("assignee", assignee)?;
    Ok(CaseEvent::Dispatched(CaseDispatched {
        tier,
        cell: cell.to_owned(),
        assignee: assignee.to_owned(),
    }))
}

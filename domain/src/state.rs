//! The case as its event log made it, and the total fold that builds it.
//!
//! [`apply`] never refuses anything: the log is the truth, so even an event that
//! [`decide`](super::decide) would never have produced at that point (an old bug, a manual
//! repair, a log that starts mid-way) folds into the most sensible state it describes.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use wangge_schemas::{
    CaseEvent, CaseId, ClosureKind, EventEnvelope, GridLocation, IntakeKind, Priority,
    ReportDetails, SlaStep, Source, SuspendReason, Tier,
};

pub use super::status::CaseStatus;
use crate::sla::{SlaFacts, SlaState};

/// Everything a decision about one case needs to know. `Default` is "no case yet".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseState {
    pub case_id: Option<CaseId>,
    /// The highest sequence applied (in a well-formed log, the last one); 0 = no event yet.
    /// The next event of the case gets `version + 1`.
    pub version: u64,
    pub status: CaseStatus,
    pub location: Option<GridLocation>,
    pub intake_kind: Option<IntakeKind>,
    /// The grid worker who reported a patrol finding: the only one who may self-handle it.
    pub patrol_worker: Option<String>,
    /// The patrol worker says they fixed it on the spot: it closes by self-handling (自处理).
    pub fixed_on_spot: bool,
    /// The category as the reporter gave it.
    pub reported_category: Option<String>,
    /// The category set at acceptance.
    pub category: Option<String>,
    pub priority: Option<Priority>,
    /// The tier of the grid that answers for the case; `None` until the first dispatch or
    /// escalation (the report's own building cell answers until then).
    pub tier: Option<Tier>,
    pub cell: Option<String>,
    /// The worker the case is with (dispatched to, acknowledged by, handled by).
    pub assignee: Option<String>,
    /// Why the clock is stopped; `Some` exactly while the status is `Suspended`.
    pub suspension: Option<SuspendReason>,
    pub merged_into: Option<CaseId>,
    /// How the case was closed; `None` unless the status is `Closed`.
    pub closure: Option<ClosureKind>,
    /// Whether the current closure has been evaluated (evaluation is once per closure).
    pub evaluated: bool,
    pub reopen_count: u32,
    pub rework_count: u32,
    pub escalation_count: u32,
    /// The latest satisfaction score (1..=5), kept across reopenings.
    pub satisfaction: Option<u8>,
    /// SLA warnings already recorded, as (step, deadline): a timer that fires twice must
    /// not record twice.
    pub sla_warnings: BTreeSet<(SlaStep, DateTime<Utc>)>,
    /// SLA breaches already recorded, as (step, deadline).
    pub sla_breaches: BTreeSet<(SlaStep, DateTime<Utc>)>,
    /// Supervision (督办) already requested, as (step, deadline breached): once per breach.
    pub supervision_requests: BTreeSet<(SlaStep, DateTime<Utc>)>,
    /// The SLA fold of the case without terms: the running step's recorded clock, its
    /// limit, extensions and pauses, from which the engine computes the next clock.
    pub sla: SlaFacts,
    /// For each source message, the first and last sequence it wrote. The application
    /// answers a redelivered message from here once the NATS duplicate window has passed.
    pub processed_sources: HashMap<Source, (u64, u64)>,
}

impl CaseState {
    /// Whether a case has been reported under this id.
    pub fn exists(&self) -> bool {
        self.status != CaseStatus::New
    }
}

/// Folds one event into the state. Total: never panics and never refuses.
pub fn apply(mut state: CaseState, envelope: &EventEnvelope) -> CaseState {
    // `max` keeps the next stamped sequence past everything seen, even in a disordered log.
    state.version = state.version.max(envelope.sequence);
    record_source(&mut state, &envelope.source, envelope.sequence);
    // A log that does not start with a report still names its case and place.
    state.case_id.get_or_insert(envelope.case_id);
    if state.location.is_none() {
        state.location = Some(envelope.location.clone());
    }

    let mut sla = SlaState::from_facts(None, std::mem::take(&mut state.sla));
    sla.apply(envelope);
    state.sla = sla.into_facts();

    let before = state.status;
    state.status = before.after(&envelope.event);
    match &envelope.event {
        CaseEvent::Reported(reported) => {
            // A second report of an existing case adds nothing: the first one defined it.
            if before == CaseStatus::New {
                state.location = Some(envelope.location.clone());
                state.intake_kind = Some(reported.details.intake_kind());
                state.reported_category = Some(reported.reported_category.clone());
                if let ReportDetails::PatrolFinding {
                    worker_id,
                    fixed_on_spot,
                    ..
                } = &reported.details
                {
                    state.patrol_worker = Some(worker_id.clone());
                    state.fixed_on_spot = *fixed_on_spot;
                }
            }
        }
        CaseEvent::Accepted(accepted) => {
            state.category = Some(accepted.category.clone());
            state.priority = Some(accepted.priority);
        }
        CaseEvent::Merged(merged) => {
            state.merged_into = Some(merged.into_case_id);
        }
        CaseEvent::Dispatched(dispatched) => {
            state.tier = Some(dispatched.tier);
            state.cell = Some(dispatched.cell.clone());
            state.assignee = Some(dispatched.assignee.clone());
        }
        CaseEvent::Acknowledged(acknowledged) => {
            state.assignee = Some(acknowledged.worker_id.clone());
        }
        CaseEvent::Declined(_) => {
            state.assignee = None;
        }
        CaseEvent::Reassigned(reassigned) => {
            state.assignee = Some(reassigned.to_worker.clone());
            state.tier = Some(reassigned.tier);
            state.cell = Some(reassigned.cell.clone());
        }
        CaseEvent::HandlingStarted(started) => {
            state.assignee = Some(started.worker_id.clone());
        }
        CaseEvent::Suspended(suspended) => {
            state.suspension = Some(suspended.reason);
        }
        CaseEvent::Resolved(resolved) => {
            state.assignee = Some(resolved.worker_id.clone());
        }
        CaseEvent::ReworkRequested(_) => {
            state.rework_count = state.rework_count.saturating_add(1);
        }
        CaseEvent::Closed(closed) => {
            state.closure = Some(closed.closure);
            state.evaluated = false;
        }
        CaseEvent::Reopened(_) => {
            state.reopen_count = state.reopen_count.saturating_add(1);
            state.assignee = None;
        }
        CaseEvent::Evaluated(evaluated) => {
            state.satisfaction = Some(evaluated.satisfaction);
            state.evaluated = true;
        }
        CaseEvent::Escalated(escalated) => {
            state.escalation_count = state.escalation_count.saturating_add(1);
            state.tier = Some(escalated.to_tier);
            state.cell = Some(escalated.cell.clone());
            state.assignee = None;
        }
        CaseEvent::SlaWarning(warning) => {
            state.sla_warnings.insert((warning.step, warning.deadline));
        }
        CaseEvent::SlaBreached(breach) => {
            state.sla_breaches.insert((breach.step, breach.deadline));
        }
        CaseEvent::SupervisionRequested(requested) => {
            state
                .supervision_requests
                .insert((requested.step, requested.overdue_since));
        }
        // Only the status moves (deadlines are the SLA fold's business).
        CaseEvent::DeadlineRevised(_) => {}
        CaseEvent::Rejected(_)
        | CaseEvent::Resumed(_)
        | CaseEvent::ExtensionGranted(_)
        | CaseEvent::Verified(_)
        | CaseEvent::CommentAdded(_)
        | CaseEvent::Voided(_) => {}
    }

    // Derived fields follow the status, whatever order the events came in.
    if state.status != CaseStatus::Suspended {
        state.suspension = None;
    }
    if state.status != CaseStatus::Closed {
        state.closure = None;
        state.evaluated = false;
    }
    state
}

/// Rebuilds a case from its events, oldest first.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a EventEnvelope>) -> CaseState {
    events.into_iter().fold(CaseState::default(), apply)
}

fn record_source(state: &mut CaseState, source: &Source, sequence: u64) {
    state
        .processed_sources
        .entry(source.clone())
        .and_modify(|(first, last)| {
            *first = (*first).min(sequence);
            *last = (*last).max(sequence);
        })
        .or_insert((sequence, sequence));
}

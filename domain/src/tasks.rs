//! What a commit means for grid workers' task inboxes: which worker gets a task, which
//! loses one, and the message each receives. Pure: the case's history in, deliveries out;
//! the engine's task publisher puts them on the workers' subjects.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use wangge_schemas::worker::{TaskKind, TaskMessage, TASK_SCHEMA_VERSION};
use wangge_schemas::{CaseEvent, CaseId, EventEnvelope, GridLocation, Priority, Tier};

use crate::{apply, CaseState};

/// The `Nats-Msg-Id` of the inbox message one event causes for one worker.
pub fn task_message_id(case_id: CaseId, sequence: u64, worker_id: &str) -> String {
    format!("task:{case_id}:{sequence}:{worker_id}")
}

// ---------------------------------------------------------------------------------------

/// One inbox message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDelivery {
    pub worker_id: String,
    pub message: TaskMessage,
}

impl TaskDelivery {
    /// Its `Nats-Msg-Id`.
    pub fn message_id(&self) -> String {
        task_message_id(self.message.case_id, self.message.sequence, &self.worker_id)
    }
}

/// Whether an event can change who holds a case's task.
pub fn concerns_tasks(event: &CaseEvent) -> bool {
    type_concerns_tasks(event.event_type())
}

/// [`concerns_tasks`] by the event's type name, as a commit's `Wangge-Event-Types` header
/// lists them: the publisher passes over the other commits without decoding them.
pub fn type_concerns_tasks(event_type: &str) -> bool {
    matches!(
        event_type,
        "case.dispatched"
            | "case.reassigned"
            | "case.declined"
            | "case.escalated"
            | "case.rework_requested"
            | "case.closed"
            | "case.voided"
            | "case.rejected"
            | "case.merged"
            | "case.reopened"
            | "case.supervision_requested"
    )
}

/// Who holds a case's task as far as inboxes go: set by a dispatch or a reassignment,
/// cleared by anything that takes the case from its worker. Acknowledging, starting or
/// resolving do not change it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Holder {
    worker: Option<String>,
    since: Option<DateTime<Utc>>,
}

impl Holder {
    fn after(&self, envelope: &EventEnvelope) -> Holder {
        match &envelope.event {
            CaseEvent::Dispatched(dispatched) => Holder {
                worker: Some(dispatched.assignee.clone()),
                since: Some(envelope.occurred_at),
            },
            CaseEvent::Reassigned(reassigned) => Holder {
                worker: Some(reassigned.to_worker.clone()),
                since: Some(envelope.occurred_at),
            },
            CaseEvent::Declined(_)
            | CaseEvent::Escalated(_)
            | CaseEvent::Closed(_)
            | CaseEvent::Voided(_)
            | CaseEvent::Rejected(_)
            | CaseEvent::Merged(_)
            | CaseEvent::Reopened(_) => Holder::default(),
            _ => self.clone(),
        }
    }
}

/// What a task message says about the case, taken from its state at one point.
struct Details {
    category: String,
    priority: Option<Priority>,
    location: GridLocation,
    tier: Tier,
    cell: String,
}

impl Details {
    fn of(state: &CaseState, envelope: &EventEnvelope) -> Self {
        let location = state
            .location
            .clone()
            .unwrap_or_else(|| envelope.location.clone());
        Self {
            category: state
                .category
                .clone()
                .or_else(|| state.reported_category.clone())
                .unwrap_or_default(),
            priority: state.priority,
            tier: state.tier.unwrap_or(Tier::Building),
            cell: state
                .cell
                .clone()
                .unwrap_or_else(|| location.building.clone()),
            location,
        }
    }
}

/// The inbox messages a commit causes. `earlier` is the case's history before the commit
/// (gapless from sequence 1), `commit` the commit's events in order. Pure.
///
/// - the task moves to a worker (dispatch, reassignment): `assigned` to them;
/// - the task leaves a worker (reassignment, decline, escalation, closing, voiding,
///   rejection, merging): `withdrawn` to them, with the tier and cell it had;
/// - verification failed: `rework_requested` to the worker who holds the task;
/// - supervision requested (督办): `supervised` to the worker who holds the task, which
///   stays theirs.
pub fn tasks_for_commit(earlier: &[EventEnvelope], commit: &[EventEnvelope]) -> Vec<TaskDelivery> {
    let mut state = CaseState::default();
    let mut holder = Holder::default();
    let mut report = None;
    for envelope in earlier {
        state = apply(state, envelope);
        holder = holder.after(envelope);
        if let (None, CaseEvent::Reported(reported)) = (&report, &envelope.event) {
            report = Some(reported.clone());
        }
    }
    let mut deliveries = Vec::new();
    for envelope in commit {
        if let (None, CaseEvent::Reported(reported)) = (&report, &envelope.event) {
            report = Some(reported.clone());
        }
        let before = Details::of(&state, envelope);
        state = apply(state, envelope);
        let next = holder.after(envelope);
        let (title, description) = report
            .as_ref()
            .map_or(("", ""), |r| (r.title.as_str(), r.description.as_str()));
        let message = |kind: TaskKind,
                       worker: &str,
                       details: Details,
                       dispatched_at: Option<DateTime<Utc>>,
                       reason: Option<String>| TaskDelivery {
            worker_id: worker.to_owned(),
            message: TaskMessage {
                schema_version: TASK_SCHEMA_VERSION,
                kind,
                worker_id: worker.to_owned(),
                case_id: envelope.case_id,
                event_type: envelope.event_type().to_owned(),
                sequence: envelope.sequence,
                occurred_at: envelope.occurred_at,
                title: title.to_owned(),
                description: description.to_owned(),
                category: details.category,
                priority: details.priority,
                location: details.location,
                tier: details.tier,
                cell: details.cell,
                dispatched_at,
                reason,
            },
        };
        if next.worker != holder.worker {
            if let Some(worker) = &holder.worker {
                deliveries.push(message(
                    TaskKind::Withdrawn,
                    worker,
                    before,
                    holder.since,
                    Some(withdrawal_reason(&envelope.event)),
                ));
            }
            if let Some(worker) = &next.worker {
                deliveries.push(message(
                    TaskKind::Assigned,
                    worker,
                    Details::of(&state, envelope),
                    next.since,
                    assignment_reason(&envelope.event),
                ));
            }
        } else if let (CaseEvent::ReworkRequested(rework), Some(worker)) =
            (&envelope.event, &next.worker)
        {
            deliveries.push(message(
                TaskKind::ReworkRequested,
                worker,
                Details::of(&state, envelope),
                next.since,
                Some(rework.reason.clone()),
            ));
        } else if let (CaseEvent::SupervisionRequested(requested), Some(worker)) =
            (&envelope.event, &next.worker)
        {
            deliveries.push(message(
                TaskKind::Supervised,
                worker,
                Details::of(&state, envelope),
                next.since,
                Some(requested.reason.clone()),
            ));
        }
        holder = next;
    }
    deliveries
}

fn withdrawal_reason(event: &CaseEvent) -> String {
    match event {
        CaseEvent::Reassigned(r) => format!("reassigned to `{}`: {}", r.to_worker, r.reason),
        CaseEvent::Declined(d) => format!("declined: {}", d.reason),
        CaseEvent::Escalated(e) => format!(
            "escalated to {} cell {}: {}",
            tier_name(e.to_tier),
            e.cell,
            e.reason
        ),
        CaseEvent::Closed(_) => "closed".to_owned(),
        CaseEvent::Voided(v) => format!("voided: {}", v.reason),
        CaseEvent::Rejected(r) => format!("rejected: {}", r.reason),
        CaseEvent::Merged(m) => format!("merged into case {}", m.into_case_id),
        CaseEvent::Reopened(r) => format!("reopened: {}", r.reason),
        other => other.event_type().to_owned(),
    }
}

fn assignment_reason(event: &CaseEvent) -> Option<String> {
    match event {
        CaseEvent::Reassigned(r) => Some(match &r.from_worker {
            Some(from) => format!("reassigned from `{from}`: {}", r.reason),
            None => format!("reassigned: {}", r.reason),
        }),
        _ => None,
    }
}

fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Building => "building",
        Tier::Community => "community",
        Tier::District => "district",
    }
}

/// The tasks that are the worker's now, from inbox messages in any order: per case the
/// message with the highest sequence, kept when it is `assigned` or `rework_requested`.
/// Oldest assignment first.
pub fn open_tasks(messages: &[TaskMessage]) -> Vec<&TaskMessage> {
    let mut latest: BTreeMap<CaseId, &TaskMessage> = BTreeMap::new();
    for message in messages {
        let newer = latest
            .get(&message.case_id)
            .is_none_or(|seen| message.sequence > seen.sequence);
        if newer {
            latest.insert(message.case_id, message);
        }
    }
    let mut open: Vec<_> = latest
        .into_values()
        .filter(|m| m.kind != TaskKind::Withdrawn)
        .collect();
    open.sort_by_key(|m| (m.dispatched_at.unwrap_or(m.occurred_at), m.case_id));
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;
    use wangge_schemas::{
        Actor, CaseAccepted, CaseClosed, CaseDispatched, CaseEscalated, CaseReassigned,
        CaseReported, Channel, ClosureKind, HandlingStarted, ReportDetails, Resident,
        ReworkRequested, Source,
    };

    fn envelope(case_id: CaseId, sequence: u64, event: CaseEvent) -> EventEnvelope {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
            + chrono::Duration::minutes(sequence as i64);
        EventEnvelope {
            event_id: Uuid::from_u128(u128::from(sequence)),
            schema_version: event.schema_version(),
            event,
            case_id,
            sequence,
            occurred_at: at,
            recorded_at: at,
            actor: Actor::system("test"),
            source: Source {
                system: "test".to_owned(),
                message_id: format!("m-{sequence}"),
            },
            correlation_id: Uuid::nil(),
            causation_id: None,
            location: GridLocation {
                district: "110101001".to_owned(),
                community: "110101001002".to_owned(),
                building: "110101001002007".to_owned(),
            },
            sla_clock: None,
        }
    }

    /// Events of one case numbered from 1.
    fn history(events: Vec<CaseEvent>) -> Vec<EventEnvelope> {
        let case_id = CaseId(Uuid::from_u128(7));
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| envelope(case_id, i as u64 + 1, e))
            .collect()
    }

    fn reported() -> CaseEvent {
        CaseEvent::Reported(CaseReported {
            intake_clock: None,
            title: "楼道灯坏了".to_owned(),
            description: "stairwell light of unit 2".to_owned(),
            reported_category: "municipal.lighting".to_owned(),
            media: Vec::new(),
            coordinates: None,
            details: ReportDetails::ResidentReport {
                channel: Channel::MiniProgram,
                resident: Resident {
                    id: "r-1".to_owned(),
                    contact: None,
                    legacy_contact: None,
                },
            },
        })
    }

    fn accepted() -> CaseEvent {
        CaseEvent::Accepted(CaseAccepted {
            category: "lighting.stairwell".to_owned(),
            priority: Priority::High,
        })
    }

    fn dispatched(worker: &str) -> CaseEvent {
        CaseEvent::Dispatched(CaseDispatched {
            tier: Tier::Building,
            cell: "110101001002007".to_owned(),
            assignee: worker.to_owned(),
        })
    }

    fn summary(deliveries: &[TaskDelivery]) -> Vec<(String, TaskKind, u64)> {
        deliveries
            .iter()
            .map(|d| (d.worker_id.clone(), d.message.kind, d.message.sequence))
            .collect()
    }

    fn of(worker: &str, kind: TaskKind, sequence: u64) -> (String, TaskKind, u64) {
        (worker.to_owned(), kind, sequence)
    }

    #[test]
    fn a_dispatch_assigns_the_task_with_what_the_worker_needs() {
        let events = history(vec![reported(), accepted(), dispatched("wang")]);
        let deliveries = tasks_for_commit(&events[..2], &events[2..]);
        assert_eq!(summary(&deliveries), [of("wang", TaskKind::Assigned, 3)]);
        let task = &deliveries[0].message;
        assert_eq!(task.title, "楼道灯坏了");
        assert_eq!(task.category, "lighting.stairwell");
        assert_eq!(task.priority, Some(Priority::High));
        assert_eq!(
            (task.tier, task.cell.as_str()),
            (Tier::Building, "110101001002007")
        );
        assert_eq!(task.dispatched_at, Some(events[2].occurred_at));
        assert_eq!(task.event_type, "case.dispatched");
        assert_eq!(
            deliveries[0].message_id(),
            format!("task:{}:3:wang", task.case_id)
        );
    }

    #[test]
    fn a_reassignment_withdraws_from_one_and_assigns_to_the_other() {
        let events = history(vec![
            reported(),
            accepted(),
            dispatched("wang"),
            CaseEvent::Reassigned(CaseReassigned {
                from_worker: Some("wang".to_owned()),
                to_worker: "zhao".to_owned(),
                tier: Tier::Building,
                cell: "110101001002008".to_owned(),
                reason: "wang is on leave".to_owned(),
            }),
        ]);
        let deliveries = tasks_for_commit(&events[..3], &events[3..]);
        assert_eq!(
            summary(&deliveries),
            [
                of("wang", TaskKind::Withdrawn, 4),
                of("zhao", TaskKind::Assigned, 4)
            ]
        );
        assert_eq!(deliveries[0].message.cell, "110101001002007");
        assert_eq!(deliveries[1].message.cell, "110101001002008");
        assert_eq!(
            deliveries[0].message.reason.as_deref(),
            Some("reassigned to `zhao`: wang is on leave")
        );
    }

    #[test]
    fn rework_goes_back_to_the_holder_and_closing_withdraws() {
        let events = history(vec![
            reported(),
            accepted(),
            dispatched("wang"),
            CaseEvent::HandlingStarted(HandlingStarted {
                worker_id: "wang".to_owned(),
            }),
            CaseEvent::ReworkRequested(ReworkRequested {
                verifier: "chen".to_owned(),
                reason: "still dark".to_owned(),
            }),
            CaseEvent::Closed(CaseClosed {
                closure: ClosureKind::Verified,
            }),
        ]);
        assert_eq!(tasks_for_commit(&events[..3], &events[3..4]), []);
        assert_eq!(
            summary(&tasks_for_commit(&events[..4], &events[4..5])),
            [of("wang", TaskKind::ReworkRequested, 5)]
        );
        assert_eq!(
            summary(&tasks_for_commit(&events[..5], &events[5..])),
            [of("wang", TaskKind::Withdrawn, 6)]
        );
    }

    #[test]
    fn an_escalation_withdraws_and_a_self_handled_finding_sends_nothing() {
        let events = history(vec![
            reported(),
            accepted(),
            dispatched("wang"),
            CaseEvent::Escalated(CaseEscalated {
                from_tier: Tier::Building,
                to_tier: Tier::Community,
                cell: "110101001002".to_owned(),
                reason: "too big".to_owned(),
            }),
        ]);
        assert_eq!(
            summary(&tasks_for_commit(&events[..3], &events[3..])),
            [of("wang", TaskKind::Withdrawn, 4)]
        );
        // Self-handling closes a case nobody was dispatched to: no inbox is involved.
        let self_handled = history(vec![
            reported(),
            CaseEvent::HandlingStarted(HandlingStarted {
                worker_id: "li".to_owned(),
            }),
            CaseEvent::Closed(CaseClosed {
                closure: ClosureKind::SelfHandled,
            }),
        ]);
        assert_eq!(tasks_for_commit(&self_handled[..1], &self_handled[1..]), []);
    }

    #[test]
    fn the_latest_message_per_case_says_whether_the_task_is_open() {
        let events = history(vec![reported(), accepted(), dispatched("wang")]);
        let assigned = tasks_for_commit(&events[..2], &events[2..])
            .remove(0)
            .message;
        let mut withdrawn = assigned.clone();
        withdrawn.kind = TaskKind::Withdrawn;
        withdrawn.sequence = 4;
        let mut other = assigned.clone();
        other.case_id = CaseId(Uuid::from_u128(8));
        // Out of order: the withdrawal arrived before the assignment it cancels.
        let messages = vec![withdrawn, assigned, other.clone()];
        assert_eq!(open_tasks(&messages), [&other]);
    }
}

//! A case as supervisors see it: where it stands, who holds it, and when each step happened.
//!
//! [`CaseSummary::apply`] is a total fold over the case's events, like the aggregate's own
//! ([`crate::apply`]), and moves the status with the same transition function
//! ([`CaseStatus::after`]), so a read model never disagrees with the aggregate about where a
//! case stands.

use crate::CaseStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::{
    CaseEvent, CaseId, Channel, ClosureKind, EventEnvelope, GridLocation, IntakeKind, Priority,
    ReportDetails, SlaStep, SuspendReason, Tier,
};

/// One case, current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseSummary {
    pub case_id: CaseId,
    /// The sequence of the case's latest event.
    pub version: u64,
    /// The log position of the case's latest commit.
    pub position: u64,
    /// How the case came in; `None` for a log that does not start with a report.
    pub intake: Option<IntakeKind>,
    pub title: String,
    /// The category as reported.
    pub reported_category: String,
    /// The category set at acceptance (立案).
    pub category: Option<String>,
    pub priority: Option<Priority>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "dispatched"))]
    pub status: CaseStatus,
    pub location: GridLocation,
    /// The tier that answers for the case; `None` until the first dispatch or escalation.
    pub tier: Option<Tier>,
    /// The cell that answers for the case now: the report's building cell until dispatch.
    pub cell: String,
    /// The worker who holds the case.
    pub assignee: Option<String>,
    /// The reporting resident, or the grid worker who recorded a patrol finding.
    pub reporter: Option<String>,
    pub channel: Option<Channel>,
    /// Why the clock stands, while the case is suspended.
    pub suspension: Option<SuspendReason>,
    pub closure: Option<ClosureKind>,
    pub reported_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub first_dispatched_at: Option<DateTime<Utc>>,
    /// The latest dispatch or reassignment.
    pub dispatched_at: Option<DateTime<Utc>>,
    /// The first acknowledgement.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The latest result reported.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The latest closing.
    pub closed_at: Option<DateTime<Utc>>,
    /// When the case ended for good (rejected, merged, voided), or was last closed.
    pub ended_at: Option<DateTime<Utc>>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub dispatches: u32,
    pub declines: u32,
    pub reassignments: u32,
    pub escalations: u32,
    pub reworks: u32,
    pub reopenings: u32,
    pub warnings: u32,
    pub breaches: u32,
    /// The latest satisfaction score, 1 to 5.
    pub satisfaction: Option<u8>,
    /// The resident's answer to "was the problem solved?" (问题是否解决) in the latest
    /// evaluation, when they were asked.
    // States stored before this field existed read it as unasked.
    #[serde(default)]
    pub resolved_for_resident: Option<bool>,
    /// 督办: the case was referred to the district's leadership after the district let a
    /// step run past its own limit; `None` if it never was. It stays once set (a closed case
    /// that was supervised still was). The case itself stays with `assignee`.
    // States stored before this field existed read it as never supervised.
    #[serde(default)]
    pub supervision: Option<CaseSupervision>,
}

/// A case's supervision (督办), as the events recorded it: since when, and the latest
/// request's unit and leaders as the grid named them when it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseSupervision {
    /// When the case was first referred.
    pub since: DateTime<Utc>,
    /// The supervision unit of the latest request (`区委督查室`); `None` when the district
    /// named none and its duty leader was asked.
    pub unit: Option<String>,
    /// Person ids of the leaders asked in the latest request.
    pub leaders: Vec<String>,
    pub contact: Option<String>,
    /// The step whose breach led to the latest request, and its breached deadline.
    pub step: SlaStep,
    pub overdue_since: DateTime<Utc>,
    /// How many breaches were referred (one per breached step and deadline).
    pub requests: u32,
}

impl CaseSupervision {
    /// Who was asked, as one line: the unit, else the leaders.
    pub fn by(&self) -> String {
        match &self.unit {
            Some(unit) => unit.clone(),
            None => self.leaders.join(", "),
        }
    }
}

/// Who answers for a case at a moment: the cell that holds it, its tier, and where that cell
/// sits. The SLA board counts open cases here, and the indicators charge a late or closed
/// round of handling here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Holder {
    pub district: String,
    /// The community the holding cell belongs to (itself for a community cell); `None` for
    /// a case held at the district.
    pub community: Option<String>,
    pub cell: String,
    pub tier: Tier,
}

/// One field of a case that an event changed, as the audit trail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl CaseSummary {
    /// A case the read model has not seen an event of yet.
    pub fn new(case_id: CaseId, location: GridLocation) -> Self {
        Self {
            case_id,
            version: 0,
            position: 0,
            intake: None,
            title: String::new(),
            reported_category: String::new(),
            category: None,
            priority: None,
            status: CaseStatus::New,
            cell: location.building.clone(),
            location,
            tier: None,
            assignee: None,
            reporter: None,
            channel: None,
            suspension: None,
            closure: None,
            reported_at: None,
            accepted_at: None,
            first_dispatched_at: None,
            dispatched_at: None,
            acknowledged_at: None,
            resolved_at: None,
            closed_at: None,
            ended_at: None,
            last_event_at: None,
            dispatches: 0,
            declines: 0,
            reassignments: 0,
            escalations: 0,
            reworks: 0,
            reopenings: 0,
            warnings: 0,
            breaches: 0,
            satisfaction: None,
            resolved_for_resident: None,
            supervision: None,
        }
    }

    /// Whether the case was ever referred for supervision (督办).
    pub fn is_supervised(&self) -> bool {
        self.supervision.is_some()
    }

    /// Who answers for the case now: the cell of its latest dispatch, reassignment or
    /// escalation at its tier, or the report's building cell before any. The community of
    /// a building cell is the report's: a case is dispatched in the building it was reported
    /// in, or moved up from it, and a fold reads no grid to look another one up.
    pub fn holder(&self) -> Holder {
        let tier = self.tier.unwrap_or(Tier::Building);
        let community = match tier {
            Tier::Building => Some(self.location.community.clone()),
            Tier::Community => Some(self.cell.clone()),
            Tier::District => None,
        };
        Holder {
            district: self.location.district.clone(),
            community,
            cell: self.cell.clone(),
            tier,
        }
    }

    /// Whether the case still needs someone: not closed, rejected, merged or voided.
    pub fn is_open(&self) -> bool {
        self.status != CaseStatus::New && !self.status.is_terminal()
    }

    /// Folds one event. Total: never panics, whatever the event or its order.
    pub fn apply(&mut self, envelope: &EventEnvelope, position: u64) {
        let at = envelope.occurred_at;
        let before = self.status;
        self.status = before.after(&envelope.event);
        self.version = self.version.max(envelope.sequence);
        self.position = self.position.max(position);
        self.last_event_at = Some(self.last_event_at.map_or(at, |last| last.max(at)));

        use CaseEvent as E;
        match &envelope.event {
            E::Reported(reported) => {
                if before == CaseStatus::New {
                    self.location = envelope.location.clone();
                    self.cell = envelope.location.building.clone();
                    self.intake = Some(reported.details.intake_kind());
                    self.title = reported.title.clone();
                    self.reported_category = reported.reported_category.clone();
                    self.reported_at = Some(at);
                    let (reporter, channel) = match &reported.details {
                        ReportDetails::ResidentReport { channel, resident }
                        | ReportDetails::ServiceRequest { channel, resident } => {
                            (resident.id.clone(), Some(*channel))
                        }
                        ReportDetails::PatrolFinding { worker_id, .. } => (worker_id.clone(), None),
                    };
                    self.reporter = Some(reporter);
                    self.channel = channel;
                }
            }
            E::Accepted(accepted) => {
                self.category = Some(accepted.category.clone());
                self.priority = Some(accepted.priority);
                self.accepted_at.get_or_insert(at);
            }
            E::Dispatched(dispatched) => {
                self.tier = Some(dispatched.tier);
                self.cell = dispatched.cell.clone();
                self.assignee = Some(dispatched.assignee.clone());
                self.first_dispatched_at.get_or_insert(at);
                self.dispatched_at = Some(at);
                self.dispatches += 1;
            }
            E::Acknowledged(acknowledged) => {
                self.assignee = Some(acknowledged.worker_id.clone());
                self.acknowledged_at.get_or_insert(at);
            }
            E::Declined(_) => {
                self.assignee = None;
                self.declines += 1;
            }
            E::Reassigned(reassigned) => {
                self.assignee = Some(reassigned.to_worker.clone());
                self.tier = Some(reassigned.tier);
                self.cell = reassigned.cell.clone();
                self.dispatched_at = Some(at);
                self.reassignments += 1;
            }
            E::HandlingStarted(started) => self.assignee = Some(started.worker_id.clone()),
            E::Suspended(suspended) => self.suspension = Some(suspended.reason),
            E::Resolved(resolved) => {
                self.assignee = Some(resolved.worker_id.clone());
                self.resolved_at = Some(at);
            }
            E::ReworkRequested(_) => self.reworks += 1,
            E::Closed(closed) => {
                self.closure = Some(closed.closure);
                self.closed_at = Some(at);
            }
            E::Reopened(_) => {
                self.assignee = None;
                self.reopenings += 1;
            }
            E::Evaluated(evaluated) => {
                self.satisfaction = Some(evaluated.satisfaction);
                self.resolved_for_resident = evaluated.resolved;
            }
            E::Escalated(escalated) => {
                self.tier = Some(escalated.to_tier);
                self.cell = escalated.cell.clone();
                self.assignee = None;
                self.escalations += 1;
            }
            E::SlaWarning(_) => self.warnings += 1,
            E::SlaBreached(_) => self.breaches += 1,
            E::SupervisionRequested(requested) => {
                let since = self.supervision.as_ref().map_or(at, |s| s.since.min(at));
                let requests = self.supervision.as_ref().map_or(0, |s| s.requests);
                self.supervision = Some(CaseSupervision {
                    since,
                    unit: requested.unit.clone(),
                    leaders: requested.leaders.clone(),
                    contact: requested.contact.clone(),
                    step: requested.step,
                    overdue_since: requested.overdue_since,
                    requests: requests.saturating_add(1),
                });
            }
            E::Rejected(_)
            | E::Merged(_)
            | E::Resumed(_)
            | E::ExtensionGranted(_)
            | E::Verified(_)
            | E::CommentAdded(_)
            | E::Voided(_)
            | E::DeadlineRevised(_) => {}
        }
        if self.status != CaseStatus::Suspended {
            self.suspension = None;
        }
        if self.status != CaseStatus::Closed {
            self.closure = None;
        }
        if self.status.is_terminal() {
            self.ended_at = Some(at);
        } else {
            self.ended_at = None;
        }
    }

    /// What an event changed, field by field, from `before` to `self`: the "what changed"
    /// of an audit entry. Counters and times are left out (the event itself says when).
    pub fn changes_from(&self, before: &CaseSummary) -> Vec<FieldChange> {
        let mut changes = Vec::new();
        let mut compare = |field: &str, from: Option<String>, to: Option<String>| {
            if from != to {
                changes.push(FieldChange {
                    field: field.to_owned(),
                    from,
                    to,
                });
            }
        };
        let status = |s: &CaseSummary| (s.status != CaseStatus::New).then(|| s.status.to_string());
        compare("status", status(before), status(self));
        compare("category", before.category.clone(), self.category.clone());
        compare(
            "priority",
            before.priority.map(|p| name_of(&p)),
            self.priority.map(|p| name_of(&p)),
        );
        compare(
            "tier",
            before.tier.map(|t| name_of(&t)),
            self.tier.map(|t| name_of(&t)),
        );
        let cell = |s: &CaseSummary| (s.status != CaseStatus::New).then(|| s.cell.clone());
        compare("cell", cell(before), cell(self));
        compare("assignee", before.assignee.clone(), self.assignee.clone());
        compare(
            "suspension",
            before.suspension.map(|r| name_of(&r)),
            self.suspension.map(|r| name_of(&r)),
        );
        compare(
            "closure",
            before.closure.map(|c| name_of(&c)),
            self.closure.map(|c| name_of(&c)),
        );
        compare(
            "satisfaction",
            before.satisfaction.map(|s| s.to_string()),
            self.satisfaction.map(|s| s.to_string()),
        );
        compare(
            "supervision",
            before.supervision.as_ref().map(CaseSupervision::by),
            self.supervision.as_ref().map(CaseSupervision::by),
        );
        changes
    }
}

/// The snake_case name serde gives a unit enum variant.
pub fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

//! Why a command was refused, in terms a caller can act on.

use chrono::{DateTime, Utc};
use wangge_schemas::{SlaStep, Tier};

use super::status::CaseStatus;

/// A refusal by the aggregate. Every variant means "nothing was recorded"; retrying the
/// same command against the same state gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("no case has been reported under this id")]
    CaseNotFound,
    #[error("the case has already been reported")]
    CaseAlreadyExists,
    #[error("command `{command}` is not allowed while the case is {status}")]
    InvalidTransition {
        command: &'static str,
        status: CaseStatus,
    },
    #[error("worker `{worker_id}` is not the assignee of the case (assignee: {})", .assignee.as_deref().unwrap_or("none"))]
    NotAssignee {
        worker_id: String,
        assignee: Option<String>,
    },
    #[error("invalid `{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("{} of step {} with deadline {deadline} is already recorded", .kind.as_str(), step_name(*.step))]
    AlreadyRecorded {
        kind: SlaRecordKind,
        step: SlaStep,
        deadline: DateTime<Utc>,
    },
    #[error("the case has already been evaluated since it was last closed")]
    AlreadyEvaluated,
    #[error(
        "only the grid worker who reported a patrol finding may self-handle it, not `{worker_id}`"
    )]
    NotPatrolReporter {
        worker_id: String,
        reporter: Option<String>,
    },
    #[error("step {} has its deadline at {deadline}, not yet passed at {now}", step_name(*.step))]
    BreachBeforeDeadline {
        step: SlaStep,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("escalation must go up the grid, not from {} to {}", tier_name(*.from_tier), tier_name(*.to_tier))]
    NotAnEscalation { from_tier: Tier, to_tier: Tier },
    #[error(
        "supervision (督办) follows a breach of the district's own limit; the case is held at the {} tier",
        .tier.map_or("building", tier_name)
    )]
    NotAtDistrict { tier: Option<Tier> },
}

impl DomainError {
    /// A stable snake_case code for replies to other systems.
    pub fn code(&self) -> &'static str {
        match self {
            Self::CaseNotFound => "case_not_found",
            Self::CaseAlreadyExists => "case_already_exists",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::NotAssignee { .. } => "not_assignee",
            Self::InvalidField { .. } => "invalid_field",
            Self::AlreadyRecorded { .. } => "already_recorded",
            Self::AlreadyEvaluated => "already_evaluated",
            Self::NotPatrolReporter { .. } => "not_patrol_reporter",
            Self::BreachBeforeDeadline { .. } => "breach_before_deadline",
            Self::NotAnEscalation { .. } => "not_an_escalation",
            Self::NotAtDistrict { .. } => "not_at_district",
        }
    }
}

/// Which SLA fact was recorded twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlaRecordKind {
    Warning,
    Breach,
    /// A request for supervision (督办) of one breached step and deadline.
    Supervision,
}

impl SlaRecordKind {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "sla_warning",
            Self::Breach => "sla_breach",
            Self::Supervision => "supervision_request",
        }
    }
}

fn step_name(step: SlaStep) -> &'static str {
    match step {
        SlaStep::Accept => "accept",
        SlaStep::Dispatch => "dispatch",
        SlaStep::Acknowledge => "acknowledge",
        SlaStep::Resolve => "resolve",
        SlaStep::Verify => "verify",
    }
}

fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Building => "building",
        Tier::Community => "community",
        Tier::District => "district",
    }
}

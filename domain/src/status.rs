//! Where a case stands in its closed loop.

use std::fmt;

use serde::{Deserialize, Serialize};
use wangge_schemas::CaseEvent;

/// The status of a case, derived from its events.
///
/// `Closed` is terminal until a reopening; `Rejected`, `Merged` and `Voided` are terminal for
/// good (only comments may still be added).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// No case yet: nothing has been reported under this id.
    #[default]
    New,
    /// 信息采集: reported, waiting for acceptance.
    Reported,
    /// 立案: accepted (or declined, escalated, reopened) and waiting for a worker.
    AwaitingDispatch,
    /// 派遣: sent to a worker who has not answered yet.
    Dispatched,
    /// The worker took the task.
    Acknowledged,
    /// 处置: the worker is handling it.
    InProgress,
    /// The clock is stopped (waiting for the resident, for parts, or 挂账 parked).
    Suspended,
    /// 反馈: the handler reported a result that waits for verification.
    Resolved,
    /// 结案: verified or self-handled.
    Closed,
    /// Refused at acceptance.
    Rejected,
    /// Folded into another case as a duplicate.
    Merged,
    /// 作废: void.
    Voided,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 12] = [
        Self::New,
        Self::Reported,
        Self::AwaitingDispatch,
        Self::Dispatched,
        Self::Acknowledged,
        Self::InProgress,
        Self::Suspended,
        Self::Resolved,
        Self::Closed,
        Self::Rejected,
        Self::Merged,
        Self::Voided,
    ];

    /// Whether the case has reached an outcome: closed, rejected, merged or voided.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Closed | Self::Rejected | Self::Merged | Self::Voided
        )
    }

    /// The status after `event`: the closed loop's transitions as the case fold applies them
    /// (total, like the fold: any event in any status gives a status). Read models use the
    /// same function, so they never disagree with the aggregate about where a case stands.
    pub fn after(self, event: &CaseEvent) -> CaseStatus {
        use CaseEvent as E;
        match event {
            // A second report of an existing case changes nothing.
            E::Reported(_) if self == Self::New => Self::Reported,
            E::Reported(_) => self,
            E::Accepted(_) | E::Declined(_) | E::Reopened(_) | E::Escalated(_) => {
                Self::AwaitingDispatch
            }
            E::Rejected(_) => Self::Rejected,
            E::Merged(_) => Self::Merged,
            // A reassigned worker has to take the task like any dispatched one.
            E::Dispatched(_) | E::Reassigned(_) => Self::Dispatched,
            E::Acknowledged(_) => Self::Acknowledged,
            E::HandlingStarted(_) | E::Resumed(_) | E::ReworkRequested(_) => Self::InProgress,
            E::Suspended(_) => Self::Suspended,
            E::Resolved(_) => Self::Resolved,
            E::Closed(_) => Self::Closed,
            E::Voided(_) => Self::Voided,
            // Verification is followed by the closing event, which changes the status; the
            // rest are facts about a case that do not move it.
            E::Verified(_)
            | E::ExtensionGranted(_)
            | E::Evaluated(_)
            | E::CommentAdded(_)
            | E::SlaWarning(_)
            | E::SlaBreached(_)
            | E::DeadlineRevised(_)
            | E::SupervisionRequested(_) => self,
        }
    }

    /// The stable snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Reported => "reported",
            Self::AwaitingDispatch => "awaiting_dispatch",
            Self::Dispatched => "dispatched",
            Self::Acknowledged => "acknowledged",
            Self::InProgress => "in_progress",
            Self::Suspended => "suspended",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
            Self::Rejected => "rejected",
            Self::Merged => "merged",
            Self::Voided => "voided",
        }
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

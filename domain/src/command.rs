//! What someone asks of a case. A command may be refused; an event may not.
//!
//! Commands carry everything a decision needs (the shell looks data up beforehand), so
//! [`decide`](super::decide) stays a pure function of state, command and time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::{
    CaseId, CaseReported, Channel, GridLocation, MediaRef, Priority, SatisfactionLevel, SlaStep,
    SuspendReason, Tier, TimeLimit,
};

// A command lives for one decision and is never held in bulk: boxing the report (the large
// variant) would cost an allocation per command and buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum CaseCommand {
    /// 信息采集: open the case.
    Report {
        location: GridLocation,
        report: CaseReported,
    },
    /// 立案: register the case with its (possibly corrected) category and priority. A blank
    /// category confirms the one reported.
    Accept {
        category: String,
        priority: Priority,
    },
    /// Refuse the report as not a valid case.
    Reject {
        reason: String,
    },
    /// Fold a duplicate into another case.
    Merge {
        into_case_id: CaseId,
        reason: Option<String>,
    },
    /// 派遣: send the case to a worker of a cell.
    Dispatch {
        tier: Tier,
        cell: String,
        assignee: String,
    },
    /// 立案 and 派遣 decided together, as the dispatcher does when it can route a new report
    /// at once: the events of `Accept` then of `Dispatch`, in one commit. The two facts stay
    /// two events; the worker's task follows from one append instead of two.
    AcceptAndDispatch {
        category: String,
        priority: Priority,
        tier: Tier,
        cell: String,
        assignee: String,
    },
    /// The assignee takes the task.
    Acknowledge {
        worker_id: String,
    },
    /// The assignee refuses the task (回退); it goes back for dispatch.
    Decline {
        worker_id: String,
        reason: String,
    },
    /// Move the task to another worker, who must acknowledge it.
    Reassign {
        to_worker: String,
        tier: Tier,
        cell: String,
        reason: String,
    },
    /// 处置: the assignee starts work.
    StartHandling {
        worker_id: String,
    },
    /// Stop the clock (waiting for the resident, for parts, or 挂账 parked).
    Suspend {
        reason: SuspendReason,
        note: Option<String>,
    },
    Resume {
        note: Option<String>,
    },
    /// 延期: extend the limit of a step.
    GrantExtension {
        step: SlaStep,
        extension: TimeLimit,
        reason: String,
    },
    /// 反馈: the assignee reports the result.
    Resolve {
        worker_id: String,
        notes: String,
        media: Vec<MediaRef>,
    },
    /// 核查: a pass closes the case, a failure sends it back for rework (`notes` is the reason).
    Verify {
        verifier: String,
        passed: bool,
        notes: Option<String>,
    },
    /// 自处理: the grid worker who reported a patrol finding fixed it on the spot and closes it.
    SelfHandle {
        worker_id: String,
        notes: String,
        media: Vec<MediaRef>,
    },
    Reopen {
        reason: String,
    },
    /// 综合评价: the reporter's satisfaction, 1..=5, once per closure.
    Evaluate {
        satisfaction: u8,
        comment: Option<String>,
        /// Whether the problem was solved, in the resident's words (问题是否解决), if asked.
        #[serde(default)]
        resolved: Option<bool>,
        /// The three-level word the resident chose; `satisfaction` must be its score.
        #[serde(default)]
        level: Option<SatisfactionLevel>,
        /// How the evaluation reached the engine.
        #[serde(default)]
        channel: Option<Channel>,
    },
    Comment {
        text: String,
    },
    /// Move the case up the grid (大事全网联动); it waits for dispatch at the new tier.
    Escalate {
        to_tier: Tier,
        cell: String,
        reason: String,
    },
    /// A timer saw a step pass its warning fraction.
    RecordSlaWarning {
        step: SlaStep,
        deadline: DateTime<Utc>,
        threshold_percent: u8,
    },
    /// A timer saw a step run past its deadline.
    RecordSlaBreach {
        step: SlaStep,
        deadline: DateTime<Utc>,
    },
    /// 督办: the district let `step` run past its own limit; refer the case to the district's
    /// leadership for supervision. Oversight only: the case stays with its holder, at its
    /// status, on its clock. Once per breached step and deadline (`step`, `overdue_since`).
    /// The shell names the leadership as the grid has it now, so the event keeps it.
    RequestSupervision {
        district: String,
        cell: String,
        /// The supervision unit the district names; `None` when it names none.
        unit: Option<String>,
        leaders: Vec<String>,
        contact: Option<String>,
        step: SlaStep,
        overdue_since: DateTime<Utc>,
        reason: String,
    },
    /// 作废: the case is void (a test, a prank, entered by mistake).
    Void {
        reason: String,
    },
}

impl CaseCommand {
    /// The stable snake_case name of the command, as used in errors and replies.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Report { .. } => "report",
            Self::Accept { .. } => "accept",
            Self::Reject { .. } => "reject",
            Self::Merge { .. } => "merge",
            Self::Dispatch { .. } => "dispatch",
            Self::AcceptAndDispatch { .. } => "accept_and_dispatch",
            Self::Acknowledge { .. } => "acknowledge",
            Self::Decline { .. } => "decline",
            Self::Reassign { .. } => "reassign",
            Self::StartHandling { .. } => "start_handling",
            Self::Suspend { .. } => "suspend",
            Self::Resume { .. } => "resume",
            Self::GrantExtension { .. } => "grant_extension",
            Self::Resolve { .. } => "resolve",
            Self::Verify { .. } => "verify",
            Self::SelfHandle { .. } => "self_handle",
            Self::Reopen { .. } => "reopen",
            Self::Evaluate { .. } => "evaluate",
            Self::Comment { .. } => "comment",
            Self::Escalate { .. } => "escalate",
            Self::RecordSlaWarning { .. } => "record_sla_warning",
            Self::RecordSlaBreach { .. } => "record_sla_breach",
            Self::RequestSupervision { .. } => "request_supervision",
            Self::Void { .. } => "void",
        }
    }
}

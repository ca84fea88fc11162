//! The state machine of the closed loop in one table, and the field checks commands share.

use wangge_schemas::MediaRef;

use super::command::CaseCommand;
use super::error::DomainError;
use super::state::CaseState;
use super::status::CaseStatus::{self, *};

/// Whether `command` may be considered at all while the case is in `status`. The finer
/// rules (who may do it, which values are valid) come after, in `decide`.
pub(crate) fn permits(command: &CaseCommand, status: CaseStatus) -> bool {
    use CaseCommand as C;
    match command {
        C::Report { .. } => status == New,
        C::Accept { .. } | C::AcceptAndDispatch { .. } | C::Reject { .. } | C::Merge { .. } => {
            status == Reported
        }
        C::SelfHandle { .. } => matches!(status, Reported | AwaitingDispatch),
        C::Dispatch { .. } => status == AwaitingDispatch,
        C::Acknowledge { .. } | C::Decline { .. } => status == Dispatched,
        C::Reassign { .. } => matches!(status, Dispatched | Acknowledged | InProgress),
        C::Escalate { .. } => {
            matches!(
                status,
                AwaitingDispatch | Dispatched | Acknowledged | InProgress
            )
        }
        C::StartHandling { .. } => status == Acknowledged,
        C::Resolve { .. } => matches!(status, Acknowledged | InProgress),
        C::Suspend { .. } => status == InProgress,
        C::Resume { .. } => status == Suspended,
        C::Verify { .. } => status == Resolved,
        C::Reopen { .. } | C::Evaluate { .. } => status == Closed,
        C::Comment { .. } => status != New,
        // Limits only exist once the case is accepted, and only while it is open.
        C::GrantExtension { .. } => !status.is_terminal() && !matches!(status, New | Reported),
        C::RecordSlaWarning { .. } | C::RecordSlaBreach { .. } | C::RequestSupervision { .. } => {
            status != New && !status.is_terminal()
        }
        // A resolved case is voided by failing its verification first, never silently.
        C::Void { .. } => matches!(
            status,
            Reported | AwaitingDispatch | Dispatched | Acknowledged | InProgress | Suspended
        ),
    }
}

/// A free-text or id field that must say something.
pub(crate) fn required(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::InvalidField {
            field,
            reason: "must not be empty".to_owned(),
        });
    }
    Ok(())
}

/// An optional text: absent is fine, present but blank is a mistake of the sender.
pub(crate) fn optional(field: &'static str, value: &Option<String>) -> Result<(), DomainError> {
    match value {
        Some(text) => required(field, text),
        None => Ok(()),
    }
}

pub(crate) fn media(field: &'static str, media: &[MediaRef]) -> Result<(), DomainError> {
    media.iter().try_for_each(|item| required(field, &item.url))
}

/// Only the worker the case is with may act on it as its handler.
pub(crate) fn must_be_assignee(state: &CaseState, worker_id: &str) -> Result<(), DomainError> {
    if state.assignee.as_deref() == Some(worker_id) {
        return Ok(());
    }
    Err(DomainError::NotAssignee {
        worker_id: worker_id.to_owned(),
        assignee: state.assignee.clone(),
    })
}

//! The escalation choice: what a due SLA timer asks of a case.
//!
//! A warning or a breach is recorded as it is. An escalation rung becomes a command here:
//! `reassign_in_cell` gives the task to another worker of the same cell, one who has not had
//! it there yet (if the cell has nobody else, the case moves up instead); `escalate_tier`
//! moves the case to the cell above (building → community → district), where the dispatcher
//! routes it again. Pure: the timer, the case's history, the grid, the catalogue and the
//! workers' loads in, a command (or nothing to do) out.

use wangge_schemas::{CaseEvent, EventEnvelope, SlaStep};

use crate::grid::{CategoryCatalogue, GridState};
use crate::routing::{route, RouteRequest, WorkerLoad};
use crate::sla::{DueTimer, EscalationAction, TimerKind};
use crate::{replay, CaseCommand};

/// The command a due timer turns into for a case at `version` with `history`, or `None`
/// when there is nothing to do after all.
pub fn command_for_timer(
    timer: &DueTimer,
    version: u64,
    history: &[EventEnvelope],
    grid: &GridState,
    categories: &CategoryCatalogue,
    load: &WorkerLoad,
) -> Option<CaseCommand> {
    if let Some(command) = timer.command() {
        return Some(command);
    }
    let TimerKind::Escalation { action, .. } = timer.kind else {
        return None;
    };
    let state = replay(history);
    let reason = format!(
        "{} overdue since {}",
        step_name(timer.step),
        timer.deadline.to_rfc3339()
    );
    let tier = state.tier?;
    let cell = state.cell.clone()?;
    if action == EscalationAction::ReassignInCell {
        // Another worker of the same cell, one who has not had the task here yet; if the
        // cell has nobody else, move up instead.
        let category = categories.get(state.category.as_deref()?)?;
        let exclude = holders_at(history, &cell);
        let request = RouteRequest {
            location: state.location.as_ref()?,
            category,
            start_tier: Some(tier),
            exclude: &exclude,
            cursor: version,
        };
        if let Ok(decision) = route(&request, grid, load) {
            if decision.cell == cell && !decision.fallback {
                return Some(CaseCommand::Reassign {
                    to_worker: decision.assignee,
                    tier: decision.tier,
                    cell: decision.cell,
                    reason,
                });
            }
        }
    }
    let Some(to_tier) = tier.parent() else {
        // At the district already: no tier above it. The district cell's supervisor takes
        // the case from whoever holds it (兜底, as routing does when nobody qualifies); a
        // case nobody holds waits for the dispatcher, which routes it the same way.
        let supervisor = grid.supervisor_of(&cell)?;
        if state.assignee.as_deref()? == supervisor {
            return None;
        }
        return Some(CaseCommand::Reassign {
            to_worker: supervisor.to_owned(),
            tier,
            cell,
            reason,
        });
    };
    let parent = grid.parent(&cell)?;
    debug_assert!(to_tier > tier);
    Some(CaseCommand::Escalate {
        to_tier,
        cell: parent.code.clone(),
        reason,
    })
}

/// Everyone who has held the case in `cell` (dispatched to them or reassigned to them).
pub fn holders_at(history: &[EventEnvelope], cell: &str) -> Vec<String> {
    let mut holders = Vec::new();
    for event in history {
        let holder = match &event.event {
            CaseEvent::Dispatched(d) if d.cell == cell => Some(&d.assignee),
            CaseEvent::Reassigned(r) if r.cell == cell => Some(&r.to_worker),
            _ => None,
        };
        if let Some(holder) = holder {
            if !holders.contains(holder) {
                holders.push(holder.clone());
            }
        }
    }
    holders
}

/// The step's name as escalation reasons write it.
pub fn step_name(step: SlaStep) -> &'static str {
    match step {
        SlaStep::Accept => "acceptance",
        SlaStep::Dispatch => "dispatch",
        SlaStep::Acknowledge => "acknowledgement",
        SlaStep::Resolve => "resolution",
        SlaStep::Verify => "verification",
    }
}

//! The escalation choice: what a due SLA timer asks of a case.
//!
//! A warning or a breach is recorded as it is. An escalation rung becomes a command here:
//! `reassign_in_cell` gives the task to another worker of the same cell, one who has not had
//! it there yet (if the cell has nobody else, the case moves up instead); `escalate_tier`
//! moves the case to the cell above (building → community → district), where the dispatcher
//! routes it again. Pure: the timer, the case's history, the grid, the catalogue and the
//! workers' loads in, a command (or nothing to do) out.
//!
//! # 督办: the rung above the district
//!
//! The district has no cell above it. When its own limit is breached — the `escalate_tier`
//! rung at the district, or the `reassign_in_cell` rung when nobody else in the district cell
//! can take the case — the case is referred to the district's leadership for supervision
//! (`RequestSupervision` → `case.supervision_requested`), naming the unit and leaders the grid
//! gives the district (its `supervision`), or the district cell's supervisor when it names
//! none. The rules:
//!
//! - **The case stays with its holder.** 督办 is oversight: the district still handles the
//!   case; nobody is reassigned, the status does not move.
//! - **The SLA clock does not change.** The step runs on against the deadline it breached
//!   (the board keeps it red) until the district finishes the step; no new limit is set.
//! - **Once per breach.** A request is identified, like a breach, by its step and breached
//!   deadline: the rest of that step's ladder has nothing more to do (a settled rung, looked
//!   at once and not again), and a repeated timer or a retry is refused as already recorded.
//!   A later step, or a new deadline of the step (an extension, a rework), that the district
//!   again lets run out is a new breach and is referred again.

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
        // At the district already: no tier above it, so the district's leadership is asked
        // to supervise (督办), once per breach; the case stays where it is.
        return supervision_request(timer, &state, grid, cell, reason);
    };
    let parent = grid.parent(&cell)?;
    debug_assert!(to_tier > tier);
    Some(CaseCommand::Escalate {
        to_tier,
        cell: parent.code.clone(),
        reason,
    })
}

/// 督办 for a case the district holds past its limit, naming the leadership as the grid has
/// it now; `None` once requested for this breach (the rung is settled).
fn supervision_request(
    timer: &DueTimer,
    state: &crate::CaseState,
    grid: &GridState,
    cell: String,
    reason: String,
) -> Option<CaseCommand> {
    if state
        .supervision_requests
        .contains(&(timer.step, timer.deadline))
    {
        return None;
    }
    let district = state.location.as_ref()?.district.clone();
    let (unit, leaders, contact) = match grid.supervision_of(&district) {
        Some(named) => (
            Some(named.unit.clone()),
            named.leaders.clone(),
            named.contact.clone(),
        ),
        // A district that names no supervision: its duty leader is asked, so the ladder
        // still ends somewhere visible.
        None => (None, vec![grid.supervisor_of(&district)?.to_owned()], None),
    };
    let referred_to = unit
        .clone()
        .unwrap_or_else(|| format!("the district duty leader {}", leaders[0]));
    Some(CaseCommand::RequestSupervision {
        district,
        cell,
        unit,
        leaders,
        contact,
        step: timer.step,
        overdue_since: timer.deadline,
        reason: format!("{reason} at the district: referred to {referred_to} for supervision"),
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

//! Who may do what to a case: the rule behind "only the assignee (or the supervisor of the
//! cell) may act".
//!
//! [`decide`](super::decide) asks whether a command fits the case; [`authorize`] asks whether
//! the *actor* may send it. Pure, like the rest of the domain: whether the actor supervises
//! the case's cell and who reported the case are looked up by the shell and passed in.
//!
//! The rules, by command:
//!
//! | command | who may send it |
//! |---|---|
//! | acknowledge, decline, start handling, suspend, resume, resolve, escalate, comment | the current assignee, or a supervisor of the case's current cell |
//! | grant extension | a supervisor of the case's cell (a worker *requests* one with a comment) |
//! | verify | a supervisor of the case's cell, the grid worker who reported it on patrol, or the resident who reported it; never the handler of the result |
//! | self-handle | the grid worker who reported it on patrol, or a supervisor |
//! | evaluate | the resident who reported it, or a supervisor (a follow-up call, 回访) |
//! | accept, reject, merge, dispatch, reassign, reopen, void | a supervisor of the case's cell |
//! | report | anyone (there is no case yet) |
//! | record SLA warning or breach | only the engine's own components |
//!
//! System actors (the engine's own components: dispatcher, timers, intake) may do
//! everything; the aggregate's own rules still apply to them. A resident never supervises,
//! whatever the shell says.

use wangge_schemas::{Actor, ActorKind, EventEnvelope, ReportDetails};

use super::command::CaseCommand;
use super::state::CaseState;

/// Why an actor may not send a command. Nothing is recorded when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// A handler's command from someone the case is not with.
    #[error("`{actor}` may not `{command}` this case: it is with {}; only the assignee or a supervisor of cell {} may", assignee_text(.assignee), .cell.as_deref().unwrap_or("(none)"))]
    NotAssignee {
        actor: String,
        command: &'static str,
        assignee: Option<String>,
        cell: Option<String>,
    },
    /// A command this kind of actor, or this actor, may never send on this case.
    #[error("`{actor}` may not `{command}` this case: only {allowed} may")]
    NotPermitted {
        actor: String,
        command: &'static str,
        /// Who may, in words: "a supervisor of cell 110101001002007".
        allowed: String,
    },
}

impl AuthorizationError {
    /// The same refusal naming the command as its sender called it (a worker's `start` is
    /// the aggregate's `start_handling`).
    pub fn naming(mut self, name: &'static str) -> Self {
        match &mut self {
            Self::NotAssignee { command, .. } | Self::NotPermitted { command, .. } => {
                *command = name;
            }
        }
        self
    }

    /// A stable snake_case code for replies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAssignee { .. } => "not_assignee",
            Self::NotPermitted { .. } => "not_permitted",
        }
    }
}

fn assignee_text(assignee: &Option<String>) -> String {
    match assignee {
        Some(worker) => format!("`{worker}`"),
        None => "nobody".to_owned(),
    }
}

/// The cell that answers for the case now: the one it was last dispatched, reassigned or
/// escalated to, or before any of that the building it was reported in. Supervision is
/// asked about this cell.
pub fn case_cell(state: &CaseState) -> Option<&str> {
    state
        .cell
        .as_deref()
        .or_else(|| state.location.as_ref().map(|l| l.building.as_str()))
}

/// The resident who reported the case, from its `case.reported` event: `None` for a patrol
/// finding or when the history does not start with a report.
pub fn reporting_resident(events: &[EventEnvelope]) -> Option<&str> {
    events.iter().find_map(|envelope| match &envelope.event {
        wangge_schemas::CaseEvent::Reported(reported) => match &reported.details {
            ReportDetails::ResidentReport { resident, .. }
            | ReportDetails::ServiceRequest { resident, .. } => Some(resident.id.as_str()),
            ReportDetails::PatrolFinding { .. } => None,
        },
        _ => None,
    })
}

/// The system that reported the case: the source of its first event. Resident ids are that
/// system's own, so only it may speak for the case's resident.
pub fn reporting_system(events: &[EventEnvelope]) -> Option<&str> {
    events.first().map(|first| first.source.system.as_str())
}

/// Whether `actor` may send `command` to the case in `state`.
///
/// `actor_supervises_case_cell` is the grid's answer to "does this person supervise
/// [`case_cell`]?"; `reporting_resident` is [`reporting_resident`] of the case's history
/// (the state does not keep it). Checked before [`decide`](super::decide), so a refusal
/// names who may act, whatever the case's status.
pub fn authorize(
    state: &CaseState,
    actor: &Actor,
    command: &CaseCommand,
    actor_supervises_case_cell: bool,
    reporting_resident: Option<&str>,
) -> Result<(), AuthorizationError> {
    use CaseCommand as C;
    let person = matches!(actor.kind, ActorKind::GridWorker | ActorKind::Supervisor);
    let supervisor = person && actor_supervises_case_cell;
    let is_assignee = person && state.assignee.as_deref() == Some(actor.id.as_str());
    let is_patrol_reporter = actor.kind == ActorKind::GridWorker
        && state.patrol_worker.as_deref() == Some(actor.id.as_str());
    let is_reporting_resident =
        actor.kind == ActorKind::Resident && reporting_resident == Some(actor.id.as_str());

    if actor.kind == ActorKind::System {
        return Ok(());
    }
    let cell = case_cell(state).unwrap_or("(none)");
    let refuse = |allowed: String| AuthorizationError::NotPermitted {
        actor: actor.id.clone(),
        command: command.name(),
        allowed,
    };
    match command {
        C::Report { .. } => Ok(()),
        C::Acknowledge { .. }
        | C::Decline { .. }
        | C::StartHandling { .. }
        | C::Suspend { .. }
        | C::Resume { .. }
        | C::Resolve { .. }
        | C::Escalate { .. }
        | C::Comment { .. } => {
            if is_assignee || supervisor {
                return Ok(());
            }
            Err(AuthorizationError::NotAssignee {
                actor: actor.id.clone(),
                command: command.name(),
                assignee: state.assignee.clone(),
                cell: case_cell(state).map(str::to_owned),
            })
        }
        C::Verify { .. } => {
            // Nobody checks their own work: the handler's result is verified by someone else.
            if (supervisor || is_patrol_reporter || is_reporting_resident) && !is_assignee {
                return Ok(());
            }
            let mut allowed = vec![format!("a supervisor of cell {cell}")];
            if let Some(worker) = &state.patrol_worker {
                allowed.push(format!("the grid worker who reported it (`{worker}`)"));
            }
            if reporting_resident.is_some() {
                allowed.push("the resident who reported it".to_owned());
            }
            let allowed = join_or(&allowed);
            Err(refuse(if is_assignee {
                format!("someone other than its handler ({allowed})")
            } else {
                allowed
            }))
        }
        C::SelfHandle { .. } => {
            if is_patrol_reporter || supervisor {
                return Ok(());
            }
            let reporter = state.patrol_worker.as_deref().map_or_else(
                || "the grid worker who reported it on patrol".to_owned(),
                |worker| format!("the grid worker who reported it (`{worker}`)"),
            );
            Err(refuse(format!("{reporter} or a supervisor of cell {cell}")))
        }
        C::Evaluate { .. } => {
            if is_reporting_resident || supervisor {
                return Ok(());
            }
            Err(refuse(format!(
                "the resident who reported it or a supervisor of cell {cell}"
            )))
        }
        C::GrantExtension { .. } => {
            if supervisor {
                return Ok(());
            }
            Err(refuse(format!(
                "a supervisor of cell {cell} (a worker requests an extension, a supervisor grants it)"
            )))
        }
        C::Accept { .. }
        | C::AcceptAndDispatch { .. }
        | C::Reject { .. }
        | C::Merge { .. }
        | C::Dispatch { .. }
        | C::Reassign { .. }
        | C::Reopen { .. }
        | C::Void { .. } => {
            if supervisor {
                return Ok(());
            }
            Err(refuse(format!("a supervisor of cell {cell}")))
        }
        C::RecordSlaWarning { .. } | C::RecordSlaBreach { .. } | C::RequestSupervision { .. } => {
            Err(refuse("the engine's own timers".to_owned()))
        }
    }
}

/// "a", "a or b", "a, b or c".
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CaseStatus;
    use wangge_schemas::GridLocation;

    const CELL: &str = "110101001002007";

    fn dispatched_to(worker: &str) -> CaseState {
        CaseState {
            status: CaseStatus::Dispatched,
            location: Some(GridLocation {
                district: "110101001".to_owned(),
                community: "110101001002".to_owned(),
                building: CELL.to_owned(),
            }),
            cell: Some(CELL.to_owned()),
            assignee: Some(worker.to_owned()),
            ..CaseState::default()
        }
    }

    fn acknowledge(worker: &str) -> CaseCommand {
        CaseCommand::Acknowledge {
            worker_id: worker.to_owned(),
        }
    }

    fn verify(verifier: &str) -> CaseCommand {
        CaseCommand::Verify {
            verifier: verifier.to_owned(),
            passed: true,
            notes: None,
        }
    }

    #[test]
    fn the_assignee_and_the_supervisor_may_handle_the_case_and_nobody_else() {
        let state = dispatched_to("wang");
        let wang = Actor::grid_worker("wang");
        let zhao = Actor::grid_worker("zhao");
        assert_eq!(
            authorize(&state, &wang, &acknowledge("wang"), false, None),
            Ok(())
        );
        assert_eq!(
            authorize(&state, &zhao, &acknowledge("wang"), true, None),
            Ok(())
        );
        let refused = authorize(&state, &zhao, &acknowledge("zhao"), false, None).unwrap_err();
        assert_eq!(refused.code(), "not_assignee");
        assert_eq!(
            refused.to_string(),
            format!("`zhao` may not `acknowledge` this case: it is with `wang`; only the assignee or a supervisor of cell {CELL} may")
        );
    }

    #[test]
    fn a_resident_never_supervises_and_the_engine_may_do_everything() {
        let state = dispatched_to("wang");
        let resident = Actor::resident("wang");
        let refused = authorize(&state, &resident, &acknowledge("wang"), true, None).unwrap_err();
        assert_eq!(refused.code(), "not_assignee");
        assert_eq!(
            authorize(
                &state,
                &Actor::system("dispatcher"),
                &acknowledge("wang"),
                false,
                None
            ),
            Ok(())
        );
    }

    #[test]
    fn verification_is_for_the_supervisor_or_the_reporter_never_the_handler() {
        let mut state = dispatched_to("wang");
        state.status = CaseStatus::Resolved;
        let resident = Actor::resident("resident-1");
        assert_eq!(
            authorize(
                &state,
                &resident,
                &verify("resident-1"),
                false,
                Some("resident-1")
            ),
            Ok(())
        );
        let stranger = Actor::resident("resident-2");
        let refused = authorize(
            &state,
            &stranger,
            &verify("resident-2"),
            false,
            Some("resident-1"),
        )
        .unwrap_err();
        assert_eq!(refused.code(), "not_permitted");
        assert_eq!(refused.to_string(), format!("`resident-2` may not `verify` this case: only a supervisor of cell {CELL} or the resident who reported it may"));
        let handler = Actor::grid_worker("wang");
        let refused =
            authorize(&state, &handler, &verify("wang"), true, Some("resident-1")).unwrap_err();
        assert_eq!(refused.to_string(), format!("`wang` may not `verify` this case: only someone other than its handler (a supervisor of cell {CELL} or the resident who reported it) may"));

        state.patrol_worker = Some("li".to_owned());
        let patrol = Actor::grid_worker("li");
        assert_eq!(
            authorize(&state, &patrol, &verify("li"), false, None),
            Ok(())
        );
        let boss = Actor::grid_worker("chen");
        assert_eq!(
            authorize(&state, &boss, &verify("chen"), true, None),
            Ok(())
        );
    }

    #[test]
    fn granting_an_extension_is_the_supervisors() {
        let state = dispatched_to("wang");
        let grant = CaseCommand::GrantExtension {
            step: wangge_schemas::SlaStep::Resolve,
            extension: wangge_schemas::TimeLimit {
                amount: 1,
                unit: wangge_schemas::TimeUnit::WorkingDays,
            },
            reason: "parts".to_owned(),
        };
        let refused =
            authorize(&state, &Actor::grid_worker("wang"), &grant, false, None).unwrap_err();
        assert_eq!(refused.code(), "not_permitted");
        assert_eq!(
            authorize(&state, &Actor::grid_worker("chen"), &grant, true, None),
            Ok(())
        );
    }

    #[test]
    fn before_dispatch_the_reported_building_is_the_cell() {
        let mut state = dispatched_to("wang");
        state.cell = None;
        state.assignee = None;
        assert_eq!(case_cell(&state), Some(CELL));
    }
}

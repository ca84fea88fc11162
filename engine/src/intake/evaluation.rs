//! An evaluation's round trip through its case: load the case, check the message against it
//! (pure, [`evaluation_request`]), and commit the `Evaluate` command after exactly the
//! history it was checked against.
//!
//! The commit is conditional on that history ([`CaseService::handle_after`]): if the case
//! moved on in between (reopened, evaluated by a copy of the message on another instance),
//! the case is read and checked again, so the rules hold at the commit, not only before it.

use tracing::debug;
use wangge_schemas::intake::EvaluationV1;

use crate::app::{CaseService, CommandError, CommandOutcome};
use crate::domain::authorize::reporting_system;
use crate::intake::validate::evaluation::{evaluation_request, rejection_for};
use crate::intake::validate::{IntakeRejection, RejectCode};
use crate::log::EventLog;

/// How often an evaluation is checked again when its case changed before the commit. Cases
/// are rarely busy once closed: running out means something keeps writing to it.
const MAX_ATTEMPTS: usize = 8;

/// Why an evaluation was not recorded.
#[derive(Debug)]
pub enum EvaluationRefusal {
    /// The message breaks a rule of its case; the sender must change something.
    Rule(IntakeRejection),
    /// The engine could not finish (the log failed, the case kept changing); the same
    /// message may succeed later.
    Engine(CommandError),
}

/// Records `message` on its case, or says why not. Writes nothing when it refuses.
///
/// `proven_system` is the intake system NATS proved sent it, when the engine runs with
/// proven identities: it must be the system that reported the case.
pub async fn evaluate<L: EventLog>(
    cases: &CaseService<L>,
    message: &EvaluationV1,
    proven_system: Option<&str>,
) -> Result<CommandOutcome, EvaluationRefusal> {
    let case_id = message.case_id;
    for attempt in 1..=MAX_ATTEMPTS {
        let mut history = cases
            .log()
            .load(case_id)
            .await
            .map_err(|error| EvaluationRefusal::Engine(error.into()))?;
        if let (Some(system), Some(reporter)) = (proven_system, reporting_system(&history.events)) {
            if reporter != system {
                // Which system reported it is not repeated: the sender may be probing.
                return Err(EvaluationRefusal::Rule(IntakeRejection::at(
                    RejectCode::NotReporter,
                    "source.system",
                    format!("`{system}` did not report case {case_id}; a system may pass on evaluations only for the cases it reported"),
                )));
            }
        }
        let request = evaluation_request(message, &history.events, cases.clock().now())
            .map_err(EvaluationRefusal::Rule)?;
        match cases.handle_after(request, &mut history).await {
            Ok(outcome) => return Ok(outcome),
            Err(CommandError::Stale { .. }) => {
                debug!(%case_id, attempt, "case moved on while the evaluation was checked, checking again");
            }
            Err(CommandError::Domain(error)) => {
                return Err(EvaluationRefusal::Rule(rejection_for(&error)))
            }
            Err(error) => return Err(EvaluationRefusal::Engine(error)),
        }
    }
    Err(EvaluationRefusal::Engine(CommandError::Contended {
        case_id,
        attempts: MAX_ATTEMPTS,
    }))
}

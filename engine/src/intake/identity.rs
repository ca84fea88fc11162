//! Which proven senders may publish which intake messages (see [`crate::nats::identity`]).
//!
//! - An intake system publishes reports, service requests and patrol findings (from a
//!   patrol app's back end) and residents' evaluations, with `source.system` equal to its
//!   NATS user: the event's source is the identity NATS proved. It may evaluate only a case
//!   it reported itself — resident ids are the reporting system's own, and only that system
//!   authenticated its resident.
//! - A grid worker publishes only patrol findings, as themselves: `worker_id` and
//!   `source.system` both equal their NATS user.
//! - A grid administrator publishes no intake.

use wangge_schemas::intake::{EvaluationV1, IntakeMessage};

use crate::nats::{IdentityRefusal, Party, Sender};

/// Whether `sender` may publish the report `message`.
pub fn may_report(sender: &Sender, message: &IntakeMessage) -> Result<(), IdentityRefusal> {
    let party = match sender {
        Sender::Claimed => return Ok(()),
        Sender::Proven(party) => party,
    };
    let system = &message.source().system;
    match party {
        Party::IntakeSystem(user) => same_source(user, system),
        Party::Worker(user) => match message {
            IntakeMessage::PatrolFinding(finding) => {
                if finding.worker_id != *user {
                    return Err(IdentityRefusal::mismatch(
                        "worker_id",
                        format!(
                            "this connection is authenticated as `{user}`, who may report patrol findings only as `{user}`, not as `{}`",
                            finding.worker_id
                        ),
                    ));
                }
                same_source(user, system)
            }
            other => Err(IdentityRefusal::forbidden(format!(
                "`{user}` is a grid worker and may publish patrol findings only, not a {}",
                other.kind().as_str()
            ))),
        },
        Party::GridAdmin(user) => Err(IdentityRefusal::forbidden(format!(
            "`{user}` is a grid administrator and may not publish intake"
        ))),
    }
}

/// Whether `sender` may publish the evaluation `message`; for a proven system, its name,
/// which must be the case's reporting system (checked against the case).
pub fn may_evaluate(
    sender: &Sender,
    message: &EvaluationV1,
) -> Result<Option<String>, IdentityRefusal> {
    match sender {
        Sender::Claimed => Ok(None),
        Sender::Proven(Party::IntakeSystem(user)) => {
            same_source(user, &message.source.system)?;
            Ok(Some(user.clone()))
        }
        Sender::Proven(Party::Worker(user)) | Sender::Proven(Party::GridAdmin(user)) => {
            Err(IdentityRefusal::forbidden(format!(
                "`{user}` is not an intake system: only the system that reported a case may pass on its resident's evaluation"
            )))
        }
    }
}

fn same_source(user: &str, system: &str) -> Result<(), IdentityRefusal> {
    if system == user {
        Ok(())
    } else {
        Err(IdentityRefusal::mismatch(
            "source.system",
            format!(
                "this connection is authenticated as `{user}`; its messages must name `{user}` as `source.system`, not `{system}`"
            ),
        ))
    }
}

//! Intake: how other systems open cases, and how residents evaluate them once closed.
//!
//! - [`validate`]: pure checks that turn bytes into a `Report` command, or an evaluation
//!   and then (against its case's history) an `Evaluate` command, or a precise rejection.
//! - [`service`]: processes one message end to end (validate, commit, or keep the rejection).
//! - [`evaluation`]: an evaluation's round trip through its case (load, check, commit).
//! - [`rejected`]: the store of refused messages, for `wangge rejected list | show | replay`.
//! - [`nats`]: the request-reply front on `wangge.intake.<kind>`.

pub mod evaluation;
pub mod identity;
pub mod nats;
pub mod rejected;
pub mod service;
pub mod throttle;
/// The pure checks, kept in the domain crate (`wangge_domain::intake`).
pub use wangge_domain::intake as validate;

pub use rejected::{JetStreamRejectedStore, MemoryRejectedStore, RejectedStore};
pub use service::IntakeService;
pub use validate::{
    check_intake, validate_intake, CheckedIntake, ClaimedTimeBounds, IntakeRejection,
    ReferenceData, RejectCode,
};

pub use wangge_domain::intake::INTAKE_SUBJECT_PREFIX;

/// The subject other systems publish a message of this kind to.
pub fn intake_subject(kind: wangge_schemas::IntakeKind) -> String {
    message_subject(wangge_schemas::intake::IntakeMessageKind::Case(kind))
}

/// The subject other systems publish an intake message of this kind to (evaluations:
/// `wangge.intake.evaluation`).
pub fn message_subject(kind: wangge_schemas::intake::IntakeMessageKind) -> String {
    format!("{INTAKE_SUBJECT_PREFIX}.{}", kind.as_str())
}

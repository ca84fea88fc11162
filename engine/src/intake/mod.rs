//! Intake: how other systems open cases.
//!
//! - [`validate`]: pure checks that turn bytes into a `Report` command or a precise rejection.
//! - [`service`]: processes one message end to end (validate, commit, or keep the rejection).
//! - [`rejected`]: the store of refused messages, for `wangge rejected list | show | replay`.
//! - [`nats`]: the request-reply front on `wangge.intake.<kind>`.

pub mod nats;
pub mod rejected;
pub mod service;
pub mod validate;

pub use rejected::{JetStreamRejectedStore, MemoryRejectedStore, RejectedStore};
pub use service::IntakeService;
pub use validate::{validate_intake, IntakeRejection, ReferenceData, RejectCode};

/// Subjects are `wangge.intake.<kind>`; the engine listens on `wangge.intake.>`.
pub const INTAKE_SUBJECT_PREFIX: &str = "wangge.intake";

/// The subject other systems publish a message of this kind to.
pub fn intake_subject(kind: wangge_schemas::IntakeKind) -> String {
    format!("{INTAKE_SUBJECT_PREFIX}.{}", kind.as_str())
}

//! Intake: how other systems open cases.
//!
//! - [`validate`]: pure checks that turn bytes into a `Report` command or a precise rejection.
//! - [`service`]: processes one message end to end (validate, commit, or keep the rejection).
//! - [`rejected`]: the store of refused messages, for `wangge rejected list | show | replay`.
//! - [`nats`]: the request-reply front on `wangge.intake.<kind>`.

pub mod nats;
pub mod rejected;
pub mod service;
/// The pure checks, kept in the domain crate (`wangge_domain::intake`).
pub use wangge_domain::intake as validate;

pub use rejected::{JetStreamRejectedStore, MemoryRejectedStore, RejectedStore};
pub use service::IntakeService;
pub use validate::{validate_intake, IntakeRejection, ReferenceData, RejectCode};

pub use wangge_domain::intake::INTAKE_SUBJECT_PREFIX;

/// The subject other systems publish a message of this kind to.
pub fn intake_subject(kind: wangge_schemas::IntakeKind) -> String {
    format!("{INTAKE_SUBJECT_PREFIX}.{}", kind.as_str())
}

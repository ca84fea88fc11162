//! The event contract of Wangge, shared with every system that publishes to or reads from it.
//!
//! The Rust types here are the source of truth: the JSON Schemas under `schemas/json/` are
//! generated from them (see [`generate`]) and a test fails when the two drift apart.
//!
//! - [`envelope`]: the envelope every event travels in.
//! - [`events`]: the catalogue of case events and their payloads.
//! - [`intake`]: the messages other systems publish to open cases and to evaluate closed
//!   ones, and the replies.
//! - [`upcast`]: reading events written with older schema versions.
//! - [`grid`]: the grid file, the category catalogue, and the grid events.
//! - [`sla`]: SLA reference data: business calendars and time-limit policies.

pub mod envelope;
pub mod events;
pub mod generate;
pub mod grid;
pub mod intake;
pub mod sla;
pub mod upcast;
pub mod worker;

pub use envelope::{Actor, ActorKind, CaseId, EventEnvelope, GridLocation, Source};
pub use events::*;
pub use upcast::{decode_event, decode_event_slice, DecodeError};

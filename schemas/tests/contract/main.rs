//! Contract tests: committed schemas match the types, examples satisfy both, upcasting works.
//!
//! One test binary with modules, so the shared helpers are compiled (and the validator
//! compiled into each schema) once.

mod drift;
mod examples;
mod grid;
mod negative;
mod properties;
mod sla;
mod support;
mod upcast;

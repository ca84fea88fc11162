//! The Wangge engine.
//!
//! - [`domain`]: the pure core, the crate `wangge-domain` (re-exported under this name) —
//!   the case aggregate (`decide`, `apply`), routing, SLA arithmetic, escalation, the grid's
//!   fold; no I/O, no clock.
//! - [`grid`]: the grid at run time — files, the live grid shared by every component, the
//!   grid stream and grid commands.
//! - [`log`]: the event log — a trait with a JetStream adapter and an in-memory one.
//! - [`app`]: the command handler that joins the core to a log (load, decide, append, retry).
//! - [`intake`]: validation of messages from other systems, the NATS intake service and
//!   the rejected-message store.
//! - [`runtime`]: the engine's own actors that follow the log — dispatcher, SLA timers,
//!   worker loads — and the partition leases that share them between instances.
//! - [`sla`]: SLA reference data at run time — the calendars and policies shared by every
//!   component, the SLA stream, SLA commands and the warning that a calendar runs out.
//! - [`tasks`]: grid workers' durable task inboxes and their request-reply commands.
//! - [`nats`]: the request-reply server that intake, worker, grid and SLA commands share, and
//!   opening and reading streams.
//!
//! The `wangge` command (crate `wangge`, folder `cli/`) and the read side (crate
//! `wangge-projections`) build on this library.

pub mod app;
pub use wangge_domain as domain;
pub mod grid;
pub mod intake;
pub mod log;
pub mod nats;
pub mod residents;
pub mod runtime;
pub mod sla;
pub mod tasks;

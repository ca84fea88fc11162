//! The Wangge engine.
//!
//! - [`domain`]: the pure core — the case aggregate (`decide`, `apply`), no I/O.
//! - [`grid`]: the grid directory and category catalogue (data, loaded from files).
//! - [`log`]: the event log — a trait with a JetStream adapter and an in-memory one.
//! - [`app`]: the command handler that joins the core to a log (load, decide, append, retry).
//! - [`intake`]: validation of messages from other systems, the NATS intake service and
//!   the rejected-message store.
//! - [`cli`]: the `wangge` command.

pub mod app;
pub mod cli;
pub mod domain;
pub mod grid;
pub mod intake;
pub mod log;
pub mod nats;
pub mod runtime;
pub mod tasks;

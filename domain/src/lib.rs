//! The pure case aggregate: the closed loop of a case as values and functions, free of I/O.
//!
//! A case moves through 信息采集 collection → 立案 acceptance → 派遣 dispatch → 处置 handling →
//! 反馈 feedback → 核查结案 verification and closing → 综合评价 evaluation, with the side flows
//! (rejection, merging, decline, reassignment, suspension, extension, rework, reopening,
//! escalation, voiding) and the SLA facts recorded by timers.
//!
//! The shell drives it in four steps, all synchronous and deterministic:
//!
//! 1. [`replay`] folds the case's stored events into a [`CaseState`] (or the shell keeps one
//!    and folds new events with [`apply`]);
//! 2. [`decide`] checks a [`CaseCommand`] against that state and returns the facts it causes,
//!    or a [`DomainError`] that says why not;
//! 3. [`stamp`] wraps those facts in envelopes with gapless sequences and the metadata
//!    ([`EventMeta`]) the shell supplies;
//! 4. after the log has stored them, [`apply`] folds them into the state.
//!
//! Around the case aggregate, the other pure parts of the engine:
//!
//! - [`grid`]: the grid (cells, supervisors, workers) as a fold of grid events, the category
//!   catalogue, and the checks of a grid command;
//! - [`routing`]: which cell, tier and worker a case goes to; [`loads`]: open tasks per
//!   worker, folded from the log;
//! - [`sla`]: business calendars, policies and the deadline arithmetic;
//!   [`escalation`]: what a due timer asks of a case;
//! - [`tasks`]: what a commit means for grid workers' task inboxes;
//! - [`fold`]: the projection folds — commits to read-model rows (cases and the SLA board,
//!   the audit trail, indicators, patrol coverage);
//! - [`intake`]: an intake message's bytes checked and turned into a report command;
//! - [`commit`] and [`request`]: the values the shell hands in (commits as the log stores
//!   them, a command with its envelope data); [`seal`]: what the engine's signature on a
//!   commit covers, and checking it with public keys only.
//!
//! **Architecture Invariant:** this crate cannot touch tokio, NATS, PostgreSQL, HTTP or the
//! clock: its `Cargo.toml` has none of them (and chrono without its `clock` feature), which
//! `cargo tree -p wangge-domain` shows and `domain/tests/architecture.rs` checks (with a
//! text scan of the sources as well: a workspace build unifies chrono's features). Time
//! (`now`, `occurred_at`, `recorded_at`) and ids (event ids) are always passed in, so every
//! decision can be replayed and tested exactly.

pub mod authorize;
pub mod command;
mod command_checks;
pub mod commit;
pub mod decide;
pub mod error;
pub mod escalation;
pub mod fold;
pub mod grid;
pub mod intake;
pub mod loads;
pub mod request;
pub mod routing;
mod rules;
pub mod seal;
pub mod sla;
pub mod stamp;
pub mod state;
pub mod status;
pub mod tasks;
pub mod text;

pub use command::CaseCommand;
pub use decide::decide;
pub use error::{DomainError, SlaRecordKind};
pub use stamp::{location_for, stamp, EventMeta};
pub use state::{apply, replay, CaseState};
pub use status::CaseStatus;

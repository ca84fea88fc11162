//! The read side of Wangge: projections of the event log into read models that supervisors,
//! grid workers and other systems query.
//!
//! - [`fold`]: the pure projection folds — case rows and the SLA board, the hash-chained
//!   audit trail, the indicators, patrol coverage. No I/O.
//! - [`query`]: the one query interface ([`query::ReadModels`]) and its query and answer
//!   types; [`answer`]: the parts of answers both stores build the same way.
//! - [`runner`]: the projection runner (log → batches → store, with the checkpoint in the
//!   same transaction) and the [`runner::ProjectionStore`] trait a store implements.
//! - [`memory`]: the read models in memory, the embedded default.
//! - [`http`]: the HTTP API over [`query::ReadModels`], its OpenAPI document, `/metrics`,
//!   the live stream and the supervisors' dashboard; [`http::serve_http`] serves them.
//! - [`postgres`]: the read models in PostgreSQL, with one active runner per projection
//!   across instances, rebuilds into shadow tables, and audit verification.
//! - [`lag`]: how far each projection is behind the log, for the API and metrics.

pub mod answer;
pub mod compact;
pub mod fold;
pub mod http;
pub mod lag;
pub mod memory;
pub mod postgres;
pub mod query;
pub mod residents;
pub mod runner;

pub use fold::{FoldContext, PROJECTION_NAMES};
pub use memory::MemoryReadModels;
pub use postgres::PostgresReadModels;
pub use query::ReadModels;

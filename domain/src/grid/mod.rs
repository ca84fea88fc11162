//! The grid and the category catalogue: who and what every case is routed to.
//!
//! Both are data an operator maintains, never code. The grid file (format in
//! `deploy/grid/README.md`, schema `schemas/json/grid/grid-file.json`) lists the cells —
//! districts → communities → buildings, each with its supervisor, each district with its
//! business calendar — and the people who work in them. The catalogue lists the case
//! categories and how each one is routed.
//!
//! - [`state`] — [`GridState`], the pure model of the grid, and its fold over
//!   [`GridEvent`]s (a cell added, a worker registered, a worker's duty, skills or cells
//!   changed). Loading a file is folding the events that build it, so a file and the
//!   run-time events are held to the same rules.
//! - [`skills`] — what a worker's skill covers.
//! - [`file`] — a grid file's text turned into the events that build it.
//! - [`categories`] — the [`CategoryCatalogue`].
//! - [`access`] — the read side's roles and the cells each person's scope covers.
//!
//! The grid changes at run time, by grid events on the grid stream:
//!
//! - [`live`] — [`LiveGrid`], the grid and its position on the grid stream, and its pure
//!   fold (the engine shares it between components as a `SharedGrid`).
//! - [`commands`] — checking a grid command: bytes → a command or a rejection naming the
//!   field and the reason.
//!
//! [`GridDirectory`] is the name intake and the CLI know the grid by; it is [`GridState`].

pub mod access;
pub mod categories;
pub mod commands;
pub mod file;
pub mod live;
pub mod skills;
pub mod state;

pub use access::{AccessError, AccessRole, AccessScope};
pub use categories::CategoryCatalogue;
pub use commands::{check_against, parse_grid_command, GridRejection};
pub use file::{events_of_file, SAMPLE_CATEGORIES_JSON, SAMPLE_CITY_JSON};
pub use live::LiveGrid;
pub use skills::{skill_covers, skill_problem};
pub use state::{tier_name, GridCell, GridError, GridState, Worker};
pub use wangge_schemas::grid::{
    BuildingCell, Category, CategoryFile, CellAdded, CommunityCell, DistrictCell,
    DistrictSupervision, DistrictSupervisionChanged, GridCommand, GridEvent, GridEventEnvelope,
    GridFile, GridReply, GridWorker, RoutingRule, WorkerCellsChanged, WorkerDutyChanged,
    WorkerRegistered, WorkerSkillsChanged, DEFAULT_CALENDAR, GRID_COMMAND_SUBJECT,
};

/// The grid as intake and the CLI look it up: the state folded from the grid file and any
/// grid events since.
pub type GridDirectory = GridState;

/// Reference data that cannot be used: unreadable, not JSON of the documented shape, or
/// breaking one of the grid's rules.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceDataError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what} is not valid: {source}")]
    Parse {
        what: String,
        source: serde_json::Error,
    },
    #[error("{what}: {source}")]
    Grid { what: String, source: GridError },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

//! The grid at run time: the grid file and category catalogue read from disk, the live grid
//! every component of an instance shares, the grid stream and grid commands.
//!
//! The grid itself — cells, supervisors, workers, the category catalogue, the fold of grid
//! events and the checks of a grid command — is pure and lives in the domain crate
//! (`wangge_domain::grid`); this module re-exports it and adds what touches the outside:
//!
//! - [`shared`] — [`SharedGrid`], the handle every component reads the grid through, swapped
//!   atomically when a grid event arrives.
//! - [`stream`] — the grid stream on JetStream (`WANGGE_GRID`, `wangge.grid.events`) and the
//!   [`GridFollower`] that folds it into a [`SharedGrid`].
//! - [`service`] — grid commands end to end on `wangge.grid.commands`: check, append
//!   conditionally, reply; refusals kept in the rejected-message store.
//! - [`load_grid_file`], [`load_categories`] — the operator's files, read at start-up.

pub mod service;
pub mod shared;
pub mod stream;

use std::path::Path;

pub use wangge_domain::grid::*;

pub use service::{serve_grid_commands, GridCommandService, GRID_QUEUE_GROUP};
pub use shared::{GridSnapshot, ProcessedGridMessage, SharedGrid};
pub use stream::{GridFollower, GridStream, GridStreamConfig, GridStreamError};

/// Reads and checks a grid file.
pub fn load_grid_file(path: &Path) -> Result<GridState, ReferenceDataError> {
    let json = read(path)?;
    GridState::from_json(&json, &path.display().to_string())
}

/// Reads and checks a category catalogue file.
pub fn load_categories(path: &Path) -> Result<CategoryCatalogue, ReferenceDataError> {
    let json = read(path)?;
    CategoryCatalogue::from_json(&json, &path.display().to_string())
}

fn read(path: &Path) -> Result<String, ReferenceDataError> {
    std::fs::read_to_string(path).map_err(|source| ReferenceDataError::Read {
        path: path.display().to_string(),
        source,
    })
}

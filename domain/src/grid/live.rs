//! The live grid's pure half: [`LiveGrid`], a [`GridState`] and the position on the grid
//! stream it has been folded up to, with [`LiveGrid::fold`] its pure step. The handle every
//! component of an engine instance reads it through (`SharedGrid`, swapped atomically by the
//! grid follower) lives in the engine crate.

use std::ops::Deref;

use wangge_schemas::grid::GridEventEnvelope;

use super::state::{GridError, GridState};

/// A grid and how far along the grid stream it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGrid {
    grid: GridState,
    /// Position of the last grid-stream event folded in; 0 for the grid file alone.
    position: u64,
    /// Grid-stream events folded in, applied or refused.
    events: u64,
    /// Of those, the ones the grid refused (see [`LiveGrid::fold`]).
    refused: u64,
}

impl LiveGrid {
    /// The grid a file describes, before any grid-stream event.
    pub fn from_file_state(grid: GridState) -> Self {
        Self {
            grid,
            position: 0,
            events: 0,
            refused: 0,
        }
    }

    /// Folds the grid-stream event at `position` in. Total, like the case fold: an event
    /// the grid refuses (possible only when instances load different grid files, or when
    /// the file was edited to contain a change the stream also holds) changes nothing, is
    /// counted, and its error returned for the log; the position moves on either way.
    pub fn fold(&mut self, position: u64, envelope: &GridEventEnvelope) -> Result<(), GridError> {
        debug_assert!(position > self.position, "grid events fold in stream order");
        self.position = position;
        self.events += 1;
        let applied = self.grid.apply(&envelope.event);
        if applied.is_err() {
            self.refused += 1;
        }
        applied
    }

    /// Moves the position past a stream message that is not a grid event this engine can
    /// read (logged by the follower); the grid stays as it was.
    pub fn skip(&mut self, position: u64) {
        debug_assert!(position > self.position, "grid events fold in stream order");
        self.position = position;
        self.events += 1;
        self.refused += 1;
    }

    pub fn grid(&self) -> &GridState {
        &self.grid
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// Grid-stream events folded in (applied or refused).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Grid-stream events the grid refused or that could not be read.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

impl Deref for LiveGrid {
    type Target = GridState;
    fn deref(&self) -> &GridState {
        &self.grid
    }
}

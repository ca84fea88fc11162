//! The live SLA data's pure half: [`LiveSla`], an [`SlaReference`] and the position on the
//! SLA stream it has been folded up to, with [`LiveSla::fold`] its pure step. The handle
//! every component of an engine instance reads it through (`SharedSla`, swapped atomically
//! by the SLA follower) lives in the engine crate, as the grid's does.

use std::ops::Deref;

use wangge_schemas::sla::SlaEventEnvelope;

use super::error::SlaDataError;
use super::reference::SlaReference;

/// SLA reference data and how far along the SLA stream it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSla {
    reference: SlaReference,
    /// Position of the last SLA-stream event folded in; 0 for the files alone.
    position: u64,
    /// SLA-stream events folded in, applied or refused.
    events: u64,
    /// Of those, the ones that could not be applied (see [`LiveSla::fold`]).
    refused: u64,
}

impl LiveSla {
    /// The data the files (or the bundled defaults) hold, before any SLA-stream event.
    pub fn new(reference: SlaReference) -> Self {
        Self {
            reference,
            position: 0,
            events: 0,
            refused: 0,
        }
    }

    /// Folds the SLA-stream event at `position` in. Total, like the grid's fold: an event
    /// whose result would not be a valid reference (possible only when instances start from
    /// different SLA files) changes nothing, is counted, and its error returned for the log;
    /// the position moves on either way.
    pub fn fold(&mut self, position: u64, envelope: &SlaEventEnvelope) -> Result<(), SlaDataError> {
        debug_assert!(position > self.position, "sla events fold in stream order");
        self.position = position;
        self.events += 1;
        match self.reference.published(&envelope.event) {
            Ok(reference) => {
                self.reference = reference;
                Ok(())
            }
            Err(error) => {
                self.refused += 1;
                Err(error)
            }
        }
    }

    /// Moves the position past a stream message that is not an SLA event this engine can
    /// read (logged by the follower); the data stays as it was.
    pub fn skip(&mut self, position: u64) {
        debug_assert!(position > self.position, "sla events fold in stream order");
        self.position = position;
        self.events += 1;
        self.refused += 1;
    }

    pub fn reference(&self) -> &SlaReference {
        &self.reference
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// SLA-stream events folded in (applied or refused).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// SLA-stream events that could not be applied or read.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

impl Deref for LiveSla {
    type Target = SlaReference;
    fn deref(&self) -> &SlaReference {
        &self.reference
    }
}

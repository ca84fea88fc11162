//! The application layer: joins the pure case aggregate to an event log.
//!
//! It is the only place that reads the clock, makes event ids and retries: load the case,
//! decide, stamp, append with the expected position, and on a conflict load again and
//! decide again (someone else committed first; their events may change the answer).

pub mod clock;
pub mod command_handler;
pub mod outage;
pub mod sla_terms;

pub use clock::{Clock, ManualClock, SystemClock};
pub use command_handler::{CaseService, CommandError, CommandOutcome, CommandRequest};
pub use outage::OutagePolicy;
pub use sla_terms::{choose_terms, FixedSlaTerms, LiveSlaTerms, SlaTermsSource, TermsKey};

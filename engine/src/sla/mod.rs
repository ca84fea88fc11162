//! SLA reference data at run time: business calendars and time-limit policies as the SLA
//! files and then the SLA stream make them, as the grid is.
//!
//! What they are and how a publish changes them is pure and lives in the domain crate
//! (`wangge_domain::sla`: [`SlaReference`], [`LiveSla`], the checks of a command, calendar
//! coverage); this module adds what touches the outside:
//!
//! - [`shared`] — [`SharedSla`], the handle components read the data through, swapped
//!   atomically when an SLA event arrives, with a receiver of its changes.
//! - [`stream`] — the SLA stream on JetStream (`WANGGE_SLA`, `wangge.sla.events`) and the
//!   [`SlaFollower`] that folds it into a [`SharedSla`].
//! - [`service`] — SLA commands end to end on `wangge.sla.commands`: check, append
//!   conditionally, reply; refusals kept in the rejected-message store.
//! - [`files`] — the operator's files (`--sla-dir`), read at start-up.
//! - [`coverage`] — the warning, at start-up and once a day, that a calendar runs out.

pub mod coverage;
pub mod files;
pub mod service;
pub mod shared;
pub mod stream;

pub use coverage::{warn_expiring_calendars, watch_calendar_coverage, COVERAGE_CHECK_EVERY};
pub use files::{load_sla_dir, SlaFileError, SlaSource, CALENDARS_FILE, POLICIES_FILE};
pub use service::{serve_sla_commands, SlaCommandService, SLA_QUEUE_GROUP};
pub use shared::{ProcessedSlaMessage, SharedSla, SlaSnapshot};
pub use stream::{SlaFollower, SlaStream, SlaStreamConfig, SlaStreamError, StoredSlaEvent};
pub use wangge_domain::sla::{
    calendar_coverage, calendar_coverage_at, CalendarCoverage, LiveSla, SlaReference,
    CALENDAR_WARNING_DAYS,
};
pub use wangge_schemas::sla::{SlaCommand, SlaEventEnvelope, SlaReply, SLA_COMMAND_SUBJECT};

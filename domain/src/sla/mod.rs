//! SLA deadline arithmetic: business calendars, policies as data, and each case's step
//! clocks as a pure function of its events.
//!
//! - [`calendar`]: when working time runs (weekly hours with a lunch break, public holidays,
//!   make-up working days 调休) and the arithmetic over it: add a limit, measure a span.
//! - [`policy`]: how long each step may take per priority, when to warn, which clock
//!   counts, and the escalation ladders; chosen per category.
//! - [`deadlines`]: the fold of a case's events into its running step clock, deadlines,
//!   warnings, ladder rungs and the timers still due.
//!
//! The reference data changes at run time, by SLA events on the SLA stream (as the grid
//! does by grid events):
//!
//! - [`reference`]: [`SlaReference`], the policies and calendars as one value, and how a
//!   publish (an upsert by id or name) changes it.
//! - [`live`]: [`LiveSla`], the reference and its position on the SLA stream, and its pure
//!   fold (the engine shares it between components as a `SharedSla`).
//! - [`commands`]: checking an SLA command: bytes → a command or a rejection naming the
//!   JSON path and the reason; then against the data in use, the grid and the catalogue.
//!   [`rules`] finds the path of what a calendar's or policy's own rules refuse, and
//!   [`files`] checks an operator's files the same way.
//! - [`coverage`]: how far ahead each calendar knows its holidays, and which run out soon.
//!
//! The shell picks the calendar (by the district's calendar id) and the policy (by the
//! case's category), folds the case's events, and schedules the timers it is given: one
//! heap of deadlines served by one sleep. Nothing here performs I/O or reads a clock; the
//! data files are bundled with `include_str!` and parsed from text.

pub mod calendar;
pub mod commands;
pub mod coverage;
pub mod deadlines;
mod error;
pub mod files;
pub mod legacy;
pub mod live;
pub mod policy;
pub mod reference;
pub mod rules;

pub use calendar::{BusinessCalendar, CalendarSet, BUNDLED_CALENDARS_JSON, DEFAULT_CALENDAR_ID};
pub use commands::{check_sla_against, parse_sla_command, SlaRejection, SLA_REJECT_CODES};
pub use coverage::{
    calendar_coverage, calendar_coverage_at, coverage_of, CalendarCoverage, CALENDAR_WARNING_DAYS,
};
pub use deadlines::{
    clock_for_commit, deadline_revision, pack_facts, sla_clocks, unpack_facts, DueTimer,
    EscalationDue, FinishedStep, RecordedClock, SlaFacts, SlaState, StepClock, StepRun, Terms,
    TimerKind, TrafficLight, UnreadableFacts, FACTS_VERSION,
};
pub use error::SlaDataError;
pub use files::{read_calendar_file, read_policy_file};
pub use live::LiveSla;
pub use policy::{check_policy, PolicySet, BUNDLED_POLICIES_JSON};
pub use reference::SlaReference;
/// The file formats, from the event contract.
pub use wangge_schemas::sla::{
    CalendarFile, CalendarSpec, CalendarsPublished, EscalationAction, EscalationLevel, HolidaySpec,
    MakeUpDaySpec, PoliciesPublished, PolicyFile, SlaClock, SlaCommand, SlaEvent, SlaEventEnvelope,
    SlaPolicy, SlaReply, StepTargets, UtcOffset, WeekSchedule, WorkingInterval,
    DEFAULT_WARNING_PERCENT, SLA_COMMAND_SUBJECT,
};

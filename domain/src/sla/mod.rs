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
//! The shell picks the calendar (by the district's calendar id) and the policy (by the
//! case's category), folds the case's events, and schedules the timers it is given: one
//! heap of deadlines served by one sleep. Nothing here performs I/O or reads a clock; the
//! data files are bundled with `include_str!` and parsed from text.

pub mod calendar;
pub mod deadlines;
mod error;
pub mod legacy;
pub mod policy;

pub use calendar::{BusinessCalendar, CalendarSet, BUNDLED_CALENDARS_JSON, DEFAULT_CALENDAR_ID};
pub use deadlines::{
    clock_for_commit, deadline_revision, pack_facts, sla_clocks, unpack_facts, DueTimer,
    EscalationDue, FinishedStep, RecordedClock, SlaFacts, SlaState, StepClock, StepRun, Terms,
    TimerKind, TrafficLight, UnreadableFacts, FACTS_VERSION,
};
pub use error::SlaDataError;
pub use policy::{check_policy, PolicySet, BUNDLED_POLICIES_JSON};
/// The file formats, from the event contract.
pub use wangge_schemas::sla::{
    CalendarFile, CalendarSpec, EscalationAction, EscalationLevel, HolidaySpec, MakeUpDaySpec,
    PolicyFile, SlaClock, SlaPolicy, StepTargets, UtcOffset, WeekSchedule, WorkingInterval,
    DEFAULT_WARNING_PERCENT,
};

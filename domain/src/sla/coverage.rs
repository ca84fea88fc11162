//! How far ahead each calendar knows its holidays. Each year's schedule is published in
//! November for the next year; a calendar past its `holidays_published_through` counts
//! holidays as working days, so deadlines come out wrong without anyone noticing. This says,
//! for a given day, which calendars run out soon, for the CLI, the logs, `/metrics` and the
//! dashboard alike.

use chrono::{DateTime, NaiveDate, Utc};

use super::calendar::BusinessCalendar;
use super::reference::SlaReference;

/// A calendar counts as running out from this many days before its last published date on
/// (and once past it): enough to publish the next year's schedule after the State Council's
/// November notice.
pub const CALENDAR_WARNING_DAYS: i64 = 45;

/// One calendar's coverage on a given day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarCoverage {
    pub id: String,
    pub name: String,
    /// The last date whose holidays are known; `None` when the calendar does not say.
    pub published_through: Option<NaiveDate>,
    /// Days from the day asked about to `published_through` (0 on that date, negative
    /// past it); `None` when the calendar does not say.
    pub days_left: Option<i64>,
    /// Within [`CALENDAR_WARNING_DAYS`] of running out, or past it.
    pub expiring: bool,
}

/// The coverage of one calendar on `today`.
pub fn coverage_of(calendar: &BusinessCalendar, today: NaiveDate) -> CalendarCoverage {
    let published_through = calendar.holidays_published_through();
    let days_left = published_through.map(|last| (last - today).num_days());
    CalendarCoverage {
        id: calendar.id().to_owned(),
        name: calendar.name().to_owned(),
        published_through,
        days_left,
        expiring: days_left.is_some_and(|days| days <= CALENDAR_WARNING_DAYS),
    }
}

/// Every calendar's coverage on `today`, in id order.
pub fn calendar_coverage(reference: &SlaReference, today: NaiveDate) -> Vec<CalendarCoverage> {
    calendars_of(reference)
        .map(|calendar| coverage_of(calendar, today))
        .collect()
}

/// Every calendar's coverage at `now`, each on its own local date (at 23:00 UTC it is
/// already tomorrow in China).
pub fn calendar_coverage_at(reference: &SlaReference, now: DateTime<Utc>) -> Vec<CalendarCoverage> {
    calendars_of(reference)
        .map(|calendar| coverage_of(calendar, calendar.local_date(now)))
        .collect()
}

fn calendars_of(reference: &SlaReference) -> impl Iterator<Item = &BusinessCalendar> {
    let calendars = reference.calendars();
    calendars.ids().filter_map(|id| calendars.get(id))
}

//! Business calendars: when working time runs, and the deadline arithmetic over it.
//!
//! A [`BusinessCalendar`] is data an operator maintains (`deploy/sla/calendars.json`): the
//! working hours of each weekday as intervals of local time (a lunch break is the gap
//! between two intervals), public holidays, and make-up working days (调休: a Saturday or
//! Sunday declared a working day to balance a holiday; it follows its own schedule, by
//! default Monday's). The time zone is a fixed UTC offset — China has no daylight saving
//! time — and the IANA name is kept for people.
//!
//! All arithmetic is pure and exact to the nanosecond: instants go in, instants come out.
//! Long spans jump whole weeks between holidays and make-up days, so the cost grows with the
//! number of special days crossed, not with the length of the span: fifteen working days
//! across the Spring Festival take a few dozen steps, a million working hours not many more.
//!
//! # What the units of a [`TimeLimit`] mean
//!
//! - `minutes`: plain clock minutes, whatever the calendar says (emergencies).
//! - `working_hours`: hours counted only inside working intervals. The result is the
//!   earliest instant at which that much working time has passed, so it may be the end of an
//!   interval: two working hours from Friday 16:30 end on Monday 09:30, and two from 15:30
//!   end at 17:30 the same day, not at 08:30 the next working day.
//! - `working_days`: N working days end **when business stops on the Nth working day after
//!   the day the clock starts**; the start day itself never counts, whatever the time.
//!   This is how Chinese law counts periods: the Civil Code, art. 201 (开始的当日不计入,
//!   自下一日开始计算) and art. 203 (the last day ends at 24:00, or when business stops
//!   where there are business hours), with working days excluding public holidays as in
//!   the Administrative Licensing Law, art. 82. It is also the "end of the Nth business
//!   day" duration of service desks (ServiceNow's relative durations). Residents and
//!   workers read "1个工作日内" exactly so; a deadline at the end of a working day is in
//!   working time by construction; and every report of one day shares one deadline, which
//!   supervisors can plan around. The price: a report at 08:31 gets almost two days.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::sla::{CalendarFile, CalendarSpec, UtcOffset, WorkingInterval};
use wangge_schemas::{TimeLimit, TimeUnit};

use super::error::{parse_json, SlaDataError};

/// The bundled calendars (the 2026 national calendar), so tests and the demo need no files.
pub const BUNDLED_CALENDARS_JSON: &str = include_str!("../../../deploy/sla/calendars.json");

/// The calendar a district uses when its grid entry names none.
pub const DEFAULT_CALENDAR_ID: &str = "cn";

/// Nanoseconds: the unit of all internal arithmetic, wide enough for any span chrono names.
pub(super) type Nanos = i128;

pub(super) const NANOS_PER_SECOND: Nanos = 1_000_000_000;
pub(super) const NANOS_PER_MINUTE: Nanos = 60 * NANOS_PER_SECOND;
pub(super) const NANOS_PER_HOUR: Nanos = 60 * NANOS_PER_MINUTE;
pub(super) const NANOS_PER_DAY: Nanos = 24 * NANOS_PER_HOUR;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
/// Further than chrono's whole date range (about ±96 million days): such a jump saturates.
const LONGEST_DAY_JUMP: Nanos = 200_000_000;
/// A holiday entry may not span more than a year: a typo must not fill memory with dates.
const LONGEST_HOLIDAY_DAYS: i64 = 366;

// ---------------------------------------------------------------------------------------
// Durations and instants as nanoseconds
// ---------------------------------------------------------------------------------------

pub(super) fn nanos_of(duration: Duration) -> Nanos {
    Nanos::from(duration.num_seconds()) * NANOS_PER_SECOND + Nanos::from(duration.subsec_nanos())
}

/// The duration of `nanos`, saturating at chrono's limits (about ±292 million years).
pub(super) fn duration_of(nanos: Nanos) -> Duration {
    let seconds = nanos.div_euclid(NANOS_PER_SECOND);
    let subsecond = u32::try_from(nanos.rem_euclid(NANOS_PER_SECOND)).unwrap_or(0);
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| Duration::new(seconds, subsecond))
        .unwrap_or(if nanos < 0 {
            Duration::MIN
        } else {
            Duration::MAX
        })
}

fn instant_nanos(instant: DateTime<Utc>) -> Nanos {
    // A leap second (nanosecond() ≥ 10⁹) counts as the last nanosecond of its second.
    let subsecond = instant.timestamp_subsec_nanos().min(999_999_999);
    Nanos::from(instant.timestamp()) * NANOS_PER_SECOND + Nanos::from(subsecond)
}

fn instant_at_nanos(nanos: Nanos) -> DateTime<Utc> {
    let seconds = nanos.div_euclid(NANOS_PER_SECOND);
    let subsecond = u32::try_from(nanos.rem_euclid(NANOS_PER_SECOND)).unwrap_or(0);
    i64::try_from(seconds)
        .ok()
        .and_then(|seconds| DateTime::from_timestamp(seconds, subsecond))
        .unwrap_or(if nanos < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// Plain clock time from `from` to `to` (negative when `to` is earlier).
pub(super) fn clock_nanos_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Nanos {
    instant_nanos(to) - instant_nanos(from)
}

/// `from` plus `nanos` of plain clock time, saturating at the ends of time.
pub(super) fn add_clock_nanos(from: DateTime<Utc>, nanos: Nanos) -> DateTime<Utc> {
    instant_at_nanos(instant_nanos(from).saturating_add(nanos))
}

// ---------------------------------------------------------------------------------------
// Working intervals (the format is in wangge_schemas::sla)
// ---------------------------------------------------------------------------------------

fn start_nanos(interval: &WorkingInterval) -> Nanos {
    Nanos::from(interval.start_minute()) * NANOS_PER_MINUTE
}

fn end_nanos(interval: &WorkingInterval) -> Nanos {
    Nanos::from(interval.end_minute()) * NANOS_PER_MINUTE
}

fn len_nanos(interval: &WorkingInterval) -> Nanos {
    end_nanos(interval) - start_nanos(interval)
}

// ---------------------------------------------------------------------------------------
// The calendar
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpecialDay {
    Holiday,
    MakeUp,
}

/// A point in local time: a date and the nanoseconds since its midnight (`0..=1 day`).
#[derive(Debug, Clone, Copy)]
struct LocalPoint {
    date: NaiveDate,
    nanos: Nanos,
}

/// A checked business calendar with the lookups its arithmetic needs.
///
/// Invariants (checked when it is built): every day's intervals are sorted and do not
/// overlap; some weekday has working time, so every limit ends; no date is both a holiday
/// and a make-up day; the offset is within ±18 hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CalendarSpec", into = "CalendarSpec")]
pub struct BusinessCalendar {
    spec: CalendarSpec,
    offset_nanos: Nanos,
    /// Monday first.
    week: [Vec<WorkingInterval>; 7],
    week_totals: [Nanos; 7],
    /// Working time in a week without special days; positive.
    weekly_total: Nanos,
    /// Weekdays with working time; positive.
    working_weekdays: Nanos,
    make_up_hours: Vec<WorkingInterval>,
    make_up_total: Nanos,
    special_days: BTreeMap<NaiveDate, SpecialDay>,
}

fn weekday_index(date: NaiveDate) -> usize {
    date.weekday().num_days_from_monday() as usize
}

fn total_of(intervals: &[WorkingInterval]) -> Nanos {
    intervals.iter().map(len_nanos).sum()
}

/// Sorts a day's intervals and refuses overlaps (touching is fine).
fn checked_day(
    what: &str,
    day: &str,
    intervals: &[WorkingInterval],
) -> Result<Vec<WorkingInterval>, SlaDataError> {
    let mut sorted = intervals.to_vec();
    sorted.sort();
    for pair in sorted.windows(2) {
        if pair[1].start_minute() < pair[0].end_minute() {
            return Err(SlaDataError::invalid(
                what,
                format!(
                    "{day}: working intervals {} and {} overlap",
                    pair[0], pair[1]
                ),
            ));
        }
    }
    Ok(sorted)
}

impl TryFrom<CalendarSpec> for BusinessCalendar {
    type Error = SlaDataError;

    fn try_from(spec: CalendarSpec) -> Result<Self, Self::Error> {
        let what = format!("calendar `{}`", spec.id);
        if spec.id.trim().is_empty() {
            return Err(SlaDataError::invalid("calendar", "`id` must not be empty"));
        }
        let mut week: [Vec<WorkingInterval>; 7] = Default::default();
        for (index, (day, intervals)) in spec.working_hours.days().into_iter().enumerate() {
            week[index] = checked_day(&what, day, intervals)?;
        }
        let week_totals = week.clone().map(|intervals| total_of(&intervals));
        let weekly_total: Nanos = week_totals.iter().sum();
        if weekly_total == 0 {
            return Err(SlaDataError::invalid(
                &what,
                "working_hours gives no weekday any working time",
            ));
        }
        let working_weekdays = week_totals.iter().filter(|total| **total > 0).count() as Nanos;

        let make_up_hours = match &spec.make_up_day_hours {
            Some(intervals) => checked_day(&what, "make_up_day_hours", intervals)?,
            None => week[0].clone(),
        };
        if make_up_hours.is_empty() && !spec.make_up_working_days.is_empty() {
            return Err(SlaDataError::invalid(
                &what,
                "make-up working days need working hours: set make_up_day_hours \
                 (Monday, the default, has none)",
            ));
        }

        let mut special_days = BTreeMap::new();
        for holiday in &spec.holidays {
            let span = (holiday.to - holiday.from).num_days();
            if !(0..LONGEST_HOLIDAY_DAYS).contains(&span) {
                return Err(SlaDataError::invalid(
                    &what,
                    format!(
                        "holiday `{}` must run forwards and last at most {LONGEST_HOLIDAY_DAYS} \
                         days, from {} to {}",
                        holiday.name, holiday.from, holiday.to
                    ),
                ));
            }
            for date in holiday.from.iter_days().take(span as usize + 1) {
                special_days.insert(date, SpecialDay::Holiday);
            }
        }
        for make_up in &spec.make_up_working_days {
            if special_days.insert(make_up.date, SpecialDay::MakeUp) == Some(SpecialDay::Holiday) {
                return Err(SlaDataError::invalid(
                    &what,
                    format!(
                        "{} is both a holiday and a make-up working day (`{}`)",
                        make_up.date, make_up.name
                    ),
                ));
            }
        }

        Ok(Self {
            offset_nanos: Nanos::from(spec.utc_offset.minutes()) * NANOS_PER_MINUTE,
            week,
            week_totals,
            weekly_total,
            working_weekdays,
            make_up_total: total_of(&make_up_hours),
            make_up_hours,
            special_days,
            spec,
        })
    }
}

impl From<BusinessCalendar> for CalendarSpec {
    fn from(calendar: BusinessCalendar) -> Self {
        calendar.spec
    }
}

impl BusinessCalendar {
    /// One calendar object, in the format of an entry of `calendars.json`.
    pub fn from_json(json: &str) -> Result<Self, SlaDataError> {
        parse_json(json, "business calendar")
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The IANA name of the calendar's time zone (documentation only).
    pub fn time_zone(&self) -> &str {
        &self.spec.time_zone
    }

    pub fn utc_offset(&self) -> UtcOffset {
        self.spec.utc_offset
    }

    /// The calendar as written in its file.
    pub fn spec(&self) -> &CalendarSpec {
        &self.spec
    }

    /// The last date whose holidays are known, when the file says so.
    pub fn holidays_published_through(&self) -> Option<NaiveDate> {
        self.spec.holidays_published_through
    }

    /// The first local date on which `self` and `other` count working time differently:
    /// the earliest date a deadline computed in one may differ in the other. `None` when
    /// they agree on every date (the published range may still differ). A different weekly
    /// schedule, make-up schedule or offset differs everywhere (`NaiveDate::MIN`).
    pub fn first_difference(&self, other: &BusinessCalendar) -> Option<NaiveDate> {
        if self.week != other.week
            || self.make_up_hours != other.make_up_hours
            || self.offset_nanos != other.offset_nanos
        {
            return Some(NaiveDate::MIN);
        }
        let mine = self.special_days.iter();
        let theirs = other.special_days.iter();
        let differing = mine
            .filter(|(date, kind)| other.special_days.get(date) != Some(kind))
            .map(|(date, _)| *date)
            .chain(
                theirs
                    .filter(|(date, kind)| self.special_days.get(date) != Some(kind))
                    .map(|(date, _)| *date),
            );
        differing.min()
    }

    /// Whether an instant falls on a local date past the published holidays: working time
    /// there is counted on the weekly hours alone, and may change when the next schedule is
    /// published.
    pub fn is_past_published(&self, instant: DateTime<Utc>) -> bool {
        self.spec
            .holidays_published_through
            .is_some_and(|through| self.local_date(instant) > through)
    }

    // -- days -----------------------------------------------------------------------------

    /// The working intervals of a local date: none on a holiday, the make-up schedule on a
    /// make-up day, the weekday's otherwise.
    pub fn working_intervals_on(&self, date: NaiveDate) -> &[WorkingInterval] {
        match self.special_days.get(&date) {
            Some(SpecialDay::Holiday) => &[],
            Some(SpecialDay::MakeUp) => &self.make_up_hours,
            None => &self.week[weekday_index(date)],
        }
    }

    /// Whether `date` has any working time.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !self.working_intervals_on(date).is_empty()
    }

    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.special_days.get(&date) == Some(&SpecialDay::Holiday)
    }

    pub fn is_make_up_day(&self, date: NaiveDate) -> bool {
        self.special_days.get(&date) == Some(&SpecialDay::MakeUp)
    }

    fn day_total(&self, date: NaiveDate) -> Nanos {
        match self.special_days.get(&date) {
            Some(SpecialDay::Holiday) => 0,
            Some(SpecialDay::MakeUp) => self.make_up_total,
            None => self.week_totals[weekday_index(date)],
        }
    }

    /// How many whole weeks from `date` on (at most `wanted`) hold no special day, and
    /// therefore exactly `weekly_total` of working time each.
    fn skippable_weeks(&self, date: NaiveDate, wanted: Nanos) -> Nanos {
        if wanted <= 0 {
            return 0;
        }
        match self.special_days.range(date..).next() {
            Some((special, _)) => wanted.min(Nanos::from((*special - date).num_days() / 7)),
            None => wanted,
        }
    }

    // -- local time -----------------------------------------------------------------------

    fn to_local(&self, instant: DateTime<Utc>) -> LocalPoint {
        let local = instant_nanos(instant) + self.offset_nanos;
        let days = local.div_euclid(NANOS_PER_DAY);
        let nanos = local.rem_euclid(NANOS_PER_DAY);
        let date = i64::try_from(days)
            .ok()
            .and_then(|days| days.checked_add(UNIX_EPOCH_DAYS_FROM_CE))
            .and_then(|days| i32::try_from(days).ok())
            .and_then(NaiveDate::from_num_days_from_ce_opt);
        match date {
            Some(date) => LocalPoint { date, nanos },
            None if days < 0 => LocalPoint {
                date: NaiveDate::MIN,
                nanos: 0,
            },
            None => LocalPoint {
                date: NaiveDate::MAX,
                nanos: NANOS_PER_DAY,
            },
        }
    }

    fn instant_of_local(&self, date: NaiveDate, nanos: Nanos) -> DateTime<Utc> {
        let days = Nanos::from(i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE);
        instant_at_nanos(days * NANOS_PER_DAY + nanos - self.offset_nanos)
    }

    /// The local calendar date of an instant.
    pub fn local_date(&self, instant: DateTime<Utc>) -> NaiveDate {
        self.to_local(instant).date
    }

    /// The local wall-clock time of an instant.
    pub fn local_date_time(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        instant
            .checked_add_signed(Duration::minutes(i64::from(self.spec.utc_offset.minutes())))
            .map(|shifted| shifted.naive_utc())
            .unwrap_or_else(|| instant.naive_utc())
    }

    /// The instant at which local wall-clock time reads `local`.
    pub fn local_to_utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let nanos = Nanos::from(local.time().num_seconds_from_midnight()) * NANOS_PER_SECOND
            + Nanos::from(local.time().nanosecond().min(999_999_999));
        self.instant_of_local(local.date(), nanos)
    }

    /// Whether an instant lies inside a working interval (start inclusive, end exclusive).
    pub fn is_working_time(&self, instant: DateTime<Utc>) -> bool {
        let point = self.to_local(instant);
        self.working_intervals_on(point.date)
            .iter()
            .any(|interval| {
                start_nanos(interval) <= point.nanos && point.nanos < end_nanos(interval)
            })
    }

    // -- arithmetic -----------------------------------------------------------------------

    /// `start` plus a time limit in its own unit; see the module documentation.
    pub fn add_limit(&self, start: DateTime<Utc>, limit: TimeLimit) -> DateTime<Utc> {
        let amount = Nanos::from(limit.amount);
        match limit.unit {
            TimeUnit::WorkingMinutes => self.add_working_nanos(start, amount * NANOS_PER_MINUTE),
            TimeUnit::WorkingHours => self.add_working_nanos(start, amount * NANOS_PER_HOUR),
            TimeUnit::WorkingDays => self.add_working_days(start, limit.amount),
            TimeUnit::ClockMinutes => add_clock_nanos(start, amount * NANOS_PER_MINUTE),
            TimeUnit::ClockHours => add_clock_nanos(start, amount * NANOS_PER_HOUR),
            TimeUnit::CalendarDays => self.add_calendar_days(start, limit.amount),
        }
    }

    /// 24:00 local time on the `days`th day after the local date of `start` (the start day
    /// never counts). Zero days gives `start` itself.
    pub fn add_calendar_days(&self, start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        if days == 0 {
            return start;
        }
        match jump_days(self.to_local(start).date, Nanos::from(days)) {
            Some(last) => self.instant_of_local(last, NANOS_PER_DAY),
            None => DateTime::<Utc>::MAX_UTC,
        }
    }

    /// The earliest instant at which `duration` of working time has passed since `start`.
    /// A zero or negative duration gives `start` itself. Saturates at the end of time.
    pub fn add_working_duration(&self, start: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
        self.add_working_nanos(start, nanos_of(duration))
    }

    /// When business stops on the `days`th working day after the local date of `start`
    /// (the start day never counts). Zero days gives `start` itself.
    pub fn add_working_days(&self, start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let mut left = Nanos::from(days);
        if left == 0 {
            return start;
        }
        let mut date = self.to_local(start).date;
        loop {
            let Some(next) = date.succ_opt() else {
                return DateTime::<Utc>::MAX_UTC;
            };
            date = next;
            let weeks = self.skippable_weeks(date, (left - 1) / self.working_weekdays);
            if weeks > 0 {
                let Some(jumped) = jump_days(date, weeks * 7) else {
                    return DateTime::<Utc>::MAX_UTC;
                };
                date = jumped;
                left -= weeks * self.working_weekdays;
            }
            if let Some(last) = self.working_intervals_on(date).last() {
                left -= 1;
                if left == 0 {
                    return self.instant_of_local(date, end_nanos(last));
                }
            }
        }
    }

    pub(super) fn add_working_nanos(&self, start: DateTime<Utc>, nanos: Nanos) -> DateTime<Utc> {
        let mut remaining = nanos;
        if remaining <= 0 {
            return start;
        }
        let LocalPoint {
            mut date,
            nanos: mut from,
        } = self.to_local(start);
        loop {
            if let Some(end) = self.consume_day(date, from, &mut remaining) {
                return self.instant_of_local(date, end);
            }
            let Some(next) = date.succ_opt() else {
                return DateTime::<Utc>::MAX_UTC;
            };
            date = next;
            from = 0;
            let weeks = self.skippable_weeks(date, (remaining - 1) / self.weekly_total);
            if weeks > 0 {
                let Some(jumped) = jump_days(date, weeks * 7) else {
                    return DateTime::<Utc>::MAX_UTC;
                };
                date = jumped;
                remaining -= weeks * self.weekly_total;
            }
        }
    }

    /// Uses up the working time of `date` from `from` on: the time of day at which
    /// `remaining` reaches zero, or `None` with `remaining` reduced by what the day held.
    fn consume_day(&self, date: NaiveDate, from: Nanos, remaining: &mut Nanos) -> Option<Nanos> {
        for interval in self.working_intervals_on(date) {
            let start = start_nanos(interval).max(from);
            let available = end_nanos(interval) - start;
            if available <= 0 {
                continue;
            }
            if *remaining <= available {
                return Some(start + *remaining);
            }
            *remaining -= available;
        }
        None
    }

    /// Working time from `from` to `to`; negative when `to` is earlier. The inverse of
    /// [`add_working_duration`](Self::add_working_duration): for `d >= 0`,
    /// `working_time_between(s, add_working_duration(s, d)) == d`.
    pub fn working_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        duration_of(self.working_nanos_between(from, to))
    }

    pub(super) fn working_nanos_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Nanos {
        if to < from {
            return -self.working_nanos_between(to, from);
        }
        let first = self.to_local(from);
        let last = self.to_local(to);
        if first.date == last.date {
            return self.worked_in_day(first.date, first.nanos, last.nanos);
        }
        let middle = match first.date.succ_opt() {
            Some(next) => self.whole_days(next, last.date),
            None => 0,
        };
        self.worked_in_day(first.date, first.nanos, NANOS_PER_DAY)
            + middle
            + self.worked_in_day(last.date, 0, last.nanos)
    }

    fn worked_in_day(&self, date: NaiveDate, from: Nanos, to: Nanos) -> Nanos {
        self.working_intervals_on(date)
            .iter()
            .map(|interval| (end_nanos(interval).min(to) - start_nanos(interval).max(from)).max(0))
            .sum()
    }

    /// Working time of the whole days `from..to`: the weekly pattern, corrected for each
    /// special day in the range.
    fn whole_days(&self, from: NaiveDate, to: NaiveDate) -> Nanos {
        if to <= from {
            return 0;
        }
        let days = Nanos::from((to - from).num_days());
        let mut total = days / 7 * self.weekly_total;
        let first = weekday_index(from);
        for offset in 0..(days % 7) as usize {
            total += self.week_totals[(first + offset) % 7];
        }
        for (date, _) in self.special_days.range(from..to) {
            total += self.day_total(*date) - self.week_totals[weekday_index(*date)];
        }
        total
    }
}

fn jump_days(date: NaiveDate, days: Nanos) -> Option<NaiveDate> {
    if days > LONGEST_DAY_JUMP {
        return None;
    }
    date.checked_add_days(Days::new(u64::try_from(days).ok()?))
}

// ---------------------------------------------------------------------------------------
// A set of calendars
// ---------------------------------------------------------------------------------------

/// The calendars by id; districts name theirs, the rest use the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarSet {
    default_calendar: String,
    calendars: BTreeMap<String, BusinessCalendar>,
}

impl CalendarSet {
    pub fn from_json(json: &str) -> Result<Self, SlaDataError> {
        Self::from_file(parse_json(json, "calendar file")?)
    }

    /// Checks that ids are unique and that the default exists.
    pub fn from_file(file: CalendarFile) -> Result<Self, SlaDataError> {
        let mut calendars = BTreeMap::new();
        for spec in file.calendars {
            let calendar = BusinessCalendar::try_from(spec)?;
            let id = calendar.id().to_owned();
            if calendars.insert(id.clone(), calendar).is_some() {
                return Err(SlaDataError::invalid(
                    "calendar file",
                    format!("calendar id `{id}` appears twice"),
                ));
            }
        }
        if !calendars.contains_key(&file.default_calendar) {
            return Err(SlaDataError::invalid(
                "calendar file",
                format!(
                    "default_calendar `{}` is not one of the calendars",
                    file.default_calendar
                ),
            ));
        }
        Ok(Self {
            default_calendar: file.default_calendar,
            calendars,
        })
    }

    /// The calendars bundled with the engine (`deploy/sla/calendars.json`).
    pub fn bundled() -> Self {
        Self::from_json(BUNDLED_CALENDARS_JSON).expect("the bundled calendars are valid")
    }

    pub fn get(&self, id: &str) -> Option<&BusinessCalendar> {
        self.calendars.get(id)
    }

    /// The calendar with `id`, or the default one when `id` is `None`.
    pub fn get_or_default(&self, id: Option<&str>) -> Option<&BusinessCalendar> {
        self.get(id.unwrap_or(&self.default_calendar))
    }

    pub fn default_id(&self) -> &str {
        &self.default_calendar
    }

    pub fn default_calendar(&self) -> &BusinessCalendar {
        self.calendars
            .get(&self.default_calendar)
            .expect("the default calendar is checked to exist when the set is built")
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.calendars.keys().map(String::as_str)
    }

    pub fn to_file(&self) -> CalendarFile {
        CalendarFile {
            default_calendar: self.default_calendar.clone(),
            calendars: self
                .calendars
                .values()
                .map(|calendar| calendar.spec().clone())
                .collect(),
        }
    }
}

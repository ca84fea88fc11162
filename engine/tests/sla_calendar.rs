//! Business calendars: the 2026 national calendar as the rules people know it, the file
//! format, and the arithmetic's invariants over random calendars checked against a plain
//! day-by-day reference.

use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use proptest::prelude::*;
use wangge_engine::domain::sla::{
    BusinessCalendar, CalendarSet, CalendarSpec, HolidaySpec, MakeUpDaySpec, UtcOffset,
    WeekSchedule, WorkingInterval, DEFAULT_CALENDAR_ID,
};
use wangge_schemas::{TimeLimit, TimeUnit};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn national() -> BusinessCalendar {
    CalendarSet::bundled()
        .get("cn")
        .expect("the bundled set has cn")
        .clone()
}

/// An instant given as Beijing wall-clock time.
fn beijing(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    UtcOffset::CHINA
        .fixed_offset()
        .with_ymd_and_hms(year, month, day, hour, minute, 0)
        .single()
        .expect("a valid Beijing time")
        .with_timezone(&Utc)
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a valid date")
}

fn working_hours(amount: u32) -> TimeLimit {
    TimeLimit {
        amount,
        unit: TimeUnit::WorkingHours,
    }
}

fn working_days(amount: u32) -> TimeLimit {
    TimeLimit {
        amount,
        unit: TimeUnit::WorkingDays,
    }
}

fn minutes(amount: u32) -> TimeLimit {
    TimeLimit {
        amount,
        unit: TimeUnit::ClockMinutes,
    }
}

fn interval(text: &str) -> WorkingInterval {
    text.parse().expect("a valid interval")
}

// ---------------------------------------------------------------------------------------
// The 2026 national calendar
// ---------------------------------------------------------------------------------------

#[test]
fn the_bundled_set_defaults_to_the_2026_national_calendar() {
    let set = CalendarSet::bundled();
    assert_eq!(set.default_id(), DEFAULT_CALENDAR_ID);
    let calendar = set.default_calendar();
    assert_eq!(calendar.id(), "cn");
    assert_eq!(calendar.time_zone(), "Asia/Shanghai");
    assert_eq!(calendar.utc_offset().minutes(), 8 * 60);
    assert_eq!(
        calendar.holidays_published_through(),
        Some(date(2026, 12, 31))
    );
    assert_eq!(set.get_or_default(None), Some(calendar));
    assert!(set.get("nowhere").is_none());
}

#[test]
fn every_day_of_the_2026_holidays_is_a_day_off() {
    let calendar = national();
    let holidays = [
        (date(2026, 1, 1), date(2026, 1, 3)),
        (date(2026, 2, 15), date(2026, 2, 23)),
        (date(2026, 4, 4), date(2026, 4, 6)),
        (date(2026, 5, 1), date(2026, 5, 5)),
        (date(2026, 6, 19), date(2026, 6, 21)),
        (date(2026, 9, 25), date(2026, 9, 27)),
        (date(2026, 10, 1), date(2026, 10, 7)),
    ];
    let mut days_off = 0;
    for (from, to) in holidays {
        for day in from.iter_days().take_while(|day| *day <= to) {
            assert!(calendar.is_holiday(day), "{day} is a holiday");
            assert!(!calendar.is_working_day(day), "{day} is not a working day");
            days_off += 1;
        }
    }
    assert_eq!(days_off, 3 + 9 + 3 + 5 + 3 + 3 + 7);
}

#[test]
fn the_make_up_saturday_before_spring_festival_is_a_working_day() {
    let calendar = national();
    let saturday = date(2026, 2, 14);
    assert_eq!(saturday.format("%a").to_string(), "Sat");
    assert!(calendar.is_make_up_day(saturday));
    assert!(calendar.is_working_day(saturday));
    // It keeps Monday's hours, lunch break included.
    assert_eq!(
        calendar.working_intervals_on(saturday),
        &[interval("08:30-12:00"), interval("13:30-17:30")]
    );
    assert!(calendar.is_working_time(beijing(2026, 2, 14, 9, 0)));
    assert!(!calendar.is_working_time(beijing(2026, 2, 14, 12, 30)));
}

#[test]
fn every_2026_make_up_day_is_a_weekend_day_that_is_worked() {
    let calendar = national();
    for day in [
        date(2026, 1, 4),
        date(2026, 2, 14),
        date(2026, 2, 28),
        date(2026, 5, 9),
        date(2026, 9, 20),
        date(2026, 10, 10),
    ] {
        assert!(
            matches!(day.format("%a").to_string().as_str(), "Sat" | "Sun"),
            "{day} is a weekend day"
        );
        assert!(calendar.is_working_day(day), "{day} is worked");
    }
}

#[test]
fn ordinary_weekends_are_days_off_and_weekdays_are_worked() {
    let calendar = national();
    assert!(!calendar.is_working_day(date(2026, 3, 7)), "Saturday");
    assert!(!calendar.is_working_day(date(2026, 3, 8)), "Sunday");
    assert!(calendar.is_working_day(date(2026, 3, 9)), "Monday");
    assert!(calendar.is_working_day(date(2026, 3, 13)), "Friday");
}

#[test]
fn working_time_runs_from_0830_to_1200_and_1330_to_1730_beijing_time() {
    let calendar = national();
    assert!(!calendar.is_working_time(beijing(2026, 3, 9, 8, 29)));
    assert!(calendar.is_working_time(beijing(2026, 3, 9, 8, 30)));
    assert!(calendar.is_working_time(beijing(2026, 3, 9, 11, 59)));
    assert!(!calendar.is_working_time(beijing(2026, 3, 9, 12, 0)));
    assert!(!calendar.is_working_time(beijing(2026, 3, 9, 13, 29)));
    assert!(calendar.is_working_time(beijing(2026, 3, 9, 13, 30)));
    assert!(!calendar.is_working_time(beijing(2026, 3, 9, 17, 30)));
    // 08:30 in Beijing is 00:30 UTC: the offset decides, not the UTC date.
    assert!(calendar.is_working_time(Utc.with_ymd_and_hms(2026, 3, 9, 0, 30, 0).unwrap()));
    assert_eq!(
        calendar.local_date(Utc.with_ymd_and_hms(2026, 3, 8, 20, 0, 0).unwrap()),
        date(2026, 3, 9)
    );
}

// ---------------------------------------------------------------------------------------
// Working hours
// ---------------------------------------------------------------------------------------

#[test]
fn two_working_hours_from_friday_1630_end_on_monday_0930() {
    let calendar = national();
    assert_eq!(
        calendar.add_limit(beijing(2026, 3, 6, 16, 30), working_hours(2)),
        beijing(2026, 3, 9, 9, 30)
    );
}

#[test]
fn two_working_hours_from_1530_end_at_1730_the_same_day_not_the_next_morning() {
    let calendar = national();
    assert_eq!(
        calendar.add_limit(beijing(2026, 3, 10, 15, 30), working_hours(2)),
        beijing(2026, 3, 10, 17, 30)
    );
}

#[test]
fn the_lunch_break_is_not_counted() {
    let calendar = national();
    // 10:00–12:00 is two hours; the third starts at 13:30.
    assert_eq!(
        calendar.add_limit(beijing(2026, 3, 10, 10, 0), working_hours(3)),
        beijing(2026, 3, 10, 14, 30)
    );
    assert_eq!(
        calendar.working_time_between(beijing(2026, 3, 10, 11, 0), beijing(2026, 3, 10, 14, 0)),
        Duration::minutes(90)
    );
}

#[test]
fn a_report_at_lunch_or_at_night_counts_from_the_next_working_minute() {
    let calendar = national();
    assert_eq!(
        calendar.add_limit(beijing(2026, 3, 10, 12, 40), working_hours(1)),
        beijing(2026, 3, 10, 14, 30)
    );
    assert_eq!(
        calendar.add_limit(beijing(2026, 3, 10, 22, 15), working_hours(1)),
        beijing(2026, 3, 11, 9, 30)
    );
}

#[test]
fn working_hours_before_spring_festival_run_into_the_make_up_saturday() {
    let calendar = national();
    // Friday 13 February 16:30: one hour left that day, the second on Saturday the 14th.
    assert_eq!(
        calendar.add_limit(beijing(2026, 2, 13, 16, 30), working_hours(2)),
        beijing(2026, 2, 14, 9, 30)
    );
    // From the make-up Saturday's end, the next working hour is after the nine days off.
    assert_eq!(
        calendar.add_limit(beijing(2026, 2, 14, 17, 0), working_hours(1)),
        beijing(2026, 2, 24, 9, 0)
    );
}

#[test]
fn a_working_week_holds_thirty_seven_and_a_half_hours() {
    let calendar = national();
    assert_eq!(
        calendar.working_time_between(beijing(2026, 3, 9, 0, 0), beijing(2026, 3, 16, 0, 0)),
        Duration::minutes(5 * 450)
    );
    // The week of National Day: Sep 28–30 worked, Oct 1–4 off.
    assert_eq!(
        calendar.working_time_between(beijing(2026, 9, 28, 0, 0), beijing(2026, 10, 5, 0, 0)),
        Duration::minutes(3 * 450)
    );
    // Measured backwards the sign flips.
    assert_eq!(
        calendar.working_time_between(beijing(2026, 3, 16, 0, 0), beijing(2026, 3, 9, 0, 0)),
        -Duration::minutes(5 * 450)
    );
}

// ---------------------------------------------------------------------------------------
// Working days
// ---------------------------------------------------------------------------------------

#[test]
fn one_working_day_ends_when_business_stops_on_the_next_working_day() {
    let calendar = national();
    // The start day never counts, however early the report.
    assert_eq!(
        calendar.add_limit(beijing(2026, 3, 10, 8, 31), working_days(1)),
        beijing(2026, 3, 11, 17, 30)
    );
    assert_eq!(
        calendar.add_limit(beijing(2026, 3, 10, 23, 59), working_days(1)),
        beijing(2026, 3, 11, 17, 30)
    );
    // Friday evening and Saturday both lead to Monday.
    assert_eq!(
        calendar.add_limit(beijing(2026, 3, 13, 20, 0), working_days(1)),
        beijing(2026, 3, 16, 17, 30)
    );
    assert_eq!(
        calendar.add_limit(beijing(2026, 3, 14, 10, 0), working_days(1)),
        beijing(2026, 3, 16, 17, 30)
    );
}

#[test]
fn a_working_day_limit_skips_the_national_day_holiday() {
    let calendar = national();
    let start = beijing(2026, 9, 30, 10, 0);
    // Oct 1–7 are off: the first working day after Sep 30 is Thursday Oct 8.
    assert_eq!(
        calendar.add_limit(start, working_days(1)),
        beijing(2026, 10, 8, 17, 30)
    );
    // Oct 8 (Thu), Oct 9 (Fri), Oct 10 (the make-up Saturday).
    assert_eq!(
        calendar.add_limit(start, working_days(3)),
        beijing(2026, 10, 10, 17, 30)
    );
    // Sunday Oct 11 is off again.
    assert_eq!(
        calendar.add_limit(start, working_days(4)),
        beijing(2026, 10, 12, 17, 30)
    );
}

#[test]
fn fifteen_working_days_across_the_spring_festival_are_counted_exactly_and_fast() {
    let calendar = national();
    let start = beijing(2026, 2, 13, 11, 0);
    // Feb 14 (make-up Sat), Feb 24–27, Feb 28 (make-up Sat), Mar 2–6, Mar 9–12.
    let expected = beijing(2026, 3, 12, 17, 30);
    assert_eq!(calendar.add_limit(start, working_days(15)), expected);

    let began = Instant::now();
    for offset in 0..10_000 {
        let start = start + Duration::minutes(offset);
        std::hint::black_box(calendar.add_limit(start, working_days(15)));
        std::hint::black_box(calendar.add_limit(start, working_hours(120)));
        std::hint::black_box(calendar.working_time_between(start, expected));
    }
    assert!(
        began.elapsed() < std::time::Duration::from_secs(5),
        "30,000 long-span computations took {:?}",
        began.elapsed()
    );
}

#[test]
fn limits_of_years_skip_whole_weeks_and_absurd_limits_saturate() {
    let calendar = national();
    let start = beijing(2026, 3, 10, 9, 0);
    let began = Instant::now();
    // 2,000 working days is about eight years: past the published holidays, weeks repeat.
    let far = calendar.add_limit(start, working_days(2_000));
    assert!(far > beijing(2033, 1, 1, 0, 0) && far < beijing(2035, 1, 1, 0, 0));
    assert_eq!(
        calendar.working_time_between(start, calendar.add_limit(start, working_hours(60_000))),
        Duration::hours(60_000)
    );
    // A nonsense extension of u32::MAX units must neither hang nor panic.
    for unit in [
        TimeUnit::ClockMinutes,
        TimeUnit::WorkingHours,
        TimeUnit::WorkingDays,
    ] {
        let end = calendar.add_limit(
            start,
            TimeLimit {
                amount: u32::MAX,
                unit,
            },
        );
        assert!(end > start);
    }
    assert!(began.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn emergencies_run_on_clock_minutes_through_a_holiday() {
    let calendar = national();
    let night_of_national_day = beijing(2026, 10, 1, 2, 50);
    assert_eq!(
        calendar.add_limit(night_of_national_day, minutes(30)),
        beijing(2026, 10, 1, 3, 20)
    );
    assert_eq!(
        calendar.add_limit(night_of_national_day, minutes(24 * 60)),
        beijing(2026, 10, 2, 2, 50)
    );
}

#[test]
fn zero_time_leaves_the_start_where_it_is() {
    let calendar = national();
    let sunday = beijing(2026, 3, 8, 10, 0);
    assert_eq!(
        calendar.add_working_duration(sunday, Duration::zero()),
        sunday
    );
    assert_eq!(
        calendar.add_working_duration(sunday, -Duration::hours(3)),
        sunday
    );
    assert_eq!(calendar.add_working_days(sunday, 0), sunday);
}

// ---------------------------------------------------------------------------------------
// The file format
// ---------------------------------------------------------------------------------------

const SMALL_CALENDAR: &str = r#"{
  "id": "test-town",
  "name": "Test town",
  "time_zone": "Asia/Shanghai",
  "utc_offset": "+08:00",
  "working_hours": {
    "monday": ["08:30-12:00", "13:30-17:30"],
    "saturday": ["09:00-12:00"]
  },
  "holidays": [{ "name": "Town day", "from": "2026-03-09", "to": "2026-03-09" }],
  "make_up_working_days": [{ "name": "Make-up", "date": "2026-03-08" }],
  "make_up_day_hours": ["10:00-11:00"]
}"#;

#[test]
fn a_calendar_reads_from_json_and_writes_back_the_same() {
    let calendar = BusinessCalendar::from_json(SMALL_CALENDAR).expect("valid calendar");
    assert_eq!(calendar.id(), "test-town");
    assert!(
        !calendar.is_working_day(date(2026, 3, 9)),
        "the holiday Monday"
    );
    assert!(
        !calendar.is_working_day(date(2026, 3, 10)),
        "Tuesday has no hours"
    );
    assert!(
        calendar.is_working_day(date(2026, 3, 14)),
        "Saturday morning"
    );
    assert_eq!(
        calendar.working_intervals_on(date(2026, 3, 8)),
        &[interval("10:00-11:00")]
    );
    let json = serde_json::to_string(&calendar).expect("serializable");
    assert_eq!(
        BusinessCalendar::from_json(&json).expect("round trip"),
        calendar
    );
    let set = CalendarSet::bundled();
    let reread = CalendarSet::from_json(&serde_json::to_string(&set.to_file()).unwrap()).unwrap();
    assert_eq!(reread, set);
}

fn refusal(json: &str) -> String {
    BusinessCalendar::from_json(json)
        .expect_err("the calendar is refused")
        .to_string()
}

#[test]
fn a_malformed_calendar_is_refused_with_the_reason() {
    let overlapping = SMALL_CALENDAR.replace("\"13:30-17:30\"", "\"11:30-17:30\"");
    assert!(
        refusal(&overlapping).contains("overlap"),
        "{}",
        refusal(&overlapping)
    );

    let backwards = SMALL_CALENDAR.replace("\"09:00-12:00\"", "\"12:00-09:00\"");
    let message = refusal(&backwards);
    assert!(message.contains("working_hours.saturday"), "{message}");
    assert!(message.contains("must end after it starts"), "{message}");

    let malformed = SMALL_CALENDAR.replace("\"09:00-12:00\"", "\"9-12\"");
    assert!(refusal(&malformed).contains("HH:MM-HH:MM"));

    let both = SMALL_CALENDAR.replace("\"date\": \"2026-03-08\"", "\"date\": \"2026-03-09\"");
    assert!(refusal(&both).contains("both a holiday and a make-up working day"));

    let idle = r#"{"id": "idle", "name": "idle", "time_zone": "UTC", "utc_offset": "+00:00",
                   "working_hours": {}}"#;
    assert!(refusal(idle).contains("no weekday any working time"));

    let typo = SMALL_CALENDAR.replace("\"holidays\"", "\"holyday\"");
    assert!(refusal(&typo).contains("unknown field `holyday`"));

    let offset = SMALL_CALENDAR.replace("+08:00", "+8");
    assert!(refusal(&offset).contains("utc_offset"));

    let long = SMALL_CALENDAR.replace("\"to\": \"2026-03-09\"", "\"to\": \"2029-03-09\"");
    assert!(refusal(&long).contains("at most 366 days"));

    let no_make_up_hours = r#"{"id": "x", "name": "x", "time_zone": "UTC", "utc_offset": "+00:00",
        "working_hours": {"tuesday": ["09:00-17:00"]},
        "make_up_working_days": [{"name": "m", "date": "2026-03-07"}]}"#;
    assert!(refusal(no_make_up_hours).contains("make_up_day_hours"));
}

#[test]
fn a_calendar_set_needs_unique_ids_and_its_default() {
    let duplicate = format!(
        r#"{{"default_calendar": "test-town", "calendars": [{SMALL_CALENDAR}, {SMALL_CALENDAR}]}}"#
    );
    let message = CalendarSet::from_json(&duplicate).unwrap_err().to_string();
    assert!(message.contains("appears twice"), "{message}");

    let missing = format!(r#"{{"default_calendar": "cn-2030", "calendars": [{SMALL_CALENDAR}]}}"#);
    let message = CalendarSet::from_json(&missing).unwrap_err().to_string();
    assert!(message.contains("default_calendar `cn-2030`"), "{message}");
}

// ---------------------------------------------------------------------------------------
// Properties over random calendars
// ---------------------------------------------------------------------------------------

fn base_date() -> NaiveDate {
    date(2025, 6, 1)
}

/// A day's intervals from sorted cut points taken in pairs.
fn arb_day() -> impl Strategy<Value = Vec<WorkingInterval>> {
    prop::collection::vec(0u16..=1440, 0..=6).prop_map(|mut cuts| {
        cuts.sort_unstable();
        cuts.dedup();
        cuts.chunks_exact(2)
            .filter_map(|pair| WorkingInterval::from_minutes(pair[0], pair[1]))
            .collect()
    })
}

prop_compose! {
    fn arb_calendar()(
        days in prop::collection::vec(arb_day(), 7),
        offset_quarters in -48i32..=56,
        holidays in prop::collection::vec((0u64..900, 0u64..12), 0..12),
        make_ups in prop::collection::vec(0u64..900, 0..8),
        make_up_hours in prop::option::of(arb_day()),
    ) -> BusinessCalendar {
        let mut week = WeekSchedule {
            monday: days[0].clone(),
            tuesday: days[1].clone(),
            wednesday: days[2].clone(),
            thursday: days[3].clone(),
            friday: days[4].clone(),
            saturday: days[5].clone(),
            sunday: days[6].clone(),
        };
        if days.iter().all(Vec::is_empty) {
            week.wednesday = vec![WorkingInterval::from_minutes(9 * 60, 17 * 60).unwrap()];
        }
        let day = |offset: u64| base_date() + chrono::Days::new(offset);
        let holidays: Vec<HolidaySpec> = holidays
            .iter()
            .map(|(start, length)| HolidaySpec {
                name: "random holiday".to_owned(),
                from: day(*start),
                to: day(start + length),
            })
            .collect();
        let is_holiday = |date: NaiveDate| holidays.iter().any(|h| h.from <= date && date <= h.to);
        let make_up_working_days: Vec<MakeUpDaySpec> = make_ups
            .iter()
            .map(|offset| day(*offset))
            .filter(|date| !is_holiday(*date))
            .map(|date| MakeUpDaySpec { name: "random make-up".to_owned(), date })
            .collect();
        let mut make_up_day_hours = make_up_hours.filter(|hours| !hours.is_empty());
        if make_up_day_hours.is_none() && week.monday.is_empty() {
            make_up_day_hours = Some(vec![WorkingInterval::from_minutes(8 * 60, 12 * 60).unwrap()]);
        }
        BusinessCalendar::try_from(CalendarSpec {
            id: "random".to_owned(),
            name: "random calendar".to_owned(),
            time_zone: "Etc/Random".to_owned(),
            utc_offset: UtcOffset::from_minutes(offset_quarters * 15).unwrap(),
            working_hours: week,
            holidays,
            make_up_working_days,
            make_up_day_hours,
            holidays_published_through: None,
        })
        .expect("a generated calendar is valid")
    }
}

/// An instant between mid-2025 and the end of 2027, to the nanosecond.
fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let from = Utc
        .with_ymd_and_hms(2025, 5, 20, 0, 0, 0)
        .unwrap()
        .timestamp();
    let to = Utc
        .with_ymd_and_hms(2027, 12, 31, 0, 0, 0)
        .unwrap()
        .timestamp();
    (from..to, 0u32..1_000_000_000)
        .prop_map(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos).unwrap())
}

fn arb_working_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0i64..600 * 60).prop_map(Duration::seconds),
        (0i64..4_000 * 3_600, 0i64..1_000_000_000)
            .prop_map(|(seconds, nanos)| Duration::seconds(seconds) + Duration::nanoseconds(nanos)),
    ]
}

fn since_midnight(local: NaiveDateTime) -> Duration {
    local - local.date().and_time(NaiveTime::MIN)
}

fn interval_bounds(interval: &WorkingInterval) -> (Duration, Duration) {
    (
        Duration::minutes(i64::from(interval.start_minute())),
        Duration::minutes(i64::from(interval.end_minute())),
    )
}

/// The plain reference: walk day by day, interval by interval.
fn reference_add(
    calendar: &BusinessCalendar,
    start: DateTime<Utc>,
    duration: Duration,
) -> DateTime<Utc> {
    if duration <= Duration::zero() {
        return start;
    }
    let local = calendar.local_date_time(start);
    let mut day = local.date();
    let mut from = since_midnight(local);
    let mut remaining = duration;
    loop {
        for interval in calendar.working_intervals_on(day) {
            let (start_of, end_of) = interval_bounds(interval);
            let begin = start_of.max(from);
            if end_of <= begin {
                continue;
            }
            if remaining <= end_of - begin {
                return calendar.local_to_utc(day.and_time(NaiveTime::MIN) + begin + remaining);
            }
            remaining -= end_of - begin;
        }
        day = day.succ_opt().unwrap();
        from = Duration::zero();
    }
}

fn reference_between(
    calendar: &BusinessCalendar,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Duration {
    let first = calendar.local_date_time(from);
    let last = calendar.local_date_time(to);
    let mut total = Duration::zero();
    let mut day = first.date();
    while day <= last.date() {
        let lower = if day == first.date() {
            since_midnight(first)
        } else {
            Duration::zero()
        };
        let upper = if day == last.date() {
            since_midnight(last)
        } else {
            Duration::days(1)
        };
        for interval in calendar.working_intervals_on(day) {
            let (start_of, end_of) = interval_bounds(interval);
            let overlap = end_of.min(upper) - start_of.max(lower);
            if overlap > Duration::zero() {
                total += overlap;
            }
        }
        day = day.succ_opt().unwrap();
    }
    total
}

fn reference_working_days(
    calendar: &BusinessCalendar,
    start: DateTime<Utc>,
    days: u32,
) -> DateTime<Utc> {
    let mut day = calendar.local_date(start);
    let mut left = days;
    loop {
        day = day.succ_opt().unwrap();
        if let Some(last) = calendar.working_intervals_on(day).last() {
            left -= 1;
            if left == 0 {
                return calendar.local_to_utc(
                    day.and_time(NaiveTime::MIN) + Duration::minutes(i64::from(last.end_minute())),
                );
            }
        }
    }
}

/// Whether `instant` lies in working time or at the very end of a working interval.
fn in_working_time_or_at_its_end(calendar: &BusinessCalendar, instant: DateTime<Utc>) -> bool {
    let local = calendar.local_date_time(instant);
    let time = since_midnight(local);
    let inside = calendar
        .working_intervals_on(local.date())
        .iter()
        .any(|interval| {
            let (start_of, end_of) = interval_bounds(interval);
            start_of < time && time <= end_of
        });
    let at_midnight_end = time == Duration::zero()
        && local.time().nanosecond() == 0
        && calendar
            .working_intervals_on(local.date().pred_opt().unwrap())
            .last()
            .is_some_and(|last| last.end_minute() == 1440);
    inside || at_midnight_end
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn measuring_what_was_added_gives_back_the_duration(
        calendar in arb_calendar(),
        start in arb_instant(),
        duration in arb_working_duration(),
    ) {
        let end = calendar.add_working_duration(start, duration);
        prop_assert!(end >= start);
        prop_assert_eq!(calendar.working_time_between(start, end), duration);
    }

    #[test]
    fn adding_working_time_agrees_with_walking_day_by_day(
        calendar in arb_calendar(),
        start in arb_instant(),
        duration in arb_working_duration(),
    ) {
        prop_assert_eq!(
            calendar.add_working_duration(start, duration),
            reference_add(&calendar, start, duration)
        );
    }

    #[test]
    fn measuring_agrees_with_walking_day_by_day_and_adds_up(
        calendar in arb_calendar(),
        a in arb_instant(),
        b in arb_instant(),
        c in arb_instant(),
    ) {
        let (from, to) = if a <= b { (a, b) } else { (b, a) };
        prop_assert_eq!(calendar.working_time_between(from, to), reference_between(&calendar, from, to));
        prop_assert_eq!(
            calendar.working_time_between(a, b) + calendar.working_time_between(b, c),
            calendar.working_time_between(a, c)
        );
    }

    #[test]
    fn more_working_time_never_ends_earlier(
        calendar in arb_calendar(),
        start in arb_instant(),
        shorter in arb_working_duration(),
        extra in arb_working_duration(),
    ) {
        prop_assert!(
            calendar.add_working_duration(start, shorter)
                <= calendar.add_working_duration(start, shorter + extra)
        );
    }

    #[test]
    fn working_hour_deadlines_lie_in_working_time(
        calendar in arb_calendar(),
        start in arb_instant(),
        hours in 1u32..300,
    ) {
        let end = calendar.add_limit(start, working_hours(hours));
        prop_assert!(in_working_time_or_at_its_end(&calendar, end), "{} local", calendar.local_date_time(end));
        prop_assert_eq!(calendar.working_time_between(start, end), Duration::hours(i64::from(hours)));
    }

    #[test]
    fn working_day_deadlines_end_the_nth_working_day_after_the_start_day(
        calendar in arb_calendar(),
        start in arb_instant(),
        days in 1u32..120,
    ) {
        let end = calendar.add_limit(start, working_days(days));
        prop_assert_eq!(end, reference_working_days(&calendar, start, days));
        let last_day = calendar.local_date(end - Duration::nanoseconds(1));
        prop_assert!(calendar.is_working_day(last_day));
        let counted = calendar
            .local_date(start)
            .succ_opt()
            .unwrap()
            .iter_days()
            .take_while(|day| *day <= last_day)
            .filter(|day| calendar.is_working_day(*day))
            .count();
        prop_assert_eq!(counted, days as usize);
        prop_assert!(in_working_time_or_at_its_end(&calendar, end));
    }

    #[test]
    fn a_calendar_survives_its_file_format(calendar in arb_calendar()) {
        let json = serde_json::to_string_pretty(&calendar).unwrap();
        prop_assert_eq!(BusinessCalendar::from_json(&json).unwrap(), calendar);
    }
}

//! A calendar's and a policy's own rules, with the JSON path of what breaks them.
//!
//! The rules are the domain's ([`BusinessCalendar::try_from`], [`check_policy`]): they decide
//! and their message is the reason given. They say which rule broke but not where, so when
//! one refuses, the spec is walked in the same order the rule walks it to find the field:
//! the second of two overlapping intervals, the holiday that ends before it starts, the
//! make-up day that is also a holiday.

use std::collections::BTreeSet;

use wangge_schemas::sla::{CalendarSpec, SlaPolicy, WorkingInterval};

use super::calendar::BusinessCalendar;
use super::commands::{join, SlaRejection};
use super::policy::{check_policy, step_name};

/// The longest holiday entry the calendar accepts, in days from `from` to `to`.
const LONGEST_HOLIDAY_SPAN_DAYS: i64 = 365;

/// Checks one calendar found at `at` (`payload.calendars[0]`, or `calendars[0]` in a file).
pub fn check_calendar_rules(at: &str, spec: &CalendarSpec) -> Result<(), SlaRejection> {
    match BusinessCalendar::try_from(spec.clone()) {
        Ok(_) => Ok(()),
        Err(error) => {
            let (code, field) = locate_calendar_problem(spec);
            let field = match field {
                Some(field) => join(at, &field),
                None => at.to_owned(),
            };
            Err(SlaRejection::at(code, &field, error.to_string()))
        }
    }
}

/// Where in `spec` the calendar's rules fail, in the order `BusinessCalendar::try_from`
/// checks them.
fn locate_calendar_problem(spec: &CalendarSpec) -> (&'static str, Option<String>) {
    for (day, intervals) in spec.working_hours.days() {
        if let Some(index) = second_of_overlap(intervals) {
            return (
                "overlapping_intervals",
                Some(format!("working_hours.{day}[{index}]")),
            );
        }
    }
    if spec
        .working_hours
        .days()
        .iter()
        .all(|(_, intervals)| intervals.is_empty())
    {
        return ("no_working_time", Some("working_hours".to_owned()));
    }
    if let Some(hours) = &spec.make_up_day_hours {
        if let Some(index) = second_of_overlap(hours) {
            return (
                "overlapping_intervals",
                Some(format!("make_up_day_hours[{index}]")),
            );
        }
    }
    let make_up_hours_empty = match &spec.make_up_day_hours {
        Some(hours) => hours.is_empty(),
        None => spec.working_hours.monday.is_empty(),
    };
    if make_up_hours_empty && !spec.make_up_working_days.is_empty() {
        return (
            "make_up_day_without_hours",
            Some("make_up_day_hours".to_owned()),
        );
    }
    let mut holidays = BTreeSet::new();
    for (index, holiday) in spec.holidays.iter().enumerate() {
        let span = (holiday.to - holiday.from).num_days();
        if !(0..=LONGEST_HOLIDAY_SPAN_DAYS).contains(&span) {
            return ("invalid_holiday", Some(format!("holidays[{index}].to")));
        }
        holidays.extend(holiday.from.iter_days().take(span as usize + 1));
    }
    for (index, day) in spec.make_up_working_days.iter().enumerate() {
        if holidays.contains(&day.date) {
            return (
                "make_up_day_is_holiday",
                Some(format!("make_up_working_days[{index}].date")),
            );
        }
    }
    // A rule this walk does not know: the whole calendar is named.
    ("invalid_value", None)
}

/// The index, in the list as written, of the later of the first two intervals that overlap
/// once sorted (the one a reader would move).
fn second_of_overlap(intervals: &[WorkingInterval]) -> Option<usize> {
    let mut sorted: Vec<(usize, &WorkingInterval)> = intervals.iter().enumerate().collect();
    sorted.sort_by_key(|(_, interval)| **interval);
    sorted
        .windows(2)
        .find(|pair| pair[1].1.start_minute() < pair[0].1.end_minute())
        .map(|pair| pair[1].0)
}

/// Checks one policy found at `at` (`payload.policies[0]`, or `policies[0]` in a file).
pub fn check_policy_rules(at: &str, policy: &SlaPolicy) -> Result<(), SlaRejection> {
    match check_policy(policy) {
        Ok(()) => Ok(()),
        Err(error) => {
            let (code, field) = locate_policy_problem(policy);
            let field = match field {
                Some(field) => join(at, &field),
                None => at.to_owned(),
            };
            Err(SlaRejection::at(code, &field, error.to_string()))
        }
    }
}

/// Where in `policy` its rules fail, in the order [`check_policy`] checks them.
fn locate_policy_problem(policy: &SlaPolicy) -> (&'static str, Option<String>) {
    if policy.name.trim().is_empty() {
        return ("empty_text", Some("name".to_owned()));
    }
    if !(1..=99).contains(&policy.warning_percent) {
        return ("invalid_value", Some("warning_percent".to_owned()));
    }
    if policy
        .targets
        .values()
        .all(|targets| targets.limits().next().is_none())
    {
        return ("no_timed_step", Some("targets".to_owned()));
    }
    for (step, targets) in &policy.targets {
        let priorities = [
            ("all", targets.all),
            ("urgent", targets.urgent),
            ("high", targets.high),
            ("normal", targets.normal),
            ("low", targets.low),
        ];
        if let Some((priority, _)) = priorities
            .iter()
            .find(|(_, limit)| limit.is_some_and(|limit| limit.amount == 0))
        {
            return (
                "invalid_value",
                Some(format!("targets.{}.{priority}.amount", step_name(*step))),
            );
        }
    }
    for (step, ladder) in &policy.escalation {
        if !policy.targets.contains_key(step) {
            return (
                "untimed_escalation",
                Some(format!("escalation.{}", step_name(*step))),
            );
        }
        if let Some(index) = ladder.iter().position(|level| level.after.amount == 0) {
            return (
                "invalid_value",
                Some(format!(
                    "escalation.{}[{index}].after.amount",
                    step_name(*step)
                )),
            );
        }
    }
    ("invalid_value", None)
}

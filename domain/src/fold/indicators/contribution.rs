//! What one case adds to the indicators, from its summary and its [`IndicatorFacts`] alone:
//! the report-day counters on its report key, and each due round's counters on that round's
//! due key (the rules are in the [module documentation](super)).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use wangge_schemas::ClockCalendar;

use crate::CaseStatus;

use super::super::histogram::bucket_of;
use super::super::local_day;
use super::super::summary::{CaseSummary, Holder};
use super::rounds::{IndicatorFacts, Round};
use super::{Contribution, DurationMetric, IndicatorCounts, IndicatorKey};

/// Everything a case adds, one entry per key, in key order; empty for a case that does not
/// count (not registered, rejected, merged or voided).
pub fn contributions_of(
    summary: &CaseSummary,
    facts: &IndicatorFacts,
    calendar: Option<&ClockCalendar>,
) -> Vec<Contribution> {
    let registered = summary.accepted_at.is_some() || facts.self_handled;
    let excluded = matches!(
        summary.status,
        CaseStatus::Rejected | CaseStatus::Merged | CaseStatus::Voided | CaseStatus::New
    );
    let Some(reported_at) = summary.reported_at.or(summary.accepted_at) else {
        return Vec::new();
    };
    if !registered || excluded {
        return Vec::new();
    }
    let category = summary
        .category
        .clone()
        .unwrap_or_else(|| summary.reported_category.clone());
    let key = |at: DateTime<Utc>, district: &str, community: &str, cell: &str| IndicatorKey {
        day: local_day(calendar, at),
        district: district.to_owned(),
        community: community.to_owned(),
        cell: cell.to_owned(),
        category: category.clone(),
    };
    let mut entries: BTreeMap<IndicatorKey, (IndicatorCounts, Vec<(DurationMetric, u16)>)> =
        BTreeMap::new();

    let location = &summary.location;
    let report_key = key(
        reported_at,
        &location.district,
        &location.community,
        &location.building,
    );
    let (counts, durations) = report_counts(summary, facts);
    let entry = entries.entry(report_key).or_default();
    entry.0.add(&counts, 1);
    entry.1.extend(durations);

    for round in &facts.rounds {
        let Some((due_at, holder)) = round.due() else {
            continue;
        };
        let due_key = key(due_at, &holder.district, community_of(holder), &holder.cell);
        let (counts, durations) = round_counts(round, reported_at);
        let entry = entries.entry(due_key).or_default();
        entry.0.add(&counts, 1);
        entry.1.extend(durations);
    }

    entries
        .into_iter()
        .map(|(key, (counts, mut durations))| {
            durations.sort_unstable();
            Contribution {
                key,
                counts,
                durations,
            }
        })
        .collect()
}

/// How the indicator rows spell a holder's community: `''` for a case held by the district,
/// as the SLA board's table does.
fn community_of(holder: &Holder) -> &str {
    holder.community.as_deref().unwrap_or("")
}

/// The counters of the report key: whatever happened to the case, counted once, on the day
/// it was reported, in the building cell it was reported in.
fn report_counts(
    summary: &CaseSummary,
    facts: &IndicatorFacts,
) -> (IndicatorCounts, Vec<(DurationMetric, u16)>) {
    let flag = |yes: bool| i64::from(yes);
    let counts = IndicatorCounts {
        registered: 1,
        handled: flag(summary.resolved_at.is_some()),
        reworked: flag(summary.reworks > 0),
        dispatched: flag(summary.dispatches > 0),
        responded_on_time: flag(summary.acknowledged_at.is_some() && !facts.acknowledged_late),
        evaluated: flag(summary.satisfaction.is_some()),
        resolved_for_resident: flag(
            summary
                .satisfaction
                .is_some_and(|s| summary.resolved_for_resident.unwrap_or(s >= 3)),
        ),
        satisfied: flag(summary.satisfaction.is_some_and(|s| s >= 4)),
        ..IndicatorCounts::default()
    };
    let mut durations = Vec::new();
    if let (Some(dispatched), Some(acknowledged)) =
        (summary.first_dispatched_at, summary.acknowledged_at)
    {
        let seconds = (acknowledged - dispatched).num_seconds();
        durations.push((DurationMetric::TimeToAcknowledge, bucket_of(seconds)));
    }
    (counts, durations)
}

/// The counters of a due round's key: due, and whether it is closed and closed on time; its
/// time to close, from the round's start (the report, or the reopening).
fn round_counts(
    round: &Round,
    reported_at: DateTime<Utc>,
) -> (IndicatorCounts, Vec<(DurationMetric, u16)>) {
    let counts = IndicatorCounts {
        due: 1,
        closed: i64::from(round.closed.is_some()),
        closed_on_time: i64::from(round.closed_on_time()),
        ..IndicatorCounts::default()
    };
    let durations = round
        .closed
        .as_ref()
        .map(|closing| {
            let started = round.reopened_at.unwrap_or(reported_at);
            let seconds = (closing.at - started).num_seconds();
            (DurationMetric::TimeToClose, bucket_of(seconds))
        })
        .into_iter()
        .collect();
    (counts, durations)
}

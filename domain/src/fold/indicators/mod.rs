//! The `indicators` projection: the figures supervisors are judged by, per day, district,
//! community, building cell and category.
//!
//! A case counts in the cohort of the day it was reported (local time of its district), in
//! its building cell, community and district, under its accepted category — once it is
//! registered: accepted (立案), or closed by self-handling (自处理). Rejected, merged and voided
//! cases do not count. What it contributes:
//!
//! | counter | the case … |
//! |---|---|
//! | `registered` | is registered (the cases that should be closed, 应结案) |
//! | `closed` | is closed now (结案) |
//! | `closed_on_time` | is closed, and every run of its resolve step ended within its limit (按期结案) |
//! | `handled` | had a result reported at least once |
//! | `reworked` | was sent back after verification at least once (返工) |
//! | `dispatched` | was dispatched at least once |
//! | `responded_on_time` | was acknowledged, and every acknowledge run ended within its limit (响应) |
//! | `evaluated` | was evaluated by the reporter |
//! | `resolved_for_resident` | was evaluated as solved (解决): the resident's own answer to "was the problem solved?" when they were asked, else a satisfaction of 3 or more of 5 |
//! | `satisfied` | was evaluated 4 or more of 5 (满意; the hotlines' 满意 and 基本满意 are stored as 5 and 4) |
//!
//! and two durations, in logarithmic buckets ([`super::histogram`]): time to acknowledge
//! (first dispatch → first acknowledgement) and time to close (report → latest closing), on
//! the plain clock. The rates are ratios of sums over any range of days and cells; the
//! percentiles are read from the summed buckets.

use std::collections::BTreeMap;

use crate::commit::StoredCommit;
use crate::sla::{legacy, SlaFacts, SlaState};
use crate::CaseStatus;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use wangge_schemas::{CaseId, ClosureKind, SlaStep};

use super::cases::summary_to_micros;
use super::histogram::bucket_of;
use super::{local_day, CaseSummary, Projection};

/// Where a case's figures count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndicatorKey {
    /// The day the case was reported, in its district's time zone.
    pub day: NaiveDate,
    pub district: String,
    pub community: String,
    /// The building cell the case was reported in.
    pub cell: String,
    pub category: String,
}

/// The counters of one key (as a change: how they move).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndicatorCounts {
    pub registered: i64,
    pub closed: i64,
    pub closed_on_time: i64,
    pub handled: i64,
    pub reworked: i64,
    pub dispatched: i64,
    pub responded_on_time: i64,
    pub evaluated: i64,
    pub resolved_for_resident: i64,
    pub satisfied: i64,
}

impl IndicatorCounts {
    fn fields_mut(&mut self) -> [&mut i64; 10] {
        [
            &mut self.registered,
            &mut self.closed,
            &mut self.closed_on_time,
            &mut self.handled,
            &mut self.reworked,
            &mut self.dispatched,
            &mut self.responded_on_time,
            &mut self.evaluated,
            &mut self.resolved_for_resident,
            &mut self.satisfied,
        ]
    }

    /// `self += sign × other`, field by field.
    pub fn add(&mut self, other: &IndicatorCounts, sign: i64) {
        let mut other = *other;
        for (mine, theirs) in self.fields_mut().into_iter().zip(other.fields_mut()) {
            *mine += sign * *theirs;
        }
    }

    pub fn is_zero(&self) -> bool {
        let mut copy = *self;
        copy.fields_mut().iter().all(|value| **value == 0)
    }
}

/// The durations an indicator row keeps percentiles of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DurationMetric {
    /// First dispatch → first acknowledgement.
    TimeToAcknowledge,
    /// Report → latest closing.
    TimeToClose,
}

impl DurationMetric {
    pub const ALL: [DurationMetric; 2] = [Self::TimeToAcknowledge, Self::TimeToClose];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimeToAcknowledge => "time_to_acknowledge",
            Self::TimeToClose => "time_to_close",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// What one case adds to the indicators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub key: IndicatorKey,
    pub counts: IndicatorCounts,
    /// `(metric, bucket)` of each duration the case has.
    pub durations: Vec<(DurationMetric, u16)>,
}

/// The projection's state of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorCase {
    pub summary: CaseSummary,
    /// The SLA fold, keeping of its finished steps only those that ended late.
    pub facts: SlaFacts,
    /// What the case contributes now.
    pub contribution: Option<Contribution>,
}

#[derive(Debug, Default)]
pub struct IndicatorChanges {
    pub cases: BTreeMap<CaseId, IndicatorCase>,
    pub counts: BTreeMap<IndicatorKey, IndicatorCounts>,
    /// How many durations enter (or leave) each bucket.
    pub durations: BTreeMap<(IndicatorKey, DurationMetric, u16), i64>,
}

impl IndicatorChanges {
    fn add(&mut self, contribution: &Contribution, sign: i64) {
        self.counts
            .entry(contribution.key.clone())
            .or_default()
            .add(&contribution.counts, sign);
        for (metric, bucket) in &contribution.durations {
            *self
                .durations
                .entry((contribution.key.clone(), *metric, *bucket))
                .or_default() += sign;
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct IndicatorsProjection;

impl IndicatorsProjection {
    pub const NAME: &'static str = "indicators";
}

impl Projection for IndicatorsProjection {
    const NAME: &'static str = Self::NAME;
    type State = IndicatorCase;
    type Changes = IndicatorChanges;

    fn apply(
        &self,
        state: &mut Option<IndicatorCase>,
        commit: &StoredCommit,
        changes: &mut IndicatorChanges,
    ) {
        let Some(first) = commit.events.first() else {
            return;
        };
        let case = state.get_or_insert_with(|| IndicatorCase {
            summary: CaseSummary::new(commit.case_id, first.location.clone()),
            facts: SlaFacts::new(true),
            contribution: None,
        });
        for event in &commit.events {
            case.summary.apply(event, commit.position);
        }
        summary_to_micros(&mut case.summary);
        let legacy = legacy::terms_for(&case.summary.reported_category);
        let mut sla = SlaState::from_facts(
            Some(legacy),
            std::mem::replace(&mut case.facts, SlaFacts::new(true)),
        );
        for event in &commit.events {
            sla.apply(event);
        }
        let contribution = contribution_of(&case.summary, &sla);
        case.facts = sla.into_facts();
        // Only whether every run of a step ended on time matters here: the late runs say it
        // all, and a million cases' on-time runs would be most of the state.
        case.facts.finished.retain(|finished| !finished.on_time());
        if contribution != case.contribution {
            if let Some(old) = &case.contribution {
                changes.add(old, -1);
            }
            if let Some(new) = &contribution {
                changes.add(new, 1);
            }
            changes.counts.retain(|_, counts| !counts.is_zero());
            changes.durations.retain(|_, count| *count != 0);
            case.contribution = contribution;
        }
    }

    fn keep_state(&self, case_id: CaseId, state: &IndicatorCase, changes: &mut IndicatorChanges) {
        changes.cases.insert(case_id, state.clone());
    }
}

/// What a case adds to the indicators, from its summary and its SLA history alone.
pub fn contribution_of(summary: &CaseSummary, sla: &SlaState<'_>) -> Option<Contribution> {
    let self_handled = summary.closure == Some(ClosureKind::SelfHandled);
    let registered = summary.accepted_at.is_some() || self_handled;
    let excluded = matches!(
        summary.status,
        CaseStatus::Rejected | CaseStatus::Merged | CaseStatus::Voided | CaseStatus::New
    );
    if !registered || excluded {
        return None;
    }
    let reported_at = summary.reported_at.or(summary.accepted_at)?;
    let district = &summary.location.district;
    let key = IndicatorKey {
        day: local_day(sla.calendar(), reported_at),
        district: district.clone(),
        community: summary.location.community.clone(),
        cell: summary.location.building.clone(),
        category: summary
            .category
            .clone()
            .unwrap_or_else(|| summary.reported_category.clone()),
    };
    let runs_on_time = |step: SlaStep| {
        sla.finished()
            .iter()
            .filter(|finished| finished.step == step)
            .all(|finished| finished.on_time())
    };
    let closed = summary.status == CaseStatus::Closed;
    let flag = |yes: bool| i64::from(yes);
    let counts = IndicatorCounts {
        registered: 1,
        closed: flag(closed),
        closed_on_time: flag(closed && runs_on_time(SlaStep::Resolve)),
        handled: flag(summary.resolved_at.is_some()),
        reworked: flag(summary.reworks > 0),
        dispatched: flag(summary.dispatches > 0),
        responded_on_time: flag(
            summary.acknowledged_at.is_some() && runs_on_time(SlaStep::Acknowledge),
        ),
        evaluated: flag(summary.satisfaction.is_some()),
        resolved_for_resident: flag(
            summary
                .satisfaction
                .is_some_and(|s| summary.resolved_for_resident.unwrap_or(s >= 3)),
        ),
        satisfied: flag(summary.satisfaction.is_some_and(|s| s >= 4)),
    };
    let mut durations = Vec::new();
    if let (Some(dispatched), Some(acknowledged)) =
        (summary.first_dispatched_at, summary.acknowledged_at)
    {
        let seconds = (acknowledged - dispatched).num_seconds();
        durations.push((DurationMetric::TimeToAcknowledge, bucket_of(seconds)));
    }
    if let (true, Some(closed_at)) = (closed, summary.closed_at) {
        let seconds = (closed_at - reported_at).num_seconds();
        durations.push((DurationMetric::TimeToClose, bucket_of(seconds)));
    }
    Some(Contribution {
        key,
        counts,
        durations,
    })
}

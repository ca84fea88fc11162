//! The `indicators` projection: the figures supervisors are judged by, per day, district,
//! community, cell and category.
//!
//! # Which cases count, and where
//!
//! A case counts once it is registered: accepted (立案), or closed by self-handling (自处理).
//! Rejected, merged and voided cases count nowhere, nor do cases still waiting for
//! acceptance. A case adds its counters to two kinds of key (one row where they coincide):
//!
//! - its **report key**: the day it was reported, the building cell it was reported in, that
//!   cell's community and district;
//! - the **due key** of each of its rounds of handling that is due (below): the day the round
//!   fell due, and the cell that held the case then (its holder), with the holder's community
//!   (the cell itself for a community cell, `''` for a case held by the district) and
//!   district.
//!
//! Both carry the accepted category (the reported one before acceptance). A day is the local
//! day of an instant in the case's recorded calendar ([`super::local_day`]).
//!
//! # Rounds of handling, and when one falls due (应结案)
//!
//! A round runs from the report (or a reopening) to the closing. It falls due — it should
//! have been closed — at the earlier of
//!
//! - its **closing** (结案), and
//! - the instant its **handling limit passed**: the deadline of the first breach of its
//!   resolve or verify step that the SLA timers recorded in the round (`case.sla_breached`,
//!   recorded at the deadline).
//!
//! So a round closed within its limit falls due on its closing day; one still open past its
//! limit falls due at the breach; one open within its limit is **not due yet** and is in none
//! of the three counters below. Time suspended (waiting for the resident or for parts, 挂账
//! parked) is excluded by the clock itself: it stands while suspended and no deadline passes,
//! so a case parked before its limit is not due until it is resumed and its limit passes, or
//! it closes. Only the resolve and verify steps set the handling limit: a case still waiting
//! for dispatch or acknowledgement is not due yet (its lateness there shows on the SLA board,
//! in the overdue list and in 响应率).
//!
//! **Holder.** A due round is charged to the cell that held the case at the breach, or, for a
//! round closed within its limit, when it closed — not to the building it was reported in.
//!
//! **Reopening.** `case.reopened` starts a new round. The round it ends keeps its figures (it
//! was due and closed, on time or not, charged to its holder); the new round falls due again
//! at its own closing or breach, charged to its own holder. 应结案 therefore counts rounds: a
//! case reopened once and closed again is due twice.
//!
//! **Self-handled (自处理).** A patrol finding closed on the spot by the worker who found it is
//! due, closed and closed on time on its closing day, charged to the building cell it was
//! found in (the patrol worker's own cell): no handling limit runs for a fix on the spot. It
//! was never dispatched, so it is not in 响应率.
//!
//! # The counters
//!
//! | counter | key | the case … |
//! |---|---|---|
//! | `registered` | report | is registered (立案) |
//! | `due` | due | has this round due (应结案) |
//! | `closed` | due | … and the round is closed (结案) |
//! | `closed_on_time` | due | … closed within its limit (按期结案): no breach of its resolve or verify step recorded in the round, and no run of those steps in the round ended past the deadline in force when it ended; a self-handled round always |
//! | `handled` | report | had a result reported at least once |
//! | `reworked` | report | was sent back after verification at least once (返工) |
//! | `dispatched` | report | was dispatched at least once |
//! | `responded_on_time` | report | was acknowledged, and every acknowledge run ended within its limit (响应) |
//! | `evaluated` | report | was evaluated by the reporter |
//! | `resolved_for_resident` | report | was evaluated as solved (解决): the resident's own answer to "was the problem solved?" when they were asked, else a satisfaction of 3 or more of 5 |
//! | `satisfied` | report | was evaluated 4 or more of 5 (满意; the hotlines' 满意 and 基本满意 are stored as 5 and 4) |
//!
//! and two durations, in logarithmic buckets ([`super::histogram`]), on the plain clock: time
//! to acknowledge (report key: first dispatch → first acknowledgement) and time to close (due
//! key of a closed round: its start — the report, or the reopening — → its closing).
//!
//! The rates are ratios of sums over any range of days and cells, each counter summed over
//! its own cohort: 结案率 `closed ÷ due` and 按期结案率 `closed_on_time ÷ due` over the days
//! rounds fell due; 返工率 `reworked ÷ handled`, 响应率 `responded_on_time ÷ dispatched`,
//! 解决率 and 满意率 `÷ evaluated` over the days cases were reported. The percentiles are
//! read from the summed buckets.

mod contribution;
mod rounds;

pub use contribution::contributions_of;
pub use rounds::{Charge, Closing, IndicatorFacts, Round};

use std::collections::BTreeMap;

use crate::commit::StoredCommit;
use crate::sla::{legacy, SlaFacts, SlaState};
use crate::CaseStatus;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use wangge_schemas::{CaseEvent, CaseId, Tier};

use super::cases::summary_to_micros;
use super::{CaseSummary, Projection};

/// Where a case's figures count: its report key or a round's due key (module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndicatorKey {
    /// The local day the case was reported (report key) or the round fell due (due key).
    pub day: NaiveDate,
    pub district: String,
    /// The cell's community: itself for a community cell, `''` for the district.
    pub community: String,
    /// The cell charged: the building cell the case was reported in (report key), or the
    /// cell that held it when the round fell due (due key), of any tier.
    pub cell: String,
    pub category: String,
}

impl IndicatorKey {
    /// The tier of the key's cell, from how the key spells it: a district's cases have no
    /// community, a community's cell is its community.
    pub fn tier(&self) -> Tier {
        tier_of(&self.community, &self.cell)
    }
}

/// The tier of an indicator row's cell from its community and cell columns (see
/// [`IndicatorKey::tier`]); the PostgreSQL queries spell the same rule in SQL.
fn tier_of(community: &str, cell: &str) -> Tier {
    if community.is_empty() {
        Tier::District
    } else if community == cell {
        Tier::Community
    } else {
        Tier::Building
    }
}

/// The counters of one key (as a change: how they move). `due`, `closed` and
/// `closed_on_time` count rounds of handling by the day they fell due, in the cell that held
/// the case then; the others count cases by the day they were reported, in the building cell
/// they were reported in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IndicatorCounts {
    /// 立案: cases registered (accepted, or closed by self-handling), by the day they were
    /// reported, in the building cell they were reported in.
    pub registered: i64,
    /// 应结案: rounds of handling that fell due — should have been closed — by the day they
    /// fell due, charged to the cell holding the case then. A round falls due at its closing,
    /// or earlier when its resolve or verify step breached (the deadline recorded by the SLA
    /// timers); a round open within its limit, or suspended before it, is not due. A reopened
    /// case is due again at its next closing or breach (a new round). Self-handled cases are
    /// due on their closing day, in the building cell they were found in.
    pub due: i64,
    /// 结案: due rounds that are closed (same day and cell as `due`).
    pub closed: i64,
    /// 按期结案: due rounds closed within their limit — no breach of the resolve or verify
    /// step recorded and no run of them ended late (same day and cell as `due`);
    /// self-handled cases always.
    pub closed_on_time: i64,
    /// Registered cases that had a result reported at least once (by report day).
    pub handled: i64,
    /// 返工: registered cases sent back after verification at least once (by report day).
    pub reworked: i64,
    /// Registered cases dispatched at least once (by report day; self-handled ones never are).
    pub dispatched: i64,
    /// 响应: dispatched cases acknowledged with every acknowledge run within its limit (by
    /// report day).
    pub responded_on_time: i64,
    /// Cases evaluated by the reporter (by report day).
    pub evaluated: i64,
    /// 解决: evaluated cases the resident called solved when asked, else scored 3+ of 5 (by
    /// report day).
    pub resolved_for_resident: i64,
    /// 满意: evaluated cases scored 4+ of 5 (满意 = 5, 基本满意 = 4) (by report day).
    pub satisfied: i64,
}

impl IndicatorCounts {
    fn fields_mut(&mut self) -> [&mut i64; 11] {
        [
            &mut self.registered,
            &mut self.due,
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

    /// The counters in table order (`registered`, `due`, `closed`, …), as the PostgreSQL
    /// tables hold them.
    pub fn values(&self) -> [i64; 11] {
        let mut copy = *self;
        copy.fields_mut().map(|value| *value)
    }

    /// Counters from values in table order.
    pub fn from_values(values: [i64; 11]) -> Self {
        let mut counts = Self::default();
        for (field, value) in counts.fields_mut().into_iter().zip(values) {
            *field = value;
        }
        counts
    }

    /// `self += sign × other`, field by field.
    pub fn add(&mut self, other: &IndicatorCounts, sign: i64) {
        let mut other = *other;
        for (mine, theirs) in self.fields_mut().into_iter().zip(other.fields_mut()) {
            *mine += sign * *theirs;
        }
    }

    pub fn is_zero(&self) -> bool {
        self.values().iter().all(|value| *value == 0)
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

/// What one case adds to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub key: IndicatorKey,
    pub counts: IndicatorCounts,
    /// `(metric, bucket)` of each duration counted under the key.
    pub durations: Vec<(DurationMetric, u16)>,
}

/// The projection's state of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorCase {
    pub summary: CaseSummary,
    /// The SLA fold of the running step (its finished steps are read once, as they finish,
    /// into `facts`, and not kept).
    pub sla: SlaFacts,
    /// Its rounds of handling and what else the indicators remember of it.
    pub facts: IndicatorFacts,
    /// What the case contributes now, one entry per key, in key order.
    pub contributions: Vec<Contribution>,
}

#[derive(Debug, Default)]
pub struct IndicatorChanges {
    pub cases: BTreeMap<CaseId, IndicatorCase>,
    pub counts: BTreeMap<IndicatorKey, IndicatorCounts>,
    /// How many durations enter (or leave) each bucket.
    pub durations: BTreeMap<(IndicatorKey, DurationMetric, u16), i64>,
}

impl IndicatorChanges {
    fn add(&mut self, contributions: &[Contribution], sign: i64) {
        for contribution in contributions {
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
            sla: SlaFacts::new(true),
            facts: IndicatorFacts::default(),
            contributions: Vec::new(),
        });
        let legacy = legacy::terms_for(reported_category(&case.summary, commit));
        let mut sla = SlaState::from_facts(
            Some(legacy),
            std::mem::replace(&mut case.sla, SlaFacts::new(true)),
        );
        // Event by event: a breach or a closing is charged to whoever held the case then.
        for event in &commit.events {
            let finished_before = sla.finished().len();
            case.summary.apply(event, commit.position);
            sla.apply(event);
            case.facts
                .observe(event, &case.summary, &sla.finished()[finished_before..]);
        }
        summary_to_micros(&mut case.summary);
        let contributions = contributions_of(&case.summary, &case.facts, sla.calendar());
        case.sla = sla.into_facts();
        // Each finished step was read into the facts as it finished.
        case.sla.finished.clear();
        if contributions != case.contributions {
            changes.add(&case.contributions, -1);
            changes.add(&contributions, 1);
            changes.counts.retain(|_, counts| !counts.is_zero());
            changes.durations.retain(|_, count| *count != 0);
            case.contributions = contributions;
        }
    }

    fn keep_state(&self, case_id: CaseId, state: &IndicatorCase, changes: &mut IndicatorChanges) {
        changes.cases.insert(case_id, state.clone());
    }
}

/// The category the case was reported under once `commit` is folded: the terms of commits
/// written before clocks were recorded depend on it, and the first commit brings it.
fn reported_category<'a>(summary: &'a CaseSummary, commit: &'a StoredCommit) -> &'a str {
    if summary.status != CaseStatus::New {
        return &summary.reported_category;
    }
    commit
        .events
        .iter()
        .find_map(|envelope| match &envelope.event {
            CaseEvent::Reported(reported) => Some(reported.reported_category.as_str()),
            _ => None,
        })
        .unwrap_or(&summary.reported_category)
}

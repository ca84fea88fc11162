//! The `cases` projection: every case's current state with its running SLA clock, and the
//! SLA board — open cases per cell and tier, by traffic light.
//!
//! The light of an open case follows the SLA facts in its log: red once a breach of the
//! running step's current deadline is recorded, yellow once its warning is, green otherwise
//! (and for a step the policy does not time). The timers record warnings and breaches at
//! their instants, so the board moves when they do, and the light of a case never depends on
//! when somebody looks. The deadline is the one the engine recorded (the envelope's `sla_clock`,
//! `case.deadline_revised`), on every row, so "how late" is `now − deadline`; a deadline
//! counted past the calendar's published holidays is marked provisional.

use std::collections::BTreeMap;

use crate::commit::StoredCommit;
use crate::sla::{legacy, SlaFacts, SlaState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::{CaseEvent, CaseId, GridLocation, SlaStep, Tier};

use super::{CaseSummary, Projection};

/// The supervisors' traffic light.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Light {
    /// Within 80 % of the limit (or no timed step running).
    Green,
    /// Past the warning share of the limit.
    Yellow,
    /// Past the limit.
    Red,
}

impl Light {
    pub const ALL: [Light; 3] = [Light::Green, Light::Yellow, Light::Red];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Green => "green",
            Self::Yellow => "yellow",
            Self::Red => "red",
        }
    }
}

/// The running SLA clock of a case, as the board shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseSla {
    /// The step whose clock runs (or stands, while suspended).
    pub step: Option<SlaStep>,
    pub step_started_at: Option<DateTime<Utc>>,
    /// When the warning falls due; `None` while suspended before it.
    pub warning_at: Option<DateTime<Utc>>,
    /// When the step's limit runs out; `None` while suspended before it.
    pub deadline: Option<DateTime<Utc>>,
    /// Whether the deadline was counted past the calendar's published holidays (on the
    /// weekly hours alone): it will be revised when the next schedule is published.
    #[serde(default)]
    pub provisional: bool,
    /// `None` for a case that is no longer open.
    pub light: Option<Light>,
}

/// One row of the `cases` read model, which is also the projection's state of the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRow {
    pub summary: CaseSummary,
    pub sla: CaseSla,
    /// The SLA fold of the running step, to carry on at the next commit (not served).
    pub facts: SlaFacts,
}

/// Where an open case counts on the board: the cell and tier that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BoardKey {
    pub district: String,
    /// The community the holding cell belongs to (itself for a community cell); `None` for
    /// a case held at the district.
    pub community: Option<String>,
    pub cell: String,
    pub tier: Tier,
    /// Whether the case is under supervision (督办), so the board can show those alone.
    #[serde(default)]
    pub supervised: bool,
}

/// Open cases by light; as a change, how the counts move.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LightCounts {
    pub green: i64,
    pub yellow: i64,
    pub red: i64,
}

impl LightCounts {
    pub fn add(&mut self, light: Light, count: i64) {
        match light {
            Light::Green => self.green += count,
            Light::Yellow => self.yellow += count,
            Light::Red => self.red += count,
        }
    }

    pub fn merge(&mut self, other: &LightCounts) {
        self.green += other.green;
        self.yellow += other.yellow;
        self.red += other.red;
    }

    pub fn is_zero(&self) -> bool {
        self.green == 0 && self.yellow == 0 && self.red == 0
    }

    pub fn total(&self) -> i64 {
        self.green + self.yellow + self.red
    }
}

/// What a batch changes in the `cases` projection.
#[derive(Debug, Default)]
pub struct CasesChanges {
    /// The new rows of the cases the batch touched.
    pub rows: BTreeMap<CaseId, CaseRow>,
    /// How the board's counts move (zero entries left out).
    pub board: BTreeMap<BoardKey, LightCounts>,
}

impl CaseRow {
    fn new(location: GridLocation, case_id: CaseId) -> Self {
        Self {
            summary: CaseSummary::new(case_id, location),
            sla: CaseSla::default(),
            // The board needs the running step only, not the finished ones.
            facts: SlaFacts::new(false),
        }
    }

    /// The board cell this case counts in, with its light; `None` unless it is open.
    pub fn board_entry(&self) -> Option<(BoardKey, Light)> {
        if !self.summary.is_open() {
            return None;
        }
        let holder = self.summary.holder();
        let key = BoardKey {
            district: holder.district,
            community: holder.community,
            cell: holder.cell,
            tier: holder.tier,
            supervised: self.summary.is_supervised(),
        };
        Some((key, self.sla.light.unwrap_or(Light::Green)))
    }
}

/// Instants as the read models keep them: whole microseconds (PostgreSQL's precision), so
/// that memory and PostgreSQL hold the same values.
pub fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// Applies `to_micros` to every instant of a summary.
pub(crate) fn summary_to_micros(summary: &mut CaseSummary) {
    for at in [
        &mut summary.reported_at,
        &mut summary.accepted_at,
        &mut summary.first_dispatched_at,
        &mut summary.dispatched_at,
        &mut summary.acknowledged_at,
        &mut summary.resolved_at,
        &mut summary.closed_at,
        &mut summary.ended_at,
        &mut summary.last_event_at,
    ] {
        *at = at.map(to_micros);
    }
    if let Some(supervision) = summary.supervision.as_mut() {
        supervision.since = to_micros(supervision.since);
        supervision.overdue_since = to_micros(supervision.overdue_since);
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CasesProjection;

impl CasesProjection {
    pub const NAME: &'static str = "cases";
}

impl Projection for CasesProjection {
    const NAME: &'static str = Self::NAME;
    type State = CaseRow;
    type Changes = CasesChanges;

    fn apply(
        &self,
        state: &mut Option<CaseRow>,
        commit: &StoredCommit,
        changes: &mut CasesChanges,
    ) {
        let Some(first) = commit.events.first() else {
            return;
        };
        let row = state.get_or_insert_with(|| CaseRow::new(first.location.clone(), commit.case_id));
        let before = row.board_entry();
        fold_commit(row, commit);
        let after = row.board_entry();
        if before != after {
            if let Some((key, light)) = before {
                changes.board.entry(key).or_default().add(light, -1);
            }
            if let Some((key, light)) = after {
                changes.board.entry(key).or_default().add(light, 1);
            }
            changes.board.retain(|_, counts| !counts.is_zero());
        }
    }

    fn keep_state(&self, case_id: CaseId, state: &CaseRow, changes: &mut CasesChanges) {
        changes.rows.insert(case_id, state.clone());
    }
}

/// Folds a commit into a case row: the summary, then the SLA clock as recorded (commits
/// written before clocks were recorded: as release 0.1 computed them).
pub fn fold_commit(row: &mut CaseRow, commit: &StoredCommit) {
    for event in &commit.events {
        row.summary.apply(event, commit.position);
    }
    summary_to_micros(&mut row.summary);
    let legacy = legacy::terms_for(&row.summary.reported_category);
    let mut sla = SlaState::from_facts(Some(legacy), std::mem::take(&mut row.facts));
    for event in &commit.events {
        sla.apply(event);
    }
    row.sla = clock_of(&sla, row.summary.is_open());
    row.facts = sla.into_facts();
    // A report that was never seen (a log read from the middle) still names its case.
    if commit
        .events
        .iter()
        .any(|e| matches!(e.event, CaseEvent::Reported(_)))
        && row.summary.title.is_empty()
    {
        row.summary.title = row.summary.reported_category.clone();
    }
}

/// The board's view of the running clock.
fn clock_of(sla: &SlaState<'_>, open: bool) -> CaseSla {
    let Some(clock) = sla.current() else {
        return CaseSla {
            light: open.then_some(Light::Green),
            ..CaseSla::default()
        };
    };
    let light = if clock.breach_recorded {
        Light::Red
    } else if clock.warning_recorded {
        Light::Yellow
    } else {
        Light::Green
    };
    CaseSla {
        step: Some(clock.step),
        step_started_at: Some(to_micros(clock.started_at)),
        warning_at: clock.warning_at.map(to_micros),
        deadline: clock.deadline.map(to_micros),
        provisional: clock.provisional,
        light: open.then_some(light),
    }
}

//! The projection folds: pure functions from a case's commits to read-model rows.
//!
//! Every read model is computed here, once, from values; the stores (memory and PostgreSQL)
//! only keep what the folds hand them and answer queries over it. So a differential test can
//! feed one history to both stores and expect the same answers, and a rebuild from the log
//! gives the same rows as the live projection did.
//!
//! Four projections, each with its own checkpoint, its own per-case state and its own tables:
//!
//! | projection | per-case state | rows it writes |
//! |---|---|---|
//! | [`cases`] | the case row itself ([`CaseSummary`] + its SLA clock) | `cases`, `sla_board` (open cases per cell, tier and traffic light) |
//! | [`audit`] | the chain head (sequence, hash) and a compact summary to diff against | `audit_trail`, hash-chained |
//! | [`indicators`] | the case's indicator contribution | `indicator_daily` counters, `indicator_durations` histograms |
//! | [`patrols`] | none | `patrol_coverage` per building cell and day |
//!
//! Counters and histograms are maintained by *contribution*: a case contributes a set of
//! counts to some keys, computed from its state alone; after each commit the fold emits the
//! difference between the new contribution and the old one. Folding a commit twice is
//! therefore impossible to get wrong by accident (the runner skips commits at or below its
//! checkpoint), and the totals always equal the sum over the cases' current states.
//!
//! **Architecture Invariant:** a fold reads nothing but the commits and the case's state: no
//! grid, no reference data, no clock. Deadlines, cells and tiers come from the events (the
//! engine records each step's clock when it writes it), so a fold means the same whenever
//! it runs — a rebuild after the grid or the calendars changed gives the rows the live run
//! gave. Commits written before clocks were recorded are computed under the frozen release
//! 0.1 reference data (`wangge_domain::sla::legacy`).

pub mod audit;
pub mod cases;
pub mod histogram;
pub mod indicators;
pub mod patrols;
pub mod summary;

pub use summary::CaseSummary;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use wangge_schemas::{CaseId, ClockCalendar};

use crate::commit::StoredCommit;

/// The names of the projections, as the runner, the checkpoints table, the lag endpoint and
/// `wangge projections rebuild NAME` know them.
pub const PROJECTION_NAMES: [&str; 4] = [
    cases::CasesProjection::NAME,
    audit::AuditProjection::NAME,
    indicators::IndicatorsProjection::NAME,
    patrols::PatrolsProjection::NAME,
];

/// A pure projection: folds commits into per-case state and a batch of row changes.
///
/// The runner loads the states of the cases in a batch of commits, calls [`Projection::apply`]
/// for each commit in log order, and hands the resulting [`Projection::Changes`] (which carry
/// the new states of the cases they touched) to the store, together with the new checkpoint,
/// in one transaction.
pub trait Projection: Send + Sync + 'static {
    /// The name of the projection (and of its checkpoint).
    const NAME: &'static str;
    /// What the projection remembers of one case between commits (`()` for none).
    type State: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static;
    /// What a batch of commits changes in the projection's tables.
    type Changes: Default + std::fmt::Debug + Send + 'static;

    /// Folds one commit of a case. `state` is the case's state before the commit (`None`
    /// when the projection has not seen the case) and is left as the state after it.
    fn apply(
        &self,
        state: &mut Option<Self::State>,
        commit: &StoredCommit,
        changes: &mut Self::Changes,
    );

    /// Records the final state of a case touched by the batch in `changes`, so that the
    /// store writes it with the rows. Called once per touched case after the batch.
    fn keep_state(&self, case_id: CaseId, state: &Self::State, changes: &mut Self::Changes);
}

/// Folds a batch of commits (in log order) over the states the store had for their cases:
/// the one function both stores' runners call.
pub fn fold_batch<'c, P: Projection>(
    projection: &P,
    mut states: HashMap<CaseId, P::State>,
    commits: impl IntoIterator<Item = &'c StoredCommit>,
) -> P::Changes {
    let mut changes = P::Changes::default();
    let mut touched: HashSet<CaseId> = HashSet::new();
    for commit in commits {
        let mut state = states.remove(&commit.case_id);
        projection.apply(&mut state, commit, &mut changes);
        if let Some(state) = state {
            touched.insert(commit.case_id);
            states.insert(commit.case_id, state);
        }
    }
    for case_id in touched {
        if let Some(state) = states.get(&case_id) {
            projection.keep_state(case_id, state, &mut changes);
        }
    }
    changes
}

/// The calendar day of `at` where a case is: in its recorded calendar's time zone (China
/// Standard Time for commits written before clocks were recorded, the only zone release 0.1
/// knew). The day an indicator or a patrol counts on.
pub fn local_day(calendar: Option<&ClockCalendar>, at: DateTime<Utc>) -> NaiveDate {
    let offset = calendar.map_or(crate::sla::UtcOffset::CHINA, |calendar| calendar.utc_offset);
    at.with_timezone(&offset.fixed_offset()).date_naive()
}

//! The `patrols` projection: which building cells were patrolled when.
//!
//! A grid worker's patrol (巡查) reaches the engine as a patrol finding, fixed on the spot or
//! not; each counts for its building cell on the day it was made (local time of the
//! district). The coverage query lists every cell of the grid in a scope, with the days it
//! was patrolled and the last patrol — so the cells nobody patrolled show up as such.

use std::collections::BTreeMap;

use crate::commit::StoredCommit;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::{CaseEvent, ReportDetails};

use super::cases::to_micros;
use super::{local_day, Projection};

/// One building cell on one day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PatrolKey {
    pub cell: String,
    pub day: NaiveDate,
}

/// The patrols of a cell on a day; as a change, what a batch adds to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatrolDay {
    pub district: String,
    pub community: String,
    pub findings: i64,
    pub fixed_on_spot: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// The worker of the latest patrol (the smallest id among patrols at the same instant).
    pub last_worker: String,
}

impl PatrolDay {
    /// Adds `other` (another batch's patrols of the same cell and day) to `self`.
    pub fn merge(&mut self, other: &PatrolDay) {
        self.findings += other.findings;
        self.fixed_on_spot += other.fixed_on_spot;
        self.first_at = self.first_at.min(other.first_at);
        if (other.last_at, std::cmp::Reverse(&other.last_worker))
            > (self.last_at, std::cmp::Reverse(&self.last_worker))
        {
            self.last_at = other.last_at;
            self.last_worker = other.last_worker.clone();
        }
    }
}

#[derive(Debug, Default)]
pub struct PatrolChanges {
    pub days: BTreeMap<PatrolKey, PatrolDay>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PatrolsProjection;

impl PatrolsProjection {
    pub const NAME: &'static str = "patrols";
}

impl Projection for PatrolsProjection {
    const NAME: &'static str = Self::NAME;
    /// Nothing per case: every patrol finding counts once, when it is reported.
    type State = ();
    type Changes = PatrolChanges;

    fn apply(&self, _state: &mut Option<()>, commit: &StoredCommit, changes: &mut PatrolChanges) {
        // The report's commit records its first clock, in the case's calendar.
        let calendar = commit
            .events
            .iter()
            .find_map(|event| event.sla_clock.as_ref().map(|clock| &clock.calendar));
        for event in &commit.events {
            // Only the first report of a case is the patrol (a repeated one adds nothing).
            let (CaseEvent::Reported(reported), 1) = (&event.event, event.sequence) else {
                continue;
            };
            let ReportDetails::PatrolFinding {
                worker_id,
                fixed_on_spot,
                ..
            } = &reported.details
            else {
                continue;
            };
            let at = to_micros(event.occurred_at);
            let location = &event.location;
            let day = PatrolDay {
                district: location.district.clone(),
                community: location.community.clone(),
                findings: 1,
                fixed_on_spot: i64::from(*fixed_on_spot),
                first_at: at,
                last_at: at,
                last_worker: worker_id.clone(),
            };
            let key = PatrolKey {
                cell: location.building.clone(),
                day: local_day(calendar, at),
            };
            match changes.days.get_mut(&key) {
                Some(existing) => existing.merge(&day),
                None => {
                    changes.days.insert(key, day);
                }
            }
        }
    }

    fn keep_state(&self, _: wangge_schemas::CaseId, _: &(), _: &mut PatrolChanges) {}
}

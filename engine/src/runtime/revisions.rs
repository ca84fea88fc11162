//! Deadline revisions: when the SLA data changes, the open cases whose clocks it moves get
//! their clocks computed again and a `case.deadline_revised` recording old, new and why.
//!
//! Every clock is recorded when it is written, under the data of that moment; history is
//! never rewritten. Two things can make a recorded clock wrong later:
//!
//! - **A provisional clock** counted working time past its calendar's published holidays on
//!   the weekly hours alone. Once the calendar's next schedule is published (its
//!   `holidays_published_through` moves past what the clock was computed with), the clock
//!   is computed again. This is checked on every change and on a sweep every few minutes,
//!   so a partition taken over from another instance, or an instance that was down when
//!   the schedule came, still revises its cases.
//! - **A corrected calendar** (a holiday added or moved within the published range): the
//!   cases whose clock uses that calendar and has an instant on or after the first changed
//!   date are computed again, when the change arrives.
//!
//! A policy published at run time changes no running clock: a step keeps the limit it
//! started with; the next step takes the new one.
//!
//! Each revision is a conditional command through [`CaseService::revise_deadlines`], whose
//! source names the case and the SLA data's position, so two instances (or a retry) write
//! it once; a case whose clock did not move gets nothing. Only the instance that holds a
//! case's partition revises it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use tracing::{info, warn};
use wangge_domain::sla::{LiveSla, SlaFacts};
use wangge_schemas::{Actor, Source};

use crate::app::{CaseService, CommandError};
use crate::log::EventLog;
use crate::runtime::timers::TimerService;
use crate::runtime::Ownership;
use crate::sla::SharedSla;

/// The name revisions are written under (actor id and source system).
pub const SLA_REVISION: &str = "wangge-sla-revision";

/// How often provisional clocks are looked at even without a change.
pub const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// The actor that keeps recorded clocks in step with the SLA data.
pub struct DeadlineRevisions<L> {
    cases: Arc<CaseService<L>>,
    timers: Arc<TimerService<L>>,
    sla: SharedSla,
}

/// Why a calendar's clocks may have moved: the first local date that counts differently.
type ChangedCalendars = BTreeMap<String, NaiveDate>;

impl<L: EventLog> DeadlineRevisions<L> {
    pub fn new(cases: Arc<CaseService<L>>, timers: Arc<TimerService<L>>, sla: SharedSla) -> Self {
        Self { cases, timers, sla }
    }

    /// Revises, until `shutdown`, the clocks of the owned cases that the SLA data moves.
    pub async fn run(self, ownership: Ownership, shutdown: impl std::future::Future<Output = ()>) {
        let mut changes = self.sla.changes();
        let mut seen = self.sla.snapshot();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            let changed = tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = self.sla.snapshot();
                    let changed = changed_calendars(&seen, &now);
                    seen = now;
                    changed
                }
                _ = sweep.tick() => ChangedCalendars::new(),
                () = &mut shutdown => return,
            };
            self.revise(&changed, &ownership).await;
        }
    }

    /// One pass: the provisional clocks the data now covers further, and the clocks of the
    /// changed calendars from their first changed date on. Returns how many were revised.
    pub async fn revise(&self, changed: &ChangedCalendars, ownership: &Ownership) -> usize {
        let current = self.sla.snapshot();
        let wanted = |facts: &SlaFacts| needs_revision(facts, &current, changed);
        let candidates = self.timers.cases_where(wanted).await;
        let mut revised = 0;
        for (case_id, _) in candidates {
            if !ownership.owns(case_id) {
                continue;
            }
            let reason = reason_of(&current, changed);
            let source = Source {
                system: SLA_REVISION.to_owned(),
                message_id: format!("{case_id}:sla-{}", current.position()),
            };
            match self
                .cases
                .revise_deadlines(case_id, &reason, Actor::system(SLA_REVISION), source)
                .await
            {
                Ok(Some(outcome)) if !outcome.duplicate => {
                    revised += 1;
                    info!(%case_id, %reason, "deadline revised");
                }
                Ok(_) => {}
                Err(CommandError::Domain(error)) => {
                    warn!(%case_id, %error, "deadline revision refused");
                }
                Err(error) => {
                    // Looked at again at the next sweep (provisional clocks) or not at all
                    // (a correction): logged loudly, since a deadline may now be wrong.
                    warn!(%case_id, %error, "deadline revision failed; will retry at the next sweep if provisional");
                }
            }
        }
        if revised > 0 {
            info!(
                revised,
                sla_position = current.position(),
                "deadlines revised under new sla data"
            );
        }
        revised
    }
}

/// The calendars whose working time `after` counts differently from `before`, with the
/// first date that differs.
pub fn changed_calendars(before: &LiveSla, after: &LiveSla) -> ChangedCalendars {
    let mut changed = ChangedCalendars::new();
    for id in after.calendars().ids() {
        let (Some(old), Some(new)) = (before.calendars().get(id), after.calendars().get(id)) else {
            continue;
        };
        if let Some(date) = old.first_difference(new) {
            changed.insert(id.to_owned(), date);
        }
    }
    changed
}

/// Whether a case's recorded clock may have moved: provisional and its calendar now
/// published further, or its calendar changed on or before one of its instants.
fn needs_revision(facts: &SlaFacts, current: &LiveSla, changed: &ChangedCalendars) -> bool {
    let Some(run) = &facts.run else {
        return false;
    };
    let Some(recorded) = &run.recorded else {
        return false;
    };
    let Some(calendar) = &facts.calendar else {
        return false;
    };
    if recorded.provisional {
        let now = current
            .calendars()
            .get(&calendar.id)
            .and_then(|calendar| calendar.holidays_published_through());
        if now > calendar.holidays_published_through {
            return true;
        }
    }
    let Some(first) = changed.get(&calendar.id) else {
        return false;
    };
    let Some(calendar_now) = current.calendars().get(&calendar.id) else {
        return false;
    };
    let latest = recorded
        .rungs
        .iter()
        .filter_map(|rung| rung.due_at)
        .chain(recorded.deadline)
        .max();
    // A suspended clock (no deadline) is computed again when it resumes.
    latest.is_some_and(|latest| calendar_now.local_date(latest) >= *first)
}

fn reason_of(current: &LiveSla, changed: &ChangedCalendars) -> String {
    if changed.is_empty() {
        format!(
            "the calendar's holidays were published further (sla data at position {})",
            current.position()
        )
    } else {
        let calendars: Vec<String> = changed
            .iter()
            .map(|(id, from)| {
                if *from == NaiveDate::MIN {
                    format!("{id} (its weekly hours)")
                } else {
                    format!("{id} (from {from})")
                }
            })
            .collect();
        format!(
            "calendar {} changed (sla data at position {})",
            calendars.join(", "),
            current.position()
        )
    }
}

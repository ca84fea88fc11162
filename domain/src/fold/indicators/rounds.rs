//! What the indicators remember of a case besides its summary: its rounds of handling — when
//! each fell due (应结案) and who answered for it then — whether an acknowledgement ran late,
//! and whether it was ever self-handled.
//!
//! The facts are gathered event by event, as the case's summary and SLA fold move, because
//! the holder that matters is the one at a given moment (the breach, the closing), not the
//! one at the end of the commit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::{CaseEvent, ClosureKind, EventEnvelope, SlaStep, Tier};

use crate::sla::FinishedStep;

use super::super::cases::to_micros;
use super::super::summary::{CaseSummary, Holder};

/// The steps whose limit is the case's handling limit: a round whose resolve or verify step
/// breached should have been closed by then.
fn sets_the_handling_limit(step: SlaStep) -> bool {
    matches!(step, SlaStep::Resolve | SlaStep::Verify)
}

/// A moment that counts against a holder: a breach or a closing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub at: DateTime<Utc>,
    pub holder: Holder,
}

/// The closing that ended a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closing {
    pub at: DateTime<Utc>,
    /// Who held the case when it closed; for a self-handled closing, the building cell the
    /// finding was reported in (the patrol worker's own cell).
    pub holder: Holder,
    pub self_handled: bool,
}

/// One round of handling: from the report (or a reopening) to the closing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// The reopening that began the round; `None` for the first round, which begins with the
    /// report.
    pub reopened_at: Option<DateTime<Utc>>,
    /// The first breach of the round's resolve or verify step the timers recorded: the
    /// deadline that passed (the instant the handling limit ran out) and who held the case.
    pub breached: Option<Charge>,
    /// Whether a run of the round's resolve or verify step ended past the deadline in force
    /// when it ended (late even where no timer recorded a breach).
    pub ran_late: bool,
    pub closed: Option<Closing>,
}

impl Round {
    /// When the round fell due (应结案) and who answers for it: the earlier of its breach
    /// and its closing. `None` while it is open within its limit (or suspended before it).
    pub fn due(&self) -> Option<(DateTime<Utc>, &Holder)> {
        let closed = self
            .closed
            .as_ref()
            .map(|closing| (closing.at, &closing.holder));
        if self.is_self_handled() {
            // A patrol worker's fix on the spot has no handling limit to miss.
            return closed;
        }
        let breached = self
            .breached
            .as_ref()
            .map(|breach| (breach.at, &breach.holder));
        match (breached, closed) {
            (Some(breach), Some(closing)) if closing.0 < breach.0 => Some(closing),
            (breach, closing) => breach.or(closing),
        }
    }

    /// Whether the round closed within its limit (按期结案): closed with no breach of its
    /// resolve or verify step recorded and no run of them ending late; a self-handled round
    /// always is.
    pub fn closed_on_time(&self) -> bool {
        self.closed.is_some()
            && (self.is_self_handled() || (self.breached.is_none() && !self.ran_late))
    }

    fn is_self_handled(&self) -> bool {
        self.closed
            .as_ref()
            .is_some_and(|closing| closing.self_handled)
    }
}

/// The facts the indicators keep of one case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorFacts {
    /// Its rounds of handling, oldest first; the last is the current one.
    pub rounds: Vec<Round>,
    /// Whether a run of its acknowledge step ended past its limit.
    pub acknowledged_late: bool,
    /// Whether it was ever closed by self-handling (自处理), which registers a case without an
    /// acceptance.
    pub self_handled: bool,
}

impl IndicatorFacts {
    /// Notes what one event of the case means for the indicators. `summary` is the case's
    /// summary after the event, `finished` the SLA runs the event stopped.
    pub fn observe(
        &mut self,
        envelope: &EventEnvelope,
        summary: &CaseSummary,
        finished: &[FinishedStep],
    ) {
        for run in finished.iter().filter(|run| !run.on_time()) {
            if run.step == SlaStep::Acknowledge {
                self.acknowledged_late = true;
            }
            if sets_the_handling_limit(run.step) {
                self.current().ran_late = true;
            }
        }
        match &envelope.event {
            CaseEvent::SlaBreached(breach) if sets_the_handling_limit(breach.step) => {
                let round = self.current();
                if round.breached.is_none() && round.closed.is_none() {
                    round.breached = Some(Charge {
                        at: to_micros(breach.deadline),
                        holder: summary.holder(),
                    });
                }
            }
            CaseEvent::Closed(closed) => {
                let self_handled = closed.closure == ClosureKind::SelfHandled;
                self.self_handled |= self_handled;
                let holder = if self_handled {
                    found_in(summary)
                } else {
                    summary.holder()
                };
                self.current().closed = Some(Closing {
                    at: to_micros(envelope.occurred_at),
                    holder,
                    self_handled,
                });
            }
            // Only a closed round can be reopened; the fold stays total for any other order.
            CaseEvent::Reopened(_) if self.current().closed.is_some() => {
                self.rounds.push(Round {
                    reopened_at: Some(to_micros(envelope.occurred_at)),
                    ..Round::default()
                });
            }
            _ => {}
        }
    }

    /// The round under way (the first one begins with the case's first event).
    fn current(&mut self) -> &mut Round {
        if self.rounds.is_empty() {
            self.rounds.push(Round::default());
        }
        let last = self.rounds.len() - 1;
        &mut self.rounds[last]
    }
}

/// The building cell a case was reported in, as a holder.
fn found_in(summary: &CaseSummary) -> Holder {
    Holder {
        district: summary.location.district.clone(),
        community: Some(summary.location.community.clone()),
        cell: summary.location.building.clone(),
        tier: Tier::Building,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn instant(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, hour, 0, 0).unwrap()
    }

    fn holder(cell: &str, tier: Tier) -> Holder {
        Holder {
            district: "d".into(),
            community: (tier != Tier::District).then(|| "c".into()),
            cell: cell.into(),
            tier,
        }
    }

    fn closing(hour: u32, cell: &str, self_handled: bool) -> Option<Closing> {
        Some(Closing {
            at: instant(hour),
            holder: holder(cell, Tier::Building),
            self_handled,
        })
    }

    fn breach(hour: u32, cell: &str, tier: Tier) -> Option<Charge> {
        Some(Charge {
            at: instant(hour),
            holder: holder(cell, tier),
        })
    }

    #[test]
    fn a_round_open_within_its_limit_is_not_due() {
        let round = Round::default();
        assert_eq!(round.due(), None);
        assert!(!round.closed_on_time());
    }

    #[test]
    fn a_round_closed_within_its_limit_is_due_at_its_closing_and_on_time() {
        let round = Round {
            closed: closing(5, "b1", false),
            ..Round::default()
        };
        let (at, charged) = round.due().expect("due");
        assert_eq!((at, charged.cell.as_str()), (instant(5), "b1"));
        assert!(round.closed_on_time());
    }

    #[test]
    fn a_breached_round_is_due_at_the_breach_charged_to_its_holder_then_and_late() {
        let round = Round {
            breached: breach(3, "c", Tier::Community),
            closed: closing(7, "b1", false),
            ..Round::default()
        };
        let (at, charged) = round.due().expect("due");
        assert_eq!((at, charged.cell.as_str()), (instant(3), "c"));
        assert!(!round.closed_on_time());
        let open = Round {
            closed: None,
            ..round
        };
        assert_eq!(open.due().map(|(at, _)| at), Some(instant(3)));
    }

    #[test]
    fn a_round_whose_run_ended_late_without_a_recorded_breach_is_due_at_closing_but_late() {
        let round = Round {
            ran_late: true,
            closed: closing(7, "b1", false),
            ..Round::default()
        };
        assert_eq!(round.due().map(|(at, _)| at), Some(instant(7)));
        assert!(!round.closed_on_time());
    }

    #[test]
    fn a_self_handled_round_is_due_and_on_time_at_its_closing_in_the_building_found_in() {
        let round = Round {
            // Not something the engine writes; the rule holds whatever the log says.
            ran_late: true,
            closed: closing(4, "b3", true),
            ..Round::default()
        };
        let (at, charged) = round.due().expect("due");
        assert_eq!((at, charged.cell.as_str()), (instant(4), "b3"));
        assert!(round.closed_on_time());
    }
}

//! A case's SLA clocks: computed by the engine from a step's limit, the case's business
//! calendar and its suspensions and extensions, recorded in the log, and read back from it.
//!
//! [`SlaState`] is a fold over the case's events, like [`CaseState`](crate::CaseState). It
//! keeps facts ([`SlaFacts`]: which step runs since when, its limit and extensions, its
//! pauses, the warnings and breaches recorded, and the clock last recorded for it) and serves
//! two kinds of reader:
//!
//! - **The engine, deciding** (with [`Terms`]: the case's policy and calendar as they are
//!   now): after each command it computes the running step's clock
//!   ([`SlaState::computed`]) and, when a step started or the clock changed, records it on
//!   the envelope of the commit's last event (`sla_clock`, [`clock_for_commit`]). When
//!   reference data changes (the next year's holidays published) it computes the clock
//!   again and records a `case.deadline_revised` if it moved ([`deadline_revision`]).
//! - **Everyone else** (timers, read models), without terms: the clock in force is the one
//!   last recorded ([`SlaState::current`]). A fold therefore means the same whenever it
//!   runs: nothing it reads changes after the event was written.
//!
//! Commits written before clocks were recorded (or by a foreign writer) have none; a reader
//! given terms for them (the frozen [`legacy`](super::legacy) reference data) computes them
//! as the engine did then.
//!
//! # When a step's clock runs
//!
//! | step | opened by | stopped by |
//! |---|---|---|
//! | accept | `case.reported` (the first) | anything that opens another step; a terminal event |
//! | dispatch | `case.accepted`, `case.declined`, `case.escalated`, `case.reopened` | ditto |
//! | acknowledge | `case.dispatched`, `case.reassigned` (each restarts it) | ditto |
//! | resolve | `case.acknowledged`, `case.handling_started` unless resolve runs already, `case.rework_requested` (restarts it) | ditto |
//! | verify | `case.resolved` | `case.verified`, ditto |
//!
//! Terminal events (`case.closed`, `case.rejected`, `case.merged`, `case.voided`) stop the
//! clock. At most one step runs at a time; a step its policy does not time has no deadline.
//!
//! Each event counts at its `occurred_at`, but never earlier than the event before it:
//! time in a case's log only runs forwards, whatever a publisher's clock said.
//!
//! # Limits, suspensions and extensions
//!
//! A step's clock counts on its **measure**, which its limit's unit decides: working time of
//! the calendar for `working_*` units, the plain clock for `clock_*` units and
//! `calendar_days`. Its **budget** is the limit converted to that measure at the start: the
//! measure from the start to the limit's end. Each `case.extension_granted` for the running
//! step extends the budget by its own limit, in its own unit, counted on from where the
//! budget ended (`+1 working_days` from a deadline at 17:30 on Wednesday ends at 17:30 on
//! Thursday). An extension for a step that is not running has no effect.
//!
//! While the case is suspended (`case.suspended` → `case.resumed`: waiting for the
//! resident, for parts, or 挂账 parked) the clock stands still. The deadline is the instant
//! at which the running time used reaches the budget; the warning is where it reaches
//! `warning_percent` of it; escalation rungs are where it reaches the budget extended by
//! each rung in turn. A suspension therefore never makes a deadline earlier, and one that
//! begins after a deadline has passed leaves that deadline where it was.
//!
//! # Provisional deadlines
//!
//! Working time past a calendar's `holidays_published_through` is counted on the weekly
//! hours alone: the holidays there are not known yet. A clock with an instant past that date
//! is **provisional**; it is recorded as such and computed again when the calendar's next
//! schedule is published.
//!
//! # Timers
//!
//! A warning or breach is identified, as in [`decide`](crate::decide()), by its step and
//! deadline: [`SlaState::due`] lists only those not yet recorded, so a timer that fires,
//! records, and fires again finds nothing left to do. A deadline that moves (an extension, a
//! suspension before it, a revision) is a new deadline and gets its own warning. While the
//! case is suspended nothing new comes due: only a warning or breach that was already
//! reached before the suspension is still listed.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::sla::{EscalationAction, SlaClock, SlaPolicy};
use wangge_schemas::{
    CaseEvent, ClockCalendar, DeadlineRevised, EscalationRung, EventEnvelope, Priority, SlaStep,
    StepDeadlines, TimeLimit,
};

use super::calendar::{add_clock_nanos, clock_nanos_between, duration_of, BusinessCalendar, Nanos};
use crate::CaseCommand;

mod packed;
pub use packed::{pack_facts, unpack_facts, UnreadableFacts};

/// The version of what stored SLA facts mean ([`SlaFacts`], [`SlaState::pack`]). Bump it when
/// the fold ([`SlaState::apply`]) or the facts change meaning, so that facts stored by
/// another version (a timer snapshot) are not carried on but folded again from the log.
pub const FACTS_VERSION: u32 = 2;

/// What the engine computes a case's clocks under: the policy its category runs under and
/// its district's business calendar, as they are when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Terms<'a> {
    pub policy: &'a SlaPolicy,
    pub calendar: &'a BusinessCalendar,
}

impl<'a> Terms<'a> {
    pub fn new(policy: &'a SlaPolicy, calendar: &'a BusinessCalendar) -> Self {
        Self { policy, calendar }
    }
}

/// The clock running for a case after `events`, computed under `terms` (recorded clocks in
/// the events take precedence): at most one, since a case is at one step of its loop at a
/// time.
pub fn sla_clocks(
    events: &[EventEnvelope],
    policy: &SlaPolicy,
    calendar: &BusinessCalendar,
) -> Vec<StepClock> {
    SlaState::replay(Some(Terms::new(policy, calendar)), events)
        .current()
        .into_iter()
        .collect()
}

/// The running clock of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepClock {
    pub step: SlaStep,
    /// When the clock started: the `occurred_at` of the event that opened the step.
    pub started_at: DateTime<Utc>,
    /// The step's limit for this run.
    pub limit: TimeLimit,
    /// Extensions granted to this run of the step, in order.
    pub extensions: Vec<TimeLimit>,
    /// How this step's time is counted.
    pub measure: SlaClock,
    /// The time allowed, limit and extensions together, in the step's measure.
    pub budget: Duration,
    pub warning_percent: u8,
    /// When `warning_percent` of the budget is used; `None` while suspended before then.
    pub warning_at: Option<DateTime<Utc>>,
    /// When the whole budget is used; `None` while suspended before then.
    pub deadline: Option<DateTime<Utc>>,
    /// Whether a `case.sla_warning` for this step and `deadline` is in the history.
    pub warning_recorded: bool,
    /// Whether a `case.sla_breached` for this step and `deadline` is in the history.
    pub breach_recorded: bool,
    /// When the current suspension began, if the case is suspended.
    pub suspended_since: Option<DateTime<Utc>>,
    /// While suspended: the budget left (zero once it is used up).
    pub remaining: Option<Duration>,
    /// The rungs of the step's escalation ladder, lowest first.
    pub escalations: Vec<EscalationDue>,
    /// Whether an instant of the clock lies past the calendar's published holidays.
    pub provisional: bool,
    /// The policy the limit came from.
    pub policy: String,
    /// Whether the clock is the one recorded in the log (else computed under terms).
    pub recorded: bool,
}

/// One rung of an escalation ladder and when it falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationDue {
    /// 1 for the first rung.
    pub level: u32,
    pub action: EscalationAction,
    pub after: TimeLimit,
    /// `None` while suspended before then.
    pub due_at: Option<DateTime<Utc>>,
}

/// A step's clock that has stopped, with the deadline that was in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedStep {
    pub step: SlaStep,
    pub started_at: DateTime<Utc>,
    pub stopped_at: DateTime<Utc>,
    /// The deadline in force when the clock stopped (`None`: untimed, or stopped while
    /// suspended before reaching it).
    pub deadline: Option<DateTime<Utc>>,
}

impl FinishedStep {
    /// Whether the step ended within its limit (按期): no later than the deadline in force.
    /// A step that stopped while suspended before its deadline was reached is on time.
    pub fn on_time(&self) -> bool {
        self.deadline
            .is_none_or(|deadline| self.stopped_at <= deadline)
    }
}

/// Something the timer service should do at `at` for the running step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueTimer {
    pub at: DateTime<Utc>,
    pub step: SlaStep,
    /// The step's deadline: with the step, the identity of a warning or breach.
    pub deadline: DateTime<Utc>,
    pub kind: TimerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    Warning {
        threshold_percent: u8,
    },
    Breach,
    Escalation {
        level: u32,
        action: EscalationAction,
    },
}

impl DueTimer {
    /// The command that records a warning or a breach; `None` for an escalation, whose
    /// command (which worker, which cell) the escalation choice works out.
    pub fn command(&self) -> Option<CaseCommand> {
        match self.kind {
            TimerKind::Warning { threshold_percent } => Some(CaseCommand::RecordSlaWarning {
                step: self.step,
                deadline: self.deadline,
                threshold_percent,
            }),
            TimerKind::Breach => Some(CaseCommand::RecordSlaBreach {
                step: self.step,
                deadline: self.deadline,
            }),
            TimerKind::Escalation { .. } => None,
        }
    }
}

/// The supervisors' traffic light: green up to the warning share, yellow up to the limit,
/// red past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrafficLight {
    Green,
    Yellow,
    Red,
}

/// The clock last recorded for the running step: what readers go by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedClock {
    pub policy: String,
    pub measure: SlaClock,
    pub warning_percent: u8,
    pub warning_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub rungs: Vec<EscalationRung>,
    pub budget_seconds: Option<i64>,
    pub remaining_seconds: Option<i64>,
    pub provisional: bool,
}

impl RecordedClock {
    fn of(clock: &StepDeadlines) -> Self {
        Self {
            policy: clock.policy.clone(),
            measure: clock.measure,
            warning_percent: clock.warning_percent,
            warning_at: clock.warning_at,
            deadline: clock.deadline,
            rungs: clock.escalations.clone(),
            budget_seconds: clock.budget_seconds,
            remaining_seconds: clock.remaining_seconds,
            provisional: clock.provisional,
        }
    }
}

/// One run of a step: the facts its deadlines are computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRun {
    pub step: SlaStep,
    pub started_at: DateTime<Utc>,
    /// The run's limit: set when the step starts under terms, or by the recorded clock;
    /// `None` while neither has said (or when the step is not timed).
    pub limit: Option<TimeLimit>,
    pub extensions: Vec<TimeLimit>,
    /// Finished suspensions during the run, `(from, to)`, in order, clipped to the run.
    pub pauses: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// The clock last recorded for this run.
    pub recorded: Option<RecordedClock>,
}

/// A stretch of time in which the clock runs; `to: None` = still running.
#[derive(Debug, Clone, Copy)]
struct Segment {
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
}

/// The SLA facts of one case, folded from its events: what a read model or a snapshot stores
/// to carry the fold on later ([`SlaState::from_facts`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaFacts {
    pub reported: bool,
    pub priority: Option<Priority>,
    /// The effective time of the latest event (never decreases).
    pub last_event_at: Option<DateTime<Utc>>,
    pub suspended_since: Option<DateTime<Utc>>,
    pub run: Option<StepRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finished: Vec<FinishedStep>,
    /// Warnings and breaches recorded, as `(step, deadline, is_breach)`, each once, in the
    /// order recorded. A list, not two sets: a case has a handful, and the fold is held for
    /// every open case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<(SlaStep, DateTime<Utc>, bool)>,
    /// The calendar of the case's latest recorded clock: the case keeps it, and its offset
    /// fixes the local day the case counts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<ClockCalendar>,
    /// Whether finished steps (and their warnings and breaches) are kept. Indicators need
    /// them; timers and the case aggregate do not, and holding a million open cases they are
    /// most of the memory.
    pub keep_history: bool,
}

impl SlaFacts {
    /// The facts of a fold that has seen no event.
    pub fn new(keep_history: bool) -> Self {
        Self {
            reported: false,
            priority: None,
            last_event_at: None,
            suspended_since: None,
            run: None,
            finished: Vec::new(),
            marks: Vec::new(),
            calendar: None,
            keep_history,
        }
    }
}

impl Default for SlaFacts {
    fn default() -> Self {
        Self::new(false)
    }
}

/// A case's SLA fold, with the terms to compute clocks under when it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaState<'a> {
    terms: Option<(&'a SlaPolicy, &'a BusinessCalendar)>,
    facts: SlaFacts,
}

/// The rules a run's clock is computed by: the limit, the warning share and the ladder, from
/// its recorded clock when it has one (they were fixed when the step started), else from
/// the policy.
struct RunRules {
    limit: TimeLimit,
    warning_percent: u8,
    ladder: Vec<(EscalationAction, TimeLimit)>,
    policy: String,
}

impl<'a> SlaState<'a> {
    /// No events yet; `terms` to compute clocks under (`None` for a reader that goes by the
    /// recorded clocks alone).
    pub fn new(terms: Option<Terms<'a>>) -> Self {
        Self::from_facts(terms, SlaFacts::new(true))
    }

    /// A fold carried on from stored facts.
    pub fn from_facts(terms: Option<Terms<'a>>, facts: SlaFacts) -> Self {
        Self {
            terms: terms.map(|terms| (terms.policy, terms.calendar)),
            facts,
        }
    }

    /// Folds a case's events, oldest first.
    pub fn replay<'e>(
        terms: Option<Terms<'a>>,
        events: impl IntoIterator<Item = &'e EventEnvelope>,
    ) -> Self {
        let mut state = Self::new(terms);
        for envelope in events {
            state.apply(envelope);
        }
        state
    }

    /// The fold's facts, to store.
    pub fn facts(&self) -> &SlaFacts {
        &self.facts
    }

    pub fn into_facts(self) -> SlaFacts {
        self.facts
    }

    /// A fold that keeps only what the running step needs: no finished steps, and no
    /// warnings or breaches of earlier runs. Its timers are the same as the full fold's.
    pub fn without_history(mut self) -> Self {
        self.facts.keep_history = false;
        self.facts.finished = Vec::new();
        self
    }

    /// Folds one event. Total: never panics, whatever the event or its order.
    pub fn apply(&mut self, envelope: &EventEnvelope) {
        let at = match self.facts.last_event_at {
            Some(last) => envelope.occurred_at.max(last),
            None => envelope.occurred_at,
        };
        self.facts.last_event_at = Some(at);

        use CaseEvent as E;
        match &envelope.event {
            E::Suspended(_) => {
                self.facts.suspended_since.get_or_insert(at);
            }
            E::Resumed(_) => self.end_suspension(at),
            E::ExtensionGranted(granted) => {
                if let Some(run) = self
                    .facts
                    .run
                    .as_mut()
                    .filter(|run| run.step == granted.step)
                {
                    run.extensions.push(granted.extension);
                }
            }
            E::SlaWarning(warning) => self.mark(warning.step, warning.deadline, false),
            E::SlaBreached(breach) => self.mark(breach.step, breach.deadline, true),
            E::DeadlineRevised(revised) => self.record(&revised.clock, at),
            // Verification stops its clock; the closing event that follows ends the case.
            E::Verified(_) => {
                if self.running_step() == Some(SlaStep::Verify) {
                    self.stop(at);
                }
            }
            // 督办 is oversight: the step's clock runs on as it was.
            E::CommentAdded(_) | E::Evaluated(_) | E::SupervisionRequested(_) => {}
            // Every other event moves the case to another status, which ends a suspension.
            E::Reported(_) => {
                // A second report of a case changes nothing (the first one defined it).
                if !self.facts.reported {
                    self.facts.reported = true;
                    self.move_on(Some(SlaStep::Accept), at);
                }
            }
            E::Accepted(accepted) => {
                self.facts.priority = Some(accepted.priority);
                self.move_on(Some(SlaStep::Dispatch), at);
            }
            E::Declined(_) | E::Escalated(_) | E::Reopened(_) => {
                self.move_on(Some(SlaStep::Dispatch), at);
            }
            E::Dispatched(_) | E::Reassigned(_) => self.move_on(Some(SlaStep::Acknowledge), at),
            E::Acknowledged(_) | E::ReworkRequested(_) => {
                self.move_on(Some(SlaStep::Resolve), at);
            }
            E::HandlingStarted(_) => {
                if self.running_step() == Some(SlaStep::Resolve) {
                    self.end_suspension(at);
                } else {
                    self.move_on(Some(SlaStep::Resolve), at);
                }
            }
            E::Resolved(_) => self.move_on(Some(SlaStep::Verify), at),
            E::Rejected(_) | E::Merged(_) | E::Closed(_) | E::Voided(_) => self.move_on(None, at),
        }
        // The clock the engine computed with this event, after its move.
        if let Some(clock) = &envelope.sla_clock {
            self.record(clock, at);
        }
    }

    /// The case's priority, once accepted.
    pub fn priority(&self) -> Option<Priority> {
        self.facts.priority
    }

    pub fn is_suspended(&self) -> bool {
        self.facts.suspended_since.is_some()
    }

    /// The step whose clock runs (or stands, while suspended).
    pub fn running_step(&self) -> Option<SlaStep> {
        self.facts.run.as_ref().map(|run| run.step)
    }

    /// Steps whose clocks have stopped, oldest first (kept only with history).
    pub fn finished(&self) -> &[FinishedStep] {
        &self.facts.finished
    }

    /// The calendar of the case's latest recorded clock.
    pub fn calendar(&self) -> Option<&ClockCalendar> {
        self.facts.calendar.as_ref()
    }

    /// Notes a recorded warning or breach (once).
    fn mark(&mut self, step: SlaStep, deadline: DateTime<Utc>, breach: bool) {
        if !self.facts.marks.contains(&(step, deadline, breach)) {
            self.facts.marks.push((step, deadline, breach));
        }
    }

    /// Takes a recorded clock as the running step's: its limit, extensions and deadlines.
    fn record(&mut self, clock: &StepDeadlines, at: DateTime<Utc>) {
        let same_run = self
            .facts
            .run
            .as_ref()
            .is_some_and(|run| run.step == clock.step && run.started_at == clock.started_at);
        if !same_run {
            // A clock for a run this fold did not see start (a log read from the middle, a
            // foreign writer): the recorded run replaces whatever ran.
            self.stop(at);
            self.facts.run = Some(StepRun {
                step: clock.step,
                started_at: clock.started_at,
                limit: None,
                extensions: Vec::new(),
                pauses: Vec::new(),
                recorded: None,
            });
        }
        if let Some(run) = self.facts.run.as_mut() {
            run.limit = clock.limit;
            run.extensions = clock.extensions.clone();
            run.recorded = Some(RecordedClock::of(clock));
        }
        self.facts.calendar = Some(clock.calendar.clone());
    }

    /// The running clock in force: the one recorded for the run, else (with terms) the one
    /// computed; `None` when no timed step runs.
    pub fn current(&self) -> Option<StepClock> {
        let run = self.facts.run.as_ref()?;
        match &run.recorded {
            Some(recorded) => self.clock_of_record(run, recorded),
            None => self.computed(),
        }
    }

    /// The running clock computed under the terms (the recorded limit, extensions and
    /// ladder of the run, the terms' calendar); `None` without terms or a timed step.
    pub fn computed(&self) -> Option<StepClock> {
        let (_, calendar) = self.terms?;
        let run = self.facts.run.as_ref()?;
        let rules = self.rules_of(run)?;
        Some(self.evaluate(run, &rules, calendar))
    }

    /// The running clock computed under the terms, in the form the log records it; `None`
    /// without terms or a running step. An untimed step gives a clock without deadlines.
    pub fn computed_record(&self) -> Option<StepDeadlines> {
        let (policy, calendar) = self.terms?;
        let run = self.facts.run.as_ref()?;
        let calendar_record = ClockCalendar {
            id: calendar.id().to_owned(),
            utc_offset: calendar.utc_offset(),
            holidays_published_through: calendar.holidays_published_through(),
        };
        let Some(clock) = self.computed() else {
            return Some(StepDeadlines {
                step: run.step,
                started_at: run.started_at,
                policy: policy.name.clone(),
                limit: None,
                extensions: Vec::new(),
                measure: SlaClock::Business,
                warning_percent: policy.warning_percent,
                warning_at: None,
                deadline: None,
                escalations: Vec::new(),
                suspended_since: self.facts.suspended_since,
                budget_seconds: None,
                remaining_seconds: None,
                provisional: false,
                calendar: calendar_record,
            });
        };
        Some(StepDeadlines {
            step: clock.step,
            started_at: clock.started_at,
            policy: clock.policy.clone(),
            limit: Some(clock.limit),
            extensions: clock.extensions.clone(),
            measure: clock.measure,
            warning_percent: clock.warning_percent,
            warning_at: clock.warning_at,
            deadline: clock.deadline,
            escalations: clock
                .escalations
                .iter()
                .map(|rung| EscalationRung {
                    level: rung.level,
                    action: rung.action,
                    after: rung.after,
                    due_at: rung.due_at,
                })
                .collect(),
            suspended_since: clock.suspended_since,
            budget_seconds: Some(clock.budget.num_seconds()),
            remaining_seconds: clock.remaining.map(|left| left.num_seconds()),
            provisional: clock.provisional,
            calendar: calendar_record,
        })
    }

    /// The clock recorded for the running run, in the log's form, if any.
    pub fn recorded(&self) -> Option<&RecordedClock> {
        self.facts.run.as_ref()?.recorded.as_ref()
    }

    /// Every timer not yet recorded for the running step, earliest first: a warning (unless
    /// the breach is recorded), the breach, and the ladder's rungs. While suspended, only a
    /// warning or breach reached before the suspension.
    pub fn due(&self) -> Vec<DueTimer> {
        let Some(clock) = self.current() else {
            return Vec::new();
        };
        let Some(deadline) = clock.deadline else {
            return Vec::new();
        };
        let reached = |at: DateTime<Utc>| clock.suspended_since.is_none_or(|since| at <= since);
        let timer = |at, kind| DueTimer {
            at,
            step: clock.step,
            deadline,
            kind,
        };
        let mut timers = Vec::new();
        if let Some(at) = clock.warning_at {
            if !clock.warning_recorded && !clock.breach_recorded && reached(at) {
                timers.push(timer(
                    at,
                    TimerKind::Warning {
                        threshold_percent: clock.warning_percent,
                    },
                ));
            }
        }
        if !clock.breach_recorded && reached(deadline) {
            timers.push(timer(deadline, TimerKind::Breach));
        }
        if clock.suspended_since.is_none() {
            for rung in &clock.escalations {
                if let Some(at) = rung.due_at {
                    timers.push(timer(
                        at,
                        TimerKind::Escalation {
                            level: rung.level,
                            action: rung.action,
                        },
                    ));
                }
            }
        }
        timers.sort_by_key(|timer| (timer.at, timer.kind));
        timers
    }

    /// What the timer service should act on at `now`: the timers due by then, without a
    /// warning the breach overtakes, and of the ladder only the highest rung reached.
    pub fn due_by(&self, now: DateTime<Utc>) -> Vec<DueTimer> {
        let mut timers: Vec<DueTimer> = self
            .due()
            .into_iter()
            .filter(|timer| timer.at <= now)
            .collect();
        if timers.iter().any(|timer| timer.kind == TimerKind::Breach) {
            timers.retain(|timer| !matches!(timer.kind, TimerKind::Warning { .. }));
        }
        let highest_rung = timers
            .iter()
            .filter_map(|timer| match timer.kind {
                TimerKind::Escalation { level, .. } => Some(level),
                _ => None,
            })
            .max();
        timers.retain(|timer| match timer.kind {
            TimerKind::Escalation { level, .. } => Some(level) == highest_rung,
            _ => true,
        });
        timers
    }

    /// The traffic light of the running step at `now` (while suspended: as it stood when
    /// the suspension began).
    pub fn light(&self, now: DateTime<Utc>) -> Option<(SlaStep, TrafficLight)> {
        let clock = self.current()?;
        let at = clock.suspended_since.unwrap_or(now);
        let light = if clock.deadline.is_some_and(|deadline| at > deadline) {
            TrafficLight::Red
        } else if clock.warning_at.is_some_and(|warning| at >= warning) {
            TrafficLight::Yellow
        } else {
            TrafficLight::Green
        };
        Some((clock.step, light))
    }

    // -- the fold's moves -----------------------------------------------------------------

    fn end_suspension(&mut self, at: DateTime<Utc>) {
        let Some(since) = self.facts.suspended_since.take() else {
            return;
        };
        if let Some(run) = self.facts.run.as_mut() {
            run.pauses.push((since.max(run.started_at), at));
        }
    }

    /// Ends any suspension, stops the running step and starts `next`. Under terms the new
    /// run takes its limit from the policy; without, it waits for its recorded clock.
    fn move_on(&mut self, next: Option<SlaStep>, at: DateTime<Utc>) {
        self.end_suspension(at);
        self.stop(at);
        let Some(step) = next else {
            return;
        };
        let limit = self
            .terms
            .and_then(|(policy, _)| policy.limit(step, self.facts.priority));
        self.facts.run = Some(StepRun {
            step,
            started_at: at,
            limit,
            extensions: Vec::new(),
            pauses: Vec::new(),
            recorded: None,
        });
    }

    fn stop(&mut self, at: DateTime<Utc>) {
        let deadline = self.current().and_then(|clock| clock.deadline);
        let Some(run) = self.facts.run.take() else {
            return;
        };
        if !self.facts.keep_history {
            // A later run has its own deadlines; the earlier marks can never match again.
            self.facts.marks.retain(|(step, _, _)| *step != run.step);
            return;
        }
        self.facts.finished.push(FinishedStep {
            step: run.step,
            started_at: run.started_at,
            stopped_at: at,
            deadline,
        });
    }

    // -- computing a clock ----------------------------------------------------------------

    fn rules_of(&self, run: &StepRun) -> Option<RunRules> {
        if let Some(recorded) = &run.recorded {
            return Some(RunRules {
                limit: run.limit?,
                warning_percent: recorded.warning_percent,
                ladder: recorded
                    .rungs
                    .iter()
                    .map(|rung| (rung.action, rung.after))
                    .collect(),
                policy: recorded.policy.clone(),
            });
        }
        let (policy, _) = self.terms?;
        Some(RunRules {
            limit: run.limit?,
            warning_percent: policy.warning_percent,
            ladder: policy
                .ladder(run.step)
                .iter()
                .map(|level| (level.action, level.after))
                .collect(),
            policy: policy.name.clone(),
        })
    }

    fn clock_of_record(&self, run: &StepRun, recorded: &RecordedClock) -> Option<StepClock> {
        let limit = run.limit?;
        let marked = |breach: bool| {
            recorded
                .deadline
                .is_some_and(|deadline| self.facts.marks.contains(&(run.step, deadline, breach)))
        };
        Some(StepClock {
            step: run.step,
            started_at: run.started_at,
            limit,
            extensions: run.extensions.clone(),
            measure: recorded.measure,
            budget: recorded
                .budget_seconds
                .map_or(Duration::zero(), Duration::seconds),
            warning_percent: recorded.warning_percent,
            warning_at: recorded.warning_at,
            deadline: recorded.deadline,
            warning_recorded: marked(false),
            breach_recorded: marked(true),
            suspended_since: self.facts.suspended_since,
            remaining: recorded.remaining_seconds.map(Duration::seconds),
            escalations: recorded
                .rungs
                .iter()
                .map(|rung| EscalationDue {
                    level: rung.level,
                    action: rung.action,
                    after: rung.after,
                    due_at: rung.due_at,
                })
                .collect(),
            provisional: recorded.provisional,
            policy: recorded.policy.clone(),
            recorded: true,
        })
    }

    /// The stretches in which the run's clock ran or runs.
    fn segments(&self, run: &StepRun) -> Vec<Segment> {
        let mut segments = Vec::with_capacity(run.pauses.len() + 1);
        let mut from = run.started_at;
        for (paused, resumed) in &run.pauses {
            segments.push(Segment {
                from,
                to: Some((*paused).max(from)),
            });
            from = (*resumed).max(from);
        }
        segments.push(Segment {
            from,
            to: self.facts.suspended_since.map(|since| since.max(from)),
        });
        segments
    }

    fn evaluate(&self, run: &StepRun, rules: &RunRules, calendar: &BusinessCalendar) -> StepClock {
        let measure = if rules.limit.unit.is_working_time() {
            SlaClock::Business
        } else {
            SlaClock::Continuous
        };
        let timeline = Timeline { measure, calendar };
        let segments = self.segments(run);
        let percent = rules.warning_percent.clamp(1, 99);
        let unpaused_deadline = run.extensions.iter().fold(
            calendar.add_limit(run.started_at, rules.limit),
            |end, extension| calendar.add_limit(end, *extension),
        );
        let budget = timeline.measure(run.started_at, unpaused_deadline).max(0);
        let deadline = timeline.instant_at(&segments, budget);
        let warning_at = timeline.instant_at(&segments, budget * Nanos::from(percent) / 100);

        // Whether any instant was counted in working time past the published holidays.
        let mut uses_working_time = rules.limit.unit.is_working_time()
            || run.extensions.iter().any(|e| e.unit.is_working_time());
        let mut rung_end = unpaused_deadline;
        let escalations: Vec<EscalationDue> = rules
            .ladder
            .iter()
            .zip(1..)
            .map(|(&(action, after), level)| {
                uses_working_time |= after.unit.is_working_time();
                rung_end = calendar.add_limit(rung_end, after);
                let rung_budget = timeline.measure(run.started_at, rung_end).max(budget);
                EscalationDue {
                    level,
                    action,
                    after,
                    due_at: timeline.instant_at(&segments, rung_budget),
                }
            })
            .collect();
        let latest = escalations
            .iter()
            .filter_map(|rung| rung.due_at)
            .chain(deadline)
            .chain([unpaused_deadline])
            .max();
        let provisional =
            uses_working_time && latest.is_some_and(|latest| calendar.is_past_published(latest));

        let remaining = self.facts.suspended_since.map(|_| {
            let used: Nanos = segments
                .iter()
                .filter_map(|segment| Some(timeline.measure(segment.from, segment.to?).max(0)))
                .sum();
            duration_of((budget - used).max(0))
        });
        let recorded = |breach: bool| {
            deadline
                .is_some_and(|deadline| self.facts.marks.contains(&(run.step, deadline, breach)))
        };
        StepClock {
            step: run.step,
            started_at: run.started_at,
            limit: rules.limit,
            extensions: run.extensions.clone(),
            measure,
            budget: duration_of(budget),
            warning_percent: percent,
            warning_at,
            deadline,
            warning_recorded: recorded(false),
            breach_recorded: recorded(true),
            suspended_since: self.facts.suspended_since,
            remaining,
            escalations,
            provisional,
            policy: rules.policy.clone(),
            recorded: false,
        }
    }
}

/// How one step's time is counted.
#[derive(Debug, Clone, Copy)]
struct Timeline<'a> {
    measure: SlaClock,
    calendar: &'a BusinessCalendar,
}

impl Timeline<'_> {
    /// Time from `from` to `to` in the step's measure.
    fn measure(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Nanos {
        match self.measure {
            SlaClock::Continuous => clock_nanos_between(from, to),
            SlaClock::Business => self.calendar.working_nanos_between(from, to),
        }
    }

    /// The earliest instant at which `nanos` of the step's measure have passed since `from`.
    fn add(&self, from: DateTime<Utc>, nanos: Nanos) -> DateTime<Utc> {
        match self.measure {
            SlaClock::Continuous => add_clock_nanos(from, nanos.max(0)),
            SlaClock::Business => self.calendar.add_working_nanos(from, nanos),
        }
    }

    /// The earliest instant at which the running time in `segments` reaches `budget`, or
    /// `None` if the segments end (a suspension) before it does.
    fn instant_at(&self, segments: &[Segment], budget: Nanos) -> Option<DateTime<Utc>> {
        let mut remaining = budget;
        for segment in segments {
            let Some(to) = segment.to else {
                return Some(self.add(segment.from, remaining));
            };
            let available = self.measure(segment.from, to).max(0);
            if remaining <= available {
                return Some(self.add(segment.from, remaining));
            }
            remaining -= available;
        }
        None
    }
}

/// The clock a commit records, under `terms`, on its last event's envelope: when the
/// commit started a step (always, so every run's limit is in the log, untimed ones included)
/// or changed the running step's clock (a suspension, a resumption, an extension). `before`
/// is the case's fold before the commit (without terms), `decided` the commit's events as
/// stamped. `None` when nothing runs after the commit or its clock did not change.
pub fn clock_for_commit(
    before: &SlaFacts,
    decided: &[EventEnvelope],
    terms: Terms<'_>,
) -> Option<StepDeadlines> {
    let mut after = SlaState::from_facts(Some(terms), before.clone());
    for envelope in decided {
        after.apply(envelope);
    }
    let run = after.facts.run.as_ref()?;
    let started_here = before
        .run
        .as_ref()
        .is_none_or(|earlier| earlier.step != run.step || earlier.started_at != run.started_at);
    let clock = after.computed_record()?;
    (started_here || changed(run.recorded.as_ref(), &clock)).then_some(clock)
}

/// The revision of the running step's clock under newer `terms`, if its deadlines moved:
/// a `case.deadline_revised` naming the old and the new and `reason`. `None` when nothing
/// runs or nothing changed.
pub fn deadline_revision(facts: &SlaFacts, terms: Terms<'_>, reason: &str) -> Option<CaseEvent> {
    let state = SlaState::from_facts(Some(terms), facts.clone());
    let run = state.facts.run.as_ref()?;
    let clock = state.computed_record()?;
    if !changed(run.recorded.as_ref(), &clock) {
        return None;
    }
    let previous = run.recorded.as_ref();
    Some(CaseEvent::DeadlineRevised(Box::new(DeadlineRevised {
        reason: reason.to_owned(),
        previous_deadline: previous.and_then(|clock| clock.deadline),
        previous_warning_at: previous.and_then(|clock| clock.warning_at),
        clock,
    })))
}

/// Whether a computed clock differs from the recorded one in anything a reader goes by.
fn changed(recorded: Option<&RecordedClock>, computed: &StepDeadlines) -> bool {
    let Some(recorded) = recorded else {
        return true;
    };
    recorded.deadline != computed.deadline
        || recorded.warning_at != computed.warning_at
        || recorded.rungs != computed.escalations
        || recorded.provisional != computed.provisional
        || recorded.remaining_seconds != computed.remaining_seconds
}

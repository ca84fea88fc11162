//! A case's SLA clocks as a pure function of its events, a policy and a calendar.
//!
//! [`SlaState`] is a fold over the case's events, like [`CaseState`](crate::CaseState):
//! [`SlaState::apply`] records facts (which step runs since when, its limit and extensions,
//! its pauses, the warnings and breaches already recorded) and the deadlines are computed
//! from those facts on demand. Replaying the same events therefore always gives the same
//! clocks, whether folded one by one, all at once, or again a year later.
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
//! clock. At most one step runs at a time; a step the policy does not time has no clock.
//!
//! Each event counts at its `occurred_at`, but never earlier than the event before it:
//! time in a case's log only runs forwards, whatever a publisher's clock said.
//!
//! # Limits, suspensions and extensions
//!
//! A step's clock counts on its **measure**: plain clock time when the policy is
//! `continuous` or the step's limit is in `minutes`, working time otherwise. Its **budget**
//! is the limit converted to that measure at the start: the measure from the start to the
//! limit's end (for `working_days`, the end of business on the Nth working day after the
//! start day). Each `case.extension_granted` for the running step extends the budget by its
//! own limit, counted on from where the budget ended (`+1 working day` from a deadline at
//! 17:30 on Wednesday ends at 17:30 on Thursday; `minutes` on a working-time step are working
//! minutes). An extension for a step that is not running has no effect.
//!
//! While the case is suspended (`case.suspended` → `case.resumed`: waiting for the
//! resident, for parts, or 挂账 parked) the clock stands still. The deadline is the instant
//! at which the running time used reaches the budget; the warning is where it reaches
//! `warning_percent` of it; escalation rungs are where it reaches the budget extended by
//! each rung in turn. A suspension therefore never makes a deadline earlier, and one that
//! begins after a deadline has passed leaves that deadline where it was.
//!
//! # Timers
//!
//! A warning or breach is identified, as in [`decide`](crate::decide()), by its step
//! and deadline: [`SlaState::due`] lists only those not yet recorded, so a timer that fires,
//! records, and fires again finds nothing left to do. A deadline that moves (an extension, a
//! suspension before it) is a new deadline and gets its own warning. While the case is
//! suspended nothing new comes due: only a warning or breach that was already reached before
//! the suspension is still listed; the clock reports the remaining time instead.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::{CaseEvent, EventEnvelope, Priority, SlaStep, TimeLimit};

use super::calendar::{
    add_clock_nanos, clock_nanos_between, duration_of, BusinessCalendar, Nanos,
};
use wangge_schemas::sla::{EscalationAction, SlaClock, SlaPolicy};
use crate::CaseCommand;

mod packed;
pub use packed::UnreadableFacts;

/// The version of what stored SLA facts mean ([`SlaFacts`], [`SlaState::pack`]). Bump it when
/// the fold ([`SlaState::apply`]) or the facts change meaning, so that facts stored by
/// another version (a timer snapshot) are not carried on but folded again from the log.
pub const FACTS_VERSION: u32 = 1;

/// The clocks running for a case after `events`: at most one, since a case is at one step
/// of its loop at a time.
pub fn sla_clocks(
    events: &[EventEnvelope],
    policy: &SlaPolicy,
    calendar: &BusinessCalendar,
) -> Vec<StepClock> {
    SlaState::replay(policy, calendar, events).clocks()
}

/// The running clock of one step, computed from the case's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepClock {
    pub step: SlaStep,
    /// When the clock started: the `occurred_at` of the event that opened the step.
    pub started_at: DateTime<Utc>,
    /// The policy's limit for the step at that moment.
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

/// A step's clock that has stopped: how much of its budget it used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedStep {
    pub step: SlaStep,
    pub started_at: DateTime<Utc>,
    pub stopped_at: DateTime<Utc>,
    pub measure: SlaClock,
    #[serde(with = "duration_nanos")]
    pub budget: Duration,
    /// Running time used, suspensions excluded, in the step's measure.
    #[serde(with = "duration_nanos")]
    pub used: Duration,
    /// The deadline as it stood when the clock stopped (`None` if it stopped while
    /// suspended before reaching it).
    pub deadline: Option<DateTime<Utc>>,
}

impl FinishedStep {
    /// Whether the step ended within its limit (按期): no later than its deadline. A step
    /// that stops after hours, past a deadline that fell at the end of the working day, has
    /// used no more working time than its budget — but the breach was recorded at the
    /// deadline, and it is late. A step that stopped while suspended before its deadline was
    /// ever reached is on time.
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
    /// command (which worker, which cell) the dispatcher works out.
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

/// One run of a step: the facts its deadlines are computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRun {
    step: SlaStep,
    started_at: DateTime<Utc>,
    limit: TimeLimit,
    extensions: Vec<TimeLimit>,
    /// Finished suspensions during the run, `(from, to)`, in order, clipped to the run.
    pauses: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// A stretch of time in which the clock runs; `to: None` = still running.
#[derive(Debug, Clone, Copy)]
struct Segment {
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
}

/// The SLA facts of one case, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaState<'a> {
    policy: &'a SlaPolicy,
    calendar: &'a BusinessCalendar,
    reported: bool,
    priority: Option<Priority>,
    /// The effective time of the latest event (never decreases).
    last_event_at: Option<DateTime<Utc>>,
    suspended_since: Option<DateTime<Utc>>,
    run: Option<StepRun>,
    /// Boxed on purpose: most folds (every timer's) keep none, and a million of them hold
    /// this inline, where a box is 8 bytes and a vector 24.
    #[allow(clippy::box_collection)]
    finished: Box<Vec<FinishedStep>>,
    /// Warnings and breaches recorded, as `(step, deadline, is_breach)`, each once, in the
    /// order recorded. A list, not two sets: a case has a handful, and the fold is held for
    /// every open case.
    marks: Vec<(SlaStep, DateTime<Utc>, bool)>,
    /// Whether finished steps (and their warnings and breaches) are kept. Indicators need
    /// them; timers do not, and holding a million open cases they are most of the memory.
    keep_history: bool,
}

/// The facts of an [`SlaState`] without its policy and calendar: what a read model or a
/// snapshot stores to carry the fold on later. [`SlaState::from_facts`] joins them to a policy
/// and a calendar again; `from_facts(p, c, s.facts())` equals `s` for the `p` and `c` of `s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaFacts {
    pub reported: bool,
    pub priority: Option<Priority>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub suspended_since: Option<DateTime<Utc>>,
    pub run: Option<StepRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finished: Vec<FinishedStep>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<(SlaStep, DateTime<Utc>, bool)>,
    pub keep_history: bool,
}

impl SlaFacts {
    /// The facts of a fold that has seen no event; `keep_history` as in [`SlaState`]
    /// (indicators need finished steps, timers and boards do not).
    pub fn new(keep_history: bool) -> Self {
        Self {
            reported: false,
            priority: None,
            last_event_at: None,
            suspended_since: None,
            run: None,
            finished: Vec::new(),
            marks: Vec::new(),
            keep_history,
        }
    }
}

impl<'a> SlaState<'a> {
    /// The fold's facts, to store.
    pub fn facts(&self) -> SlaFacts {
        SlaFacts {
            reported: self.reported,
            priority: self.priority,
            last_event_at: self.last_event_at,
            suspended_since: self.suspended_since,
            run: self.run.clone(),
            finished: (*self.finished).clone(),
            marks: self.marks.clone(),
            keep_history: self.keep_history,
        }
    }

    /// A fold carried on from stored facts, under `policy` and `calendar`.
    pub fn from_facts(
        policy: &'a SlaPolicy,
        calendar: &'a BusinessCalendar,
        facts: SlaFacts,
    ) -> Self {
        Self {
            policy,
            calendar,
            reported: facts.reported,
            priority: facts.priority,
            last_event_at: facts.last_event_at,
            suspended_since: facts.suspended_since,
            run: facts.run,
            finished: Box::new(facts.finished),
            marks: facts.marks,
            keep_history: facts.keep_history,
        }
    }

    /// A fold that keeps only what the running step needs: no finished steps, and no
    /// warnings or breaches of earlier runs. Its timers are the same as the full fold's.
    pub fn without_history(mut self) -> Self {
        self.keep_history = false;
        self.finished = Box::default();
        self
    }

    /// No events yet.
    pub fn new(policy: &'a SlaPolicy, calendar: &'a BusinessCalendar) -> Self {
        Self {
            policy,
            calendar,
            reported: false,
            priority: None,
            last_event_at: None,
            suspended_since: None,
            run: None,
            finished: Box::default(),
            marks: Vec::new(),
            keep_history: true,
        }
    }

    /// Folds a case's events, oldest first.
    pub fn replay<'e>(
        policy: &'a SlaPolicy,
        calendar: &'a BusinessCalendar,
        events: impl IntoIterator<Item = &'e EventEnvelope>,
    ) -> Self {
        let mut state = Self::new(policy, calendar);
        for envelope in events {
            state.apply(envelope);
        }
        state
    }

    /// Folds one event. Total: never panics, whatever the event or its order.
    pub fn apply(&mut self, envelope: &EventEnvelope) {
        let at = match self.last_event_at {
            Some(last) => envelope.occurred_at.max(last),
            None => envelope.occurred_at,
        };
        self.last_event_at = Some(at);

        use CaseEvent as E;
        match &envelope.event {
            E::Suspended(_) => {
                self.suspended_since.get_or_insert(at);
            }
            E::Resumed(_) => self.end_suspension(at),
            E::ExtensionGranted(granted) => {
                if let Some(run) = self.run.as_mut().filter(|run| run.step == granted.step) {
                    run.extensions.push(granted.extension);
                }
            }
            E::SlaWarning(warning) => self.mark(warning.step, warning.deadline, false),
            E::SlaBreached(breach) => self.mark(breach.step, breach.deadline, true),
            // Verification stops its clock; the closing event that follows ends the case.
            E::Verified(_) => {
                if self.running_step() == Some(SlaStep::Verify) {
                    self.stop(at);
                }
            }
            E::CommentAdded(_) | E::Evaluated(_) => {}
            // Every other event moves the case to another status, which ends a suspension.
            E::Reported(_) => {
                // A second report of a case changes nothing (the first one defined it).
                if !self.reported {
                    self.reported = true;
                    self.move_on(Some(SlaStep::Accept), at);
                }
            }
            E::Accepted(accepted) => {
                self.priority = Some(accepted.priority);
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
    }

    /// The case's priority, once accepted.
    pub fn priority(&self) -> Option<Priority> {
        self.priority
    }

    pub fn is_suspended(&self) -> bool {
        self.suspended_since.is_some()
    }

    /// The step whose clock runs (or stands, while suspended).
    pub fn running_step(&self) -> Option<SlaStep> {
        self.run.as_ref().map(|run| run.step)
    }

    /// Steps whose clocks have stopped, oldest first.
    pub fn finished(&self) -> &[FinishedStep] {
        &self.finished
    }

    /// Notes a recorded warning or breach (once).
    fn mark(&mut self, step: SlaStep, deadline: DateTime<Utc>, breach: bool) {
        if !self.marks.contains(&(step, deadline, breach)) {
            self.marks.push((step, deadline, breach));
        }
    }

    /// The running clocks (at most one).
    pub fn clocks(&self) -> Vec<StepClock> {
        self.current().into_iter().collect()
    }

    /// The running clock, if a timed step is running.
    pub fn current(&self) -> Option<StepClock> {
        self.run.as_ref().map(|run| self.evaluate(run))
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
        let Some(since) = self.suspended_since.take() else {
            return;
        };
        if let Some(run) = self.run.as_mut() {
            run.pauses.push((since.max(run.started_at), at));
        }
    }

    /// Ends any suspension, stops the running step and starts `next`, if the policy times it.
    fn move_on(&mut self, next: Option<SlaStep>, at: DateTime<Utc>) {
        self.end_suspension(at);
        self.stop(at);
        let Some(step) = next else {
            return;
        };
        if let Some(limit) = self.policy.limit(step, self.priority) {
            self.run = Some(StepRun {
                step,
                started_at: at,
                limit,
                extensions: Vec::new(),
                pauses: Vec::new(),
            });
        }
    }

    fn stop(&mut self, at: DateTime<Utc>) {
        let Some(run) = self.run.take() else {
            return;
        };
        if !self.keep_history {
            // A later run has its own deadlines; the earlier marks can never match again.
            self.marks.retain(|(step, _, _)| *step != run.step);
            return;
        }
        let timeline = self.timeline(&run);
        let segments = self.segments(&run);
        let budget = timeline.budget(&run);
        let used: Nanos = segments
            .iter()
            .map(|segment| {
                let to = segment.to.unwrap_or(at).min(at);
                timeline.measure(segment.from, to).max(0)
            })
            .sum();
        self.finished.push(FinishedStep {
            step: run.step,
            started_at: run.started_at,
            stopped_at: at,
            measure: timeline.measure,
            budget: duration_of(budget),
            used: duration_of(used),
            deadline: timeline.instant_at(&segments, budget),
        });
    }

    // -- computing a clock ----------------------------------------------------------------

    fn timeline(&self, run: &StepRun) -> Timeline<'a> {
        let measure = if run.limit.unit.is_working_time() {
            SlaClock::Business
        } else {
            SlaClock::Continuous
        };
        Timeline {
            measure,
            calendar: self.calendar,
        }
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
            to: self.suspended_since.map(|since| since.max(from)),
        });
        segments
    }

    fn evaluate(&self, run: &StepRun) -> StepClock {
        let timeline = self.timeline(run);
        let segments = self.segments(run);
        let percent = self.policy.warning_percent.clamp(1, 99);
        let unpaused_deadline = timeline.unpaused_deadline(run);
        let budget = timeline.measure(run.started_at, unpaused_deadline).max(0);
        let deadline = timeline.instant_at(&segments, budget);
        let warning_at = timeline.instant_at(&segments, budget * Nanos::from(percent) / 100);

        let mut rung_end = unpaused_deadline;
        let escalations = self
            .policy
            .ladder(run.step)
            .iter()
            .zip(1..)
            .map(|(rung, level)| {
                rung_end = timeline.advance(rung_end, rung.after);
                let rung_budget = timeline.measure(run.started_at, rung_end).max(budget);
                EscalationDue {
                    level,
                    action: rung.action,
                    after: rung.after,
                    due_at: timeline.instant_at(&segments, rung_budget),
                }
            })
            .collect();

        let remaining = self.suspended_since.map(|_| {
            let used: Nanos = segments
                .iter()
                .filter_map(|segment| Some(timeline.measure(segment.from, segment.to?).max(0)))
                .sum();
            duration_of((budget - used).max(0))
        });
        let recorded = |breach: bool| {
            deadline.is_some_and(|deadline| self.marks.contains(&(run.step, deadline, breach)))
        };
        StepClock {
            step: run.step,
            started_at: run.started_at,
            limit: run.limit,
            extensions: run.extensions.clone(),
            measure: timeline.measure,
            budget: duration_of(budget),
            warning_percent: percent,
            warning_at,
            deadline,
            warning_recorded: recorded(false),
            breach_recorded: recorded(true),
            suspended_since: self.suspended_since,
            remaining,
            escalations,
        }
    }
}

/// How one step's time is counted: its measure, and how limits advance under the policy.
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

    /// Where `limit` counted from `from` ends, in the limit's own unit.
    fn advance(&self, from: DateTime<Utc>, limit: TimeLimit) -> DateTime<Utc> {
        self.calendar.add_limit(from, limit)
    }

    /// The deadline if the clock never stopped: the limit, then each extension from where
    /// the one before ended.
    fn unpaused_deadline(&self, run: &StepRun) -> DateTime<Utc> {
        run.extensions
            .iter()
            .fold(self.advance(run.started_at, run.limit), |end, extension| {
                self.advance(end, *extension)
            })
    }

    fn budget(&self, run: &StepRun) -> Nanos {
        self.measure(run.started_at, self.unpaused_deadline(run))
            .max(0)
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

/// Durations in stored facts as whole nanoseconds, exact for any span up to 292 years.
mod duration_nanos {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        duration
            .num_nanoseconds()
            .unwrap_or(i64::MAX)
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        i64::deserialize(deserializer).map(Duration::nanoseconds)
    }
}

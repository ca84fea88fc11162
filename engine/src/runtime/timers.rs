//! The SLA timers: warnings, breaches and the escalation ladder, fired from the log.
//!
//! [`TimerBook`] is the synchronous core: it folds every commit into each open case's
//! [`SlaState`] and keeps one heap of next deadlines, served by a single sleep (the Quickwit
//! scheduler idea). [`TimerService`] is the shell: it follows the log, sleeps until the next
//! deadline on its [`Clock`], and turns due timers into commands.
//!
//! Nothing about timers is stored apart from the log: on start-up the book is rebuilt by
//! reading the log from the beginning, and whatever fell due meanwhile fires at once.
//! Exactly once: every timer command is conditional on the case version the deadline was
//! computed from, carries a source named after case, step, deadline and kind, and the case
//! itself refuses a second warning or breach for the same step and deadline — across
//! restarts and across instances.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{debug, info, warn};
use wangge_schemas::{Actor, CaseEvent, CaseId, SlaStep, Source};

use crate::app::{CaseService, Clock, CommandError, CommandRequest};
use crate::domain::routing::{route, RouteRequest};
use crate::domain::sla::{CalendarSet, DueTimer, EscalationAction, PolicySet, SlaState, TimerKind};
use crate::domain::{replay, CaseCommand, DomainError};
use crate::grid::{CategoryCatalogue, SharedGrid};
use crate::log::{EventLog, LogError, StoredCommit};
use crate::runtime::Ownership;

/// The name timer commands are written under (actor id and source system).
pub const SLA_TIMER: &str = "wangge-sla-timer";

/// Policies and calendars live as long as the process: cases borrow them.
pub struct SlaReference {
    pub policies: &'static PolicySet,
    pub calendars: &'static CalendarSet,
}

impl SlaReference {
    /// The bundled policies and calendars (`deploy/sla/`).
    pub fn bundled() -> Self {
        Self::new(PolicySet::bundled(), CalendarSet::bundled())
    }

    /// Keeps the sets for the rest of the process (they are loaded once at start-up).
    pub fn new(policies: PolicySet, calendars: CalendarSet) -> Self {
        Self {
            policies: Box::leak(Box::new(policies)),
            calendars: Box::leak(Box::new(calendars)),
        }
    }
}

struct OpenCase {
    sla: SlaState<'static>,
    /// The case's version (sequence of its last event) the timers were computed from.
    /// 32 bits each: a case has far fewer events than that, and this is held per open case.
    version: u32,
    /// Bumped at every change, so heap entries of older schedules are skipped.
    generation: u32,
}

/// A timer that fell due, with the case version it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerJob {
    pub case_id: CaseId,
    pub version: u64,
    pub timer: DueTimer,
}

/// Every open case's SLA clocks and the heap of their next deadlines.
pub struct TimerBook {
    reference: SlaReference,
    /// The live grid; each decision reads one snapshot of it.
    grid: SharedGrid,
    categories: Arc<CategoryCatalogue>,
    /// Boxed: the table grows in powers of two, and empty slots of a large inline value
    /// would cost more than the cases themselves.
    open: HashMap<CaseId, Box<OpenCase>>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, CaseId, u32)>>,
    /// Cases to look at again at a wall-clock instant: handed out, or owned elsewhere.
    retry: Vec<(std::time::Instant, CaseId, u32)>,
}

/// How long a case whose timers were handed out waits before it is looked at again.
pub const RETRY_AFTER: StdDuration = StdDuration::from_secs(1);

impl TimerBook {
    pub fn new(
        reference: SlaReference,
        grid: impl Into<SharedGrid>,
        categories: Arc<CategoryCatalogue>,
    ) -> Self {
        Self {
            reference,
            grid: grid.into(),
            categories,
            open: HashMap::new(),
            heap: BinaryHeap::new(),
            retry: Vec::new(),
        }
    }

    /// Open cases with a clock.
    pub fn open_cases(&self) -> usize {
        self.open.len()
    }

    /// The earliest time anything may fall due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Folds one commit (of any case, in log order) and reschedules its case.
    pub fn observe(&mut self, commit: &StoredCommit) {
        let case_id = commit.case_id;
        for event in &commit.events {
            if let CaseEvent::Reported(reported) = &event.event {
                if !self.open.contains_key(&case_id) {
                    let calendar = self
                        .grid
                        .load()
                        .calendar_of(&event.location.district)
                        .and_then(|id| self.reference.calendars.get(id))
                        .unwrap_or_else(|| self.reference.calendars.default_calendar());
                    let policy = self
                        .categories
                        .get(&reported.reported_category)
                        .and_then(|category| self.reference.policies.get(category.sla_policy()))
                        .unwrap_or_else(|| {
                            self.reference
                                .policies
                                .for_category(&reported.reported_category)
                        });
                    self.open.insert(
                        case_id,
                        Box::new(OpenCase {
                            sla: SlaState::new(policy, calendar).without_history(),
                            version: 0,
                            generation: 0,
                        }),
                    );
                }
            }
            let Some(case) = self.open.get_mut(&case_id) else {
                continue;
            };
            case.sla.apply(event);
            case.version = u32::try_from(event.sequence).unwrap_or(u32::MAX);
        }
        let Some(case) = self.open.get_mut(&case_id) else {
            return;
        };
        if case.sla.current().is_none() && is_ended(commit) {
            self.open.remove(&case_id);
            return;
        }
        case.generation = case.generation.wrapping_add(1);
        if let Some(first) = case.sla.due().first() {
            self.heap
                .push(Reverse((first.at, case_id, case.generation)));
        }
    }

    /// Takes every timer due by `now` for the cases `owns` accepts.
    ///
    /// A case whose timers were handed out, or that belongs to a partition held elsewhere,
    /// is looked at again after [`RETRY_AFTER`] of real time — not clock time, so a
    /// simulated clock standing still cannot strand it — until a commit reschedules it: the
    /// command may not land (a conflict, the log unavailable), the owner may go away.
    pub fn take_due(&mut self, now: DateTime<Utc>, owns: impl Fn(CaseId) -> bool) -> Vec<TimerJob> {
        let mut candidates = Vec::new();
        let wall = std::time::Instant::now();
        let (ready, waiting): (Vec<_>, Vec<_>) =
            self.retry.drain(..).partition(|(at, _, _)| *at <= wall);
        self.retry = waiting;
        candidates.extend(
            ready
                .into_iter()
                .map(|(_, case_id, generation)| (case_id, generation)),
        );
        while let Some(Reverse((at, case_id, generation))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            candidates.push((case_id, generation));
        }
        let mut jobs = Vec::new();
        for (case_id, generation) in candidates {
            let Some(case) = self.open.get(&case_id) else {
                continue;
            };
            if case.generation != generation {
                continue;
            }
            if !owns(case_id) {
                self.retry.push((wall + RETRY_AFTER, case_id, generation));
                continue;
            }
            let due = case.sla.due_by(now);
            if due.is_empty() {
                if let Some(next) = case.sla.due().into_iter().map(|t| t.at).find(|&t| t > now) {
                    self.heap.push(Reverse((next, case_id, generation)));
                }
                continue;
            }
            jobs.extend(due.into_iter().map(|timer| TimerJob {
                case_id,
                version: u64::from(case.version),
                timer,
            }));
            self.retry.push((wall + RETRY_AFTER, case_id, generation));
        }
        jobs
    }

    /// The command a due timer turns into, or `None` when there is nothing to do after all.
    pub fn command_for(
        &self,
        job: &TimerJob,
        history: &[wangge_schemas::EventEnvelope],
        load: &crate::domain::routing::WorkerLoad,
    ) -> Option<CaseCommand> {
        let state = replay(history);
        if let Some(command) = job.timer.command() {
            return Some(command);
        }
        let TimerKind::Escalation { action, .. } = job.timer.kind else {
            return None;
        };
        let reason = format!(
            "{} overdue since {}",
            step_name(job.timer.step),
            job.timer.deadline.to_rfc3339()
        );
        let tier = state.tier?;
        let cell = state.cell.clone()?;
        if action == EscalationAction::ReassignInCell {
            // Another worker of the same cell, one who has not had the task here yet; if the
            // cell has nobody else, move up instead.
            let category = self.categories.get(state.category.as_deref()?)?;
            let exclude = holders_at(history, &cell);
            let request = RouteRequest {
                location: state.location.as_ref()?,
                category,
                start_tier: Some(tier),
                exclude: &exclude,
                cursor: job.version,
            };
            if let Ok(decision) = route(&request, &self.grid.load(), load) {
                if decision.cell == cell && !decision.fallback {
                    return Some(CaseCommand::Reassign {
                        to_worker: decision.assignee,
                        tier: decision.tier,
                        cell: decision.cell,
                        reason,
                    });
                }
            }
        }
        let to_tier = tier.parent()?;
        let grid = self.grid.load();
        let parent = grid.parent(&cell)?;
        debug_assert!(to_tier > tier);
        Some(CaseCommand::Escalate {
            to_tier,
            cell: parent.code.clone(),
            reason,
        })
    }
}

/// Everyone who has held the case in `cell` (dispatched to them or reassigned to them).
fn holders_at(history: &[wangge_schemas::EventEnvelope], cell: &str) -> Vec<String> {
    let mut holders = Vec::new();
    for event in history {
        let holder = match &event.event {
            CaseEvent::Dispatched(d) if d.cell == cell => Some(&d.assignee),
            CaseEvent::Reassigned(r) if r.cell == cell => Some(&r.to_worker),
            _ => None,
        };
        if let Some(holder) = holder {
            if !holders.contains(holder) {
                holders.push(holder.clone());
            }
        }
    }
    holders
}

fn is_ended(commit: &StoredCommit) -> bool {
    commit.events.last().is_some_and(|e| {
        matches!(
            e.event,
            CaseEvent::Closed(_)
                | CaseEvent::Rejected(_)
                | CaseEvent::Merged(_)
                | CaseEvent::Voided(_)
        )
    })
}

fn step_name(step: SlaStep) -> &'static str {
    match step {
        SlaStep::Accept => "acceptance",
        SlaStep::Dispatch => "dispatch",
        SlaStep::Acknowledge => "acknowledgement",
        SlaStep::Resolve => "resolution",
        SlaStep::Verify => "verification",
    }
}

fn kind_name(kind: TimerKind) -> String {
    match kind {
        TimerKind::Warning { .. } => "warning".to_owned(),
        TimerKind::Breach => "breach".to_owned(),
        TimerKind::Escalation { level, .. } => format!("escalation-{level}"),
    }
}

/// What became of one timer job.
#[derive(Debug, Clone, PartialEq)]
pub enum Fired {
    /// The command was written.
    Written(Box<CaseCommand>),
    /// Already recorded, or the case moved on: nothing written, nothing lost.
    Skipped(&'static str),
}

/// The shell around a [`TimerBook`]: follows the log and fires due timers on a clock.
pub struct TimerService<L> {
    cases: Arc<CaseService<L>>,
    book: tokio::sync::Mutex<TimerBook>,
    loads: std::sync::Mutex<crate::runtime::loads::WorkerLoads>,
}

impl<L: EventLog> TimerService<L> {
    pub fn new(cases: Arc<CaseService<L>>, book: TimerBook) -> Self {
        Self {
            cases,
            book: tokio::sync::Mutex::new(book),
            loads: Default::default(),
        }
    }

    /// Folds a commit (for tests and the follower).
    pub async fn observe(&self, commit: &StoredCommit) {
        {
            let mut loads = self.loads.lock().unwrap_or_else(|p| p.into_inner());
            for event in &commit.events {
                loads.apply(event);
            }
        }
        self.book.lock().await.observe(commit);
    }

    pub async fn open_cases(&self) -> usize {
        self.book.lock().await.open_cases()
    }

    pub async fn next_due(&self) -> Option<DateTime<Utc>> {
        self.book.lock().await.next_due()
    }

    /// Fires everything due at `now` for the owned cases; returns what happened to each.
    pub async fn fire_due(
        &self,
        now: DateTime<Utc>,
        ownership: &Ownership,
    ) -> Vec<(TimerJob, Fired)> {
        let jobs = self
            .book
            .lock()
            .await
            .take_due(now, |case_id| ownership.owns(case_id));
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            let fired = match self.fire(&job).await {
                Ok(fired) => fired,
                Err(error) => {
                    warn!(case_id = %job.case_id, %error, "timer command failed; will retry");
                    Fired::Skipped("failed")
                }
            };
            results.push((job, fired));
        }
        results
    }

    async fn fire(&self, job: &TimerJob) -> Result<Fired, CommandError> {
        let history = self.cases.log().load(job.case_id).await?;
        let state = replay(&history.events);
        if state.version != job.version {
            return Ok(Fired::Skipped("case moved on"));
        }
        let load = self
            .loads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_worker()
            .clone();
        let Some(command) = self
            .book
            .lock()
            .await
            .command_for(job, &history.events, &load)
        else {
            return Ok(Fired::Skipped("nothing to do"));
        };
        let request = CommandRequest {
            case_id: job.case_id,
            command: command.clone(),
            actor: Actor::system(SLA_TIMER),
            source: Source {
                system: SLA_TIMER.to_owned(),
                message_id: format!(
                    "{}:{:?}:{}:{}",
                    job.case_id,
                    job.timer.step,
                    job.timer.deadline.timestamp_millis(),
                    kind_name(job.timer.kind)
                ),
            },
            occurred_at: Some(job.timer.at),
            correlation_id: None,
            causation_id: history.events.last().map(|e| e.event_id),
        };
        match self.cases.handle_if_unchanged(request, job.version).await {
            Ok(outcome) if outcome.duplicate => Ok(Fired::Skipped("already recorded")),
            Ok(_) => {
                info!(case_id = %job.case_id, step = ?job.timer.step, kind = %kind_name(job.timer.kind), deadline = %job.timer.deadline, "sla timer fired");
                Ok(Fired::Written(Box::new(command)))
            }
            Err(CommandError::Stale { .. }) => Ok(Fired::Skipped("case moved on")),
            Err(CommandError::Domain(DomainError::AlreadyRecorded { .. })) => {
                Ok(Fired::Skipped("already recorded"))
            }
            Err(error) => Err(error),
        }
    }

    /// Rebuilds the book from the log, then follows it and fires timers as they fall due on
    /// `clock`, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        clock: Arc<dyn Clock>,
        ownership: Ownership,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), LogError> {
        let mut commits = self.cases.log().read_from(1);
        tokio::pin!(shutdown);
        loop {
            let now = clock.now();
            let wait = match self.next_due().await {
                Some(at) if at <= now => StdDuration::ZERO,
                Some(at) => (at - now)
                    .to_std()
                    .unwrap_or(StdDuration::ZERO)
                    .min(StdDuration::from_millis(250)),
                None => StdDuration::from_millis(250),
            };
            tokio::select! {
                commit = commits.next() => match commit {
                    Some(Ok(commit)) => self.observe(&commit).await,
                    Some(Err(error)) => warn!(%error, "timer service could not read a commit"),
                    None => break,
                },
                _ = tokio::time::sleep(wait) => {
                    let fired = self.fire_due(clock.now(), &ownership).await;
                    if !fired.is_empty() {
                        debug!(count = fired.len(), "timers fired");
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        Ok(())
    }
}

//! The SLA timers: warnings, breaches and the escalation ladder, fired from the log.
//!
//! [`TimerBook`] is the synchronous core: it folds every commit into each open case's
//! [`SlaState`] (held packed, see [`SlaState::pack`]) and keeps one heap of next deadlines,
//! served by a single sleep (the Quickwit scheduler idea). [`TimerService`] is the shell: it
//! follows the log, sleeps until the next deadline on its [`Clock`], and turns due timers
//! into commands.
//!
//! On start-up the book is rebuilt from the log: from a snapshot of the book and the tail of
//! the log after it ([`snapshot`]), or from the beginning; whatever fell due meanwhile fires
//! at once. Exactly once: every timer command is conditional on the case version the
//! deadline was computed from, carries a source named after case, step, deadline and kind,
//! and the case itself refuses a second warning or breach for the same step and deadline —
//! across restarts and across instances.

pub mod snapshot;
mod table;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{debug, info, warn};
use wangge_schemas::{Actor, CaseEvent, CaseId, Source};

use crate::app::{CaseService, Clock, CommandError, CommandRequest};
use crate::domain::escalation;
use crate::domain::sla::{legacy, unpack_facts, DueTimer, SlaFacts, SlaState, TimerKind};
use crate::domain::{replay, CaseCommand, DomainError};
use crate::grid::{CategoryCatalogue, SharedGrid};
use crate::log::{EventLog, LogError, LogPosition, StoredCommit};
use crate::runtime::Ownership;

pub use snapshot::{SnapshotConfig, SnapshotError, SnapshotStore, SnapshotStoreConfig};

/// The name timer commands are written under (actor id and source system).
pub const SLA_TIMER: &str = "wangge-sla-timer";

/// What the book holds for one open case: 40 bytes beside its id, and its packed facts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenCase {
    /// The case's SLA fold without finished-step history, packed ([`SlaState::pack`]): its
    /// running step's recorded clock, which the timers go by.
    facts: Box<[u8]>,
    /// When the case's live heap entry falls due; `None` while it has none (its timers were
    /// handed out, or nothing is due).
    scheduled: Option<DateTime<Utc>>,
    /// The case's version (sequence of its last event) the timers were computed from.
    /// 32 bits: a case has far fewer events than that, and this is held per open case.
    version: u32,
    /// The release 0.1 policy of its reported category ([`legacy::policy_index`]): the
    /// terms its clocks are computed in only if its log records none (a log written before
    /// clocks were recorded).
    legacy: u8,
}

/// A timer that fell due, with the case version it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerJob {
    pub case_id: CaseId,
    pub version: u64,
    pub timer: DueTimer,
}

/// One open case as the book sees it, for comparing books and for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct BookEntry {
    pub case_id: CaseId,
    pub version: u64,
    /// The policy of the running step's clock.
    pub policy: String,
    /// The calendar of the case's latest recorded clock (`None`: none recorded).
    pub calendar: Option<String>,
    pub facts: crate::domain::sla::SlaFacts,
    /// The first timer still due for the running step.
    pub next_due: Option<DateTime<Utc>>,
}

/// Every open case's SLA clocks and the heap of their next deadlines.
///
/// Each open case has at most one live heap entry: a commit that moves its next deadline
/// later leaves the earlier entry in place (when it pops, the case is looked at and
/// scheduled again), one that moves it earlier adds an entry and the later one becomes
/// stale. An entry is live while it matches the case's `scheduled` instant.
pub struct TimerBook {
    /// The live grid; each decision reads one snapshot of it.
    grid: SharedGrid,
    categories: Arc<CategoryCatalogue>,
    /// Records in fixed-size chunks and an index of positions beside them ([`table`]).
    open: table::CaseTable<OpenCase>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, CaseId)>>,
    /// Cases to look at again at a wall-clock instant, with the version they were at:
    /// handed out, or owned elsewhere.
    retry: Vec<(std::time::Instant, CaseId, u32)>,
    /// The log position of the last commit folded in.
    position: LogPosition,
}

/// How long a case whose timers were handed out waits before it is looked at again.
pub const RETRY_AFTER: StdDuration = StdDuration::from_secs(1);

impl TimerBook {
    /// A book that acts on `grid` (escalation: who else is in the cell, which cell is above)
    /// with the category catalogue.
    pub fn new(grid: impl Into<SharedGrid>, categories: Arc<CategoryCatalogue>) -> Self {
        Self {
            grid: grid.into(),
            categories,
            open: table::CaseTable::default(),
            heap: BinaryHeap::new(),
            retry: Vec::new(),
            position: 0,
        }
    }

    /// Open cases with a clock.
    pub fn open_cases(&self) -> usize {
        self.open.len()
    }

    /// Heap entries, live and stale (at most one live entry per open case).
    pub fn heap_entries(&self) -> usize {
        self.heap.len()
    }

    /// Forgets every case: back to a book that has folded nothing.
    fn clear(&mut self) {
        self.open = table::CaseTable::default();
        self.heap = BinaryHeap::new();
        self.retry.clear();
        self.position = 0;
    }

    /// The log position of the last commit folded in (0 before any).
    pub fn position(&self) -> LogPosition {
        self.position
    }

    /// The earliest time anything may fall due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The open cases (with their versions) whose recorded clock `wanted` picks: the cases
    /// whose deadlines reference data that changed may have moved.
    pub fn cases_where(&self, wanted: impl Fn(&SlaFacts) -> bool) -> Vec<(CaseId, u64)> {
        self.open
            .iter()
            .filter_map(|(case_id, case)| {
                let facts = unpack_facts(&case.facts).ok()?;
                wanted(&facts).then_some((*case_id, u64::from(case.version)))
            })
            .collect()
    }

    /// Every open case with its facts, ordered by case id: two books that agree on this
    /// fire the same timers.
    pub fn entries(&self) -> Vec<BookEntry> {
        let mut entries: Vec<BookEntry> = self
            .open
            .iter()
            .map(|(case_id, case)| {
                let sla = self.fold_of(case);
                BookEntry {
                    case_id: *case_id,
                    version: u64::from(case.version),
                    policy: sla.current().map(|clock| clock.policy).unwrap_or_default(),
                    calendar: sla.calendar().map(|calendar| calendar.id.clone()),
                    facts: sla.facts().clone(),
                    next_due: sla.due().first().map(|timer| timer.at),
                }
            })
            .collect();
        entries.sort_by_key(|entry| entry.case_id);
        entries
    }

    fn fold_of(&self, case: &OpenCase) -> SlaState<'static> {
        SlaState::unpack(Some(legacy::terms_at(case.legacy)), &case.facts)
            .expect("the book holds only facts it packed or checked when restoring a snapshot")
    }

    /// Folds one commit (of any case, in log order) and reschedules its case. A commit at
    /// or before the book's position is already in it and changes nothing.
    pub fn observe(&mut self, commit: &StoredCommit) {
        self.observe_after(commit, &[]);
    }

    /// Whether the book holds a case's clocks (it lets a case go when the case ends).
    pub fn holds(&self, case_id: CaseId) -> bool {
        self.open.get(&case_id).is_some()
    }

    /// Whether a commit brings back a case the book let go: a reopening. The shell then
    /// loads the case's earlier events and hands them to [`TimerBook::observe_after`].
    pub fn needs_history(&self, commit: &StoredCommit) -> bool {
        commit.position > self.position
            && !self.holds(commit.case_id)
            && commit
                .events
                .iter()
                .any(|event| matches!(event.event, CaseEvent::Reopened(_)))
    }

    /// [`TimerBook::observe`] for a case the book does not hold, whose events before the
    /// commit are `earlier` (ignored for a case it holds): the case's clocks are folded from
    /// its whole history, so a reopened case runs its dispatch clock again.
    pub fn observe_after(
        &mut self,
        commit: &StoredCommit,
        earlier: &[wangge_schemas::EventEnvelope],
    ) {
        if commit.position <= self.position {
            return;
        }
        self.position = commit.position;
        self.compact_heap();
        let case_id = commit.case_id;
        let mut folded = self
            .open
            .get(&case_id)
            .map(|case| (self.fold_of(case), case.legacy));
        let first_of_commit = commit.events.first().map_or(0, |e| e.sequence);
        let held = folded.is_some();
        let earlier = earlier
            .iter()
            .filter(move |event| !held && event.sequence < first_of_commit);
        let mut version = None;
        for event in earlier.chain(&commit.events) {
            if let CaseEvent::Reported(reported) = &event.event {
                if folded.is_none() {
                    let legacy = legacy::policy_index(&reported.reported_category);
                    let sla = SlaState::new(Some(legacy::terms_at(legacy))).without_history();
                    folded = Some((sla, legacy));
                }
            }
            let Some((sla, _)) = folded.as_mut() else {
                continue;
            };
            sla.apply(event);
            version = Some(u32::try_from(event.sequence).unwrap_or(u32::MAX));
        }
        let Some((sla, legacy)) = folded else {
            return;
        };
        if is_ended(commit) && sla.current().is_none() {
            self.open.remove(&case_id);
            return;
        }
        let next = sla.due().first().map(|timer| timer.at);
        let case = self.open.get_or_insert_with(case_id, || OpenCase {
            facts: Box::default(),
            scheduled: None,
            version: 0,
            legacy,
        });
        case.facts = sla.pack();
        if let Some(version) = version {
            case.version = version;
        }
        schedule(&mut self.heap, case_id, case, next);
    }

    /// Rebuilds the heap from the live entries once stale ones (of closed cases, of
    /// deadlines that moved earlier) outnumber them.
    fn compact_heap(&mut self) {
        if self.heap.len() <= 2 * self.open.len() + 1024 {
            return;
        }
        let live: Vec<_> = self
            .open
            .iter()
            .filter_map(|(case_id, case)| case.scheduled.map(|at| Reverse((at, *case_id))))
            .collect();
        self.heap = BinaryHeap::from(live);
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
                .map(|(_, case_id, version)| (case_id, version)),
        );
        while let Some(Reverse((at, case_id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(case) = self.open.get_mut(&case_id) else {
                continue; // closed since
            };
            if case.scheduled != Some(at) {
                continue; // stale: the case was scheduled again since
            }
            case.scheduled = None;
            candidates.push((case_id, case.version));
        }
        let mut jobs = Vec::new();
        for (case_id, version) in candidates {
            let Some(case) = self.open.get(&case_id) else {
                continue;
            };
            if case.version != version {
                continue; // a commit rescheduled it
            }
            if !owns(case_id) {
                self.retry.push((wall + RETRY_AFTER, case_id, version));
                continue;
            }
            let sla = self.fold_of(case);
            let due = sla.due_by(now);
            if due.is_empty() {
                let next = sla.due().into_iter().map(|t| t.at).find(|&t| t > now);
                if let Some(case) = self.open.get_mut(&case_id) {
                    schedule(&mut self.heap, case_id, case, next);
                }
                continue;
            }
            jobs.extend(due.into_iter().map(|timer| TimerJob {
                case_id,
                version: u64::from(version),
                timer,
            }));
            self.retry.push((wall + RETRY_AFTER, case_id, version));
        }
        jobs
    }

    /// A timer the case cannot act on (an escalation rung with nowhere to go) is settled:
    /// the case is not looked at again for it, only for a later timer or a new commit.
    pub fn settle(&mut self, job: &TimerJob) {
        let Some(case) = self.open.get(&job.case_id) else {
            return;
        };
        if u64::from(case.version) != job.version {
            return; // a commit rescheduled it already
        }
        let sla = self.fold_of(case);
        let next = sla
            .due()
            .into_iter()
            .map(|timer| timer.at)
            .find(|&at| at > job.timer.at);
        self.retry.retain(|(_, case_id, _)| *case_id != job.case_id);
        if let Some(case) = self.open.get_mut(&job.case_id) {
            schedule(&mut self.heap, job.case_id, case, next);
        }
    }

    /// The command a due timer turns into, or `None` when there is nothing to do after all
    /// (the escalation choice itself is pure: [`wangge_domain::escalation`]).
    pub fn command_for(
        &self,
        job: &TimerJob,
        history: &[wangge_schemas::EventEnvelope],
        load: &crate::domain::routing::WorkerLoad,
    ) -> Option<CaseCommand> {
        escalation::command_for_timer(
            &job.timer,
            job.version,
            history,
            &self.grid.load(),
            &self.categories,
            load,
        )
    }
}

/// Gives a case a live heap entry for `next`, unless it has one at or before it already.
fn schedule(
    heap: &mut BinaryHeap<Reverse<(DateTime<Utc>, CaseId)>>,
    case_id: CaseId,
    case: &mut OpenCase,
    next: Option<DateTime<Utc>>,
) {
    let Some(next) = next else {
        return; // an entry it may still have pops, finds nothing due and lapses
    };
    if case.scheduled.is_some_and(|at| at <= next) {
        return;
    }
    case.scheduled = Some(next);
    heap.push(Reverse((next, case_id)));
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

/// The shell around a [`TimerBook`]: follows the log and fires due timers on a clock, and
/// keeps the book's snapshot if it has a [`SnapshotStore`].
pub struct TimerService<L> {
    cases: Arc<CaseService<L>>,
    book: tokio::sync::Mutex<TimerBook>,
    loads: std::sync::Mutex<crate::runtime::loads::WorkerLoads>,
    snapshots: Option<(SnapshotStore, SnapshotConfig)>,
}

/// How a [`TimerService`] came to hold its book on start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebuilt {
    /// From a snapshot at `position`, holding `cases` open cases; the tail follows.
    FromSnapshot { position: LogPosition, cases: u64 },
    /// From the beginning of the log (no snapshot store, no snapshot, or one that does not
    /// apply or cannot be read).
    FromStart,
}

impl<L: EventLog> TimerService<L> {
    pub fn new(cases: Arc<CaseService<L>>, book: TimerBook) -> Self {
        Self {
            cases,
            book: tokio::sync::Mutex::new(book),
            loads: Default::default(),
            snapshots: None,
        }
    }

    /// Restores the book from `store` on start-up, and keeps its snapshot there while it
    /// holds partition 0.
    pub fn with_snapshots(mut self, store: SnapshotStore, config: SnapshotConfig) -> Self {
        self.snapshots = Some((store, config));
        self
    }

    fn loads(&self) -> std::sync::MutexGuard<'_, crate::runtime::loads::WorkerLoads> {
        self.loads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds a commit (for tests and the follower). A commit the book holds already (at or
    /// before its position) changes nothing.
    pub async fn observe(&self, commit: &StoredCommit) {
        // A reopened case the book had let go: its clocks come from its whole history,
        // read before the book is locked (the log outlives any one commit's fold).
        let needs_history = self.book.lock().await.needs_history(commit);
        let earlier = if needs_history {
            match self.cases.log().load(commit.case_id).await {
                Ok(history) => history.events,
                Err(error) => {
                    warn!(case_id = %commit.case_id, %error, "cannot load a reopened case's history; its timers start from the reopening");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let mut book = self.book.lock().await;
        if commit.position <= book.position() {
            return;
        }
        {
            let mut loads = self.loads();
            for event in &commit.events {
                loads.apply(event);
            }
        }
        book.observe_after(commit, &earlier);
    }

    pub async fn open_cases(&self) -> usize {
        self.book.lock().await.open_cases()
    }

    pub async fn next_due(&self) -> Option<DateTime<Utc>> {
        self.book.lock().await.next_due()
    }

    /// The log position of the last commit folded in.
    pub async fn position(&self) -> LogPosition {
        self.book.lock().await.position()
    }

    /// The open cases `wanted` picks (see [`TimerBook::cases_where`]).
    pub async fn cases_where(&self, wanted: impl Fn(&SlaFacts) -> bool) -> Vec<(CaseId, u64)> {
        self.book.lock().await.cases_where(wanted)
    }

    /// Every open case with its facts (see [`TimerBook::entries`]).
    pub async fn entries(&self) -> Vec<BookEntry> {
        self.book.lock().await.entries()
    }

    /// Fills an empty book from the stored snapshot, if there is one that applies. Whatever
    /// goes wrong is logged and leaves the book empty, to be rebuilt from the whole log.
    pub async fn restore(&self) -> Rebuilt {
        let Some((store, config)) = &self.snapshots else {
            return Rebuilt::FromStart;
        };
        let started = std::time::Instant::now();
        let bytes = match tokio::time::timeout(config.read_timeout, store.load()).await {
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Ok(None)) => {
                info!("no timer snapshot yet; rebuilding the timer book from the whole log");
                return Rebuilt::FromStart;
            }
            Ok(Err(error)) => {
                warn!(%error, "timer snapshot ignored; rebuilding the timer book from the whole log");
                return Rebuilt::FromStart;
            }
            Err(_) => {
                warn!(timeout = ?config.read_timeout, "timer snapshot took too long to read; rebuilding the timer book from the whole log");
                return Rebuilt::FromStart;
            }
        };
        let size = bytes.len();
        let mut book = self.book.lock().await;
        // Decoding a million cases takes a moment: let the runtime move other tasks away.
        let restored = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| book.restore(&bytes))
            }
            _ => book.restore(&bytes),
        };
        // A snapshot ahead of the log is of another log (a store wiped and begun again).
        let head = self.cases.log().head().await.ok();
        let restored = restored.and_then(|(header, loads)| match head {
            Some(head) if header.position > head => Err(SnapshotError::Mismatch {
                reason: format!(
                    "it covers the log up to position {}, the log ends at {head}",
                    header.position
                ),
            }),
            _ => Ok((header, loads)),
        });
        match restored {
            Ok((header, loads)) => {
                *self.loads() = loads;
                info!(
                    position = header.position,
                    cases = header.cases,
                    bytes = size,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "timer book restored from its snapshot; reading the log after it"
                );
                Rebuilt::FromSnapshot {
                    position: header.position,
                    cases: header.cases,
                }
            }
            Err(error) => {
                warn!(%error, "timer snapshot ignored; rebuilding the timer book from the whole log");
                book.clear();
                Rebuilt::FromStart
            }
        }
    }

    /// Writes the book's snapshot now (whoever holds partition 0 does this on its own in
    /// [`run`](Self::run)); returns the position it covers. Holds the book only while it
    /// copies the records out.
    pub async fn write_snapshot(&self) -> Result<LogPosition, SnapshotError> {
        let Some((store, _)) = &self.snapshots else {
            return Err(SnapshotError::Unavailable(
                "no snapshot store configured".into(),
            ));
        };
        let started = std::time::Instant::now();
        let taken = {
            let book = self.book.lock().await;
            let loads = self.loads();
            book.take_snapshot(&loads)
        };
        let locked_ms = started.elapsed().as_millis() as u64;
        let (position, cases) = (taken.position(), taken.cases());
        let bytes = tokio::task::spawn_blocking(move || taken.finish())
            .await
            .map_err(|error| SnapshotError::Unavailable(error.to_string()))?;
        store.save(&bytes).await?;
        info!(
            position,
            cases,
            bytes = bytes.len(),
            locked_ms,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "timer snapshot written"
        );
        Ok(position)
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
        let command = self
            .book
            .lock()
            .await
            .command_for(job, &history.events, &load);
        let Some(command) = command else {
            info!(case_id = %job.case_id, step = ?job.timer.step, kind = %kind_name(job.timer.kind), "sla timer has nothing to do; settled until a later timer or commit");
            self.book.lock().await.settle(job);
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

    /// Rebuilds the book (from the snapshot and the log after it, or from the whole log),
    /// then follows the log and fires timers as they fall due on `clock`, until `shutdown`.
    /// With a snapshot store, the holder of partition 0 replaces the snapshot every
    /// [`SnapshotConfig::every`] once caught up, and once more when shut down cleanly.
    pub async fn run(
        self: Arc<Self>,
        clock: Arc<dyn Clock>,
        ownership: Ownership,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), LogError> {
        // Snapshots are written only once the book has caught up with the log as it was at
        // start-up (a book still catching up would write an older snapshot over a newer one).
        let mut head_at_start = match self.cases.log().head().await {
            Ok(head) => Some(head),
            Err(error) => {
                warn!(%error, "timer service could not read the head of the log; will ask again");
                None
            }
        };
        // A book filled already (restored by the caller, or fed commits) carries on.
        let from = match self.position().await {
            0 => match self.restore().await {
                Rebuilt::FromSnapshot { position, .. } => position + 1,
                Rebuilt::FromStart => 1,
            },
            position => position + 1,
        };
        let mut written = from - 1;
        let mut commits = self.cases.log().read_from(from);
        let every = self
            .snapshots
            .as_ref()
            .map_or(StdDuration::from_secs(3600), |(_, config)| config.every);
        let mut snapshot_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        snapshot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut writing: Option<tokio::task::JoinHandle<Result<LogPosition, SnapshotError>>> = None;
        let mut writer = false;
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
                    // Remembered, because leases are handed back as shutdown begins.
                    writer = ownership.partitions().contains(&0);
                    let fired = self.fire_due(clock.now(), &ownership).await;
                    if !fired.is_empty() {
                        debug!(count = fired.len(), "timers fired");
                    }
                }
                _ = snapshot_tick.tick(), if self.snapshots.is_some() => {
                    writer = ownership.partitions().contains(&0);
                    if let Some(done) = writing.take_if(|task| task.is_finished()) {
                        match done.await {
                            Ok(Ok(position)) => written = written.max(position),
                            Ok(Err(error)) => warn!(%error, "timer snapshot not written"),
                            Err(error) => warn!(%error, "timer snapshot writer failed"),
                        }
                    }
                    if head_at_start.is_none() {
                        head_at_start = self.cases.log().head().await.ok();
                    }
                    let position = self.position().await;
                    let caught_up = head_at_start.is_some_and(|head| position >= head);
                    if writer && writing.is_none() && caught_up && position > written {
                        let service = self.clone();
                        writing = Some(tokio::spawn(async move { service.write_snapshot().await }));
                    }
                }
                _ = &mut shutdown => {
                    writer = ownership.partitions().contains(&0) || writer;
                    break;
                }
            }
        }
        if let Some(task) = writing.take() {
            if let Ok(Ok(position)) = task.await {
                written = written.max(position);
            }
        }
        let position = self.position().await;
        let caught_up = head_at_start.is_some_and(|head| position >= head);
        if self.snapshots.is_some() && writer && caught_up && position > written {
            if let Err(error) = self.write_snapshot().await {
                warn!(%error, "timer snapshot not written at shutdown");
            }
        }
        Ok(())
    }
}

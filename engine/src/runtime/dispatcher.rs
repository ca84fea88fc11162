//! The dispatcher: accepts new reports (立案) and sends every case that waits for dispatch to
//! the right worker (派遣), following the routing policy.
//!
//! It reads the event log in order. Every commit updates the open load of each worker; a
//! commit that leaves a case of one of this instance's partitions needing the dispatcher
//! (reported, accepted, declined, escalated, reopened) makes it act on that case: decide on
//! the case's history, and write a command that is conditional on the exact history it
//! decided on. If the case moved on meanwhile, nothing is written and it reads the case and
//! looks again. Commands carry a source derived from the case and version, so two instances
//! acting on the same case at once (a lease hand-over) still write each fact once.
//!
//! What it acts on is as fresh as the log proves it, never read twice without need:
//! - a case's first commit (a report) is the case's whole history: the dispatcher decides on
//!   it as read from the log, without loading the case;
//! - after writing a command it goes on from the history it has just extended (accept, then
//!   dispatch, with no read in between);
//! - one case is acted on by one task at a time, and the commits the dispatcher wrote itself,
//!   when the log reader reaches them, do not make it look at the case again.
//!
//! The conditional append on the case's last position is what makes this safe: a history
//! that is not the whole case any more can never be written after.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tracing::{debug, info, warn};
use wangge_schemas::{Actor, CaseEvent, CaseId, Source};

use crate::app::{CaseService, CommandError, CommandRequest};
use crate::domain::routing::{route, RouteDecision, RouteRequest};
use crate::domain::seal::next_link_after;
use crate::domain::{CaseCommand, CaseState, CaseStatus};
use crate::grid::{CategoryCatalogue, SharedGrid};
use crate::log::{CaseHistory, EventLog, LogPosition, StoredCommit};
use crate::runtime::dispatch_snapshot::DispatchSnapshot;
use crate::runtime::loads::WorkerLoads;
use crate::runtime::timers::SnapshotStore;
use crate::runtime::Ownership;
pub use crate::tasks::inbox::TaskFastPath;

/// The name the dispatcher writes under (actor id and source system).
pub const DISPATCHER: &str = "wangge-dispatcher";

/// How often the dispatcher re-decides one case that keeps moving under it before leaving it
/// to the next commit.
const MAX_ROUNDS: usize = 6;

/// Cases the dispatcher works on at once.
const MAX_CASES_IN_FLIGHT: usize = 256;

/// How often the dispatcher looks at the cases that wait for it without a new commit.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How long a waiting case the dispatcher acted on, but could not settle, waits before it is
/// looked at again.
pub const RETRY_WAITING_AFTER: Duration = Duration::from_secs(10);

/// What the dispatcher did to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchOutcome {
    Accepted,
    SelfHandled { worker_id: String },
    Dispatched(RouteDecision),
}

/// How far one act on a case went.
struct Acted {
    /// What it did last, `None` when the case needed nothing (or someone else did it).
    outcome: Option<DispatchOutcome>,
    /// The position of the case's last commit as the act left it (written or read).
    known_through: LogPosition,
    /// False when the case kept moving and the act gave up: the next commit decides.
    settled: bool,
}

/// The cases the run loop has handed to acting tasks, shared with those tasks.
#[derive(Default)]
struct Acting {
    /// The position of the last commit the run loop has read.
    read_through: LogPosition,
    cases: HashMap<CaseId, Track>,
}

enum Track {
    /// A task is acting on the case. `recheck`: the newest commit read meanwhile that may
    /// need the dispatcher; the task looks again if its act did not know that commit.
    Busy { recheck: LogPosition },
    /// The last act knew the case up to this position, which the log reader has not reached
    /// yet: the commits up to it that the reader still meets need nothing.
    KnownThrough(LogPosition),
}

pub struct Dispatcher<L> {
    task_fast_path: Option<TaskFastPath>,
    cases: Arc<CaseService<L>>,
    /// The live grid; each routing decision reads one snapshot of it.
    grid: SharedGrid,
    categories: Arc<CategoryCatalogue>,
    loads: Mutex<WorkerLoads>,
    cursor: AtomicU64,
    acting: Mutex<Acting>,
    /// Where the snapshot of the loads and waiting cases lives, and how often it is replaced.
    snapshots: Option<(SnapshotStore, Duration)>,
    /// The position the last run carried on from a snapshot at (0: it read the whole log).
    restored_from: AtomicU64,
}

impl<L: EventLog> Dispatcher<L> {
    pub fn new(
        cases: Arc<CaseService<L>>,
        grid: impl Into<SharedGrid>,
        categories: Arc<CategoryCatalogue>,
    ) -> Self {
        Self {
            task_fast_path: None,
            cases,
            grid: grid.into(),
            categories,
            loads: Mutex::new(WorkerLoads::default()),
            cursor: AtomicU64::new(0),
            acting: Mutex::new(Acting::default()),
            snapshots: None,
            restored_from: AtomicU64::new(0),
        }
    }

    /// Starts from the snapshot in `store` when there is one that applies (a run from the
    /// log's start then reads only the log after it), and, while this instance holds
    /// partition 0, replaces it every `every` if the log moved on (see
    /// [`dispatch_snapshot`](crate::runtime::dispatch_snapshot)).
    pub fn with_snapshots(mut self, store: SnapshotStore, every: Duration) -> Self {
        self.snapshots = Some((store, every.max(Duration::from_millis(10))));
        self
    }

    /// The position of the snapshot the last [`run`](Self::run) carried on from, if it did.
    pub fn restored_from(&self) -> Option<LogPosition> {
        Some(self.restored_from.load(Ordering::Relaxed)).filter(|p| *p > 0)
    }

    /// Publishes each task as soon as its case is dispatched, besides the task publisher
    /// (see [`TaskPublisher::fast_path`](crate::tasks::TaskPublisher::fast_path)).
    pub fn with_task_fast_path(mut self, fast_path: TaskFastPath) -> Self {
        self.task_fast_path = Some(fast_path);
        self
    }

    fn loads(&self) -> std::sync::MutexGuard<'_, WorkerLoads> {
        self.loads.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn acting(&self) -> std::sync::MutexGuard<'_, Acting> {
        self.acting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds a commit into the worker loads. Every commit of every case, in log order.
    pub fn observe(&self, commit: &StoredCommit) {
        let mut loads = self.loads();
        for event in &commit.events {
            loads.apply(event);
        }
    }

    /// Open cases a worker holds, as the dispatcher sees it.
    pub fn open_cases(&self, worker: &str) -> u32 {
        self.loads().open_cases(worker)
    }

    /// Whether a commit leaves its case needing the dispatcher.
    pub fn needs_dispatcher(commit: &StoredCommit) -> bool {
        commit.events.last().is_some_and(|event| {
            matches!(
                event.event,
                CaseEvent::Reported(_)
                    | CaseEvent::Accepted(_)
                    | CaseEvent::Declined(_)
                    | CaseEvent::Escalated(_)
                    | CaseEvent::Reopened(_)
            )
        })
    }

    /// Whether a commit shows the case no longer needs the dispatcher.
    fn settles(commit: &StoredCommit) -> bool {
        commit.events.last().is_some_and(|event| {
            matches!(
                event.event,
                CaseEvent::Dispatched(_)
                    | CaseEvent::Reassigned(_)
                    | CaseEvent::Closed(_)
                    | CaseEvent::Rejected(_)
                    | CaseEvent::Merged(_)
                    | CaseEvent::Voided(_)
            )
        })
    }

    /// Takes a case as far as the dispatcher takes cases: accepted and dispatched, or closed
    /// by self-handling. Returns what it did last, or `None` when the case needed nothing.
    pub async fn act(&self, case_id: CaseId) -> Result<Option<DispatchOutcome>, CommandError> {
        let history = self.cases.log().load(case_id).await?;
        Ok(self.act_on(case_id, history).await?.outcome)
    }

    /// [`Dispatcher::act`] on a history of the case the caller holds (as read from the log
    /// or as loaded). Every command is written after exactly this history, or not at all.
    async fn act_on(
        &self,
        case_id: CaseId,
        mut history: CaseHistory,
    ) -> Result<Acted, CommandError> {
        let mut last = None;
        for _ in 0..MAX_ROUNDS {
            let state = crate::domain::replay(&history.events);
            let step = match state.status {
                CaseStatus::Reported => self.accept_and_dispatch(&state),
                CaseStatus::AwaitingDispatch => {
                    let declined: Vec<String> = history
                        .events
                        .iter()
                        .filter_map(|e| match &e.event {
                            CaseEvent::Declined(declined) => Some(declined.worker_id.clone()),
                            _ => None,
                        })
                        .collect();
                    self.dispatch(&state, &declined)
                }
                _ => None,
            };
            let Some((command, outcome)) = step else {
                return Ok(Acted {
                    outcome: last,
                    known_through: history.last_position,
                    settled: true,
                });
            };
            let request = CommandRequest {
                case_id,
                command,
                actor: Actor::system(DISPATCHER),
                source: Source {
                    system: DISPATCHER.to_owned(),
                    message_id: format!("{case_id}@{}", state.version),
                },
                occurred_at: None,
                correlation_id: None,
                causation_id: history.events.last().map(|e| e.event_id),
            };
            // Told before the append, so the task publisher waits for this delivery instead
            // of reading the case again.
            let fast_delivery = match (&outcome, &self.task_fast_path) {
                (DispatchOutcome::Dispatched(_), Some(fast)) => {
                    Some(fast.announce(case_id, state.version + 1))
                }
                _ => None,
            };
            let before = history.events.len();
            match self.cases.handle_after(request, &mut history).await {
                Ok(written) if written.duplicate => {
                    // Written before (by another instance, or an earlier try of ours):
                    // `history` is the case as read now; look at it again.
                    debug!(%case_id, "dispatcher's command was written before");
                }
                Ok(_) => {
                    debug!(%case_id, outcome = ?outcome, "dispatcher acted");
                    if let Some(delivery) = fast_delivery {
                        // The worker's task right away; the task publisher, told of it,
                        // publishes it only if this failed.
                        let (earlier, commit) = history.events.split_at(before);
                        if let Err(error) = delivery.deliver(earlier, commit).await {
                            debug!(%case_id, %error, "fast task delivery failed; the task publisher delivers it");
                        }
                    }
                    last = Some(outcome);
                }
                Err(CommandError::Stale { .. }) => history = self.cases.log().load(case_id).await?,
                Err(error) => return Err(error),
            }
        }
        Ok(Acted {
            outcome: last,
            known_through: history.last_position,
            settled: false,
        })
    }

    /// 立案: accept with the reported category and its default priority — or, for a patrol
    /// finding fixed on the spot, close it by self-handling (自处理).
    fn accept_or_self_handle(&self, state: &CaseState) -> Option<(CaseCommand, DispatchOutcome)> {
        if let (Some(worker_id), true) = (&state.patrol_worker, state.fixed_on_spot) {
            return Some((
                CaseCommand::SelfHandle {
                    worker_id: worker_id.clone(),
                    notes: "巡查中当场处置 (fixed on the spot during patrol)".to_owned(),
                    media: Vec::new(),
                },
                DispatchOutcome::SelfHandled {
                    worker_id: worker_id.clone(),
                },
            ));
        }
        let category = state.reported_category.clone()?;
        let priority = self.categories.get(&category)?.default_priority;
        Some((
            CaseCommand::Accept { category, priority },
            DispatchOutcome::Accepted,
        ))
    }

    /// 立案 and 派遣 at once: a new report the dispatcher can route goes to its worker in the
    /// same commit as its acceptance (one append, so the worker has the task sooner); one it
    /// cannot route yet is accepted and waits; a patrol finding fixed on the spot is closed.
    fn accept_and_dispatch(&self, state: &CaseState) -> Option<(CaseCommand, DispatchOutcome)> {
        let (accept, accepted) = self.accept_or_self_handle(state)?;
        let CaseCommand::Accept { category, priority } = accept else {
            return Some((accept, accepted));
        };
        let accepted_state = CaseState {
            category: Some(category.clone()),
            priority: Some(priority),
            status: CaseStatus::AwaitingDispatch,
            ..state.clone()
        };
        match self.dispatch(&accepted_state, &[]) {
            Some((
                CaseCommand::Dispatch {
                    tier,
                    cell,
                    assignee,
                },
                outcome,
            )) => Some((
                CaseCommand::AcceptAndDispatch {
                    category,
                    priority,
                    tier,
                    cell,
                    assignee,
                },
                outcome,
            )),
            _ => Some((CaseCommand::Accept { category, priority }, accepted)),
        }
    }

    /// 派遣: route the case from its current tier and send it to the chosen worker.
    fn dispatch(
        &self,
        state: &CaseState,
        declined: &[String],
    ) -> Option<(CaseCommand, DispatchOutcome)> {
        let location = state.location.as_ref()?;
        let category = self.categories.get(state.category.as_deref()?)?;
        let request = RouteRequest {
            location,
            category,
            // After an escalation the case stays at the tier it was escalated to.
            start_tier: if state.escalation_count > 0 {
                state.tier
            } else {
                None
            },
            exclude: declined,
            cursor: self.cursor.fetch_add(1, Ordering::Relaxed),
        };
        // Routing is quick and does not wait: it reads the loads under their lock.
        let routed = route(&request, &self.grid.load(), self.loads().by_worker());
        match routed {
            Ok(decision) => Some((
                CaseCommand::Dispatch {
                    tier: decision.tier,
                    cell: decision.cell.clone(),
                    assignee: decision.assignee.clone(),
                },
                DispatchOutcome::Dispatched(decision),
            )),
            Err(error) => {
                warn!(case_id = ?state.case_id, %error, "cannot route case");
                None
            }
        }
    }

    /// Follows the log from `from` and acts on the cases of the partitions this instance
    /// holds, until `shutdown`. While catching up with the log's head it only notes which
    /// cases wait, and acts on those once caught up: a restart does not replay old work.
    ///
    /// It remembers every case of every partition that waits for it, and looks again, every
    /// [`SWEEP_EVERY`], at the waiting cases of the partitions it holds that it has not acted on
    /// (a partition taken over from an instance that died or handed it over) or that it could
    /// not settle [`RETRY_WAITING_AFTER`] ago (no worker to route to yet; a grid change may
    /// bring one): nothing waits for the dispatcher for ever.
    pub async fn run(
        self: Arc<Self>,
        ownership: Ownership,
        from: LogPosition,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), crate::log::LogError> {
        let head = self.cases.log().head().await?;
        // Every case waiting for the dispatcher → when this instance last acted on it.
        let (from, mut waiting) = self.starting_point(from, head).await;
        let mut commits = self.cases.log().read_from(from);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_CASES_IN_FLIGHT));
        let mut caught_up = head < from.max(1);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The last commit folded in, and the one the last snapshot was taken at.
        let mut read_through = from.saturating_sub(1);
        let mut snapshot_at = read_through;
        // Without snapshots the tick is never polled (its branch is off), whatever its period.
        let every = self
            .snapshots
            .as_ref()
            .map_or(SWEEP_EVERY, |(_, every)| *every);
        let mut snapshot_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        snapshot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut writing: Option<tokio::task::JoinHandle<()>> = None;
        tokio::pin!(shutdown);
        if caught_up {
            self.acting().read_through = read_through;
            info!(waiting = waiting.len(), "dispatcher following the log");
        }
        loop {
            let commit = tokio::select! {
                commit = commits.next() => commit,
                _ = sweep.tick(), if caught_up => {
                    self.sweep(&mut waiting, &ownership, &in_flight);
                    continue;
                }
                _ = snapshot_tick.tick(), if caught_up && self.snapshots.is_some() => {
                    let idle = writing.as_ref().is_none_or(|w| w.is_finished());
                    if read_through > snapshot_at && idle && ownership.partitions().contains(&0) {
                        writing = self.write_snapshot(read_through, &waiting);
                        snapshot_at = read_through;
                    }
                    continue;
                }
                _ = &mut shutdown => break,
            };
            let Some(commit) = commit else { break };
            let commit = match commit {
                Ok(commit) => commit,
                Err(error) => {
                    warn!(%error, "dispatcher could not read a commit");
                    continue;
                }
            };
            self.observe(&commit);
            if Self::needs_dispatcher(&commit) {
                waiting.entry(commit.case_id).or_insert(None);
            } else if Self::settles(&commit) {
                waiting.remove(&commit.case_id);
            }
            read_through = commit.position;
            if !caught_up {
                if commit.position < head {
                    continue;
                }
                caught_up = true;
                info!(waiting = waiting.len(), "dispatcher caught up with the log");
                self.acting().read_through = commit.position;
                self.sweep(&mut waiting, &ownership, &in_flight);
                continue;
            }
            if !self.note(&commit) || !ownership.owns(commit.case_id) {
                continue;
            }
            // Cases are independent: act on many at once, a bounded number.
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            if !self.start_acting(commit.case_id) {
                continue;
            }
            if let Some(attempt) = waiting.get_mut(&commit.case_id) {
                *attempt = Some(Instant::now());
            }
            // A case's first commit is its whole history: act on it as read.
            let history =
                (commit.events.first().map(|e| e.sequence) == Some(1)).then(|| CaseHistory {
                    last_position: commit.position,
                    commit_positions: vec![commit.position],
                    // The next commit's seal links to this one's, as read.
                    next_seal_link: Some(next_link_after(
                        commit.seal.as_ref().map(|seal| seal.seal.as_str()),
                    )),
                    events: commit.events,
                });
            self.spawn_act(commit.case_id, history, ownership.clone(), permit);
        }
        Ok(())
    }

    /// Where a run from `from` starts: from a run from the log's start, just after the
    /// snapshot when there is one that applies (its loads in place, its waiting cases not
    /// yet acted on); otherwise at `from` with nothing known.
    async fn starting_point(
        &self,
        from: LogPosition,
        head: LogPosition,
    ) -> (LogPosition, HashMap<CaseId, Option<Instant>>) {
        self.restored_from.store(0, Ordering::Relaxed);
        let nothing = (from, HashMap::new());
        let Some((store, _)) = &self.snapshots else {
            return nothing;
        };
        if from > 1 {
            return nothing;
        }
        let snapshot = match store.load().await.and_then(|bytes| {
            bytes
                .map(|bytes| DispatchSnapshot::decode(&bytes))
                .transpose()
        }) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => return nothing,
            Err(error) => {
                warn!(%error, "dispatcher snapshot not used; reading the whole log");
                return nothing;
            }
        };
        if snapshot.position > head {
            warn!(
                position = snapshot.position,
                head,
                "dispatcher snapshot is ahead of the log (another log?); reading the whole log"
            );
            return nothing;
        }
        info!(
            position = snapshot.position,
            waiting = snapshot.waiting.len(),
            "dispatcher carries on from its snapshot"
        );
        *self.loads() = snapshot.loads;
        self.restored_from
            .store(snapshot.position, Ordering::Relaxed);
        let waiting = snapshot.waiting.into_iter().map(|c| (c, None)).collect();
        (snapshot.position + 1, waiting)
    }

    /// Encodes the loads and the waiting cases as of `position` and replaces the snapshot in
    /// the background.
    fn write_snapshot(
        &self,
        position: LogPosition,
        waiting: &HashMap<CaseId, Option<Instant>>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let (store, _) = self.snapshots.as_ref()?;
        let bytes = DispatchSnapshot::encode(position, &self.loads(), waiting.keys().copied());
        let store = store.clone();
        Some(tokio::spawn(async move {
            match store.save(&bytes).await {
                Ok(()) => debug!(position, bytes = bytes.len(), "dispatcher snapshot written"),
                Err(error) => warn!(%error, position, "dispatcher snapshot not written"),
            }
        }))
    }

    /// Acts on the waiting cases of the partitions held that this instance has not acted on,
    /// or not for [`RETRY_WAITING_AFTER`]: each reads its case afresh.
    fn sweep(
        self: &Arc<Self>,
        waiting: &mut HashMap<CaseId, Option<Instant>>,
        ownership: &Ownership,
        in_flight: &Arc<tokio::sync::Semaphore>,
    ) {
        let now = Instant::now();
        for (case_id, attempt) in waiting.iter_mut() {
            let due = attempt.is_none_or(|at| now.duration_since(at) >= RETRY_WAITING_AFTER);
            if !due || !ownership.owns(*case_id) {
                continue;
            }
            // Never more at once than the bound; the rest wait for the next sweep.
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                return;
            };
            if self.start_acting(*case_id) {
                *attempt = Some(now);
                self.spawn_act(*case_id, None, ownership.clone(), permit);
            }
        }
    }

    /// Notes a commit read from the log (once caught up) and says whether it makes the
    /// dispatcher look at its case: it may need the dispatcher, and no act knew of it.
    fn note(&self, commit: &StoredCommit) -> bool {
        let needs = Self::needs_dispatcher(commit);
        let mut acting = self.acting();
        acting.read_through = commit.position;
        match acting.cases.get_mut(&commit.case_id) {
            None => needs,
            Some(Track::Busy { recheck }) => {
                if needs {
                    *recheck = (*recheck).max(commit.position);
                }
                false
            }
            Some(Track::KnownThrough(known)) => {
                let known = *known;
                if commit.position >= known {
                    // The reader has reached what the last act knew; from here on, new.
                    acting.cases.remove(&commit.case_id);
                }
                needs && commit.position > known
            }
        }
    }

    /// Marks a case as being acted on, unless it already is.
    fn start_acting(&self, case_id: CaseId) -> bool {
        let mut acting = self.acting();
        match acting.cases.get(&case_id) {
            Some(Track::Busy { .. }) => false,
            _ => {
                acting.cases.insert(case_id, Track::Busy { recheck: 0 });
                true
            }
        }
    }

    /// Acts on a case in a task of its own, and again while the reader has met commits of it
    /// that the act did not know and that may need the dispatcher.
    fn spawn_act(
        self: &Arc<Self>,
        case_id: CaseId,
        mut history: Option<CaseHistory>,
        ownership: Ownership,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let dispatcher = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                let acted = match history.take() {
                    Some(history) => dispatcher.act_on(case_id, history).await,
                    None => match dispatcher.cases.log().load(case_id).await {
                        Ok(history) => dispatcher.act_on(case_id, history).await,
                        Err(error) => Err(error.into()),
                    },
                };
                let mut acting = dispatcher.acting();
                let recheck = match acting.cases.get(&case_id) {
                    Some(Track::Busy { recheck }) => *recheck,
                    _ => 0,
                };
                let acted = match acted {
                    Ok(acted) => acted,
                    Err(error) => {
                        warn!(%case_id, %error, "dispatcher could not act on a case");
                        acting.cases.remove(&case_id);
                        return;
                    }
                };
                if recheck > acted.known_through && ownership.owns(case_id) {
                    // A commit the act did not know may need the dispatcher: look again.
                    acting.cases.insert(case_id, Track::Busy { recheck: 0 });
                    continue;
                }
                if !acted.settled {
                    debug!(%case_id, "case kept moving; the next commit decides");
                }
                if !acted.settled || acting.read_through >= acted.known_through {
                    acting.cases.remove(&case_id);
                } else {
                    let known_through = Track::KnownThrough(acted.known_through);
                    acting.cases.insert(case_id, known_through);
                }
                return;
            }
        });
    }
}

//! The dispatcher: accepts new reports (立案) and sends every case that waits for dispatch to
//! the right worker (派遣), following the routing policy.
//!
//! It reads the event log in order. Every commit updates the open load of each worker; a
//! commit that leaves a case of one of this instance's partitions needing the dispatcher
//! (reported, accepted, declined, escalated, reopened) makes it act on that case: load the
//! case, decide, and write a command that is conditional on the version it looked at. If the
//! case moved on meanwhile, nothing is written and it looks again. Commands carry a source
//! derived from the case and version, so two instances acting on the same case at once (a
//! lease hand-over) still write each fact once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tracing::{debug, info, warn};
use wangge_schemas::{Actor, CaseEvent, CaseId, Source};

use crate::app::{CaseService, CommandError, CommandRequest};
use crate::domain::routing::{route, RouteDecision, RouteRequest};
use crate::domain::{CaseCommand, CaseState, CaseStatus};
use crate::grid::{CategoryCatalogue, SharedGrid};
use crate::log::{EventLog, LogPosition, StoredCommit};
use crate::runtime::loads::WorkerLoads;
use crate::runtime::Ownership;
use crate::tasks::inbox::{publish_tasks_of_commit, TaskStreamConfig};

/// The name the dispatcher writes under (actor id and source system).
pub const DISPATCHER: &str = "wangge-dispatcher";

/// How often the dispatcher re-decides one case that keeps moving under it before leaving it
/// to the next commit.
const MAX_ROUNDS: usize = 6;

/// Cases the dispatcher works on at once.
const MAX_CASES_IN_FLIGHT: usize = 256;

/// What the dispatcher did to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchOutcome {
    Accepted,
    SelfHandled { worker_id: String },
    Dispatched(RouteDecision),
}

/// Where the dispatcher puts a worker's task the moment it dispatches.
pub struct TaskFastPath {
    pub context: async_nats::jetstream::Context,
    pub tasks: TaskStreamConfig,
}

pub struct Dispatcher<L> {
    task_fast_path: Option<TaskFastPath>,
    cases: Arc<CaseService<L>>,
    /// The live grid; each routing decision reads one snapshot of it.
    grid: SharedGrid,
    categories: Arc<CategoryCatalogue>,
    loads: Mutex<WorkerLoads>,
    cursor: AtomicU64,
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
        }
    }

    /// Publishes each task as soon as its case is dispatched, besides the task publisher.
    pub fn with_task_fast_path(mut self, fast_path: TaskFastPath) -> Self {
        self.task_fast_path = Some(fast_path);
        self
    }

    fn loads(&self) -> std::sync::MutexGuard<'_, WorkerLoads> {
        self.loads.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut last = None;
        let mut history = self.cases.log().load(case_id).await?;
        for _ in 0..MAX_ROUNDS {
            let state = crate::domain::replay(&history.events);
            let step = match state.status {
                CaseStatus::Reported => self.accept_or_self_handle(&state),
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
                _ => return Ok(last),
            };
            let Some((command, outcome)) = step else {
                return Ok(last);
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
            match self.cases.handle_if_unchanged(request, state.version).await {
                Ok(written) => {
                    debug!(%case_id, outcome = ?outcome, "dispatcher acted");
                    if let (DispatchOutcome::Dispatched(_), Some(fast)) =
                        (&outcome, &self.task_fast_path)
                    {
                        // The worker's task right away; the task publisher's copy of it,
                        // later, is a duplicate the task stream drops.
                        if let Err(error) = publish_tasks_of_commit(
                            &fast.context,
                            &fast.tasks,
                            &history.events,
                            &written.events,
                        )
                        .await
                        {
                            debug!(%case_id, %error, "fast task delivery failed; the task publisher delivers it");
                        }
                    }
                    // Carry on from what was written instead of reading the case again.
                    history.events.extend(written.events);
                    last = Some(outcome);
                }
                Err(CommandError::Stale { .. }) => history = self.cases.log().load(case_id).await?,
                Err(error) => return Err(error),
            }
        }
        Ok(last)
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

    /// 派遣: route the case from its current tier and send it to the chosen worker.
    fn dispatch(
        &self,
        state: &CaseState,
        declined: &[String],
    ) -> Option<(CaseCommand, DispatchOutcome)> {
        let location = state.location.as_ref()?;
        let category = self.categories.get(state.category.as_deref()?)?;
        let load = self.loads().by_worker().clone();
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
        match route(&request, &self.grid.load(), &load) {
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
    pub async fn run(
        self: Arc<Self>,
        ownership: Ownership,
        from: LogPosition,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), crate::log::LogError> {
        let head = self.cases.log().head().await?;
        let mut commits = self.cases.log().read_from(from);
        let mut waiting: HashSet<CaseId> = HashSet::new();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_CASES_IN_FLIGHT));
        let mut caught_up = head < from.max(1);
        tokio::pin!(shutdown);
        if caught_up {
            info!("dispatcher following the log");
        }
        loop {
            let commit = tokio::select! {
                commit = commits.next() => commit,
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
                waiting.insert(commit.case_id);
            } else if Self::settles(&commit) {
                waiting.remove(&commit.case_id);
            }
            if !caught_up && commit.position >= head {
                caught_up = true;
                info!(waiting = waiting.len(), "dispatcher caught up with the log");
            }
            if caught_up {
                for case_id in std::mem::take(&mut waiting) {
                    if !ownership.owns(case_id) {
                        continue;
                    }
                    // Cases are independent: act on many at once, a bounded number.
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        break;
                    };
                    let dispatcher = self.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Err(error) = dispatcher.act(case_id).await {
                            warn!(%case_id, %error, "dispatcher could not act on a case");
                        }
                    });
                }
            }
        }
        Ok(())
    }
}

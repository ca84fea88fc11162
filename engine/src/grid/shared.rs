//! The live grid shared by every component of an engine instance: the grid as the grid file
//! and then the grid stream make it.
//!
//! [`LiveGrid`] (in the domain crate) is a value: a [`GridState`] and the position on the grid
//! stream it has been folded up to, with its pure step. [`SharedGrid`] is the handle every
//! component holds (dispatcher, timers, intake, worker-command authorization, grid
//! commands): the grid follower swaps a new `LiveGrid` into it atomically after each grid
//! event (`arc-swap`), and a reader takes a snapshot per decision with one atomic load, so a
//! decision sees one whole grid — never half an event — and the next decision sees the change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;
use uuid::Uuid;
use wangge_schemas::Source;

use crate::tasks::commands::SupervisorDirectory;
use wangge_domain::grid::{GridState, LiveGrid};

/// What became of a source message on the grid stream: the idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedGridMessage {
    pub position: u64,
    pub event_id: Uuid,
    pub event_type: &'static str,
}

/// A snapshot of the live grid: one atomic load, dereferences to the [`GridState`]. Cheap;
/// take one per decision and drop it before awaiting (it is not `Send`; use
/// [`SharedGrid::snapshot`] across an await).
pub type GridSnapshot = Guard<Arc<LiveGrid>>;

/// The handle to an instance's live grid. Cloning it shares the same grid.
#[derive(Clone)]
pub struct SharedGrid {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<LiveGrid>,
    /// Every source message folded in so far → its event. Updated before the grid that
    /// holds the event is swapped in, so a message found here is always on the stream.
    processed: Mutex<HashMap<Source, ProcessedGridMessage>>,
    position: watch::Sender<u64>,
}

impl std::fmt::Debug for SharedGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.inner.current.load();
        f.debug_struct("SharedGrid")
            .field("city", &current.city())
            .field("position", &current.position())
            .finish()
    }
}

impl SharedGrid {
    /// A live grid starting from `grid` (the grid file), at stream position 0.
    pub fn new(grid: GridState) -> Self {
        Self::from_live(LiveGrid::from_file_state(grid))
    }

    fn from_live(live: LiveGrid) -> Self {
        let (position, _) = watch::channel(live.position());
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(live),
                processed: Mutex::new(HashMap::new()),
                position,
            }),
        }
    }

    /// The grid as it is now, for one decision.
    pub fn load(&self) -> GridSnapshot {
        self.inner.current.load()
    }

    /// The grid as it is now, as an `Arc` that may be held across an await.
    pub fn snapshot(&self) -> Arc<LiveGrid> {
        self.inner.current.load_full()
    }

    /// Position of the last grid-stream event in the live grid.
    pub fn position(&self) -> u64 {
        self.inner.current.load().position()
    }

    /// The event a source message became, if it is on the grid stream as far as this
    /// instance has read it.
    pub fn processed(&self, source: &Source) -> Option<ProcessedGridMessage> {
        self.processed_map().get(source).cloned()
    }

    fn processed_map(&self) -> std::sync::MutexGuard<'_, HashMap<Source, ProcessedGridMessage>> {
        self.inner
            .processed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until the live grid has folded in the stream up to `position`; false when
    /// `within` passed first.
    pub async fn wait_for(&self, position: u64, within: Duration) -> bool {
        let mut changes = self.inner.position.subscribe();
        tokio::time::timeout(within, changes.wait_for(|at| *at >= position))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// Notes what a source message became; the grid follower calls it before publishing
    /// the grid that holds the event.
    pub(crate) fn record(&self, source: Source, processed: ProcessedGridMessage) {
        self.processed_map().insert(source, processed);
    }

    /// Swaps `live` in: every later snapshot sees it.
    pub(crate) fn publish(&self, live: LiveGrid) {
        let position = live.position();
        self.inner.current.store(Arc::new(live));
        self.inner.position.send_replace(position);
    }
}

impl From<GridState> for SharedGrid {
    fn from(grid: GridState) -> Self {
        Self::new(grid)
    }
}

/// A fixed grid (tests, the demo, benchmarks): the state is copied once into a live grid
/// that nothing but a grid follower changes.
impl From<Arc<GridState>> for SharedGrid {
    fn from(grid: Arc<GridState>) -> Self {
        Self::new(Arc::unwrap_or_clone(grid))
    }
}

/// The live grid's supervisors: whoever the grid names now (see the impl for
/// [`GridState`]).
impl SupervisorDirectory for SharedGrid {
    fn supervises(&self, person: &str, cell: &str) -> bool {
        SupervisorDirectory::supervises(self.load().grid(), person, cell)
    }
}

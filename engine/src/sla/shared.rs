//! The live SLA reference data shared by every component of an engine instance: the SLA
//! files (or the bundled defaults), then every SLA event on the SLA stream.
//!
//! [`LiveSla`] (in the domain crate) is a value: an [`SlaReference`] and the position on the
//! SLA stream it has been folded up to. [`SharedSla`] is the handle components hold (SLA
//! commands, the HTTP API, the coverage warnings): the SLA follower swaps a new `LiveSla` in
//! atomically after each event (`arc-swap`), a reader takes a snapshot per decision with one
//! atomic load, and whoever must act on a change subscribes to it ([`SharedSla::changes`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;
use uuid::Uuid;
use wangge_domain::sla::{LiveSla, SlaReference};
use wangge_schemas::Source;

/// What became of a source message on the SLA stream: the idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedSlaMessage {
    pub position: u64,
    pub event_id: Uuid,
    pub event_type: &'static str,
    /// The calendar ids or policy names the event published.
    pub published: Vec<String>,
}

/// A snapshot of the live SLA data: one atomic load, dereferences to the
/// [`SlaReference`]. Take one per decision and drop it before awaiting (it is not `Send`;
/// use [`SharedSla::snapshot`] across an await).
pub type SlaSnapshot = Guard<Arc<LiveSla>>;

/// The handle to an instance's live SLA data. Cloning it shares the same data.
#[derive(Clone)]
pub struct SharedSla {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<LiveSla>,
    /// Every source message folded in so far → its event. Updated before the data that
    /// holds the event is swapped in, so a message found here is always on the stream.
    processed: Mutex<HashMap<Source, ProcessedSlaMessage>>,
    position: watch::Sender<u64>,
}

impl std::fmt::Debug for SharedSla {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.inner.current.load();
        f.debug_struct("SharedSla")
            .field("calendars", &current.calendars().ids().collect::<Vec<_>>())
            .field("position", &current.position())
            .finish()
    }
}

impl SharedSla {
    /// Live SLA data starting from `reference` (the files), at stream position 0. Without a
    /// follower it stays as it is: the fixed data of tests and the demo.
    pub fn new(reference: SlaReference) -> Self {
        let live = LiveSla::new(reference);
        let (position, _) = watch::channel(live.position());
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(live),
                processed: Mutex::new(HashMap::new()),
                position,
            }),
        }
    }

    /// The bundled policies and calendars (`deploy/sla/`), fixed.
    pub fn bundled() -> Self {
        Self::new(SlaReference::bundled())
    }

    /// The data as it is now, for one decision.
    pub fn load(&self) -> SlaSnapshot {
        self.inner.current.load()
    }

    /// The data as it is now, as an `Arc` that may be held across an await.
    pub fn snapshot(&self) -> Arc<LiveSla> {
        self.inner.current.load_full()
    }

    /// Position of the last SLA-stream event in the live data.
    pub fn position(&self) -> u64 {
        self.inner.current.load().position()
    }

    /// Told the position each time new data is swapped in (the current one is marked seen).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.position.subscribe()
    }

    /// Waits until the live data has folded in the stream up to `position`; false when
    /// `within` passed first.
    pub async fn wait_for(&self, position: u64, within: Duration) -> bool {
        let mut changes = self.inner.position.subscribe();
        tokio::time::timeout(within, changes.wait_for(|at| *at >= position))
            .await
            .is_ok_and(|seen| seen.is_ok())
    }

    /// The event a source message became, if it is on the SLA stream as far as this
    /// instance has read it.
    pub fn processed(&self, source: &Source) -> Option<ProcessedSlaMessage> {
        self.processed_map().get(source).cloned()
    }

    fn processed_map(&self) -> std::sync::MutexGuard<'_, HashMap<Source, ProcessedSlaMessage>> {
        self.inner
            .processed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes what a source message became; the SLA follower calls it before publishing the
    /// data that holds the event.
    pub(crate) fn record(&self, source: Source, processed: ProcessedSlaMessage) {
        self.processed_map().insert(source, processed);
    }

    /// Swaps `live` in: every later snapshot sees it, and every subscriber is told.
    pub(crate) fn publish(&self, live: LiveSla) {
        let position = live.position();
        self.inner.current.store(Arc::new(live));
        self.inner.position.send_replace(position);
    }
}

impl From<SlaReference> for SharedSla {
    fn from(reference: SlaReference) -> Self {
        Self::new(reference)
    }
}

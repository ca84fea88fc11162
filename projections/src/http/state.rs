//! What every handler reaches: the read models, the grid, the SLA reference data, the
//! clock, the log's head, the metrics recorder and the live-update settings.

use std::sync::Arc;
use std::time::Duration;

use wangge_engine::app::Clock;
use wangge_engine::grid::{LiveGrid, SharedGrid};
use wangge_engine::log::{EventLog, LogPosition};
use wangge_engine::sla::{LiveSla, SharedSla};

use super::auth::Authenticator;
use super::grid::GridTree;
use super::metrics::HttpMetrics;
use crate::query::ReadModels;

/// Where the log's head is: what the projections' lag is measured against.
///
/// Every [`EventLog`] is one; an object-safe trait so the state need not be generic over
/// the log.
#[async_trait::async_trait]
pub trait LogHead: Send + Sync + 'static {
    /// The position of the newest commit in the log (0 when empty).
    async fn log_head(&self) -> Result<LogPosition, String>;
}

#[async_trait::async_trait]
impl<L: EventLog> LogHead for L {
    async fn log_head(&self) -> Result<LogPosition, String> {
        self.head().await.map_err(|error| error.to_string())
    }
}

/// How the live stream paces itself.
#[derive(Debug, Clone, Copy)]
pub struct LiveSettings {
    /// At most one update per this interval; changes in between are coalesced into it.
    pub coalesce: Duration,
    /// A comment line this often, so proxies and browsers keep an idle stream open.
    pub keep_alive: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            coalesce: Duration::from_millis(250),
            keep_alive: Duration::from_secs(15),
        }
    }
}

/// The shared state of the HTTP API. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
    /// The live SLA data (calendars and policies): the bundled data unless
    /// [`ApiState::with_sla`] gives an engine's.
    sla: SharedSla,
}

struct Inner {
    read_models: Arc<dyn ReadModels>,
    /// The live grid: new cells and workers show as soon as the grid stream brings them.
    grid: SharedGrid,
    /// The tree of the grid as of a grid-stream position, drawn again when the grid moves.
    grid_tree: std::sync::Mutex<(u64, Arc<GridTree>)>,
    clock: Arc<dyn Clock>,
    log_head: Arc<dyn LogHead>,
    metrics: HttpMetrics,
    live: LiveSettings,
    /// Who may read (tokens, API keys); refuses everyone until
    /// [`ApiState::with_authenticator`] gives one.
    authenticator: std::sync::RwLock<Arc<Authenticator>>,
    /// Reveals of reporters' contacts, recorded (PostgreSQL read models only).
    reveals: std::sync::RwLock<Option<Arc<crate::residents::ContactReveals>>>,
    /// Flips to `true` when the server shuts down, which ends the live streams (a
    /// graceful shutdown waits for every open response, and a live stream never ends).
    stopping: tokio::sync::watch::Sender<bool>,
}

impl ApiState {
    /// `clock` is the API's "now" (how late an overdue case is); the demo passes its
    /// simulated clock.
    pub fn new(
        read_models: Arc<dyn ReadModels>,
        grid: impl Into<SharedGrid>,
        clock: Arc<dyn Clock>,
        log_head: Arc<dyn LogHead>,
    ) -> Self {
        Self::with_live_settings(read_models, grid, clock, log_head, LiveSettings::default())
    }

    pub fn with_live_settings(
        read_models: Arc<dyn ReadModels>,
        grid: impl Into<SharedGrid>,
        clock: Arc<dyn Clock>,
        log_head: Arc<dyn LogHead>,
        live: LiveSettings,
    ) -> Self {
        let grid: SharedGrid = grid.into();
        let snapshot = grid.snapshot();
        Self {
            inner: Arc::new(Inner {
                read_models,
                grid_tree: std::sync::Mutex::new((
                    snapshot.position(),
                    Arc::new(GridTree::of(&snapshot)),
                )),
                grid,
                clock,
                log_head,
                metrics: HttpMetrics::new(),
                live,
                authenticator: std::sync::RwLock::new(Arc::new(Authenticator::refuse_all())),
                reveals: std::sync::RwLock::new(None),
                stopping: tokio::sync::watch::channel(false).0,
            }),
            sla: SharedSla::bundled(),
        }
    }

    /// The same state reading the SLA data from `sla` (the instance's live data, which the
    /// SLA follower keeps), instead of the fixed bundled data.
    pub fn with_sla(mut self, sla: SharedSla) -> Self {
        self.sla = sla;
        self
    }

    /// The same state accepting the credentials `authenticator` accepts. Without it, every
    /// protected route answers 401: a server wired without authentication serves nobody.
    pub fn with_authenticator(self, authenticator: Authenticator) -> Self {
        *self
            .inner
            .authenticator
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(authenticator);
        self
    }

    /// The same state revealing reporters' contacts through `reveals` (every reveal
    /// recorded); without it the reveal routes answer 503.
    pub fn with_reveals(self, reveals: Arc<crate::residents::ContactReveals>) -> Self {
        *self
            .inner
            .reveals
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reveals);
        self
    }

    pub fn reveals(&self) -> Option<Arc<crate::residents::ContactReveals>> {
        self.inner
            .reveals
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Who may read.
    pub fn authenticator(&self) -> Arc<Authenticator> {
        self.inner
            .authenticator
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn read_models(&self) -> &dyn ReadModels {
        &*self.inner.read_models
    }

    /// The grid as it is now.
    pub fn grid(&self) -> Arc<LiveGrid> {
        self.inner.grid.snapshot()
    }

    /// The tree of the grid as it is now (drawn again only when the grid has moved).
    pub fn grid_tree(&self) -> Arc<GridTree> {
        let grid = self.inner.grid.snapshot();
        let mut cached = self
            .inner
            .grid_tree
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cached.0 != grid.position() {
            *cached = (grid.position(), Arc::new(GridTree::of(&grid)));
        }
        cached.1.clone()
    }

    /// The SLA reference data as it is now.
    pub fn sla(&self) -> Arc<LiveSla> {
        self.sla.snapshot()
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    pub async fn log_head(&self) -> Result<LogPosition, String> {
        self.inner.log_head.log_head().await
    }

    pub fn metrics(&self) -> &HttpMetrics {
        &self.inner.metrics
    }

    pub fn live_settings(&self) -> LiveSettings {
        self.inner.live
    }

    /// Resolves once the server is shutting down.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopping = self.inner.stopping.subscribe();
        async move {
            stopping.wait_for(|stop| *stop).await.ok();
        }
    }

    /// Ends the live streams (called by [`serve_http`](super::serve_http) on shutdown).
    pub fn stop_live_streams(&self) {
        self.inner.stopping.send_replace(true);
    }
}

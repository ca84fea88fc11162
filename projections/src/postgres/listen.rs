//! `subscribe()` over LISTEN/NOTIFY: every commit of a live table notifies
//! [`NOTIFY_CHANNEL`](super::store::NOTIFY_CHANNEL) inside its transaction (so the
//! notification is delivered if and only if the commit is), and one dedicated connection per
//! process listens and hands each [`Progress`] to the local subscribers. An API instance that
//! runs no projection therefore hears of the commits of the instance that does.
//!
//! Read models on a read replica listen on the primary (a hot standby cannot LISTEN: NOTIFY
//! is not replicated) and pass each projection's progress on only once the replica's own
//! checkpoint has reached it ([`ReplicaGate`]): the replica's lag delays the announcement,
//! and a dashboard reloading on it reads rows at least as new as announced.

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, Config, NoTls};
use tracing::{debug, warn};

use super::store::NOTIFY_CHANNEL;
use super::PostgresReadModels;
use crate::query::Progress;

/// Pause before listening again after the connection was lost.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// How often a replica's checkpoints are read while a heard commit is not yet visible there.
const REPLICA_POLL: Duration = Duration::from_millis(20);

/// Where heard progress goes: straight to the subscribers, or through a replica's gate.
#[derive(Clone)]
enum Heard {
    Direct(broadcast::Sender<Progress>),
    Replica(mpsc::UnboundedSender<Progress>),
}

impl Heard {
    fn pass_on(&self, update: Progress) {
        // Nobody subscribed is fine; a closed gate means we are shutting down.
        match self {
            Self::Direct(progress) => drop(progress.send(update)),
            Self::Replica(gate) => drop(gate.send(update)),
        }
    }
}

impl PostgresReadModels {
    /// Starts the listener unless it runs already.
    pub(crate) fn start_listener(&self) {
        let mut listener = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if listener.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!("subscribe() outside a tokio runtime: no live updates");
            return;
        };
        let task = match &self.primary {
            None => runtime.spawn(listen(
                self.config.clone(),
                Heard::Direct(self.progress.clone()),
            )),
            Some(primary) => {
                let (heard, gate_input) = mpsc::unbounded_channel();
                let gate = ReplicaGate {
                    replica: self.pool.clone(),
                    progress: self.progress.clone(),
                };
                let primary = primary.clone();
                runtime.spawn(async move {
                    tokio::join!(listen(primary, Heard::Replica(heard)), gate.run(gate_input));
                })
            }
        };
        *listener = Some(task.abort_handle());
    }
}

/// Listens until aborted, reconnecting after a lost connection.
async fn listen(config: Config, heard: Heard) {
    loop {
        if let Err(error) = listen_once(&config, &heard).await {
            warn!(%error, "listening for read-model commits failed; listening again");
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

async fn listen_once(config: &Config, heard: &Heard) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (notifications, mut received) = tokio::sync::mpsc::unbounded_channel();
    // The connection hands out notifications only to whoever polls it.
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    if notifications.send(notification).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
        .await?;
    debug!(channel = NOTIFY_CHANNEL, "listening for read-model commits");
    while let Some(notification) = received.recv().await {
        match serde_json::from_str::<Progress>(notification.payload()) {
            Ok(update) => heard.pass_on(update),
            Err(error) => {
                warn!(payload = notification.payload(), %error, "unreadable notification")
            }
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// Holds each projection's heard progress until the replica's checkpoint shows it, then
/// announces the replica's position (never a position the replica's rows do not hold).
struct ReplicaGate {
    replica: Pool,
    progress: broadcast::Sender<Progress>,
}

impl ReplicaGate {
    async fn run(self, mut heard: mpsc::UnboundedReceiver<Progress>) {
        // The furthest position heard per projection and not yet announced.
        let mut waiting: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            if waiting.is_empty() {
                match heard.recv().await {
                    Some(update) => note(&mut waiting, update),
                    None => return,
                }
            }
            while let Ok(update) = heard.try_recv() {
                note(&mut waiting, update);
            }
            match self.replica_checkpoints().await {
                Ok(shown) => waiting.retain(|projection, wanted| match shown.get(projection) {
                    Some(&position) if position >= *wanted => {
                        drop(self.progress.send(Progress {
                            projection: projection.clone(),
                            position,
                        }));
                        false
                    }
                    _ => true,
                }),
                Err(error) => warn!(%error, "reading the replica's checkpoints failed"),
            }
            if !waiting.is_empty() {
                tokio::time::sleep(REPLICA_POLL).await;
            }
        }
    }

    async fn replica_checkpoints(&self) -> Result<BTreeMap<String, u64>, String> {
        let client = self.replica.get().await.map_err(|e| e.to_string())?;
        let rows = client
            .query(
                "SELECT projection, position FROM projection_checkpoints",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|row| {
                let position: i64 = row.get(1);
                (
                    row.get::<_, String>(0),
                    u64::try_from(position).unwrap_or(0),
                )
            })
            .collect())
    }
}

fn note(waiting: &mut BTreeMap<String, u64>, update: Progress) {
    let wanted = waiting.entry(update.projection).or_insert(0);
    *wanted = (*wanted).max(update.position);
}

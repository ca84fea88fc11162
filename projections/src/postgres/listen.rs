//! `subscribe()` over LISTEN/NOTIFY: every commit of a live table notifies
//! [`NOTIFY_CHANNEL`](super::store::NOTIFY_CHANNEL) inside its transaction (so the
//! notification is delivered if and only if the commit is), and one dedicated connection per
//! process listens and hands each [`Progress`] to the local subscribers. An API instance that
//! runs no projection therefore hears of the commits of the instance that does.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Config, NoTls};
use tracing::{debug, warn};

use super::store::NOTIFY_CHANNEL;
use super::PostgresReadModels;
use crate::query::Progress;

/// Pause before listening again after the connection was lost.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

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
        let task = runtime.spawn(listen(self.config.clone(), self.progress.clone()));
        *listener = Some(task.abort_handle());
    }
}

/// Listens until aborted, reconnecting after a lost connection.
async fn listen(config: Config, progress: broadcast::Sender<Progress>) {
    loop {
        if let Err(error) = listen_once(&config, &progress).await {
            warn!(%error, "listening for read-model commits failed; listening again");
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

async fn listen_once(
    config: &Config,
    progress: &broadcast::Sender<Progress>,
) -> Result<(), tokio_postgres::Error> {
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
            // Nobody subscribed is fine.
            Ok(update) => drop(progress.send(update)),
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

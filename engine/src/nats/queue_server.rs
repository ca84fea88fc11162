//! A request-reply server on a queue group: every engine instance joins the same group, so
//! each message is handled by exactly one of them.
//!
//! Messages are handled concurrently, a bounded number at a time. A message with a reply
//! subject gets the handler's answer as JSON; one without is handled the same way and only
//! its outcome is logged. On shutdown the subscription is drained — no new messages, the
//! buffered ones still handled — and every message in hand is finished before the server
//! returns, so a shutdown never drops a message between its checks and its commit. The
//! connection stays open for them: only the subscription is drained, never the client.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;
use tracing::{info, warn};

/// Where a server listens and how much it takes on at once.
#[derive(Debug, Clone)]
pub struct QueueServer {
    /// What the server is, for logs (`intake`, `worker commands`).
    pub name: &'static str,
    pub subject: String,
    pub queue_group: String,
    /// Messages handled at once; more wait in the subscription's buffer.
    pub max_in_flight: usize,
}

/// Serves `handle` until `shutdown` completes (or the connection closes).
pub async fn serve_queue<H, F, R>(
    client: async_nats::Client,
    server: QueueServer,
    handle: H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), async_nats::SubscribeError>
where
    H: Fn(async_nats::Message) -> F + Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
    R: Serialize + Send + 'static,
{
    let mut subscription = client
        .queue_subscribe(server.subject.clone(), server.queue_group.clone())
        .await?;
    info!(name = server.name, subject = %server.subject, queue = %server.queue_group, "listening");
    let handle = Arc::new(handle);
    let permits = Arc::new(Semaphore::new(server.max_in_flight));
    tokio::pin!(shutdown);
    let mut draining = false;
    loop {
        let message = tokio::select! {
            message = subscription.next() => message,
            _ = &mut shutdown, if !draining => {
                draining = true;
                if let Err(error) = subscription.drain().await {
                    warn!(name = server.name, %error, "could not drain the subscription");
                    break;
                }
                continue;
            }
        };
        let Some(message) = message else { break };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let handle = handle.clone();
        let client = client.clone();
        let name = server.name;
        tokio::spawn(async move {
            let _permit = permit;
            let reply_to = message.reply.clone();
            let reply = handle(message).await;
            match reply_to {
                Some(reply_to) => {
                    let body = serde_json::to_vec(&reply).expect("replies serialize");
                    if let Err(error) = client.publish(reply_to, body.into()).await {
                        warn!(name, %error, "could not send a reply");
                    }
                }
                None => info!(name, "handled a message sent without a reply subject"),
            }
        });
    }
    let _all = permits.acquire_many(server.max_in_flight as u32).await;
    info!(name = server.name, "stopped");
    Ok(())
}

//! The NATS front of worker commands: a queue-group subscription on
//! [`WORKER_COMMAND_SUBJECT`](super::WORKER_COMMAND_SUBJECT).
//!
//! Every engine instance joins the queue group [`WORKER_QUEUE_GROUP`], so each command is
//! handled by exactly one of them. A message with a reply subject gets the JSON
//! [`WorkerReply`]; one without is processed the same way and its outcome only logged.
//! Request-reply is at-most-once: a worker's app that gets no answer (timeout, "no
//! responders") sends the same message again with the same `message_id`, which never acts
//! twice.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::Semaphore;
use tracing::{info, warn};
use wangge_schemas::worker::WorkerReply;

use super::commands::{SupervisorDirectory, WorkerCommandService};
use super::WORKER_COMMAND_SUBJECT;
use crate::log::EventLog;

/// The queue group all engine instances share.
pub const WORKER_QUEUE_GROUP: &str = "wangge-workers";

/// Commands processed at once per instance; more wait in the subscription's buffer.
const MAX_IN_FLIGHT: usize = 256;

/// Serves worker commands until `shutdown` completes (or the connection closes). On
/// shutdown the subscription is drained — no new messages, the buffered ones still handled
/// — and every command in hand is finished before this returns.
pub async fn serve_worker_commands<L: EventLog, D: SupervisorDirectory>(
    client: async_nats::Client,
    service: Arc<WorkerCommandService<L, D>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), async_nats::SubscribeError> {
    let mut subscription = client
        .queue_subscribe(WORKER_COMMAND_SUBJECT, WORKER_QUEUE_GROUP.to_owned())
        .await?;
    info!(
        subject = WORKER_COMMAND_SUBJECT,
        queue = WORKER_QUEUE_GROUP,
        "worker commands listening"
    );
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    tokio::pin!(shutdown);
    let mut draining = false;
    loop {
        let message = tokio::select! {
            message = subscription.next() => message,
            _ = &mut shutdown, if !draining => {
                draining = true;
                if let Err(error) = subscription.drain().await {
                    warn!(%error, "could not drain the worker command subscription");
                    break;
                }
                continue;
            }
        };
        let Some(message) = message else { break };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let service = service.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let reply = service.process(&message.payload).await;
            if let Some(reply_to) = message.reply {
                let body = serde_json::to_vec(&reply).expect("worker replies serialize");
                if let Err(error) = client.publish(reply_to, body.into()).await {
                    warn!(%error, "could not send a worker reply");
                }
            } else if let WorkerReply::Rejected { code, .. } = &reply {
                info!(code = %code, "refused a worker command sent without a reply subject");
            }
        });
    }
    // Let the commands in hand finish, so a shutdown never drops one between its checks and
    // its commit.
    let _all = permits.acquire_many(MAX_IN_FLIGHT as u32).await;
    info!("worker commands stopped");
    Ok(())
}

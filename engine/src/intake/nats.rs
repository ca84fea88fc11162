//! The NATS front of intake: a queue-group subscription on `wangge.intake.>`.
//!
//! Every engine instance joins the same queue group, so each message is handled by exactly
//! one of them. A message with a reply subject gets the JSON [`IntakeReply`]; one without is
//! processed the same way and its outcome only logged. Senders that must not lose a report
//! use request-reply and retry on timeout or "no responders": the derived case id makes
//! retries harmless.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::Semaphore;
use tracing::{info, warn};
use wangge_schemas::intake::IntakeReply;

use crate::intake::rejected::RejectedStore;
use crate::intake::service::{IncomingMessage, IntakeService};
use crate::intake::INTAKE_SUBJECT_PREFIX;
use crate::log::EventLog;

/// The queue group all engine instances share.
pub const INTAKE_QUEUE_GROUP: &str = "wangge-intake";

/// Messages processed at once per instance; more wait in the subscription's buffer.
const MAX_IN_FLIGHT: usize = 256;

/// Serves intake until `shutdown` completes (or the connection closes). On shutdown the
/// subscription is drained — no new messages, the buffered ones still handled — and every
/// message in hand is finished before this returns; the connection stays open for them.
pub async fn serve_intake<L: EventLog, R: RejectedStore>(
    client: async_nats::Client,
    service: Arc<IntakeService<L, R>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), async_nats::SubscribeError> {
    let mut subscription = client
        .queue_subscribe(
            format!("{INTAKE_SUBJECT_PREFIX}.>"),
            INTAKE_QUEUE_GROUP.to_owned(),
        )
        .await?;
    info!(subject = %format!("{INTAKE_SUBJECT_PREFIX}.>"), queue = INTAKE_QUEUE_GROUP, "intake listening");
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    tokio::pin!(shutdown);
    let mut draining = false;
    loop {
        let message = tokio::select! {
            message = subscription.next() => message,
            _ = &mut shutdown, if !draining => {
                draining = true;
                if let Err(error) = subscription.drain().await {
                    warn!(%error, "could not drain the intake subscription");
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
            let headers = message
                .headers
                .as_ref()
                .map(|headers| {
                    headers
                        .iter()
                        .flat_map(|(name, values)| {
                            let name: &str = name.as_ref();
                            values
                                .iter()
                                .map(move |v| (name.to_owned(), v.as_str().to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let reply = service
                .process(IncomingMessage {
                    subject: message.subject.to_string(),
                    headers,
                    payload: message.payload.clone(),
                })
                .await;
            if let Some(reply_to) = message.reply {
                let body = serde_json::to_vec(&reply).expect("intake replies serialize");
                if let Err(error) = client.publish(reply_to, body.into()).await {
                    warn!(%error, "could not send intake reply");
                }
            } else if let IntakeReply::Rejected { code, .. } = &reply {
                info!(code = %code, "rejected a message sent without a reply subject");
            }
        });
    }
    // The subscription ended (the client is draining): let the messages in hand finish, so
    // a shutdown never drops a message between validation and its commit.
    let _all = permits.acquire_many(MAX_IN_FLIGHT as u32).await;
    info!("intake stopped");
    Ok(())
}

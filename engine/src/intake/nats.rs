//! The NATS front of intake: a queue-group subscription on `wangge.intake.>`.
//!
//! Every engine instance joins the same queue group, so each message is handled by exactly
//! one of them. A message with a reply subject gets the JSON [`IntakeReply`]; one without is
//! processed the same way and its outcome only logged. Senders that must not lose a report
//! use request-reply and retry on timeout or "no responders": the derived case id makes
//! retries harmless.

use std::sync::Arc;

use wangge_schemas::intake::IntakeReply;

use crate::intake::rejected::RejectedStore;
use crate::intake::service::{IncomingMessage, IntakeService};
use crate::intake::INTAKE_SUBJECT_PREFIX;
use crate::log::EventLog;
use crate::nats::{serve_queue, QueueServer};

/// The queue group all engine instances share.
pub const INTAKE_QUEUE_GROUP: &str = "wangge-intake";

/// Messages processed at once per instance; more wait in the subscription's buffer.
const MAX_IN_FLIGHT: usize = 256;

/// Serves intake until `shutdown` completes (or the connection closes); see [`serve_queue`]
/// for the draining on shutdown.
pub async fn serve_intake<L: EventLog, R: RejectedStore>(
    client: async_nats::Client,
    service: Arc<IntakeService<L, R>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), async_nats::SubscribeError> {
    let server = QueueServer {
        name: "intake",
        subject: format!("{INTAKE_SUBJECT_PREFIX}.>"),
        queue_group: INTAKE_QUEUE_GROUP.to_owned(),
        max_in_flight: MAX_IN_FLIGHT,
    };
    serve_queue(
        client,
        server,
        move |message| {
            let service = service.clone();
            async move {
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
                let reply: IntakeReply = service
                    .process(IncomingMessage {
                        subject: message.subject.to_string(),
                        headers,
                        payload: message.payload.clone(),
                    })
                    .await;
                reply
            }
        },
        shutdown,
    )
    .await
}

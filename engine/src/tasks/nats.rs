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

use tracing::info;
use wangge_schemas::worker::WorkerReply;

use super::commands::{SupervisorDirectory, WorkerCommandService};
use super::WORKER_COMMAND_SUBJECT;
use crate::log::EventLog;
use crate::nats::{serve_queue, QueueServer};

/// The queue group all engine instances share.
pub const WORKER_QUEUE_GROUP: &str = "wangge-workers";

/// Commands processed at once per instance; more wait in the subscription's buffer.
const MAX_IN_FLIGHT: usize = 256;

/// Serves worker commands until `shutdown` completes (or the connection closes); see
/// [`serve_queue`] for the draining on shutdown.
pub async fn serve_worker_commands<L: EventLog, D: SupervisorDirectory>(
    client: async_nats::Client,
    service: Arc<WorkerCommandService<L, D>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), async_nats::SubscribeError> {
    let server = QueueServer {
        name: "worker commands",
        subject: WORKER_COMMAND_SUBJECT.to_owned(),
        queue_group: WORKER_QUEUE_GROUP.to_owned(),
        max_in_flight: MAX_IN_FLIGHT,
    };
    serve_queue(
        client,
        server,
        move |message| {
            let service = service.clone();
            async move {
                let headers = crate::nats::headers_of(&message);
                let reply = service.process_message(&headers, &message.payload).await;
                if let WorkerReply::Rejected { code, .. } = &reply {
                    info!(code = %code, "refused a worker command");
                }
                reply
            }
        },
        shutdown,
    )
    .await
}

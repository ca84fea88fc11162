//! The task inbox as a request-reply service, `wangge.workers.inbox`, for workers who have
//! no JetStream access of their own.
//!
//! Under the shipped NATS accounts a worker's connection lives in the `WORKERS` account and
//! reaches the engine only through imports of its request subjects; the task stream is in the
//! engine's account. The engine therefore reads the worker's durable inbox consumer for them:
//! a request acknowledges the receipts it carries, then fetches the next tasks, each with
//! the receipt (the delivery's JetStream acknowledgement subject) that acknowledges it. A
//! receipt is accepted only for the requesting worker's own consumer, so no worker can
//! acknowledge (and so hide) another's task. Under [`IdentityPolicy::Proven`] the worker is
//! the one NATS authenticated; a request naming anyone else is refused.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::{info, warn};
use wangge_schemas::worker::{
    is_valid_worker_id, DeliveredTask, InboxReply, InboxRequestV1, MAX_INBOX_FETCH,
    MAX_INBOX_WAIT_SECONDS,
};

use quick_cache::sync::Cache;

use super::inbox::{TaskError, TaskStreamConfig, WorkerInbox, INBOX_CONSUMER_PREFIX};
use crate::nats::{serve_queue, IdentityPolicy, IdentityRefusal, Party, QueueServer, Sender};

/// Workers fetch their tasks here (request-reply); every engine instance listens in the
/// queue group [`INBOX_QUEUE_GROUP`].
pub const WORKER_INBOX_SUBJECT: &str = "wangge.workers.inbox";
/// The queue group all engine instances share.
pub const INBOX_QUEUE_GROUP: &str = "wangge-inbox";
/// Largest inbox request accepted, in bytes.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Requests handled at once per instance; each may wait up to 20 s for a first task.
const MAX_IN_FLIGHT: usize = 256;
/// How long an acknowledgement may take before the request gives up on it.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Workers whose opened inbox is kept; the least recently asked are opened again.
const OPEN_INBOXES: usize = 10_000;

/// Serves inbox requests.
pub struct InboxService {
    client: async_nats::Client,
    config: TaskStreamConfig,
    identity: IdentityPolicy,
    /// Inboxes opened before: opening one checks the task stream and the worker's consumer
    /// on the server, which a worker's every poll need not repeat.
    inboxes: Cache<String, Arc<WorkerInbox>>,
}

fn refusal(code: &str, field: Option<&str>, reason: impl Into<String>) -> InboxReply {
    InboxReply::Rejected {
        code: code.to_owned(),
        field: field.map(str::to_owned),
        reason: reason.into(),
    }
}

fn identity_refusal(refusal: IdentityRefusal) -> InboxReply {
    InboxReply::Rejected {
        code: refusal.code.to_owned(),
        field: refusal.field.map(str::to_owned),
        reason: refusal.reason,
    }
}

impl InboxService {
    pub fn new(
        client: async_nats::Client,
        config: TaskStreamConfig,
        identity: IdentityPolicy,
    ) -> Self {
        Self {
            client,
            config,
            identity,
            inboxes: Cache::new(OPEN_INBOXES),
        }
    }

    /// The worker's inbox, opened on first use.
    async fn inbox(&self, worker_id: &str) -> Result<Arc<WorkerInbox>, TaskError> {
        if let Some(inbox) = self.inboxes.get(worker_id) {
            return Ok(inbox);
        }
        let inbox =
            Arc::new(WorkerInbox::open(self.client.clone(), worker_id, &self.config).await?);
        self.inboxes.insert(worker_id.to_owned(), inbox.clone());
        Ok(inbox)
    }

    /// Handles one request and returns the reply for its sender.
    pub async fn process(&self, headers: &[(String, String)], payload: &[u8]) -> InboxReply {
        let sender = match self.identity.sender(headers) {
            Ok(sender) => sender,
            Err(refusal) => return identity_refusal(refusal),
        };
        if payload.len() > MAX_REQUEST_BYTES {
            return refusal(
                "payload_too_large",
                None,
                format!("{} bytes, the limit is {MAX_REQUEST_BYTES}", payload.len()),
            );
        }
        let request: InboxRequestV1 = match serde_json::from_slice(payload) {
            Ok(request) => request,
            Err(error) => return refusal("malformed_json", None, error.to_string()),
        };
        let worker_id = match whose_inbox(&sender, request.worker_id.as_deref()) {
            Ok(worker_id) => worker_id,
            Err(reply) => return reply,
        };
        if request.max > MAX_INBOX_FETCH {
            return refusal(
                "invalid_value",
                Some("max"),
                format!("`max` is at most {MAX_INBOX_FETCH}, got {}", request.max),
            );
        }
        if request.wait_seconds > MAX_INBOX_WAIT_SECONDS {
            return refusal(
                "invalid_value",
                Some("wait_seconds"),
                format!(
                    "`wait_seconds` is at most {MAX_INBOX_WAIT_SECONDS}, got {}",
                    request.wait_seconds
                ),
            );
        }
        if request.ack.len() > MAX_INBOX_FETCH {
            return refusal(
                "too_many_items",
                Some("ack"),
                format!(
                    "{} receipts, the limit is {MAX_INBOX_FETCH}",
                    request.ack.len()
                ),
            );
        }
        for (index, receipt) in request.ack.iter().enumerate() {
            if !is_receipt_of(receipt, &self.config.stream_name, &worker_id) {
                return refusal(
                    "invalid_value",
                    Some(&format!("ack[{index}]")),
                    format!("not a receipt of a task in the inbox of `{worker_id}`"),
                );
            }
        }
        let mut acknowledged = 0;
        for receipt in &request.ack {
            match tokio::time::timeout(
                ACK_TIMEOUT,
                self.client
                    .request(receipt.clone(), Bytes::from_static(b"+ACK")),
            )
            .await
            {
                Ok(Ok(_)) => acknowledged += 1,
                // An acknowledgement too late for its delivery is not an error: the task
                // comes again, and task messages are idempotent by their case sequence.
                Ok(Err(error)) => warn!(%worker_id, %error, "could not acknowledge a task"),
                Err(_) => warn!(%worker_id, "acknowledging a task timed out"),
            }
        }
        let inbox = match self.inbox(&worker_id).await {
            Ok(inbox) => inbox,
            Err(error) => return refusal("unavailable", None, error.to_string()),
        };
        let fetched = match inbox
            .fetch(request.max, Duration::from_secs(request.wait_seconds))
            .await
        {
            Ok(fetched) => fetched,
            Err(error) => {
                // The consumer (or the stream) may be gone: open it afresh next time.
                self.inboxes.remove(&worker_id);
                return refusal("unavailable", None, error.to_string());
            }
        };
        let tasks: Vec<DeliveredTask> = fetched
            .into_iter()
            .filter_map(|task| {
                let receipt = task.receipt()?.to_owned();
                Some(DeliveredTask {
                    task: task.task,
                    receipt,
                })
            })
            .collect();
        info!(%worker_id, acknowledged, delivered = tasks.len(), "inbox request served");
        InboxReply::Tasks {
            acknowledged,
            tasks,
        }
    }
}

/// Whose inbox a request may read: the proven worker's own; under claimed identities the
/// one it names.
fn whose_inbox(sender: &Sender, named: Option<&str>) -> Result<String, InboxReply> {
    let worker_id = match (sender, named) {
        (Sender::Proven(Party::Worker(user)), None) => user.clone(),
        (Sender::Proven(Party::Worker(user)), Some(named)) if named == user => user.clone(),
        (Sender::Proven(Party::Worker(user)), Some(named)) => {
            return Err(identity_refusal(IdentityRefusal::mismatch(
                "worker_id",
                format!(
                    "this connection is authenticated as `{user}`, who may read only their own inbox, not `{named}`'s"
                ),
            )))
        }
        (Sender::Proven(_), _) => {
            return Err(identity_refusal(IdentityRefusal::forbidden(
                "only grid workers have task inboxes",
            )))
        }
        (Sender::Claimed, Some(named)) => named.to_owned(),
        (Sender::Claimed, None) => {
            return Err(refusal(
                "missing_field",
                Some("worker_id"),
                "`worker_id` names the inbox to read",
            ))
        }
    };
    if !is_valid_worker_id(&worker_id) {
        return Err(refusal(
            "invalid_value",
            Some("worker_id"),
            format!("`{worker_id}` is not a worker id: 1 to 64 ASCII letters, digits, `-` or `_`"),
        ));
    }
    Ok(worker_id)
}

/// Whether `receipt` acknowledges a delivery of `worker_id`'s inbox consumer on `stream`:
/// `$JS.ACK.[<domain>.<account hash>.]<stream>.<consumer>.<delivered>.<stream seq>.…`, with
/// no wildcard and no empty token.
pub fn is_receipt_of(receipt: &str, stream: &str, worker_id: &str) -> bool {
    let Some(rest) = receipt.strip_prefix("$JS.ACK.") else {
        return false;
    };
    let tokens: Vec<&str> = rest.split('.').collect();
    if tokens
        .iter()
        .any(|token| token.is_empty() || token.contains(['*', '>', ' ', '\t', '\r', '\n']))
    {
        return false;
    }
    let consumer = format!("{INBOX_CONSUMER_PREFIX}{worker_id}");
    // The stream and consumer come first (old form, 7 more tokens) or after the domain and
    // account hash (new form, 9 or more); the numbers follow them.
    let at = match tokens.len() {
        7 => 0,
        n if n >= 9 => 2,
        _ => return false,
    };
    tokens[at] == stream
        && tokens[at + 1] == consumer
        && tokens[at + 2..at + 5]
            .iter()
            .all(|token| token.bytes().all(|b| b.is_ascii_digit()))
}

/// Serves inbox requests until `shutdown` completes (or the connection closes).
pub async fn serve_worker_inbox(
    client: async_nats::Client,
    service: Arc<InboxService>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), async_nats::SubscribeError> {
    let server = QueueServer {
        name: "worker inbox",
        subject: WORKER_INBOX_SUBJECT.to_owned(),
        queue_group: INBOX_QUEUE_GROUP.to_owned(),
        max_in_flight: MAX_IN_FLIGHT,
    };
    serve_queue(
        client,
        server,
        move |message| {
            let service = service.clone();
            async move {
                let headers = crate::nats::headers_of(&message);
                service.process(&headers, &message.payload).await
            }
        },
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_is_accepted_only_for_the_workers_own_consumer() {
        let old = "$JS.ACK.WANGGE_TASKS.inbox-w-1.1.42.7.1733260000000000000.0";
        assert!(is_receipt_of(old, "WANGGE_TASKS", "w-1"));
        assert!(!is_receipt_of(old, "WANGGE_TASKS", "w-2"));
        assert!(!is_receipt_of(old, "WANGGE_EVENTS", "w-1"));
        let new = "$JS.ACK.hub.ACCHASH.WANGGE_TASKS.inbox-w-1.1.42.7.1733260000000000000.0.abc";
        assert!(is_receipt_of(new, "WANGGE_TASKS", "w-1"));
    }

    #[test]
    fn anything_else_is_not_a_receipt() {
        for bad in [
            "wangge.events.x",
            "$JS.ACK.WANGGE_TASKS.inbox-w-1.>",
            "$JS.ACK.WANGGE_TASKS.inbox-w-1.*.1.1.1.1",
            "$JS.ACK.WANGGE_TASKS.inbox-w-1.a.b.c.1.1",
            "$JS.ACK.WANGGE_TASKS.inbox-w-1..1.1.1.1",
            "$JS.API.STREAM.DELETE.WANGGE_EVENTS",
        ] {
            assert!(!is_receipt_of(bad, "WANGGE_TASKS", "w-1"), "{bad}");
        }
    }

    #[test]
    fn a_proven_worker_reads_only_their_own_inbox() {
        let worker = Sender::Proven(Party::Worker("w-1".into()));
        assert_eq!(whose_inbox(&worker, None).unwrap(), "w-1");
        assert_eq!(whose_inbox(&worker, Some("w-1")).unwrap(), "w-1");
        assert!(matches!(
            whose_inbox(&worker, Some("w-2")),
            Err(InboxReply::Rejected { code, .. }) if code == "identity_mismatch"
        ));
        let system = Sender::Proven(Party::IntakeSystem("hotline".into()));
        assert!(matches!(
            whose_inbox(&system, Some("w-1")),
            Err(InboxReply::Rejected { code, .. }) if code == "forbidden"
        ));
    }
}

//! Reading a stream in order from a position on, for as long as the reader lives: what the
//! event-log reader and the grid reader share.
//!
//! The messages come through an ordered pull consumer (ephemeral, no server-side state to
//! clean up). A consumer can be lost — the server restarted and forgot it, the connection
//! dropped, a pull stopped answering — so the reader replaces it whenever it fails, ends or
//! the client reconnects, starting just after the last message it delivered: it never ends,
//! skips or repeats a message. A failure is reported once, and the next call pauses and
//! subscribes again.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::{self, stream::Stream};
use futures::StreamExt;
use tracing::debug;

/// How long one pull waits on the server. An ordered consumer's heartbeat is a fraction of
/// it, so a consumer that silently stops delivering is replaced after about two of them.
const PULL_EXPIRY: Duration = Duration::from_secs(5);
/// Pause before a failed reader subscribes again.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// How often a reader looks at the client's connection count. A restarted server has
/// forgotten the reader's consumer, and the client library takes 10–15 s of retries to
/// notice; a reader that sees the client reconnected subscribes again at once instead.
const CONNECTION_CHECK: Duration = Duration::from_millis(100);

/// One message as read, with where it stands in the stream.
pub struct ReadMessage {
    pub message: jetstream::Message,
    /// Its stream sequence.
    pub position: u64,
    /// Messages after it in the stream (matching the filter) when it was delivered.
    pub pending: u64,
}

/// Reads the messages of `stream` matching a filter subject, in order, from a position on.
pub struct OrderedReader {
    stream: Stream,
    client: async_nats::Client,
    filter_subject: String,
    /// What is read, for logs ("log", "grid").
    what: &'static str,
    /// Position of the next message to deliver.
    next: u64,
    messages: Option<Ordered>,
    /// The last attempt failed: pause before subscribing again.
    failed: bool,
    /// The client's connection count when the current consumer was created.
    connects: u64,
}

impl OrderedReader {
    /// A reader of `stream` (reached through `client`) from position `from` on (1 at the
    /// least); it subscribes on its first `next`.
    pub fn new(
        stream: Stream,
        client: async_nats::Client,
        filter_subject: String,
        from: u64,
        what: &'static str,
    ) -> Self {
        Self {
            stream,
            client,
            filter_subject,
            what,
            next: from.max(1),
            messages: None,
            failed: false,
            connects: 0,
        }
    }

    /// The next message, waiting for one to be written if needed. An error (the server's or
    /// the client's, as text) is reported once and the reader carries on from the same
    /// position.
    pub async fn next(&mut self) -> Result<ReadMessage, String> {
        loop {
            let messages = match &mut self.messages {
                Some(messages) => messages,
                None => {
                    if self.failed {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    self.connects = connection_count(&self.client);
                    match subscribe(&self.stream, &self.filter_subject, self.next).await {
                        Ok(messages) => self.messages.insert(messages),
                        Err(error) => {
                            self.failed = true;
                            return Err(error);
                        }
                    }
                }
            };
            let next = tokio::select! {
                next = messages.next() => next,
                () = reconnection(&self.client, self.connects) => {
                    debug!(next = self.next, "{} reader reconnected; subscribing again", self.what);
                    self.messages = None;
                    continue;
                }
            };
            match next {
                Some(Ok(message)) => {
                    self.failed = false;
                    let info = message.info().map_err(|e| e.to_string())?;
                    let (position, pending) = (info.stream_sequence, info.pending);
                    if position < self.next {
                        continue; // delivered before the consumer was replaced
                    }
                    self.next = position + 1;
                    return Ok(ReadMessage {
                        message,
                        position,
                        pending,
                    });
                }
                Some(Err(error)) => {
                    debug!(%error, next = self.next, "{} reader failed; subscribing again", self.what);
                    self.messages = None;
                    self.failed = true;
                    return Err(error.to_string());
                }
                None => {
                    self.messages = None;
                    self.failed = true;
                }
            }
        }
    }
}

async fn subscribe(stream: &Stream, filter_subject: &str, from: u64) -> Result<Ordered, String> {
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter_subject.to_owned(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            max_expires: PULL_EXPIRY,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    consumer.messages().await.map_err(|e| e.to_string())
}

/// How many times the client has connected (a reconnection adds one).
pub fn connection_count(client: &async_nats::Client) -> u64 {
    client
        .statistics()
        .connects
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Completes once the client has connected again since it had made `connects` connections.
pub async fn reconnection(client: &async_nats::Client, connects: u64) {
    while connection_count(client) == connects {
        tokio::time::sleep(CONNECTION_CHECK).await;
    }
}

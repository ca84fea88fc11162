//! The SLA stream on JetStream: the durable, ordered home of the SLA reference data's
//! changes, and the follower that folds it into an instance's [`SharedSla`].
//!
//! One stream (`WANGGE_SLA`) with one subject (`wangge.sla.events`): an SLA event per
//! message, an [`SlaEventEnvelope`] as JSON, in the order the data changed. As for the grid,
//! every append is conditional on the position of the last SLA event the writer checked
//! against (`Nats-Expected-Last-Subject-Sequence`, 0 for an empty stream), so two publishes
//! checked against the same data cannot both be written; and it carries `Nats-Msg-Id` =
//! `sla:<event id>` (the id is derived from the sender's message), so a retry inside the
//! duplicate window is dropped by the server.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
};
use tracing::{debug, info, warn};
use wangge_domain::sla::LiveSla;
use wangge_schemas::sla::{decode_sla_event, SlaEventEnvelope};

use super::shared::{ProcessedSlaMessage, SharedSla};
use crate::nats::OrderedReader;

/// Header naming an SLA message's event type, for routers that do not parse the body.
pub const HEADER_SLA_EVENT_TYPE: &str = "Wangge-Sla-Event-Type";

/// How the SLA stream is set up. Defaults suit one server; set `replicas` to 3 on a cluster.
#[derive(Debug, Clone)]
pub struct SlaStreamConfig {
    pub stream_name: String,
    /// The one subject every SLA event is on.
    pub subject: String,
    /// 1 on one server, 3 on a cluster (as the grid stream).
    pub replicas: usize,
    /// How long the server remembers `Nats-Msg-Id`s; beyond it the live data's record of
    /// processed source messages answers a retry.
    pub duplicate_window: Duration,
    /// Largest SLA event accepted by the stream, in bytes: a command's limit and the
    /// envelope around it.
    pub max_event_bytes: i32,
}

impl Default for SlaStreamConfig {
    fn default() -> Self {
        Self {
            stream_name: "WANGGE_SLA".to_owned(),
            subject: "wangge.sla.events".to_owned(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_event_bytes: 1024 * 1024,
        }
    }
}

impl SlaStreamConfig {
    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream_name.clone(),
            description: Some(
                "Wangge SLA events: business calendars and policies published, in order".into(),
            ),
            // Exactly one subject: `wangge.sla.commands` (requests) must never be captured.
            subjects: vec![self.subject.clone()],
            storage: StorageType::File,
            num_replicas: self.replicas,
            retention: RetentionPolicy::Limits,
            // What was published is history (`wangge sla show --history`): kept forever.
            max_age: Duration::ZERO,
            max_messages: -1,
            max_bytes: -1,
            discard: DiscardPolicy::New,
            deny_delete: true,
            deny_purge: true,
            allow_rollup: false,
            allow_direct: true,
            duplicate_window: self.duplicate_window,
            max_message_size: self.max_event_bytes,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaStreamError {
    /// Someone wrote an SLA event after the one the writer checked against: fold the stream
    /// up to `actual` and check again.
    #[error("the sla stream moved on: expected its last event at {expected}, it is at {actual}")]
    Conflict { expected: u64, actual: u64 },
    #[error("sla stream unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(error: impl std::fmt::Display) -> SlaStreamError {
    SlaStreamError::Unavailable(error.to_string())
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaAppended {
    pub position: u64,
    /// The server had this event already (a retry inside the duplicate window).
    pub duplicate: bool,
}

/// One message read from the SLA stream.
#[derive(Debug, Clone)]
pub struct StoredSlaEvent {
    pub position: u64,
    /// The event, or why it could not be read (an unknown type or version: a newer engine
    /// wrote it).
    pub envelope: Result<SlaEventEnvelope, String>,
    /// Messages after this one already on the stream.
    pub pending: u64,
}

#[derive(Clone)]
pub struct SlaStream {
    context: jetstream::Context,
    stream: stream::Stream,
    config: SlaStreamConfig,
}

impl SlaStream {
    /// Creates the stream if missing and brings its settings up to date if it exists, so
    /// every engine instance (and the CLI) can call it at start-up.
    pub async fn open(
        client: async_nats::Client,
        config: SlaStreamConfig,
    ) -> Result<Self, SlaStreamError> {
        let context = jetstream::new(client);
        let stream = crate::nats::open_stream(&context, config.stream_config(), "sla")
            .await
            .map_err(SlaStreamError::Unavailable)?;
        Ok(Self {
            context,
            stream,
            config,
        })
    }

    pub fn config(&self) -> &SlaStreamConfig {
        &self.config
    }

    /// Position of the last SLA event on the stream; 0 when there is none.
    pub async fn head(&self) -> Result<u64, SlaStreamError> {
        let info = self.stream.get_info().await.map_err(unavailable)?;
        Ok(info.state.last_sequence)
    }

    /// Appends one SLA event, conditional on the stream's last SLA event being at
    /// `expected` (0: none).
    pub async fn append(
        &self,
        envelope: &SlaEventEnvelope,
        expected: u64,
    ) -> Result<SlaAppended, SlaStreamError> {
        let body = serde_json::to_vec(envelope).map_err(unavailable)?;
        let message = jetstream::message::PublishMessage::build()
            .payload(body.into())
            .message_id(format!("sla:{}", envelope.event_id))
            .expected_last_subject_sequence(expected)
            .header(HEADER_SLA_EVENT_TYPE, envelope.event_type());
        let ack = self
            .context
            .send_publish(self.config.subject.clone(), message)
            .await
            .map_err(unavailable)?
            .await;
        match ack {
            Ok(ack) => Ok(SlaAppended {
                position: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Err(error) => match crate::nats::streams::subject_moved_on(&error) {
                Some(actual) => {
                    // A cluster may not say where the subject is: somewhere past `expected`.
                    let actual = actual.unwrap_or(expected + 1);
                    debug!(expected, actual, "sla append conflict");
                    Err(SlaStreamError::Conflict { expected, actual })
                }
                None => Err(unavailable(error)),
            },
        }
    }

    /// Reads the stream in order from `from` and then follows it, through an ordered
    /// consumer that is replaced (from the next position) when it fails.
    pub fn read_from(&self, from: u64) -> SlaReader {
        SlaReader {
            reader: OrderedReader::new(
                self.stream.clone(),
                self.context.client(),
                self.config.subject.clone(),
                from,
                "sla",
            ),
        }
    }

    /// Every SLA event from position 1 up to the head the stream has now, in order: the
    /// published revisions (`wangge sla show --history`).
    pub async fn history(&self) -> Result<Vec<StoredSlaEvent>, SlaStreamError> {
        let head = self.head().await?;
        let mut reader = self.read_from(1);
        let mut events = Vec::new();
        while events
            .last()
            .map_or(0, |last: &StoredSlaEvent| last.position)
            < head
        {
            events.push(reader.next().await?);
        }
        Ok(events)
    }
}

/// Reads the SLA stream in order; see [`SlaStream::read_from`].
pub struct SlaReader {
    reader: OrderedReader,
}

impl SlaReader {
    /// The next message, waiting for one to be written if needed. An error is reported
    /// once and the reader carries on from the same position.
    pub async fn next(&mut self) -> Result<StoredSlaEvent, SlaStreamError> {
        let read = self
            .reader
            .next()
            .await
            .map_err(SlaStreamError::Unavailable)?;
        let envelope = serde_json::from_slice(&read.message.payload)
            .map_err(|error| error.to_string())
            .and_then(|value| decode_sla_event(value).map_err(|e| e.to_string()));
        Ok(StoredSlaEvent {
            position: read.position,
            envelope,
            pending: read.pending,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Following the stream into the live data
// ---------------------------------------------------------------------------------------

/// Folds the SLA stream into a [`SharedSla`], in order, from wherever the shared data is.
pub struct SlaFollower {
    shared: SharedSla,
    working: LiveSla,
    reader: SlaReader,
    stream: SlaStream,
}

impl SlaFollower {
    pub fn new(stream: SlaStream, shared: SharedSla) -> Self {
        let working = LiveSla::clone(&shared.snapshot());
        let reader = stream.read_from(working.position() + 1);
        Self {
            shared,
            working,
            reader,
            stream,
        }
    }

    /// Folds every SLA event the stream holds now, then publishes the data once. An engine
    /// calls it before it starts deciding anything, so no deadline is computed on older
    /// calendars than the stream had when it started. Returns the position reached.
    pub async fn catch_up(&mut self) -> Result<u64, SlaStreamError> {
        let head = self.stream.head().await?;
        while self.working.position() < head {
            match self.reader.next().await {
                Ok(stored) => self.fold(stored),
                Err(error) => warn!(%error, "sla follower could not read; retrying"),
            }
        }
        self.shared.publish(self.working.clone());
        info!(
            position = self.working.position(),
            events = self.working.events(),
            refused = self.working.refused(),
            calendars = self.working.calendars().ids().count(),
            policies = self.working.policies().policies().count(),
            "sla data caught up with the sla stream"
        );
        Ok(self.working.position())
    }

    /// Follows the stream until `shutdown`, publishing the data after each event (after the
    /// last of a burst already on the stream).
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let stored = tokio::select! {
                stored = self.reader.next() => stored,
                () = &mut shutdown => break,
            };
            match stored {
                Ok(stored) => {
                    let pending = stored.pending;
                    self.fold(stored);
                    if pending == 0 {
                        self.shared.publish(self.working.clone());
                    }
                }
                Err(error) => warn!(%error, "sla follower could not read; retrying"),
            }
        }
    }

    fn fold(&mut self, stored: StoredSlaEvent) {
        let position = stored.position;
        match stored.envelope {
            Ok(envelope) => {
                self.shared.record(
                    envelope.source.clone(),
                    ProcessedSlaMessage {
                        position,
                        event_id: envelope.event_id,
                        event_type: envelope.event_type(),
                        published: envelope.event.published(),
                    },
                );
                match self.working.fold(position, &envelope) {
                    Ok(()) => info!(
                        position,
                        event_type = envelope.event_type(),
                        published = ?envelope.event.published(),
                        actor = %envelope.actor.id,
                        "sla data changed"
                    ),
                    Err(error) => warn!(
                        position,
                        event_id = %envelope.event_id,
                        event_type = envelope.event_type(),
                        %error,
                        "sla event refused by this instance's data; skipped (does this instance load the same sla files as the others?)"
                    ),
                }
            }
            Err(reason) => {
                warn!(position, %reason, "unreadable sla event skipped");
                self.working.skip(position);
            }
        }
    }
}

//! The grid stream on JetStream: the durable, ordered home of the city's grid events.
//!
//! One stream (`WANGGE_GRID`) with one subject (`wangge.grid.events`): a grid event per
//! message, a [`GridEventEnvelope`] as JSON, in the order the grid changed. Every append is
//! conditional on the position of the last grid event the writer checked it against
//! (`Nats-Expected-Last-Subject-Sequence`, 0 for an empty stream), so two changes checked
//! against the same grid cannot both be written; and it carries `Nats-Msg-Id` =
//! `grid:<event id>` (the id is derived from the sender's message), so a retry inside the
//! duplicate window is dropped by the server.
//!
//! [`GridFollower`] reads the stream from the start into a [`SharedGrid`]: first up to the
//! head the stream had when it started ([`GridFollower::catch_up`]), then every new event as
//! it arrives ([`GridFollower::run`]).

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
};
use tracing::{debug, info, warn};
use wangge_schemas::grid::{decode_grid_event, GridEventEnvelope};

use super::shared::{ProcessedGridMessage, SharedGrid};
use super::LiveGrid;
use crate::nats::OrderedReader;

/// Header naming a grid message's event type, for routers that do not parse the body.
pub const HEADER_GRID_EVENT_TYPE: &str = "Wangge-Grid-Event-Type";

/// How the grid stream is set up. Defaults suit one server; set `replicas` to 3 on a cluster.
#[derive(Debug, Clone)]
pub struct GridStreamConfig {
    pub stream_name: String,
    /// The one subject every grid event of the city is on.
    pub subject: String,
    /// 1 on one server, 3 on a cluster.
    pub replicas: usize,
    /// How long the server remembers `Nats-Msg-Id`s; beyond it the live grid's record of
    /// processed source messages answers a retry.
    pub duplicate_window: Duration,
    /// Largest grid event accepted by the stream, in bytes.
    pub max_event_bytes: i32,
}

impl Default for GridStreamConfig {
    fn default() -> Self {
        Self {
            stream_name: "WANGGE_GRID".to_owned(),
            subject: "wangge.grid.events".to_owned(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_event_bytes: 256 * 1024,
        }
    }
}

impl GridStreamConfig {
    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream_name.clone(),
            description: Some("Wangge grid events: the city's grid changes, in order".into()),
            // Exactly one subject: `wangge.grid.commands` (requests) must never be captured.
            subjects: vec![self.subject.clone()],
            storage: StorageType::File,
            num_replicas: self.replicas,
            retention: RetentionPolicy::Limits,
            // Grid events are facts: kept forever, never deleted or purged.
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
pub enum GridStreamError {
    /// Someone wrote a grid event after the one the writer checked against: fold the
    /// stream up to `actual` and check again.
    #[error("the grid stream moved on: expected its last event at {expected}, it is at {actual}")]
    Conflict { expected: u64, actual: u64 },
    #[error("grid stream unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(error: impl std::fmt::Display) -> GridStreamError {
    GridStreamError::Unavailable(error.to_string())
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridAppended {
    pub position: u64,
    /// The server had this event already (a retry inside the duplicate window).
    pub duplicate: bool,
}

/// One message read from the grid stream.
#[derive(Debug, Clone)]
pub struct StoredGridEvent {
    pub position: u64,
    /// The event, or why it could not be read (an unknown type or version: a newer
    /// engine wrote it).
    pub envelope: Result<GridEventEnvelope, String>,
    /// Messages after this one already on the stream.
    pub pending: u64,
}

#[derive(Clone)]
pub struct GridStream {
    context: jetstream::Context,
    stream: stream::Stream,
    config: GridStreamConfig,
}

impl GridStream {
    /// Creates the stream if missing and brings its settings up to date if it exists, so
    /// every engine instance (and the CLI) can call it at start-up.
    pub async fn open(
        client: async_nats::Client,
        config: GridStreamConfig,
    ) -> Result<Self, GridStreamError> {
        let context = jetstream::new(client);
        let stream = crate::nats::open_stream(&context, config.stream_config(), "grid")
            .await
            .map_err(GridStreamError::Unavailable)?;
        Ok(Self {
            context,
            stream,
            config,
        })
    }

    pub fn config(&self) -> &GridStreamConfig {
        &self.config
    }

    /// Position of the last grid event on the stream; 0 when there is none.
    pub async fn head(&self) -> Result<u64, GridStreamError> {
        let info = self.stream.get_info().await.map_err(unavailable)?;
        Ok(info.state.last_sequence)
    }

    /// Appends one grid event, conditional on the stream's last grid event being at
    /// `expected` (0: none).
    pub async fn append(
        &self,
        envelope: &GridEventEnvelope,
        expected: u64,
    ) -> Result<GridAppended, GridStreamError> {
        let body = serde_json::to_vec(envelope).expect("grid events serialize");
        let message = jetstream::message::PublishMessage::build()
            .payload(body.into())
            .message_id(format!("grid:{}", envelope.event_id))
            .expected_last_subject_sequence(expected)
            .header(HEADER_GRID_EVENT_TYPE, envelope.event_type());
        let ack = self
            .context
            .send_publish(self.config.subject.clone(), message)
            .await
            .map_err(unavailable)?
            .await;
        match ack {
            Ok(ack) => Ok(GridAppended {
                position: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Err(error) => match crate::nats::streams::subject_moved_on(&error) {
                Some(actual) => {
                    // A cluster may not say where the subject is: somewhere past `expected`.
                    let actual = actual.unwrap_or(expected + 1);
                    debug!(expected, actual, "grid append conflict");
                    Err(GridStreamError::Conflict { expected, actual })
                }
                None => Err(unavailable(error)),
            },
        }
    }

    /// Reads the stream in order from `from` and then follows it, through an ordered
    /// consumer that is replaced (from the next position) when it fails.
    pub fn read_from(&self, from: u64) -> GridReader {
        GridReader {
            reader: OrderedReader::new(
                self.stream.clone(),
                self.context.client(),
                self.config.subject.clone(),
                from,
                "grid",
            ),
        }
    }
}

/// Reads the grid stream in order; see [`GridStream::read_from`].
pub struct GridReader {
    reader: OrderedReader,
}

impl GridReader {
    /// The next message, waiting for one to be written if needed. An error is reported
    /// once and the reader carries on from the same position.
    pub async fn next(&mut self) -> Result<StoredGridEvent, GridStreamError> {
        let read = self
            .reader
            .next()
            .await
            .map_err(GridStreamError::Unavailable)?;
        let envelope = serde_json::from_slice(&read.message.payload)
            .map_err(|error| error.to_string())
            .and_then(|value| decode_grid_event(value).map_err(|e| e.to_string()));
        Ok(StoredGridEvent {
            position: read.position,
            envelope,
            pending: read.pending,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Following the stream into the live grid
// ---------------------------------------------------------------------------------------

/// Folds the grid stream into a [`SharedGrid`], in order, from wherever the shared grid is.
pub struct GridFollower {
    shared: SharedGrid,
    working: LiveGrid,
    reader: GridReader,
    stream: GridStream,
}

impl GridFollower {
    pub fn new(stream: GridStream, shared: SharedGrid) -> Self {
        let working = LiveGrid::clone(&shared.snapshot());
        let reader = stream.read_from(working.position() + 1);
        Self {
            shared,
            working,
            reader,
            stream,
        }
    }

    /// Folds every grid event the stream holds now, then publishes the grid once. An
    /// engine calls it before it starts deciding anything, so it never decides on an older
    /// grid than the stream had when it started. Returns the position reached.
    pub async fn catch_up(&mut self) -> Result<u64, GridStreamError> {
        let head = self.stream.head().await?;
        while self.working.position() < head {
            match self.reader.next().await {
                Ok(stored) => self.fold(stored),
                Err(error) => warn!(%error, "grid follower could not read; retrying"),
            }
        }
        self.shared.publish(self.working.clone());
        info!(
            position = self.working.position(),
            events = self.working.events(),
            refused = self.working.refused(),
            "grid caught up with the grid stream"
        );
        Ok(self.working.position())
    }

    /// Follows the stream until `shutdown`, publishing the grid after each event (after
    /// the last of a burst already on the stream).
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
                Err(error) => warn!(%error, "grid follower could not read; retrying"),
            }
        }
    }

    fn fold(&mut self, stored: StoredGridEvent) {
        let position = stored.position;
        match stored.envelope {
            Ok(envelope) => {
                self.shared.record(
                    envelope.source.clone(),
                    ProcessedGridMessage {
                        position,
                        event_id: envelope.event_id,
                        event_type: envelope.event_type(),
                    },
                );
                match self.working.fold(position, &envelope) {
                    Ok(()) => debug!(
                        position,
                        event_type = envelope.event_type(),
                        "grid event applied"
                    ),
                    Err(error) => warn!(
                        position,
                        event_id = %envelope.event_id,
                        event_type = envelope.event_type(),
                        %error,
                        "grid event refused by this grid; skipped (does this instance load the same grid file as the others?)"
                    ),
                }
            }
            Err(reason) => {
                warn!(position, %reason, "unreadable grid event skipped");
                self.working.skip(position);
            }
        }
    }
}

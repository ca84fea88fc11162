//! The event log on NATS JetStream.
//!
//! - One stream (`WANGGE_EVENTS` by default) holds every case; each case has its own
//!   subject `wangge.events.<shard>.<case_id>`, where `<shard>` is two hex digits taken from
//!   the case id, so the subject follows from the case id alone and consumers can split the
//!   log into 256 fixed partitions by subject filter.
//! - One command = one message holding all its events (a JSON array), published with
//!   `Nats-Expected-Last-Subject-Sequence` (optimistic concurrency, 0 for a new case) and
//!   `Nats-Msg-Id` (deduplication inside the stream's duplicate window).
//! - Each commit lists, in a header, the positions of the case's earlier commits. A case is
//!   loaded with one direct get of its subject's last message, then one round of pipelined
//!   direct gets by position: two round trips whatever the stream's size, no consumer, and
//!   served by any replica (the measurements behind this choice are in `benches/RESULTS.md`,
//!   "How the load mechanism was chosen").
//! - The whole log is read in order through an ordered consumer.
//! - Given a seal key, every commit carries the engine's seal in `Wangge-Seal` and
//!   `Wangge-Seal-Link` (`crate::domain::seal`): signed over the payload bytes published,
//!   linked to the case's previous commit (known from the load or the last append, otherwise
//!   one direct get of the commit at the expected position). Readers hand the headers and
//!   the payload's SHA-256 on (`StoredCommit::seal`); nothing here trusts them.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{self, DirectGetErrorKind, DiscardPolicy, RetentionPolicy, StorageType},
};
use futures::stream::{BoxStream, StreamExt};
use tracing::debug;
use wangge_schemas::CaseId;

use super::codec::{
    decode_events, encode_events, event_types, HEADER_CASE_ID, HEADER_EARLIER_POSITIONS,
    HEADER_EVENT_TYPES, HEADER_FIRST_SEQUENCE, HEADER_LAST_SEQUENCE,
};
use super::group_commit::Publisher;
use super::{
    Appended, CaseHistory, Commit, EventLog, LogError, LogPosition, SealKey, StoredCommit,
};
use crate::domain::commit::StoredSeal;
use crate::domain::seal::{
    next_link_after, payload_digest, SealLink, GENESIS_LINK, HEADER_SEAL, HEADER_SEAL_LINK,
};
use crate::nats::OrderedReader;
use std::sync::Arc;

/// How the event stream is set up. Defaults suit one server; set `replicas` to 3 on a cluster.
#[derive(Debug, Clone)]
pub struct JetStreamLogConfig {
    pub stream_name: String,
    /// Subjects are `<subject_prefix>.<shard>.<case_id>`.
    pub subject_prefix: String,
    /// 1 on one server, 3 on a cluster (survives the loss of one node).
    pub replicas: usize,
    /// How long the server remembers `Nats-Msg-Id`s. Retries after this window are still
    /// harmless: the application checks the case's own history for the source message id.
    pub duplicate_window: Duration,
    /// Largest commit accepted by the stream, in bytes.
    pub max_commit_bytes: i32,
    /// Group commit: concurrent appends are published as atomic batches, so one fsync covers
    /// many (`super::group_commit`). Off, every append is a publish of its own.
    pub group_commit: bool,
    /// Atomic batches in flight at once from one log handle (with `group_commit`).
    pub batches_in_flight: usize,
}

impl Default for JetStreamLogConfig {
    fn default() -> Self {
        Self {
            stream_name: "WANGGE_EVENTS".to_owned(),
            subject_prefix: "wangge.events".to_owned(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_commit_bytes: 1024 * 1024,
            group_commit: true,
            batches_in_flight: super::group_commit::DEFAULT_BATCHES_IN_FLIGHT,
        }
    }
}

impl JetStreamLogConfig {
    /// The subject that holds one case's commits.
    pub fn case_subject(&self, case_id: CaseId) -> String {
        format!("{}.{}.{}", self.subject_prefix, shard_of(case_id), case_id)
    }

    /// The stream as the engine creates it (benchmarks create variants of it).
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream_name.clone(),
            description: Some(
                "Wangge case events: one subject per case, one message per command".into(),
            ),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            storage: StorageType::File,
            num_replicas: self.replicas,
            retention: RetentionPolicy::Limits,
            // Events are facts: kept forever, never deleted or purged.
            max_age: Duration::ZERO,
            max_messages: -1,
            max_bytes: -1,
            discard: DiscardPolicy::New,
            deny_delete: true,
            deny_purge: true,
            allow_rollup: false,
            allow_direct: true,
            duplicate_window: self.duplicate_window,
            max_message_size: self.max_commit_bytes,
            // Group commit's atomic batches; turning it on never weakens the stream.
            allow_atomic_publish: true,
            ..Default::default()
        }
    }
}

/// The partition token of a case's subject: the last byte of its id, in hex.
///
/// Both UUIDv7 (random tail) and derived UUIDv8 (hash tail) spread evenly over 256 shards.
pub fn shard_of(case_id: CaseId) -> String {
    format!("{:02x}", case_id.0.as_bytes()[15])
}

#[derive(Clone)]
pub struct JetStreamLog {
    context: jetstream::Context,
    /// Where appends go: one by one or grouped into atomic batches.
    publisher: Publisher,
    stream: stream::Stream,
    config: JetStreamLogConfig,
    /// Seals every commit appended through this handle; `None` appends unsealed commits
    /// (readers and tests: `wangge serve` always seals).
    seal_key: Option<Arc<SealKey>>,
}

impl JetStreamLog {
    /// Creates the stream if missing, brings its settings up to date if it exists (so every
    /// engine instance can call this at start-up), and returns the log.
    pub async fn open(
        client: async_nats::Client,
        config: JetStreamLogConfig,
    ) -> Result<Self, LogError> {
        let context = jetstream::new(client);
        let stream = crate::nats::open_stream(&context, config.stream_config(), "event")
            .await
            .map_err(LogError::Unavailable)?;
        let publisher = if config.group_commit {
            Publisher::grouped(context.clone(), config.batches_in_flight)
        } else {
            Publisher::single(context.clone())
        };
        Ok(Self {
            context,
            publisher,
            stream,
            config,
            seal_key: None,
        })
    }

    /// Seals every commit this log appends with `key`.
    pub fn with_seal_key(mut self, key: Arc<SealKey>) -> Self {
        self.seal_key = Some(key);
        self
    }

    /// The link a commit after `expected` signs, read from the commit at `expected` (one
    /// direct get; only for appends made without the case's history). Where there is no
    /// such commit, the conditional append is refused anyway.
    async fn link_after(&self, expected: LogPosition) -> Result<SealLink, LogError> {
        if expected == 0 {
            return Ok(GENESIS_LINK);
        }
        match self.stream.direct_get(expected).await {
            Ok(message) => Ok(next_link_after(
                message.headers.get(HEADER_SEAL).map(|value| value.as_str()),
            )),
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => Ok(GENESIS_LINK),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// How well appends through this handle have shared their fsyncs (`None` without group
    /// commit).
    pub fn group_commit_figures(&self) -> Option<super::group_commit::GroupCommitFigures> {
        self.publisher.stats()
    }

    pub fn config(&self) -> &JetStreamLogConfig {
        &self.config
    }

    fn subject_case(&self, subject: &str) -> Result<CaseId, String> {
        subject
            .rsplit('.')
            .next()
            .and_then(|token| token.parse().ok())
            .ok_or_else(|| format!("subject {subject} does not end in a case id"))
    }
}

fn unavailable(error: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(error.to_string())
}

/// How long a refused append waits for the append in flight on a clustered stream to become
/// readable, to learn where the case is: up to 50 × 20 ms.
const IN_FLIGHT_TRIES: u32 = 50;
const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// Most earlier positions a commit lists in [`HEADER_EARLIER_POSITIONS`]. A case with more
/// commits than this (rare: a typical case has 10–30) is loaded by walking its subject.
const MAX_LISTED_POSITIONS: usize = 512;

impl JetStreamLog {
    async fn publish_commit(
        &self,
        commit: Commit,
        expected: LogPosition,
        earlier: Option<&[LogPosition]>,
        known_link: Option<SealLink>,
    ) -> Result<Appended, LogError> {
        let (Some(first), Some(last)) = (commit.events.first(), commit.events.last()) else {
            return Err(LogError::Corrupt {
                position: 0,
                reason: "empty commit".into(),
            });
        };
        let subject = self.config.case_subject(commit.case_id);
        let payload = encode_events(&commit.events);
        // The seal signs the payload bytes exactly as published: encoded once, hashed once.
        let seal = match &self.seal_key {
            Some(key) => {
                let link = match known_link {
                    Some(link) if expected > 0 => link,
                    _ => self.link_after(expected).await?,
                };
                Some(key.seal_commit(commit.case_id, &commit.events, &payload, link))
            }
            None => None,
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            commit.idempotency_key.as_str(),
        );
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        headers.insert(HEADER_CASE_ID, commit.case_id.to_string().as_str());
        headers.insert(HEADER_FIRST_SEQUENCE, first.sequence.to_string().as_str());
        headers.insert(HEADER_LAST_SEQUENCE, last.sequence.to_string().as_str());
        headers.insert(HEADER_EVENT_TYPES, event_types(&commit.events).as_str());
        // The list is only written when it provably describes the case: it must end at the
        // position this commit is conditional on (or be empty for a new case).
        let listable = match earlier {
            Some(list) => {
                list.last().copied().unwrap_or(0) == expected && list.len() <= MAX_LISTED_POSITIONS
            }
            None => expected == 0,
        };
        if let Some(seal) = &seal {
            headers.insert(HEADER_SEAL, seal.header_value().as_str());
            headers.insert(HEADER_SEAL_LINK, seal.link_value().as_str());
        }
        if listable {
            headers.insert(
                HEADER_EARLIER_POSITIONS,
                encode_positions(earlier.unwrap_or_default()).as_str(),
            );
        }
        let ack = self
            .publisher
            .publish(subject.clone(), headers, payload)
            .await;
        match ack {
            Ok(stored) => Ok(Appended {
                position: stored.sequence,
                duplicate: stored.duplicate,
                // An unsealed commit is followed by the genesis link, as the rule says.
                next_seal_link: (!stored.duplicate)
                    .then(|| seal.map_or(GENESIS_LINK, |seal| seal.next_link())),
            }),
            Err(error) => match crate::nats::streams::subject_moved_on(&error) {
                Some(actual) => {
                    self.refused_append(&subject, &commit, expected, actual)
                        .await
                }
                None => Err(unavailable(error)),
            },
        }
    }

    /// The server refused an append because the case is no longer at `expected`. That is a
    /// conflict — unless what moved the case on is this very commit, stored by an earlier try
    /// whose acknowledgement was lost. A single nats-server (2.11 and later) checks the
    /// expected position before the duplicate window, so it cannot say so itself; the commit
    /// that directly follows `expected` on the case's subject can: it carries this commit's
    /// idempotency key as its `Nats-Msg-Id`. One direct get, only on a refusal.
    async fn refused_append(
        &self,
        subject: &str,
        commit: &Commit,
        expected: LogPosition,
        actual: Option<LogPosition>,
    ) -> Result<Appended, LogError> {
        // A clustered stream that refused because another append to the case is in flight
        // does not say where the case is: wait (briefly) for that append to become readable.
        let mut tries = 0;
        let next = loop {
            match self
                .stream
                .direct_get_next_for_subject(subject, Some(expected + 1))
                .await
            {
                Ok(next) => break Some(next),
                Err(_) if actual.is_none() && tries < IN_FLIGHT_TRIES => {
                    tries += 1;
                    tokio::time::sleep(IN_FLIGHT_WAIT).await;
                }
                Err(_) => break None,
            }
        };
        if let Some(next) = &next {
            let key = next
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|value| value.as_str());
            if key == Some(commit.idempotency_key.as_str()) {
                debug!(case_id = %commit.case_id, position = next.sequence, "append was already stored");
                return Ok(Appended {
                    position: next.sequence,
                    duplicate: true,
                    next_seal_link: None,
                });
            }
        }
        let actual = match (actual, next) {
            (Some(actual), _) => actual,
            (None, Some(next)) => self
                .stream
                .direct_get_last_for_subject(subject)
                .await
                .map_or(next.sequence, |last| last.sequence.max(next.sequence)),
            // The append in flight failed after all: the case is still where we expected.
            (None, None) => expected,
        };
        debug!(case_id = %commit.case_id, expected, actual, "append conflict");
        Err(LogError::Conflict {
            case_id: commit.case_id,
            expected,
            actual,
        })
    }

    fn decode_commit(
        &self,
        case_id: CaseId,
        message: &jetstream::message::StreamMessage,
    ) -> Result<Vec<wangge_schemas::EventEnvelope>, LogError> {
        decode_events(case_id, &message.payload).map_err(|reason| LogError::Corrupt {
            position: message.sequence,
            reason,
        })
    }

    /// Reads the listed earlier commits all at once: one round of pipelined direct gets.
    async fn load_listed(
        &self,
        case_id: CaseId,
        subject: &str,
        earlier: Vec<LogPosition>,
        last: jetstream::message::StreamMessage,
    ) -> Result<CaseHistory, LogError> {
        let messages = futures::future::try_join_all(
            earlier
                .iter()
                .map(|&position| self.stream.direct_get(position)),
        )
        .await
        .map_err(unavailable)?;
        let mut history = CaseHistory::default();
        for message in messages.iter().chain(std::iter::once(&last)) {
            if message.subject.as_str() != subject {
                return Err(LogError::Corrupt {
                    position: last.sequence,
                    reason: format!(
                        "listed position {} belongs to {}, not {subject}",
                        message.sequence, message.subject
                    ),
                });
            }
            history.events.extend(self.decode_commit(case_id, message)?);
            history.commit_positions.push(message.sequence);
        }
        history.last_position = last.sequence;
        history.next_seal_link = Some(next_link_of(&last));
        check_gapless(case_id, &history)?;
        Ok(history)
    }

    /// Walks the case's subject from the start up to its last commit, one get at a time.
    async fn load_walking(
        &self,
        case_id: CaseId,
        subject: &str,
        last: jetstream::message::StreamMessage,
    ) -> Result<CaseHistory, LogError> {
        let mut history = CaseHistory::default();
        let mut next_from = 1;
        while next_from < last.sequence {
            let message = self
                .stream
                .direct_get_next_for_subject(subject, Some(next_from))
                .await
                .map_err(unavailable)?;
            if message.sequence >= last.sequence {
                break;
            }
            history
                .events
                .extend(self.decode_commit(case_id, &message)?);
            history.commit_positions.push(message.sequence);
            next_from = message.sequence + 1;
        }
        history.events.extend(self.decode_commit(case_id, &last)?);
        history.commit_positions.push(last.sequence);
        history.last_position = last.sequence;
        history.next_seal_link = Some(next_link_of(&last));
        check_gapless(case_id, &history)?;
        Ok(history)
    }
}

/// A case's events must number 1, 2, 3, … across commits. Optimistic concurrency guarantees
/// it for the engine's own appends; a writer outside the engine (a foreign publisher on a case
/// subject) or a damaged store can break it, so a load checks rather than trusts.
fn check_gapless(case_id: CaseId, history: &CaseHistory) -> Result<(), LogError> {
    for (index, event) in history.events.iter().enumerate() {
        let expected = index as u64 + 1;
        if event.sequence != expected {
            return Err(LogError::Corrupt {
                position: history.last_position,
                reason: format!(
                    "case {case_id} has event sequence {} where {expected} belongs: two commits claim the same place (a server that broke optimistic concurrency?)",
                    event.sequence
                ),
            });
        }
    }
    Ok(())
}

/// The seal link the commit after `message` signs.
fn next_link_of(message: &jetstream::message::StreamMessage) -> SealLink {
    next_link_after(message.headers.get(HEADER_SEAL).map(|value| value.as_str()))
}

/// A read commit's seal headers, with the digest of its payload as stored.
fn stored_seal(headers: Option<&async_nats::HeaderMap>, payload: &[u8]) -> Option<StoredSeal> {
    let headers = headers?;
    let seal = headers.get(HEADER_SEAL)?.as_str().to_owned();
    Some(StoredSeal {
        seal,
        link: headers
            .get(HEADER_SEAL_LINK)
            .map(|value| value.as_str().to_owned()),
        payload_sha256: payload_digest(payload),
    })
}

fn encode_positions(positions: &[LogPosition]) -> String {
    positions
        .iter()
        .map(LogPosition::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_positions(text: &str) -> Option<Vec<LogPosition>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|p| p.trim().parse().ok()).collect()
}

impl EventLog for JetStreamLog {
    async fn append(&self, commit: Commit, expected: LogPosition) -> Result<Appended, LogError> {
        self.publish_commit(commit, expected, None, None).await
    }

    async fn append_after(
        &self,
        commit: Commit,
        history: &CaseHistory,
    ) -> Result<Appended, LogError> {
        let earlier = (history.commit_positions.last().copied().unwrap_or(0)
            == history.last_position)
            .then_some(history.commit_positions.as_slice());
        self.publish_commit(
            commit,
            history.last_position,
            earlier,
            history.next_seal_link,
        )
        .await
    }

    /// One direct get for the case's last commit; its header lists where the earlier
    /// commits are, and those are fetched together. Commits without the list (written by
    /// a writer that did not know it) fall back to walking the subject.
    async fn load(&self, case_id: CaseId) -> Result<CaseHistory, LogError> {
        let subject = self.config.case_subject(case_id);
        let last = match self.stream.direct_get_last_for_subject(&subject).await {
            Ok(message) => message,
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => {
                return Ok(CaseHistory::default())
            }
            Err(error) => return Err(unavailable(error)),
        };
        let listed = last
            .headers
            .get(HEADER_EARLIER_POSITIONS)
            .and_then(|value| decode_positions(value.as_str()));
        match listed {
            Some(earlier) => self.load_listed(case_id, &subject, earlier, last).await,
            None => self.load_walking(case_id, &subject, last).await,
        }
    }

    /// Follows the log through an ordered consumer. When the consumer fails (the server
    /// restarted and forgot it, the connection dropped) the failure is reported as
    /// `Unavailable` and a new consumer starts just after the last commit delivered, so the
    /// reader never ends, skips or repeats a commit.
    fn read_from(&self, from: LogPosition) -> BoxStream<'static, Result<StoredCommit, LogError>> {
        let reader = LogReader {
            log: self.clone(),
            reader: OrderedReader::new(
                self.stream.clone(),
                self.context.client(),
                format!("{}.>", self.config.subject_prefix),
                from,
                "log",
            ),
        };
        futures::stream::unfold(reader, |mut reader| async move {
            let item = reader.next_commit().await;
            Some((item, reader))
        })
        .boxed()
    }

    async fn head(&self) -> Result<LogPosition, LogError> {
        let info = self.stream.get_info().await.map_err(unavailable)?;
        Ok(info.state.last_sequence)
    }
}

/// The state behind [`JetStreamLog::read_from`]: the stream's messages, decoded.
struct LogReader {
    log: JetStreamLog,
    reader: OrderedReader,
}

impl LogReader {
    async fn next_commit(&mut self) -> Result<StoredCommit, LogError> {
        let read = self.reader.next().await.map_err(LogError::Unavailable)?;
        let position = read.position;
        let case_id = self
            .log
            .subject_case(&read.message.subject)
            .map_err(|reason| LogError::Corrupt { position, reason })?;
        let events = decode_events(case_id, &read.message.payload)
            .map_err(|reason| LogError::Corrupt { position, reason })?;
        let seal = stored_seal(read.message.headers.as_ref(), &read.message.payload);
        Ok(StoredCommit {
            position,
            case_id,
            events,
            seal,
        })
    }
}

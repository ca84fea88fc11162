//! The rejected-message store: every message the engine refused, kept byte for byte with its
//! headers and the reason, so an operator can see it, fix the cause and replay it.
//!
//! Intake messages, grid commands and SLA commands are kept here alike. On NATS it is a
//! stream of its own (`WANGGE_REJECTED`): the original message at
//! `wangge.rejected.message.<kind>` (`<kind>` is the intake kind, `grid_commands` or
//! `sla_commands`; body = original bytes, headers = original headers plus
//! `Wangge-Reject-*`; a sender's own `Nats-*` headers are stored as `Wangge-Sender-Nats-*` so
//! JetStream does not act on them), and each replay's outcome at `wangge.rejected.replay.<id>`.
//!
//! With the resident key store (`with_resident_keys`), bodies are kept sealed (they may hold
//! residents' personal data): under the resident's key or the day's key, named in
//! `Wangge-Sealed-Key`; see `docs/design/personal-data.md`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{self, DirectGetErrorKind, StorageType},
};
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wangge_schemas::grid::GridReply;
use wangge_schemas::intake::IntakeReply;
use wangge_schemas::sla::SlaReply;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::residents::{Opened, ResidentKeys};

/// Headers added to a kept message; everything else is the sender's own.
pub const HEADER_REJECT_CODE: &str = "Wangge-Reject-Code";
pub const HEADER_REJECT_FIELD: &str = "Wangge-Reject-Field";
pub const HEADER_REJECT_REASON: &str = "Wangge-Reject-Reason";
pub const HEADER_ORIGINAL_SUBJECT: &str = "Wangge-Original-Subject";
pub const HEADER_REJECTED_AT: &str = "Wangge-Rejected-At";
/// On a message whose body was cut to [`RejectedLimits::kept_of_oversized`]: its size as it
/// arrived, in bytes.
pub const HEADER_PAYLOAD_BYTES: &str = "Wangge-Payload-Bytes";
/// On a body kept sealed: the key it is sealed under (a resident's `rk-…`, or the day's
/// `day-YYYY-MM-DD`), and the nonce (base64).
pub const HEADER_SEALED_KEY: &str = "Wangge-Sealed-Key";
pub const HEADER_SEALED_NONCE: &str = "Wangge-Sealed-Nonce";
const OUR_HEADERS: [&str; 8] = [
    HEADER_SEALED_KEY,
    HEADER_SEALED_NONCE,
    HEADER_REJECT_CODE,
    HEADER_REJECT_FIELD,
    HEADER_REJECT_REASON,
    HEADER_ORIGINAL_SUBJECT,
    HEADER_REJECTED_AT,
    HEADER_PAYLOAD_BYTES,
];

/// How much the rejected stream may hold, so that no sender can fill the store with what the
/// engine refused: a flood of garbage costs a bounded amount of disk, never the room the
/// event log needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectedLimits {
    /// A kept message is removed after this long: refused reports hold residents' personal
    /// data, which must not be kept longer than needed to deal with them.
    pub max_age: Duration,
    /// The stream's size on disk; beyond it the oldest kept messages make room for new ones
    /// (discard old), so the newest refusals are always there to be seen.
    pub max_bytes: i64,
    /// A body larger than the largest message the engine accepts is kept only up to this
    /// many bytes (enough to see what it was), with its full size in `Wangge-Payload-Bytes`.
    pub kept_of_oversized: usize,
}

impl Default for RejectedLimits {
    /// 30 days, 256 MiB, 4 KiB of an oversized body.
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_bytes: 256 * 1024 * 1024,
            kept_of_oversized: 4 * 1024,
        }
    }
}

/// The largest body any command front accepts (an SLA command); a refused message up to
/// this size is kept whole, so it can be replayed once its cause is fixed.
pub const MAX_KEPT_WHOLE: usize = wangge_schemas::sla::MAX_SLA_COMMAND_BYTES;

/// `payload` as the store keeps it: whole up to [`MAX_KEPT_WHOLE`], else its first
/// `kept_of_oversized` bytes and its size as it arrived.
pub fn kept_payload(payload: &Bytes, limits: &RejectedLimits) -> (Bytes, Option<usize>) {
    if payload.len() <= MAX_KEPT_WHOLE {
        (payload.clone(), None)
    } else {
        let kept = limits.kept_of_oversized.min(payload.len());
        (payload.slice(..kept), Some(payload.len()))
    }
}
/// A sender's own `Nats-*` header is kept under this prefix: stored as is, JetStream would
/// act on it (`Nats-Msg-Id` would deduplicate two different refused messages into one,
/// `Nats-Expected-*` would make keeping the message fail).
const SENDER_NATS_HEADER_PREFIX: &str = "Wangge-Sender-";

fn is_nats_header(name: &str) -> bool {
    name.get(..5)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("Nats-"))
}

/// A message to keep: what arrived and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub subject: String,
    /// The sender's headers, in order (a header may repeat).
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
    pub code: String,
    pub field: Option<String>,
    pub reason: String,
    pub rejected_at: DateTime<Utc>,
}

/// A kept message with its id and what became of its replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEntry {
    pub id: u64,
    pub rejection: Rejection,
    /// The outcome of the latest replay, if the message was replayed.
    pub last_replay: Option<ReplayRecord>,
    /// Whether the body was kept sealed, and whether it could be opened.
    pub body: KeptBody,
}

/// How a kept body reads. Only [`KeptBody::Plain`] and [`KeptBody::Opened`] have the
/// message's bytes in `rejection.payload`; otherwise it is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptBody {
    /// Kept as it arrived (a store without a key store: memory, or before sealing).
    Plain,
    /// Kept sealed and opened with the key store.
    Opened,
    /// Kept sealed under a resident's key, and the resident was erased.
    Erased,
    /// Kept sealed under a day's key that outlived the stream's retention.
    Expired,
    /// Kept sealed; this reader has no key-encryption key to open it.
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRecord {
    pub replayed_at: DateTime<Utc>,
    pub reply: ReplayReply,
}

/// What a replayed message got back: an intake reply, a grid command's or an SLA
/// command's. Stored as the reply itself (untagged), so records written before grid
/// commands were kept still read. `Sla` is tried before `Grid`: an accepted SLA reply has
/// every field an accepted grid reply has, and `published` besides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplayReply {
    Intake(IntakeReply),
    Sla(SlaReply),
    Grid(GridReply),
}

impl ReplayReply {
    /// The refusal's code, when the replay was refused again.
    pub fn rejected_code(&self) -> Option<&str> {
        match self {
            Self::Intake(IntakeReply::Rejected { code, .. })
            | Self::Grid(GridReply::Rejected { code, .. })
            | Self::Sla(SlaReply::Rejected { code, .. }) => Some(code),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RejectedStoreError {
    #[error("rejected-message store unavailable: {0}")]
    Unavailable(String),
    #[error("no rejected message with id {0}")]
    NotFound(u64),
    #[error("rejected message {id} is unreadable: {reason}")]
    Corrupt { id: u64, reason: String },
    /// Not kept, on purpose: the sender is over its budget ([`super::throttle`]).
    #[error("not kept: {0}")]
    NotKept(String),
}

pub trait RejectedStore: Send + Sync + 'static {
    /// Keeps a refused message and returns its id.
    fn keep(
        &self,
        rejection: Rejection,
    ) -> impl Future<Output = Result<u64, RejectedStoreError>> + Send;
    /// Kept messages with id ≥ `from`, oldest first, at most `limit`.
    fn list(
        &self,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RejectedEntry>, RejectedStoreError>> + Send;
    fn get(
        &self,
        id: u64,
    ) -> impl Future<Output = Result<RejectedEntry, RejectedStoreError>> + Send;
    /// Records what a replay of message `id` got back.
    fn record_replay(
        &self,
        id: u64,
        record: ReplayRecord,
    ) -> impl Future<Output = Result<(), RejectedStoreError>> + Send;
}

/// Kept in memory, for the demo and tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryRejectedStore {
    entries: Arc<Mutex<Vec<RejectedEntry>>>,
}

impl MemoryRejectedStore {
    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<RejectedEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RejectedStore for MemoryRejectedStore {
    async fn keep(&self, rejection: Rejection) -> Result<u64, RejectedStoreError> {
        let mut entries = self.entries();
        let id = entries.len() as u64 + 1;
        entries.push(RejectedEntry {
            id,
            rejection,
            last_replay: None,
            body: KeptBody::Plain,
        });
        Ok(id)
    }

    async fn list(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RejectedEntry>, RejectedStoreError> {
        let entries = self.entries();
        Ok(entries
            .iter()
            .filter(|e| e.id >= from)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn get(&self, id: u64) -> Result<RejectedEntry, RejectedStoreError> {
        let entries = self.entries();
        entries
            .iter()
            .find(|e| e.id == id)
            .cloned()
            .ok_or(RejectedStoreError::NotFound(id))
    }

    async fn record_replay(&self, id: u64, record: ReplayRecord) -> Result<(), RejectedStoreError> {
        let mut entries = self.entries();
        let entry = entries
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(RejectedStoreError::NotFound(id))?;
        entry.last_replay = Some(record);
        Ok(())
    }
}

/// Kept in a JetStream stream, for operators to inspect with `wangge rejected`.
#[derive(Clone)]
pub struct JetStreamRejectedStore {
    context: jetstream::Context,
    stream: stream::Stream,
    prefix: String,
    limits: RejectedLimits,
    /// Seals every kept body (and opens it for `wangge rejected`); without it, bodies are
    /// kept as they arrived.
    keys: Option<Arc<ResidentKeys>>,
}

impl JetStreamRejectedStore {
    /// Seals every kept body: under the resident's own key when the body names a resident
    /// (`source.system` and `resident.id`) who has one, so their erasure makes it unreadable,
    /// otherwise under the day's key, destroyed once the stream's retention has passed.
    pub fn with_resident_keys(mut self, keys: Arc<ResidentKeys>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Destroys the day keys no kept message can need any more: of days before the
    /// retention (plus the day now running). Returns how many were destroyed.
    pub async fn sweep_day_keys(&self, now: DateTime<Utc>) -> Result<usize, RejectedStoreError> {
        let Some(keys) = &self.keys else {
            return Ok(0);
        };
        let retention =
            chrono::Duration::from_std(self.limits.max_age).unwrap_or(chrono::Duration::days(30));
        let oldest_kept = (now - retention).date_naive() - chrono::Duration::days(1);
        keys.sweep_day_keys(oldest_kept).await.map_err(unavailable)
    }

    /// The key a body is sealed under: its resident's when it names one, else the day's.
    async fn sealing_key(
        &self,
        keys: &ResidentKeys,
        rejection: &Rejection,
    ) -> Result<String, RejectedStoreError> {
        // The resident's key only if they have one already (an accepted report made it):
        // a refused message never creates keys, so no flood can grow the bucket. A resident
        // without one is covered by the day's key, gone within the retention.
        if let Some((system, resident_id)) = named_resident(&rejection.payload) {
            if let Some(key_id) = keys
                .existing_resident_key_id(&system, &resident_id)
                .await
                .map_err(unavailable)?
            {
                return Ok(key_id);
            }
        }
        Ok(ResidentKeys::day_key_id(rejection.rejected_at.date_naive()))
    }
    pub const STREAM: &'static str = "WANGGE_REJECTED";
    pub const PREFIX: &'static str = "wangge.rejected";

    /// Opens the stream, creating it with the default limits if there is none; an existing
    /// stream's limits are left as they are (what `wangge rejected` and tests use).
    pub async fn open(
        client: async_nats::Client,
        replicas: usize,
    ) -> Result<Self, RejectedStoreError> {
        Self::open_inner(client, replicas, RejectedLimits::default(), false).await
    }

    /// Opens the stream and brings its limits up to `limits` (`wangge serve`: a stream made
    /// by an earlier release had no limit but its age).
    pub async fn open_with_limits(
        client: async_nats::Client,
        replicas: usize,
        limits: RejectedLimits,
    ) -> Result<Self, RejectedStoreError> {
        Self::open_inner(client, replicas, limits, true).await
    }

    async fn open_inner(
        client: async_nats::Client,
        replicas: usize,
        limits: RejectedLimits,
        enforce_limits: bool,
    ) -> Result<Self, RejectedStoreError> {
        let context = jetstream::new(client);
        let mut stream = context
            .get_or_create_stream(stream::Config {
                name: Self::STREAM.to_owned(),
                description: Some(
                    "Wangge: intake messages the engine refused, kept for inspection and replay"
                        .into(),
                ),
                subjects: vec![format!("{}.>", Self::PREFIX)],
                storage: StorageType::File,
                // 0 (not given): 1 for a new stream; an existing one keeps its own.
                num_replicas: replicas.max(1),
                max_age: limits.max_age,
                max_bytes: limits.max_bytes,
                discard: stream::DiscardPolicy::Old,
                max_message_size: max_message_size(),
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        // A stream made by an earlier release (or with other limits) gets these limits; its
        // replicas and everything else stay as they are.
        let mut config = stream.cached_info().config.clone();
        let wanted = (
            limits.max_age,
            limits.max_bytes,
            stream::DiscardPolicy::Old,
            max_message_size(),
        );
        if enforce_limits
            && (
                config.max_age,
                config.max_bytes,
                config.discard,
                config.max_message_size,
            ) != wanted
        {
            // These limits are the bound that keeps refusals from filling the server and the
            // retention period of the residents' data in them: they follow `wangge serve
            // --rejected-max-*` both ways (a shorter retention is the safer one), unlike
            // every other stream's (`crate::nats::stream_rules`). Replicas stay as they are.
            (
                config.max_age,
                config.max_bytes,
                config.discard,
                config.max_message_size,
            ) = wanted;
            context.update_stream(&config).await.map_err(unavailable)?;
            stream = context
                .get_stream(Self::STREAM)
                .await
                .map_err(unavailable)?;
            tracing::info!(
                max_age_days = limits.max_age.as_secs() / 86_400,
                max_bytes = limits.max_bytes,
                "rejected stream limits brought up to date"
            );
        }
        Ok(Self {
            context,
            stream,
            prefix: Self::PREFIX.to_owned(),
            limits,
            keys: None,
        })
    }

    fn message_subject(&self, original_subject: &str) -> String {
        // Intake messages by their kind (the subject's last token); a grid command as
        // `grid_commands`, an SLA command as `sla_commands`.
        let kind = if original_subject == wangge_schemas::grid::GRID_COMMAND_SUBJECT {
            "grid_commands"
        } else if original_subject == wangge_schemas::sla::SLA_COMMAND_SUBJECT {
            "sla_commands"
        } else {
            original_subject
                .rsplit('.')
                .next()
                .filter(|t| {
                    !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .unwrap_or("unknown")
        };
        format!("{}.message.{kind}", self.prefix)
    }

    async fn last_replay(&self, id: u64) -> Result<Option<ReplayRecord>, RejectedStoreError> {
        match self
            .stream
            .direct_get_last_for_subject(format!("{}.replay.{id}", self.prefix))
            .await
        {
            Ok(message) => serde_json::from_slice(&message.payload)
                .map(Some)
                .map_err(|e| RejectedStoreError::Corrupt {
                    id,
                    reason: e.to_string(),
                }),
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn entry_at(
        &self,
        message: jetstream::message::StreamMessage,
    ) -> Result<RejectedEntry, RejectedStoreError> {
        let id = message.sequence;
        let mut rejection = rejection_from(&message.headers, message.payload.clone())
            .map_err(|reason| RejectedStoreError::Corrupt { id, reason })?;
        let body = self.open_body(id, &message.headers, &mut rejection).await?;
        let last_replay = self.last_replay(id).await?;
        Ok(RejectedEntry {
            id,
            rejection,
            last_replay,
            body,
        })
    }

    /// Opens a sealed body in place (an unreadable one becomes empty).
    async fn open_body(
        &self,
        id: u64,
        headers: &HeaderMap,
        rejection: &mut Rejection,
    ) -> Result<KeptBody, RejectedStoreError> {
        let Some(key_id) = headers
            .get(HEADER_SEALED_KEY)
            .map(|v| v.as_str().to_owned())
        else {
            return Ok(KeptBody::Plain);
        };
        let sealed = std::mem::take(&mut rejection.payload);
        let Some(keys) = &self.keys else {
            return Ok(KeptBody::Locked);
        };
        let nonce = headers
            .get(HEADER_SEALED_NONCE)
            .and_then(|v| STANDARD.decode(v.as_str()).ok())
            .ok_or_else(|| RejectedStoreError::Corrupt {
                id,
                reason: "sealed body without a readable Wangge-Sealed-Nonce header".to_owned(),
            })?;
        match keys
            .open_bytes(&key_id, &nonce, &sealed)
            .await
            .map_err(|e| RejectedStoreError::Corrupt {
                id,
                reason: e.to_string(),
            })? {
            Opened::Plain(plain) => {
                rejection.payload = Bytes::from(plain);
                Ok(KeptBody::Opened)
            }
            Opened::Erased => Ok(KeptBody::Erased),
            Opened::Expired => Ok(KeptBody::Expired),
        }
    }
}

/// Nothing larger is ever written (a cut body, our headers, the sender's): a backstop
/// against a bug, not a policy.
fn max_message_size() -> i32 {
    i32::try_from(MAX_KEPT_WHOLE + 64 * 1024).unwrap_or(i32::MAX)
}

fn unavailable(error: impl std::fmt::Display) -> RejectedStoreError {
    RejectedStoreError::Unavailable(error.to_string())
}

/// Splits stored headers back into the sender's own and our reason.
fn rejection_from(headers: &HeaderMap, payload: Bytes) -> Result<Rejection, String> {
    let ours = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    let mut own = Vec::new();
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        // `Nats-*` headers on a stored message are the server's (a direct get adds
        // Nats-Stream, Nats-Subject, Nats-Sequence, Nats-Time-Stamp); the sender's own were
        // kept under our prefix.
        if OUR_HEADERS.contains(&name) || is_nats_header(name) {
            continue;
        }
        let name = match name.strip_prefix(SENDER_NATS_HEADER_PREFIX) {
            Some(original) if is_nats_header(original) => original,
            _ => name,
        };
        for value in values {
            own.push((name.to_owned(), value.as_str().to_owned()));
        }
    }
    let rejected_at = ours(HEADER_REJECTED_AT)
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or("missing or bad Wangge-Rejected-At header")?;
    Ok(Rejection {
        subject: ours(HEADER_ORIGINAL_SUBJECT).ok_or("missing Wangge-Original-Subject header")?,
        headers: own,
        payload,
        code: ours(HEADER_REJECT_CODE).ok_or("missing Wangge-Reject-Code header")?,
        field: ours(HEADER_REJECT_FIELD),
        reason: ours(HEADER_REJECT_REASON).unwrap_or_default(),
        rejected_at,
    })
}

/// The resident a refused body names, as far as it can be read: a JSON object with
/// `source.system` and `resident.id` strings (any intake kind that has a resident).
fn named_resident(payload: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let text = |v: &serde_json::Value| {
        v.as_str()
            .filter(|t| !t.trim().is_empty() && t.chars().count() <= 128)
            .map(str::to_owned)
    };
    Some((
        text(value.get("source")?.get("system")?)?,
        text(value.get("resident")?.get("id")?)?,
    ))
}

/// Header values cannot hold line breaks; reasons are single-line by construction, but a
/// sender's field path could contain anything.
fn header_safe(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

impl RejectedStore for JetStreamRejectedStore {
    async fn keep(&self, rejection: Rejection) -> Result<u64, RejectedStoreError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &rejection.headers {
            let value = header_safe(value);
            if is_nats_header(name) {
                headers.append(
                    format!("{SENDER_NATS_HEADER_PREFIX}{name}").as_str(),
                    value.as_str(),
                );
            } else {
                headers.append(name.as_str(), value.as_str());
            }
        }
        headers.insert(HEADER_REJECT_CODE, rejection.code.as_str());
        if let Some(field) = &rejection.field {
            headers.insert(HEADER_REJECT_FIELD, header_safe(field).as_str());
        }
        headers.insert(
            HEADER_REJECT_REASON,
            header_safe(&rejection.reason).as_str(),
        );
        headers.insert(HEADER_ORIGINAL_SUBJECT, rejection.subject.as_str());
        headers.insert(
            HEADER_REJECTED_AT,
            rejection.rejected_at.to_rfc3339().as_str(),
        );
        let (mut payload, arrived_bytes) = kept_payload(&rejection.payload, &self.limits);
        if let Some(arrived_bytes) = arrived_bytes {
            headers.insert(HEADER_PAYLOAD_BYTES, arrived_bytes.to_string().as_str());
        }
        if let Some(keys) = &self.keys {
            let key_id = self.sealing_key(keys, &rejection).await?;
            let sealed = keys
                .seal_bytes(&key_id, &payload)
                .await
                .map_err(unavailable)?;
            headers.insert(HEADER_SEALED_KEY, key_id.as_str());
            headers.insert(HEADER_SEALED_NONCE, STANDARD.encode(sealed.nonce).as_str());
            payload = Bytes::from(sealed.ciphertext);
        }
        let ack = self
            .context
            .publish_with_headers(self.message_subject(&rejection.subject), headers, payload)
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        Ok(ack.sequence)
    }

    async fn list(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RejectedEntry>, RejectedStoreError> {
        let filter = format!("{}.message.>", self.prefix);
        let mut entries = Vec::new();
        let mut next = from.max(1);
        while entries.len() < limit {
            match self
                .stream
                .direct_get_next_for_subject(&filter, Some(next))
                .await
            {
                Ok(message) => {
                    next = message.sequence + 1;
                    entries.push(self.entry_at(message).await?);
                }
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => break,
                Err(error) => return Err(unavailable(error)),
            }
        }
        Ok(entries)
    }

    async fn get(&self, id: u64) -> Result<RejectedEntry, RejectedStoreError> {
        let message = match self.stream.direct_get(id).await {
            Ok(message) => message,
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => {
                return Err(RejectedStoreError::NotFound(id))
            }
            Err(error) => return Err(unavailable(error)),
        };
        if !message
            .subject
            .starts_with(&format!("{}.message.", self.prefix))
        {
            return Err(RejectedStoreError::NotFound(id));
        }
        self.entry_at(message).await
    }

    async fn record_replay(&self, id: u64, record: ReplayRecord) -> Result<(), RejectedStoreError> {
        let body = serde_json::to_vec(&record).expect("replay records serialize");
        self.context
            .publish(format!("{}.replay.{id}", self.prefix), body.into())
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

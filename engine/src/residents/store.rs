//! Residents' data keys in the NATS KV bucket `WANGGE_RESIDENT_KEYS` (file storage, one
//! revision a key), each wrapped by the KEK.
//!
//! Entries:
//! - `naming`: the naming key (random, wrapped): HMAC-SHA256 under it names a resident's
//!   data key from the sending system and the resident id, so the bucket reveals neither.
//!   Stored rather than derived from the KEK, so rotating the KEK renames nothing.
//! - `resident.<hash>`: a resident's data key; its id in sealed contacts is `rk-<hash>`.
//! - `erased.<hash>`: the fact of an erasure, without personal data: which resident (by
//!   the hash), who ordered it, when.
//! - `day.<YYYY-MM-DD>`: the key of the rejected messages of that day whose resident cannot be
//!   read; destroyed once the rejected stream's retention has passed (`sweep_day_keys`).
//!
//! Two instances creating the same key at once both `create` it; the loser re-reads the
//! winner's, so there is one key. Destroying a key deletes every stored revision with the
//! stream's message-delete API, which overwrites the bytes in the store files (the bucket's
//! stream is made with `deny_delete: false` for that; a KV purge would only mark it).
//!
//! Unwrapped keys are cached in memory (bounded, [`CACHE_TTL`]): an erasure clears this
//! instance's cache at once; other instances watch the bucket's `erased.*` entries
//! ([`ResidentKeys::watch_erasures`]) and drop the key when one appears, and the TTL bounds
//! how long a missed notice could keep a key in memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, stream};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::OnceCell;
use tracing::{info, warn};
use wangge_schemas::{CaseId, ResidentContact, SealedContact};

use super::kek::{KeyRing, KEY_BYTES};
use super::sealing;

/// How long an unwrapped key may serve from memory before it is read from the bucket again:
/// the longest another instance's erasure takes to reach this one.
pub const CACHE_TTL: Duration = Duration::from_secs(60);
/// Unwrapped keys held at most.
const CACHE_CAPACITY: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("resident key store unavailable: {0}")]
    Unavailable(String),
    #[error(
        "data key `{key}` is wrapped by key-encryption key {kek_id}, which this process does not \
         hold (it holds {held}); finish the rotation with `wangge residents rewrap` or give the \
         old key with --previous-kek-file"
    )]
    UnknownKek {
        key: String,
        kek_id: String,
        held: String,
    },
    #[error("data key `{key}` cannot be unwrapped: the key-encryption key is wrong or the entry was altered")]
    Unwrap { key: String },
    #[error("sealed data under key `{key_id}` cannot be opened: {reason}")]
    Corrupt { key_id: String, reason: String },
}

fn unavailable(error: impl std::fmt::Display) -> KeyStoreError {
    KeyStoreError::Unavailable(error.to_string())
}

/// What opening sealed data gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened<T> {
    Plain(T),
    /// The resident was erased: the key is gone for good.
    Erased,
    /// A day key of the rejected stream outlived its retention and was destroyed.
    Expired,
}

/// A data key as the bucket stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WrappedKey {
    /// The KEK that wrapped it.
    kek: String,
    nonce: String,
    wrapped: String,
    created_at: DateTime<Utc>,
}

/// The fact of an erasure, as kept in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// The resident's key id (`rk-<hash>`): a keyed hash, not the resident.
    pub resident_key: String,
    pub ordered_by: String,
    pub erased_at: DateTime<Utc>,
    /// Stored revisions of the data key destroyed (0: the resident had no key).
    pub key_revisions_destroyed: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapReport {
    pub rewrapped: usize,
    pub already_current: usize,
}

type DataKey = [u8; KEY_BYTES];

/// Reads sealed contacts for the read side: the key store, or a test's stand-in.
#[async_trait::async_trait]
pub trait ContactOpener: Send + Sync + 'static {
    async fn open_contact(
        &self,
        case_id: CaseId,
        sealed: &SealedContact,
    ) -> Result<Opened<ResidentContact>, KeyStoreError>;
}

pub struct ResidentKeys {
    backend: Backend,
    ring: KeyRing,
    naming: OnceCell<DataKey>,
    cache: quick_cache::sync::Cache<String, (Instant, Arc<DataKey>)>,
}

impl std::fmt::Debug for ResidentKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentKeys")
            .field("kek", &self.ring.current().id())
            .finish_non_exhaustive()
    }
}

const NAMING_ENTRY: &str = "naming";

fn contact_aad(key_id: &str, case_id: CaseId) -> Vec<u8> {
    format!("wangge/contact/v1\0{key_id}\0{case_id}").into_bytes()
}

fn bytes_aad(key_id: &str) -> Vec<u8> {
    format!("wangge/sealed-bytes/v1\0{key_id}").into_bytes()
}

fn wrap_aad(entry: &str) -> Vec<u8> {
    format!("wangge/data-key/v1\0{entry}").into_bytes()
}

/// The bucket entry a key id names, if it names one.
fn entry_of(key_id: &str) -> Option<String> {
    if let Some(hash) = key_id.strip_prefix("rk-") {
        return (!hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| format!("resident.{hash}"));
    }
    let day = key_id.strip_prefix("day-")?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    Some(format!("day.{day}"))
}

impl ResidentKeys {
    pub const BUCKET: &'static str = "WANGGE_RESIDENT_KEYS";

    /// The bucket's stream: a KV bucket's, but with message deletion allowed so that a
    /// destroyed key's bytes are overwritten.
    pub fn stream_config(replicas: usize) -> stream::Config {
        stream::Config {
            name: format!("KV_{}", Self::BUCKET),
            description: Some(
                "Wangge: residents' data keys, wrapped by the key-encryption key".to_owned(),
            ),
            subjects: vec![format!("$KV.{}.>", Self::BUCKET)],
            max_messages_per_subject: 1,
            storage: stream::StorageType::File,
            // 0: as the bucket has it (1 for a new one), see `crate::nats::open_stream`.
            num_replicas: replicas,
            allow_rollup: true,
            deny_delete: false,
            deny_purge: false,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        }
    }

    /// Opens (creating if needed) the bucket, with the KEKs in `ring`.
    pub async fn open(
        client: async_nats::Client,
        replicas: usize,
        ring: KeyRing,
    ) -> Result<Self, KeyStoreError> {
        let context = jetstream::new(client);
        let stream = crate::nats::streams::open_stream(
            &context,
            Self::stream_config(replicas),
            "resident keys",
        )
        .await
        .map_err(KeyStoreError::Unavailable)?;
        let kv = context
            .get_key_value(Self::BUCKET)
            .await
            .map_err(unavailable)?;
        Ok(Self::with_backend(Backend::Kv { kv, stream }, ring))
    }

    /// Keys in this process's memory only, for the demo on its embedded in-memory log (whose
    /// events live no longer than the process either).
    pub fn in_memory(ring: KeyRing) -> Self {
        Self::with_backend(Backend::Memory(std::sync::Mutex::default()), ring)
    }

    fn with_backend(backend: Backend, ring: KeyRing) -> Self {
        Self {
            backend,
            ring,
            naming: OnceCell::new(),
            cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
        }
    }

    pub fn kek_id(&self) -> &str {
        self.ring.current().id()
    }

    /// The id of the data key of `resident_id` as `system` names them: `rk-` and a keyed
    /// hash of both.
    pub async fn resident_key_id(
        &self,
        system: &str,
        resident_id: &str,
    ) -> Result<String, KeyStoreError> {
        let naming = self.naming_key().await?;
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&naming).expect("HMAC takes a key of any size");
        mac.update(b"resident\0");
        mac.update(system.as_bytes());
        mac.update(b"\0");
        mac.update(resident_id.as_bytes());
        let hash = hex::encode(mac.finalize().into_bytes());
        Ok(format!("rk-{}", &hash[..32]))
    }

    /// The id of the resident's data key if they have one (never creates it): a refused
    /// message must not make keys, or a flood of made-up residents would grow the bucket.
    pub async fn existing_resident_key_id(
        &self,
        system: &str,
        resident_id: &str,
    ) -> Result<Option<String>, KeyStoreError> {
        let key_id = self.resident_key_id(system, resident_id).await?;
        Ok(self.existing_key(&key_id).await?.map(|_| key_id))
    }

    /// Seals a resident's contact for the report of `case_id`, creating the resident's key
    /// if they have none.
    pub async fn seal_contact(
        &self,
        system: &str,
        resident_id: &str,
        case_id: CaseId,
        contact: &ResidentContact,
    ) -> Result<SealedContact, KeyStoreError> {
        let key_id = self.resident_key_id(system, resident_id).await?;
        let key = self.key_or_create(&key_id).await?;
        let plaintext = serde_json::to_vec(contact).expect("a contact serializes");
        let sealed = sealing::seal(&key, &contact_aad(&key_id, case_id), &plaintext);
        Ok(SealedContact {
            key_id,
            nonce: STANDARD.encode(sealed.nonce),
            ciphertext: STANDARD.encode(sealed.ciphertext),
        })
    }

    /// Seals bytes under the key `key_id` names (a resident's or a day's), creating it if
    /// needed. Returns the nonce and the ciphertext.
    pub async fn seal_bytes(
        &self,
        key_id: &str,
        plaintext: &[u8],
    ) -> Result<sealing::Sealed, KeyStoreError> {
        let key = self.key_or_create(key_id).await?;
        Ok(sealing::seal(&key, &bytes_aad(key_id), plaintext))
    }

    pub async fn open_bytes(
        &self,
        key_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Opened<Vec<u8>>, KeyStoreError> {
        let key = match self.existing_key(key_id).await? {
            Some(key) => key,
            None => return self.gone(key_id).await,
        };
        match sealing::open(&key, &bytes_aad(key_id), nonce, ciphertext) {
            Some(plain) => Ok(Opened::Plain(plain)),
            None => self.unopenable(key_id).await,
        }
    }

    /// The key id of the day key for rejected messages of `day`.
    pub fn day_key_id(day: NaiveDate) -> String {
        format!("day-{}", day.format("%Y-%m-%d"))
    }

    /// Erases a resident: destroys every stored revision of their data key, records the
    /// erasure (by keyed hash, who, when) and drops the key from this instance's cache.
    pub async fn erase(
        &self,
        system: &str,
        resident_id: &str,
        ordered_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Erasure, KeyStoreError> {
        let key_id = self.resident_key_id(system, resident_id).await?;
        let entry = entry_of(&key_id).expect("a resident key id names an entry");
        let destroyed = self.backend.destroy(&entry).await?;
        self.cache.remove(&key_id);
        let erasure = Erasure {
            resident_key: key_id.clone(),
            ordered_by: ordered_by.to_owned(),
            erased_at: now,
            key_revisions_destroyed: destroyed,
        };
        let record = serde_json::to_vec(&erasure).expect("an erasure serializes");
        self.backend
            .put(&erasure_entry(&key_id), record.into())
            .await?;
        info!(resident_key = %key_id, ordered_by, destroyed, "resident erased: data key destroyed");
        Ok(erasure)
    }

    /// Drops a resident's key from this instance's cache as soon as any instance (or `wangge
    /// residents erase`) records their erasure; the cache's TTL is the backstop while the
    /// watch reconnects. Runs until `until` resolves.
    pub async fn watch_erasures(
        self: Arc<Self>,
        until: impl std::future::Future<Output = ()>,
    ) -> Result<(), KeyStoreError> {
        let Backend::Kv { kv, .. } = &self.backend else {
            return Ok(());
        };
        let mut updates = kv.watch("erased.>").await.map_err(unavailable)?;
        let watch = async {
            while let Some(entry) = updates.try_next().await.map_err(unavailable)? {
                if let Some(hash) = entry.key.strip_prefix("erased.") {
                    self.cache.remove(&format!("rk-{hash}"));
                    info!(resident_key = %format!("rk-{hash}"), "erasure seen: cached key dropped");
                }
            }
            Ok(())
        };
        tokio::select! {
            result = watch => result,
            () = until => Ok(()),
        }
    }

    /// The erasure of the resident whose key is `key_id`, if they were erased.
    pub async fn erasure(&self, key_id: &str) -> Result<Option<Erasure>, KeyStoreError> {
        let Some((bytes, _)) = self.backend.get(&erasure_entry(key_id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| KeyStoreError::Corrupt {
                key_id: key_id.to_owned(),
                reason: format!("erasure record: {e}"),
            })
    }

    /// Destroys the day keys of days before `oldest_kept`: rejected messages of those days
    /// are past the rejected stream's retention, and so is what they held. Returns how many.
    pub async fn sweep_day_keys(&self, oldest_kept: NaiveDate) -> Result<usize, KeyStoreError> {
        let keys = self.backend.keys().await?;
        let mut destroyed = 0;
        for entry in keys {
            let Some(day) = entry
                .strip_prefix("day.")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if day < oldest_kept {
                self.backend.destroy(&entry).await?;
                self.cache.remove(&Self::day_key_id(day));
                destroyed += 1;
                info!(%day, "rejected messages' day key destroyed: past the retention");
            }
        }
        Ok(destroyed)
    }

    /// Rewraps every data key (and the naming key) not wrapped by the current KEK with it.
    /// The old KEK must be in the ring until this has finished.
    pub async fn rewrap(&self) -> Result<RewrapReport, KeyStoreError> {
        let keys = self.backend.keys().await?;
        let mut report = RewrapReport::default();
        for entry in keys {
            if entry.starts_with("erased.") {
                continue;
            }
            let Some((value, revision)) = self.backend.get(&entry).await? else {
                continue;
            };
            let stored: WrappedKey =
                serde_json::from_slice(&value).map_err(|e| KeyStoreError::Corrupt {
                    key_id: entry.clone(),
                    reason: e.to_string(),
                })?;
            if stored.kek == self.ring.current().id() {
                report.already_current += 1;
                continue;
            }
            let key = self.unwrap(&entry, &stored)?;
            let rewrapped = self.wrap(&entry, &key, stored.created_at);
            self.backend.replace(&entry, rewrapped, revision).await?;
            report.rewrapped += 1;
        }
        info!(rewrapped = report.rewrapped, kek = %self.ring.current().id(), "data keys rewrapped");
        Ok(report)
    }

    async fn naming_key(&self) -> Result<DataKey, KeyStoreError> {
        self.naming
            .get_or_try_init(|| async { self.read_or_create(NAMING_ENTRY).await })
            .await
            .copied()
    }

    /// A key `key_id` names, created if it does not exist.
    async fn key_or_create(&self, key_id: &str) -> Result<Arc<DataKey>, KeyStoreError> {
        if let Some(key) = self.cached(key_id) {
            return Ok(key);
        }
        let entry = entry_of(key_id).ok_or_else(|| KeyStoreError::Corrupt {
            key_id: key_id.to_owned(),
            reason: "not a key id this engine makes".to_owned(),
        })?;
        let key = Arc::new(self.read_or_create(&entry).await?);
        self.cache
            .insert(key_id.to_owned(), (Instant::now(), key.clone()));
        Ok(key)
    }

    /// The key `key_id` names, if it exists.
    async fn existing_key(&self, key_id: &str) -> Result<Option<Arc<DataKey>>, KeyStoreError> {
        if let Some(key) = self.cached(key_id) {
            return Ok(Some(key));
        }
        let Some(entry) = entry_of(key_id) else {
            return Err(KeyStoreError::Corrupt {
                key_id: key_id.to_owned(),
                reason: "not a key id this engine makes".to_owned(),
            });
        };
        let Some(key) = self.read(&entry).await? else {
            return Ok(None);
        };
        let key = Arc::new(key);
        self.cache
            .insert(key_id.to_owned(), (Instant::now(), key.clone()));
        Ok(Some(key))
    }

    fn cached(&self, key_id: &str) -> Option<Arc<DataKey>> {
        let (at, key) = self.cache.get(key_id)?;
        if at.elapsed() < CACHE_TTL {
            Some(key)
        } else {
            self.cache.remove(key_id);
            None
        }
    }

    /// Why a key that should be there is not: erased, or (a day key) expired.
    async fn gone<T>(&self, key_id: &str) -> Result<Opened<T>, KeyStoreError> {
        if key_id.starts_with("day-") {
            return Ok(Opened::Expired);
        }
        // A resident key without an erasure record was never made by this bucket (or the
        // bucket was replaced): nothing can open it either way, and saying "erased" would
        // be a claim the record does not back.
        match self.erasure(key_id).await? {
            Some(_) => Ok(Opened::Erased),
            None => Err(KeyStoreError::Corrupt {
                key_id: key_id.to_owned(),
                reason: "no such key in the bucket, and no erasure recorded".to_owned(),
            }),
        }
    }

    /// A key exists but does not open the ciphertext: after an erasure, the resident's new
    /// key (made when they reported again) cannot open what the destroyed one sealed.
    async fn unopenable<T>(&self, key_id: &str) -> Result<Opened<T>, KeyStoreError> {
        match self.erasure(key_id).await? {
            Some(_) => Ok(Opened::Erased),
            None => Err(KeyStoreError::Corrupt {
                key_id: key_id.to_owned(),
                reason: "authentication failed: the ciphertext was altered or moved".to_owned(),
            }),
        }
    }

    async fn read(&self, entry: &str) -> Result<Option<DataKey>, KeyStoreError> {
        let Some((bytes, _)) = self.backend.get(entry).await? else {
            return Ok(None);
        };
        let stored: WrappedKey =
            serde_json::from_slice(&bytes).map_err(|e| KeyStoreError::Corrupt {
                key_id: entry.to_owned(),
                reason: e.to_string(),
            })?;
        self.unwrap(entry, &stored).map(Some)
    }

    /// Reads the key at `entry`, or creates it: of two instances creating it at once, the
    /// one whose `create` loses reads the winner's.
    async fn read_or_create(&self, entry: &str) -> Result<DataKey, KeyStoreError> {
        if let Some(key) = self.read(entry).await? {
            return Ok(key);
        }
        let key = sealing::random_key();
        match self
            .backend
            .create(entry, self.wrap(entry, &key, Utc::now()))
            .await
        {
            Ok(()) => Ok(key),
            Err(error) => match self.read(entry).await? {
                Some(winner) => Ok(winner),
                None => Err(error),
            },
        }
    }

    fn wrap(&self, entry: &str, key: &DataKey, created_at: DateTime<Utc>) -> Bytes {
        let kek = self.ring.current();
        let sealed = sealing::seal(kek.key(), &wrap_aad(entry), key);
        let stored = WrappedKey {
            kek: kek.id().to_owned(),
            nonce: STANDARD.encode(sealed.nonce),
            wrapped: STANDARD.encode(sealed.ciphertext),
            created_at,
        };
        serde_json::to_vec(&stored)
            .expect("a wrapped key serializes")
            .into()
    }

    fn unwrap(&self, entry: &str, stored: &WrappedKey) -> Result<DataKey, KeyStoreError> {
        let kek = self
            .ring
            .by_id(&stored.kek)
            .ok_or_else(|| KeyStoreError::UnknownKek {
                key: entry.to_owned(),
                kek_id: stored.kek.clone(),
                held: self.ring.current().id().to_owned(),
            })?;
        let corrupt = || KeyStoreError::Unwrap {
            key: entry.to_owned(),
        };
        let nonce = STANDARD.decode(&stored.nonce).map_err(|_| corrupt())?;
        let wrapped = STANDARD.decode(&stored.wrapped).map_err(|_| corrupt())?;
        let plain =
            sealing::open(kek.key(), &wrap_aad(entry), &nonce, &wrapped).ok_or_else(corrupt)?;
        plain.as_slice().try_into().map_err(|_| corrupt())
    }
}

/// Where the wrapped keys are: the KV bucket, or (the demo) this process's memory.
// One per process, made once: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Kv {
        kv: kv::Store,
        stream: stream::Stream,
    },
    Memory(std::sync::Mutex<std::collections::BTreeMap<String, (Bytes, u64)>>),
}

impl Backend {
    fn memory(
        map: &std::sync::Mutex<std::collections::BTreeMap<String, (Bytes, u64)>>,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, (Bytes, u64)>> {
        map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry's value and revision.
    async fn get(&self, entry: &str) -> Result<Option<(Bytes, u64)>, KeyStoreError> {
        match self {
            Self::Kv { kv, .. } => Ok(kv
                .entry(entry)
                .await
                .map_err(unavailable)?
                .filter(|found| found.operation == kv::Operation::Put)
                .map(|found| (found.value, found.revision))),
            Self::Memory(map) => Ok(Self::memory(map).get(entry).cloned()),
        }
    }

    /// Creates the entry; an error when it exists (or the store failed).
    async fn create(&self, entry: &str, value: Bytes) -> Result<(), KeyStoreError> {
        match self {
            Self::Kv { kv, .. } => kv
                .create(entry, value)
                .await
                .map(|_| ())
                .map_err(unavailable),
            Self::Memory(map) => {
                let mut map = Self::memory(map);
                if map.contains_key(entry) {
                    return Err(KeyStoreError::Unavailable(format!("`{entry}` exists")));
                }
                map.insert(entry.to_owned(), (value, 1));
                Ok(())
            }
        }
    }

    async fn put(&self, entry: &str, value: Bytes) -> Result<(), KeyStoreError> {
        match self {
            Self::Kv { kv, .. } => kv.put(entry, value).await.map(|_| ()).map_err(unavailable),
            Self::Memory(map) => {
                let mut map = Self::memory(map);
                let revision = map.get(entry).map_or(1, |(_, r)| r + 1);
                map.insert(entry.to_owned(), (value, revision));
                Ok(())
            }
        }
    }

    /// Replaces the entry if it is still at `revision` (a concurrent erasure wins), and
    /// erases the replaced revision's bytes so the old KEK cannot open them from a copy of
    /// the store.
    async fn replace(&self, entry: &str, value: Bytes, revision: u64) -> Result<(), KeyStoreError> {
        match self {
            Self::Kv { kv, stream } => {
                kv.update(entry, value, revision)
                    .await
                    .map_err(unavailable)?;
                if let Err(error) = stream.delete_message(revision).await {
                    warn!(%error, entry, "old revision of a rewrapped key not erased");
                }
                Ok(())
            }
            Self::Memory(map) => {
                let mut map = Self::memory(map);
                if map.get(entry).map(|(_, r)| *r) != Some(revision) {
                    return Err(KeyStoreError::Unavailable(format!("`{entry}` changed")));
                }
                map.insert(entry.to_owned(), (value, revision + 1));
                Ok(())
            }
        }
    }

    async fn keys(&self) -> Result<Vec<String>, KeyStoreError> {
        match self {
            Self::Kv { kv, .. } => kv
                .keys()
                .await
                .map_err(unavailable)?
                .try_collect()
                .await
                .map_err(unavailable),
            Self::Memory(map) => Ok(Self::memory(map).keys().cloned().collect()),
        }
    }

    /// Deletes every stored revision of `entry` with the stream's message-delete API, which
    /// overwrites the bytes in the store files. Returns how many there were.
    async fn destroy(&self, entry: &str) -> Result<usize, KeyStoreError> {
        let (kv_stream, subject) = match self {
            Self::Kv { stream, .. } => (stream, format!("$KV.{}.{entry}", ResidentKeys::BUCKET)),
            Self::Memory(map) => {
                return Ok(usize::from(Self::memory(map).remove(entry).is_some()));
            }
        };
        let mut destroyed = 0;
        // One revision a key, but a rewrap in flight may briefly leave two: loop until the
        // subject holds nothing.
        loop {
            match kv_stream.get_last_raw_message_by_subject(&subject).await {
                Ok(message) => {
                    kv_stream
                        .delete_message(message.sequence)
                        .await
                        .map_err(unavailable)?;
                    destroyed += 1;
                }
                Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                    return Ok(destroyed)
                }
                Err(error) => return Err(unavailable(error)),
            }
        }
    }
}

fn erasure_entry(key_id: &str) -> String {
    format!("erased.{}", key_id.trim_start_matches("rk-"))
}

#[async_trait::async_trait]
impl ContactOpener for ResidentKeys {
    async fn open_contact(
        &self,
        case_id: CaseId,
        sealed: &SealedContact,
    ) -> Result<Opened<ResidentContact>, KeyStoreError> {
        let corrupt = |reason: &str| KeyStoreError::Corrupt {
            key_id: sealed.key_id.clone(),
            reason: reason.to_owned(),
        };
        let nonce = STANDARD
            .decode(&sealed.nonce)
            .map_err(|_| corrupt("nonce is not base64"))?;
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| corrupt("ciphertext is not base64"))?;
        let key = match self.existing_key(&sealed.key_id).await? {
            Some(key) => key,
            None => return self.gone(&sealed.key_id).await,
        };
        match sealing::open(
            &key,
            &contact_aad(&sealed.key_id, case_id),
            &nonce,
            &ciphertext,
        ) {
            Some(plain) => serde_json::from_slice(&plain)
                .map(Opened::Plain)
                .map_err(|e| corrupt(&format!("the sealed contact is not a contact: {e}"))),
            None => self.unopenable(&sealed.key_id).await,
        }
    }
}

//! The timer book's snapshot: every open case's packed SLA facts at one log position, so a
//! restart reads the snapshot and the tail of the log after it instead of the whole log.
//!
//! # Where it is kept
//!
//! One object (`timer-book`) in a JetStream object store bucket (`wangge_timers`): the
//! client library cuts it into chunks, writes its description last (a roll-up, so a reader
//! sees the old snapshot or the new one, never half of one), checks a SHA-256 digest on
//! reading and purges the chunks of the snapshot it replaced: a stream with roll-ups and
//! direct gets, and an ordered consumer to read. A stream of our own chunks would have to do
//! all of that by hand.
//!
//! # Who writes it
//!
//! The holder of partition 0, every few minutes and at a clean shutdown, once it has caught
//! up with the log. Every instance folds the same log in the same order, so the facts in
//! a snapshot are the same whoever writes it; two writers at a lease hand-over replace each
//! other's object whole.
//!
//! # When it is used
//!
//! Only when it covers no more of the log than there is, and was written by the same
//! snapshot format and fold version ([`FACTS_VERSION`]). Reference data does not matter:
//! the timers go by the clocks recorded in the log (and, for commits written before clocks
//! were recorded, by the frozen release 0.1 data). Any other snapshot, or one that cannot be
//! read, is ignored with a warning and the book is rebuilt from the whole log: a snapshot
//! only ever saves time.
//!
//! # Layout (format 2)
//!
//! `WANGGE-TIMER-BOOK`, a little-endian `u32` length and a JSON [`Header`]; then one record
//! per open case — case id (16 bytes), version (`u32`), the release 0.1 policy index
//! (`u16`), two reserved bytes, the next timer's instant (`i64` seconds and `u32`
//! nanoseconds; nanoseconds `u32::MAX` for none), the packed facts' length (`u32`) and the
//! packed facts ([`SlaState::pack`]); then the worker loads — the holder, then the resolver,
//! of each case, as case id and an index (`u32`) into the header's worker list.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use wangge_schemas::CaseId;

use super::{OpenCase, TimerBook};
use crate::domain::sla::{legacy, SlaState, FACTS_VERSION};
use crate::log::LogPosition;
use crate::runtime::loads::WorkerLoads;

/// The layout version written by this engine; a snapshot of any other is ignored.
pub const SNAPSHOT_FORMAT: u32 = 2;

const MAGIC: &[u8] = b"WANGGE-TIMER-BOOK";
/// Bytes of a case record before its packed facts.
const RECORD_FIXED: usize = 16 + 4 + 2 + 2 + 8 + 4 + 4;
const NO_WAKE: u32 = u32::MAX;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The snapshot does not apply to this engine: other reference data, another format
    /// or fold version. Not a fault: the book is rebuilt from the whole log.
    #[error("timer snapshot does not apply: {reason}")]
    Mismatch { reason: String },
    /// The snapshot cannot be read: damaged, cut short, or not a snapshot at all.
    #[error("timer snapshot is unreadable at `{field}`: {reason}")]
    Unreadable { field: String, reason: String },
    /// The object store failed or could not be reached.
    #[error("timer snapshot store unavailable: {0}")]
    Unavailable(String),
}

fn unreadable(field: impl Into<String>, reason: impl ToString) -> SnapshotError {
    SnapshotError::Unreadable {
        field: field.into(),
        reason: reason.to_string(),
    }
}

fn unavailable(error: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Unavailable(error.to_string())
}

/// What a snapshot says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub facts_version: u32,
    /// The log position of the last commit the snapshot folds in: the tail starts after it.
    pub position: LogPosition,
    pub cases: u64,
    pub holders: u64,
    pub resolvers: u64,
    /// Worker ids, in the order the loads index them.
    pub workers: Vec<String>,
}

/// A snapshot taken out of a book, still without each case's next timer: cheap to take
/// while the book is locked; [`Taken::finish`] does the rest on any thread.
pub struct Taken {
    header: Header,
    /// The records, next timers not filled in yet.
    records: Vec<u8>,
    loads: Vec<u8>,
}

impl Taken {
    pub fn position(&self) -> LogPosition {
        self.header.position
    }

    pub fn cases(&self) -> u64 {
        self.header.cases
    }

    /// Works out each case's next timer from its facts (the same for whoever writes the
    /// snapshot) and returns the snapshot's bytes.
    pub fn finish(self) -> Vec<u8> {
        let Taken {
            header,
            mut records,
            loads,
        } = self;
        let mut at = 0;
        while at < records.len() {
            let facts_len = u32_at(&records, at + RECORD_FIXED - 4) as usize;
            let legacy = u8::try_from(u16_at(&records, at + 20)).unwrap_or(u8::MAX);
            let facts = &records[at + RECORD_FIXED..at + RECORD_FIXED + facts_len];
            let next = SlaState::unpack(Some(legacy::terms_at(legacy)), facts)
                .expect("the book holds only facts it packed or checked")
                .due()
                .first()
                .map(|timer| timer.at);
            let (seconds, nanos) = next.map_or((0, NO_WAKE), |next| {
                (next.timestamp(), next.timestamp_subsec_nanos())
            });
            records[at + 24..at + 32].copy_from_slice(&seconds.to_le_bytes());
            records[at + 32..at + 36].copy_from_slice(&nanos.to_le_bytes());
            at += RECORD_FIXED + facts_len;
        }
        let header = serde_json::to_vec(&header).expect("the header serializes");
        let mut bytes =
            Vec::with_capacity(MAGIC.len() + 4 + header.len() + records.len() + loads.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&records);
        bytes.extend_from_slice(&loads);
        bytes
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl TimerBook {
    /// Copies every open case out, with the worker loads folded from the same commits.
    pub fn take_snapshot(&self, loads: &WorkerLoads) -> Taken {
        let facts_bytes: usize = self.open.values().map(|case| case.facts.len()).sum();
        let mut records = Vec::with_capacity(self.open.len() * RECORD_FIXED + facts_bytes);
        for (case_id, case) in self.open.iter() {
            records.extend_from_slice(case_id.0.as_bytes());
            records.extend_from_slice(&case.version.to_le_bytes());
            records.extend_from_slice(&u16::from(case.legacy).to_le_bytes());
            records.extend_from_slice(&[0; 2]);
            records.extend_from_slice(&[0; 12]); // the next timer, filled in by `finish`
            records.extend_from_slice(&(case.facts.len() as u32).to_le_bytes());
            records.extend_from_slice(&case.facts);
        }
        let (holders, resolvers) = loads.parts();
        let mut workers: Vec<&str> = Vec::new();
        let mut worker_index: HashMap<&str, u32> = HashMap::new();
        let mut loads_bytes = Vec::with_capacity((holders.len() + resolvers.len()) * 20);
        for (case_id, worker) in holders.iter().chain(&resolvers) {
            let index = *worker_index.entry(worker).or_insert_with(|| {
                workers.push(worker);
                (workers.len() - 1) as u32
            });
            loads_bytes.extend_from_slice(case_id.0.as_bytes());
            loads_bytes.extend_from_slice(&index.to_le_bytes());
        }
        Taken {
            header: Header {
                format: SNAPSHOT_FORMAT,
                facts_version: FACTS_VERSION,
                position: self.position,
                cases: self.open.len() as u64,
                holders: holders.len() as u64,
                resolvers: resolvers.len() as u64,
                workers: workers.into_iter().map(str::to_owned).collect(),
            },
            records,
            loads: loads_bytes,
        }
    }

    /// Replaces an empty book's contents with a snapshot's, if it applies to this book;
    /// returns its header and the worker loads it holds. All or nothing: a snapshot that
    /// does not apply or cannot be read leaves the book as it was.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(Header, WorkerLoads), SnapshotError> {
        debug_assert!(
            self.open.is_empty() && self.position == 0,
            "restore into an empty book"
        );
        let mut reader = Reader {
            bytes,
            at: 0,
            context: None,
        };
        if reader.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(unreadable("magic", "not a timer book snapshot"));
        }
        let header_len = reader.u32("header length")? as usize;
        let header: Header = serde_json::from_slice(reader.take(header_len, "header")?)
            .map_err(|error| unreadable("header", error))?;
        if header.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Mismatch {
                reason: format!(
                    "format {} (this engine reads {SNAPSHOT_FORMAT})",
                    header.format
                ),
            });
        }
        if header.facts_version != FACTS_VERSION {
            return Err(SnapshotError::Mismatch {
                reason: format!(
                    "sla facts version {} (this engine folds version {FACTS_VERSION})",
                    header.facts_version
                ),
            });
        }
        let cases = usize::try_from(header.cases).map_err(|e| unreadable("header.cases", e))?;
        let mut open = super::table::CaseTable::default();
        open.reserve(cases.min(bytes.len() / RECORD_FIXED));
        let mut heap = Vec::with_capacity(cases.min(bytes.len() / RECORD_FIXED));
        for n in 0..cases {
            reader.context = Some(("case", n as u64));
            let case_id = CaseId(uuid::Uuid::from_bytes(
                reader.take(16, "id")?.try_into().expect("16 bytes"),
            ));
            let version = reader.u32("version")?;
            let legacy = u8::try_from(reader.u16("legacy policy")?)
                .map_err(|_| reader.fail("legacy policy", "index out of range"))?;
            reader.take(2, "reserved")?;
            let seconds = i64::from_le_bytes(reader.take(8, "next")?.try_into().expect("8 bytes"));
            let nanos = reader.u32("next")?;
            let scheduled = if nanos == NO_WAKE {
                None
            } else {
                Some(
                    DateTime::<Utc>::from_timestamp(seconds, nanos)
                        .ok_or_else(|| reader.fail("next", "instant out of range"))?,
                )
            };
            let facts_len = reader.u32("facts length")? as usize;
            let facts = reader.take(facts_len, "facts")?;
            // Checked once here, so that the book can rely on its facts from then on.
            SlaState::unpack(Some(legacy::terms_at(legacy)), facts)
                .map_err(|error| reader.fail("facts", error))?;
            if let Some(at) = scheduled {
                heap.push(std::cmp::Reverse((at, case_id)));
            }
            let record = OpenCase {
                facts: facts.into(),
                scheduled,
                version,
                legacy,
            };
            if !open.insert_new(case_id, record) {
                return Err(reader.fail("id", format!("case {case_id} appears twice")));
            }
        }
        let mut holders = Vec::new();
        let mut resolvers = Vec::new();
        for (list, count, name) in [
            (&mut holders, header.holders, "holder"),
            (&mut resolvers, header.resolvers, "resolver"),
        ] {
            for n in 0..count {
                reader.context = Some((name, n));
                let case_id = CaseId(uuid::Uuid::from_bytes(
                    reader.take(16, "id")?.try_into().expect("16 bytes"),
                ));
                let worker = header
                    .workers
                    .get(reader.u32("worker")? as usize)
                    .ok_or_else(|| reader.fail("worker", "index out of range"))?;
                list.push((case_id, worker.as_str()));
            }
        }
        if reader.at != bytes.len() {
            return Err(unreadable(
                "end",
                format!("{} bytes after the last record", bytes.len() - reader.at),
            ));
        }
        let loads = WorkerLoads::from_parts(holders, resolvers);
        self.open = open;
        self.heap = std::collections::BinaryHeap::from(heap);
        self.retry.clear();
        self.position = header.position;
        Ok((header, loads))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The record being read (`case 17`), to name in errors.
    context: Option<(&'static str, u64)>,
}

impl<'a> Reader<'a> {
    /// An error at `field` of the record being read; formatted only when it happens.
    fn fail(&self, field: &'static str, reason: impl ToString) -> SnapshotError {
        match self.context {
            Some((record, n)) => unreadable(format!("{record} {n}: {field}"), reason),
            None => unreadable(field, reason),
        }
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.fail(field, "cut short"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, SnapshotError> {
        Ok(u16_at(self.take(2, field)?, 0))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, SnapshotError> {
        Ok(u32_at(self.take(4, field)?, 0))
    }
}

/// How the timer service keeps its snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    /// How often the writer (the holder of partition 0) replaces the snapshot, if the book
    /// moved on since the last one.
    pub every: Duration,
    /// Reading a snapshot that takes longer than this is given up (the whole log is read).
    pub read_timeout: Duration,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(300),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// Where the snapshot lives: one object of a JetStream object store bucket.
#[derive(Debug, Clone)]
pub struct SnapshotStoreConfig {
    pub bucket: String,
    pub object: String,
    /// 1 on one server, 3 on a cluster.
    pub replicas: usize,
    /// Chunks of a snapshot whose writer died before finishing it are dropped after this
    /// long; so is a snapshot not replaced for this long (then the whole log is read).
    pub max_age: Duration,
    /// What the snapshot is of, for operators (the bucket's and the object's description).
    pub what: String,
}

impl Default for SnapshotStoreConfig {
    fn default() -> Self {
        Self {
            bucket: "wangge_timers".to_owned(),
            object: "timer-book".to_owned(),
            replicas: 1,
            max_age: Duration::from_secs(7 * 24 * 3600),
            what: "SLA timer book".to_owned(),
        }
    }
}

/// Chunks of 512 KiB: under NATS's default 1 MiB message limit, few round trips.
const CHUNK_BYTES: usize = 512 * 1024;

/// The timer snapshot's object store.
#[derive(Clone)]
pub struct SnapshotStore {
    store: object_store::ObjectStore,
    object: String,
    what: String,
}

impl SnapshotStore {
    /// Opens the bucket, creating it if missing.
    pub async fn open(
        client: async_nats::Client,
        config: SnapshotStoreConfig,
    ) -> Result<Self, SnapshotError> {
        let context = jetstream::new(client);
        // Replicas only ever rise here (`crate::nats::stream_rules`); 0 keeps the bucket's.
        crate::nats::streams::settle_bucket_replicas(
            &context,
            &format!("OBJ_{}", config.bucket),
            config.replicas,
        )
        .await
        .map_err(SnapshotError::Unavailable)?;
        let store = match context.get_object_store(&config.bucket).await {
            Ok(store) => store,
            Err(_) => context
                .create_object_store(object_store::Config {
                    bucket: config.bucket.clone(),
                    description: Some(format!(
                        "Wangge: snapshots of the {} (a restart reads the log after it)",
                        config.what
                    )),
                    max_age: config.max_age,
                    num_replicas: config.replicas.max(1),
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(unavailable)?,
        };
        Ok(Self {
            store,
            object: config.object,
            what: config.what,
        })
    }

    /// Replaces the snapshot.
    pub async fn save(&self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let meta = object_store::ObjectMetadata {
            name: self.object.clone(),
            description: Some(self.what.clone()),
            chunk_size: Some(CHUNK_BYTES),
            ..Default::default()
        };
        let mut reader = bytes;
        self.store
            .put(meta, &mut reader)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The snapshot's bytes, or `None` if there is none.
    pub async fn load(&self) -> Result<Option<Vec<u8>>, SnapshotError> {
        let mut object = match self.store.get(&self.object).await {
            Ok(object) => object,
            Err(error) if error.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(unavailable(error)),
        };
        let mut bytes = Vec::with_capacity(object.info().size);
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|error| unreadable("object", error))?;
        Ok(Some(bytes))
    }
}

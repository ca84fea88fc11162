//! An in-memory event log with the same behaviour as the JetStream one: optimistic
//! concurrency per case, idempotent appends, ordered reading with tailing.
//!
//! Used by the demo (no servers needed) and by fast tests. Nothing survives the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::watch;
use wangge_schemas::CaseId;

use super::codec::encode_events;
use super::{
    Appended, CaseHistory, Commit, EventLog, LogError, LogPosition, SealKey, StoredCommit,
};
use crate::domain::commit::StoredSeal;
use crate::domain::seal::{next_link_after, payload_digest, SealLink};

#[derive(Clone)]
pub struct MemoryLog {
    inner: Arc<Mutex<Inner>>,
    /// Carries the newest position so readers can wait for more.
    head: watch::Sender<LogPosition>,
    /// Seals every commit as the JetStream log does (over the payload it would publish).
    seal_key: Option<Arc<SealKey>>,
}

#[derive(Default)]
struct Inner {
    /// All commits; the commit at index i has position i + 1.
    commits: Vec<StoredCommit>,
    /// Indices into `commits` for each case, in order.
    by_case: HashMap<CaseId, Vec<usize>>,
    /// Idempotency keys seen, with the position of the commit they produced. Unlike NATS,
    /// the memory log never forgets a key (a window of infinite length).
    keys: HashMap<String, LogPosition>,
}

impl Default for MemoryLog {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLog {
    pub fn new() -> Self {
        let (head, _) = watch::channel(0);
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            head,
            seal_key: None,
        }
    }

    /// Seals every commit this log appends with `key` (the demo: an ephemeral key per run).
    pub fn with_seal_key(mut self, key: Arc<SealKey>) -> Self {
        self.seal_key = Some(key);
        self
    }

    /// The seal of a commit following `previous` (the case's last stored commit).
    fn seal(&self, commit: &Commit, previous: Option<&StoredCommit>) -> Option<StoredSeal> {
        let key = self.seal_key.as_ref()?;
        let link: SealLink = next_link_after(
            previous
                .and_then(|c| c.seal.as_ref())
                .map(|seal| seal.seal.as_str()),
        );
        let payload = encode_events(&commit.events);
        let seal = key.seal_commit(commit.case_id, &commit.events, &payload, link);
        Some(StoredSeal {
            seal: seal.header_value(),
            link: Some(seal.link_value()),
            payload_sha256: payload_digest(&payload),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written commit (every mutation
        // below is a single push/insert), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn commits_from(&self, from: LogPosition, limit: usize) -> Vec<StoredCommit> {
        let inner = self.lock();
        let start = from.saturating_sub(1) as usize;
        inner
            .commits
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect()
    }
}

impl EventLog for MemoryLog {
    async fn append(&self, commit: Commit, expected: LogPosition) -> Result<Appended, LogError> {
        let position = {
            let mut inner = self.lock();
            if let Some(&position) = inner.keys.get(&commit.idempotency_key) {
                return Ok(Appended {
                    position,
                    duplicate: true,
                    next_seal_link: None,
                });
            }
            let actual = inner
                .by_case
                .get(&commit.case_id)
                .and_then(|indices| indices.last())
                .map_or(0, |&index| index as LogPosition + 1);
            if actual != expected {
                return Err(LogError::Conflict {
                    case_id: commit.case_id,
                    expected,
                    actual,
                });
            }
            let previous = inner
                .by_case
                .get(&commit.case_id)
                .and_then(|indices| indices.last())
                .map(|&index| &inner.commits[index]);
            let seal = self.seal(&commit, previous);
            // An unsealed commit is followed by the genesis link, as the rule says.
            let next_seal_link = Some(next_link_after(
                seal.as_ref().map(|seal| seal.seal.as_str()),
            ));
            let index = inner.commits.len();
            let position = index as LogPosition + 1;
            inner.by_case.entry(commit.case_id).or_default().push(index);
            inner.keys.insert(commit.idempotency_key, position);
            inner.commits.push(StoredCommit {
                position,
                case_id: commit.case_id,
                events: commit.events,
                seal,
            });
            (position, next_seal_link)
        };
        let (position, next_seal_link) = position;
        self.head.send_replace(position);
        Ok(Appended {
            position,
            duplicate: false,
            next_seal_link,
        })
    }

    async fn load(&self, case_id: CaseId) -> Result<CaseHistory, LogError> {
        let inner = self.lock();
        let Some(indices) = inner.by_case.get(&case_id) else {
            return Ok(CaseHistory::default());
        };
        let events = indices
            .iter()
            .flat_map(|&index| inner.commits[index].events.iter().cloned())
            .collect();
        let commit_positions: Vec<LogPosition> = indices
            .iter()
            .map(|&index| index as LogPosition + 1)
            .collect();
        let last_position = commit_positions.last().copied().unwrap_or(0);
        let next_seal_link = indices.last().map(|&index| {
            next_link_after(
                inner.commits[index]
                    .seal
                    .as_ref()
                    .map(|seal| seal.seal.as_str()),
            )
        });
        Ok(CaseHistory {
            events,
            last_position,
            commit_positions,
            next_seal_link,
        })
    }

    fn read_from(&self, from: LogPosition) -> BoxStream<'static, Result<StoredCommit, LogError>> {
        const BATCH: usize = 512;
        let log = self.clone();
        let head = self.head.subscribe();
        stream::unfold(
            (log, head, from.max(1)),
            |(log, mut head, next)| async move {
                loop {
                    let batch = log.commits_from(next, BATCH);
                    if !batch.is_empty() {
                        let next = batch.last().map_or(next, |c| c.position + 1);
                        return Some((stream::iter(batch.into_iter().map(Ok)), (log, head, next)));
                    }
                    // Nothing new yet: wait for the next append (or end when the log is dropped).
                    if head.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
        .flatten()
        .boxed()
    }

    async fn head(&self) -> Result<LogPosition, LogError> {
        Ok(self.lock().commits.len() as LogPosition)
    }
}

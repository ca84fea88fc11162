//! Group commit: many appends, one fsync.
//!
//! With `sync_interval: always` (what `deploy/` requires) a nats-server fsyncs its block file
//! after every stored message, so single publishes are bound by the disk's fsync latency,
//! however many are in flight (measured: 3.8–4.1k msgs/s, `benches/RESULTS.md`). An *atomic
//! batch* (ADR-50, nats-server ≥ 2.12; stream setting `allow_atomic`) is stored all at once,
//! and from nats-server 2.15 under a single fsync (strace: one data fsync for a batch of 500,
//! where 2.14.6 made one per message).
//!
//! So appends are not published one by one: they queue here, and a writer takes whatever has
//! queued while the previous batches were in flight — up to [`MAX_BATCH_MESSAGES`] messages on
//! distinct subjects — and publishes them as one atomic batch. Nothing waits for a batch to
//! fill: what has queued is published at once — as plain publishes side by side when fewer
//! than [`MIN_BATCH_MESSAGES`] wait (an atomic batch has a fixed cost that a few appends do
//! not repay), as one atomic batch otherwise. Batches grow only because appends arrive while
//! the disk is busy, which is exactly when sharing the fsync pays.
//!
//! A batch is all or nothing: one append whose expected position no longer holds (a lost
//! race), or whose idempotency key the stream has seen (a retry), fails the whole batch,
//! and the server does not say which. Then every append of that batch is published again on
//! its own, concurrently, and each gets its own answer — conflict, duplicate or stored —
//! exactly as without group commit. Correctness never depends on batching; only speed does.
//!
//! Every message keeps its own `Nats-Msg-Id`, `Nats-Expected-Last-Subject-Sequence` and seal;
//! the batch adds `Nats-Batch-Id`, `Nats-Batch-Sequence` and, on the last, `Nats-Batch-Commit`.
//! A batch's messages are stored at consecutive positions, so the server's one acknowledgement
//! (the last position) gives each append its own.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::jetstream::{self, context::PublishError};
use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, warn};

/// The server's limit on an atomic batch (`streamDefaultMaxAtomicBatchSize`).
pub const MAX_BATCH_MESSAGES: usize = 1_000;

/// Largest batch in bytes: the server stages a batch in memory until its commit, so one
/// batch is kept to a few megabytes whatever the commits' sizes.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Fewest appends worth an atomic batch. The server stages every atomic batch in a store of
/// its own before committing it, a fixed cost of about 3–4 ms on the development machine
/// whether it fsyncs or not (measured: a batch of one takes 3–4 ms, a plain publish 0.4 ms),
/// while a plain durable publish costs one fsync (about 0.25 ms of the disk's time). Below
/// this many, the appends waiting are published side by side instead.
pub const MIN_BATCH_MESSAGES: usize = 16;

/// Batches in flight at once from one log handle. The server allows 50 per stream (shared by
/// every engine instance) and stores them one after another anyway; two keep the disk busy
/// while the next batch forms.
pub const DEFAULT_BATCHES_IN_FLIGHT: usize = 2;

const HEADER_BATCH_ID: &str = "Nats-Batch-Id";
const HEADER_BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
const HEADER_BATCH_COMMIT: &str = "Nats-Batch-Commit";

/// Where the server stored an append, or that it had it already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub sequence: u64,
    pub duplicate: bool,
}

/// One append waiting for its batch.
struct Pending {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    answer: oneshot::Sender<Result<Stored, PublishError>>,
}

impl Pending {
    fn size(&self) -> usize {
        self.subject.len() + self.payload.len() + 256
    }
}

/// What group commit has done so far: how well appends share their fsyncs.
#[derive(Debug, Default)]
pub struct GroupCommitStats {
    /// Atomic batches the server stored (each one fsync under `sync_interval: always`).
    pub batches_stored: AtomicU64,
    /// Appends stored as part of those batches.
    pub appends_batched: AtomicU64,
    /// Appends published on their own because too few were waiting to be worth a batch.
    pub appends_alone: AtomicU64,
    /// Batches the server refused (a lost race or a retry inside), whose appends were then
    /// published one by one.
    pub batches_refused: AtomicU64,
}

/// A copy of [`GroupCommitStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitFigures {
    pub batches_stored: u64,
    pub appends_batched: u64,
    pub appends_alone: u64,
    pub batches_refused: u64,
}

impl GroupCommitStats {
    pub fn figures(&self) -> GroupCommitFigures {
        GroupCommitFigures {
            batches_stored: self.batches_stored.load(Ordering::Relaxed),
            appends_batched: self.appends_batched.load(Ordering::Relaxed),
            appends_alone: self.appends_alone.load(Ordering::Relaxed),
            batches_refused: self.batches_refused.load(Ordering::Relaxed),
        }
    }
}

/// How appends reach the stream: one by one, or grouped into atomic batches.
#[derive(Clone)]
pub enum Publisher {
    /// Every append is its own publish (streams without `allow_atomic`, servers before 2.12).
    Single(Box<jetstream::Context>),
    /// Appends are grouped by a writer task (see the module documentation).
    Grouped {
        queue: mpsc::UnboundedSender<PendingAppend>,
        stats: Arc<GroupCommitStats>,
    },
}

/// An append handed to the group writer (opaque outside this module).
pub struct PendingAppend(Pending);

impl Publisher {
    /// Appends go one by one.
    pub fn single(context: jetstream::Context) -> Self {
        Self::Single(Box::new(context))
    }

    /// Appends are grouped by a writer task that lives as long as any clone of this publisher.
    pub fn grouped(context: jetstream::Context, batches_in_flight: usize) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let stats = Arc::new(GroupCommitStats::default());
        tokio::spawn(write_batches(
            context,
            receiver,
            batches_in_flight.max(1),
            stats.clone(),
        ));
        Self::Grouped { queue, stats }
    }

    /// What group commit has done so far (`None` when appends go one by one).
    pub fn stats(&self) -> Option<GroupCommitFigures> {
        match self {
            Self::Single(_) => None,
            Self::Grouped { stats, .. } => Some(stats.figures()),
        }
    }

    /// Publishes one message (with its own conditional and idempotency headers) and waits for
    /// the server's answer.
    pub async fn publish(
        &self,
        subject: String,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Stored, PublishError> {
        match self {
            Self::Single(context) => publish_one(context, subject, headers, payload).await,
            Self::Grouped { queue, .. } => {
                let (answer, answered) = oneshot::channel();
                let pending = Pending {
                    subject,
                    headers,
                    payload,
                    answer,
                };
                if let Err(mpsc::error::SendError(PendingAppend(pending))) =
                    queue.send(PendingAppend(pending))
                {
                    // The writer is gone (the runtime is shutting down): say so as the server
                    // would, without panicking.
                    drop(pending);
                    return Err(writer_gone());
                }
                answered.await.unwrap_or_else(|_| Err(writer_gone()))
            }
        }
    }
}

fn writer_gone() -> PublishError {
    PublishError::new(jetstream::context::PublishErrorKind::BrokenPipe)
}

async fn publish_one(
    context: &jetstream::Context,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<Stored, PublishError> {
    let ack = context
        .publish_with_headers(subject, headers, payload)
        .await?
        .await?;
    Ok(Stored {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}

/// The writer: forms a batch from what has queued whenever a batch slot is free.
async fn write_batches(
    context: jetstream::Context,
    mut queue: mpsc::UnboundedReceiver<PendingAppend>,
    batches_in_flight: usize,
    stats: Arc<GroupCommitStats>,
) {
    let slots = Arc::new(Semaphore::new(batches_in_flight));
    // Appends whose subject was already in the batch being formed wait for the next one.
    let mut held: VecDeque<Pending> = VecDeque::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match held.pop_front() {
            Some(pending) => pending,
            None => match queue.recv().await {
                Some(PendingAppend(pending)) => pending,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut subjects: HashSet<String> = HashSet::from([batch[0].subject.clone()]);
        let mut bytes = batch[0].size();
        let full = |batch: &Vec<Pending>, bytes: usize| {
            batch.len() >= MAX_BATCH_MESSAGES || bytes >= MAX_BATCH_BYTES
        };
        let mut still_held = VecDeque::new();
        while let Some(pending) = held.pop_front() {
            if full(&batch, bytes) || subjects.contains(&pending.subject) {
                still_held.push_back(pending);
            } else {
                subjects.insert(pending.subject.clone());
                bytes += pending.size();
                batch.push(pending);
            }
        }
        held = still_held;
        while !full(&batch, bytes) {
            let Ok(PendingAppend(pending)) = queue.try_recv() else {
                break;
            };
            if subjects.contains(&pending.subject) {
                held.push_back(pending);
            } else {
                subjects.insert(pending.subject.clone());
                bytes += pending.size();
                batch.push(pending);
            }
        }
        let (context, stats) = (context.clone(), stats.clone());
        tokio::spawn(async move {
            publish_batch(&context, batch, &stats).await;
            drop(slot);
        });
    }
}

/// Publishes a batch and answers each of its appends.
async fn publish_batch(
    context: &jetstream::Context,
    batch: Vec<Pending>,
    stats: &GroupCommitStats,
) {
    if batch.len() < MIN_BATCH_MESSAGES {
        stats
            .appends_alone
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        publish_each(context, batch).await;
        return;
    }
    match publish_atomically(context, &batch).await {
        Ok(last) => {
            let count = batch.len() as u64;
            stats.batches_stored.fetch_add(1, Ordering::Relaxed);
            stats.appends_batched.fetch_add(count, Ordering::Relaxed);
            debug!(messages = count, last, "atomic batch stored");
            for (index, pending) in batch.into_iter().enumerate() {
                let sequence = last + 1 - count + index as u64;
                let _ = pending.answer.send(Ok(Stored {
                    sequence,
                    duplicate: false,
                }));
            }
        }
        Err(error) => {
            stats.batches_refused.fetch_add(1, Ordering::Relaxed);
            // One append spoiled the batch (a lost race, a retry) or the server failed: every
            // append gets its own answer from a publish of its own.
            debug!(messages = batch.len(), %error, "atomic batch refused; publishing its appends one by one");
            publish_each(context, batch).await;
        }
    }
}

/// Publishes every append of `batch` on its own, all at once, and answers each.
async fn publish_each(context: &jetstream::Context, batch: Vec<Pending>) {
    let singles = batch.into_iter().map(|pending| async move {
        let result = publish_one(context, pending.subject, pending.headers, pending.payload).await;
        let _ = pending.answer.send(result);
    });
    futures::future::join_all(singles).await;
}

/// The messages of `batch` as one atomic batch: all but the last are published without a
/// reply (the server answers only the commit), the last commits and is acknowledged with the
/// batch's last position.
async fn publish_atomically(
    context: &jetstream::Context,
    batch: &[Pending],
) -> Result<u64, PublishError> {
    let client = context.client();
    let batch_id = uuid::Uuid::now_v7().simple().to_string();
    let last = batch.len();
    for (index, pending) in batch.iter().enumerate() {
        let mut headers = pending.headers.clone();
        headers.insert(HEADER_BATCH_ID, batch_id.as_str());
        headers.insert(HEADER_BATCH_SEQUENCE, (index + 1).to_string().as_str());
        if index + 1 < last {
            client
                .publish_with_headers(pending.subject.clone(), headers, pending.payload.clone())
                .await
                .map_err(|error| {
                    warn!(%error, "could not send a batch message");
                    PublishError::with_source(jetstream::context::PublishErrorKind::Other, error)
                })?;
        } else {
            headers.insert(HEADER_BATCH_COMMIT, "1");
            let ack = context
                .publish_with_headers(pending.subject.clone(), headers, pending.payload.clone())
                .await?
                .await?;
            return Ok(ack.sequence);
        }
    }
    Err(PublishError::new(
        jetstream::context::PublishErrorKind::Other,
    ))
}

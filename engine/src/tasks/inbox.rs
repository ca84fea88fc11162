//! The durable task inbox: a case given to a worker reaches that worker even if they were
//! offline when it happened.
//!
//! # Subjects and streams
//!
//! - Stream `WANGGE_TASKS`, subjects `wangge.tasks.<worker_id>`: one subject per worker
//!   (worker ids are subject tokens, see
//!   [`is_valid_worker_id`](wangge_schemas::worker::is_valid_worker_id)). Each message is
//!   one JSON [`TaskMessage`]: `assigned`, `withdrawn`, `rework_requested` or `supervised`. File storage,
//!   kept for [`TaskStreamConfig::max_age`] (30 days by default; the case log stays the
//!   truth), created or updated idempotently by every engine instance and every reader.
//! - Every task message is published with `Nats-Msg-Id` =
//!   `task:<case_id>:<event sequence>:<worker_id>` ([`task_message_id`]), so publishing the
//!   same event again (a redelivery, a second engine instance, a restart) never puts a second
//!   copy in the inbox while the stream's duplicate window (1 hour) remembers it.
//!
//! # Publishing: [`TaskPublisher`]
//!
//! Follows `WANGGE_EVENTS` (`wangge.events.>`) through one durable pull consumer,
//! `wangge-task-publisher`, shared by every engine instance (each commit goes to one of
//! them). For a commit holding a dispatch, reassignment, decline, escalation, rework request
//! or a closing event (closed, voided, rejected, merged) it loads the case, works out the
//! inbox messages ([`tasks_for_commit`], pure), publishes them and waits for their acks, and
//! only then acks the commit. A crash in between means a redelivery and a deduplicated
//! republish: a restart resumes where the consumer stopped and skips nothing. A new
//! consumer starts at the beginning of the log, so a first deployment on an existing log
//! publishes the history too.
//!
//! The dispatcher does not wait for this: its [`TaskFastPath`] publishes a dispatch's task the
//! moment the dispatch is written. It announces each such delivery before the append and
//! reports whether every task of the commit was acknowledged; the publisher of the same
//! process, reading that commit, waits for the outcome and, when the delivery succeeded,
//! acks the commit without loading the case or publishing again. In every other case (the
//! fast delivery failed, took too long, or ran in another instance) it publishes the tasks
//! itself under the same message ids, so the stream drops the second copy. Commits whose
//! `Wangge-Event-Types` header lists no event that concerns tasks are acked unread.
//!
//! With several engine instances (or a redelivery after a crash) two commits of one case
//! can be published out of order. Every message carries the case `sequence` it reflects:
//! per case, the message with the highest sequence tells whether the task is the worker's
//! now ([`open_tasks`]).
//!
//! # Reading: [`WorkerInbox`]
//!
//! A durable pull consumer per worker, `inbox-<worker_id>`, filtered to the worker's subject
//! and starting at the first message the stream holds for them. A worker who connects for
//! the first time, or again after a week offline, fetches everything not yet acknowledged;
//! an acknowledged task is not delivered again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer},
    message::PublishMessage,
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
    AckKind,
};
use futures::StreamExt;
use quick_cache::sync::Cache;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use wangge_schemas::worker::{is_valid_worker_id, TaskMessage};
use wangge_schemas::{CaseId, EventEnvelope};

use crate::log::codec::{decode_events, HEADER_EVENT_TYPES, HEADER_FIRST_SEQUENCE};
use crate::log::{EventLog, JetStreamLogConfig};
use crate::nats::ordered_reader::{connection_count, reconnection};
pub use wangge_domain::tasks::{
    concerns_tasks, open_tasks, task_message_id, tasks_for_commit, type_concerns_tasks,
    TaskDelivery,
};

/// The name of the durable consumer the task publishers share.
pub const TASK_PUBLISHER_CONSUMER: &str = "wangge-task-publisher";

/// The inbox consumer of a worker is this prefix and the worker id.
pub const INBOX_CONSUMER_PREFIX: &str = "inbox-";

/// How the task stream is set up.
#[derive(Debug, Clone)]
pub struct TaskStreamConfig {
    pub stream_name: String,
    /// Subjects are `<subject_prefix>.<worker_id>`.
    pub subject_prefix: String,
    /// 1 on one server, 3 on a cluster.
    pub replicas: usize,
    /// How long a task message is kept (`Duration::ZERO`: for ever).
    pub max_age: Duration,
    /// How long the server remembers a task's `Nats-Msg-Id`.
    pub duplicate_window: Duration,
}

impl Default for TaskStreamConfig {
    fn default() -> Self {
        Self {
            stream_name: "WANGGE_TASKS".to_owned(),
            subject_prefix: "wangge.tasks".to_owned(),
            replicas: 1,
            max_age: Duration::from_secs(30 * 24 * 3600),
            duplicate_window: Duration::from_secs(3600),
        }
    }
}

impl TaskStreamConfig {
    /// The subject of one worker's inbox.
    pub fn subject(&self, worker_id: &str) -> String {
        format!("{}.{worker_id}", self.subject_prefix)
    }

    fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream_name.clone(),
            description: Some("Wangge task inboxes: one subject per grid worker".into()),
            subjects: vec![format!("{}.>", self.subject_prefix)],
            storage: StorageType::File,
            num_replicas: self.replicas,
            retention: RetentionPolicy::Limits,
            max_age: self.max_age,
            max_messages: -1,
            max_bytes: -1,
            discard: DiscardPolicy::Old,
            duplicate_window: self.duplicate_window,
            allow_direct: true,
            ..Default::default()
        }
    }
}

/// The inbox subject of a worker with the default stream settings: `wangge.tasks.<worker_id>`.
pub fn task_subject(worker_id: &str) -> String {
    TaskStreamConfig::default().subject(worker_id)
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("`{0}` is not a worker id: use 1 to 64 ASCII letters, digits, `-` or `_`")]
    InvalidWorkerId(String),
    /// NATS failed or could not be reached; worth retrying after a pause.
    #[error("task inbox unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(error: impl std::fmt::Display) -> TaskError {
    TaskError::Unavailable(error.to_string())
}

/// Creates the task stream if missing and brings its settings up to date if not.
pub async fn open_task_stream(
    context: &jetstream::Context,
    config: &TaskStreamConfig,
) -> Result<stream::Stream, TaskError> {
    crate::nats::open_stream(context, config.stream_config(), "task")
        .await
        .map_err(TaskError::Unavailable)
}

// ---------------------------------------------------------------------------------------
// The publisher
// ---------------------------------------------------------------------------------------

/// Commits the publisher works on at once.
const MAX_COMMITS_IN_FLIGHT: usize = 128;

/// How the task publisher reads the event log and where it writes.
#[derive(Debug, Clone)]
pub struct TaskPublisherConfig {
    /// The event stream and its subject prefix (as the event log is set up).
    pub events_stream: String,
    pub events_subject_prefix: String,
    /// The durable consumer all publishers share.
    pub consumer_name: String,
    pub tasks: TaskStreamConfig,
    /// How long a commit handed to one instance waits for its ack before it is given to
    /// another (the instance died). Applies when the consumer is created.
    pub ack_wait: Duration,
    /// Commits asked for at once.
    pub batch: usize,
    /// How long one pull request waits on the server when the log is quiet.
    pub pull_expiry: Duration,
    /// Pause before a failed commit is delivered again (the log or NATS failed).
    pub retry_delay: Duration,
}

impl Default for TaskPublisherConfig {
    fn default() -> Self {
        let events = JetStreamLogConfig::default();
        Self {
            events_stream: events.stream_name,
            events_subject_prefix: events.subject_prefix,
            consumer_name: TASK_PUBLISHER_CONSUMER.to_owned(),
            tasks: TaskStreamConfig::default(),
            ack_wait: Duration::from_secs(30),
            batch: 64,
            pull_expiry: Duration::from_secs(5),
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// Turns case events into inbox messages; see the module documentation.
pub struct TaskPublisher<L> {
    context: jetstream::Context,
    log: L,
    config: TaskPublisherConfig,
    consumer: PullConsumer,
    fast_deliveries: FastDeliveries,
}

/// What became of one commit.
enum Handled {
    Published(usize),
    Failed(String),
}

impl<L: EventLog> TaskPublisher<L> {
    /// Creates (or finds) the task stream and the shared durable consumer.
    pub async fn open(
        client: async_nats::Client,
        log: L,
        config: TaskPublisherConfig,
    ) -> Result<Self, TaskError> {
        let context = jetstream::new(client);
        open_task_stream(&context, &config.tasks).await?;
        let consumer = Self::consumer(&context, &config).await?;
        Ok(Self {
            context,
            log,
            config,
            consumer,
            fast_deliveries: Arc::new(Cache::new(FAST_DELIVERIES_REMEMBERED)),
        })
    }

    /// A fast path for this process's dispatcher, publishing to the same task stream and
    /// telling this publisher what it delivered.
    pub fn fast_path(&self) -> TaskFastPath {
        TaskFastPath {
            context: self.context.clone(),
            tasks: self.config.tasks.clone(),
            deliveries: self.fast_deliveries.clone(),
        }
    }

    async fn consumer(
        context: &jetstream::Context,
        config: &TaskPublisherConfig,
    ) -> Result<PullConsumer, TaskError> {
        let events = context
            .get_stream(&config.events_stream)
            .await
            .map_err(unavailable)?;
        events
            .get_or_create_consumer(
                &config.consumer_name,
                pull::Config {
                    durable_name: Some(config.consumer_name.clone()),
                    description: Some(
                        "Wangge task publisher: case events to worker inboxes".to_owned(),
                    ),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_deliver: -1,
                    filter_subject: format!("{}.>", config.events_subject_prefix),
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)
    }

    /// Publishes tasks until `shutdown` completes. The commit in hand is finished first;
    /// commits fetched but not yet handled go to another instance after `ack_wait`.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        use futures::StreamExt as _;
        tokio::pin!(shutdown);
        info!(consumer = %self.config.consumer_name, "task publisher running");
        let mut failed = false;
        loop {
            if failed {
                tokio::select! {
                    () = tokio::time::sleep(self.config.retry_delay) => {}
                    () = &mut shutdown => break,
                }
                // The streams and the consumer may have gone with a server that lost its
                // store; both are created again as at start-up.
                if let Err(error) = open_task_stream(&self.context, &self.config.tasks).await {
                    debug!(%error, "task publisher cannot reach the task stream yet");
                    continue;
                }
                match Self::consumer(&self.context, &self.config).await {
                    Ok(consumer) => self.consumer = consumer,
                    Err(error) => {
                        debug!(%error, "task publisher cannot reach its consumer yet");
                        continue;
                    }
                }
            }
            let connects = connection_count(&self.context.client());
            let batch = self
                .consumer
                .batch()
                .max_messages(self.config.batch)
                .expires(self.config.pull_expiry)
                .messages();
            let batch = tokio::select! {
                batch = batch => batch,
                () = &mut shutdown => break,
            };
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    debug!(%error, "task publisher pull failed");
                    failed = true;
                    continue;
                }
            };
            failed = false;
            // Commits of different cases are independent, so a batch's commits are handled
            // concurrently (each task carries its case sequence, so a reader can order
            // them); a bounded number at a time.
            let mut handling = futures::stream::FuturesUnordered::new();
            loop {
                let client = self.context.client();
                let next = tokio::select! {
                    next = batch.next(), if handling.len() < MAX_COMMITS_IN_FLIGHT => next,
                    Some(()) = handling.next(), if !handling.is_empty() => continue,
                    // A restarted server forgot the pull request: ask again at once rather
                    // than when the request would have expired.
                    () = reconnection(&client, connects) => {
                        debug!("task publisher reconnected; pulling again");
                        break;
                    }
                    () = &mut shutdown => {
                        info!("task publisher stopped");
                        return;
                    }
                };
                match next {
                    None => break,
                    Some(Ok(message)) => handling.push(self.handle(message)),
                    Some(Err(error)) => {
                        debug!(%error, "task publisher batch failed");
                        failed = true;
                        break;
                    }
                }
            }
            while handling.next().await.is_some() {}
        }
        info!("task publisher stopped");
    }

    /// Publishes the tasks of one commit, then acks it; on failure asks for it again later.
    async fn handle(&self, message: jetstream::Message) {
        let position = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        match self.publish_tasks(&message).await {
            Ok(Handled::Published(count)) => {
                if count > 0 {
                    debug!(position, count, "published tasks");
                }
                // A plain ack, not waiting for the server to confirm it: an ack that is lost
                // brings the commit back after ack_wait, and its tasks are published again
                // under the same message ids, which the task stream drops.
                if let Err(error) = message.ack().await {
                    debug!(%error, position, "could not ack a commit");
                }
            }
            Ok(Handled::Failed(reason)) => {
                warn!(position, %reason, "cannot publish the tasks of a commit; trying again later");
                let _ = message
                    .ack_with(AckKind::Nak(Some(self.config.retry_delay)))
                    .await;
            }
            Err(reason) => {
                // Not a commit this engine can read: asking again would never succeed.
                warn!(position, %reason, subject = %message.subject, "skipping an unreadable commit");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }

    /// Whether this process's fast path delivered the tasks of the case's commit that starts
    /// at `first_sequence` (waiting for a delivery under way).
    async fn fast_path_delivered(&self, case_id: CaseId, first_sequence: u64) -> bool {
        match self.fast_deliveries.remove(&(case_id, first_sequence)) {
            Some((_, outcome)) => delivered_by_fast_path(outcome, FAST_PATH_PATIENCE).await,
            None => false,
        }
    }

    /// `Err` for a message that can never be handled, `Ok(Failed)` for one worth retrying.
    async fn publish_tasks(&self, message: &jetstream::Message) -> Result<Handled, String> {
        let case_id: CaseId = message
            .subject
            .as_str()
            .rsplit('.')
            .next()
            .and_then(|token| token.parse().ok())
            .ok_or_else(|| format!("subject {} does not end in a case id", message.subject))?;
        // The headers the event log writes say enough to pass over most commits unread.
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str())
        };
        if let Some(types) = header(HEADER_EVENT_TYPES) {
            if !types.split(',').any(type_concerns_tasks) {
                return Ok(Handled::Published(0));
            }
        }
        let listed_first = header(HEADER_FIRST_SEQUENCE).and_then(|value| value.parse().ok());
        if let Some(first) = listed_first {
            if self.fast_path_delivered(case_id, first).await {
                return Ok(Handled::Published(0));
            }
        }
        let commit = decode_events(case_id, &message.payload)?;
        if !commit.iter().any(|e| concerns_tasks(&e.event)) {
            return Ok(Handled::Published(0));
        }
        let first = commit.first().map_or(1, |e| e.sequence);
        if listed_first.is_none() && self.fast_path_delivered(case_id, first).await {
            return Ok(Handled::Published(0));
        }
        let history = match self.log.load(case_id).await {
            Ok(history) => history,
            Err(error) => return Ok(Handled::Failed(error.to_string())),
        };
        let earlier: Vec<EventEnvelope> = history
            .events
            .into_iter()
            .filter(|e| e.sequence < first)
            .collect();
        if earlier.len() as u64 != first - 1 {
            // A replica behind the leader: the case's earlier commits are not readable yet.
            return Ok(Handled::Failed(format!(
                "case {case_id} loaded {} events before sequence {first}",
                earlier.len()
            )));
        }
        match publish_tasks_of_commit(&self.context, &self.config.tasks, &earlier, &commit).await {
            Ok(published) => Ok(Handled::Published(published)),
            Err(error) => Ok(Handled::Failed(error)),
        }
    }
}

/// Publishes the tasks one commit gives rise to, each with its deduplicating message id, and
/// waits for their acks (all sent first, then all awaited). Used by the publisher that
/// follows the log, and by the dispatcher's [`TaskFastPath`] right after it dispatches.
pub async fn publish_tasks_of_commit(
    context: &jetstream::Context,
    tasks: &TaskStreamConfig,
    earlier: &[EventEnvelope],
    commit: &[EventEnvelope],
) -> Result<usize, String> {
    let mut acks = Vec::new();
    for delivery in tasks_for_commit(earlier, commit) {
        if !is_valid_worker_id(&delivery.worker_id) {
            warn!(worker_id = %delivery.worker_id, "worker id cannot name an inbox subject; task not published");
            continue;
        }
        let body = serde_json::to_vec(&delivery.message).expect("task messages serialize");
        let publish = PublishMessage::build()
            .payload(body.into())
            .message_id(delivery.message_id());
        let subject = tasks.subject(&delivery.worker_id);
        let ack = context
            .send_publish(subject, publish)
            .await
            .map_err(|e| e.to_string())?;
        acks.push(ack);
    }
    let published = acks.len();
    futures::future::try_join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
        .await
        .map_err(|e| e.to_string())?;
    Ok(published)
}

// ---------------------------------------------------------------------------------------
// The fast path
// ---------------------------------------------------------------------------------------

/// Commits this process's fast path is delivering or has delivered, keyed by case and the
/// commit's first event sequence (one commit of a case starts at a given sequence). Bounded:
/// an entry nobody collects (its commit went to another instance's publisher, or was never
/// written) is dropped in time, and a dropped entry costs only a deduplicated republish.
type FastDeliveries = Arc<Cache<(CaseId, u64), watch::Receiver<Option<bool>>>>;

/// How many fast deliveries the publisher can look up; far more than are in flight at once.
const FAST_DELIVERIES_REMEMBERED: usize = 16_384;

/// How long the publisher waits for a fast delivery it was told about before it publishes
/// the commit's tasks itself (deduplicated if the fast path got there after all).
const FAST_PATH_PATIENCE: Duration = Duration::from_secs(2);

/// Where the dispatcher puts a worker's task the moment it dispatches, instead of waiting for
/// the task publisher to read the dispatch from the log. Made by [`TaskPublisher::fast_path`]:
/// it tells the publisher of the same process which commits it has delivered, so the
/// publisher neither reads those cases again nor publishes their tasks a second time.
///
/// The publisher stays the durable path: it skips a commit only when the fast path's
/// publish of every task of exactly that commit was acknowledged by the task stream; when
/// the fast path failed, is late or ran in another process, the publisher publishes the
/// tasks itself, with the same message ids, so an inbox never holds two copies.
#[derive(Clone)]
pub struct TaskFastPath {
    context: jetstream::Context,
    tasks: TaskStreamConfig,
    deliveries: FastDeliveries,
}

/// One commit whose tasks the fast path means to deliver once it is written. Announced
/// before the append, so the publisher, which may read the commit before the dispatcher has
/// its ack, knows to wait; dropped without [`FastDelivery::deliver`], the publisher
/// delivers the tasks itself.
pub struct FastDelivery {
    context: jetstream::Context,
    tasks: TaskStreamConfig,
    delivered: watch::Sender<Option<bool>>,
}

impl TaskFastPath {
    /// Announces a delivery for the commit of `case_id` that will start at `first_sequence`.
    pub fn announce(&self, case_id: CaseId, first_sequence: u64) -> FastDelivery {
        let (delivered, outcome) = watch::channel(None);
        self.deliveries.insert((case_id, first_sequence), outcome);
        FastDelivery {
            context: self.context.clone(),
            tasks: self.tasks.clone(),
            delivered,
        }
    }
}

impl FastDelivery {
    /// Publishes the tasks of the announced commit, now written after `earlier`, and tells
    /// the publisher whether every one of them was acknowledged.
    pub async fn deliver(
        self,
        earlier: &[EventEnvelope],
        commit: &[EventEnvelope],
    ) -> Result<usize, String> {
        let published = publish_tasks_of_commit(&self.context, &self.tasks, earlier, commit).await;
        self.delivered.send_replace(Some(published.is_ok()));
        published
    }
}

/// Whether the fast path delivered a commit's tasks: waits for its outcome, at most
/// `patience`. A delivery dropped unfinished counts as not delivered.
async fn delivered_by_fast_path(
    mut outcome: watch::Receiver<Option<bool>>,
    patience: Duration,
) -> bool {
    let decided = tokio::time::timeout(patience, async {
        loop {
            if let Some(delivered) = *outcome.borrow_and_update() {
                return delivered;
            }
            if outcome.changed().await.is_err() {
                return outcome.borrow().unwrap_or(false);
            }
        }
    });
    decided.await.unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// The reader
// ---------------------------------------------------------------------------------------

/// One worker's inbox, as the worker's app reads it.
pub struct WorkerInbox {
    worker_id: String,
    consumer: PullConsumer,
}

/// A task message fetched from an inbox and not yet acknowledged.
pub struct InboxTask {
    pub task: TaskMessage,
    /// Its position in the task stream.
    pub stream_sequence: u64,
    message: jetstream::Message,
}

impl InboxTask {
    /// Marks the task received: it is not delivered again.
    pub async fn ack(&self) -> Result<(), TaskError> {
        self.message.double_ack().await.map_err(unavailable)
    }

    /// The subject that acknowledges this delivery: a receipt a worker may send back
    /// through the engine's inbox service ([`super::inbox_service`]).
    pub fn receipt(&self) -> Option<&str> {
        self.message.reply.as_deref()
    }

    /// Hands the task back: the next fetch delivers it again.
    pub async fn release(&self) -> Result<(), TaskError> {
        self.message
            .ack_with(AckKind::Nak(None))
            .await
            .map_err(unavailable)
    }
}

impl WorkerInbox {
    /// Opens (creating on first use) the worker's durable inbox consumer, and the task
    /// stream if no engine has created it yet.
    pub async fn open(
        client: async_nats::Client,
        worker_id: &str,
        config: &TaskStreamConfig,
    ) -> Result<Self, TaskError> {
        if !is_valid_worker_id(worker_id) {
            return Err(TaskError::InvalidWorkerId(worker_id.to_owned()));
        }
        let context = jetstream::new(client);
        let stream = open_task_stream(&context, config).await?;
        let name = format!("{INBOX_CONSUMER_PREFIX}{worker_id}");
        let consumer = stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some(format!("Task inbox of grid worker {worker_id}")),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_deliver: -1,
                    filter_subject: config.subject(worker_id),
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        Ok(Self {
            worker_id: worker_id.to_owned(),
            consumer,
        })
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Up to `max` pending tasks, oldest first, not yet acknowledged. Returns at once with
    /// what is there; when nothing is, waits up to `wait` for the first one to arrive.
    pub async fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<InboxTask>, TaskError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut tasks = self.fetch_now(max).await?;
        if tasks.is_empty() && !wait.is_zero() {
            let first = self
                .consumer
                .batch()
                .max_messages(1)
                .expires(wait)
                .messages()
                .await
                .map_err(unavailable)?;
            tasks = self.collect(first).await?;
            if !tasks.is_empty() && max > 1 {
                tasks.extend(self.fetch_now(max - 1).await?);
            }
        }
        Ok(tasks)
    }

    /// [`WorkerInbox::fetch`], acknowledging every task fetched.
    pub async fn take(&self, max: usize, wait: Duration) -> Result<Vec<TaskMessage>, TaskError> {
        let tasks = self.fetch(max, wait).await?;
        let mut taken = Vec::with_capacity(tasks.len());
        for task in tasks {
            task.ack().await?;
            taken.push(task.task);
        }
        Ok(taken)
    }

    async fn fetch_now(&self, max: usize) -> Result<Vec<InboxTask>, TaskError> {
        let batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(unavailable)?;
        self.collect(batch).await
    }

    async fn collect(&self, mut batch: pull::Batch) -> Result<Vec<InboxTask>, TaskError> {
        let mut tasks = Vec::new();
        while let Some(next) = batch.next().await {
            let message = match next {
                Ok(message) => message,
                // What arrived is kept; the rest comes with the next fetch.
                Err(error) if !tasks.is_empty() => {
                    debug!(%error, worker_id = %self.worker_id, "inbox fetch ended early");
                    break;
                }
                Err(error) => return Err(unavailable(error)),
            };
            let stream_sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
            match serde_json::from_slice::<TaskMessage>(&message.payload) {
                Ok(task) => tasks.push(InboxTask {
                    task,
                    stream_sequence,
                    message,
                }),
                Err(error) => {
                    warn!(%error, worker_id = %self.worker_id, stream_sequence, "skipping an unreadable task message");
                    let _ = message.ack_with(AckKind::Term).await;
                }
            }
        }
        Ok(tasks)
    }
}

//! Tasks for grid workers: what reaches a worker, and what a worker may do about it.
//!
//! ```text
//!  WANGGE_EVENTS ──► TaskPublisher ──────────────────────► WANGGE_TASKS ──► WorkerInbox
//!  (case events)     durable consumer                       wangge.tasks.<worker_id>   durable consumer
//!                    `wangge-task-publisher`,                                           `inbox-<worker_id>`
//!                    shared by all engine instances
//!
//!  worker app ── request ──► wangge.workers.commands ──► WorkerCommandService ──► CaseService
//!             ◄── reply ────  (queue group `wangge-workers`)  parse → authorize → decide
//! ```
//!
//! - [`commands`]: pure parsing of a [`WorkerCommandV1`](wangge_schemas::worker::WorkerCommandV1)
//!   and its translation into a case command, and the service that authorizes and runs it.
//! - [`nats`]: the request-reply front on [`WORKER_COMMAND_SUBJECT`].
//! - [`inbox_service`]: the inbox as a request-reply service on `wangge.workers.inbox`,
//!   for workers without JetStream access of their own (the shipped NATS accounts).
//! - [`inbox`]: the durable task inbox — the publisher that turns case events into
//!   [`TaskMessage`](wangge_schemas::worker::TaskMessage)s and the reader a worker's app uses.
//!
//! **Invariant:** a refused worker command writes nothing: parsing, authorization and the
//! aggregate's own rules all run before the one conditional append.

pub mod commands;
pub mod inbox;
pub mod inbox_service;
pub mod nats;

pub use commands::{
    parse_worker_command, translate, MapSupervisors, NoSupervisors, SupervisorDirectory,
    Translated, WorkerCommandService, WorkerRejection,
};
pub use inbox::{
    open_tasks, task_message_id, task_subject, tasks_for_commit, FastDelivery, InboxTask,
    TaskDelivery, TaskError, TaskFastPath, TaskPublisher, TaskPublisherConfig, TaskStreamConfig,
    WorkerInbox,
};
pub use inbox_service::{
    serve_worker_inbox, InboxService, INBOX_QUEUE_GROUP, WORKER_INBOX_SUBJECT,
};
pub use nats::{serve_worker_commands, WORKER_QUEUE_GROUP};

/// Workers send their commands here (request-reply); every engine instance listens in the
/// queue group [`WORKER_QUEUE_GROUP`].
pub const WORKER_COMMAND_SUBJECT: &str = "wangge.workers.commands";

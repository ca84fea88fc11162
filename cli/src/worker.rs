//! `wangge worker`: a grid worker's side from the command line.
//!
//! - `wangge worker inbox WORKER_ID`: prints the tasks waiting in the worker's inbox, one
//!   JSON [`TaskMessage`](wangge_schemas::worker::TaskMessage) per line, oldest first, and
//!   marks them received (`--keep` leaves them waiting). A summary of the tasks that are
//!   the worker's now goes to stderr.
//! - `wangge worker act FILE|-`: sends one
//!   [`WorkerCommandV1`](wangge_schemas::worker::WorkerCommandV1) and prints the engine's
//!   answer. Exit status 0 when accepted, 2 when refused.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use wangge_schemas::worker::{
    InboxReply, InboxRequestV1, WorkerReply, MAX_INBOX_FETCH, MAX_INBOX_WAIT_SECONDS,
};

use crate::request::{ask, read_message};
use crate::NatsArgs;
use wangge_engine::tasks::{
    open_tasks, TaskStreamConfig, WorkerInbox, WORKER_COMMAND_SUBJECT, WORKER_INBOX_SUBJECT,
};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Print the tasks waiting in a worker's inbox (JSON lines) and mark them received.
    ///
    /// Asks the engine's inbox service (`wangge.workers.inbox`), as a worker's own
    /// connection does under the shipped NATS accounts; `--direct` reads the durable
    /// consumer itself, which needs JetStream access in the engine's account.
    Inbox {
        /// The worker's id (letters, digits, `-`, `_`); under proven identities it may be left
        /// out: the authenticated worker's own.
        worker_id: Option<String>,
        /// Read the JetStream consumer directly instead of asking the engine.
        #[arg(long)]
        direct: bool,
        /// Most tasks to print.
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// Seconds to wait for a task when none is waiting.
        #[arg(long, default_value_t = 0)]
        wait: u64,
        /// Leave the tasks waiting: the next `inbox` prints them again.
        #[arg(long)]
        keep: bool,
    },
    /// Send one worker command (from a file or stdin) and print the engine's answer.
    Act {
        /// The command file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Inbox {
            worker_id,
            direct: true,
            max,
            wait,
            keep,
        } => {
            let Some(worker_id) = worker_id else {
                anyhow::bail!("`--direct` needs the worker id");
            };
            inbox(&args.nats, &worker_id, max, wait, keep).await
        }
        Action::Inbox {
            worker_id,
            direct: false,
            max,
            wait,
            keep,
        } => inbox_via_engine(&args.nats, worker_id, max, wait, keep).await,
        Action::Act { file, timeout } => act(&args.nats, file, timeout).await,
    }
}

async fn inbox(
    nats: &NatsArgs,
    worker_id: &str,
    max: usize,
    wait: u64,
    keep: bool,
) -> anyhow::Result<ExitCode> {
    let client = nats.connect().await?;
    let config = TaskStreamConfig {
        replicas: nats.replicas(),
        ..Default::default()
    };
    let inbox = WorkerInbox::open(client.clone(), worker_id, &config).await?;
    let tasks = inbox.fetch(max, Duration::from_secs(wait)).await?;
    let mut messages = Vec::with_capacity(tasks.len());
    for task in &tasks {
        println!("{}", serde_json::to_string(&task.task)?);
        if keep {
            task.release().await?;
        } else {
            task.ack().await?;
        }
        messages.push(task.task.clone());
    }
    let open = open_tasks(&messages);
    eprintln!(
        "{worker_id}: {} task messages, {} of them open{}",
        messages.len(),
        open.len(),
        if keep { " (kept waiting)" } else { "" }
    );
    client.flush().await.ok();
    Ok(ExitCode::SUCCESS)
}

/// The inbox through the engine's service: fetch, print, then acknowledge what was printed
/// (or, with `keep`, leave it to be delivered again once its acknowledgement time passes).
async fn inbox_via_engine(
    nats: &NatsArgs,
    worker_id: Option<String>,
    max: usize,
    wait: u64,
    keep: bool,
) -> anyhow::Result<ExitCode> {
    let client = nats.connect().await?;
    let request = InboxRequestV1 {
        worker_id: worker_id.clone(),
        max: max.min(MAX_INBOX_FETCH),
        wait_seconds: wait.min(MAX_INBOX_WAIT_SECONDS),
        ack: Vec::new(),
    };
    let timeout = request.wait_seconds + 10;
    let reply: InboxReply = ask(
        &client,
        WORKER_INBOX_SUBJECT,
        serde_json::to_vec(&request)?,
        timeout,
    )
    .await?;
    let tasks = match reply {
        InboxReply::Tasks { tasks, .. } => tasks,
        InboxReply::Rejected { .. } => {
            println!("{}", serde_json::to_string_pretty(&reply)?);
            return Ok(ExitCode::from(2));
        }
    };
    let mut messages = Vec::with_capacity(tasks.len());
    for delivered in &tasks {
        println!("{}", serde_json::to_string(&delivered.task)?);
        messages.push(delivered.task.clone());
    }
    if !keep && !tasks.is_empty() {
        let ack = InboxRequestV1 {
            worker_id: worker_id.clone(),
            max: 0,
            wait_seconds: 0,
            ack: tasks.iter().map(|t| t.receipt.clone()).collect(),
        };
        let reply: InboxReply =
            ask(&client, WORKER_INBOX_SUBJECT, serde_json::to_vec(&ack)?, 10).await?;
        if let InboxReply::Rejected { .. } = reply {
            println!("{}", serde_json::to_string_pretty(&reply)?);
            return Ok(ExitCode::from(2));
        }
    }
    let open = open_tasks(&messages);
    eprintln!(
        "{}: {} task messages, {} of them open{}",
        worker_id.as_deref().unwrap_or("inbox"),
        messages.len(),
        open.len(),
        if keep { " (kept waiting)" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn act(nats: &NatsArgs, file: Option<PathBuf>, timeout: u64) -> anyhow::Result<ExitCode> {
    let body = read_message(file.as_deref())?;
    let client = nats.connect().await?;
    let reply: WorkerReply = ask(&client, WORKER_COMMAND_SUBJECT, body, timeout).await?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(match reply {
        WorkerReply::Accepted { .. } => ExitCode::SUCCESS,
        WorkerReply::Rejected { .. } => ExitCode::from(2),
    })
}

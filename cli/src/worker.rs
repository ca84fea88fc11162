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
use wangge_schemas::worker::WorkerReply;

use crate::request::{ask, read_message};
use crate::NatsArgs;
use wangge_engine::tasks::{open_tasks, TaskStreamConfig, WorkerInbox, WORKER_COMMAND_SUBJECT};

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
    Inbox {
        /// The worker's id (letters, digits, `-`, `_`).
        worker_id: String,
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
            max,
            wait,
            keep,
        } => inbox(&args.nats, &worker_id, max, wait, keep).await,
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
        replicas: nats.replicas,
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

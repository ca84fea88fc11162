//! `wangge serve`: the engine process. Opens the event and rejected streams (creating or
//! updating them), takes its share of the case partitions, and runs intake and the
//! dispatcher until interrupted; on SIGTERM it drains intake, hands its partitions back and
//! stops.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tracing::info;

use crate::{NatsArgs, ReferenceArgs};
use wangge_engine::app::{CaseService, SystemClock};
use wangge_engine::intake::nats::serve_intake;
use wangge_engine::intake::{IntakeService, JetStreamRejectedStore};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::{SlaReference, TimerBook, TimerService};
use wangge_engine::runtime::{LeaseConfig, PartitionLeases};
use wangge_engine::tasks::inbox::{TaskPublisher, TaskPublisherConfig, TaskStreamConfig};
use wangge_engine::tasks::nats::serve_worker_commands;
use wangge_engine::tasks::WorkerCommandService;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    reference: ReferenceArgs,
    /// This instance's name among the engine instances sharing the cases (default: host and
    /// process id).
    #[arg(long, env = "WANGGE_INSTANCE")]
    instance: Option<String>,
    /// Run only intake (no dispatcher, no timers): for a front-end-only instance.
    #[arg(long)]
    intake_only: bool,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (grid, categories) = args.reference.load()?;
    let client = args.nats.connect().await?;
    let log = args.nats.open_log(client.clone()).await?;
    let rejected = JetStreamRejectedStore::open(client.clone(), args.nats.replicas).await?;
    let cases = Arc::new(CaseService::new(log, Arc::new(SystemClock)));
    let (districts, communities, buildings) = grid.counts();
    info!(
        city = grid.city(),
        districts,
        communities,
        buildings,
        workers = grid.worker_count(),
        categories = categories.len(),
        "reference data loaded"
    );
    let instance = args.instance.clone().unwrap_or_else(default_instance_name);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            stopping.wait_for(|stop| *stop).await.ok();
        }
    };

    let mut background = tokio::task::JoinSet::new();
    if !args.intake_only {
        let leases = PartitionLeases::open(
            client.clone(),
            LeaseConfig {
                replicas: args.nats.replicas,
                ..LeaseConfig::new(instance.clone())
            },
        )
        .await?;
        let ownership = leases.ownership();
        background.spawn(leases.run(stopped()));
        let tasks = TaskStreamConfig {
            replicas: args.nats.replicas,
            ..Default::default()
        };
        // Workers' inboxes and their commands.
        let publisher = TaskPublisher::open(
            client.clone(),
            cases.log().clone(),
            TaskPublisherConfig {
                tasks,
                ..Default::default()
            },
        )
        .await?;
        let fast_path = publisher.fast_path();
        background.spawn(publisher.run(stopped()));
        let dispatcher = Arc::new(
            Dispatcher::new(cases.clone(), grid.clone(), categories.clone())
                .with_task_fast_path(fast_path),
        );
        let until = stopped();
        let dispatcher_ownership = ownership.clone();
        background.spawn(async move {
            if let Err(error) = dispatcher.run(dispatcher_ownership, 1, until).await {
                tracing::error!(%error, "dispatcher stopped");
            }
        });
        let workers = Arc::new(WorkerCommandService::new(cases.clone(), grid.clone()));
        let (worker_client, until) = (client.clone(), stopped());
        background.spawn(async move {
            if let Err(error) = serve_worker_commands(worker_client, workers, until).await {
                tracing::error!(%error, "worker commands stopped");
            }
        });
        let book = TimerBook::new(SlaReference::bundled(), grid.clone(), categories.clone());
        let timers = Arc::new(TimerService::new(cases.clone(), book));
        let until = stopped();
        background.spawn(async move {
            if let Err(error) = timers.run(Arc::new(SystemClock), ownership, until).await {
                tracing::error!(%error, "sla timers stopped");
            }
        });
    }

    let service = Arc::new(IntakeService::new(cases, rejected, grid, categories));
    eprintln!(
        "wangge instance {instance} serving intake on {} (wangge.intake.<kind>){}; Ctrl-C to stop",
        args.nats.nats_url,
        if args.intake_only {
            ""
        } else {
            ", dispatching its partitions"
        }
    );
    serve_intake(client.clone(), service, async move {
        let signal = shutdown_signal().await;
        info!(
            signal,
            "stopping: draining intake, finishing messages in hand"
        );
        stop.send(true).ok();
    })
    .await?;
    while background.join_next().await.is_some() {}
    client.flush().await.ok();
    Ok(ExitCode::SUCCESS)
}

fn default_instance_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "wangge".to_owned()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Ctrl-C or SIGTERM (what a process supervisor sends).
async fn shutdown_signal() -> &'static str {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                tokio::signal::ctrl_c().await.ok();
                return "interrupt";
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupt",
        _ = terminate.recv() => "terminate",
    }
}

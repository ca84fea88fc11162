//! `wangge serve`: the engine process. Opens the event and rejected streams (creating or
//! updating them), then serves intake until interrupted.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tracing::info;

use crate::app::{CaseService, SystemClock};
use crate::cli::{NatsArgs, ReferenceArgs};
use crate::intake::nats::serve_intake;
use crate::intake::{IntakeService, JetStreamRejectedStore};

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    reference: ReferenceArgs,
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
        categories = categories.len(),
        "reference data loaded"
    );
    let service = Arc::new(IntakeService::new(cases, rejected, grid, categories));
    eprintln!(
        "wangge serving intake on {} (wangge.intake.<kind>); Ctrl-C to stop",
        args.nats.nats_url
    );
    serve_intake(client.clone(), service, async {
        let signal = shutdown_signal().await;
        info!(
            signal,
            "stopping: draining intake, finishing messages in hand"
        );
    })
    .await?;
    client.flush().await.ok();
    Ok(ExitCode::SUCCESS)
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

//! `wangge projections run | status | rebuild NAME`: the read side's runners, where they
//! stand, and rebuilding one projection from the start of the log while dashboards stay up.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{NatsArgs, PostgresArgs, ReferenceArgs};
use wangge_engine::log::EventLog;
use wangge_projections::lag::LagReport;
use wangge_projections::postgres::{spawn_runners, ExclusiveRunnerConfig};
use wangge_projections::query::ReadModels;
use wangge_projections::runner::RunnerConfig;
use wangge_projections::PROJECTION_NAMES;

#[derive(Debug, Args)]
pub struct ProjectionsArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
    #[command(flatten)]
    reference: ReferenceArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Run the four projections' runners (each one active on one instance at a time; the
    /// others stand by) until interrupted.
    Run {
        /// The most commits folded in one transaction.
        #[arg(long, default_value_t = 2_000)]
        max_batch: usize,
    },
    /// Print each projection's checkpoint, lag behind the log, and whether a runner holds it.
    Status,
    /// Rebuild one projection (cases, audit, indicators or patrols) from the start of the log
    /// into shadow tables and swap them in; the live tables answer queries meanwhile.
    Rebuild {
        name: String,
        /// The most commits folded in one transaction.
        #[arg(long, default_value_t = 2_000)]
        max_batch: usize,
    },
}

pub async fn run(args: ProjectionsArgs) -> anyhow::Result<ExitCode> {
    let context = args.reference.fold_context()?;
    let models = args.postgres.connect(context).await?;
    let client = args.nats.connect().await?;
    let log = args.nats.open_log(client).await?;
    match args.action {
        Action::Run { max_batch } => {
            let config = ExclusiveRunnerConfig {
                runner: RunnerConfig {
                    max_batch,
                    ..RunnerConfig::default()
                },
                ..ExclusiveRunnerConfig::default()
            };
            eprintln!(
                "running the projections ({}) from {} into {}; Ctrl-C to stop",
                PROJECTION_NAMES.join(", "),
                args.nats.shown_servers(),
                args.postgres.display()
            );
            let runners = spawn_runners(models, log, config, async {
                crate::serve::shutdown_signal().await;
            });
            runners.wait().await;
            Ok(ExitCode::SUCCESS)
        }
        Action::Status => {
            let report = LagReport::new(
                log.head().await?,
                models.checkpoints().await?,
                chrono::Utc::now(),
            );
            let holders = models.runner_holders().await?;
            println!("log head: {}", report.head);
            println!(
                "{:<12} {:>12} {:>10} {:>14}  {:<32} runner",
                "projection", "checkpoint", "behind", "seconds behind", "checkpoint recorded at"
            );
            for lag in &report.projections {
                let holder = holders
                    .iter()
                    .find(|(name, _)| *name == lag.projection)
                    .and_then(|(_, pid)| *pid)
                    .map_or_else(
                        || "none".to_owned(),
                        |pid| format!("active (backend pid {pid})"),
                    );
                println!(
                    "{:<12} {:>12} {:>10} {:>14}  {:<32} {holder}",
                    lag.projection,
                    lag.checkpoint,
                    lag.behind,
                    lag.seconds_behind
                        .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")),
                    lag.checkpoint_recorded_at
                        .map_or_else(|| "-".to_owned(), |at| at.to_rfc3339()),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Rebuild { name, max_batch } => rebuild(&models, &log, &name, max_batch).await,
    }
}

async fn rebuild<L: EventLog>(
    models: &Arc<wangge_projections::PostgresReadModels>,
    log: &L,
    name: &str,
    max_batch: usize,
) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} log positions, {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("rebuilding {name}"));
    let batching = RunnerConfig {
        max_batch,
        ..RunnerConfig::default()
    };
    let outcome = models
        .rebuild(name, log, &batching, |progress| {
            bar.set_length(progress.head);
            bar.set_position(progress.position.min(progress.head));
            bar.set_message(format!("{} commits", progress.commits));
        })
        .await;
    bar.finish();
    let outcome = outcome?;
    eprintln!(
        "rebuilt {}: {} commits folded, swapped in at log position {}",
        outcome.projection, outcome.commits, outcome.position
    );
    Ok(ExitCode::SUCCESS)
}

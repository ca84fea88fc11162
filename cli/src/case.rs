//! `wangge case show ID`: one case's events and the state they fold into.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use wangge_schemas::CaseId;

use crate::NatsArgs;
use wangge_engine::domain::replay;
use wangge_engine::log::EventLog;

#[derive(Debug, Args)]
pub struct CaseArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Print a case's events (JSON lines) and its current status.
    Show { case_id: CaseId },
}

pub async fn run(args: CaseArgs) -> anyhow::Result<ExitCode> {
    let client = args.nats.connect().await?;
    let log = args.nats.open_log(client).await?;
    match args.action {
        Action::Show { case_id } => {
            let history = log.load(case_id).await?;
            if history.events.is_empty() {
                eprintln!("no case {case_id}");
                return Ok(ExitCode::from(2));
            }
            for event in &history.events {
                println!("{}", serde_json::to_string(event)?);
            }
            let state = replay(&history.events);
            eprintln!(
                "case {case_id}: {} events, status {}, log position {}",
                history.events.len(),
                state.status.as_str(),
                history.last_position
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

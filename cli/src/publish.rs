//! `wangge publish`: sends one intake message — a report, a patrol finding, a service request
//! or a resident's evaluation of a closed case — to `wangge.intake.<kind>` and prints the
//! engine's JSON answer. Exit status 0 when accepted, 2 when rejected.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use wangge_schemas::intake::IntakeReply;

use crate::request::{ask, read_message};
use crate::NatsArgs;
use wangge_engine::intake::INTAKE_SUBJECT_PREFIX;

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Intake kind (resident_report, patrol_finding, service_request, evaluation); default:
    /// the message's own `kind` field.
    #[arg(long)]
    kind: Option<String>,
    /// Seconds to wait for the answer (the engine itself rides out a log outage for up to
    /// 10 s before it answers `unavailable`).
    #[arg(long, default_value_t = 15)]
    timeout: u64,
    /// The message file; `-` or nothing reads stdin.
    file: Option<PathBuf>,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let body = read_message(args.file.as_deref())?;
    let kind = match args.kind.clone() {
        Some(kind) => kind,
        // Route by the message's own kind when it has a readable one; otherwise send it to
        // the generic subject and let the engine explain what is wrong.
        None => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
            .filter(|k| !k.is_empty() && !k.contains(['.', '*', '>', ' ']))
            .unwrap_or_else(|| "unspecified".to_owned()),
    };
    let client = args.nats.connect().await?;
    let subject = format!("{INTAKE_SUBJECT_PREFIX}.{kind}");
    let reply: IntakeReply = ask(&client, &subject, body, args.timeout).await?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(match reply {
        IntakeReply::Accepted { .. } => ExitCode::SUCCESS,
        IntakeReply::Rejected { .. } => ExitCode::from(2),
    })
}

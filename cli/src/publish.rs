//! `wangge publish`: sends one intake message and prints the engine's JSON answer.
//! Exit status 0 when accepted, 2 when rejected.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use wangge_schemas::intake::IntakeReply;

use crate::NatsArgs;
use wangge_engine::intake::INTAKE_SUBJECT_PREFIX;

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Intake kind (resident_report, patrol_finding, service_request); default: the
    /// message's own `kind` field.
    #[arg(long)]
    kind: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// The message file; `-` or nothing reads stdin.
    file: Option<PathBuf>,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let body = match &args.file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        _ => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read stdin")?;
            body
        }
    };
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
    let response = tokio::time::timeout(
        Duration::from_secs(args.timeout),
        client.request(subject.clone(), body.into()),
    )
    .await
    .with_context(|| format!("no answer on {subject} within {} s", args.timeout))?
    .with_context(|| format!("request on {subject} failed (is `wangge serve` running?)"))?;
    let reply: IntakeReply = serde_json::from_slice(&response.payload).with_context(|| {
        format!(
            "unexpected answer: {}",
            String::from_utf8_lossy(&response.payload)
        )
    })?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(match reply {
        IntakeReply::Accepted { .. } => ExitCode::SUCCESS,
        IntakeReply::Rejected { .. } => ExitCode::from(2),
    })
}

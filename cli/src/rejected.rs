//! `wangge rejected list | show | replay`: what the engine refused, and a second chance.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use wangge_schemas::grid::{GridReply, GRID_COMMAND_SUBJECT};
use wangge_schemas::intake::IntakeReply;
use wangge_schemas::sla::{SlaReply, SLA_COMMAND_SUBJECT};

use crate::NatsArgs;
use wangge_engine::intake::rejected::{KeptBody, RejectedEntry, ReplayRecord, ReplayReply};
use wangge_engine::intake::{JetStreamRejectedStore, RejectedStore};

#[derive(Debug, Args)]
pub struct RejectedArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// Opens the kept bodies, which are sealed (residents' personal data).
    #[command(flatten)]
    kek: crate::residents::KekArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List refused messages, oldest first.
    List {
        /// First id to show.
        #[arg(long, default_value_t = 1)]
        from: u64,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one refused message: reason, headers and original body.
    Show { id: u64 },
    /// Send a refused message again, byte for byte, to its original subject.
    Replay {
        id: u64,
        /// Seconds to wait for the engine's answer.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

pub async fn run(args: RejectedArgs) -> anyhow::Result<ExitCode> {
    let client = args.nats.connect().await?;
    let store = JetStreamRejectedStore::open(client.clone(), args.nats.replicas()).await?;
    let store = if args.kek.given() {
        store.with_resident_keys(args.kek.open(client.clone(), args.nats.replicas()).await?)
    } else {
        store
    };
    match args.action {
        Action::List { from, limit } => {
            let entries = store.list(from, limit).await?;
            if entries.is_empty() {
                println!("no rejected messages from id {from}");
            }
            for entry in &entries {
                println!("{}", list_line(entry));
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Show { id } => {
            let entry = store.get(id).await?;
            print_entry(&entry);
            Ok(ExitCode::SUCCESS)
        }
        Action::Replay { id, timeout } => {
            let entry = store.get(id).await?;
            if let Some(why) = unreadable_body(&entry.body) {
                anyhow::bail!("rejected message {id} cannot be replayed: {why}");
            }
            let mut headers = async_nats::HeaderMap::new();
            for (name, value) in &entry.rejection.headers {
                headers.append(name.as_str(), value.as_str());
            }
            let subject = entry.rejection.subject.clone();
            let response = tokio::time::timeout(
                Duration::from_secs(timeout),
                client.request_with_headers(
                    subject.clone(),
                    headers,
                    entry.rejection.payload.clone(),
                ),
            )
            .await
            .with_context(|| format!("no answer on {subject} within {timeout} s"))?
            .with_context(|| format!("request on {subject} failed (is `wangge serve` running?)"))?;
            let unexpected = || {
                format!(
                    "unexpected answer: {}",
                    String::from_utf8_lossy(&response.payload)
                )
            };
            // A grid command gets a grid reply, an SLA command an SLA reply; everything else
            // kept is an intake message.
            let reply = if subject == GRID_COMMAND_SUBJECT {
                ReplayReply::Grid(
                    serde_json::from_slice::<GridReply>(&response.payload)
                        .with_context(unexpected)?,
                )
            } else if subject == SLA_COMMAND_SUBJECT {
                ReplayReply::Sla(
                    serde_json::from_slice::<SlaReply>(&response.payload)
                        .with_context(unexpected)?,
                )
            } else {
                ReplayReply::Intake(
                    serde_json::from_slice::<IntakeReply>(&response.payload)
                        .with_context(unexpected)?,
                )
            };
            store
                .record_replay(
                    id,
                    ReplayRecord {
                        replayed_at: chrono::Utc::now(),
                        reply: reply.clone(),
                    },
                )
                .await?;
            println!("{}", serde_json::to_string_pretty(&reply)?);
            Ok(match reply.rejected_code() {
                None => ExitCode::SUCCESS,
                Some(_) => ExitCode::from(2),
            })
        }
    }
}

fn list_line(entry: &RejectedEntry) -> String {
    let r = &entry.rejection;
    let replay = match entry.last_replay.as_ref().map(|record| &record.reply) {
        Some(ReplayReply::Intake(IntakeReply::Accepted { case_id, .. })) => {
            format!("  [replayed → case {case_id}]")
        }
        Some(ReplayReply::Grid(GridReply::Accepted { position, .. })) => {
            format!("  [replayed → grid event at {position}]")
        }
        Some(ReplayReply::Sla(SlaReply::Accepted { position, .. })) => {
            format!("  [replayed → sla event at {position}]")
        }
        Some(reply) => format!(
            "  [replayed → rejected again: {}]",
            reply.rejected_code().unwrap_or("?")
        ),
        None => String::new(),
    };
    format!(
        "{:>6}  {}  {:<24} {:<22} {}{}",
        entry.id,
        r.rejected_at.format("%Y-%m-%d %H:%M:%S"),
        r.subject,
        r.code,
        r.field.as_deref().unwrap_or("-"),
        replay
    )
}

fn print_entry(entry: &RejectedEntry) {
    let r = &entry.rejection;
    println!("id:          {}", entry.id);
    println!("rejected at: {}", r.rejected_at.to_rfc3339());
    println!("subject:     {}", r.subject);
    println!("code:        {}", r.code);
    println!("field:       {}", r.field.as_deref().unwrap_or("-"));
    println!("reason:      {}", r.reason);
    if let Some(replay) = &entry.last_replay {
        println!(
            "last replay: {} → {}",
            replay.replayed_at.to_rfc3339(),
            serde_json::to_string(&replay.reply).unwrap_or_default()
        );
    }
    println!("headers:");
    for (name, value) in &r.headers {
        println!("  {name}: {value}");
    }
    match unreadable_body(&entry.body) {
        Some(why) => println!("body: {why}"),
        None => {
            println!("body ({} bytes):", r.payload.len());
            println!("{}", String::from_utf8_lossy(&r.payload));
        }
    }
}

/// Why a kept body cannot be shown, if it cannot.
fn unreadable_body(body: &KeptBody) -> Option<&'static str> {
    match body {
        KeptBody::Plain | KeptBody::Opened => None,
        KeptBody::Erased => Some("unreadable: the resident it names was erased"),
        KeptBody::Expired => Some("unreadable: its day key outlived the stream's retention"),
        KeptBody::Locked => {
            Some("sealed: give --kek-file (or WANGGE_KEK_FILE / WANGGE_KEK) to open it")
        }
    }
}

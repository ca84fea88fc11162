//! How many fsyncs a nats-server makes for N appends: the evidence behind group commit.
//!
//! Starts a private nats-server with `sync_interval: always` (the pinned release, or the one
//! `--nats-server` names, to compare releases), attaches `strace -f -e trace=fsync,fdatasync`
//! to it, and makes N concurrent appends through the engine's log three ways: as one atomic
//! batch (group commit, all N queued at once), one publish per append with all N in flight,
//! and one publish per append one after another. It prints the system calls counted in each
//! phase. Needs `strace` (Debian package `strace`) and permission to trace the server
//! (root, or `kernel.yama.ptrace_scope = 0`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use futures::future::join_all;
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig, SealKey};
use wangge_schemas::CaseId;
use wangge_testkit::NatsServer;

use crate::report::{self, Row};

#[derive(Debug, Args)]
pub struct FsyncCountArgs {
    /// Appends per phase (an atomic batch holds at most 1,000).
    #[arg(long, default_value_t = 500)]
    appends: usize,
    /// A nats-server binary other than the pinned one (e.g. an older release to compare).
    #[arg(long)]
    nats_server: Option<PathBuf>,
}

pub async fn run(args: FsyncCountArgs) -> anyhow::Result<()> {
    if args.appends == 0 || args.appends > 1_000 {
        bail!("--appends must be between 1 and 1000 (the server's largest atomic batch)");
    }
    let server = match &args.nats_server {
        Some(binary) => NatsServer::start_durable_binary(binary.clone()),
        None => NatsServer::start_durable(),
    };
    let version = Command::new(match &args.nats_server {
        Some(binary) => binary.clone(),
        None => wangge_testkit::nats_server_binary(),
    })
    .arg("--version")
    .output()
    .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    .unwrap_or_default();
    let pid = server.pid().context("the server runs")?;
    let key = Arc::new(SealKey::generate());
    let open = |group_commit: bool, name: &str| {
        let config = JetStreamLogConfig {
            stream_name: name.to_owned(),
            subject_prefix: format!("bench.{}", name.to_lowercase()),
            group_commit,
            ..JetStreamLogConfig::default()
        };
        let (server, key) = (&server, key.clone());
        async move {
            anyhow::Ok(
                JetStreamLog::open(server.connect().await, config)
                    .await?
                    .with_seal_key(key),
            )
        }
    };
    let grouped = open(true, "FSYNC_GROUPED").await?;
    let single = open(false, "FSYNC_SINGLE").await?;
    let one_by_one = open(false, "FSYNC_ONE_BY_ONE").await?;

    let mut rows = Vec::new();
    for (label, log, concurrent) in [
        ("group commit, all appends at once", &grouped, true),
        ("one publish per append, all at once", &single, true),
        (
            "one publish per append, one after another",
            &one_by_one,
            false,
        ),
    ] {
        let commits: Vec<_> = (0..args.appends)
            .map(|n| sample_commit(CaseId::new_v7(), n))
            .collect();
        let trace = Trace::attach(pid)?;
        if concurrent {
            let answers = join_all(commits.into_iter().map(|commit| log.append(commit, 0))).await;
            for answer in answers {
                answer?;
            }
        } else {
            for commit in commits {
                log.append(commit, 0).await?;
            }
        }
        let counted = trace.finish()?;
        let batches = log
            .group_commit_figures()
            .map(|figures| format!("; {} atomic batches", figures.batches_stored))
            .unwrap_or_default();
        rows.push(Row::new(
            format!("{label}: {} appends", args.appends),
            format!("{} fsync/fdatasync calls{batches}", counted),
            "",
            None,
        ));
    }
    println!();
    println!("{version}, sync_interval: always");
    report::print_table(&rows);
    Ok(())
}

/// A new case's first commit, as the engine appends it.
fn sample_commit(case_id: CaseId, n: usize) -> wangge_engine::log::Commit {
    let (body, _) = crate::commit::sample_create_commit();
    let events: Vec<wangge_schemas::EventEnvelope> =
        serde_json::from_slice(&body).expect("the sample commit decodes");
    let events = events
        .into_iter()
        .map(|mut event| {
            event.case_id = case_id;
            event
        })
        .collect::<Vec<_>>();
    wangge_engine::log::Commit {
        case_id,
        events,
        idempotency_key: format!("fsync-count-{n}-{case_id}"),
    }
}

/// strace attached to the server for one phase.
struct Trace {
    child: Child,
    output: tempfile::NamedTempFile,
}

impl Trace {
    fn attach(pid: u32) -> anyhow::Result<Self> {
        let output = tempfile::NamedTempFile::new()?;
        let child = Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
            .arg(output.path())
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start strace (install Debian's `strace` package)")?;
        // strace attaches to every thread before it reports anything: give it a moment.
        std::thread::sleep(Duration::from_millis(700));
        Ok(Self { child, output })
    }

    /// Detaches and counts the calls seen.
    fn finish(mut self) -> anyhow::Result<usize> {
        std::thread::sleep(Duration::from_millis(300));
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        let text = std::fs::read_to_string(self.output.path())?;
        Ok(text
            .lines()
            .filter(|line| line.contains("fsync(") || line.contains("fdatasync("))
            .count())
    }
}

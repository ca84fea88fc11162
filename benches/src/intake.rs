//! The intake benchmark: reports sent by request-reply on `wangge.intake.resident_report`,
//! checked and committed by the engine's intake, open and secured in the same run.
//!
//! - **open**: a private nats-server without accounts, senders named by their messages
//!   (`IdentityPolicy::Claimed`): the figures before issue 10.
//! - **accounts**, and **accounts + sealed contacts**: a private nats-server started from the shipped accounts
//!   (`deploy/nats/accounts.conf`), the engine connected as its own user, the sender as an
//!   intake system's user through the shared import, every sender proven from
//!   `Nats-Request-Info` (`IdentityPolicy::Proven`); in the last mode every reporter's contact
//!   is sealed under a data key of their own in the KV bucket (each report names a new resident: the
//!   worst case, a key created per report). Both modes seal every commit (the engine's seal
//!   key); without a KEK no contact is kept at all.
//!
//! Each mode reports the throughput at a number of requests in flight and the round-trip
//! latency (request sent → reply received) one at a time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use wangge_engine::app::{CaseService, SystemClock};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::intake::nats::serve_intake;
use wangge_engine::intake::rejected::MemoryRejectedStore;
use wangge_engine::intake::service::IntakeService;
use wangge_engine::log::{JetStreamLog, JetStreamLogConfig};
use wangge_engine::nats::{IdentityPolicy, PartyAccounts};
use wangge_engine::residents::{Kek, KeyRing, ResidentKeys};

use crate::report::{self, Row};
use crate::secure::BenchServer;

#[derive(Debug, Args)]
pub struct IntakeArgs {
    /// Reports sent in each throughput phase.
    #[arg(long, default_value_t = 20_000)]
    reports: usize,
    /// Requests in flight at once in the throughput phases.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Reports timed one at a time in each latency phase.
    #[arg(long, default_value_t = 1_000)]
    latency_samples: usize,
}

/// The intake system's user in the secured mode.
const SYSTEM: &str = "bench-hotline";

pub async fn run(args: IntakeArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut rates = Vec::new();
    // Open; with accounts and proven senders; and with contacts sealed besides.
    for (secured, sealed) in [(false, false), (true, false), (true, true)] {
        let mode = match (secured, sealed) {
            (false, _) => "open",
            (true, false) => "accounts",
            (true, true) => "accounts + sealed contacts",
        };
        let site = BenchServer::start(secured, &[SYSTEM])?;
        let engine = site.connect_engine().await?;
        let sender = site.connect_as(SYSTEM).await?;
        let log = JetStreamLog::open(engine.clone(), JetStreamLogConfig::default())
            .await?
            .with_seal_key(Arc::new(wangge_engine::log::SealKey::generate()));
        let cases = Arc::new(CaseService::new(log, Arc::new(SystemClock)));
        let identity = if secured {
            IdentityPolicy::Proven(PartyAccounts::default())
        } else {
            IdentityPolicy::Claimed
        };
        let service = IntakeService::new(
            cases,
            MemoryRejectedStore::default(),
            Arc::new(GridDirectory::sample_city()),
            Arc::new(CategoryCatalogue::sample()),
        )
        .with_identity(identity);
        let service = Arc::new(if sealed {
            let keys = ResidentKeys::open(engine.clone(), 1, KeyRing::new(Kek::generate())).await?;
            service.with_resident_keys(Arc::new(keys))
        } else {
            service
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_intake(engine.clone(), service, async move {
            stopped.await.ok();
        }));
        warm_up(&sender).await?;

        let next = Arc::new(AtomicUsize::new(0));
        let bar = report::progress(&format!("intake, {mode}"), args.reports as u64);
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..args.concurrency {
            let sender = sender.clone();
            let next = next.clone();
            let bar = bar.clone();
            let total = args.reports;
            workers.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return Ok::<_, anyhow::Error>(());
                    }
                    send_report(&sender, &format!("{mode}-{n}")).await?;
                    bar.inc(1);
                }
            }));
        }
        for worker in workers {
            worker.await??;
        }
        let rate = args.reports as f64 / started.elapsed().as_secs_f64();
        bar.finish();
        rates.push(rate);
        rows.push(Row::new(
            format!(
                "intake, {mode}: reports accepted ({}, {} in flight)",
                args.reports, args.concurrency
            ),
            format!("{rate:.0} reports/s"),
            "",
            None,
        ));
        let mut latency = report::histogram();
        for n in 0..args.latency_samples {
            let sent = Instant::now();
            send_report(&sender, &format!("{mode}-latency-{n}")).await?;
            report::record(&mut latency, sent.elapsed());
        }
        rows.push(Row::new(
            format!("intake, {mode}: round trip one at a time, p50 / p99"),
            format!(
                "{:.2} / {:.2} ms",
                report::millis(&latency, 0.5),
                report::millis(&latency, 0.99)
            ),
            "",
            None,
        ));
        stop.send(()).ok();
        server.await??;
    }
    rows.push(Row::new(
        "intake with accounts ÷ open (same run)",
        format!("{:.0} %", rates[1] / rates[0] * 100.0),
        "",
        None,
    ));
    rows.push(Row::new(
        "intake with accounts and sealed contacts ÷ open (same run)",
        format!("{:.0} %", rates[2] / rates[0] * 100.0),
        "",
        None,
    ));
    report::print_table(&rows);
    Ok(())
}

/// Waits for intake to answer.
async fn warm_up(sender: &async_nats::Client) -> anyhow::Result<()> {
    for attempt in 0.. {
        match send_report(sender, &format!("warm-up-{attempt}")).await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 100 => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(error) => return Err(error),
        }
    }
    unreachable!()
}

async fn send_report(sender: &async_nats::Client, message_id: &str) -> anyhow::Result<()> {
    let body = json!({
        "kind": "resident_report",
        "schema_version": 1,
        "source": {"system": SYSTEM, "message_id": message_id},
        "reported_at": chrono::Utc::now().to_rfc3339(),
        "building": "330106001001001",
        "channel": "mini_program",
        "resident": {"id": format!("wx-{message_id}"), "name": "王阿姨", "phone": "13812345621"},
        "title": "12栋3单元门口下水道堵塞",
        "description": "下水道堵了两天,污水漫到楼道口。",
        "category": "drainage.blocked"
    });
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        sender.request("wangge.intake.resident_report", body.to_string().into()),
    )
    .await
    .context("no reply within 10 s")??;
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    if reply["status"] != "accepted" {
        bail!("intake refused a report: {reply}");
    }
    Ok(())
}

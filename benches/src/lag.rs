//! Live projection lag: how long after a commit is written to the log its changes are
//! committed in PostgreSQL by all four projections, at a sustained event rate.
//!
//! The four runners follow a real JetStream event stream (private nats-server) into an
//! empty read-model database, as `wangge serve` runs them. A city's history is written to
//! the log at `--rate` events a second, paced commit by commit. Each commit's lag runs from
//! the moment it was handed to the client until the slowest projection's checkpoint has
//! passed it, heard as another instance (or the dashboard's live stream) hears it: the
//! `NOTIFY` each projection transaction sends on commit, through `LISTEN`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, message::PublishMessage};
use chrono::Utc;
use clap::Args;
use wangge_engine::grid::GridDirectory;
use wangge_engine::log::codec::encode_events;
use wangge_engine::log::{JetStreamLog, JetStreamLogConfig, StoredCommit};
use wangge_projections::postgres::{spawn_runners, ExclusiveRunnerConfig};
use wangge_projections::{FoldContext, PostgresReadModels, ReadModels, PROJECTION_NAMES};

use crate::history::CityHistory;
use crate::report::{self, Row};
use crate::setup::{BenchDatabase, Nats};

#[derive(Debug, Args)]
pub struct LagArgs {
    /// Events written to the log a second.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// How long the rate is kept up.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds at the start left out of the figures (connections warming up).
    #[arg(long, default_value_t = 2)]
    warm_up: u64,
}

pub async fn run(args: LagArgs) -> anyhow::Result<()> {
    let grid = Arc::new(GridDirectory::sample_city());
    let nats = Nats::start(None).await?;
    let log = JetStreamLog::open(nats.client.clone(), JetStreamLogConfig::default()).await?;
    let database =
        BenchDatabase::fresh(&format!("wangge_bench_lag_{}", std::process::id())).await?;
    let models = PostgresReadModels::connect(&database.url(), FoldContext::bundled()).await?;
    let mut progress = models.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runners = spawn_runners(
        models.clone(),
        log.clone(),
        ExclusiveRunnerConfig::default(),
        async {
            stopped.await.ok();
        },
    );
    // Runners holding their locks, LISTEN in place.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Enough history for the run, cases starting now.
    let wanted_events = (args.rate * args.seconds) as usize;
    let mut history = CityHistory::new(&grid, 11, Utc::now(), chrono::Duration::seconds(2));
    let mut commits: Vec<StoredCommit> = Vec::new();
    let mut events = 0;
    while events < wanted_events {
        let stretch = history.stretch(1_000);
        events += stretch.iter().map(|c| c.events.len()).sum::<usize>();
        commits.extend(stretch);
    }
    let mut written = 0;
    commits.retain(|c| {
        written += c.events.len();
        written <= wanted_events
    });
    let head = commits.len() as u64;

    // Sent times by log position (a fresh stream: commit i is position i + 1).
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(commits.len())));
    let watcher = {
        let sent_at = sent_at.clone();
        tokio::spawn(async move {
            let mut positions = vec![0u64; PROJECTION_NAMES.len()];
            let mut seen = 0u64;
            let mut lags: Vec<(Instant, Duration)> = Vec::new();
            while seen < head {
                let update = match progress.recv().await {
                    Ok(update) => update,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let now = Instant::now();
                if let Some(index) = PROJECTION_NAMES
                    .iter()
                    .position(|p| *p == update.projection)
                {
                    positions[index] = positions[index].max(update.position);
                }
                let visible = positions.iter().copied().min().unwrap_or(0);
                if visible > seen {
                    let sent = sent_at.lock().expect("sent times");
                    for position in seen + 1..=visible.min(sent.len() as u64) {
                        let at = sent[(position - 1) as usize];
                        lags.push((at, now - at));
                    }
                    seen = visible;
                }
            }
            lags
        })
    };

    // Paced writes; acks awaited beside them, in order, each checked against its position.
    let context = jetstream::new(nats.client.clone());
    let (acks, mut pending) = tokio::sync::mpsc::unbounded_channel::<(u64, _)>();
    let ack_checker = tokio::spawn(async move {
        while let Some((expected, ack)) = pending.recv().await {
            let ack: async_nats::jetstream::context::PublishAckFuture = ack;
            let ack = ack.await.context("publish ack")?;
            anyhow::ensure!(
                ack.sequence == expected,
                "commit meant for position {expected} was stored at {}",
                ack.sequence
            );
        }
        anyhow::Ok(())
    });
    let bar = report::progress("lag: write at the rate", head);
    let started = Instant::now();
    let mut events_sent = 0u64;
    for (index, commit) in commits.iter().enumerate() {
        let due = started + Duration::from_secs_f64(events_sent as f64 / args.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let message = PublishMessage::build().payload(encode_events(&commit.events));
        sent_at.lock().expect("sent times").push(Instant::now());
        let ack = context
            .send_publish(log.config().case_subject(commit.case_id), message)
            .await?;
        acks.send((index as u64 + 1, ack)).ok();
        events_sent += commit.events.len() as u64;
        bar.inc(1);
    }
    let writing_seconds = started.elapsed().as_secs_f64();
    drop(acks);
    bar.finish();
    ack_checker.await??;
    let lags = tokio::time::timeout(Duration::from_secs(60), watcher)
        .await
        .context("the projections did not catch up within a minute of the last write")??;
    stop.send(()).ok();
    runners.wait().await;
    drop(models);
    database.drop_it().await?;

    let warm = started + Duration::from_secs(args.warm_up);
    let mut histogram = report::histogram();
    for (at, lag) in &lags {
        if *at >= warm {
            report::record(&mut histogram, *lag);
        }
    }
    let p99 = report::millis(&histogram, 0.99);
    let rows = vec![Row::new(
        format!(
            "live lag, commit written → visible in all four projections: {} commits, \
                 {events_sent} events at {:.0} events/s for {writing_seconds:.0} s",
            histogram.len(),
            events_sent as f64 / writing_seconds
        ),
        format!(
            "p50 {:.1} ms, p90 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
            report::millis(&histogram, 0.5),
            report::millis(&histogram, 0.9),
            histogram.max() as f64 / 1000.0
        ),
        format!("p99 ≤ 200 ms at {} events/s", args.rate),
        Some(p99 <= 200.0),
    )];
    println!();
    report::print_table(&rows);
    Ok(())
}

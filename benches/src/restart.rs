//! Dispatcher restart: how long after start-up a new report is dispatched, with a long log
//! behind it — reading the whole log, and carrying on from the dispatcher's snapshot.
//!
//! A city's history (`--cases` cases with every commit of their lives, most ended, some
//! waiting at every step) is written to a real JetStream event stream on a private
//! nats-server. Then, three times, a fresh dispatcher starts (as `wangge serve` starts it,
//! holding every partition) and a new report is committed at once; the figure is the time
//! from start-up until that report is dispatched:
//! 1. without a snapshot: the dispatcher folds the whole log before it acts;
//! 2. (a dispatcher with snapshots every second runs until its snapshot reached the head;)
//! 3. from the snapshot: it restores it and reads only the log after it.
//!
//! Both starts also act on every case of the history still waiting for the dispatcher.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use wangge_engine::app::{CaseService, SystemClock};
use wangge_engine::domain::{replay, CaseStatus};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_engine::runtime::dispatch_snapshot::{dispatch_snapshot_store, DispatchSnapshot};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::SnapshotStore;
use wangge_engine::runtime::Ownership;
use wangge_schemas::{CaseId, GridLocation};

use crate::history::CityHistory;
use crate::report::{self, Row};
use crate::setup::{write_commits_counted, Nats};

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Cases in the history (200,000 make about 1.5 million commits; at a million, 7.3
    /// million, the private nats-server 2.9 grew past 9 GB resident while they were written).
    #[arg(long, default_value_t = 200_000)]
    cases: usize,
}

pub async fn run(args: RestartArgs) -> anyhow::Result<()> {
    let grid = Arc::new(GridDirectory::sample_city());
    let categories = Arc::new(CategoryCatalogue::sample());
    let nats = Nats::start(None).await?;
    let log = JetStreamLog::open(nats.client.clone(), JetStreamLogConfig::default())
        .await?
        // Sealed as `wangge serve` seals: one Ed25519 signature per commit in the figures.
        .with_seal_key(Arc::new(wangge_engine::log::SealKey::generate()));
    let year = chrono::Duration::days(365);
    let spacing =
        chrono::Duration::milliseconds((year.num_milliseconds() / args.cases.max(1) as i64).max(1));
    let mut history = CityHistory::new(&grid, 5, Utc::now() - year, spacing);
    // In stretches: so many cases' commits need not be in memory at once.
    let bar = report::progress("restart: write the log (cases)", args.cases as u64);
    let mut written = 0;
    while written < args.cases {
        let count = 10_000.min(args.cases - written);
        let commits = history.stretch(count);
        write_commits_counted(
            &nats.client,
            &log,
            &commits,
            &indicatif::ProgressBar::hidden(),
        )
        .await?;
        written += count;
        bar.set_position(written as u64);
    }
    bar.finish();
    let head = log.head().await?;
    let cases = Arc::new(CaseService::new(log.clone(), Arc::new(SystemClock)));
    let store = SnapshotStore::open(nats.client.clone(), dispatch_snapshot_store(1)).await?;
    let location = grid
        .locate_building("330106001001001")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the sample city lacks its first building"))?;
    let dispatcher = || Dispatcher::new(cases.clone(), grid.clone(), categories.clone());

    // 1. The whole log.
    let whole_log = start_and_dispatch(Arc::new(dispatcher()), &cases, &location, 1).await?;

    // 2. A snapshot at the head.
    let writer = Arc::new(dispatcher().with_snapshots(store.clone(), Duration::from_secs(1)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(writer.clone().run(Ownership::everything(), 1, async {
        stopped.await.ok();
    }));
    let bytes = loop {
        let head = log.head().await?;
        if let Some(bytes) = store.load().await? {
            if DispatchSnapshot::decode(&bytes)?.position == head {
                break bytes.len();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.send(()).ok();
    running.await??;

    // 3. From the snapshot.
    let restored = Arc::new(dispatcher().with_snapshots(store.clone(), Duration::from_secs(300)));
    let from_snapshot = start_and_dispatch(restored.clone(), &cases, &location, 2).await?;
    anyhow::ensure!(
        restored.restored_from().is_some(),
        "the dispatcher did not start from the snapshot"
    );

    let rows = vec![
        Row::new(
            format!("dispatcher start-up → a new report dispatched, reading the whole log ({head} commits, {} cases)", args.cases),
            format!("{whole_log:.2} s ({:.0} commits/s)", head as f64 / whole_log),
            "",
            None,
        ),
        Row::new(
            "the same, carrying on from the dispatcher's snapshot",
            format!("{from_snapshot:.2} s (snapshot {:.1} MB)", bytes as f64 / 1e6),
            "",
            None,
        ),
    ];
    println!();
    report::print_table(&rows);
    Ok(())
}

/// Starts `dispatcher` on the log, commits a new report at once, and times until it is
/// dispatched (seconds).
async fn start_and_dispatch(
    dispatcher: Arc<Dispatcher<JetStreamLog>>,
    cases: &Arc<CaseService<JetStreamLog>>,
    location: &GridLocation,
    n: u64,
) -> anyhow::Result<f64> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let running = tokio::spawn(dispatcher.run(Ownership::everything(), 1, async {
        stopped.await.ok();
    }));
    let case_id = CaseId::new_v7();
    cases
        .handle(crate::dispatch::report(
            case_id,
            location.clone(),
            u64::MAX - n,
        ))
        .await?;
    let bar = report::progress("restart: until dispatched", 1);
    loop {
        let state = replay(&cases.log().load(case_id).await?.events);
        if state.status == CaseStatus::Dispatched {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the new report was not dispatched within half an hour"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish();
    stop.send(()).ok();
    running.await??;
    Ok(seconds)
}

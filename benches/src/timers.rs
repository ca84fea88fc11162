//! The SLA timer benchmark.
//!
//! 1. **Memory**: the timer book holding N open cases with live deadlines (reported,
//!    accepted, dispatched: the acknowledge clock running), measured as the growth of this
//!    process's resident memory while the book is filled; then the whole timer service
//!    (the book and the worker loads it folds beside it) filled on top of it.
//! 2. **Rebuild**: the same N cases written to a real JetStream stream; a fresh timer service
//!    reads the log from the start until it has every case, as after a restart without a
//!    snapshot. It writes the book's snapshot; more cases are written after it (the tail);
//!    a fresh service restores the snapshot and reads the tail, as after a restart.
//! 3. **Breach latency**: cases whose acknowledge deadlines fall over the next seconds, with
//!    the timer service (restored from the snapshot) running on the real clock and writing
//!    its snapshot every few seconds meanwhile; for each breach event, how long after its
//!    deadline it was appended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use futures::stream::StreamExt;
use uuid::Uuid;
use wangge_engine::app::{CaseService, CommandRequest, SystemClock};
use wangge_engine::domain::{decide, replay, stamp, CaseCommand, CaseState, EventMeta};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig, MemoryLog, StoredCommit};
use wangge_engine::runtime::timers::{
    Rebuilt, SnapshotConfig, SnapshotStore, SnapshotStoreConfig, TimerBook, TimerService,
};
use wangge_engine::runtime::Ownership;
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, EventEnvelope, GridLocation, Priority,
    ReportDetails, Resident, SlaStep, Source, Tier,
};
use wangge_testkit::NatsServer;

use crate::report::{self, Row};

#[derive(Debug, Args)]
pub struct TimerArgs {
    /// Open cases with live deadlines.
    #[arg(long, default_value_t = 1_000_000)]
    cases: usize,
    /// Cases whose breach latency is measured.
    #[arg(long, default_value_t = 2_000)]
    breach_cases: usize,
    /// Cases written after the snapshot (the tail a restart reads).
    #[arg(long, default_value_t = 10_000)]
    tail_cases: usize,
    /// How often the running service writes its snapshot while breach latency is measured.
    #[arg(long, default_value_t = 5)]
    snapshot_every_secs: u64,
    /// Whose memory is measured: the whole timer service, or the book alone.
    #[arg(long, value_enum, default_value_t = MemoryOf::Service)]
    memory: MemoryOf,
    /// Measure memory only (no log, no rebuild, no breach latency).
    #[arg(long)]
    memory_only: bool,
    /// Use this NATS server instead of starting a private one.
    #[arg(long)]
    nats_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MemoryOf {
    Service,
    Book,
}

pub async fn run(args: TimerArgs) -> anyhow::Result<()> {
    let grid = Arc::new(GridDirectory::sample_city());
    let categories = Arc::new(CategoryCatalogue::sample());
    let mut buildings: Vec<GridLocation> = grid
        .building_codes()
        .filter_map(|code| grid.locate_building(code).cloned())
        .collect();
    buildings.sort_by(|a, b| a.building.cmp(&b.building));
    let mut rows = Vec::new();

    // 1. Memory, filled without any I/O: one structure per process, so that memory freed
    // while one grows is not counted against the next.
    let commits: Vec<StoredCommit> = (0..args.cases)
        .map(|n| open_case_commit(n, &buildings[n % buildings.len()]))
        .collect();
    let memory_cases = Arc::new(CaseService::new(MemoryLog::new(), Arc::new(SystemClock)));
    let service = TimerService::new(
        memory_cases,
        TimerBook::new(grid.clone(), categories.clone()),
    );
    let mut book = TimerBook::new(grid.clone(), categories.clone());
    let what = match args.memory {
        MemoryOf::Service => "timer service (book + worker loads)",
        MemoryOf::Book => "timer book alone",
    };
    let before = resident_bytes();
    let bar = report::progress("timers: fill", args.cases as u64);
    let started = Instant::now();
    for commit in &commits {
        match args.memory {
            MemoryOf::Service => service.observe(commit).await,
            MemoryOf::Book => book.observe(commit),
        }
        bar.inc(1);
    }
    let fold_seconds = started.elapsed().as_secs_f64();
    bar.finish();
    let after = resident_bytes();
    let grown_mb = after.saturating_sub(before) as f64 / 1e6;
    let open = service.open_cases().await.max(book.open_cases());
    rows.push(Row::new(
        format!("{what}: {open} open cases with live deadlines, resident memory"),
        format!(
            "{grown_mb:.0} MB ({:.0} B a case)",
            (after.saturating_sub(before)) as f64 / args.cases as f64
        ),
        "≤ 300 MB",
        Some(grown_mb <= 300.0),
    ));
    rows.push(Row::new(
        format!("{what}: folding the cases' events in memory"),
        format!(
            "{:.2} s ({:.0} cases/s)",
            fold_seconds,
            args.cases as f64 / fold_seconds
        ),
        "",
        None,
    ));
    if args.memory == MemoryOf::Book {
        rows.push(Row::new(
            "timer book: heap entries",
            format!("{} ({} open cases)", book.heap_entries(), book.open_cases()),
            "one live entry a case",
            None,
        ));
    }
    drop(service);
    drop(book);
    if args.memory_only {
        println!();
        report::print_table(&rows);
        return Ok(());
    }

    // 2. Rebuild from a real log.
    let _server;
    let url = match &args.nats_url {
        Some(url) => url.clone(),
        None => {
            let server = NatsServer::start();
            let url = server.url();
            _server = server;
            url
        }
    };
    let client = async_nats::connect(&url)
        .await
        .with_context(|| format!("connect to {url}"))?;
    let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default())
        .await?
        // Sealed as `wangge serve` seals: one Ed25519 signature per commit in the figures.
        .with_seal_key(Arc::new(wangge_engine::log::SealKey::generate()));
    crate::setup::write_commits(&client, &log, &commits, "timers: write the log").await?;
    drop(commits);
    let cases = Arc::new(CaseService::new(log.clone(), Arc::new(SystemClock)));
    let store = SnapshotStore::open(client.clone(), SnapshotStoreConfig::default()).await?;
    let with_snapshots = |every: Duration| {
        TimerService::new(
            cases.clone(),
            TimerBook::new(grid.clone(), categories.clone()),
        )
        .with_snapshots(
            store.clone(),
            SnapshotConfig {
                every,
                ..Default::default()
            },
        )
    };
    // Without a snapshot: the whole log.
    let service = with_snapshots(Duration::from_secs(3600));
    let head = log.head().await?;
    let (whole_log, open) = rebuild(&service, &log, head, "timers: rebuild from log").await?;
    rows.push(Row::new(
        format!("timer rebuild, no snapshot: {open} cases, {head} commits read from the log"),
        format!("{whole_log:.2} s"),
        "≤ 10 s",
        Some(whole_log <= 10.0),
    ));
    let started = Instant::now();
    service.write_snapshot().await?;
    let write_seconds = started.elapsed().as_secs_f64();
    let snapshot_bytes = store.load().await?.map_or(0, |bytes| bytes.len());
    rows.push(Row::new(
        format!("timer snapshot written: {open} cases"),
        format!(
            "{write_seconds:.2} s, {:.1} MB ({:.0} B a case)",
            snapshot_bytes as f64 / 1e6,
            snapshot_bytes as f64 / open.max(1) as f64
        ),
        "",
        None,
    ));
    drop(service);

    // The tail: more cases after the snapshot.
    let tail: Vec<StoredCommit> = (0..args.tail_cases)
        .map(|n| open_case_commit(args.cases + n, &buildings[n % buildings.len()]))
        .collect();
    crate::setup::write_commits(&client, &log, &tail, "timers: write the tail").await?;
    drop(tail);
    let head = log.head().await?;
    let started = Instant::now();
    store.load().await?;
    let read_seconds = started.elapsed().as_secs_f64();
    let restored = with_snapshots(Duration::from_secs(3600));
    let started = Instant::now();
    let how = restored.restore().await;
    let restore_seconds = started.elapsed().as_secs_f64();
    let Rebuilt::FromSnapshot { position, .. } = how else {
        anyhow::bail!("the snapshot just written was not restored: {how:?}");
    };
    let (tail_seconds, open) = rebuild(&restored, &log, head, "timers: read the tail").await?;
    let total = restore_seconds + tail_seconds;
    rows.push(Row::new(
        format!(
            "timer rebuild from snapshot + tail: {open} cases, {} commits of tail",
            head - position
        ),
        format!(
            "{total:.2} s (snapshot {restore_seconds:.2} s, of which reading the object \
             {read_seconds:.2} s; tail {tail_seconds:.2} s)"
        ),
        "≤ 10 s",
        Some(total <= 10.0),
    ));
    drop(restored);

    // 3. Breach latency on the real clock.
    let latencies = breach_latency(
        cases.clone(),
        Arc::new(with_snapshots(Duration::from_secs(
            args.snapshot_every_secs.max(1),
        ))),
        &buildings,
        args.breach_cases,
        args.cases + args.tail_cases,
    )
    .await?;
    let p50 = report::millis(&latencies, 0.5);
    let p99 = report::millis(&latencies, 0.99);
    rows.push(Row::new(
        format!(
            "breach appended after its deadline ({} breaches, real clock, snapshot every {} s)",
            latencies.len(),
            args.snapshot_every_secs
        ),
        format!(
            "p50 {p50:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
            latencies.max() as f64 / 1000.0
        ),
        "p99 ≤ 1,000 ms",
        Some(p99 <= 1000.0),
    ));

    println!();
    report::print_table(&rows);
    Ok(())
}

/// One case's first commit… in one: reported, accepted and dispatched, so its acknowledge
/// clock runs. Built with the domain's own decide and stamp.
fn open_case_commit(n: usize, location: &GridLocation) -> StoredCommit {
    let case_id = CaseId::new_v7();
    let now = Utc::now();
    let mut state = CaseState::default();
    let mut events: Vec<EventEnvelope> = Vec::with_capacity(3);
    let worker = format!("w-{}", location.building);
    let commands = [
        CaseCommand::Report {
            location: location.clone(),
            report: CaseReported {
                intake_clock: None,
                title: "楼道灯坏了".into(),
                description: "三楼楼道灯不亮,晚上回家很不方便".into(),
                reported_category: "drainage.blocked".into(),
                media: Vec::new(),
                coordinates: None,
                details: ReportDetails::ResidentReport {
                    channel: Channel::MiniProgram,
                    resident: Resident {
                        id: format!("r-{n}"),
                        contact: None,
                        legacy_contact: None,
                    },
                },
            },
        },
        CaseCommand::Accept {
            category: "drainage.blocked".into(),
            priority: Priority::High,
        },
        CaseCommand::Dispatch {
            tier: Tier::Building,
            cell: location.building.clone(),
            assignee: worker,
        },
    ];
    for (step, command) in commands.iter().enumerate() {
        let decided = decide(&state, command, now).expect("the opening commands are accepted");
        let meta = EventMeta {
            actor: Actor::system("bench"),
            source: Source {
                system: "bench".into(),
                message_id: format!("{n}-{step}"),
            },
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            occurred_at: now,
            recorded_at: now,
        };
        let stamped = stamp(&state, case_id, location, decided, &meta, Uuid::now_v7);
        state = stamped.iter().fold(state, wangge_engine::domain::apply);
        events.extend(stamped);
    }
    StoredCommit {
        position: n as u64 + 1,
        case_id,
        events,
        seal: None,
    }
}

/// Cases of a continuous-clock category (30 minutes to acknowledge) dispatched just under
/// 30 minutes ago, so their deadlines fall over the next seconds; the timer service runs on
/// the real clock and every breach's delay after its deadline is recorded.
async fn breach_latency(
    cases: Arc<CaseService<JetStreamLog>>,
    service: Arc<TimerService<JetStreamLog>>,
    buildings: &[GridLocation],
    count: usize,
    already_open: usize,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let runner = tokio::spawn(service.clone().run(
        Arc::new(SystemClock),
        Ownership::everything(),
        std::future::pending(),
    ));
    // A running engine is caught up with the log: wait for the rebuild before timing.
    while service.open_cases().await < already_open {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_deadline = Utc::now() + chrono::Duration::seconds(15);
    let mut ids = Vec::with_capacity(count);
    let bar = report::progress("timers: cases due soon", count as u64);
    for n in 0..count {
        let case_id = CaseId::new_v7();
        let location = buildings[n % buildings.len()].clone();
        // Deadlines 10 ms apart from 15 s from now.
        let dispatched_at = first_deadline + chrono::Duration::milliseconds(10 * n as i64)
            - chrono::Duration::minutes(30);
        let worker = format!("w-{}", location.building);
        let commands = [
            CaseCommand::Report {
                location: location.clone(),
                report: CaseReported {
                    intake_clock: None,
                    title: "井盖缺失".into(),
                    description: "路口井盖缺失,有安全隐患".into(),
                    reported_category: "facility.manhole_cover".into(),
                    media: Vec::new(),
                    coordinates: None,
                    details: ReportDetails::ResidentReport {
                        channel: Channel::Hotline12345,
                        resident: Resident {
                            id: format!("r-{n}"),
                            contact: None,
                            legacy_contact: None,
                        },
                    },
                },
            },
            CaseCommand::Accept {
                category: "facility.manhole_cover".into(),
                priority: Priority::Urgent,
            },
            CaseCommand::Dispatch {
                tier: Tier::Community,
                cell: location.community.clone(),
                assignee: worker,
            },
        ];
        for (step, command) in commands.into_iter().enumerate() {
            cases
                .handle(CommandRequest {
                    case_id,
                    command,
                    actor: Actor::system("bench"),
                    source: Source {
                        system: "bench-breach".into(),
                        message_id: format!("{n}-{step}"),
                    },
                    occurred_at: Some(dispatched_at),
                    correlation_id: None,
                    causation_id: None,
                })
                .await?;
        }
        ids.push(case_id);
        bar.inc(1);
    }
    bar.finish();
    anyhow::ensure!(
        Utc::now() < first_deadline,
        "setting up took longer than 15 s: use fewer --breach-cases"
    );
    let last_deadline = first_deadline + chrono::Duration::milliseconds(10 * count as i64);
    let wait = (last_deadline - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(3);
    tokio::time::sleep(wait).await;
    runner.abort();

    let mut histogram = report::histogram();
    for case_id in ids {
        let events = cases.log().load(case_id).await?.events;
        let state = replay(&events);
        let breach = events.iter().find_map(|e| match &e.event {
            CaseEvent::SlaBreached(b) if b.step == SlaStep::Acknowledge => {
                Some((b.deadline, e.recorded_at))
            }
            _ => None,
        });
        let Some((deadline, recorded_at)) = breach else {
            anyhow::bail!(
                "case {case_id} got no acknowledge breach (status {})",
                state.status.as_str()
            );
        };
        let late = (recorded_at - deadline).to_std().unwrap_or_default();
        report::record(&mut histogram, late);
    }
    Ok(histogram)
}

/// Folds the log from the service's position to `head`; returns the seconds it took and the
/// open cases then.
async fn rebuild(
    service: &TimerService<JetStreamLog>,
    log: &JetStreamLog,
    head: u64,
    label: &str,
) -> anyhow::Result<(f64, usize)> {
    let from = service.position().await + 1;
    let bar = report::progress(label, head.saturating_sub(from - 1));
    let started = Instant::now();
    if from <= head {
        let mut stream = log.read_from(from);
        while let Some(commit) = stream.next().await {
            let commit = commit?;
            service.observe(&commit).await;
            bar.inc(1);
            if commit.position >= head {
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish();
    Ok((seconds, service.open_cases().await))
}

/// This process's resident memory, from /proc.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

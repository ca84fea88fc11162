//! The dispatch latency benchmark: case accepted → task on the worker's subject.
//!
//! Reports are committed at a steady rate (default 2,000 a second) into a private nats-server;
//! the dispatcher (accept, route, dispatch) and the task publisher run as in `wangge serve`;
//! a plain subscriber on `wangge.tasks.>` notes when each case's task arrives. The latency of
//! a case is the arrival time minus the `recorded_at` of its `case.accepted` event.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use futures::StreamExt;
use wangge_engine::app::{CaseService, CommandRequest, SystemClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::Ownership;
use wangge_engine::tasks::{TaskPublisher, TaskPublisherConfig};
use wangge_schemas::worker::TaskMessage;
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, GridLocation, ReportDetails, Resident, Source,
};

use crate::report::{self, Row};
use crate::secure::BenchServer;

#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Reports a second.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Seconds of sustained load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Also print p50, p99 and max for each second of the run (to stderr).
    #[arg(long)]
    per_second: bool,
    /// Run on a server started from the shipped accounts, the engine logged in as its own
    /// user (authentication on).
    #[arg(long)]
    secured: bool,
}

pub async fn run(args: DispatchArgs) -> anyhow::Result<()> {
    let server = BenchServer::start(args.secured, &[])?;
    let client = server.connect_engine().await.context("connect")?;
    let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default())
        .await?
        // Sealed as `wangge serve` seals: one Ed25519 signature per commit in the figures.
        .with_seal_key(Arc::new(wangge_engine::log::SealKey::generate()));
    let cases = Arc::new(CaseService::new(log.clone(), Arc::new(SystemClock)));
    let grid = Arc::new(GridDirectory::sample_city());
    let categories = Arc::new(CategoryCatalogue::sample());
    let mut buildings: Vec<GridLocation> = grid
        .building_codes()
        .filter_map(|code| grid.locate_building(code).cloned())
        .collect();
    buildings.sort_by(|a, b| a.building.cmp(&b.building));

    // What arrives on the workers' subjects, and when.
    let mut tasks = client.subscribe("wangge.tasks.>").await?;
    let arrived: Arc<std::sync::Mutex<HashMap<CaseId, DateTime<Utc>>>> = Default::default();
    let arrivals = tokio::spawn({
        let arrived = arrived.clone();
        async move {
            while let Some(message) = tasks.next().await {
                let now = Utc::now();
                if let Ok(task) = serde_json::from_slice::<TaskMessage>(&message.payload) {
                    arrived
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(task.case_id)
                        .or_insert(now);
                }
            }
        }
    });

    let publisher =
        TaskPublisher::open(client.clone(), log.clone(), TaskPublisherConfig::default()).await?;
    let dispatcher = Arc::new(
        Dispatcher::new(cases.clone(), grid.clone(), categories.clone())
            .with_task_fast_path(publisher.fast_path()),
    );
    let running = tokio::spawn(dispatcher.run(Ownership::everything(), 1, std::future::pending()));
    let publishing = tokio::spawn(publisher.run(std::future::pending()));

    let total = args.rate * args.seconds;
    let bar = report::progress("dispatch: reports", total);
    // Everything in this process shares `client`: its message counts are the round trips
    // the engine makes, and the process's CPU time is the engine's (and the load's) cost.
    let (messages_before, cpu_before) = (MessageCounts::of(&client), process_cpu_time());
    let started = Instant::now();
    let mut ids = Vec::with_capacity(total as usize);
    let mut in_flight = futures::stream::FuturesUnordered::new();
    for n in 0..total {
        // Hold the rate: report n goes out at n / rate seconds.
        let due = started + Duration::from_secs_f64(n as f64 / args.rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let case_id = CaseId::new_v7();
        ids.push(case_id);
        let cases = cases.clone();
        let location = buildings[(n as usize * 7) % buildings.len()].clone();
        in_flight.push(tokio::spawn(async move {
            cases.handle(report(case_id, location, n)).await
        }));
        while in_flight.len() > 256 {
            if let Some(done) = in_flight.next().await {
                done??;
            }
        }
        bar.inc(1);
    }
    while let Some(done) = in_flight.next().await {
        done??;
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    bar.finish();
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.abort();
    publishing.abort();
    arrivals.abort();
    let messages = MessageCounts::of(&client).since(messages_before);
    let cpu = process_cpu_time().saturating_sub(cpu_before);
    let arrived = std::mem::take(&mut *arrived.lock().unwrap_or_else(|p| p.into_inner()));

    let mut histogram = report::histogram();
    // The same latencies by the second the case was accepted in, to see where a tail is.
    let mut by_second: BTreeMap<i64, hdrhistogram::Histogram<u64>> = BTreeMap::new();
    let mut missing = 0;
    for case_id in &ids {
        let events = log.load(*case_id).await?.events;
        let accepted = events
            .iter()
            .find_map(|e| matches!(e.event, CaseEvent::Accepted(_)).then_some(e.recorded_at));
        match (accepted, arrived.get(case_id)) {
            (Some(accepted), Some(arrival)) => {
                let latency = (*arrival - accepted).to_std().unwrap_or_default();
                report::record(&mut histogram, latency);
                let second = by_second
                    .entry(accepted.timestamp())
                    .or_insert_with(report::histogram);
                report::record(second, latency);
            }
            _ => missing += 1,
        }
    }
    if args.per_second {
        for (index, second) in by_second.values().enumerate() {
            eprintln!(
                "second {index:>2}: {:>5} cases, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                second.len(),
                report::millis(second, 0.5),
                report::millis(second, 0.99),
                second.max() as f64 / 1000.0
            );
        }
    }
    let p99 = report::millis(&histogram, 0.99);
    let rows = vec![
        Row::new(
            format!("dispatch latency, case accepted → task on the worker's subject ({} cases at {offered:.0} reports/s)", histogram.len()),
            format!("p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms", report::millis(&histogram, 0.5), histogram.max() as f64 / 1000.0),
            "p99 ≤ 10 ms",
            Some(p99 <= 10.0 && missing == 0),
        ),
        Row::new("cases without a task", missing.to_string(), "0", Some(missing == 0)),
        Row::new(
            "NATS messages per report (engine and load generator, one connection)",
            format!(
                "{:.1} sent, {:.1} received",
                messages.sent as f64 / total as f64,
                messages.received as f64 / total as f64
            ),
            "",
            None,
        ),
        Row::new(
            "engine process CPU per report (with the load generator)",
            format!("{:.0} µs", cpu.as_secs_f64() * 1e6 / total as f64),
            "",
            None,
        ),
    ];
    println!();
    report::print_table(&rows);
    drop(server);
    Ok(())
}

/// Messages a client has sent and received since it connected.
#[derive(Debug, Clone, Copy)]
struct MessageCounts {
    sent: u64,
    received: u64,
}

impl MessageCounts {
    fn of(client: &async_nats::Client) -> Self {
        let statistics = client.statistics();
        Self {
            sent: statistics.out_messages.load(Ordering::Relaxed),
            received: statistics.in_messages.load(Ordering::Relaxed),
        }
    }

    fn since(self, earlier: Self) -> Self {
        Self {
            sent: self.sent - earlier.sent,
            received: self.received - earlier.received,
        }
    }
}

/// User and system CPU time of this process so far (Linux `/proc/self/stat`; zero elsewhere).
fn process_cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The fields after the command name (which is in parentheses and may hold spaces):
    // utime and stime are the 12th and 13th, in clock ticks of 1/100 s on Linux.
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let ticks: u64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// A resident's report of a blocked drain in `location`, the `n`th of the run.
pub(crate) fn report(case_id: CaseId, location: GridLocation, n: u64) -> CommandRequest {
    CommandRequest {
        case_id,
        command: CaseCommand::Report {
            location,
            report: CaseReported {
                intake_clock: None,
                title: "12栋3单元1-6门口下水道堵塞".into(),
                description: "下水道堵塞,污水外溢,请尽快处理".into(),
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
        actor: Actor::resident(&format!("r-{n}")),
        source: Source {
            system: "bench-dispatch".into(),
            message_id: format!("report-{n}"),
        },
        occurred_at: None,
        correlation_id: None,
        causation_id: None,
    }
}

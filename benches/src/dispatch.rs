//! The dispatch latency benchmark: case accepted → task on the worker's subject.
//!
//! Reports are committed at a steady rate (default 2,000 a second) into a private nats-server;
//! the dispatcher (accept, route, dispatch) and the task publisher run as in `wangge serve`;
//! a plain subscriber on `wangge.tasks.>` notes when each case's task arrives. The latency of
//! a case is the arrival time minus the `recorded_at` of its `case.accepted` event.

use std::collections::HashMap;
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
use wangge_testkit::NatsServer;

use crate::report::{self, Row};

#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Reports a second.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Seconds of sustained load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

pub async fn run(args: DispatchArgs) -> anyhow::Result<()> {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.context("connect")?;
    let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default()).await?;
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
    let arrived = std::mem::take(&mut *arrived.lock().unwrap_or_else(|p| p.into_inner()));

    let mut histogram = report::histogram();
    let mut missing = 0;
    for case_id in &ids {
        let events = log.load(*case_id).await?.events;
        let accepted = events
            .iter()
            .find_map(|e| matches!(e.event, CaseEvent::Accepted(_)).then_some(e.recorded_at));
        match (accepted, arrived.get(case_id)) {
            (Some(accepted), Some(arrival)) => report::record(
                &mut histogram,
                (*arrival - accepted).to_std().unwrap_or_default(),
            ),
            _ => missing += 1,
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
    ];
    println!();
    report::print_table(&rows);
    drop(server);
    Ok(())
}

fn report(case_id: CaseId, location: GridLocation, n: u64) -> CommandRequest {
    CommandRequest {
        case_id,
        command: CaseCommand::Report {
            location,
            report: CaseReported {
                title: "12栋3单元1-6门口下水道堵塞".into(),
                description: "下水道堵塞,污水外溢,请尽快处理".into(),
                reported_category: "drainage.blocked".into(),
                media: Vec::new(),
                coordinates: None,
                details: ReportDetails::ResidentReport {
                    channel: Channel::MiniProgram,
                    resident: Resident {
                        id: format!("r-{n}"),
                        name: None,
                        phone: None,
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

//! The live grid benchmark, on the sample city (1,420 cells, 1,660 workers):
//!
//! 1. a reader's snapshot (`SharedGrid::load`), what every routing decision now pays;
//! 2. the follower's work per grid event: copy the live grid and fold one event in;
//! 3. grid command round trip over a private nats-server, one at a time (request →
//!    checked → appended → folded in by the answering instance → reply), p50/p99;
//! 4. catch-up: a new instance folding a grid stream of N events before it may decide.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Args;
use wangge_engine::app::SystemClock;
use wangge_engine::grid::{
    serve_grid_commands, GridCommandService, GridFollower, GridState, GridStream, GridStreamConfig,
    LiveGrid, SharedGrid, GRID_COMMAND_SUBJECT,
};
use wangge_engine::intake::MemoryRejectedStore;
use wangge_schemas::grid::{
    grid_event_id, GridEvent, GridEventEnvelope, GridEventMeta, GridReply, WorkerDutyChanged,
};
use wangge_schemas::{Actor, Source};
use wangge_testkit::NatsServer;

use crate::report::{self, Row};

#[derive(Debug, Args)]
pub struct GridArgs {
    /// Snapshots taken in phase 1.
    #[arg(long, default_value_t = 10_000_000)]
    loads: u64,
    /// Events folded in phase 2.
    #[arg(long, default_value_t = 2_000)]
    folds: u64,
    /// Grid commands sent one at a time in phase 3.
    #[arg(long, default_value_t = 2_000)]
    commands: u64,
    /// Grid events on the stream a new instance catches up with in phase 4.
    #[arg(long, default_value_t = 20_000)]
    stream_events: u64,
}

fn duty_event(index: u64, worker: &str) -> GridEvent {
    GridEvent::WorkerDutyChanged(WorkerDutyChanged {
        worker_id: worker.to_owned(),
        on_duty: index % 2 == 1,
    })
}

pub async fn run(args: GridArgs) -> anyhow::Result<()> {
    let city = GridState::sample_city();
    let mut workers: Vec<String> = city.workers().map(|worker| worker.id.clone()).collect();
    workers.sort();
    let mut rows = Vec::new();

    // 1. Snapshots.
    let shared = SharedGrid::new(city.clone());
    let started = Instant::now();
    let mut found = 0u64;
    for index in 0..args.loads {
        let grid = shared.load();
        found += u64::from(
            grid.worker(&workers[index as usize % workers.len()])
                .is_some(),
        );
    }
    let per_load = started.elapsed().as_nanos() as f64 / args.loads as f64;
    assert_eq!(found, args.loads);
    rows.push(Row::new(
        "snapshot of the live grid (`SharedGrid::load`) + one worker lookup, one thread",
        format!("{per_load:.0} ns"),
        "",
        None,
    ));

    // 2. The follower's work per event.
    let mut live = LiveGrid::from_file_state(city.clone());
    let mut histogram = report::histogram();
    for index in 0..args.folds {
        let envelope = envelope(index, &workers[index as usize % workers.len()]);
        let started = Instant::now();
        let mut next = live.clone();
        next.fold(index + 1, &envelope).context("fold")?;
        report::record(&mut histogram, started.elapsed());
        live = next;
    }
    rows.push(Row::new(
        "follower per grid event: copy the live grid + fold one event, p50 / p99",
        format!(
            "{:.2} / {:.2} ms",
            report::millis(&histogram, 0.5),
            report::millis(&histogram, 0.99)
        ),
        "",
        None,
    ));

    // 3. Command round trips.
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.context("connect")?;
    let stream = GridStream::open(client.clone(), GridStreamConfig::default()).await?;
    let shared = SharedGrid::new(city.clone());
    let mut follower = GridFollower::new(stream.clone(), shared.clone());
    follower.catch_up().await?;
    tokio::spawn(follower.run(std::future::pending()));
    let service = Arc::new(GridCommandService::new(
        stream.clone(),
        shared.clone(),
        MemoryRejectedStore::default(),
        Arc::new(SystemClock),
    ));
    tokio::spawn(serve_grid_commands(
        client.clone(),
        service,
        std::future::pending(),
    ));
    let sender = async_nats::connect(server.url()).await.context("connect")?;
    let mut histogram = report::histogram();
    let bar = report::progress("grid commands", args.commands);
    let mut index = 0;
    while index < args.commands {
        let worker = &workers[index as usize % workers.len()];
        let body = serde_json::json!({
            "event_type": "grid.worker_duty_changed", "schema_version": 1,
            "source": {"system": "bench", "message_id": format!("duty-{index}")},
            "actor": {"kind": "system", "id": "bench"},
            "payload": {"worker_id": worker, "on_duty": index % 2 == 1},
        });
        let started = Instant::now();
        let reply = match sender
            .request(GRID_COMMAND_SUBJECT, serde_json::to_vec(&body)?.into())
            .await
        {
            Ok(reply) => reply,
            Err(_) => {
                // Not listening yet.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let elapsed = started.elapsed();
        let reply: GridReply = serde_json::from_slice(&reply.payload)?;
        anyhow::ensure!(
            matches!(reply, GridReply::Accepted { .. }),
            "refused: {reply:?}"
        );
        report::record(&mut histogram, elapsed);
        index += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    rows.push(Row::new(
        format!(
            "grid command round trip, one at a time ({} commands), p50 / p99",
            args.commands
        ),
        format!(
            "{:.2} / {:.2} ms",
            report::millis(&histogram, 0.5),
            report::millis(&histogram, 0.99)
        ),
        "",
        None,
    ));

    // 4. Catch-up over a longer stream.
    let bar = report::progress("grid events", args.stream_events);
    let mut expected = stream.head().await?;
    let mut index = 0;
    while index < args.stream_events {
        let envelope = envelope(
            args.commands + index,
            &workers[index as usize % workers.len()],
        );
        expected = stream.append(&envelope, expected).await?.position;
        index += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let fresh = SharedGrid::new(city.clone());
    let started = Instant::now();
    let reached = GridFollower::new(stream, fresh.clone()).catch_up().await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        reached == expected,
        "caught up to {reached}, not {expected}"
    );
    rows.push(Row::new(
        format!("catch-up of a new instance over {expected} grid events"),
        format!(
            "{:.2} s ({:.0} events/s)",
            elapsed.as_secs_f64(),
            expected as f64 / elapsed.as_secs_f64()
        ),
        "",
        None,
    ));

    report::print_table(&rows);
    Ok(())
}

fn envelope(index: u64, worker: &str) -> GridEventEnvelope {
    let source = Source {
        system: "bench".to_owned(),
        message_id: format!("direct-{index}"),
    };
    let now = Utc::now();
    GridEventEnvelope::new(
        grid_event_id(&source),
        duty_event(index, worker),
        GridEventMeta {
            occurred_at: now,
            recorded_at: now,
            actor: Actor::system("bench"),
            source,
        },
    )
}

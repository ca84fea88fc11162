//! The commit benchmark: the engine's event log against raw JetStream publishing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream::{self, message::PublishMessage, stream};
use bytes::Bytes;
use clap::Args;
use futures::stream::StreamExt;
use uuid::Uuid;
use wangge_engine::app::{CaseService, CommandRequest, SystemClock};
use wangge_engine::domain::{decide, stamp, CaseCommand, CaseState, EventMeta};
use wangge_engine::log::codec::encode_events;
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_schemas::{
    Actor, CaseId, CaseReported, Channel, GridLocation, MediaKind, MediaRef, Priority,
    ReportDetails, Resident, SlaStep, Source, SuspendReason, Tier,
};
use wangge_testkit::NatsServer;

use crate::report::{self, Row};

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Distinct cases (and case subjects) created in the stream.
    #[arg(long, default_value_t = 1_000_000)]
    cases: usize,
    /// Commands on existing cases in the update-throughput phase.
    #[arg(long, default_value_t = 200_000)]
    updates: usize,
    /// Commands in flight at once in the throughput phases.
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    /// Open cases that receive the hot updates (must fit the engine's case cache).
    #[arg(long, default_value_t = 20_000)]
    working_set: usize,
    /// Commands timed one at a time in the latency phase (each for create and update).
    #[arg(long, default_value_t = 2_000)]
    latency_samples: usize,
    /// 20-event cases to load in the load phase.
    #[arg(long, default_value_t = 100)]
    load_cases: usize,
    /// Loads timed in the load phase.
    #[arg(long, default_value_t = 2_000)]
    load_samples: usize,
    /// Use this NATS server instead of starting a private one (its streams are reused!).
    #[arg(long)]
    nats_url: Option<String>,
    /// Append without the engine's seal (what `wangge serve` never does): the seal's cost is
    /// the difference from a sealed run.
    #[arg(long)]
    unsealed: bool,
}

pub async fn run(args: CommitArgs) -> anyhow::Result<()> {
    let _server;
    let url = match &args.nats_url {
        Some(url) => url.clone(),
        None => {
            let server = NatsServer::start();
            let url = server.url();
            eprintln!(
                "started a private nats-server at {url}, store {}",
                server.store_dir().display()
            );
            _server = server;
            url
        }
    };
    let client = async_nats::connect(&url)
        .await
        .with_context(|| format!("connect to {url}"))?;
    let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default()).await?;
    // Sealed as `wangge serve` seals: one Ed25519 signature per commit in the figures, unless
    // `--unsealed` asks for the cost of the seal by its absence.
    let log = if args.unsealed {
        log
    } else {
        log.with_seal_key(Arc::new(wangge_engine::log::SealKey::generate()))
    };
    let service = Arc::new(CaseService::new(log.clone(), Arc::new(SystemClock)));
    let mut rows = Vec::new();

    // The 20-event cases open first, so that loading one walks past every other case.
    let load_cases: Vec<CaseId> = (0..args.load_cases).map(|_| CaseId::new_v7()).collect();
    for (index, &case_id) in load_cases.iter().enumerate() {
        service
            .handle(report_request(case_id, &format!("load-{index}")))
            .await?;
    }

    // 1. Raw baseline, with messages as large as a create commit.
    let (body, header_bytes) = sample_create_commit();
    let (baseline, raw_subjects) =
        raw_baseline(&client, args.cases, body.clone(), header_bytes).await?;
    rows.push(Row::new(
        format!(
            "raw JetStream async publish, {} B body + {header_bytes} B headers, {} subjects",
            body.len(),
            args.cases
        ),
        format!("{:.0} msgs/s", baseline),
        "baseline",
        None,
    ));

    let conditional =
        raw_conditional_updates(&client, &raw_subjects, args.updates, body.clone()).await?;
    drop(raw_subjects);
    rows.push(Row::new(
        format!("raw JetStream conditional publish to existing subjects (expected last subject sequence), {} msgs", args.updates),
        format!("{conditional:.0} msgs/s"),
        "context: the server-side floor of an update",
        None,
    ));

    // 2. Engine: new cases.
    let next = Arc::new(AtomicUsize::new(0));
    let bar = report::progress("engine: new cases", args.cases as u64);
    let started = Instant::now();
    let created = run_concurrently(args.concurrency, {
        let service = service.clone();
        let next = next.clone();
        let bar = bar.clone();
        let total = args.cases;
        move || {
            let service = service.clone();
            let next = next.clone();
            let bar = bar.clone();
            async move {
                let mut mine = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return Ok::<_, anyhow::Error>(mine);
                    }
                    let case_id = CaseId::new_v7();
                    let outcome = service
                        .handle(report_request(case_id, &format!("bench-{n}")))
                        .await?;
                    debug_assert_eq!(outcome.events.len(), 1);
                    mine.push(case_id);
                    bar.inc(1);
                }
            }
        }
    })
    .await?;
    let create_seconds = started.elapsed().as_secs_f64();
    bar.finish();
    let cases: Vec<CaseId> = created.into_iter().flatten().collect();
    let create_rate = cases.len() as f64 / create_seconds;
    rows.push(Row::new(
        format!(
            "engine commit, new cases ({} cases, {} in flight)",
            cases.len(),
            args.concurrency
        ),
        format!("{create_rate:.0} commands/s = {create_rate:.0} events/s"),
        "",
        None,
    ));
    let ratio = create_rate / baseline;
    rows.push(Row::new(
        "engine new-case commits ÷ raw baseline",
        format!("{:.0} %", ratio * 100.0),
        "≥ 50 %",
        Some(ratio >= 0.5),
    ));

    // 3. Engine: updates to existing cases (decide + conditional append; a load when the
    //    case is not cached). Open cases — the day's working set — are where updates go in
    //    practice; updates scattered over every case measure the cold path.
    let cases = Arc::new(cases);
    let working_set = args.working_set.min(cases.len());
    let hot: Arc<Vec<CaseId>> = Arc::new(cases[cases.len() - working_set..].to_vec());
    for (label, pool, offset) in [
        (
            format!("updates to open cases (working set of the {working_set} newest, cached)"),
            hot.clone(),
            0,
        ),
        (
            format!(
                "updates scattered over all {} cases (mostly not cached: load first)",
                cases.len()
            ),
            cases.clone(),
            args.updates,
        ),
    ] {
        let (rate, events_rate) =
            update_phase(&service, pool, args.updates, args.concurrency, offset).await?;
        rows.push(Row::new(
            format!(
                "engine commit, {label}, {} commands, {} in flight",
                args.updates, args.concurrency
            ),
            format!("{rate:.0} commands/s, {events_rate:.0} events/s"),
            "",
            None,
        ));
        rows.push(Row::new(
            format!("… ÷ raw baseline ({label})"),
            format!("{:.0} %", rate / baseline * 100.0),
            "≥ 50 %",
            Some(rate / baseline >= 0.5),
        ));
    }

    // 4. Latency of one command at a time: a create, an update of an open (cached) case,
    //    and an update of a case that must be loaded first.
    let mut create_latency = report::histogram();
    let mut hot_latency = report::histogram();
    let mut cold_latency = report::histogram();
    let bar = report::progress("latency: one at a time", 3 * args.latency_samples as u64);
    for n in 0..args.latency_samples {
        let started = Instant::now();
        service
            .handle(report_request(CaseId::new_v7(), &format!("latency-{n}")))
            .await?;
        report::record(&mut create_latency, started.elapsed());
        let case_id = hot[(n.wrapping_mul(40_503)) % hot.len()];
        let started = Instant::now();
        service
            .handle(update_request(case_id, 2 * args.updates + 2 * n))
            .await?;
        report::record(&mut hot_latency, started.elapsed());
        let case_id = cases[(n.wrapping_mul(2_246_822_519)) % (cases.len() - hot.len()).max(1)];
        let started = Instant::now();
        service
            .handle(update_request(case_id, 2 * args.updates + 2 * n + 1))
            .await?;
        report::record(&mut cold_latency, started.elapsed());
        bar.inc(3);
    }
    bar.finish();
    for (label, histogram) in [
        ("create", &create_latency),
        ("update of an open (cached) case", &hot_latency),
        ("update of a case loaded first", &cold_latency),
    ] {
        let p99 = report::millis(histogram, 0.99);
        rows.push(Row::new(
            format!(
                "single-command commit latency, {label} ({} samples)",
                histogram.len()
            ),
            format!(
                "p50 {:.2} ms, p99 {p99:.2} ms",
                report::millis(histogram, 0.5)
            ),
            "p99 ≤ 5 ms",
            Some(p99 <= 5.0),
        ));
    }

    // 5. Loading 20-event cases with every case in the stream.
    for (index, &case_id) in load_cases.iter().enumerate() {
        for (step, command) in twenty_event_lifecycle().into_iter().enumerate() {
            service
                .handle(worker_request(
                    case_id,
                    command,
                    &format!("load-{index}-{step}"),
                ))
                .await?;
        }
    }
    let mut load_latency = report::histogram();
    let bar = report::progress("load: listed positions", args.load_samples as u64);
    for n in 0..args.load_samples {
        let case_id = load_cases[n % load_cases.len()];
        let started = Instant::now();
        let history = log.load(case_id).await?;
        report::record(&mut load_latency, started.elapsed());
        if history.events.len() != 20 {
            bail!(
                "case {case_id} loaded {} events, expected 20",
                history.events.len()
            );
        }
        bar.inc(1);
    }
    bar.finish();
    let p99 = report::millis(&load_latency, 0.99);
    let total_cases = cases.len() + args.load_cases + args.latency_samples;
    rows.push(Row::new(
        format!("load a 20-event case (19 commits), last-by-subject + listed positions, {total_cases} cases in the stream"),
        format!("p50 {:.2} ms, p99 {p99:.2} ms", report::millis(&load_latency, 0.5)),
        "p99 ≤ 2 ms",
        Some(p99 <= 2.0),
    ));
    let consumer_latency =
        ordered_consumer_loads(&client, &log, &load_cases, args.load_samples.min(500)).await?;
    rows.push(Row::new(
        "load a 20-event case, ordered consumer per load (alternative, not used)",
        format!(
            "p50 {:.2} ms, p99 {:.2} ms",
            report::millis(&consumer_latency, 0.5),
            report::millis(&consumer_latency, 0.99)
        ),
        "",
        None,
    ));

    println!();
    report::print_table(&rows);
    Ok(())
}

/// Sends `total` comment commands to cases picked from `pool`; returns commands/s and events/s.
async fn update_phase(
    service: &Arc<CaseService<JetStreamLog>>,
    pool: Arc<Vec<CaseId>>,
    total: usize,
    concurrency: usize,
    offset: usize,
) -> anyhow::Result<(f64, f64)> {
    let next = Arc::new(AtomicUsize::new(0));
    let bar = report::progress("engine: updates", total as u64);
    let started = Instant::now();
    let events_written = run_concurrently(concurrency, {
        let service = service.clone();
        let bar = bar.clone();
        move || {
            let service = service.clone();
            let next = next.clone();
            let pool = pool.clone();
            let bar = bar.clone();
            async move {
                let mut events = 0usize;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return Ok::<_, anyhow::Error>(events);
                    }
                    // A multiplicative walk visits the cases in a scattered order.
                    let case_id = pool[(n.wrapping_mul(2_654_435_761)) % pool.len()];
                    let outcome = service.handle(update_request(case_id, offset + n)).await?;
                    events += outcome.events.len();
                    bar.inc(1);
                }
            }
        }
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish();
    let events: usize = events_written.into_iter().sum();
    Ok((total as f64 / seconds, events as f64 / seconds))
}

/// Runs `workers` copies of a task and collects what each returns.
async fn run_concurrently<F, Fut, T>(workers: usize, make: F) -> anyhow::Result<Vec<T>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..workers).map(|_| tokio::spawn(make())).collect();
    let mut results = Vec::with_capacity(workers);
    for handle in handles {
        results.push(handle.await??);
    }
    Ok(results)
}

/// Raw async publish of `count` messages to distinct subjects, acks awaited in a window.
/// Returns msgs/s and every subject with the position its message got.
async fn raw_baseline(
    client: &async_nats::Client,
    count: usize,
    body: Bytes,
    header_bytes: usize,
) -> anyhow::Result<(f64, Vec<(String, u64)>)> {
    let context = jetstream::new(client.clone());
    context
        .get_or_create_stream(stream::Config {
            name: "BENCH_RAW".into(),
            subjects: vec!["bench.raw.>".into()],
            storage: stream::StorageType::File,
            allow_direct: true,
            ..Default::default()
        })
        .await?;
    // Headers of the same total size as the engine's, without the server-side semantics.
    let padding = "x".repeat(header_bytes.saturating_sub("X-Pad: \r\n".len()));
    let bar = report::progress("raw baseline", count as u64);
    let started = Instant::now();
    let messages = (0..count).map(|_| {
        let case = Uuid::now_v7();
        let subject = format!("bench.raw.{:02x}.{case}", case.as_bytes()[15]);
        let message = PublishMessage::build()
            .payload(body.clone())
            .header("X-Pad", padding.as_str());
        (subject, message)
    });
    let subjects = crate::setup::publish_windowed(client, messages, &bar).await?;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    bar.finish();
    Ok((rate, subjects))
}

/// Raw conditional publishes to existing subjects (`Nats-Expected-Last-Subject-Sequence`),
/// the server-side work an engine update needs, without the engine: msgs/s.
async fn raw_conditional_updates(
    client: &async_nats::Client,
    subjects: &[(String, u64)],
    count: usize,
    body: Bytes,
) -> anyhow::Result<f64> {
    let bar = report::progress("raw conditional", count as u64);
    let started = Instant::now();
    // Each subject is updated at most once, so its expected position is the one we know.
    let step = (subjects.len() / count.max(1)).max(1);
    let messages = subjects
        .iter()
        .step_by(step)
        .take(count)
        .map(|(subject, sequence)| {
            let message = PublishMessage::build()
                .payload(body.clone())
                .expected_last_subject_sequence(*sequence);
            (subject.clone(), message)
        });
    crate::setup::publish_windowed(client, messages, &bar).await?;
    let rate = bar.position() as f64 / started.elapsed().as_secs_f64();
    bar.finish();
    Ok(rate)
}

/// Loads cases with a fresh ordered consumer filtered to the case's subject each time.
async fn ordered_consumer_loads(
    client: &async_nats::Client,
    log: &JetStreamLog,
    cases: &[CaseId],
    samples: usize,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    let context = jetstream::new(client.clone());
    let stream = context.get_stream(&log.config().stream_name).await?;
    let mut histogram = report::histogram();
    let bar = report::progress("load: ordered consumer", samples as u64);
    for n in 0..samples {
        let case_id = cases[n % cases.len()];
        let started = Instant::now();
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: log.config().case_subject(case_id),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        let mut commits = 0;
        while let Some(message) =
            tokio::time::timeout(Duration::from_secs(5), messages.next()).await?
        {
            let message = message?;
            commits += 1;
            if message.info().map_err(|e| anyhow::anyhow!("{e}"))?.pending == 0 {
                break;
            }
        }
        report::record(&mut histogram, started.elapsed());
        if commits != 19 {
            bail!("ordered consumer read {commits} commits of case {case_id}, expected 19");
        }
        bar.inc(1);
    }
    bar.finish();
    Ok(histogram)
}

fn location() -> GridLocation {
    GridLocation {
        district: "330106001".into(),
        community: "330106001001".into(),
        building: "330106001001001".into(),
    }
}

pub(crate) fn report_request(case_id: CaseId, message_id: &str) -> CommandRequest {
    CommandRequest {
        case_id,
        command: CaseCommand::Report {
            location: location(),
            report: CaseReported {
                intake_clock: None,
                title: "12栋3单元1-6门口下水道堵塞".into(),
                description: "12栋3单元1-6门口下水道堵塞,污水外溢,请尽快处理。".into(),
                reported_category: "drainage.blocked".into(),
                media: vec![MediaRef {
                    kind: MediaKind::Photo,
                    url: format!("oss://wangge/{message_id}.jpg"),
                    sha256: None,
                }],
                coordinates: None,
                details: ReportDetails::ResidentReport {
                    channel: Channel::MiniProgram,
                    resident: Resident {
                        id: "resident-20931".into(),
                        contact: None,
                        legacy_contact: None,
                    },
                },
            },
        },
        actor: Actor::resident("resident-20931"),
        source: Source {
            system: "bench".into(),
            message_id: message_id.into(),
        },
        occurred_at: None,
        correlation_id: None,
        causation_id: None,
    }
}

fn update_request(case_id: CaseId, n: usize) -> CommandRequest {
    worker_request(
        case_id,
        CaseCommand::Comment {
            text: "已联系物业,今天下午上门疏通".into(),
        },
        &format!("update-{n}"),
    )
}

fn worker_request(case_id: CaseId, command: CaseCommand, message_id: &str) -> CommandRequest {
    CommandRequest {
        case_id,
        command,
        actor: Actor::grid_worker("worker-7"),
        source: Source {
            system: "bench".into(),
            message_id: message_id.into(),
        },
        occurred_at: None,
        correlation_id: None,
        causation_id: None,
    }
}

/// After the report: 18 commands making 19 more events (verify-pass writes two).
fn twenty_event_lifecycle() -> Vec<CaseCommand> {
    let worker = || "worker-7".to_owned();
    let mut commands = vec![
        CaseCommand::Accept {
            category: "drainage.blocked".into(),
            priority: Priority::High,
        },
        CaseCommand::Dispatch {
            tier: Tier::Building,
            cell: "330106001001001".into(),
            assignee: worker(),
        },
        CaseCommand::Acknowledge {
            worker_id: worker(),
        },
        CaseCommand::StartHandling {
            worker_id: worker(),
        },
        CaseCommand::Suspend {
            reason: SuspendReason::WaitingForResident,
            note: Some("住户不在家".into()),
        },
        CaseCommand::Resume { note: None },
        CaseCommand::GrantExtension {
            step: SlaStep::Resolve,
            extension: wangge_schemas::TimeLimit {
                amount: 1,
                unit: wangge_schemas::TimeUnit::WorkingDays,
            },
            reason: "需要更换管道".into(),
        },
        CaseCommand::Resolve {
            worker_id: worker(),
            notes: "已疏通".into(),
            media: Vec::new(),
        },
        CaseCommand::Verify {
            verifier: "inspector-2".into(),
            passed: false,
            notes: Some("仍有异味".into()),
        },
        CaseCommand::Resolve {
            worker_id: worker(),
            notes: "已彻底清理".into(),
            media: Vec::new(),
        },
        CaseCommand::Verify {
            verifier: "inspector-2".into(),
            passed: true,
            notes: None,
        },
        CaseCommand::Evaluate {
            satisfaction: 5,
            comment: Some("处理及时".into()),
            resolved: Some(true),
            level: None,
            channel: None,
        },
    ];
    for n in 0..6 {
        commands.push(CaseCommand::Comment {
            text: format!("回访记录 {n}"),
        });
    }
    commands
}

/// The body and header size of a typical create commit, for the baseline's messages.
pub(crate) fn sample_create_commit() -> (Bytes, usize) {
    let request = report_request(CaseId::new_v7(), "sample-0000000");
    let state = CaseState::default();
    let now = chrono::Utc::now();
    let events = decide(&state, &request.command, now).expect("a report on a new case is accepted");
    let meta = EventMeta {
        actor: request.actor.clone(),
        source: request.source.clone(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        occurred_at: now,
        recorded_at: now,
    };
    let envelopes = stamp(
        &state,
        request.case_id,
        &location(),
        events,
        &meta,
        Uuid::now_v7,
    );
    let body = encode_events(&envelopes);
    // Nats-Msg-Id (32 hex), Nats-Expected-Last-Subject-Sequence, and our four headers.
    let header_bytes = [
        ("Nats-Msg-Id", 32),
        ("Nats-Expected-Last-Subject-Sequence", 1),
        ("Wangge-Case-Id", 36),
        ("Wangge-First-Sequence", 1),
        ("Wangge-Last-Sequence", 1),
        ("Wangge-Event-Types", "case.reported".len()),
    ]
    .iter()
    .map(|(name, value)| name.len() + 2 + value + 2)
    .sum();
    (body, header_bytes)
}

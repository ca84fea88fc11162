//! `wangge demo`: a simulated working day in the sample city, on the engine's real parts.
//!
//! Residents report problems and ask for services, grid workers patrol and file findings,
//! and every message goes through intake. The dispatcher accepts (立案) and dispatches (派遣)
//! down the three-tier grid, the SLA timers warn, breach, reassign and escalate on a
//! simulated clock, workers acknowledge, decline, handle and resolve through the same
//! commands their app sends, supervisors verify, residents evaluate — and the projections
//! fold it all into the read models that the dashboard shows while the day runs.
//!
//! On the embedded default nothing else is needed: an in-memory log and in-memory read
//! models. `--nats-url` runs the same day on JetStream (a stream of its own per run), and
//! `--postgres-url` keeps the read models in PostgreSQL (a database of its own per run).
//! The dashboard is served while the day runs, on the simulated clock.

mod dice;
mod people;
mod summary;
mod traffic;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Mutex;
use wangge_engine::app::{CaseService, Clock, LiveSlaTerms, ManualClock};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::intake::service::IncomingMessage;
use wangge_engine::intake::{IntakeService, MemoryRejectedStore};
use wangge_engine::log::{EventLog, JetStreamLogConfig, MemoryLog, SealKey};
use wangge_engine::residents::{Kek, KeyRing, ResidentKeys};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::{TimerBook, TimerService};
use wangge_engine::runtime::Ownership;
use wangge_engine::sla::{SharedSla, SlaReference};
use wangge_engine::tasks::WorkerCommandService;
use wangge_projections::http::{serve_http, ApiState};
use wangge_projections::postgres::{spawn_runners, ExclusiveRunnerConfig};
use wangge_projections::runner::RunnerConfig;
use wangge_projections::{FoldContext, MemoryReadModels, ReadModels};

use crate::ReferenceArgs;
use dice::Dice;
use people::{Act, People};
use summary::Tally;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the simulation: the same seed replays the same day.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Residents' reports and service requests in the day (patrol findings come on top).
    #[arg(long, default_value_t = 1_200)]
    reports: u64,
    /// Simulated minutes per real second; 0 runs the day as fast as the machine can.
    #[arg(long, default_value_t = 40.0)]
    speed: f64,
    /// The local day simulated (a working day of the sample city's calendar).
    #[arg(long, default_value = "2026-11-24")]
    day: chrono::NaiveDate,
    /// Run on these NATS servers (JetStream; comma-separated URLs, e.g. the project's
    /// development server nats://127.0.0.1:4223) instead of the in-memory log.
    #[arg(
        long,
        env = "WANGGE_DEMO_NATS_URL",
        value_delimiter = ',',
        hide_env_values = true
    )]
    nats_url: Option<Vec<String>>,
    #[command(flatten)]
    nats_auth: crate::NatsAuthArgs,
    /// Keep the read models in PostgreSQL at this server (the run gets a database of its
    /// own, named after the URL's database and the run) instead of in memory.
    #[arg(long, env = "WANGGE_DEMO_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Where the dashboard and the HTTP API listen while the day runs (port 0: any free
    /// one). Default 127.0.0.1:8080, or any free port when 8080 is taken.
    #[arg(long)]
    http_listen: Option<std::net::SocketAddr>,
    /// After the day, keep serving the dashboard until Ctrl-C.
    #[arg(long)]
    linger: bool,
    #[command(flatten)]
    reference: ReferenceArgs,
}

/// The simulated day, in the city's local time (UTC+8): 07:30 to 20:30.
const DAY_STARTS_AT_MINUTE: i64 = 7 * 60 + 30;
const DAY_MINUTES: i64 = 13 * 60;

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (grid, categories) = args.reference.load()?;
    let sla = args.reference.sla.load()?;
    // Runs on servers get streams and databases of their own, so runs never mix.
    let run = Utc::now().format("%Y%m%d%H%M%S").to_string();
    // Like `wangge serve`, the demo seals every commit: with a key of its own, made for this
    // run and forgotten after it; its audit trails are verified against it.
    let seal_key = Arc::new(SealKey::generate());
    match args.nats_url.clone() {
        None => {
            let what = "embedded in-memory log";
            let reference = (grid, categories, sla);
            let log = MemoryLog::new().with_seal_key(seal_key.clone());
            day(&args, &run, log, reference, what, &seal_key).await
        }
        Some(urls) => {
            let client = args.nats_auth.connect(&urls).await?;
            let url = urls
                .iter()
                .map(|url| wangge_engine::nats::connect::redact_url(url))
                .collect::<Vec<_>>()
                .join(",");
            let config = JetStreamLogConfig {
                stream_name: format!("WANGGE_DEMO_{run}"),
                subject_prefix: format!("wangge.demo.{run}"),
                ..Default::default()
            };
            let log = wangge_engine::log::JetStreamLog::open(client, config)
                .await?
                .with_seal_key(seal_key.clone());
            let what = format!("JetStream at {url}, stream WANGGE_DEMO_{run}");
            day(&args, &run, log, (grid, categories, sla), &what, &seal_key).await
        }
    }
}

/// The grid, the categories and the SLA data the day runs on.
type Reference = (Arc<GridDirectory>, Arc<CategoryCatalogue>, SlaReference);

async fn day<L: EventLog + Clone>(
    args: &DemoArgs,
    run: &str,
    log: L,
    (grid, categories, sla_data): Reference,
    what: &str,
    seal_key: &SealKey,
) -> anyhow::Result<ExitCode> {
    let start = local_start(args.day)?;
    let clock = ManualClock::starting_at(start);
    // The demo has no SLA stream: the files (or the bundled data) are the day's SLA data.
    let sla = SharedSla::new(sla_data);
    let cases = Arc::new(
        CaseService::new(log.clone(), Arc::new(clock.clone())).with_sla_terms(Arc::new(
            LiveSlaTerms::new(sla.clone(), grid.clone().into(), categories.clone()),
        )),
    );
    let rejected = MemoryRejectedStore::default();
    // Residents' contacts sealed as in `wangge serve`, under an ephemeral KEK and keys kept
    // in memory: they live exactly as long as the demo's day.
    let resident_keys = Arc::new(ResidentKeys::in_memory(KeyRing::new(Kek::generate())));
    let intake = IntakeService::new(
        cases.clone(),
        rejected.clone(),
        grid.clone(),
        categories.clone(),
    )
    .with_resident_keys(resident_keys.clone());
    let workers = WorkerCommandService::new(cases.clone(), grid.clone());
    let context = FoldContext::new(grid.clone(), categories.clone())
        .with_seal_policy(crate::seal::engine_policy(seal_key, None, None)?);
    let (districts, communities, buildings) = grid.counts();
    println!(
        "wangge demo: {} — {districts} districts, {communities} communities, {buildings} building cells, {} grid workers; {what}",
        grid.city(),
        grid.worker_count()
    );
    println!(
        "simulating {} from 07:30 to 20:30 (seed {}, {} reports)",
        args.day, args.seed, args.reports
    );

    // The engine's actors and the read side, following the log as in `wangge serve`.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            stopping.wait_for(|stop| *stop).await.ok();
        }
    };
    let mut background = tokio::task::JoinSet::new();
    let dispatcher = Arc::new(Dispatcher::new(
        cases.clone(),
        grid.clone(),
        categories.clone(),
    ));
    background.spawn({
        let until = stopped();
        async move {
            if let Err(error) = dispatcher.run(Ownership::everything(), 1, until).await {
                tracing::error!(%error, "dispatcher stopped");
            }
        }
    });
    let book = TimerBook::new(grid.clone(), categories.clone());
    let timers = Arc::new(TimerService::new(cases.clone(), book));
    let people = Arc::new(Mutex::new(People::new(args.seed, grid.clone())));
    let timers_seen = Arc::new(AtomicU64::new(0));
    let people_seen = Arc::new(AtomicU64::new(0));
    background.spawn(follow(log.clone(), stopped(), timers_seen.clone(), {
        let timers = timers.clone();
        move |commit| {
            let timers = timers.clone();
            async move { timers.observe(&commit).await }
        }
    }));
    background.spawn(follow(log.clone(), stopped(), people_seen.clone(), {
        let people = people.clone();
        move |commit| {
            let people = people.clone();
            async move { people.lock().await.observe(&commit) }
        }
    }));
    // The read models, kept by the projection runners as in `wangge serve`.
    let models: Arc<dyn ReadModels> = match &args.postgres_url {
        None => {
            let models = MemoryReadModels::new(context.clone());
            background.spawn(models.clone().follow(
                log.clone(),
                RunnerConfig::default(),
                stopped(),
            ));
            models
        }
        Some(url) => {
            let url = database_of_run(url, run);
            let models = crate::connect_read_models(&url, context.clone()).await?;
            let runners = spawn_runners(
                models.clone(),
                log.clone(),
                ExclusiveRunnerConfig::default(),
                stopped(),
            );
            background.spawn(runners.wait());
            println!("read models in PostgreSQL: {}", crate::redact(&url));
            models
        }
    };
    // The dashboard, on the simulated clock, while the day runs.
    let listener = dashboard_listener(args.http_listen).await?;
    let address = listener.local_addr()?;
    let masked: Arc<dyn ReadModels> = wangge_projections::residents::MaskedReadModels::new(
        models.clone(),
        Some(resident_keys.clone() as Arc<dyn wangge_engine::residents::ContactOpener>),
    );
    let api = ApiState::new(
        masked,
        grid.clone(),
        Arc::new(clock.clone()),
        Arc::new(log.clone()),
    )
    .with_sla(sla.clone());
    // Authentication as in production, with a key that lives as long as the demo: the
    // login links below carry tokens signed with it.
    let (signing_pem, public_pem) = wangge_projections::http::auth::generate_ed25519_pem()?;
    let signer = wangge_projections::http::auth::TokenSigner::from_private_key_pem(
        &signing_pem,
        "the demo's key",
    )?;
    let verifier = wangge_projections::http::TokenVerifier::from_public_key_pem(
        &public_pem,
        "the demo's key",
    )?;
    let api = api.with_authenticator(wangge_projections::http::Authenticator::new(
        Some(verifier),
        None,
    ));
    let token_ttl = std::time::Duration::from_secs(12 * 3600);
    let auditor_token = signer.issue(
        "demo-auditor",
        Some(wangge_engine::domain::grid::AccessRole::Auditor),
        chrono::Utc::now(),
        token_ttl,
    )?;
    let district_login = grid
        .districts()
        .next()
        .map(|district| -> anyhow::Result<(String, String)> {
            let token = signer.issue(
                &district.supervisor,
                Some(wangge_engine::domain::grid::AccessRole::District),
                chrono::Utc::now(),
                token_ttl,
            )?;
            Ok((district.name.clone(), token))
        })
        .transpose()?;
    let (stop_http, http_stopping) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(serve_http(listener, api, async move {
        http_stopping.await.ok();
    }));
    println!("dashboard: http://{address}/  (API: http://{address}/api/v1/, OpenAPI: http://{address}/api/openapi.json)");
    println!("login (auditor, the whole city, 12 h): http://{address}/login#token={auditor_token}");
    if let Some((name, token)) = &district_login {
        println!("login ({name} district, 12 h): http://{address}/login#token={token}");
    }

    let mut dice = Dice::new(args.seed);
    let patrols = patrol_plan(&mut dice, &grid, start);
    let mut tally = Tally::default();
    let bar = ProgressBar::new(DAY_MINUTES as u64).with_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {msg}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    bar.set_prefix("day");
    let tick = if args.speed > 0.0 {
        StdDuration::from_secs_f64(1.0 / args.speed)
    } else {
        StdDuration::ZERO
    };
    let per_minute = reports_per_minute(args.reports);
    let mut owed = 0.0;
    let mut message_number = 0u64;
    let mut retry: Option<traffic::Message> = None;
    let mut next_patrol = 0;
    let mut buildings: Vec<&str> = grid.building_codes().collect();
    buildings.sort_unstable();
    let everything = Ownership::everything();
    let started = tokio::time::Instant::now();

    for minute in 1..=DAY_MINUTES {
        let now = start + Duration::minutes(minute);
        clock.set(now);
        let local_hour = ((DAY_STARTS_AT_MINUTE + minute) / 60) as u32;

        // What arrives this minute: residents, patrols, and a retry now and then.
        owed +=
            per_minute[local_hour.min(23) as usize] + dice.between(0, 999) as f64 / 1000.0 - 0.5;
        let mut arriving = Vec::new();
        if let Some(message) = retry.take() {
            arriving.push(message);
        }
        while owed >= 1.0 {
            owed -= 1.0;
            message_number += 1;
            let building = *dice.pick(&buildings);
            arriving.push(traffic::resident_message(
                &mut dice,
                message_number,
                building,
                now,
            ));
        }
        while next_patrol < patrols.len() && patrols[next_patrol].0 <= now {
            let (_, building, worker) = &patrols[next_patrol];
            next_patrol += 1;
            message_number += 1;
            arriving.push(traffic::patrol_message(
                &mut dice,
                message_number,
                building,
                worker,
                now,
            ));
        }
        for message in arriving {
            if dice.chance(3) {
                retry = Some(traffic::Message {
                    subject: message.subject.clone(),
                    payload: message.payload.clone(),
                });
            }
            let reply = intake
                .process(IncomingMessage {
                    subject: message.subject,
                    headers: Vec::new(),
                    payload: message.payload,
                })
                .await;
            tally.intake(&reply);
        }

        // The engine's actors and the people catch up with what just happened.
        settle(&log, &[&timers_seen, &people_seen]).await;

        // What people do this minute.
        let acts = people.lock().await.due(now);
        for act in acts {
            match act {
                Act::Command(message) => {
                    let reply = workers.execute(&message).await;
                    tally.worker(message.command.name(), &reply);
                }
                Act::Evaluate(message) => {
                    let reply = intake
                        .process(IncomingMessage {
                            subject: message.subject,
                            headers: Vec::new(),
                            payload: message.payload,
                        })
                        .await;
                    tally.evaluation(&reply);
                }
            }
        }

        // The SLA timers on the simulated clock.
        settle(&log, &[&timers_seen, &people_seen]).await;
        for (_, fired) in timers.fire_due(now, &everything).await {
            tally.timer(&fired);
        }

        if minute % 15 == 0 || minute == DAY_MINUTES {
            let local = now + Duration::hours(8);
            bar.set_position(minute as u64);
            bar.set_message(format!(
                "{:02}:{:02}  {} cases, {} escalated, {} timers fired",
                local.hour(),
                local.minute(),
                tally.cases_opened(),
                tally.escalations(),
                tally.timers_fired()
            ));
        }
        // Hold the pace: minute n of the day is due n ticks after the start.
        if !tick.is_zero() {
            tokio::time::sleep_until(started + tick * minute as u32).await;
        }
    }
    bar.finish();

    // Let the read models fold the last commits, then report.
    settle(&log, &[&timers_seen, &people_seen]).await;
    let head = log.head().await?;
    loop {
        let checkpoints = models.checkpoints().await?;
        if checkpoints.iter().all(|c| c.position >= head) {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    summary::print(
        &args.day,
        &grid,
        &log,
        models.as_ref(),
        &rejected,
        &tally,
        clock.now(),
    )
    .await?;
    if args.linger {
        println!("\nthe day is over; the dashboard stays at http://{address}/ until Ctrl-C");
        tokio::signal::ctrl_c().await.ok();
    }
    stop_http.send(()).ok();
    http.await??;
    stop.send(true).ok();
    while background.join_next().await.is_some() {}
    Ok(ExitCode::SUCCESS)
}

/// The dashboard's socket: the one asked for, or 127.0.0.1:8080 — and when that is taken
/// (another program, another demo), any free port: the demo must run on any machine.
async fn dashboard_listener(
    asked: Option<std::net::SocketAddr>,
) -> anyhow::Result<tokio::net::TcpListener> {
    if let Some(address) = asked {
        return tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for the dashboard on {address}: {e}"));
    }
    match tokio::net::TcpListener::bind("127.0.0.1:8080").await {
        Ok(listener) => Ok(listener),
        Err(_) => Ok(tokio::net::TcpListener::bind("127.0.0.1:0").await?),
    }
}

/// The URL of a database of this run's own: the URL's database name (`wangge` when it names
/// none) with `_demo_<run>` after it.
fn database_of_run(url: &str, run: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let after_host = base.find("://").map_or(0, |i| i + 3);
    let (server, database) = match base[after_host..].find('/') {
        Some(slash) => (&base[..after_host + slash], &base[after_host + slash + 1..]),
        None => (base, ""),
    };
    let database = if database.is_empty() {
        "wangge"
    } else {
        database
    };
    let mut own = format!("{server}/{database}_demo_{run}");
    if let Some(query) = query {
        own.push('?');
        own.push_str(query);
    }
    own
}

/// 07:30 local (UTC+8) on `day`.
fn local_start(day: chrono::NaiveDate) -> anyhow::Result<DateTime<Utc>> {
    let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"))
        - Duration::hours(8);
    Ok(midnight + Duration::minutes(DAY_STARTS_AT_MINUTE))
}

/// Expected reports per simulated minute for each local hour, adding up to `reports` over
/// the simulated day.
fn reports_per_minute(reports: u64) -> [f64; 24] {
    let weight_of_day: f64 = (0..DAY_MINUTES)
        .map(|m| traffic::hourly_weight(((DAY_STARTS_AT_MINUTE + m) / 60) as u32))
        .sum();
    let mut rates = [0.0; 24];
    for (hour, rate) in rates.iter_mut().enumerate() {
        *rate = reports as f64 * traffic::hourly_weight(hour as u32) / weight_of_day;
    }
    rates
}

/// The morning patrols: most building workers walk their cells between 08:30 and 11:30 and
/// record one or two findings; some do not patrol today, so coverage has gaps.
fn patrol_plan(
    dice: &mut Dice,
    grid: &GridDirectory,
    start: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, String, String)> {
    let mut workers: Vec<_> = grid
        .workers()
        .filter(|w| w.on_duty)
        .filter(|w| {
            w.cells.iter().any(|c| {
                grid.cell(c)
                    .is_some_and(|c| c.tier == wangge_schemas::Tier::Building)
            })
        })
        .collect();
    workers.sort_by(|a, b| a.id.cmp(&b.id));
    let mut plan = Vec::new();
    for worker in workers {
        if !dice.chance(70) {
            continue;
        }
        let buildings: Vec<&String> = worker
            .cells
            .iter()
            .filter(|c| {
                grid.cell(c)
                    .is_some_and(|c| c.tier == wangge_schemas::Tier::Building)
            })
            .collect();
        for _ in 0..dice.between(1, 2) {
            let at = start + Duration::minutes(dice.between(60, 240));
            plan.push((at, (*dice.pick(&buildings)).clone(), worker.id.clone()));
        }
    }
    plan.sort();
    plan
}

/// Waits until every follower has seen the log's head (the in-process actors react within
/// a moment; this keeps the simulated minutes in step with them).
async fn settle<L: EventLog>(log: &L, followers: &[&Arc<AtomicU64>]) {
    let Ok(head) = log.head().await else {
        return;
    };
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(5);
    while followers
        .iter()
        .any(|seen| seen.load(Ordering::Acquire) < head)
    {
        if tokio::time::Instant::now() > deadline {
            tracing::warn!(head, "followers are slow to catch up with the log");
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(1)).await;
    }
    // The dispatcher acts on what it sees in tasks of its own; give them a moment.
    tokio::task::yield_now().await;
}

/// Reads the log from the start and hands every commit to `observe`, noting how far it got.
async fn follow<L, F, Fut>(
    log: L,
    until: impl std::future::Future<Output = ()>,
    seen: Arc<AtomicU64>,
    observe: F,
) where
    L: EventLog,
    F: Fn(wangge_engine::log::StoredCommit) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut commits = log.read_from(1);
    tokio::pin!(until);
    loop {
        tokio::select! {
            commit = commits.next() => match commit {
                Some(Ok(commit)) => {
                    let position = commit.position;
                    observe(commit).await;
                    seen.store(position, Ordering::Release);
                }
                Some(Err(error)) => tracing::warn!(%error, "demo follower could not read a commit"),
                None => return,
            },
            _ = &mut until => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::database_of_run;

    #[test]
    fn a_run_gets_a_database_of_its_own() {
        assert_eq!(
            database_of_run("postgres://postgres@127.0.0.1:5432/wangge", "20261201"),
            "postgres://postgres@127.0.0.1:5432/wangge_demo_20261201"
        );
        assert_eq!(
            database_of_run("postgres://u:p@db/x?sslmode=disable", "1"),
            "postgres://u:p@db/x_demo_1?sslmode=disable"
        );
        assert_eq!(
            database_of_run("postgres://db", "1"),
            "postgres://db/wangge_demo_1"
        );
    }
}

//! Dashboard API latency with a million cases in the PostgreSQL read models.
//!
//! 1. **Fill**: a year of the sample city's history (`--cases` cases, one every
//!    365 days / cases, the newest still open at every step) folded by the four
//!    projections into a read-model database, batch by batch through the same
//!    `project_batch` the runners use (state reads, folds, `UNNEST` writes, checkpoints),
//!    from memory rather than from a log, which only the fill's speed would notice. With
//!    `--keep-database` the database is kept, and a later run with the same `--cases` finds
//!    it complete and skips the fill.
//! 2. **Requests**: the engine's HTTP API (the axum router `wangge serve` serves) over that
//!    database; `--clients` clients issue, in turn, every request the dashboard makes (the
//!    board at three levels, the overdue list, a building's cases, a case and its audit
//!    trail, 14 days of indicators by day and in total, the 30-day ranking, lag) and what
//!    other systems ask (filtered and paged case lists, a worker's inbox, a case's history,
//!    patrol coverage, indicators by district), `--requests` of each kind, timed from
//!    sending to the last byte of the body. Every answer must be 200.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Days, Utc};
use clap::Args;
use hdrhistogram::Histogram;
use wangge_engine::app::SystemClock;
use wangge_engine::grid::GridDirectory;
use wangge_engine::log::{MemoryLog, StoredCommit};
use wangge_projections::fold::audit::AuditProjection;
use wangge_projections::fold::cases::CasesProjection;
use wangge_projections::fold::indicators::IndicatorsProjection;
use wangge_projections::fold::patrols::PatrolsProjection;
use wangge_projections::fold::Projection;
use wangge_projections::http::{serve_http, ApiState};
use wangge_projections::runner::{project_batch, ProjectionStore};
use wangge_projections::{FoldContext, PostgresReadModels};

use crate::history::CityHistory;
use crate::report::{self, Row};
use crate::setup::BenchDatabase;

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Cases in the read models.
    #[arg(long, default_value_t = 1_000_000)]
    cases: usize,
    /// Requests of each kind.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Clients asking at once.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Keep the filled database (`wangge_bench_api_<cases>`) for the next run.
    #[arg(long)]
    keep_database: bool,
    /// Commits without seal headers (a log written before sealing). By default every
    /// commit carries headers of the engine's shape, as `wangge serve` writes them.
    #[arg(long)]
    unsealed: bool,
    /// Leave vacuuming to autovacuum while filling (a year written in minutes: the rows
    /// rewritten by later batches stay as free space). By default the fill vacuums
    /// continuously, as autovacuum would over a real year.
    #[arg(long)]
    autovacuum_only: bool,
}

/// Commits in one projection transaction while filling (the runners' default batch).
const FILL_BATCH: usize = 2_000;
/// Cases generated at a time.
const STRETCH: usize = 10_000;

pub async fn run(args: ApiArgs) -> anyhow::Result<()> {
    let grid = Arc::new(GridDirectory::sample_city());
    let database = BenchDatabase::named(&format!("wangge_bench_api_{}", args.cases));
    let context = FoldContext::bundled();
    let reuse =
        args.keep_database && database.exists().await? && complete(&database, args.cases).await?;
    if !reuse {
        let database = BenchDatabase::fresh(&database.name).await?;
        let models = PostgresReadModels::connect(&database.url(), context.clone()).await?;
        let vacuum = if args.autovacuum_only {
            None
        } else {
            Some(database.connect().await?)
        };
        fill(&grid, models, args.cases, !args.unsealed, vacuum).await?;
    }
    let models = PostgresReadModels::connect(&database.url(), context).await?;
    let client = database.connect().await?;
    client
        .batch_execute("VACUUM ANALYZE")
        .await
        .context("vacuum analyze")?;
    let samples = Samples::read(&client, &grid).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let api = ApiState::new(
        models.clone(),
        grid.clone(),
        Arc::new(SystemClock),
        Arc::new(MemoryLog::new()),
    );
    // Measured as served: every request carries a token the server verifies (EdDSA).
    let (signing_pem, public_pem) = wangge_projections::http::auth::generate_ed25519_pem()?;
    let verifier = wangge_projections::http::TokenVerifier::from_public_key_pem(
        &public_pem,
        "the bench's key",
    )?;
    let api = api.with_authenticator(wangge_projections::http::Authenticator::new(
        Some(verifier),
        None,
    ));
    let token = wangge_projections::http::auth::TokenSigner::from_private_key_pem(
        &signing_pem,
        "the bench's key",
    )?
    .issue(
        "bench-auditor",
        Some(wangge_engine::domain::grid::AccessRole::Auditor),
        chrono::Utc::now(),
        std::time::Duration::from_secs(24 * 3600),
    )?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_http(listener, api, async {
        stopped.await.ok();
    }));
    let base = format!("http://{address}");
    let kinds = request_kinds(&samples);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(args.clients)
        .build()?;

    // One warm-up round, then the measured ones.
    for (_, urls) in &kinds {
        get(&http, &format!("{base}{}", urls[0])).await?;
    }
    let bar = report::progress("api: requests", (kinds.len() * args.requests) as u64);
    let mut histograms: Vec<Histogram<u64>> = kinds.iter().map(|_| report::histogram()).collect();
    let kinds = Arc::new(kinds);
    let mut clients = tokio::task::JoinSet::new();
    for client_index in 0..args.clients {
        let (http, base, kinds, bar) = (http.clone(), base.clone(), kinds.clone(), bar.clone());
        let rounds = args.requests.div_ceil(args.clients);
        clients.spawn(async move {
            let mut timings: Vec<Vec<Duration>> = kinds.iter().map(|_| Vec::new()).collect();
            for round in 0..rounds {
                for (kind, (_, urls)) in kinds.iter().enumerate() {
                    let url = &urls[(round * 7 + client_index * 13 + kind) % urls.len()];
                    let started = Instant::now();
                    get(&http, &format!("{base}{url}")).await?;
                    timings[kind].push(started.elapsed());
                    bar.inc(1);
                }
            }
            anyhow::Ok(timings)
        });
    }
    while let Some(done) = clients.join_next().await {
        for (kind, timings) in done??.into_iter().enumerate() {
            for elapsed in timings {
                report::record(&mut histograms[kind], elapsed);
            }
        }
    }
    bar.finish();
    stop.send(()).ok();
    server.await??;
    drop(models);
    if !args.keep_database {
        database.drop_it().await?;
    }

    let mut all = report::histogram();
    let mut rows = Vec::new();
    for ((name, _), histogram) in kinds.iter().zip(&histograms) {
        all.add(histogram).ok();
        let p99 = report::millis(histogram, 0.99);
        rows.push(Row::new(
            format!("`{name}`"),
            format!(
                "p50 {:.1} ms, p99 {p99:.1} ms",
                report::millis(histogram, 0.5)
            ),
            "p99 ≤ 50 ms",
            Some(p99 <= 50.0),
        ));
    }
    let p99 = report::millis(&all, 0.99);
    rows.insert(
        0,
        Row::new(
            format!(
                "dashboard API, {} cases in PostgreSQL: all {} requests ({} kinds, {} clients at once)",
                samples.cases,
                all.len(),
                kinds.len(),
                args.clients
            ),
            format!(
                "p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
                report::millis(&all, 0.5),
                all.max() as f64 / 1000.0
            ),
            "p99 ≤ 50 ms",
            Some(p99 <= 50.0),
        ),
    );
    println!();
    report::print_table(&rows);
    Ok(())
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let response = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "GET {url} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// Whether a kept database holds the fill this run wants.
async fn complete(database: &BenchDatabase, cases: usize) -> anyhow::Result<bool> {
    let client = database.connect().await?;
    let counted = client
        .query_one("SELECT count(*) FROM cases", &[])
        .await
        .map(|row| row.get::<_, i64>(0));
    let finished = client
        .query_one(
            "SELECT count(DISTINCT position) = 1 AND min(position) > 0 FROM projection_checkpoints",
            &[],
        )
        .await
        .map(|row| row.get::<_, Option<bool>>(0) == Some(true));
    Ok(matches!((counted, finished), (Ok(n), Ok(true)) if n as usize == cases))
}

/// Folds a year of history into the read models, the four projections side by side.
async fn fill(
    grid: &GridDirectory,
    models: Arc<PostgresReadModels>,
    cases: usize,
    sealed: bool,
    vacuum: Option<tokio_postgres::Client>,
) -> anyhow::Result<()> {
    let history = CityHistory::last_year(grid, cases, sealed);
    fill_with(history, models, cases, "api: fill read models", vacuum).await
}

/// Folds `cases` cases of `history` into the read models, the four projections side by
/// side (shared with `sizes`).
///
/// With `vacuum`, that connection runs `VACUUM` over and over while the fill lasts. The
/// fill writes a year in minutes, and each batch rewrites the rows of the cases it touches;
/// autovacuum (a table at most once a minute, and only once a fifth of it is dead) cannot
/// keep pace with that, so the dead rows pile up into free space a real year would have
/// reused — a city writes a few cases a minute, and autovacuum passes many times a day.
/// Vacuuming continuously stands for that pace; without it the sizes are those of a year
/// written in minutes.
pub async fn fill_with(
    mut history: CityHistory,
    models: Arc<PostgresReadModels>,
    cases: usize,
    label: &str,
    vacuum: Option<tokio_postgres::Client>,
) -> anyhow::Result<()> {
    let (filled, mut filling) = tokio::sync::watch::channel(false);
    let keeper = vacuum.map(|client| {
        tokio::spawn(async move {
            let mut rounds = 0u64;
            while !*filling.borrow() {
                client.batch_execute("VACUUM").await.context("vacuum")?;
                rounds += 1;
                tokio::select! {
                    _ = filling.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            anyhow::Ok(rounds)
        })
    });
    let bar = report::progress(label, cases as u64);
    let mut senders = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    macro_rules! projection_task {
        ($projection:expr) => {{
            let (sender, receiver) = tokio::sync::mpsc::channel::<Arc<Vec<StoredCommit>>>(4);
            senders.push(sender);
            tasks.spawn(fill_projection($projection, models.clone(), receiver));
        }};
    }
    projection_task!(CasesProjection);
    projection_task!(AuditProjection);
    projection_task!(IndicatorsProjection);
    projection_task!(PatrolsProjection);
    let mut made = 0;
    while made < cases {
        let count = STRETCH.min(cases - made);
        let stretch = history.stretch(count);
        made += count;
        for chunk in stretch.chunks(FILL_BATCH) {
            let chunk = Arc::new(chunk.to_vec());
            for sender in &senders {
                sender
                    .send(chunk.clone())
                    .await
                    .context("a projection's fill stopped")?;
            }
        }
        bar.set_position(made as u64);
    }
    drop(senders);
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    bar.finish();
    filled.send(true).ok();
    if let Some(keeper) = keeper {
        let rounds = keeper.await??;
        println!("{label}: vacuumed {rounds} times while filling");
    }
    Ok(())
}

async fn fill_projection<P: Projection>(
    projection: P,
    models: Arc<PostgresReadModels>,
    mut batches: tokio::sync::mpsc::Receiver<Arc<Vec<StoredCommit>>>,
) -> anyhow::Result<()>
where
    PostgresReadModels: ProjectionStore<P>,
{
    let mut position = 0;
    while let Some(batch) = batches.recv().await {
        position = project_batch(&projection, models.as_ref(), position, &batch).await?;
    }
    Ok(())
}

/// Real ids and cells to ask about, read from the filled database.
struct Samples {
    cases: i64,
    case_ids: Vec<String>,
    buildings: Vec<String>,
    districts: Vec<String>,
    communities: Vec<String>,
    assignees: Vec<String>,
    categories: Vec<String>,
}

impl Samples {
    async fn read(client: &tokio_postgres::Client, grid: &GridDirectory) -> anyhow::Result<Self> {
        let cases: i64 = client
            .query_one("SELECT count(*) FROM cases", &[])
            .await?
            .get(0);
        let texts = |rows: Vec<tokio_postgres::Row>| {
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        };
        let case_ids = texts(
            client
                .query(
                    "SELECT case_id::text FROM cases TABLESAMPLE SYSTEM (1) LIMIT 500",
                    &[],
                )
                .await?,
        );
        let assignees = texts(
            client
                .query(
                    "SELECT DISTINCT assignee FROM cases WHERE open AND assignee IS NOT NULL LIMIT 200",
                    &[],
                )
                .await?,
        );
        let categories = texts(
            client
                .query("SELECT DISTINCT category FROM cases", &[])
                .await?,
        );
        let mut buildings: Vec<String> = grid.building_codes().map(str::to_owned).collect();
        buildings.sort();
        let districts: Vec<String> = grid.districts().map(|c| c.code.clone()).collect();
        let communities: Vec<String> = grid
            .cells()
            .filter(|c| c.tier == wangge_schemas::Tier::Community)
            .map(|c| c.code.clone())
            .collect();
        anyhow::ensure!(!case_ids.is_empty(), "the read models hold no cases");
        anyhow::ensure!(!assignees.is_empty(), "no open case has an assignee");
        Ok(Self {
            cases,
            case_ids,
            buildings,
            districts,
            communities,
            assignees,
            categories,
        })
    }
}

/// Each kind of request with the URLs it cycles through.
fn request_kinds(samples: &Samples) -> Vec<(&'static str, Vec<String>)> {
    let today = Utc::now().date_naive();
    let days_ago = |n: u64| today.checked_sub_days(Days::new(n)).unwrap_or(today);
    let (from14, from30, from7) = (days_ago(13), days_ago(29), days_ago(6));
    let each = |values: &[String], make: &dyn Fn(&str) -> String| -> Vec<String> {
        values.iter().take(200).map(|v| make(v)).collect()
    };
    let step = (samples.buildings.len() / 200).max(1);
    let buildings: Vec<String> = samples.buildings.iter().step_by(step).cloned().collect();
    vec![
        (
            "/api/v1/board?group=district",
            vec!["/api/v1/board?group=district".into()],
        ),
        (
            "/api/v1/board?group=community",
            vec!["/api/v1/board?group=community".into()],
        ),
        (
            "/api/v1/board?group=cell",
            vec!["/api/v1/board?group=cell".into()],
        ),
        (
            "/api/v1/board?district=D&group=cell",
            each(&samples.districts, &|d| {
                format!("/api/v1/board?district={d}&group=cell")
            }),
        ),
        (
            "/api/v1/overdue?limit=50",
            vec!["/api/v1/overdue?limit=50".into()],
        ),
        (
            "/api/v1/overdue?community=C",
            each(&samples.communities, &|c| {
                format!("/api/v1/overdue?community={c}&limit=50")
            }),
        ),
        (
            "/api/v1/cases?building=B&limit=100",
            each(&buildings, &|b| {
                format!("/api/v1/cases?building={b}&limit=100")
            }),
        ),
        (
            "/api/v1/cases?limit=50",
            vec!["/api/v1/cases?limit=50".into()],
        ),
        (
            "/api/v1/cases?district=D&status=dispatched&category=K",
            samples
                .districts
                .iter()
                .flat_map(|d| {
                    samples.categories.iter().map(move |k| {
                        format!(
                            "/api/v1/cases?district={d}&status=dispatched&category={k}&limit=50"
                        )
                    })
                })
                .collect(),
        ),
        (
            "/api/v1/cases?community=C&open=true&reported_from=…",
            each(&samples.communities, &|c| {
                format!("/api/v1/cases?community={c}&open=true&reported_from={from30}T00:00:00Z&limit=50")
            }),
        ),
        (
            "/api/v1/cases/{id}",
            each(&samples.case_ids, &|id| format!("/api/v1/cases/{id}")),
        ),
        (
            "/api/v1/cases/{id}/audit",
            each(&samples.case_ids, &|id| format!("/api/v1/cases/{id}/audit")),
        ),
        (
            "/api/v1/cases/{id}/history",
            each(&samples.case_ids, &|id| {
                format!("/api/v1/cases/{id}/history")
            }),
        ),
        (
            "/api/v1/workers/{id}/inbox",
            each(&samples.assignees, &|w| {
                format!("/api/v1/workers/{w}/inbox")
            }),
        ),
        (
            "/api/v1/indicators (14 days, by day)",
            vec![format!(
                "/api/v1/indicators?from={from14}&to={today}&group=day"
            )],
        ),
        (
            "/api/v1/indicators (14 days, total)",
            vec![format!("/api/v1/indicators?from={from14}&to={today}")],
        ),
        (
            "/api/v1/indicators (30 days, by community of a district)",
            each(&samples.districts, &|d| {
                format!("/api/v1/indicators?from={from30}&to={today}&district={d}&group=community")
            }),
        ),
        (
            "/api/v1/ranking (30 days)",
            vec![format!(
                "/api/v1/ranking?from={from30}&to={today}&min_due=1&limit=5"
            )],
        ),
        (
            "/api/v1/patrols (7 days, a district)",
            each(&samples.districts, &|d| {
                format!("/api/v1/patrols?from={from7}&to={today}&district={d}")
            }),
        ),
        ("/api/v1/projections", vec!["/api/v1/projections".into()]),
    ]
}

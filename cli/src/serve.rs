//! `wangge serve`: the engine process. Opens the event, rejected, grid and SLA streams
//! (creating or updating them), folds the grid stream over the grid file and the SLA stream
//! over the SLA files (`--sla-dir`) until both have caught up, takes its share of the case
//! partitions, and runs intake, grid and SLA commands, the dispatcher, the SLA timers and
//! worker commands until interrupted; it warns at start-up and once a day while a business
//! calendar runs out within 45 days; on SIGTERM it drains intake, hands its
//! partitions back and stops. It also serves the HTTP API and the dashboard
//! (`--http-listen`) over the read models: in PostgreSQL with `--postgres-url` (and then runs
//! the projection runners, each projection active on one instance at a time), otherwise in
//! memory, folded from the log.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tracing::info;

use crate::seal::{engine_policy, SealKeyArgs};
use crate::{NatsArgs, ReferenceArgs};
use wangge_engine::app::{CaseService, LiveSlaTerms, SystemClock};
use wangge_engine::grid::GridStreamConfig;
use wangge_engine::grid::{serve_grid_commands, GridCommandService, GridFollower, SharedGrid};
use wangge_engine::intake::nats::serve_intake;
use wangge_engine::intake::rejected::RejectedLimits;
use wangge_engine::intake::throttle::{ThrottleLimits, ThrottledRejectedStore};
use wangge_engine::intake::{ClaimedTimeBounds, IntakeService, JetStreamRejectedStore};
use wangge_engine::log::JetStreamLogConfig;
use wangge_engine::nats::identity::{
    DEFAULT_GRID_ADMINS_ACCOUNT, DEFAULT_INTAKE_ACCOUNT, DEFAULT_WORKERS_ACCOUNT,
};
use wangge_engine::nats::{IdentityPolicy, PartyAccounts};
use wangge_engine::nats::{StreamGuard, StreamViolation};
use wangge_engine::runtime::dispatch_snapshot::dispatch_snapshot_store;
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::revisions::DeadlineRevisions;
use wangge_engine::runtime::timers::{
    SnapshotConfig, SnapshotStore, SnapshotStoreConfig, TimerBook, TimerService,
};
use wangge_engine::runtime::{LeaseConfig, PartitionLeases};
use wangge_engine::sla::SlaStreamConfig;
use wangge_engine::sla::{
    serve_sla_commands, watch_calendar_coverage, SharedSla, SlaCommandService, SlaFollower,
    COVERAGE_CHECK_EVERY,
};
use wangge_engine::tasks::inbox::{TaskPublisher, TaskPublisherConfig, TaskStreamConfig};
use wangge_engine::tasks::nats::serve_worker_commands;
use wangge_engine::tasks::{serve_worker_inbox, InboxService, WorkerCommandService};
use wangge_projections::http::{serve_http, ApiState};
use wangge_projections::postgres::{spawn_runners, ExclusiveRunnerConfig, PostgresReadModels};
use wangge_projections::runner::RunnerConfig;
use wangge_projections::{FoldContext, MemoryReadModels, ReadModels};

/// How long a starting API waits for its read replica to replay the schema the primary was
/// just migrated to.
const REPLICA_SCHEMA_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    reference: ReferenceArgs,
    /// This instance's name among the engine instances sharing the cases (default: host and
    /// process id).
    #[arg(long, env = "WANGGE_INSTANCE")]
    instance: Option<String>,
    /// Run only intake (no dispatcher, no timers): for a front-end-only instance.
    #[arg(long)]
    intake_only: bool,
    /// How often the holder of partition 0 replaces the SLA timer snapshot (object store
    /// bucket `wangge_timers`), in seconds; it is also written at a clean shutdown. A restart
    /// reads the snapshot and the log after it instead of the whole log.
    #[arg(
        long,
        env = "WANGGE_TIMER_SNAPSHOT_EVERY",
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    timer_snapshot_every: u64,
    /// Neither read nor write the SLA timer snapshot: rebuild the timers from the whole log.
    #[arg(long, env = "WANGGE_NO_TIMER_SNAPSHOT")]
    no_timer_snapshot: bool,
    /// How often the holder of partition 0 replaces the dispatcher's snapshot (worker loads
    /// and waiting cases; object store bucket `wangge_dispatcher`), in seconds. A restart reads
    /// the snapshot and the log after it instead of the whole log.
    #[arg(
        long,
        env = "WANGGE_DISPATCHER_SNAPSHOT_EVERY",
        default_value_t = 300,
        value_name = "SECONDS"
    )]
    dispatcher_snapshot_every: u64,
    /// Neither read nor write the dispatcher's snapshot: fold the whole log at start-up.
    #[arg(long, env = "WANGGE_NO_DISPATCHER_SNAPSHOT")]
    no_dispatcher_snapshot: bool,
    /// Intake refuses a report or evaluation whose claimed time (`reported_at`,
    /// `evaluated_at`) is more than this many minutes ahead of the engine's clock
    /// (`time_in_future`). Case clocks run from the engine's time of acceptance anyway.
    #[arg(
        long,
        env = "WANGGE_INTAKE_MAX_MINUTES_AHEAD",
        default_value_t = 5,
        value_name = "MINUTES"
    )]
    intake_max_minutes_ahead: u32,
    /// Intake flags a report whose claimed `reported_at` lies more than this many hours
    /// before acceptance (`backdated` in the event): accepted, but worth a look.
    #[arg(
        long,
        env = "WANGGE_INTAKE_FLAG_HOURS_BEHIND",
        default_value_t = 24,
        value_name = "HOURS"
    )]
    intake_flag_hours_behind: u32,
    /// Days a refused message is kept in the rejected stream (it may hold a resident's
    /// personal data).
    #[arg(
        long,
        env = "WANGGE_REJECTED_MAX_AGE_DAYS",
        default_value_t = 30,
        value_name = "DAYS"
    )]
    rejected_max_age_days: u32,
    /// The rejected stream's size; beyond it the oldest refused messages make room.
    #[arg(
        long,
        env = "WANGGE_REJECTED_MAX_MB",
        default_value_t = 256,
        value_name = "MB"
    )]
    rejected_max_mb: u32,
    /// Refused messages kept per sender (the NATS account and user, or all unproven senders
    /// together) per minute; beyond it they are counted and one in
    /// `--rejected-sample-one-in` is kept, so one sender cannot fill the rejected stream.
    #[arg(
        long,
        env = "WANGGE_REJECTED_PER_SENDER_PER_MINUTE",
        default_value_t = 600,
        value_name = "COUNT"
    )]
    rejected_per_sender_per_minute: u32,
    /// Beyond a sender's budget, keep one refused message in this many.
    #[arg(
        long,
        env = "WANGGE_REJECTED_SAMPLE_ONE_IN",
        default_value_t = 100,
        value_name = "N"
    )]
    rejected_sample_one_in: u32,
    /// Where a sender's identity comes from. `nats`: proven by the NATS server — workers,
    /// intake systems and grid administrators in accounts of their own reaching the engine
    /// through shared imports (deploy/nats/accounts.conf); a message without the server's
    /// `Nats-Request-Info` is refused. `claimed`: named in the message itself, so anyone may
    /// claim to be anyone — for a development server without accounts only.
    #[arg(long, env = "WANGGE_IDENTITY", value_enum, default_value_t = IdentitySource::Nats)]
    identity: IdentitySource,
    /// The NATS account of grid workers and supervisors (`--identity nats`).
    #[arg(long, env = "WANGGE_NATS_WORKERS_ACCOUNT", default_value = DEFAULT_WORKERS_ACCOUNT)]
    workers_account: String,
    /// The NATS account of intake systems (`--identity nats`).
    #[arg(long, env = "WANGGE_NATS_INTAKE_ACCOUNT", default_value = DEFAULT_INTAKE_ACCOUNT)]
    intake_account: String,
    /// The NATS account of grid and SLA administrators (`--identity nats`).
    #[arg(long, env = "WANGGE_NATS_GRID_ADMINS_ACCOUNT", default_value = DEFAULT_GRID_ADMINS_ACCOUNT)]
    grid_admins_account: String,
    /// Where the HTTP API, the dashboard and `/metrics` listen.
    #[arg(long, env = "WANGGE_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    http_listen: std::net::SocketAddr,
    /// PostgreSQL URL of the read models: when given, this instance also runs the
    /// projection runners (each projection active on one instance at a time).
    #[arg(long, env = "WANGGE_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// PostgreSQL URL of a read replica (a hot standby of `--postgres-url`'s server) that the
    /// HTTP API reads the read models from, sparing the primary the dashboards' queries. The
    /// projections, API keys and contact reveals stay on the primary; the live stream
    /// announces a commit once the replica shows it.
    #[arg(long, env = "WANGGE_POSTGRES_READ_URL", requires = "postgres_url")]
    postgres_read_url: Option<String>,
    /// The key every commit is sealed with (required: the engine never appends unsealed).
    #[command(flatten)]
    seal: SealKeyArgs,
    /// Earlier engines' public seal keys, for the audit trails the API serves (this
    /// engine's own key is always accepted): the keyring `wangge audit verify` reads.
    #[arg(long, env = "WANGGE_SEAL_PUBLIC_KEYS_FILE", value_name = "FILE")]
    seal_public_keys: Option<std::path::PathBuf>,
    /// Accept unsealed commits below this log position in the audit trails the API serves
    /// (a log written before sealing; as `wangge audit verify --allow-unsealed-before`).
    #[arg(long, env = "WANGGE_ALLOW_UNSEALED_BEFORE", value_name = "POSITION")]
    allow_unsealed_before: Option<u64>,
    /// The key-encryption key that wraps residents' data keys (`--kek-file`,
    /// `WANGGE_KEK_FILE` or `WANGGE_KEK`). Without one, reports are accepted without their
    /// contact details (never written in plain text) and contacts show as `[encrypted]`.
    #[command(flatten)]
    kek: crate::residents::KekArgs,
    /// Who may read the HTTP API: token keys, API keys, or (development only) nobody checked.
    /// (Boxed: the arguments of one subcommand should not make every other one as large.)
    #[command(flatten)]
    auth: Box<crate::auth::HttpAuthArgs>,
}

/// Where the engine takes a sender's identity from (`--identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdentitySource {
    /// Proven by the NATS server's accounts.
    Nats,
    /// Named in the message: development only.
    Claimed,
}

impl ServeArgs {
    fn identity_policy(&self) -> IdentityPolicy {
        match self.identity {
            IdentitySource::Nats => IdentityPolicy::Proven(PartyAccounts {
                workers: self.workers_account.clone(),
                intake: self.intake_account.clone(),
                grid_admins: self.grid_admins_account.clone(),
            }),
            IdentitySource::Claimed => IdentityPolicy::Claimed,
        }
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // No HTTP API without a way to check who is asking: refused before anything starts.
    args.auth.check()?;
    let identity = args.identity_policy();
    match &identity {
        IdentityPolicy::Claimed => {
            tracing::warn!("--identity claimed: every message names its own sender and is believed; anyone who can publish may act as any worker, system or administrator. Development only.");
            eprintln!("wangge: WARNING: --identity claimed — senders are not proven; do not run this way in production");
        }
        IdentityPolicy::Proven(accounts) => info!(
            workers = %accounts.workers,
            intake = %accounts.intake,
            grid_admins = %accounts.grid_admins,
            "senders proven by NATS (Nats-Request-Info of shared imports)"
        ),
    }
    let (grid_file, categories) = args.reference.load()?;
    // A bad SLA file stops the start here, naming the file, the JSON path and the reason.
    let sla_files = args.reference.sla.load()?;
    // The seal key before anything else: an engine that cannot seal must not append.
    let seal_key = Arc::new(args.seal.load()?);
    let seal_policy = engine_policy(
        &seal_key,
        args.seal_public_keys.as_deref(),
        args.allow_unsealed_before,
    )?;
    info!(key_id = seal_key.key_id(), "commits are sealed");
    let client = args.nats.connect().await?;
    let log = args
        .nats
        .open_log(client.clone())
        .await?
        .with_seal_key(seal_key);
    let rejected_limits = RejectedLimits {
        max_age: std::time::Duration::from_secs(u64::from(args.rejected_max_age_days) * 86_400),
        max_bytes: i64::from(args.rejected_max_mb) * 1024 * 1024,
        ..RejectedLimits::default()
    };
    let rejected = JetStreamRejectedStore::open_with_limits(
        client.clone(),
        args.nats.replicas(),
        rejected_limits,
    )
    .await?;
    // Residents' data keys: contacts sealed at intake, refused bodies sealed, contacts
    // masked on the read side. The KEK is checked before anything is served.
    let resident_keys = if args.kek.given() {
        let keys = args.kek.open(client.clone(), args.nats.replicas()).await?;
        info!(kek = keys.kek_id(), "resident key store ready");
        Some(keys)
    } else {
        tracing::warn!("no key-encryption key (--kek-file, WANGGE_KEK_FILE or WANGGE_KEK): residents' contact details are not kept");
        None
    };
    let rejected = match &resident_keys {
        Some(keys) => rejected.with_resident_keys(keys.clone()),
        None => rejected,
    };
    // One sender's flood cannot fill the store for everyone else.
    let rejected = ThrottledRejectedStore::new(
        rejected,
        ThrottleLimits {
            per_minute: args.rejected_per_sender_per_minute,
            sample_one_in: args.rejected_sample_one_in,
        },
    );
    let (districts, communities, buildings) = grid_file.counts();
    info!(
        city = grid_file.city(),
        districts,
        communities,
        buildings,
        workers = grid_file.worker_count(),
        categories = categories.len(),
        "reference data loaded"
    );
    let instance = args.instance.clone().unwrap_or_else(default_instance_name);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            stopping.wait_for(|stop| *stop).await.ok();
        }
    };

    // The live grid: the file, then every grid event on the grid stream. Nothing decides
    // anything before the grid has caught up with the stream as it is now.
    let grid_stream = args.nats.open_grid_stream(client.clone()).await?;
    let grid = SharedGrid::from(grid_file);
    // The live SLA data: the files (or the bundled data), then every publication on the SLA
    // stream. Each commit's clock is computed under it as it stands when the commit is
    // decided, districts' calendars from the live grid.
    let sla = SharedSla::new(sla_files);
    let cases = Arc::new(
        CaseService::new(log, Arc::new(SystemClock))
            .with_outage_policy(wangge_engine::app::OutagePolicy::SERVE)
            .with_sla_terms(Arc::new(LiveSlaTerms::new(
                sla.clone(),
                grid.clone(),
                categories.clone(),
            ))),
    );
    let mut follower = GridFollower::new(grid_stream.clone(), grid.clone());
    let position = follower.catch_up().await?;
    info!(
        position,
        workers = grid.load().worker_count(),
        on_duty = grid.load().on_duty_count(),
        "live grid ready"
    );
    let mut background = tokio::task::JoinSet::new();
    background.spawn(follower.run(stopped()));
    let grid_commands = Arc::new(
        GridCommandService::new(
            grid_stream,
            grid.clone(),
            rejected.clone(),
            Arc::new(SystemClock),
        )
        .with_identity(identity.clone()),
    );
    let (grid_client, until) = (client.clone(), stopped());
    background.spawn(async move {
        if let Err(error) = serve_grid_commands(grid_client, grid_commands, until).await {
            tracing::error!(%error, "grid commands stopped");
        }
    });

    // The live SLA data: the files, then every SLA event on the SLA stream, caught up before
    // anything computes a deadline, as for the grid.
    let sla_stream = args.nats.open_sla_stream(client.clone()).await?;

    // The log defends itself: the streams keep the settings just put in place, and an
    // append-only one keeps its first message; checked now and every 10 s, and the instance
    // stops, loudly, rather than serve stale data.
    let stream_guard = StreamGuard::baseline(
        async_nats::jetstream::new(client.clone()),
        &[
            (JetStreamLogConfig::default().stream_name.as_str(), true),
            (GridStreamConfig::default().stream_name.as_str(), true),
            (SlaStreamConfig::default().stream_name.as_str(), true),
            (JetStreamRejectedStore::STREAM, false),
        ],
    )
    .await
    .map_err(refuse_to_run)?;
    let (guard_alarm, guard_alarmed) = tokio::sync::oneshot::channel::<Vec<StreamViolation>>();
    let until = stopped();
    background.spawn(async move {
        if let Err(violations) = stream_guard.watch(StreamGuard::EVERY, until).await {
            guard_alarm.send(violations).ok();
        }
    });
    let mut sla_follower = SlaFollower::new(sla_stream.clone(), sla.clone());
    let sla_position = sla_follower.catch_up().await?;
    info!(
        position = sla_position,
        calendars = sla.load().calendars().ids().count(),
        policies = sla.load().policies().policies().count(),
        "live sla data ready"
    );
    background.spawn(sla_follower.run(stopped()));
    let sla_commands = Arc::new(
        SlaCommandService::new(
            sla_stream,
            sla.clone(),
            grid.clone(),
            categories.clone(),
            rejected.clone(),
            Arc::new(SystemClock),
        )
        .with_identity(identity.clone()),
    );
    let (sla_client, until) = (client.clone(), stopped());
    background.spawn(async move {
        if let Err(error) = serve_sla_commands(sla_client, sla_commands, until).await {
            tracing::error!(%error, "sla commands stopped");
        }
    });
    background.spawn(watch_calendar_coverage(
        sla.clone(),
        Arc::new(SystemClock),
        COVERAGE_CHECK_EVERY,
        stopped(),
    ));

    let http = tokio::net::TcpListener::bind(args.http_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for http on {}: {e}", args.http_listen))?;
    let http_address = http.local_addr()?;
    // The read models: in PostgreSQL (the projection runners below keep them), or in memory,
    // following the log from its start (nothing survives a restart: they are folded again).
    // The read side sees the live grid too: a cell added at run time shows on the board.
    let context = FoldContext::new(grid.clone(), categories.clone()).with_seal_policy(seal_policy);
    let mut postgres_api_keys: Option<Arc<dyn wangge_projections::http::ApiKeyStore>> = None;
    // What opens sealed contacts for the read side (masking, reveals): the key store.
    let opener = resident_keys
        .clone()
        .map(|keys| keys as Arc<dyn wangge_engine::residents::ContactOpener>);
    // Reveals of reporters' contacts are recorded in PostgreSQL: only with its read models.
    let mut reveals: Option<Arc<wangge_projections::residents::ContactReveals>> = None;
    let read_models: Arc<dyn ReadModels> = match &args.postgres_url {
        Some(url) => {
            let models = crate::connect_read_models(url, context).await?;
            postgres_api_keys = Some(Arc::new(
                wangge_projections::postgres::api_keys::PostgresApiKeys::new(models.pool().clone()),
            ));
            reveals = Some(Arc::new(
                wangge_projections::residents::ContactReveals::new(models.clone(), opener.clone()),
            ));
            if !args.intake_only {
                let runners = spawn_runners(
                    models.clone(),
                    cases.log().clone(),
                    ExclusiveRunnerConfig::default(),
                    stopped(),
                );
                background.spawn(runners.wait());
                info!(postgres = crate::redact(url), "running the projections");
            }
            match &args.postgres_read_url {
                Some(replica) => {
                    let served = PostgresReadModels::connect_replica(
                        replica,
                        url,
                        models.context().clone(),
                        REPLICA_SCHEMA_WAIT,
                    )
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("read replica at {}: {e}", crate::redact(replica))
                    })?;
                    info!(
                        replica = crate::redact(replica),
                        "the API reads from the replica"
                    );
                    served as Arc<dyn ReadModels>
                }
                None => models,
            }
        }
        None => {
            let models = MemoryReadModels::new(context);
            background.spawn(models.clone().follow(
                cases.log().clone(),
                RunnerConfig::default(),
                stopped(),
            ));
            models
        }
    };
    // Everything served shows residents' contacts masked (or `[encrypted]` without a KEK).
    let read_models: Arc<dyn ReadModels> =
        wangge_projections::residents::MaskedReadModels::new(read_models, opener);
    // Another instance's (or `wangge residents erase`'s) erasure reaches this cache at once.
    if let Some(keys) = &resident_keys {
        let (keys, until) = (keys.clone(), stopped());
        background.spawn(async move {
            if let Err(error) = keys.watch_erasures(until).await {
                tracing::warn!(%error, "erasure watch stopped: cached keys now expire by age only");
            }
        });
    }
    // Refused bodies sealed under a day's key: the key goes once the stream's retention
    // has passed, checked at start and every hour.
    if resident_keys.is_some() {
        let (sweeper, until) = (rejected.inner().clone(), stopped());
        background.spawn(async move {
            let sweep = async {
                loop {
                    if let Err(error) = sweeper.sweep_day_keys(chrono::Utc::now()).await {
                        tracing::warn!(%error, "rejected messages' day keys not swept");
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                }
            };
            tokio::select! {
                () = sweep => {}
                () = until => {}
            }
        });
    }
    let api = ApiState::new(
        read_models,
        grid.clone(),
        Arc::new(SystemClock),
        Arc::new(cases.log().clone()),
    )
    .with_sla(sla.clone())
    .with_authenticator(args.auth.authenticator(postgres_api_keys).await?);
    let api = match reveals {
        Some(reveals) => api.with_reveals(reveals),
        None => api,
    };
    let until = stopped();
    background.spawn(async move {
        if let Err(error) = serve_http(http, api, until).await {
            tracing::error!(%error, "http api stopped");
        }
    });
    if !args.intake_only {
        let leases = PartitionLeases::open(
            client.clone(),
            LeaseConfig {
                replicas: args.nats.replicas(),
                ..LeaseConfig::new(instance.clone())
            },
        )
        .await?;
        let ownership = leases.ownership();
        background.spawn(leases.run(stopped()));
        let tasks = TaskStreamConfig {
            replicas: args.nats.replicas(),
            ..Default::default()
        };
        // Workers' inboxes and their commands.
        let publisher = TaskPublisher::open(
            client.clone(),
            cases.log().clone(),
            TaskPublisherConfig {
                tasks,
                ..Default::default()
            },
        )
        .await?;
        let fast_path = publisher.fast_path();
        background.spawn(publisher.run(stopped()));
        let mut dispatcher = Dispatcher::new(cases.clone(), grid.clone(), categories.clone())
            .with_task_fast_path(fast_path);
        if !args.no_dispatcher_snapshot {
            let store = SnapshotStore::open(
                client.clone(),
                dispatch_snapshot_store(args.nats.replicas()),
            )
            .await?;
            dispatcher = dispatcher.with_snapshots(
                store,
                std::time::Duration::from_secs(args.dispatcher_snapshot_every.max(1)),
            );
        }
        let dispatcher = Arc::new(dispatcher);
        let until = stopped();
        let dispatcher_ownership = ownership.clone();
        background.spawn(async move {
            if let Err(error) = dispatcher.run(dispatcher_ownership, 1, until).await {
                tracing::error!(%error, "dispatcher stopped");
            }
        });
        let workers = Arc::new(
            WorkerCommandService::new(cases.clone(), grid.clone()).with_identity(identity.clone()),
        );
        let (worker_client, until) = (client.clone(), stopped());
        background.spawn(async move {
            if let Err(error) = serve_worker_commands(worker_client, workers, until).await {
                tracing::error!(%error, "worker commands stopped");
            }
        });
        let inbox = Arc::new(InboxService::new(
            client.clone(),
            TaskStreamConfig {
                replicas: args.nats.replicas(),
                ..Default::default()
            },
            identity.clone(),
        ));
        let (inbox_client, until) = (client.clone(), stopped());
        background.spawn(async move {
            if let Err(error) = serve_worker_inbox(inbox_client, inbox, until).await {
                tracing::error!(%error, "worker inbox stopped");
            }
        });
        let book = TimerBook::new(grid.clone(), categories.clone());
        let mut timers = TimerService::new(cases.clone(), book);
        if !args.no_timer_snapshot {
            let store = SnapshotStore::open(
                client.clone(),
                SnapshotStoreConfig {
                    replicas: args.nats.replicas(),
                    ..Default::default()
                },
            )
            .await?;
            timers = timers.with_snapshots(
                store,
                SnapshotConfig {
                    every: std::time::Duration::from_secs(args.timer_snapshot_every.max(1)),
                    ..Default::default()
                },
            );
        }
        let timers = Arc::new(timers);
        // When the SLA data changes (next year's holidays published, a calendar corrected),
        // the owned cases whose recorded deadlines it moves get a deadline revision.
        let revisions = DeadlineRevisions::new(cases.clone(), timers.clone(), sla.clone());
        background.spawn(revisions.run(ownership.clone(), stopped()));
        let until = stopped();
        background.spawn(async move {
            if let Err(error) = timers.run(Arc::new(SystemClock), ownership, until).await {
                tracing::error!(%error, "sla timers stopped");
            }
        });
    }

    let clock_bounds = ClaimedTimeBounds {
        max_ahead: chrono::Duration::minutes(args.intake_max_minutes_ahead.into()),
        flag_behind: chrono::Duration::hours(args.intake_flag_hours_behind.into()),
    };
    let service = IntakeService::new(cases, rejected, grid, categories)
        .with_clock_bounds(clock_bounds)
        .with_identity(identity.clone());
    let service = Arc::new(match resident_keys {
        Some(keys) => service.with_resident_keys(keys),
        None => service,
    });
    eprintln!(
        "wangge instance {instance} serving intake on {} (wangge.intake.<kind>), grid commands (wangge.grid.commands) and sla commands (wangge.sla.commands){}; dashboard and api on http://{http_address}/; Ctrl-C to stop",
        args.nats.shown_servers(),
        if args.intake_only {
            ""
        } else {
            ", dispatching its partitions"
        }
    );
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed_in_shutdown = failed.clone();
    serve_intake(client.clone(), service, async move {
        tokio::select! {
            signal = shutdown_signal() => info!(
                signal,
                "stopping: draining intake, finishing messages in hand"
            ),
            Ok(violations) = guard_alarmed => {
                for violation in &violations {
                    eprintln!("wangge: {violation}");
                }
                eprintln!(
                    "wangge: stopping: the engine's streams were changed outside it; restore \
                     them (from a backup if messages were lost) before starting again"
                );
                failed_in_shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        stop.send(true).ok();
    })
    .await?;
    while background.join_next().await.is_some() {}
    client.flush().await.ok();
    if failed.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// What `wangge serve` says when a stream it owns is wrong at start.
fn refuse_to_run(violations: Vec<StreamViolation>) -> anyhow::Error {
    let found: Vec<String> = violations.iter().map(ToString::to_string).collect();
    anyhow::anyhow!(
        "refusing to run: {}; restore the stream (from a backup if messages were lost) before \
         starting again",
        found.join("; ")
    )
}

fn default_instance_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "wangge".to_owned()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Ctrl-C or SIGTERM (what a process supervisor sends).
pub(crate) async fn shutdown_signal() -> &'static str {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                tokio::signal::ctrl_c().await.ok();
                return "interrupt";
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupt",
        _ = terminate.recv() => "terminate",
    }
}

//! A realistic history for the HTTP API and dashboard tests, and the server that serves it.
//!
//! [`Week`] runs the engine on a [`MemoryLog`] with a [`ManualClock`]: residents report in
//! buildings of two streets (街道) over five working days; the dispatcher (立案, 派遣) and
//! the SLA timers act as they do in production; workers acknowledge, handle and resolve,
//! supervisors verify, residents evaluate — some cases late, some reworked. On the last
//! morning ("today", Tuesday 2026-11-24) some workers ignore their new tasks, so the board
//! has warnings (yellow) and breaches (red). The read models follow the log with their
//! projection runners, and the API is served on a real TCP port.
#![allow(dead_code)]

use std::sync::{Arc, LazyLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::StreamExt;
use wangge_engine::app::{CaseService, Clock, CommandRequest, ManualClock};
use wangge_engine::domain::grid::AccessRole;
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::log::{EventLog, LogPosition, MemoryLog};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::timers::{Fired, TimerBook, TimerService};
use wangge_engine::runtime::Ownership;
use wangge_projections::http::auth::{generate_ed25519_pem, TokenSigner};
use wangge_projections::http::{
    serve_http, ApiKeyStore, ApiState, Authenticator, LiveSettings, TokenVerifier,
};
use wangge_projections::runner::RunnerConfig;
use wangge_projections::{FoldContext, MemoryReadModels, ReadModels};
use wangge_schemas::{
    Actor, CaseId, CaseReported, Channel, PatrolKind, ReportDetails, Resident, Source,
};

/// 学院公寓社区 and 浙大社区 of 翠苑街道, and one community of 文新街道.
pub const DISTRICT: &str = "330106001";
pub const OTHER_DISTRICT: &str = "330106002";
pub const COMMUNITY: &str = "330106001001";
/// The buildings the history happens in: (building, community, district).
pub const BUILDINGS: [&str; 8] = [
    "330106001001001",
    "330106001001002",
    "330106001001003",
    "330106001001004",
    "330106001002001",
    "330106001002002",
    "330106002001001",
    "330106002001002",
];
/// Today's ignored tasks, reported at 08:30: red (acknowledgement overdue) by 10:30.
pub const RED_BUILDINGS: [&str; 2] = ["330106001001001", "330106002001001"];
/// Today's ignored tasks, reported at 09:10: yellow (warning) from 10:46, red at 11:10.
pub const YELLOW_BUILDINGS: [&str; 2] = ["330106001001003", "330106001002001"];
/// Today's tasks that were acknowledged: green (the second in a community with nothing else open).
pub const GREEN_BUILDINGS: [&str; 2] = ["330106001001004", "330106002002001"];

const REPORTS: [(&str, &str); 3] = [
    ("12栋3单元1-6门口下水道堵塞", "drainage.blocked"),
    ("楼道灯坏了,晚上看不见台阶", "lighting.stairwell_light_out"),
    ("楼道堆放杂物,堵塞消防通道", "fire_safety.corridor_blocked"),
];

/// The tests' signing key (one per test process) and the verifier every served API uses.
pub static KEYS: LazyLock<(String, String)> =
    LazyLock::new(|| generate_ed25519_pem().expect("an Ed25519 key pair"));

pub fn signer() -> TokenSigner {
    TokenSigner::from_private_key_pem(&KEYS.0, "the tests' key").expect("the tests' key signs")
}

pub fn verifier() -> TokenVerifier {
    TokenVerifier::from_public_key_pem(&KEYS.1, "the tests' key").expect("the tests' key verifies")
}

/// A token for `sub` in `role` (the grid's role when `None`), valid for an hour. Tokens
/// carry real time: `exp` is checked against the system clock, not the week's.
pub fn token(sub: &str, role: Option<AccessRole>) -> String {
    signer()
        .issue(sub, role, Utc::now(), StdDuration::from_secs(3600))
        .expect("a token")
}

/// An auditor's token: reads everything.
pub fn auditor_token() -> String {
    static TOKEN: LazyLock<String> =
        LazyLock::new(|| token("auditor-1", Some(AccessRole::Auditor)));
    TOKEN.clone()
}

/// GET `url` as an auditor.
pub async fn authorized_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    get_with_token(url, &auditor_token()).await
}

/// GET `url` with `Authorization: Bearer <token>`.
pub async fn get_with_token(
    url: impl reqwest::IntoUrl,
    token: &str,
) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
}

/// Local time (UTC+8) on a day of November 2026, as UTC.
pub fn local(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, minute, 0)
        .single()
        .expect("a valid time")
        - Duration::hours(8)
}

pub fn worker_of(building: &str) -> String {
    format!("w-{building}")
}

/// One step of the scripted week.
enum Step {
    Report(&'static str, &'static str, &'static str),
    /// Acknowledge and start handling.
    Acknowledge(&'static str),
    /// Resolve, verify (failing once when `false`, then passing), evaluate.
    Resolve(&'static str, bool),
    Patrol(&'static str),
}

/// The engine on a memory log and a hand-moved clock, with the read models following it.
pub struct Week {
    pub clock: ManualClock,
    pub cases: Arc<CaseService<MemoryLog>>,
    pub grid: Arc<GridDirectory>,
    pub read_models: Arc<MemoryReadModels>,
    dispatcher: Arc<Dispatcher<MemoryLog>>,
    timers: Arc<TimerService<MemoryLog>>,
    seen: LogPosition,
    ownership: Ownership,
    messages: usize,
    stop_projections: tokio::sync::watch::Sender<bool>,
}

impl Week {
    pub fn new() -> Self {
        let clock = ManualClock::starting_at(local(18, 8, 0));
        let log = MemoryLog::new();
        let cases = Arc::new(CaseService::new(log.clone(), Arc::new(clock.clone())));
        let grid = Arc::new(GridDirectory::sample_city());
        let categories = Arc::new(CategoryCatalogue::sample());
        let dispatcher = Arc::new(Dispatcher::new(
            cases.clone(),
            grid.clone(),
            categories.clone(),
        ));
        let book = TimerBook::new(grid.clone(), categories.clone());
        let timers = Arc::new(TimerService::new(cases.clone(), book));
        let context = FoldContext::new(grid.clone(), categories);
        let read_models = MemoryReadModels::new(context);
        let (stop_projections, stopped) = tokio::sync::watch::channel(false);
        let follower = read_models.clone();
        tokio::spawn(async move {
            let mut stopped = stopped;
            follower
                .follow(log, RunnerConfig::default(), async move {
                    stopped.wait_for(|stop| *stop).await.ok();
                })
                .await;
        });
        Self {
            clock,
            cases,
            grid,
            read_models,
            dispatcher,
            timers,
            seen: 0,
            ownership: Ownership::everything(),
            messages: 0,
            stop_projections,
        }
    }

    /// Five working days, Wednesday 18th to Tuesday 24th at 10:50: the board ends with red,
    /// yellow and green cells, the indicators with closed cases, some late, some reworked.
    pub async fn realistic() -> Self {
        let mut week = Self::new();
        let mut plan = Vec::new();
        // Each working day with the one after the next.
        let days = [(18, 20), (19, 23), (20, 24), (23, 25)];
        for (day, after_next) in days {
            for slot in 0..6usize {
                let building = BUILDINGS[(slot + day as usize) % BUILDINGS.len()];
                let (title, category) = REPORTS[(slot + day as usize) % REPORTS.len()];
                let key = plan.len();
                let reported = local(day, 8, 40) + Duration::minutes(25 * slot as i64);
                let acknowledged = reported + Duration::minutes(50);
                plan.push((reported, key, Step::Report(building, title, category)));
                plan.push((acknowledged, key, Step::Acknowledge(building)));
                if slot % 3 == 2 {
                    // Resolved the morning after the next working day: past the one working
                    // day a high-priority report has (it ends with business on the next
                    // working day). Closed late, with the breach on record.
                    let late = local(after_next, 9, 0) + Duration::minutes(2 * slot as i64);
                    plan.push((late, key, Step::Resolve(building, true)));
                } else {
                    let resolved = local(day, 14, 0) + Duration::minutes(20 * slot as i64);
                    plan.push((resolved, key, Step::Resolve(building, slot != 1)));
                }
            }
            let patrolled = BUILDINGS[day as usize % BUILDINGS.len()];
            plan.push((local(day, 16, 0), usize::MAX, Step::Patrol(patrolled)));
        }
        // This morning: two tasks ignored since 08:30 (red from 10:30), two since 09:10
        // (yellow from 10:46), two acknowledged at once (green).
        for building in RED_BUILDINGS {
            plan.push((
                local(24, 8, 30),
                plan.len(),
                Step::Report(building, REPORTS[0].0, REPORTS[0].1),
            ));
        }
        for building in GREEN_BUILDINGS {
            let key = plan.len();
            plan.push((
                local(24, 8, 50),
                key,
                Step::Report(building, REPORTS[0].0, REPORTS[0].1),
            ));
            plan.push((local(24, 9, 20), key, Step::Acknowledge(building)));
        }
        for building in YELLOW_BUILDINGS {
            plan.push((
                local(24, 9, 10),
                plan.len(),
                Step::Report(building, REPORTS[2].0, REPORTS[2].1),
            ));
        }
        let end = local(24, 10, 50);
        plan.retain(|(at, _, _)| *at <= end);
        plan.sort_by_key(|(at, key, _)| (*at, *key));
        let mut opened = std::collections::HashMap::new();
        for (at, key, step) in plan {
            week.run_until(at).await;
            match step {
                Step::Report(building, title, category) => {
                    opened.insert(key, week.report(building, title, category).await);
                }
                Step::Acknowledge(_) => {
                    let case_id = opened[&key];
                    let worker = week.assignee(case_id).await;
                    week.act(
                        case_id,
                        CaseCommand::Acknowledge {
                            worker_id: worker.clone(),
                        },
                        Actor::grid_worker(&worker),
                    )
                    .await;
                    week.act(
                        case_id,
                        CaseCommand::StartHandling {
                            worker_id: worker.clone(),
                        },
                        Actor::grid_worker(&worker),
                    )
                    .await;
                }
                Step::Resolve(_, passes) => {
                    let case_id = opened[&key];
                    let worker = week.assignee(case_id).await;
                    week.resolve_and_verify(case_id, &worker, passes).await;
                }
                Step::Patrol(building) => week.patrol(building).await,
            }
        }
        week.run_until(end).await;
        week.caught_up().await;
        week
    }

    async fn resolve_and_verify(&mut self, case_id: CaseId, worker: &str, passes: bool) {
        self.act(
            case_id,
            CaseCommand::Resolve {
                worker_id: worker.to_owned(),
                notes: "已疏通并清理现场".into(),
                media: Vec::new(),
            },
            Actor::grid_worker(worker),
        )
        .await;
        let inspector = Actor::supervisor("inspector-330106001");
        self.act(
            case_id,
            CaseCommand::Verify {
                verifier: inspector.id.clone(),
                passed: passes,
                notes: Some(
                    if passes {
                        "现场核查通过"
                    } else {
                        "未彻底处理,返工"
                    }
                    .into(),
                ),
            },
            inspector.clone(),
        )
        .await;
        if !passes {
            // Reworked within the hour, then passed.
            self.clock.advance(Duration::minutes(40));
            self.act(
                case_id,
                CaseCommand::Resolve {
                    worker_id: worker.to_owned(),
                    notes: "返工完成".into(),
                    media: Vec::new(),
                },
                Actor::grid_worker(worker),
            )
            .await;
            self.act(
                case_id,
                CaseCommand::Verify {
                    verifier: inspector.id.clone(),
                    passed: true,
                    notes: Some("返工后核查通过".into()),
                },
                inspector,
            )
            .await;
        }
        self.act(
            case_id,
            CaseCommand::Evaluate {
                satisfaction: if passes { 5 } else { 3 },
                comment: None,
                resolved: None,
                level: None,
                channel: None,
            },
            Actor::resident("r-1024"),
        )
        .await;
    }

    /// A resident's report in a building; the dispatcher accepts and dispatches it.
    pub async fn report(&mut self, building: &str, title: &str, category: &str) -> CaseId {
        let case_id = CaseId::new_v7();
        let location = self
            .grid
            .locate_building(building)
            .expect("the building is in the sample city")
            .clone();
        self.messages += 1;
        let report = CaseReported {
            intake_clock: None,
            title: title.into(),
            description: format!("{title}。请尽快处理。"),
            reported_category: category.into(),
            media: Vec::new(),
            coordinates: None,
            details: ReportDetails::ResidentReport {
                channel: Channel::Hotline12345,
                resident: Resident {
                    id: format!("r-{}", 1000 + self.messages),
                    contact: None,
                    legacy_contact: None,
                },
            },
        };
        let resident = Actor::resident(&format!("r-{}", 1000 + self.messages));
        self.act(case_id, CaseCommand::Report { location, report }, resident)
            .await;
        case_id
    }

    /// A grid worker's patrol finding, fixed on the spot.
    async fn patrol(&mut self, building: &str) {
        let case_id = CaseId::new_v7();
        let worker = worker_of(building);
        let location = self.grid.locate_building(building).expect("known").clone();
        let report = CaseReported {
            intake_clock: None,
            title: "楼道堆放杂物,已现场清理".into(),
            description: "日常巡查发现楼道堆物,已督促清理".into(),
            reported_category: "fire_safety.corridor_blocked".into(),
            media: Vec::new(),
            coordinates: None,
            details: ReportDetails::PatrolFinding {
                worker_id: worker.clone(),
                patrol_kind: PatrolKind::Daily,
                fixed_on_spot: true,
            },
        };
        self.act(
            case_id,
            CaseCommand::Report { location, report },
            Actor::grid_worker(&worker),
        )
        .await;
        // The dispatcher closes a finding fixed on the spot (自处理) by itself.
    }

    /// Runs one command now, and lets the engine's actors react.
    pub async fn act(&mut self, case_id: CaseId, command: CaseCommand, actor: Actor) {
        self.messages += 1;
        let what = command.name();
        self.cases
            .handle(CommandRequest {
                case_id,
                command,
                actor,
                source: Source {
                    system: "week".into(),
                    message_id: format!("week-{}", self.messages),
                },
                occurred_at: None,
                correlation_id: None,
                causation_id: None,
            })
            .await
            .unwrap_or_else(|error| panic!("{what} on {case_id}: {error}"));
        self.settle().await;
    }

    /// Every new commit to the dispatcher and the timers, the dispatcher acting on what
    /// waits, timers firing what is due now; until quiet.
    async fn settle(&mut self) {
        loop {
            let head = self.cases.log().head().await.expect("memory log head");
            if head == self.seen {
                let fired = self
                    .timers
                    .fire_due(self.clock.now(), &self.ownership)
                    .await;
                let wrote = fired.iter().any(|(_, f)| matches!(f, Fired::Written(_)));
                if !wrote && self.cases.log().head().await.expect("head") == self.seen {
                    return;
                }
                continue;
            }
            let mut commits = self
                .cases
                .log()
                .read_from(self.seen + 1)
                .take((head - self.seen) as usize);
            while let Some(commit) = commits.next().await {
                let commit = commit.expect("memory log commit");
                self.seen = commit.position;
                self.dispatcher.observe(&commit);
                self.timers.observe(&commit).await;
                if Dispatcher::<MemoryLog>::needs_dispatcher(&commit) {
                    self.dispatcher
                        .act(commit.case_id)
                        .await
                        .expect("the dispatcher acts");
                }
            }
        }
    }

    /// Moves the clock to `until` in 5-minute steps, letting the engine act at each.
    pub async fn run_until(&mut self, until: DateTime<Utc>) {
        while self.clock.now() < until {
            let next = (self.clock.now() + Duration::minutes(5)).min(until);
            self.clock.set(next);
            self.settle().await;
        }
    }

    /// Who holds a case now.
    pub async fn assignee(&self, case_id: CaseId) -> String {
        let events = self.events_of(case_id).await;
        wangge_engine::domain::replay(&events)
            .assignee
            .unwrap_or_else(|| panic!("case {case_id} has no assignee"))
    }

    /// The position of the newest commit in the log.
    pub async fn head(&self) -> LogPosition {
        self.cases.log().head().await.expect("memory log head")
    }

    /// A case's events as the log holds them.
    pub async fn events_of(&self, case_id: CaseId) -> Vec<wangge_schemas::EventEnvelope> {
        self.cases
            .log()
            .load(case_id)
            .await
            .expect("memory log")
            .events
    }

    /// Waits until every projection has folded the whole log.
    pub async fn caught_up(&self) {
        let head = self.cases.log().head().await.expect("head");
        let mut progress = self.read_models.subscribe();
        let wait = async {
            loop {
                let checkpoints = self.read_models.checkpoints().await.expect("checkpoints");
                if checkpoints.iter().all(|c| c.position >= head) {
                    return;
                }
                // A commit of any projection: look again.
                let _ = progress.recv().await;
            }
        };
        tokio::time::timeout(StdDuration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("the read models did not reach log head {head}"));
    }

    /// Serves the API on a free local port with the week's clock; returns its base URL.
    pub async fn serve(&self) -> Served {
        self.serve_with(LiveSettings::default()).await
    }

    pub async fn serve_with(&self, live: LiveSettings) -> Served {
        self.serve_with_auth(live, Authenticator::new(Some(verifier()), None))
            .await
    }

    /// Serves with the tests' token key and API keys from `keys`.
    pub async fn serve_with_api_keys(&self, keys: Arc<dyn ApiKeyStore>) -> Served {
        self.serve_with_auth(
            LiveSettings::default(),
            Authenticator::new(Some(verifier()), Some(keys)),
        )
        .await
    }

    pub async fn serve_with_auth(
        &self,
        live: LiveSettings,
        authenticator: Authenticator,
    ) -> Served {
        let state = ApiState::with_live_settings(
            self.read_models.clone(),
            self.grid.clone(),
            Arc::new(self.clock.clone()),
            Arc::new(self.cases.log().clone()),
            live,
        )
        .with_authenticator(authenticator);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let address = listener.local_addr().expect("local address");
        let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_http(listener, state, async move {
            stopping.await.ok();
        }));
        Served {
            base: format!("http://{address}"),
            stop: Some(stop),
            server,
        }
    }
}

impl Drop for Week {
    fn drop(&mut self) {
        self.stop_projections.send_replace(true);
    }
}

/// A running API server; stopped on drop.
pub struct Served {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and waits until it has finished.
    pub async fn shut_down(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        (&mut self.server).await.expect("the server task")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

/// The clock of a history, for checks against "now".
pub fn now_of(week: &Week) -> DateTime<Utc> {
    week.clock.now()
}

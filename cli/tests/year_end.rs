//! The year end, as an operator lives it four weeks before 2027: a deadline that runs past
//! the last published holiday is provisional and the engine warns that the calendar runs out;
//! publishing the next year's schedule (here a test calendar, clearly labelled — the real
//! 2027 schedule is not invented) revises the deadline with an event; the read models show
//! the new one; and a full rebuild of every projection equals the live read models, row by
//! row, although the calendar changed after the events were written.
//!
//! The engine's parts run as `wangge serve` wires them (live SLA data on its stream, SLA
//! commands, timers, deadline revisions, projections in PostgreSQL, the HTTP API), on a clock
//! set to Wednesday 2026-12-30; the operator uses the real `wangge` binary.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use wangge_engine::app::{CaseService, CommandRequest, LiveSlaTerms, ManualClock, SystemClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{
    serve_grid_commands, CategoryCatalogue, GridCommandService, GridFollower, GridState,
    GridStream, GridStreamConfig, SharedGrid,
};
use wangge_engine::intake::JetStreamRejectedStore;
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_engine::runtime::revisions::DeadlineRevisions;
use wangge_engine::runtime::timers::{TimerBook, TimerService};
use wangge_engine::runtime::Ownership;
use wangge_engine::sla::{
    serve_sla_commands, SharedSla, SlaCommandService, SlaFollower, SlaStream, SlaStreamConfig,
};
use wangge_projections::http::{serve_http, ApiState};
use wangge_projections::postgres::schema::all_tables;
use wangge_projections::postgres::{spawn_runners, ExclusiveRunnerConfig};
use wangge_projections::query::ReadModels;
use wangge_projections::{FoldContext, PostgresReadModels, PROJECTION_NAMES};
use wangge_schemas::{
    Actor, CaseEvent, CaseId, CaseReported, Channel, GridLocation, Priority, ReportDetails,
    Resident, Source, Tier,
};
use wangge_testkit::{NatsServer, TestDatabase};

const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");
const DISTRICT: &str = "330106001";
const COMMUNITY: &str = "330106001001";
const BUILDING: &str = "330106001001004";
const WORKER: &str = "cw-330106001001-a";

fn beijing(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .expect("+08:00")
        .with_ymd_and_hms(year, month, day, hour, minute, 0)
        .single()
        .expect("a valid Beijing time")
        .with_timezone(&Utc)
}

fn wangge(args: &[&str], nats_url: &str) -> Output {
    Command::new(WANGGE)
        .args(args)
        .env("WANGGE_NATS_URL", nats_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the wangge binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn request(case_id: CaseId, command: CaseCommand, message_id: &str) -> CommandRequest {
    CommandRequest {
        case_id,
        command,
        actor: Actor::system("test"),
        source: Source {
            system: "year-end-test".to_owned(),
            message_id: message_id.to_owned(),
        },
        occurred_at: None,
        correlation_id: None,
        causation_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_across_the_year_end_is_provisional_until_the_next_schedule_is_published() {
    let server = NatsServer::start();
    let client = server.connect().await;
    let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default())
        .await
        .unwrap();
    let grid = SharedGrid::new(GridState::sample_city());
    let categories = Arc::new(CategoryCatalogue::sample());

    // The live grid on its stream, and grid commands.
    let grid_stream = GridStream::open(client.clone(), GridStreamConfig::default())
        .await
        .unwrap();
    let mut grid_follower = GridFollower::new(grid_stream.clone(), grid.clone());
    grid_follower.catch_up().await.unwrap();
    tokio::spawn(grid_follower.run(std::future::pending()));
    let grid_rejected = JetStreamRejectedStore::open(client.clone(), 1)
        .await
        .unwrap();
    let grid_commands = Arc::new(GridCommandService::new(
        grid_stream,
        grid.clone(),
        grid_rejected,
        Arc::new(SystemClock),
    ));
    tokio::spawn(serve_grid_commands(
        client.clone(),
        grid_commands,
        std::future::pending(),
    ));

    // The live SLA data (the bundled 2026 calendar, published through 2026-12-31) on its
    // stream, and the SLA commands an operator publishes to.
    let stream = SlaStream::open(client.clone(), SlaStreamConfig::default())
        .await
        .unwrap();
    let sla = SharedSla::bundled();
    let mut follower = SlaFollower::new(stream.clone(), sla.clone());
    follower.catch_up().await.unwrap();
    tokio::spawn(follower.run(std::future::pending()));
    let rejected = JetStreamRejectedStore::open(client.clone(), 1)
        .await
        .unwrap();
    let commands = Arc::new(SlaCommandService::new(
        stream,
        sla.clone(),
        grid.clone(),
        categories.clone(),
        rejected,
        Arc::new(SystemClock),
    ));
    tokio::spawn(serve_sla_commands(
        client.clone(),
        commands,
        std::future::pending(),
    ));

    // The engine, on Wednesday 2026-12-30 at 10:00.
    let clock = ManualClock::starting_at(beijing(2026, 12, 30, 10, 0));
    let cases = Arc::new(
        CaseService::new(log.clone(), Arc::new(clock.clone())).with_sla_terms(Arc::new(
            LiveSlaTerms::new(sla.clone(), grid.clone(), categories.clone()),
        )),
    );
    let timers = Arc::new(TimerService::new(
        cases.clone(),
        TimerBook::new(grid.clone(), categories.clone()),
    ));
    tokio::spawn(timers.clone().run(
        Arc::new(clock.clone()),
        Ownership::everything(),
        std::future::pending(),
    ));
    tokio::spawn(
        DeadlineRevisions::new(cases.clone(), timers.clone(), sla.clone())
            .run(Ownership::everything(), std::future::pending()),
    );
    let live = TestDatabase::create().await;
    let models = PostgresReadModels::connect(&live.url(), FoldContext::bundled())
        .await
        .unwrap();
    let _runners = spawn_runners(
        models.clone(),
        log.clone(),
        ExclusiveRunnerConfig::default(),
        std::future::pending(),
    );
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", http.local_addr().unwrap());
    let state = ApiState::new(
        models.clone(),
        grid.clone(),
        Arc::new(clock.clone()),
        Arc::new(log.clone()),
    )
    .with_sla(sla.clone());
    // The API as served: tokens checked; the test reads as an auditor.
    let (signing_pem, public_pem) = wangge_projections::http::auth::generate_ed25519_pem().unwrap();
    let state = state.with_authenticator(wangge_projections::http::Authenticator::new(
        Some(
            wangge_projections::http::TokenVerifier::from_public_key_pem(&public_pem, "test")
                .unwrap(),
        ),
        None,
    ));
    let token =
        wangge_projections::http::auth::TokenSigner::from_private_key_pem(&signing_pem, "test")
            .unwrap()
            .issue(
                "auditor",
                Some(wangge_engine::domain::grid::AccessRole::Auditor),
                chrono::Utc::now(),
                std::time::Duration::from_secs(3600),
            )
            .unwrap();
    let http_client = reqwest::Client::new();
    let authorized_get = |url: String| http_client.get(url).bearer_auth(&token).send();
    tokio::spawn(serve_http(http, state, std::future::pending()));

    // A resident asks for social assistance (社会救助, high priority: 3 working days). It is
    // accepted, dispatched and acknowledged at 10:00 on Wednesday 2026-12-30.
    let case = CaseId(uuid::Uuid::from_u128(0x2026_1230));
    let report = CaseReported {
        intake_clock: None,
        title: "申请社会救助".to_owned(),
        description: "家中老人重病,申请临时救助".to_owned(),
        reported_category: "service.social_assistance".to_owned(),
        media: Vec::new(),
        coordinates: None,
        details: ReportDetails::ServiceRequest {
            channel: Channel::InPerson,
            resident: Resident {
                id: "resident-1230".to_owned(),
                contact: None,
                legacy_contact: None,
            },
        },
    };
    let location = GridLocation {
        district: DISTRICT.to_owned(),
        community: COMMUNITY.to_owned(),
        building: BUILDING.to_owned(),
    };
    let steps = [
        CaseCommand::Report { location, report },
        CaseCommand::AcceptAndDispatch {
            category: "service.social_assistance".to_owned(),
            priority: Priority::High,
            tier: Tier::Community,
            cell: COMMUNITY.to_owned(),
            assignee: WORKER.to_owned(),
        },
        CaseCommand::Acknowledge {
            worker_id: WORKER.to_owned(),
        },
    ];
    let mut last = None;
    for (n, command) in steps.into_iter().enumerate() {
        last = Some(
            cases
                .handle(request(case, command, &format!("step-{n}")))
                .await
                .unwrap(),
        );
    }
    // Three working days from Wednesday: Thursday 31st, then Friday 1st and Monday 4th —
    // days past the published holidays, counted on the weekly hours alone.
    let acknowledged = last.unwrap();
    let clock_2026 = acknowledged.events[0]
        .sla_clock
        .clone()
        .expect("the acknowledgement records the handling clock");
    assert_eq!(clock_2026.deadline, Some(beijing(2027, 1, 4, 17, 30)));
    assert!(clock_2026.provisional, "{clock_2026:?}");
    assert_eq!(
        clock_2026.calendar.holidays_published_through,
        chrono::NaiveDate::from_ymd_opt(2026, 12, 31)
    );
    let view = eventually(
        "the read model to show the provisional deadline",
        async || {
            let view = models.case(case).await.ok()??;
            (view.sla.deadline == clock_2026.deadline).then_some(view)
        },
    )
    .await;
    assert!(view.sla.provisional);

    // The operator is warned: by `wangge sla status` and in /metrics.
    let status = wangge(&["sla", "status", "--today", "2026-12-30"], &server.url());
    assert!(status.status.success(), "{}", text(&status.stderr));
    let status_text = text(&status.stdout);
    assert!(
        status_text.to_lowercase().contains("warning") && status_text.contains("cn"),
        "{status_text}"
    );
    let metrics = authorized_get(format!("{api}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("wangge_sla_calendar_expiring{calendar=\"cn\"} 1"),
        "{metrics}"
    );
    let provisional_gauge = format!("wangge_sla_provisional_open_cases{{district=\"{DISTRICT}\"}}");
    assert!(
        metrics.contains(&format!("{provisional_gauge} 1\n")),
        "{metrics}"
    );
    // The API lists the provisional case.
    let listed: serde_json::Value = authorized_get(format!("{api}/api/v1/cases?provisional=true"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed_ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["case_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed_ids, [case.to_string()], "{listed}");

    // The timers hold the case before the schedule comes (a revision is theirs to find).
    let head = log.head().await.unwrap();
    eventually("the timers to read the log", async || {
        (timers.position().await >= head).then_some(())
    })
    .await;

    // The operator publishes the 2027 schedule (a test calendar: New Year off Jan 1–3).
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-calendar-2027.json");
    let published = wangge(&["sla", "publish", file.to_str().unwrap()], &server.url());
    assert!(
        published.status.success(),
        "{}{}",
        text(&published.stdout),
        text(&published.stderr)
    );

    // The deadline is revised with an event naming the old, the new and why.
    let revised = eventually("the deadline revision", async || {
        let history = log.load(case).await.ok()?;
        history.events.iter().find_map(|event| match &event.event {
            CaseEvent::DeadlineRevised(revised) => Some((**revised).clone()),
            _ => None,
        })
    })
    .await;
    assert_eq!(revised.previous_deadline, Some(beijing(2027, 1, 4, 17, 30)));
    // Thursday 31st, Monday 4th, Tuesday 5th.
    assert_eq!(revised.clock.deadline, Some(beijing(2027, 1, 5, 17, 30)));
    assert!(!revised.clock.provisional);
    assert!(revised.reason.contains("calendar"), "{}", revised.reason);

    // The board and the API show the new one.
    eventually("the read model to show the revised deadline", async || {
        let view = models.case(case).await.ok()??;
        (view.sla.deadline == revised.clock.deadline && !view.sla.provisional).then_some(())
    })
    .await;
    let body: serde_json::Value = authorized_get(format!("{api}/api/v1/cases/{case}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["sla"]["deadline"],
        serde_json::json!(beijing(2027, 1, 5, 17, 30))
    );
    assert_eq!(body["sla"]["provisional"], serde_json::json!(false));
    // Nothing provisional is left: not in the list, and the gauge drops to 0.
    let listed: serde_json::Value = authorized_get(format!("{api}/api/v1/cases?provisional=true"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");
    let metrics = authorized_get(format!("{api}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("{provisional_gauge} 0\n")),
        "{metrics}"
    );

    // The grid changes too: a new building cell and a worker's duty (the examples of the
    // grid command contract).
    let examples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples/grid/commands");
    let grid_position = grid.position();
    for example in ["grid.cell_added.json", "grid.worker_duty_changed.json"] {
        let command = examples.join(example);
        let published = wangge(
            &["grid", "publish", command.to_str().unwrap()],
            &server.url(),
        );
        assert!(
            published.status.success(),
            "{example}: {}{}",
            text(&published.stdout),
            text(&published.stderr)
        );
    }
    assert_eq!(
        grid.position(),
        grid_position + 2,
        "both grid changes are live"
    );

    // A full rebuild, after the calendar and the grid changed, equals the live read models
    // row by row: what the folds need was in the events.
    let head = log.head().await.unwrap();
    eventually("the live projections to catch up", async || {
        let checkpoints = models.checkpoints().await.ok()?;
        checkpoints
            .iter()
            .all(|checkpoint| checkpoint.position == head)
            .then_some(())
    })
    .await;
    let fresh = TestDatabase::create().await;
    for name in PROJECTION_NAMES {
        let rebuilt = Command::new(WANGGE)
            .args(["projections", "rebuild", name])
            .env("WANGGE_NATS_URL", server.url())
            .env("WANGGE_POSTGRES_URL", fresh.url())
            .output()
            .unwrap();
        assert!(
            rebuilt.status.success(),
            "rebuild {name}: {}",
            text(&rebuilt.stderr)
        );
    }
    for table in all_tables() {
        assert_eq!(
            live.rows(table).await,
            fresh.rows(table).await,
            "the rows of {table}"
        );
    }
}

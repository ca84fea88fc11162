//! The grid of running engines changes by grid commands over NATS, on a real nats-server: a
//! worker put off duty or registered changes who the next case goes to, a new building takes
//! reports at once, every instance sees every change, a bad command is refused with its own
//! error and changes nothing, racing changes are never both checked against the same grid,
//! and a restarted engine rebuilds the same grid from the file and the grid stream.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::JoinHandle;
use wangge_engine::app::{CaseService, SystemClock};
use wangge_engine::grid::{
    serve_grid_commands, CategoryCatalogue, GridCommandService, GridFollower, GridState,
    GridStream, GridStreamConfig, LiveGrid, SharedGrid, GRID_COMMAND_SUBJECT,
};
use wangge_engine::intake::nats::serve_intake;
use wangge_engine::intake::{IntakeService, JetStreamRejectedStore, RejectedStore};
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_engine::runtime::dispatcher::Dispatcher;
use wangge_engine::runtime::Ownership;
use wangge_engine::tasks::commands::SupervisorDirectory;
use wangge_schemas::grid::GridReply;
use wangge_schemas::intake::IntakeReply;
use wangge_schemas::{CaseEvent, CaseId};
use wangge_testkit::NatsServer;

use support::{eventually, within};

/// 学院公寓社区 2栋: its grid worker `w-330106001001001` is on duty and takes blocked drains.
const BUILDING: &str = "330106001001001";
const COMMUNITY: &str = "330106001001";
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// An engine instance: the live grid and its follower, grid commands, intake, and (when
// asked) the dispatcher, all on one real nats-server
// ---------------------------------------------------------------------------------------

struct Engine {
    grid: SharedGrid,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    async fn start(server: &NatsServer, dispatching: bool) -> Self {
        Self::start_with(server, dispatching, GridStreamConfig::default()).await
    }

    async fn start_with(server: &NatsServer, dispatching: bool, config: GridStreamConfig) -> Self {
        let client = server.connect().await;
        let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default())
            .await
            .expect("open the event log");
        let cases = Arc::new(CaseService::new(log, Arc::new(SystemClock)));
        let rejected = JetStreamRejectedStore::open(client.clone(), 1)
            .await
            .expect("open the rejected store");
        let stream = GridStream::open(client.clone(), config)
            .await
            .expect("open the grid stream");
        let grid = SharedGrid::new(GridState::sample_city());
        let mut follower = GridFollower::new(stream.clone(), grid.clone());
        within("the grid to catch up", WAIT, follower.catch_up())
            .await
            .expect("catch up with the grid stream");
        let categories = Arc::new(CategoryCatalogue::sample());
        let mut tasks = vec![tokio::spawn(follower.run(std::future::pending()))];
        let commands = Arc::new(GridCommandService::new(
            stream,
            grid.clone(),
            rejected.clone(),
            Arc::new(SystemClock),
        ));
        tasks.push(tokio::spawn({
            let client = client.clone();
            async move {
                serve_grid_commands(client, commands, std::future::pending())
                    .await
                    .expect("serve grid commands");
            }
        }));
        let intake = Arc::new(IntakeService::new(
            cases.clone(),
            rejected,
            grid.clone(),
            categories.clone(),
        ));
        tasks.push(tokio::spawn({
            let client = client.clone();
            async move {
                serve_intake(client, intake, std::future::pending())
                    .await
                    .expect("serve intake");
            }
        }));
        if dispatching {
            let dispatcher = Arc::new(Dispatcher::new(cases, grid.clone(), categories));
            tasks.push(tokio::spawn(async move {
                dispatcher
                    .run(Ownership::everything(), 1, std::future::pending())
                    .await
                    .ok();
            }));
        }
        Self { grid, tasks }
    }

    /// The instance stops where it is (its subscriptions go with it).
    fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    fn live(&self) -> Arc<LiveGrid> {
        self.grid.snapshot()
    }
}

/// An operator's tool or another system, on its own connection.
struct Sender {
    client: async_nats::Client,
}

impl Sender {
    async fn new(server: &NatsServer) -> Self {
        Self {
            client: server.connect().await,
        }
    }

    /// Request-reply, sent again while no engine listens yet (as a careful sender does).
    async fn request(&self, subject: &str, body: Vec<u8>) -> Vec<u8> {
        eventually("an engine to answer", WAIT, || {
            let body = body.clone();
            async move {
                match self.client.request(subject.to_owned(), body.into()).await {
                    Ok(message) => Some(message.payload.to_vec()),
                    Err(error) => {
                        assert!(
                            error.to_string().contains("no responders"),
                            "request failed: {error}"
                        );
                        None
                    }
                }
            }
        })
        .await
    }

    async fn grid(&self, command: &Value) -> GridReply {
        self.grid_bytes(serde_json::to_vec(command).expect("serialize"))
            .await
    }

    async fn grid_bytes(&self, body: Vec<u8>) -> GridReply {
        let reply = self.request(GRID_COMMAND_SUBJECT, body).await;
        serde_json::from_slice(&reply).expect("a grid reply")
    }

    async fn report(&self, message_id: &str, building: &str) -> IntakeReply {
        let body = serde_json::to_vec(&blocked_drain(message_id, building)).expect("serialize");
        let reply = self.request("wangge.intake.resident_report", body).await;
        serde_json::from_slice(&reply).expect("an intake reply")
    }

    async fn reported_case(&self, message_id: &str, building: &str) -> CaseId {
        match self.report(message_id, building).await {
            IntakeReply::Accepted { case_id, .. } => case_id,
            other => panic!("report {message_id} refused: {other:?}"),
        }
    }
}

fn command(message_id: &str, event_type: &str, payload: Value) -> Value {
    json!({
        "event_type": event_type,
        "schema_version": 1,
        "source": {"system": "grid-admin", "message_id": message_id},
        "actor": {"kind": "supervisor", "id": "sup-330106001001"},
        "payload": payload,
    })
}

fn duty(message_id: &str, worker_id: &str, on_duty: bool) -> Value {
    command(
        message_id,
        "grid.worker_duty_changed",
        json!({"worker_id": worker_id, "on_duty": on_duty}),
    )
}

fn new_building(message_id: &str, code: &str) -> Value {
    command(
        message_id,
        "grid.cell_added",
        json!({"tier": "building", "code": code, "name": "13栋", "parent": COMMUNITY,
               "supervisor": format!("sup-{code}")}),
    )
}

fn register(message_id: &str, worker_id: &str, cells: &[&str]) -> Value {
    command(
        message_id,
        "grid.worker_registered",
        json!({"worker": {"id": worker_id, "name": "周晓燕", "cells": cells,
                          "skills": ["drainage", "sanitation"], "on_duty": true}}),
    )
}

fn blocked_drain(message_id: &str, building: &str) -> Value {
    json!({
        "kind": "resident_report",
        "schema_version": 1,
        "source": {"system": "miniprogram", "message_id": message_id},
        "reported_at": "2026-03-12T08:15:42+08:00",
        "building": building,
        "channel": "mini_program",
        "resident": {"id": "wx-oU7x2kQ9dLr3"},
        "title": "下水道堵塞",
        "description": "单元门口下水道堵塞,污水外溢",
        "category": "drainage.blocked"
    })
}

fn accepted_position(reply: &GridReply) -> u64 {
    match reply {
        GridReply::Accepted { position, .. } => *position,
        other => panic!("expected the grid command to be accepted, got {other:?}"),
    }
}

/// Whom the case was dispatched to, once it is.
async fn dispatched_to(log: &JetStreamLog, case_id: CaseId) -> String {
    eventually("the case to be dispatched", WAIT, || async move {
        let history = log.load(case_id).await.ok()?;
        history
            .events
            .iter()
            .rev()
            .find_map(|event| match &event.event {
                CaseEvent::Dispatched(dispatched) => Some(dispatched.assignee.clone()),
                _ => None,
            })
    })
    .await
}

async fn reader_log(server: &NatsServer) -> JetStreamLog {
    JetStreamLog::open(server.connect().await, JetStreamLogConfig::default())
        .await
        .expect("open the event log")
}

async fn grid_stream(server: &NatsServer) -> GridStream {
    GridStream::open(server.connect().await, GridStreamConfig::default())
        .await
        .expect("open the grid stream")
}

// ---------------------------------------------------------------------------------------
// Business rules
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_worker_put_off_duty_or_registered_over_nats_changes_who_the_next_case_goes_to() {
    let server = NatsServer::start();
    let engine = Engine::start(&server, true).await;
    let sender = Sender::new(&server).await;
    let log = reader_log(&server).await;
    let grid_worker = format!("w-{BUILDING}");

    let first = sender.reported_case("drain-1", BUILDING).await;
    assert_eq!(dispatched_to(&log, first).await, grid_worker);

    // The building's grid worker goes off duty: the next drain goes up to the community.
    accepted_position(&sender.grid(&duty("duty-1", &grid_worker, false)).await);
    let second = sender.reported_case("drain-2", BUILDING).await;
    let community_staff = dispatched_to(&log, second).await;
    assert_ne!(community_staff, grid_worker);
    assert!(
        engine
            .grid
            .load()
            .workers_of(COMMUNITY)
            .any(|worker| worker.id == community_staff),
        "{community_staff} covers the community"
    );

    // A new grid worker registers for the building: the next drain is theirs.
    let reply = sender
        .grid(&register("register-1", "w-330106001001001-b", &[BUILDING]))
        .await;
    accepted_position(&reply);
    let third = sender.reported_case("drain-3", BUILDING).await;
    assert_eq!(dispatched_to(&log, third).await, "w-330106001001001-b");

    // Back on duty: the live grid says so.
    accepted_position(&sender.grid(&duty("duty-2", &grid_worker, true)).await);
    let worker = engine.grid.load().worker(&grid_worker).cloned();
    assert_eq!(worker.map(|worker| worker.on_duty), Some(true));
    engine.stop();
}

#[tokio::test]
async fn a_building_added_over_nats_accepts_reports_at_once() {
    let server = NatsServer::start();
    let engine = Engine::start(&server, true).await;
    let sender = Sender::new(&server).await;
    let new = "330106001001006";

    let refused = sender.report("drain-new-1", new).await;
    let IntakeReply::Rejected { code, field, .. } = &refused else {
        panic!("a report in a building the grid does not have yet: {refused:?}")
    };
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("unknown_grid_location", Some("building"))
    );

    let supervisor = format!("sup-{new}");
    assert!(!engine.grid.supervises(&supervisor, new));
    accepted_position(&sender.grid(&new_building("add-13", new)).await);
    // Worker-command authorization asks the same live grid: the building leader now
    // supervises the building, and the community secretary still does.
    assert!(engine.grid.supervises(&supervisor, new));
    assert!(engine.grid.supervises("sup-330106001001", new));
    let case_id = sender.reported_case("drain-new-2", new).await;

    let log = reader_log(&server).await;
    let history = log.load(case_id).await.expect("load the case");
    let location = &history.events[0].location;
    assert_eq!(
        (location.community.as_str(), location.district.as_str()),
        (COMMUNITY, "330106001")
    );
    // Nobody covers the new building yet: the drain goes to the community's staff.
    let assignee = dispatched_to(&log, case_id).await;
    assert!(
        engine
            .grid
            .load()
            .workers_of(COMMUNITY)
            .any(|worker| worker.id == assignee),
        "{assignee} covers the community"
    );
    engine.stop();
}

#[tokio::test]
async fn two_instances_both_see_every_change_whichever_of_them_took_it() {
    let server = NatsServer::start();
    let first = Engine::start(&server, false).await;
    let second = Engine::start(&server, false).await;
    let sender = Sender::new(&server).await;

    let mut last = 0;
    for (index, worker) in [
        "w-330106001001001",
        "w-330106001001002",
        "w-330106001002001",
    ]
    .iter()
    .enumerate()
    {
        last = accepted_position(
            &sender
                .grid(&duty(&format!("off-{index}"), worker, false))
                .await,
        );
    }
    last = last.max(accepted_position(
        &sender
            .grid(&new_building("add-13", "330106001001006"))
            .await,
    ));

    for engine in [&first, &second] {
        assert!(
            engine.grid.wait_for(last, WAIT).await,
            "an instance did not fold in the grid stream"
        );
    }
    let (one, two) = (first.live(), second.live());
    assert_eq!(one, two, "both instances hold the same live grid");
    assert_eq!(one.position(), 4);
    for worker in [
        "w-330106001001001",
        "w-330106001001002",
        "w-330106001002001",
    ] {
        assert_eq!(one.worker(worker).map(|w| w.on_duty), Some(false));
    }
    assert!(two.locate_building("330106001001006").is_some());
    first.stop();
    second.stop();
}

#[tokio::test]
async fn each_bad_grid_command_is_refused_with_its_own_error_and_changes_nothing() {
    let server = NatsServer::start();
    let engine = Engine::start(&server, false).await;
    let sender = Sender::new(&server).await;
    let mut oversized = duty("big", "w-330106001001001", false);
    oversized["payload"]["note"] = json!("x".repeat(70 * 1024));

    let cases: Vec<(&str, Vec<u8>, &str, Option<&str>)> = vec![
        (
            "a cell the grid does not have",
            bytes(&command(
                "c1",
                "grid.worker_cells_changed",
                json!({"worker_id": "w-330106001001001", "cells": [BUILDING, "330106001001999"]}),
            )),
            "unknown_cell",
            Some("payload.cells[1]"),
        ),
        (
            "a cell the grid already has",
            bytes(&new_building("c2", BUILDING)),
            "duplicate_cell",
            Some("payload.code"),
        ),
        (
            "a worker who is not registered",
            bytes(&duty("c3", "w-nobody", false)),
            "unknown_worker",
            Some("payload.worker_id"),
        ),
        (
            "a worker registered twice",
            bytes(&register("c4", "w-330106001001001", &[BUILDING])),
            "duplicate_worker",
            Some("payload.worker.id"),
        ),
        (
            "a building directly under a district",
            bytes(&command(
                "c5",
                "grid.cell_added",
                json!({"tier": "building", "code": "330106001999", "name": "孤楼",
                       "parent": "330106001", "supervisor": "sup-x"}),
            )),
            "wrong_parent_tier",
            Some("payload.parent"),
        ),
        (
            "a community under another community",
            bytes(&command(
                "c6",
                "grid.cell_added",
                json!({"tier": "community", "code": "330106001001777", "name": "新社区",
                       "parent": COMMUNITY, "supervisor": "sup-y"}),
            )),
            "wrong_parent_tier",
            Some("payload.parent"),
        ),
        (
            "a worker id that cannot name an inbox",
            bytes(&duty("c7", "w 330106001001001", false)),
            "invalid_id",
            Some("payload.worker_id"),
        ),
        (
            "a cell code with a dot",
            bytes(&new_building("c8", "330106001001.06")),
            "invalid_id",
            Some("payload.code"),
        ),
        (
            "a cell under a parent the grid does not have",
            bytes(&command(
                "c9",
                "grid.cell_added",
                json!({"tier": "building", "code": "330106001099001", "name": "13栋",
                       "parent": "330106001099", "supervisor": "sup-z"}),
            )),
            "unknown_cell",
            Some("payload.parent"),
        ),
        (
            "a malformed skill",
            bytes(&command(
                "c10",
                "grid.worker_skills_changed",
                json!({"worker_id": "w-330106001001001", "skills": ["drainage.*"]}),
            )),
            "invalid_skill",
            Some("payload.skills[0]"),
        ),
        (
            "not JSON",
            b"event_type=grid.worker_duty_changed".to_vec(),
            "malformed_json",
            None,
        ),
        (
            "an unknown event type",
            bytes(&command("c12", "grid.worker_teleported", json!({}))),
            "unknown_event_type",
            Some("event_type"),
        ),
        (
            "an unknown version",
            bytes(&{
                let mut c = duty("c13", "w-330106001001001", false);
                c["schema_version"] = json!(2);
                c
            }),
            "unsupported_version",
            Some("schema_version"),
        ),
        (
            "an oversized message",
            bytes(&oversized),
            "payload_too_large",
            None,
        ),
        (
            "a misspelt payload field",
            bytes(&command(
                "c15",
                "grid.worker_duty_changed",
                json!({"worker_id": "w-330106001001001", "on_dutty": false}),
            )),
            "unknown_field",
            Some("payload.on_dutty"),
        ),
        (
            "a missing source",
            bytes(&{
                let mut c = duty("c16", "w-330106001001001", false);
                c.as_object_mut().expect("object").remove("source");
                c
            }),
            "missing_field",
            Some("source"),
        ),
        (
            "a misspelt top-level field",
            bytes(&{
                let mut c = duty("c17", "w-330106001001001", false);
                c["ocurred_at"] = json!("2026-03-02T09:30:00Z");
                c
            }),
            "unknown_field",
            Some("ocurred_at"),
        ),
    ];

    let store = JetStreamRejectedStore::open(server.connect().await, 1)
        .await
        .expect("open the rejected store");
    for (what, body, expected_code, expected_field) in cases {
        let reply = sender.grid_bytes(body.clone()).await;
        let GridReply::Rejected {
            code,
            field,
            reason,
            rejected_id,
        } = reply
        else {
            panic!("{what}: accepted")
        };
        assert_eq!(
            (code.as_str(), field.as_deref()),
            (expected_code, expected_field),
            "{what}: {reason}"
        );
        assert!(!reason.is_empty(), "{what}");
        // Kept where an operator sees it: the original bytes with the code and field.
        let kept = store
            .get(rejected_id.expect("the refusal is kept"))
            .await
            .expect("read the kept message");
        assert_eq!(kept.rejection.payload.as_ref(), body.as_slice(), "{what}");
        assert_eq!(kept.rejection.subject, GRID_COMMAND_SUBJECT);
        assert_eq!(kept.rejection.code, expected_code);
    }

    // Nothing reached the grid stream, and the grid is the file's.
    assert_eq!(grid_stream(&server).await.head().await.expect("head"), 0);
    assert_eq!(engine.live().grid(), &GridState::sample_city());
    engine.stop();
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialize")
}

#[tokio::test]
async fn of_racing_changes_that_exclude_each_other_exactly_one_is_written() {
    let server = NatsServer::start();
    let first = Engine::start(&server, false).await;
    let second = Engine::start(&server, false).await;
    let sender = Arc::new(Sender::new(&server).await);
    // Warm up both queue members, so the race is between instances.
    accepted_position(
        &sender
            .grid(&duty("warm-up", "w-330106001001001", true))
            .await,
    );

    // Eight operators add the same building at once, each with their own message.
    let racers: Vec<_> = (0..8)
        .map(|index| {
            let sender = sender.clone();
            tokio::spawn(async move {
                sender
                    .grid(&new_building(&format!("race-{index}"), "330106001001006"))
                    .await
            })
        })
        .collect();
    let mut accepted = 0;
    for racer in racers {
        match racer.await.expect("racer") {
            GridReply::Accepted { .. } => accepted += 1,
            GridReply::Rejected { code, .. } => assert_eq!(code, "duplicate_cell"),
        }
    }
    assert_eq!(
        accepted, 1,
        "exactly one of the racing additions is written"
    );
    assert_eq!(grid_stream(&server).await.head().await.expect("head"), 2);
    for engine in [&first, &second] {
        assert!(engine.grid.wait_for(2, WAIT).await);
        assert_eq!(
            engine.live().refused(),
            0,
            "no event on the stream was refused"
        );
    }
    first.stop();
    second.stop();
}

#[tokio::test]
async fn a_command_sent_again_changes_the_grid_once_even_after_the_duplicate_window() {
    let server = NatsServer::start();
    let config = GridStreamConfig {
        duplicate_window: Duration::from_secs(1),
        ..GridStreamConfig::default()
    };
    let engine = Engine::start_with(&server, false, config.clone()).await;
    let sender = Sender::new(&server).await;
    let message = duty("roster-0930", "w-330106001001002", false);

    let first = sender.grid(&message).await;
    let again = sender.grid(&message).await;
    let GridReply::Accepted {
        event_id, position, ..
    } = first.clone()
    else {
        panic!("{first:?}")
    };
    assert_eq!(
        again,
        GridReply::Accepted {
            event_id,
            event_type: "grid.worker_duty_changed".into(),
            position,
            duplicate: true
        }
    );

    // Long after the server forgot the message id, a restarted instance still knows it.
    engine.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarted = Engine::start_with(&server, false, config).await;
    let late = sender.grid(&message).await;
    assert_eq!(late, again);
    assert_eq!(grid_stream(&server).await.head().await.expect("head"), 1);
    assert_eq!(restarted.live().events(), 1);
    restarted.stop();
}

#[tokio::test]
async fn a_restarted_engine_rebuilds_the_same_grid_from_the_file_and_the_grid_stream() {
    let mut server = NatsServer::start();
    let engine = Engine::start(&server, false).await;
    let sender = Sender::new(&server).await;
    let new = "330106001001006";
    let changes = [
        new_building("day-1", new),
        register("day-2", "w-330106001001006", &[new]),
        duty("day-3", "w-330106001001001", false),
        command(
            "day-4",
            "grid.worker_skills_changed",
            json!({"worker_id": "cs-330106001001-1", "skills": ["sanitation", "traffic"]}),
        ),
        command(
            "day-5",
            "grid.worker_cells_changed",
            json!({"worker_id": "w-330106001001002", "cells": ["330106001001002", new]}),
        ),
    ];
    let mut last = 0;
    for change in &changes {
        last = accepted_position(&sender.grid(change).await);
    }
    assert!(engine.grid.wait_for(last, WAIT).await);
    let before = engine.live();
    engine.stop();
    assert_ne!(before.grid(), &GridState::sample_city());

    // The server goes down and comes back; a new engine starts from the file.
    server.restart();
    let restarted = Engine::start(&server, false).await;

    assert_eq!(restarted.live(), before);
    let grid = restarted.grid.load();
    assert_eq!(
        grid.workers_of(new)
            .map(|w| w.id.as_str())
            .collect::<Vec<_>>(),
        ["w-330106001001002", "w-330106001001006"]
    );
    assert_eq!(
        grid.worker("w-330106001001001").map(|w| w.on_duty),
        Some(false)
    );
    restarted.stop();
}

//! Grid workers acting on their tasks through NATS, against a real nats-server of the test's
//! own: the assignee acknowledges, starts, suspends, resumes and resolves; the reporter or
//! the supervisor verifies; and every command from the wrong person, or in the wrong state,
//! is refused with a clear error and writes nothing.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::client::RequestErrorKind;
use futures::stream::BoxStream;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use uuid::Uuid;
use wangge_engine::app::{CaseService, CommandRequest, SystemClock};
use wangge_engine::domain::{replay, CaseCommand, CaseState, CaseStatus};
use wangge_engine::log::{
    Appended, CaseHistory, Commit, EventLog, JetStreamLog, JetStreamLogConfig, LogError,
    LogPosition, MemoryLog, StoredCommit,
};
use wangge_engine::tasks::commands::EXTENSION_REQUEST_PREFIX;
use wangge_engine::tasks::{
    serve_worker_commands, MapSupervisors, WorkerCommandService, WORKER_COMMAND_SUBJECT,
};
use wangge_schemas::worker::WorkerReply;
use wangge_schemas::{
    ActorKind, CaseEvent, CaseId, EventEnvelope, Priority, ReportDetails, SuspendReason, Tier,
};
use wangge_testkit::NatsServer;

use support::{location, patrol_finding, report_command, request, BUILDING, COMMUNITY, DISTRICT};

const WAIT: Duration = Duration::from_secs(10);
/// The worker the test cases are dispatched to.
const WANG: &str = "wang-li";
/// Another grid worker of the same community, with no business on the test cases.
const ZHAO: &str = "zhao-min";
/// The community secretary: supervises the community cell and so its buildings.
const CHEN: &str = "chen-secretary";
/// The secretary of a neighbouring community: supervises nothing the test cases touch.
const LIU: &str = "liu-secretary";
/// The resident who reported the test cases (see `support::resident_report`).
const RESIDENT: &str = "resident-1";

// ---------------------------------------------------------------------------------------
// The harness: a private nats-server, one engine instance serving worker commands, an app
// ---------------------------------------------------------------------------------------

struct World {
    _server: NatsServer,
    cases: Arc<CaseService<JetStreamLog>>,
    log: JetStreamLog,
    /// The worker app's connection.
    app: async_nats::Client,
    task: JoinHandle<()>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How far a test case has come when a test starts working on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    AwaitingDispatch,
    Dispatched,
    Acknowledged,
    InProgress,
    Suspended,
    Resolved,
    Closed,
}

impl World {
    async fn start() -> Self {
        let server = NatsServer::start();
        let engine = server.connect().await;
        let log = JetStreamLog::open(engine.clone(), JetStreamLogConfig::default())
            .await
            .expect("open the event log");
        let cases = Arc::new(CaseService::new(log.clone(), Arc::new(SystemClock)));
        let mut supervisors = MapSupervisors::new();
        supervisors.insert(CHEN.to_owned(), vec![COMMUNITY.to_owned()]);
        supervisors.insert(LIU.to_owned(), vec!["110101001003".to_owned()]);
        let service = Arc::new(WorkerCommandService::new(cases.clone(), supervisors));
        let task = tokio::spawn(async move {
            serve_worker_commands(engine, service, std::future::pending())
                .await
                .expect("serve worker commands");
        });
        let app = server.connect().await;
        Self {
            _server: server,
            cases,
            log,
            app,
            task,
        }
    }

    /// Request-reply as a worker's app does it: retry while no engine has subscribed yet.
    async fn send_bytes(&self, body: impl Into<bytes::Bytes>) -> WorkerReply {
        let body = body.into();
        let deadline = Instant::now() + WAIT;
        loop {
            match self.app.request(WORKER_COMMAND_SUBJECT, body.clone()).await {
                Ok(answer) => {
                    return serde_json::from_slice(&answer.payload).unwrap_or_else(|e| {
                        panic!(
                            "the answer is not a worker reply ({e}): {}",
                            String::from_utf8_lossy(&answer.payload)
                        )
                    })
                }
                Err(error)
                    if error.kind() == RequestErrorKind::NoResponders
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("request failed: {error}"),
            }
        }
    }

    async fn send(&self, message: &Value) -> WorkerReply {
        self.send_bytes(message.to_string()).await
    }

    /// Sends a command that must be accepted; returns the events it wrote.
    async fn act(&self, worker: &str, case: CaseId, command: Value) -> Vec<EventEnvelope> {
        let before = self.events(case).await.len();
        match self.send(&message(worker, case, command.clone())).await {
            WorkerReply::Accepted {
                case_id,
                duplicate: false,
                sequence,
            } => {
                assert_eq!(case_id, case);
                let events = self.events(case).await;
                assert_eq!(events.len() as u64, sequence);
                events[before..].to_vec()
            }
            other => panic!("`{worker}` sending {command} expected acceptance, got {other:?}"),
        }
    }

    /// Sends a message that must be refused with `code`; proves nothing was written.
    async fn refused(&self, message: &Value, code: &str) -> WorkerReply {
        let head = self.log.head().await.expect("log head");
        let reply = self.send(message).await;
        match &reply {
            WorkerReply::Rejected { code: got, .. } if got == code => {}
            other => panic!("{message} expected a refusal `{code}`, got {other:?}"),
        }
        assert_eq!(
            self.log.head().await.expect("log head"),
            head,
            "a refused command wrote to the log: {message}"
        );
        reply
    }

    async fn events(&self, case: CaseId) -> Vec<EventEnvelope> {
        self.log.load(case).await.expect("load the case").events
    }

    async fn state(&self, case: CaseId) -> CaseState {
        replay(&self.events(case).await)
    }

    /// A resident's report, accepted and brought to `stage` by the engine's own components
    /// (the dispatcher is another issue's) and by `WANG` doing the work.
    async fn case_at(&self, stage: Stage) -> CaseId {
        self.case_reported_as(report_command(), stage).await
    }

    async fn case_reported_as(&self, report: CaseCommand, stage: Stage) -> CaseId {
        let case = CaseId::new_v7();
        let mut commands = vec![
            report,
            CaseCommand::Accept {
                category: "municipal.lighting".to_owned(),
                priority: Priority::High,
            },
        ];
        let steps = [
            (
                Stage::Dispatched,
                CaseCommand::Dispatch {
                    tier: Tier::Building,
                    cell: BUILDING.to_owned(),
                    assignee: WANG.to_owned(),
                },
            ),
            (
                Stage::Acknowledged,
                CaseCommand::Acknowledge {
                    worker_id: WANG.to_owned(),
                },
            ),
            (
                Stage::InProgress,
                CaseCommand::StartHandling {
                    worker_id: WANG.to_owned(),
                },
            ),
            (
                Stage::Suspended,
                CaseCommand::Suspend {
                    reason: SuspendReason::WaitingForResident,
                    note: None,
                },
            ),
            (
                Stage::Resolved,
                CaseCommand::Resolve {
                    worker_id: WANG.to_owned(),
                    notes: "lamp replaced".to_owned(),
                    media: Vec::new(),
                },
            ),
            (
                Stage::Closed,
                CaseCommand::Verify {
                    verifier: CHEN.to_owned(),
                    passed: true,
                    notes: None,
                },
            ),
        ];
        let order = [
            Stage::Dispatched,
            Stage::Acknowledged,
            Stage::InProgress,
            Stage::Suspended,
            Stage::Resolved,
            Stage::Closed,
        ];
        let wanted = order.iter().position(|s| *s == stage);
        for (step, command) in steps {
            let index = order.iter().position(|s| *s == step).unwrap();
            // Suspension is a detour: only the suspended stage stops there.
            let on_the_way = wanted.is_some_and(|w| index <= w)
                && (step != Stage::Suspended || stage == Stage::Suspended);
            if on_the_way {
                commands.push(command);
            }
        }
        for (index, command) in commands.into_iter().enumerate() {
            self.cases
                .handle(request(case, command, &format!("setup-{case}-{index}")))
                .await
                .expect("set the case up");
        }
        let state = self.state(case).await;
        let expected = match stage {
            Stage::AwaitingDispatch => CaseStatus::AwaitingDispatch,
            Stage::Dispatched => CaseStatus::Dispatched,
            Stage::Acknowledged => CaseStatus::Acknowledged,
            Stage::InProgress => CaseStatus::InProgress,
            Stage::Suspended => CaseStatus::Suspended,
            Stage::Resolved => CaseStatus::Resolved,
            Stage::Closed => CaseStatus::Closed,
        };
        assert_eq!(state.status, expected, "setting up a case at {stage:?}");
        case
    }
}

/// A worker command with a fresh message id.
fn message(worker: &str, case: CaseId, command: Value) -> Value {
    json!({
        "schema_version": 1,
        "message_id": Uuid::now_v7().to_string(),
        "worker_id": worker,
        "case_id": case,
        "command": command,
    })
}

fn as_resident(mut message: Value) -> Value {
    message["acting_as"] = json!("resident");
    message
}

fn types(events: &[EventEnvelope]) -> Vec<&'static str> {
    events.iter().map(EventEnvelope::event_type).collect()
}

fn acknowledge() -> Value {
    json!({"type": "acknowledge"})
}
fn decline() -> Value {
    json!({"type": "decline", "reason": "this lamp belongs to the park, not the building"})
}
fn start() -> Value {
    json!({"type": "start"})
}
fn suspend() -> Value {
    json!({"type": "suspend", "reason": "waiting_for_parts", "note": "lamp ordered"})
}
fn resume() -> Value {
    json!({"type": "resume", "note": "lamp arrived"})
}
fn resolve() -> Value {
    json!({"type": "resolve", "notes": "replaced the lamp, tested at dusk",
           "media": [{"kind": "photo", "url": "oss://wangge-media/2026/03/12/after.jpg"}]})
}
fn request_extension() -> Value {
    json!({"type": "request_extension", "step": "resolve",
           "extension": {"amount": 2, "unit": "working_days"}, "reason": "the lamp is on order"})
}
fn ask_to_escalate() -> Value {
    json!({"type": "ask_to_escalate", "reason": "the whole street's cable is down"})
}
fn verify(passed: bool) -> Value {
    if passed {
        json!({"type": "verify", "passed": true, "notes": "light works"})
    } else {
        json!({"type": "verify", "passed": false, "notes": "still flickering"})
    }
}

/// Every worker command, each with the stage in which the assignee may send it.
fn worker_commands() -> Vec<(&'static str, Value, Stage)> {
    vec![
        ("acknowledge", acknowledge(), Stage::Dispatched),
        ("decline", decline(), Stage::Dispatched),
        ("start", start(), Stage::Acknowledged),
        ("suspend", suspend(), Stage::InProgress),
        ("resume", resume(), Stage::Suspended),
        ("resolve", resolve(), Stage::InProgress),
        ("request_extension", request_extension(), Stage::InProgress),
        ("ask_to_escalate", ask_to_escalate(), Stage::InProgress),
    ]
}

// ---------------------------------------------------------------------------------------
// The assignee works the case
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_assignee_acknowledges_starts_suspends_resumes_and_resolves() {
    let world = World::start().await;
    let case = world.case_at(Stage::Dispatched).await;

    let steps = [
        (
            acknowledge(),
            vec!["case.acknowledged"],
            CaseStatus::Acknowledged,
        ),
        (
            start(),
            vec!["case.handling_started"],
            CaseStatus::InProgress,
        ),
        (suspend(), vec!["case.suspended"], CaseStatus::Suspended),
        (resume(), vec!["case.resumed"], CaseStatus::InProgress),
        (resolve(), vec!["case.resolved"], CaseStatus::Resolved),
    ];
    for (command, expected, status) in steps {
        let events = world.act(WANG, case, command.clone()).await;
        assert_eq!(types(&events), expected, "{command}");
        for event in &events {
            assert_eq!(event.actor.kind, ActorKind::GridWorker);
            assert_eq!(event.actor.id, WANG);
            assert_eq!(event.source.system, format!("worker:{WANG}"));
        }
        assert_eq!(world.state(case).await.status, status, "after {command}");
    }
    let events = world.events(case).await;
    let CaseEvent::Resolved(resolved) = &events.last().unwrap().event else {
        panic!("the case ends resolved");
    };
    assert_eq!(resolved.worker_id, WANG);
    assert_eq!(resolved.media.len(), 1);
    let CaseEvent::Suspended(suspended) = &events[5].event else {
        panic!("the sixth event is the suspension: {:?}", types(&events));
    };
    assert_eq!(suspended.reason, SuspendReason::WaitingForParts);
    assert_eq!(suspended.note.as_deref(), Some("lamp ordered"));
}

#[tokio::test]
async fn declining_sends_the_case_back_for_dispatch() {
    let world = World::start().await;
    let case = world.case_at(Stage::Dispatched).await;

    let events = world.act(WANG, case, decline()).await;

    assert_eq!(types(&events), ["case.declined"]);
    let state = world.state(case).await;
    assert_eq!(state.status, CaseStatus::AwaitingDispatch);
    assert_eq!(state.assignee, None);
}

#[tokio::test]
async fn resolving_straight_after_acknowledging_records_the_start_too() {
    let world = World::start().await;
    let case = world.case_at(Stage::Acknowledged).await;

    let events = world.act(WANG, case, resolve()).await;

    assert_eq!(types(&events), ["case.handling_started", "case.resolved"]);
}

#[tokio::test]
async fn asking_to_escalate_hands_the_case_to_the_community_then_the_district() {
    let world = World::start().await;
    let case = world.case_at(Stage::InProgress).await;

    let events = world.act(WANG, case, ask_to_escalate()).await;

    let CaseEvent::Escalated(escalated) = &events[0].event else {
        panic!("expected an escalation, got {:?}", types(&events));
    };
    assert_eq!(
        (
            escalated.from_tier,
            escalated.to_tier,
            escalated.cell.as_str()
        ),
        (Tier::Building, Tier::Community, COMMUNITY)
    );
    let state = world.state(case).await;
    assert_eq!(state.status, CaseStatus::AwaitingDispatch);
    assert_eq!(state.assignee, None);

    // Dispatched again at the community, the next worker may ask for the district.
    world
        .cases
        .handle(request(
            case,
            CaseCommand::Dispatch {
                tier: Tier::Community,
                cell: COMMUNITY.to_owned(),
                assignee: ZHAO.to_owned(),
            },
            "dispatch-community",
        ))
        .await
        .unwrap();
    let events = world.act(ZHAO, case, ask_to_escalate()).await;
    let CaseEvent::Escalated(escalated) = &events[0].event else {
        panic!("expected an escalation, got {:?}", types(&events));
    };
    assert_eq!(
        (escalated.to_tier, escalated.cell.as_str()),
        (Tier::District, DISTRICT)
    );

    // At the district there is nowhere higher to go.
    world
        .cases
        .handle(request(
            case,
            CaseCommand::Dispatch {
                tier: Tier::District,
                cell: DISTRICT.to_owned(),
                assignee: WANG.to_owned(),
            },
            "dispatch-district",
        ))
        .await
        .unwrap();
    world
        .refused(&message(WANG, case, ask_to_escalate()), "not_an_escalation")
        .await;
}

#[tokio::test]
async fn an_extension_request_is_recorded_for_the_supervisor_who_grants_it() {
    let world = World::start().await;
    let case = world.case_at(Stage::InProgress).await;

    let requested = world.act(WANG, case, request_extension()).await;
    let CaseEvent::CommentAdded(comment) = &requested[0].event else {
        panic!(
            "a worker's request is a comment, got {:?}",
            types(&requested)
        );
    };
    assert!(
        comment.text.starts_with(EXTENSION_REQUEST_PREFIX),
        "{}",
        comment.text
    );
    assert!(comment.text.contains("2 working days"), "{}", comment.text);

    let granted = world.act(CHEN, case, request_extension()).await;
    assert_eq!(types(&granted), ["case.extension_granted"]);
    assert_eq!(granted[0].actor.kind, ActorKind::Supervisor);
}

#[tokio::test]
async fn an_extension_in_the_old_unit_minutes_is_granted_in_working_minutes() {
    let world = World::start().await;
    let case = world.case_at(Stage::InProgress).await;
    let legacy = json!({"type": "request_extension", "step": "resolve",
                        "extension": {"amount": 90, "unit": "minutes"}, "reason": "parts"});
    let granted = world.act(CHEN, case, legacy).await;
    let CaseEvent::ExtensionGranted(extension) = &granted[0].event else {
        panic!("expected an extension, got {:?}", types(&granted));
    };
    assert_eq!(
        extension.extension.unit,
        wangge_schemas::TimeUnit::WorkingMinutes
    );
    assert_eq!(extension.extension.amount, 90);
    // The grant moves the recorded deadline, on the same commit.
    let clock = granted
        .last()
        .and_then(|event| event.sla_clock.as_ref())
        .expect("the grant records the moved clock");
    assert_eq!(clock.extensions, [extension.extension]);
}

// ---------------------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_passed_verification_by_the_reporting_resident_closes_the_case() {
    let world = World::start().await;
    let case = world.case_at(Stage::Resolved).await;

    let events = world
        .send(&as_resident(message(RESIDENT, case, verify(true))))
        .await;
    assert!(matches!(events, WorkerReply::Accepted { .. }), "{events:?}");

    let events = world.events(case).await;
    let last_two: Vec<_> = types(&events).into_iter().rev().take(2).collect();
    assert_eq!(last_two, ["case.closed", "case.verified"]);
    assert_eq!(events.last().unwrap().actor.kind, ActorKind::Resident);
    assert_eq!(world.state(case).await.status, CaseStatus::Closed);
}

#[tokio::test]
async fn a_failed_verification_by_the_supervisor_sends_the_case_back_for_rework() {
    let world = World::start().await;
    let case = world.case_at(Stage::Resolved).await;

    let events = world.act(CHEN, case, verify(false)).await;

    assert_eq!(types(&events), ["case.rework_requested"]);
    let state = world.state(case).await;
    assert_eq!(state.status, CaseStatus::InProgress);
    assert_eq!(state.rework_count, 1);
    assert_eq!(state.assignee.as_deref(), Some(WANG));
    // The handler reworks it and resolves again.
    let events = world.act(WANG, case, resolve()).await;
    assert_eq!(types(&events), ["case.resolved"]);
}

#[tokio::test]
async fn the_grid_worker_who_reported_a_patrol_finding_verifies_it() {
    let world = World::start().await;
    let report = CaseCommand::Report {
        location: location(),
        report: patrol_finding(ZHAO),
    };
    let case = world.case_reported_as(report, Stage::Resolved).await;

    let events = world.act(ZHAO, case, verify(true)).await;

    assert_eq!(types(&events), ["case.verified", "case.closed"]);
}

#[tokio::test]
async fn a_resident_verifies_under_the_id_the_reporting_system_gave_them() {
    let world = World::start().await;
    let mut report = support::resident_report();
    let hotline_caller = "hotline:138-0000-0000.2";
    if let ReportDetails::ResidentReport { resident, .. } = &mut report.details {
        resident.id = hotline_caller.to_owned();
    }
    let report = CaseCommand::Report {
        location: location(),
        report,
    };
    let case = world.case_reported_as(report, Stage::Resolved).await;

    let reply = world
        .send(&as_resident(message(hotline_caller, case, verify(true))))
        .await;

    assert!(matches!(reply, WorkerReply::Accepted { .. }), "{reply:?}");
    assert_eq!(world.state(case).await.status, CaseStatus::Closed);
}

#[tokio::test]
async fn nobody_else_verifies_and_the_handler_never_verifies_their_own_work() {
    let world = World::start().await;
    let case = world.case_at(Stage::Resolved).await;

    let reply = world
        .refused(&message(WANG, case, verify(true)), "not_permitted")
        .await;
    let WorkerReply::Rejected { reason, .. } = reply else {
        unreachable!()
    };
    assert!(reason.contains("other than its handler"), "{reason}");
    world
        .refused(&message(ZHAO, case, verify(true)), "not_permitted")
        .await;
    let reply = world
        .refused(
            &as_resident(message("resident-2", case, verify(true))),
            "not_permitted",
        )
        .await;
    let WorkerReply::Rejected { reason, .. } = reply else {
        unreachable!()
    };
    assert!(
        reason.contains("a supervisor of cell") && reason.contains("the resident who reported it"),
        "the refusal names who may verify: {reason}"
    );
    assert_eq!(world.state(case).await.status, CaseStatus::Resolved);
}

// ---------------------------------------------------------------------------------------
// Refusals change nothing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_worker_command_from_a_non_assignee_is_refused_and_changes_nothing() {
    let world = World::start().await;
    for (name, command, stage) in worker_commands() {
        let case = world.case_at(stage).await;
        let before = world.events(case).await;

        for stranger in [ZHAO, "a-resident"] {
            let mut sent = message(stranger, case, command.clone());
            if stranger == "a-resident" {
                sent = as_resident(sent);
            }
            let reply = world.refused(&sent, "not_assignee").await;
            let WorkerReply::Rejected { reason, field, .. } = reply else {
                unreachable!()
            };
            assert_eq!(field, None);
            assert!(
                reason.contains(&format!("`{stranger}` may not `{name}` this case"))
                    && reason.contains(&format!("it is with `{WANG}`"))
                    && reason.contains(&format!("a supervisor of cell {BUILDING}")),
                "{name}: the refusal names who may act: {reason}"
            );
        }
        assert_eq!(world.events(case).await, before, "{name} changed the case");
    }
}

#[tokio::test]
async fn every_worker_command_in_the_wrong_state_is_refused_and_changes_nothing() {
    let world = World::start().await;
    let wrong_states = [
        ("acknowledge", acknowledge(), Stage::InProgress),
        ("decline", decline(), Stage::Acknowledged),
        ("start", start(), Stage::Dispatched),
        ("suspend", suspend(), Stage::Dispatched),
        ("suspend", suspend(), Stage::Suspended),
        ("resume", resume(), Stage::InProgress),
        ("resolve", resolve(), Stage::Dispatched),
        ("resolve", resolve(), Stage::Suspended),
        ("request_extension", request_extension(), Stage::Closed),
        ("ask_to_escalate", ask_to_escalate(), Stage::Suspended),
        ("ask_to_escalate", ask_to_escalate(), Stage::Resolved),
    ];
    for (name, command, stage) in wrong_states {
        let case = world.case_at(stage).await;
        let before = world.events(case).await;
        let status = world.state(case).await.status;

        let reply = world
            .refused(&message(WANG, case, command), "invalid_transition")
            .await;

        let WorkerReply::Rejected { reason, .. } = reply else {
            unreachable!()
        };
        assert!(
            reason.contains(&format!("while the case is {status}")),
            "{name} in {stage:?}: {reason}"
        );
        assert_eq!(world.events(case).await, before, "{name} changed the case");
    }
    // Verification before the result is in, from someone who may verify.
    let case = world.case_at(Stage::InProgress).await;
    world
        .refused(&message(CHEN, case, verify(true)), "invalid_transition")
        .await;
}

#[tokio::test]
async fn the_supervisor_of_the_cell_may_act_for_the_assignee() {
    let world = World::start().await;
    let case = world.case_at(Stage::Dispatched).await;

    for command in [acknowledge(), start(), suspend(), resume(), resolve()] {
        let events = world.act(CHEN, case, command).await;
        assert_eq!(events[0].actor.kind, ActorKind::Supervisor);
        assert_eq!(events[0].actor.id, CHEN);
    }
    let events = world.events(case).await;
    let CaseEvent::Acknowledged(acknowledged) = &events[3].event else {
        panic!(
            "the fourth event is the acknowledgement: {:?}",
            types(&events)
        );
    };
    assert_eq!(
        acknowledged.worker_id, WANG,
        "the supervisor acts for the assignee"
    );
    assert_eq!(world.state(case).await.status, CaseStatus::Resolved);

    // The supervisor of another community is just another worker here.
    let other = world.case_at(Stage::Dispatched).await;
    world
        .refused(&message(LIU, other, acknowledge()), "not_assignee")
        .await;
}

#[tokio::test]
async fn a_retried_message_is_a_duplicate_and_writes_nothing() {
    let world = World::start().await;
    let case = world.case_at(Stage::Dispatched).await;
    let first = message(WANG, case, acknowledge());

    let WorkerReply::Accepted {
        sequence,
        duplicate: false,
        ..
    } = world.send(&first).await
    else {
        panic!("the first acknowledgement is accepted");
    };
    let head = world.log.head().await.unwrap();
    let again = world.send(&first).await;

    assert_eq!(
        again,
        WorkerReply::Accepted {
            case_id: case,
            sequence,
            duplicate: true
        }
    );
    assert_eq!(world.log.head().await.unwrap(), head);

    // A retried decline still answers "done" after the case has left the worker.
    let other = world.case_at(Stage::Dispatched).await;
    let declined = message(WANG, other, decline());
    let WorkerReply::Accepted { sequence, .. } = world.send(&declined).await else {
        panic!("the decline is accepted");
    };
    assert_eq!(
        world.send(&declined).await,
        WorkerReply::Accepted {
            case_id: other,
            sequence,
            duplicate: true
        }
    );

    // The same message id from another worker is another message (and here not allowed).
    let mut borrowed = first.clone();
    borrowed["worker_id"] = json!(ZHAO);
    world.refused(&borrowed, "not_assignee").await;
}

#[tokio::test]
async fn malformed_messages_are_refused_with_a_code_and_the_field() {
    let world = World::start().await;
    let case = world.case_at(Stage::Dispatched).await;
    let head = world.log.head().await.unwrap();

    let cases: Vec<(Value, &str, Option<&str>)> = vec![
        (json!("not an object"), "invalid_type", None),
        (
            {
                let mut m = message(WANG, case, acknowledge());
                m["schema_version"] = json!(3);
                m
            },
            "unsupported_version",
            Some("schema_version"),
        ),
        (
            {
                let mut m = message(WANG, case, acknowledge());
                m.as_object_mut().unwrap().remove("worker_id");
                m
            },
            "missing_field",
            Some("worker_id"),
        ),
        (
            message(WANG, case, json!({"type": "teleport"})),
            "unknown_command",
            Some("command.type"),
        ),
        (
            message(WANG, case, json!({"type": "decline"})),
            "missing_field",
            Some("command.reason"),
        ),
        (
            message(WANG, case, json!({"type": "suspend", "reason": "lunch"})),
            "invalid_value",
            Some("command.reason"),
        ),
        (
            message(WANG, case, json!({"type": "verify", "passed": "yes"})),
            "invalid_type",
            Some("command.passed"),
        ),
        (
            message(WANG, case, json!({"type": "acknowledge", "urgent": true})),
            "unknown_field",
            Some("command.urgent"),
        ),
        (
            message(
                WANG,
                case,
                json!({"type": "request_extension", "step": "resolve",
                "extension": {"amount": 0, "unit": "working_days"}, "reason": "x"}),
            ),
            "invalid_value",
            Some("command.extension.amount"),
        ),
        (
            message("wang.li", case, acknowledge()),
            "invalid_value",
            Some("worker_id"),
        ),
        (
            message(WANG, CaseId::new_v7(), acknowledge()),
            "case_not_found",
            Some("case_id"),
        ),
    ];
    for (body, code, field) in cases {
        let reply = world.send(&body).await;
        match &reply {
            WorkerReply::Rejected {
                code: got,
                field: got_field,
                reason,
            } => {
                assert_eq!(
                    (got.as_str(), got_field.as_deref()),
                    (code, field),
                    "{body}: {reason}"
                );
                assert!(!reason.is_empty());
            }
            other => panic!("{body} expected a refusal, got {other:?}"),
        }
    }
    let reply = world.send_bytes("{\"schema_version\": 1,").await;
    assert!(
        matches!(&reply, WorkerReply::Rejected { code, .. } if code == "malformed_json"),
        "{reply:?}"
    );
    assert_eq!(world.log.head().await.unwrap(), head, "nothing was written");
    assert_eq!(world.state(case).await.status, CaseStatus::Dispatched);
}

#[tokio::test]
async fn a_case_with_nobody_assigned_refuses_the_previous_worker() {
    let world = World::start().await;
    let case = world.case_at(Stage::AwaitingDispatch).await;

    let reply = world
        .refused(&message(WANG, case, acknowledge()), "not_assignee")
        .await;

    let WorkerReply::Rejected { reason, .. } = reply else {
        unreachable!()
    };
    assert!(reason.contains("it is with nobody"), "{reason}");
    // Nothing to dispatch to yet, but the supervisor may still push the case up the grid.
    let events = world.act(CHEN, case, ask_to_escalate()).await;
    assert_eq!(types(&events), ["case.escalated"]);
}

// ---------------------------------------------------------------------------------------
// A race between the check and the commit
// ---------------------------------------------------------------------------------------

/// A memory log that, the first time a case is loaded, lets another writer commit to it
/// right after the load was read: the reader's view is stale by one command.
#[derive(Clone)]
struct RacingLog {
    inner: MemoryLog,
    race: Arc<Mutex<Option<CommandRequest>>>,
    writer: Arc<CaseService<MemoryLog>>,
}

impl EventLog for RacingLog {
    async fn append(&self, commit: Commit, expected: LogPosition) -> Result<Appended, LogError> {
        self.inner.append(commit, expected).await
    }

    async fn load(&self, case_id: CaseId) -> Result<CaseHistory, LogError> {
        let history = self.inner.load(case_id).await?;
        let racing = self.race.lock().unwrap().take();
        if let Some(request) = racing {
            self.writer
                .handle(request)
                .await
                .expect("the racing command");
        }
        Ok(history)
    }

    fn read_from(&self, from: LogPosition) -> BoxStream<'static, Result<StoredCommit, LogError>> {
        self.inner.read_from(from)
    }

    async fn head(&self) -> Result<LogPosition, LogError> {
        self.inner.head().await
    }
}

#[tokio::test]
async fn a_worker_reassigned_while_their_command_is_checked_is_refused() {
    let inner = MemoryLog::new();
    let writer = Arc::new(CaseService::new(inner.clone(), Arc::new(SystemClock)));
    let case = CaseId::new_v7();
    let setup = [
        report_command(),
        CaseCommand::Accept {
            category: "municipal.lighting".to_owned(),
            priority: Priority::Normal,
        },
        CaseCommand::Dispatch {
            tier: Tier::Building,
            cell: BUILDING.to_owned(),
            assignee: WANG.to_owned(),
        },
        CaseCommand::Acknowledge {
            worker_id: WANG.to_owned(),
        },
        CaseCommand::StartHandling {
            worker_id: WANG.to_owned(),
        },
    ];
    for (index, command) in setup.into_iter().enumerate() {
        writer
            .handle(request(case, command, &format!("setup-{index}")))
            .await
            .unwrap();
    }
    let reassign = request(
        case,
        CaseCommand::Reassign {
            to_worker: ZHAO.to_owned(),
            tier: Tier::Building,
            cell: BUILDING.to_owned(),
            reason: "wang-li is off sick".to_owned(),
        },
        "reassign",
    );
    let log = RacingLog {
        inner: inner.clone(),
        race: Arc::new(Mutex::new(Some(reassign))),
        writer,
    };
    let cases = Arc::new(CaseService::new(log, Arc::new(SystemClock)));
    let service = WorkerCommandService::new(cases, MapSupervisors::new());

    // Escalating is allowed in the state wang-li saw and in the state after the
    // reassignment; only who may do it changed in between.
    let reply = service
        .process(
            message(WANG, case, ask_to_escalate())
                .to_string()
                .as_bytes(),
        )
        .await;

    assert!(
        matches!(&reply, WorkerReply::Rejected { code, .. } if code == "not_assignee"),
        "{reply:?}"
    );
    let events = inner.load(case).await.unwrap().events;
    assert_eq!(
        types(&events).last(),
        Some(&"case.reassigned"),
        "nothing written after the reassignment"
    );
}

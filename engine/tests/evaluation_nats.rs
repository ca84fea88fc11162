//! Residents' evaluations (综合评价) over NATS, against a real nats-server of the test's own.
//!
//! The system a resident answered in — the mini-program, or the 12345 hotline calling them
//! back — publishes to `wangge.intake.evaluation` and gets the same JSON answer as for a
//! report. An evaluation is recorded on a closed case the resident reported, once per
//! closure, with the score the hotlines' three levels stand for; anything else is refused
//! naming the rule or the field, writes nothing, and is kept byte for byte for replay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::client::RequestErrorKind;
use async_nats::HeaderMap;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use wangge_engine::app::{CaseService, CommandRequest, SystemClock};
use wangge_engine::domain::{CaseCommand, CaseStatus};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::intake::nats::serve_intake;
use wangge_engine::intake::{IntakeService, JetStreamRejectedStore, RejectedStore};
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig, LogPosition};
use wangge_schemas::intake::{IntakeReply, MAX_COMMENT_CHARS, MAX_MESSAGE_BYTES};
use wangge_schemas::{
    Actor, ActorKind, CaseEvaluated, CaseEvent, CaseId, Channel, EventEnvelope, Priority,
    SatisfactionLevel, Source, Tier,
};
use wangge_testkit::NatsServer;

// ---------------------------------------------------------------------------------------
// The harness: a private nats-server, one engine serving intake, the resident's system, and
// the city's staff who take a case to its closing
// ---------------------------------------------------------------------------------------

const WAIT: Duration = Duration::from_secs(10);
const EVALUATION_SUBJECT: &str = "wangge.intake.evaluation";

/// 学院公寓社区 2栋 in the sample city, and the resident who reports from it.
const BUILDING: &str = "330106001001001";
const RESIDENT: &str = "wx-oU7x2kQ9dLr3";
const WORKER: &str = "gw-0427";
const SUPERVISOR: &str = "sq-secretary-03";

struct World {
    _server: NatsServer,
    engine: JoinHandle<()>,
    /// The publishing systems' connection.
    sender: async_nats::Client,
    events: JetStreamLog,
    /// The city's staff, acting on cases through the command handler on the same stream.
    staff: CaseService<JetStreamLog>,
    rejected: JetStreamRejectedStore,
    staff_messages: AtomicU64,
}

impl Drop for World {
    fn drop(&mut self) {
        self.engine.abort();
    }
}

impl World {
    async fn start() -> Self {
        let server = NatsServer::start();
        let engine_client = server.connect().await;
        let engine_log = JetStreamLog::open(engine_client.clone(), JetStreamLogConfig::default())
            .await
            .expect("open the event log");
        let engine_rejected = JetStreamRejectedStore::open(engine_client.clone(), 1)
            .await
            .expect("open the rejected store");
        let service = Arc::new(IntakeService::new(
            Arc::new(CaseService::new(engine_log, Arc::new(SystemClock))),
            engine_rejected,
            Arc::new(GridDirectory::sample_city()),
            Arc::new(CategoryCatalogue::sample()),
        ));
        let engine = tokio::spawn(async move {
            serve_intake(engine_client, service, std::future::pending())
                .await
                .expect("serve intake");
        });

        let sender = server.connect().await;
        let events = JetStreamLog::open(sender.clone(), JetStreamLogConfig::default())
            .await
            .expect("open the event log");
        let rejected = JetStreamRejectedStore::open(sender.clone(), 1)
            .await
            .expect("open the rejected store");
        Self {
            _server: server,
            engine,
            staff: CaseService::new(events.clone(), Arc::new(SystemClock)),
            sender,
            events,
            rejected,
            staff_messages: AtomicU64::new(0),
        }
    }

    /// Request-reply as a careful sender does it: retry while no engine has subscribed yet.
    async fn request(&self, subject: &str, headers: HeaderMap, body: Bytes) -> IntakeReply {
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .sender
                .request_with_headers(subject.to_owned(), headers.clone(), body.clone())
                .await
            {
                Ok(answer) => {
                    return serde_json::from_slice(&answer.payload).unwrap_or_else(|e| {
                        panic!(
                            "the answer is not an intake reply ({e}): {}",
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
                Err(error) => panic!("request on {subject} failed: {error}"),
            }
        }
    }

    async fn evaluate(&self, message: &Value) -> IntakeReply {
        self.request(
            EVALUATION_SUBJECT,
            HeaderMap::new(),
            message.to_string().into(),
        )
        .await
    }

    /// A resident's report through intake, from the mini-program.
    async fn reported_case(&self, message_id: &str) -> CaseId {
        let report = json!({
            "kind": "resident_report",
            "schema_version": 1,
            "source": {"system": "miniprogram", "message_id": message_id},
            "reported_at": "2026-03-12T08:15:42+08:00",
            "building": BUILDING,
            "channel": "mini_program",
            "resident": {"id": RESIDENT, "name": "王阿姨"},
            "title": "2栋3单元门口下水道堵塞",
            "description": "下水道堵了两天,污水漫到楼道口。",
            "category": "drainage.blocked"
        });
        match self
            .request(
                "wangge.intake.resident_report",
                HeaderMap::new(),
                report.to_string().into(),
            )
            .await
        {
            IntakeReply::Accepted {
                case_id,
                duplicate: false,
                ..
            } => case_id,
            other => panic!("expected a new case, got {other:?}"),
        }
    }

    /// A grid worker's patrol finding through intake, fixed on the spot and closed by them.
    async fn self_handled_patrol_finding(&self) -> CaseId {
        let finding = json!({
            "kind": "patrol_finding",
            "schema_version": 1,
            "source": {"system": "grid-app", "message_id": "ga-patrol-0719"},
            "reported_at": "2026-03-12T15:40:05+08:00",
            "building": BUILDING,
            "worker_id": WORKER,
            "patrol_kind": "fire_safety",
            "title": "楼道堆放电动车和纸箱",
            "description": "占用疏散通道,已劝导清理。",
            "category": "fire_safety.corridor_blocked",
            "fixed_on_spot": true
        });
        let IntakeReply::Accepted { case_id, .. } = self
            .request(
                "wangge.intake.patrol_finding",
                HeaderMap::new(),
                finding.to_string().into(),
            )
            .await
        else {
            panic!("the patrol finding is accepted");
        };
        self.act(
            case_id,
            Actor::grid_worker(WORKER),
            CaseCommand::SelfHandle {
                worker_id: WORKER.to_owned(),
                notes: "已现场清理".to_owned(),
                media: Vec::new(),
            },
        )
        .await;
        case_id
    }

    /// The staff's command on a case; panics if the case refuses it.
    async fn act(&self, case_id: CaseId, actor: Actor, command: CaseCommand) {
        let n = self.staff_messages.fetch_add(1, Ordering::Relaxed);
        let name = command.name();
        let request = CommandRequest {
            case_id,
            command,
            actor,
            source: Source {
                system: "city-staff".to_owned(),
                message_id: format!("staff-{n}"),
            },
            occurred_at: None,
            correlation_id: None,
            causation_id: None,
        };
        if let Err(error) = self.staff.handle(request).await {
            panic!("{name} refused: {error}");
        }
    }

    /// Dispatched to the building's worker, handled, resolved and verified on site: closed.
    async fn close(&self, case_id: CaseId) {
        let (state, _) = self.staff.state_of(case_id).await.expect("load the case");
        let dispatch = match state.status {
            CaseStatus::Reported => CaseCommand::AcceptAndDispatch {
                category: String::new(),
                priority: Priority::Normal,
                tier: Tier::Building,
                cell: BUILDING.to_owned(),
                assignee: WORKER.to_owned(),
            },
            CaseStatus::AwaitingDispatch => CaseCommand::Dispatch {
                tier: Tier::Building,
                cell: BUILDING.to_owned(),
                assignee: WORKER.to_owned(),
            },
            other => panic!("cannot close a case that is {other}"),
        };
        self.act(case_id, Actor::system("dispatcher"), dispatch)
            .await;
        let worker = Actor::grid_worker(WORKER);
        self.act(
            case_id,
            worker.clone(),
            CaseCommand::Acknowledge {
                worker_id: WORKER.to_owned(),
            },
        )
        .await;
        self.act(
            case_id,
            worker,
            CaseCommand::Resolve {
                worker_id: WORKER.to_owned(),
                notes: "已联系物业疏通,现场已恢复".to_owned(),
                media: Vec::new(),
            },
        )
        .await;
        self.act(
            case_id,
            Actor::supervisor(SUPERVISOR),
            CaseCommand::Verify {
                verifier: SUPERVISOR.to_owned(),
                passed: true,
                notes: None,
            },
        )
        .await;
    }

    async fn closed_case(&self, message_id: &str) -> CaseId {
        let case_id = self.reported_case(message_id).await;
        self.close(case_id).await;
        case_id
    }

    async fn history(&self, case_id: CaseId) -> Vec<EventEnvelope> {
        self.events
            .load(case_id)
            .await
            .expect("load the case")
            .events
    }

    async fn version(&self, case_id: CaseId) -> u64 {
        self.history(case_id).await.last().map_or(0, |e| e.sequence)
    }

    /// The case's evaluations, with their envelopes.
    async fn evaluations(&self, case_id: CaseId) -> Vec<(EventEnvelope, CaseEvaluated)> {
        self.history(case_id)
            .await
            .into_iter()
            .filter_map(|envelope| match &envelope.event {
                CaseEvent::Evaluated(evaluated) => {
                    let evaluated = evaluated.clone();
                    Some((envelope, evaluated))
                }
                _ => None,
            })
            .collect()
    }

    async fn head(&self) -> LogPosition {
        self.events.head().await.expect("event log head")
    }

    async fn rejected_count(&self) -> usize {
        self.rejected.list(1, 1000).await.expect("list").len()
    }

    /// The reply is a refusal with this code and field, and the message is kept as sent on
    /// the evaluation's subject. Returns the reason and where it is kept.
    async fn assert_refused_and_kept(
        &self,
        reply: IntakeReply,
        subject: &str,
        sent: &[u8],
        code: &str,
        field: Option<&str>,
    ) -> (String, u64) {
        let IntakeReply::Rejected {
            code: got_code,
            field: got_field,
            reason,
            rejected_id,
        } = reply
        else {
            panic!("expected a refusal with {code}, got {reply:?}");
        };
        assert_eq!(
            (got_code.as_str(), got_field.as_deref()),
            (code, field),
            "reason: {reason}"
        );
        assert!(!reason.is_empty(), "a refusal says why");
        let id = rejected_id.expect("the reply says where the message is kept");
        let kept = self.rejected.get(id).await.expect("the kept message");
        assert_eq!(kept.rejection.payload, Bytes::copy_from_slice(sent));
        assert_eq!(kept.rejection.subject, subject);
        assert_eq!(
            (
                kept.rejection.code.as_str(),
                kept.rejection.field.as_deref()
            ),
            (code, field)
        );
        assert_eq!(kept.rejection.reason, reason);
        (reason, id)
    }
}

/// The resident's evaluation of `case_id` from the mini-program.
fn evaluation(case_id: CaseId, message_id: &str, satisfaction: Value) -> Value {
    json!({
        "kind": "evaluation",
        "schema_version": 1,
        "source": {"system": "miniprogram", "message_id": message_id},
        "evaluated_at": "2026-03-12T13:30:02+08:00",
        "case_id": case_id,
        "resident": {"id": RESIDENT, "name": "王阿姨"},
        "channel": "mini_program",
        "satisfaction": satisfaction
    })
}

/// The message with the field at a JSON pointer set (replaced or added).
fn with(mut message: Value, pointer: &str, value: Value) -> Value {
    let (parent, name) = pointer.rsplit_once('/').expect("a pointer");
    let parent = if parent.is_empty() {
        &mut message
    } else {
        message.pointer_mut(parent).expect("parent exists")
    };
    parent
        .as_object_mut()
        .unwrap_or_else(|| panic!("{pointer} is not inside an object"))
        .insert(name.to_owned(), value);
    message
}

fn without(mut message: Value, pointer: &str) -> Value {
    let (parent, name) = pointer.rsplit_once('/').expect("a pointer");
    let parent = if parent.is_empty() {
        &mut message
    } else {
        message.pointer_mut(parent).expect("parent exists")
    };
    parent
        .as_object_mut()
        .and_then(|object| object.remove(name))
        .unwrap_or_else(|| panic!("no {pointer} to remove"));
    message
}

// ---------------------------------------------------------------------------------------
// Recorded: the reporting resident, a closed case, once
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resident_evaluates_their_closed_case_and_it_is_recorded_on_the_case() {
    let world = World::start().await;
    let case_id = world.closed_case("mp-20260312-000187").await;
    let closed_at = world.version(case_id).await;
    let head_before = world.head().await;
    let message = with(
        with(
            evaluation(case_id, "mp-eval-000412", json!(5)),
            "/resolved",
            json!(true),
        ),
        "/comment",
        json!("一个小时就修好了,谢谢网格员!"),
    );

    let reply = world.evaluate(&message).await;

    assert_eq!(
        reply,
        IntakeReply::Accepted {
            case_id,
            sequence: closed_at + 1,
            duplicate: false
        }
    );
    let evaluations = world.evaluations(case_id).await;
    assert_eq!(evaluations.len(), 1);
    let (envelope, evaluated) = &evaluations[0];
    assert_eq!(
        evaluated,
        &CaseEvaluated {
            satisfaction: 5,
            comment: Some("一个小时就修好了,谢谢网格员!".to_owned()),
            resolved: Some(true),
            level: None,
            channel: Some(Channel::MiniProgram),
        }
    );
    assert_eq!(envelope.sequence, closed_at + 1);
    assert_eq!(envelope.actor, Actor::resident(RESIDENT));
    assert_eq!(
        envelope.source,
        Source {
            system: "miniprogram".to_owned(),
            message_id: "mp-eval-000412".to_owned()
        }
    );
    // Recorded at the engine's time of acceptance (the system clock here), not at the
    // sender's claimed `evaluated_at` (2026-03-12T05:30:02Z).
    let age = chrono::Utc::now() - envelope.occurred_at;
    assert!(
        age >= chrono::Duration::zero() && age < chrono::Duration::minutes(5),
        "occurred at {}",
        envelope.occurred_at
    );
    assert_eq!(world.head().await, head_before + 1, "one commit");
    assert_eq!(world.rejected_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hotlines_three_levels_are_recorded_as_five_four_and_one() {
    let world = World::start().await;
    for (n, (word, score, level)) in [
        ("satisfied", 5, SatisfactionLevel::Satisfied),
        (
            "basically_satisfied",
            4,
            SatisfactionLevel::BasicallySatisfied,
        ),
        ("dissatisfied", 1, SatisfactionLevel::Dissatisfied),
    ]
    .into_iter()
    .enumerate()
    {
        let case_id = world.closed_case(&format!("mp-report-{n}")).await;
        let reply = world
            .evaluate(&evaluation(case_id, &format!("mp-eval-{n}"), json!(word)))
            .await;
        assert!(
            matches!(
                reply,
                IntakeReply::Accepted {
                    duplicate: false,
                    ..
                }
            ),
            "{word}: {reply:?}"
        );
        let evaluations = world.evaluations(case_id).await;
        let (_, evaluated) = &evaluations[0];
        assert_eq!(
            (evaluated.satisfaction, evaluated.level),
            (score, Some(level)),
            "{word}"
        );
        assert_eq!(
            evaluated.resolved, None,
            "{word}: the resident was not asked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hotline_calling_the_resident_back_evaluates_on_their_behalf() {
    let world = World::start().await;
    let case_id = world.closed_case("mp-20260312-000188").await;
    let message = json!({
        "kind": "evaluation",
        "schema_version": 1,
        "source": {"system": "hotline-12345", "message_id": "12345-hf-20260313-0071"},
        "evaluated_at": "2026-03-13T10:02:11+08:00",
        "case_id": case_id,
        "resident": {"id": RESIDENT, "phone": "138****5621"},
        "channel": "hotline12345",
        "satisfaction": "basically_satisfied",
        "resolved": true,
        "comment": "回访:问题已解决,处理稍慢"
    });

    let reply = world.evaluate(&message).await;

    assert!(
        matches!(
            reply,
            IntakeReply::Accepted {
                duplicate: false,
                ..
            }
        ),
        "{reply:?}"
    );
    let evaluations = world.evaluations(case_id).await;
    let (envelope, evaluated) = &evaluations[0];
    // The resident evaluated; the hotline carried it.
    assert_eq!(envelope.actor.kind, ActorKind::Resident);
    assert_eq!(envelope.actor.id, RESIDENT);
    assert_eq!(envelope.source.system, "hotline-12345");
    assert_eq!(evaluated.channel, Some(Channel::Hotline12345));
    assert_eq!(
        (evaluated.satisfaction, evaluated.resolved),
        (4, Some(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_evaluation_sent_again_is_answered_alike_and_recorded_once() {
    let world = World::start().await;
    let case_id = world.closed_case("mp-20260312-000189").await;
    let head_before = world.head().await;
    let message = evaluation(case_id, "mp-eval-000413", json!("satisfied"));

    let first = world.evaluate(&message).await;
    let IntakeReply::Accepted {
        sequence,
        duplicate: false,
        ..
    } = first
    else {
        panic!("the first copy is recorded, got {first:?}");
    };
    // A retry later, and a burst of copies at once (a sender retrying on a timeout).
    let mut again = vec![world.evaluate(&message).await];
    again.extend(futures::future::join_all((0..5).map(|_| world.evaluate(&message))).await);

    for reply in again {
        assert_eq!(
            reply,
            IntakeReply::Accepted {
                case_id,
                sequence,
                duplicate: true
            }
        );
    }
    assert_eq!(world.evaluations(case_id).await.len(), 1);
    assert_eq!(world.head().await, head_before + 1, "one commit");
    assert_eq!(world.rejected_count().await, 0);
}

// ---------------------------------------------------------------------------------------
// Refused by the case's rules: nothing written, the message kept
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_resident_may_not_evaluate_the_case_and_the_message_is_kept() {
    let world = World::start().await;
    let case_id = world.closed_case("mp-20260312-000190").await;
    let head_before = world.head().await;
    let message = with(
        evaluation(case_id, "mp-eval-000414", json!(1)),
        "/resident/id",
        json!("wx-someone-else"),
    );
    let sent = message.to_string();

    let reply = world.evaluate(&message).await;

    let (reason, id) = world
        .assert_refused_and_kept(
            reply,
            EVALUATION_SUBJECT,
            sent.as_bytes(),
            "not_reporter",
            Some("resident.id"),
        )
        .await;
    assert!(reason.contains("wx-someone-else"), "{reason}");
    assert!(
        !reason.contains(RESIDENT),
        "the reporter is not named to a stranger: {reason}"
    );
    let raw = async_nats::jetstream::new(world.sender.clone())
        .get_stream(JetStreamRejectedStore::STREAM)
        .await
        .expect("the rejected stream")
        .direct_get(id)
        .await
        .expect("the kept message");
    assert_eq!(raw.subject.as_str(), "wangge.rejected.message.evaluation");
    assert!(world.evaluations(case_id).await.is_empty());
    assert_eq!(world.head().await, head_before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patrol_finding_has_no_resident_who_could_evaluate_it() {
    let world = World::start().await;
    let case_id = world.self_handled_patrol_finding().await;
    let head_before = world.head().await;
    let message = evaluation(case_id, "mp-eval-000415", json!(5));

    let reply = world.evaluate(&message).await;

    let (reason, _) = world
        .assert_refused_and_kept(
            reply,
            EVALUATION_SUBJECT,
            message.to_string().as_bytes(),
            "not_reporter",
            Some("resident.id"),
        )
        .await;
    assert!(reason.contains("patrol finding"), "{reason}");
    assert_eq!(world.head().await, head_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_case_is_not_evaluated_and_the_kept_message_is_accepted_when_replayed_after_closing(
) {
    let world = World::start().await;
    let case_id = world.reported_case("mp-20260312-000191").await;
    let head_before = world.head().await;
    let message = evaluation(case_id, "mp-eval-000416", json!("dissatisfied"));
    let sent = message.to_string();

    let reply = world.evaluate(&message).await;

    let (reason, id) = world
        .assert_refused_and_kept(
            reply,
            EVALUATION_SUBJECT,
            sent.as_bytes(),
            "case_not_closed",
            None,
        )
        .await;
    assert!(
        reason.contains("reported"),
        "names where it stands: {reason}"
    );
    assert_eq!(world.head().await, head_before, "nothing written");

    // The case closes; the operator replays the kept message byte for byte, as
    // `wangge rejected replay` does.
    world.close(case_id).await;
    let kept = world.rejected.get(id).await.expect("kept");
    let mut headers = HeaderMap::new();
    for (name, value) in &kept.rejection.headers {
        headers.append(name.as_str(), value.as_str());
    }
    let replayed = world
        .request(&kept.rejection.subject, headers, kept.rejection.payload)
        .await;

    assert!(
        matches!(
            replayed,
            IntakeReply::Accepted {
                duplicate: false,
                ..
            }
        ),
        "{replayed:?}"
    );
    let evaluations = world.evaluations(case_id).await;
    assert_eq!(evaluations.len(), 1);
    assert_eq!(evaluations[0].1.satisfaction, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_evaluation_of_a_case_never_reported_is_refused_naming_the_case_id() {
    let world = World::start().await;
    world.closed_case("mp-20260312-000192").await;
    let head_before = world.head().await;
    let nowhere = CaseId::derived_from_source(&Source {
        system: "miniprogram".to_owned(),
        message_id: "never-sent".to_owned(),
    });
    let message = evaluation(nowhere, "mp-eval-000417", json!(4));

    let reply = world.evaluate(&message).await;

    let (reason, _) = world
        .assert_refused_and_kept(
            reply,
            EVALUATION_SUBJECT,
            message.to_string().as_bytes(),
            "unknown_case",
            Some("case_id"),
        )
        .await;
    assert!(reason.contains(&nowhere.to_string()), "{reason}");
    assert_eq!(world.head().await, head_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_closure_is_evaluated_once_and_a_case_closed_again_once_more() {
    let world = World::start().await;
    let case_id = world.closed_case("mp-20260312-000193").await;
    let first = world
        .evaluate(&evaluation(case_id, "mp-eval-a", json!(2)))
        .await;
    assert!(matches!(first, IntakeReply::Accepted { .. }), "{first:?}");
    let head_before = world.head().await;

    // A second evaluation of the same closure, under a message id of its own.
    let second = evaluation(case_id, "mp-eval-b", json!(5));
    let reply = world.evaluate(&second).await;
    world
        .assert_refused_and_kept(
            reply,
            EVALUATION_SUBJECT,
            second.to_string().as_bytes(),
            "already_evaluated",
            None,
        )
        .await;
    assert_eq!(world.head().await, head_before, "nothing written");

    // Reopened (the resident complained) and closed again: the new closure may be evaluated.
    world
        .act(
            case_id,
            Actor::supervisor(SUPERVISOR),
            CaseCommand::Reopen {
                reason: "居民反映仍有积水".to_owned(),
            },
        )
        .await;
    world.close(case_id).await;
    let third = world
        .evaluate(&evaluation(case_id, "mp-eval-c", json!(5)))
        .await;
    assert!(
        matches!(
            third,
            IntakeReply::Accepted {
                duplicate: false,
                ..
            }
        ),
        "{third:?}"
    );
    let scores: Vec<u8> = world
        .evaluations(case_id)
        .await
        .iter()
        .map(|(_, evaluated)| evaluated.satisfaction)
        .collect();
    assert_eq!(scores, [2, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_evaluation_under_its_reports_message_id_is_refused_not_taken_for_a_retry() {
    let world = World::start().await;
    // The hotline's work-order number, used for the report and again for the call back.
    let case_id = world.closed_case("12345-20260312-0042").await;
    let head_before = world.head().await;
    let message = evaluation(case_id, "12345-20260312-0042", json!(5));

    let reply = world.evaluate(&message).await;

    world
        .assert_refused_and_kept(
            reply,
            EVALUATION_SUBJECT,
            message.to_string().as_bytes(),
            "message_id_reused",
            Some("source.message_id"),
        )
        .await;
    assert!(world.evaluations(case_id).await.is_empty());
    assert_eq!(world.head().await, head_before);
}

// ---------------------------------------------------------------------------------------
// Malformed: every kind of mistake names its field, and is kept as sent
// ---------------------------------------------------------------------------------------

/// A broken message: what is wrong, the subject and bytes it is sent as, and the code and
/// field the sender is told.
type Broken<'a> = (&'a str, &'a str, Vec<u8>, &'a str, Option<&'a str>);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_evaluations_are_refused_naming_the_field_and_kept_as_sent() {
    let world = World::start().await;
    let case_id = world.closed_case("mp-20260312-000194").await;
    let head_before = world.head().await;
    let valid = evaluation(case_id, "mp-eval-broken", json!("satisfied"));
    let mut too_large = valid.to_string().into_bytes();
    too_large.resize(MAX_MESSAGE_BYTES + 1, b' ');

    let broken: Vec<Broken> = vec![
        (
            "not json",
            EVALUATION_SUBJECT,
            br#"{"kind": "evaluation", "satisfaction": "#.to_vec(),
            "malformed_json",
            None,
        ),
        (
            "too large",
            EVALUATION_SUBJECT,
            too_large,
            "payload_too_large",
            None,
        ),
        (
            "an evaluation on the report subject",
            "wangge.intake.resident_report",
            valid.to_string().into_bytes(),
            "kind_mismatch",
            Some("kind"),
        ),
        (
            "a misspelt kind",
            "wangge.intake.evaluations",
            with(valid.clone(), "/kind", json!("evaluations"))
                .to_string()
                .into_bytes(),
            "unknown_kind",
            Some("kind"),
        ),
        (
            "version 2",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/schema_version", json!(2))
                .to_string()
                .into_bytes(),
            "unsupported_version",
            Some("schema_version"),
        ),
        (
            "no satisfaction",
            EVALUATION_SUBJECT,
            without(valid.clone(), "/satisfaction")
                .to_string()
                .into_bytes(),
            "missing_field",
            Some("satisfaction"),
        ),
        (
            "an unknown level",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/satisfaction", json!("very_satisfied"))
                .to_string()
                .into_bytes(),
            "invalid_value",
            Some("satisfaction"),
        ),
        (
            "the level in Chinese",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/satisfaction", json!("基本满意"))
                .to_string()
                .into_bytes(),
            "invalid_value",
            Some("satisfaction"),
        ),
        (
            "a score of 6",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/satisfaction", json!(6))
                .to_string()
                .into_bytes(),
            "invalid_value",
            Some("satisfaction"),
        ),
        (
            "a score of 0",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/satisfaction", json!(0))
                .to_string()
                .into_bytes(),
            "invalid_value",
            Some("satisfaction"),
        ),
        (
            "half a point",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/satisfaction", json!(4.5))
                .to_string()
                .into_bytes(),
            "invalid_type",
            Some("satisfaction"),
        ),
        (
            "resolved as a word",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/resolved", json!("yes"))
                .to_string()
                .into_bytes(),
            "invalid_type",
            Some("resolved"),
        ),
        (
            "no case id",
            EVALUATION_SUBJECT,
            without(valid.clone(), "/case_id").to_string().into_bytes(),
            "missing_field",
            Some("case_id"),
        ),
        (
            "a case id that is no uuid",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/case_id", json!("case-42"))
                .to_string()
                .into_bytes(),
            "invalid_value",
            Some("case_id"),
        ),
        (
            "no resident id",
            EVALUATION_SUBJECT,
            without(valid.clone(), "/resident/id")
                .to_string()
                .into_bytes(),
            "missing_field",
            Some("resident.id"),
        ),
        (
            "an empty resident id",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/resident/id", json!(" "))
                .to_string()
                .into_bytes(),
            "empty_text",
            Some("resident.id"),
        ),
        (
            "an unknown channel",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/channel", json!("fax"))
                .to_string()
                .into_bytes(),
            "invalid_value",
            Some("channel"),
        ),
        (
            "a date without a time",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/evaluated_at", json!("2026-03-12"))
                .to_string()
                .into_bytes(),
            "invalid_value",
            Some("evaluated_at"),
        ),
        (
            "an empty comment",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/comment", json!(""))
                .to_string()
                .into_bytes(),
            "empty_text",
            Some("comment"),
        ),
        (
            "a comment over its limit",
            EVALUATION_SUBJECT,
            with(
                valid.clone(),
                "/comment",
                json!("好".repeat(MAX_COMMENT_CHARS + 1)),
            )
            .to_string()
            .into_bytes(),
            "text_too_long",
            Some("comment"),
        ),
        (
            "an empty message id",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/source/message_id", json!(""))
                .to_string()
                .into_bytes(),
            "empty_text",
            Some("source.message_id"),
        ),
        (
            "a field the contract does not have",
            EVALUATION_SUBJECT,
            with(valid.clone(), "/score", json!(5))
                .to_string()
                .into_bytes(),
            "unknown_field",
            Some("score"),
        ),
    ];

    for (what, subject, body, code, field) in &broken {
        let reply = world
            .request(subject, HeaderMap::new(), Bytes::from(body.clone()))
            .await;
        let IntakeReply::Rejected {
            code: got_code,
            field: got_field,
            reason,
            rejected_id,
        } = &reply
        else {
            panic!("{what}: expected a refusal, got {reply:?}");
        };
        assert_eq!(
            (got_code.as_str(), got_field.as_deref()),
            (*code, *field),
            "{what}: {reason}"
        );
        let kept = world
            .rejected
            .get(rejected_id.expect("kept"))
            .await
            .expect("the kept message");
        assert_eq!(kept.rejection.payload, Bytes::from(body.clone()), "{what}");
        assert_eq!(kept.rejection.subject, *subject, "{what}");
    }
    assert_eq!(world.head().await, head_before, "nothing written");
    assert_eq!(world.rejected_count().await, broken.len());
    assert!(world.evaluations(case_id).await.is_empty());
}

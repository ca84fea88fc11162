//! SLA reference data of running engines changes by SLA commands over NATS, on a real
//! nats-server: a calendar published to one engine reaches another running engine without a
//! restart, a refused publish names the JSON path at fault, writes nothing and is kept for
//! replay, the same publish sent twice publishes once, racing publishes are never both
//! checked against the same data, and an engine started later folds the stream before it
//! serves. Also: the `--sla-dir` files and the warning that a calendar runs out.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use wangge_engine::app::{ManualClock, SystemClock};
use wangge_engine::domain::sla::{BUNDLED_CALENDARS_JSON, BUNDLED_POLICIES_JSON};
use wangge_engine::grid::{CategoryCatalogue, GridState, SharedGrid};
use wangge_engine::intake::rejected::{ReplayRecord, ReplayReply};
use wangge_engine::intake::{JetStreamRejectedStore, RejectedStore};
use wangge_engine::sla::{
    load_sla_dir, serve_sla_commands, warn_expiring_calendars, LiveSla, SharedSla,
    SlaCommandService, SlaFileError, SlaFollower, SlaReference, SlaSource, SlaStream,
    SlaStreamConfig, SLA_COMMAND_SUBJECT,
};
use wangge_schemas::grid::GridReply;
use wangge_schemas::sla::SlaReply;
use wangge_testkit::NatsServer;

use support::{eventually, within};

const WAIT: Duration = Duration::from_secs(10);

/// A made-up calendar for tests, clearly not the State Council's 2027 schedule.
const TEST_2027_NAME: &str = "TEST calendar for 2027 — not the official schedule";

// ---------------------------------------------------------------------------------------
// An engine instance: the live SLA data and its follower, and SLA commands
// ---------------------------------------------------------------------------------------

struct Engine {
    sla: SharedSla,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    async fn start(server: &NatsServer) -> Self {
        let client = server.connect().await;
        let rejected = JetStreamRejectedStore::open(client.clone(), 1)
            .await
            .expect("open the rejected store");
        let stream = SlaStream::open(client.clone(), SlaStreamConfig::default())
            .await
            .expect("open the sla stream");
        let sla = SharedSla::bundled();
        let mut follower = SlaFollower::new(stream.clone(), sla.clone());
        within("the sla data to catch up", WAIT, follower.catch_up())
            .await
            .expect("catch up with the sla stream");
        let mut tasks = vec![tokio::spawn(follower.run(std::future::pending()))];
        let service = Arc::new(SlaCommandService::new(
            stream,
            sla.clone(),
            SharedGrid::new(GridState::sample_city()),
            Arc::new(CategoryCatalogue::sample()),
            rejected,
            Arc::new(SystemClock),
        ));
        tasks.push(tokio::spawn(async move {
            serve_sla_commands(client, service, std::future::pending())
                .await
                .expect("serve sla commands");
        }));
        Self { sla, tasks }
    }

    fn live(&self) -> Arc<LiveSla> {
        self.sla.snapshot()
    }

    fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// An operator's tool, on its own connection.
struct Operator {
    client: async_nats::Client,
}

impl Operator {
    async fn new(server: &NatsServer) -> Self {
        Self {
            client: server.connect().await,
        }
    }

    /// Request-reply, sent again while no engine listens yet (as a careful sender does).
    async fn publish(&self, command: &Value) -> SlaReply {
        let body = serde_json::to_vec(command).expect("serialize");
        let reply = eventually("an engine to answer", WAIT, || {
            let body = body.clone();
            async move {
                match self
                    .client
                    .request(SLA_COMMAND_SUBJECT.to_owned(), body.into())
                    .await
                {
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
        .await;
        serde_json::from_slice(&reply).expect("an sla reply")
    }
}

fn bundled_calendar() -> Value {
    let file: Value = serde_json::from_str(BUNDLED_CALENDARS_JSON).expect("json");
    file["calendars"][0].clone()
}

/// The bundled `cn` calendar with one invented 2027 holiday and make-up day, published
/// through 2027-12-31: a test calendar, not the real 2027 schedule.
fn test_calendar_2027() -> Value {
    let mut calendar = bundled_calendar();
    calendar["name"] = json!(TEST_2027_NAME);
    calendar["holidays"]
        .as_array_mut()
        .expect("holidays")
        .push(json!({"name": "TEST holiday (invented)", "from": "2027-01-04", "to": "2027-01-05"}));
    calendar["make_up_working_days"]
        .as_array_mut()
        .expect("make-up days")
        .push(json!({"name": "TEST make-up day (invented)", "date": "2027-01-09"}));
    calendar["holidays_published_through"] = json!("2027-12-31");
    calendar
}

fn command(message_id: &str, event_type: &str, payload: Value) -> Value {
    json!({
        "event_type": event_type,
        "schema_version": 1,
        "source": {"system": "wangge-cli", "message_id": message_id},
        "actor": {"kind": "supervisor", "id": "ops-zhang"},
        "payload": payload,
    })
}

fn publish_calendars(message_id: &str, calendars: Vec<Value>) -> Value {
    command(
        message_id,
        "sla.calendars_published",
        json!({ "calendars": calendars }),
    )
}

fn date(text: &str) -> NaiveDate {
    text.parse().expect("a date")
}

fn accepted(reply: &SlaReply) -> (u64, bool) {
    match reply {
        SlaReply::Accepted {
            position,
            duplicate,
            ..
        } => (*position, *duplicate),
        other => panic!("expected the publish to be accepted, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Publishing reaches every running engine
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_2027_test_calendar_published_to_one_engine_reaches_another_without_a_restart() {
    let server = NatsServer::start();
    let first = Engine::start(&server).await;
    let second = Engine::start(&server).await;
    assert_eq!(
        second
            .live()
            .calendar(Some("cn"))
            .holidays_published_through(),
        Some(date("2026-12-31"))
    );
    let mut told = second.sla.changes();

    let operator = Operator::new(&server).await;
    let reply = operator
        .publish(&publish_calendars("cal-2027", vec![test_calendar_2027()]))
        .await;
    let (position, duplicate) = accepted(&reply);
    assert_eq!((position, duplicate), (1, false));
    assert!(
        matches!(&reply, SlaReply::Accepted { published, event_type, .. }
            if published == &["cn"] && event_type == "sla.calendars_published")
    );

    for engine in [&first, &second] {
        assert!(engine.sla.wait_for(position, WAIT).await, "folded in");
        let live = engine.live();
        let cn = live.calendar(Some("cn"));
        assert_eq!(cn.name(), TEST_2027_NAME);
        assert_eq!(cn.holidays_published_through(), Some(date("2027-12-31")));
        assert!(cn.is_holiday(date("2027-01-04")));
        assert!(!cn.is_working_day(date("2027-01-05")));
        assert!(cn.is_make_up_day(date("2027-01-09")));
        assert_eq!((live.position(), live.events(), live.refused()), (1, 1, 0));
    }
    within("the second engine to be told", WAIT, told.changed())
        .await
        .expect("the sender lives");
    assert_eq!(*told.borrow_and_update(), 1);

    // The same command again, a moment or a month later: the same event, nothing new.
    let again = operator
        .publish(&publish_calendars("cal-2027", vec![test_calendar_2027()]))
        .await;
    assert_eq!(accepted(&again), (1, true));
    assert_eq!(second.live().position(), 1);

    // An engine started now folds the stream before it serves.
    let late = Engine::start(&server).await;
    assert_eq!(late.live().position(), 1);
    assert_eq!(late.live().calendar(None).name(), TEST_2027_NAME);
    for engine in [first, second, late] {
        engine.stop();
    }
}

#[tokio::test]
async fn racing_publishes_are_each_checked_against_the_data_the_other_left() {
    let server = NatsServer::start();
    let engines = [Engine::start(&server).await, Engine::start(&server).await];
    let operator = Arc::new(Operator::new(&server).await);
    // Eight publishes of the same calendar moving its date on by a day each, all at once:
    // whichever order they land in, each was checked against the one before.
    let publishes = (1..=8).map(|day| {
        let operator = operator.clone();
        tokio::spawn(async move {
            let mut calendar = test_calendar_2027();
            calendar["holidays_published_through"] = json!(format!("2028-01-{day:02}"));
            operator
                .publish(&publish_calendars(&format!("race-{day}"), vec![calendar]))
                .await
        })
    });
    let mut positions = Vec::new();
    let mut backwards = 0;
    for publish in publishes {
        match publish.await.expect("publish task") {
            SlaReply::Accepted { position, .. } => positions.push(position),
            SlaReply::Rejected { code, .. } if code == "published_through_backwards" => {
                backwards += 1
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len() + backwards, 8, "{positions:?}");
    assert!(!positions.is_empty());
    // What landed never went backwards: the last written is the latest date of them.
    let head = *positions.last().expect("a position");
    for engine in &engines {
        assert!(engine.sla.wait_for(head, WAIT).await);
    }
    let through = engines[0]
        .live()
        .calendar(Some("cn"))
        .holidays_published_through()
        .expect("a date");
    assert!(through >= date("2028-01-01"));
    assert_eq!(engines[0].live().reference(), engines[1].live().reference());
    assert_eq!(engines[0].live().refused(), 0);
    for engine in engines {
        engine.stop();
    }
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_refused_publish_names_the_json_path_writes_nothing_and_is_kept_for_replay() {
    let server = NatsServer::start();
    let engine = Engine::start(&server).await;
    let operator = Operator::new(&server).await;
    let store = JetStreamRejectedStore::open(server.connect().await, 1)
        .await
        .expect("open the rejected store");

    let overlapping = {
        let mut calendar = test_calendar_2027();
        calendar["working_hours"]["monday"] = json!(["08:30-12:00", "11:30-17:30"]);
        publish_calendars("bad-1", vec![calendar])
    };
    let holiday_and_make_up = {
        let mut calendar = test_calendar_2027();
        calendar["make_up_working_days"][0]["date"] = json!("2026-01-02");
        publish_calendars("bad-2", vec![calendar])
    };
    let unknown_field = {
        let mut calendar = test_calendar_2027();
        calendar["holidays"][2]["until"] = json!("2026-04-06");
        publish_calendars("bad-3", vec![calendar])
    };
    let policy_in_use = command(
        "bad-4",
        "sla.policies_published",
        json!({"policies": [], "removed": ["urgent_facility"]}),
    );
    let backwards = {
        let mut calendar = bundled_calendar();
        calendar["holidays_published_through"] = json!("2026-10-31");
        publish_calendars("bad-5", vec![calendar])
    };
    let cases = [
        (
            overlapping,
            "overlapping_intervals",
            "payload.calendars[0].working_hours.monday[1]",
        ),
        (
            holiday_and_make_up,
            "make_up_day_is_holiday",
            "payload.calendars[0].make_up_working_days[0].date",
        ),
        (
            unknown_field,
            "unknown_field",
            "payload.calendars[0].holidays[2].until",
        ),
        (policy_in_use, "policy_in_use", "payload.removed[0]"),
        (
            backwards,
            "published_through_backwards",
            "payload.calendars[0].holidays_published_through",
        ),
    ];
    let before = engine.live().reference().clone();
    for (message, code, field) in cases {
        let reply = operator.publish(&message).await;
        let SlaReply::Rejected {
            code: got,
            field: got_field,
            reason,
            rejected_id,
        } = reply
        else {
            panic!("expected {code}, got {reply:?}");
        };
        assert_eq!((got.as_str(), got_field.as_deref()), (code, Some(field)));
        assert!(!reason.is_empty());
        let kept = store
            .get(rejected_id.expect("kept"))
            .await
            .expect("the refused command is kept");
        assert_eq!(kept.rejection.subject, SLA_COMMAND_SUBJECT);
        assert_eq!(kept.rejection.code, code);
        assert_eq!(kept.rejection.field.as_deref(), Some(field));
        assert_eq!(
            serde_json::from_slice::<Value>(&kept.rejection.payload).expect("original bytes"),
            message,
            "kept byte for byte, to be replayed"
        );
    }
    let stream = SlaStream::open(server.connect().await, SlaStreamConfig::default())
        .await
        .expect("open");
    assert_eq!(stream.head().await.expect("head"), 0, "nothing was written");
    assert_eq!(engine.live().reference(), &before);
    engine.stop();
}

// ---------------------------------------------------------------------------------------
// Files and the coverage warning
// ---------------------------------------------------------------------------------------

#[test]
fn an_sla_dir_may_hold_either_file_and_a_bad_one_stops_the_start_with_its_path() {
    let dir = tempfile::tempdir().expect("scratch dir");
    let (reference, calendars, policies) = load_sla_dir(Some(dir.path())).expect("empty dir");
    assert_eq!(reference, SlaReference::bundled());
    assert_eq!(
        (calendars, policies),
        (SlaSource::Bundled, SlaSource::Bundled)
    );

    let mut file: Value = serde_json::from_str(BUNDLED_CALENDARS_JSON).expect("json");
    file["calendars"][0] = test_calendar_2027();
    let path = dir.path().join("calendars.json");
    std::fs::write(&path, file.to_string()).expect("write");
    let (reference, calendars, policies) = load_sla_dir(Some(dir.path())).expect("valid");
    assert_eq!(reference.calendar(None).name(), TEST_2027_NAME);
    assert_eq!(calendars, SlaSource::File(path.clone()));
    assert_eq!(policies, SlaSource::Bundled);

    file["calendars"][0]["holidays"][2]["to"] = json!("2026-04-01");
    std::fs::write(&path, file.to_string()).expect("write");
    let error = load_sla_dir(Some(dir.path())).expect_err("refused");
    assert!(matches!(error, SlaFileError::Invalid { .. }));
    let message = error.to_string();
    assert!(message.contains("calendars.json"), "{message}");
    assert!(message.contains("calendars[0].holidays[2].to"), "{message}");

    let mut policies: Value = serde_json::from_str(BUNDLED_POLICIES_JSON).expect("json");
    policies["default_policy"] = json!("lenient");
    std::fs::write(dir.path().join("policies.json"), policies.to_string()).expect("write");
    std::fs::write(&path, BUNDLED_CALENDARS_JSON).expect("write");
    let message = load_sla_dir(Some(dir.path()))
        .expect_err("refused")
        .to_string();
    assert!(
        message.contains("policies.json") && message.contains("default_policy"),
        "{message}"
    );
}

#[test]
fn the_coverage_warning_names_the_calendars_within_45_days_and_not_46() {
    let sla = SharedSla::bundled();
    // 2026-11-16 in Beijing is 45 days before 2026-12-31; the 15th is 46.
    let on =
        |day: u32| ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 11, day, 2, 0, 0).unwrap());
    assert!(warn_expiring_calendars(&sla, &on(15)).is_empty());
    let warned = warn_expiring_calendars(&sla, &on(16));
    assert_eq!(warned.len(), 1);
    assert_eq!(
        (warned[0].id.as_str(), warned[0].days_left),
        ("cn", Some(45))
    );
    // 16:30 UTC on the 15th is already the 16th in Beijing.
    let evening = ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 11, 15, 16, 30, 0).unwrap());
    assert_eq!(warn_expiring_calendars(&sla, &evening).len(), 1);
}

/// A replay's outcome is stored as the reply itself: an accepted SLA reply reads back as an
/// SLA reply (not as the grid reply it resembles), and grid replies still read as before.
#[test]
fn a_replayed_sla_command_reads_back_as_an_sla_reply() {
    let event_id = uuid::Uuid::nil();
    let sla = ReplayReply::Sla(SlaReply::Accepted {
        event_id,
        event_type: "sla.calendars_published".to_owned(),
        position: 3,
        duplicate: false,
        published: vec!["cn".to_owned()],
    });
    let grid = ReplayReply::Grid(GridReply::Accepted {
        event_id,
        event_type: "grid.cell_added".to_owned(),
        position: 4,
        duplicate: false,
    });
    for reply in [sla, grid] {
        let record = ReplayRecord {
            replayed_at: Utc.with_ymd_and_hms(2026, 11, 20, 1, 0, 0).unwrap(),
            reply: reply.clone(),
        };
        let stored = serde_json::to_vec(&record).expect("serialize");
        let read: ReplayRecord = serde_json::from_slice(&stored).expect("reads back");
        assert_eq!(read.reply, reply);
    }
}

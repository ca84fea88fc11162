//! The checks of a resident's evaluation, one rule per test, without a server: the message
//! read from bytes ([`check_intake`]), then held against the history of its case
//! ([`evaluation_request`]) — which rule is asked first, and what the sender is told.

use std::sync::{Arc, LazyLock};

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use wangge_engine::app::{CaseService, CommandRequest, ManualClock};
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::intake::validate::evaluation::evaluation_request;
use wangge_engine::intake::{
    check_intake, validate_intake, CheckedIntake, IntakeRejection, ReferenceData, RejectCode,
};
use wangge_engine::log::{EventLog, MemoryLog};
use wangge_schemas::intake::EvaluationV1;
use wangge_schemas::{
    Actor, CaseId, CaseReported, Channel, EventEnvelope, Priority, ReportDetails, Resident,
    SatisfactionLevel, Source, Tier,
};

static GRID: LazyLock<GridDirectory> = LazyLock::new(GridDirectory::sample_city);
static CATEGORIES: LazyLock<CategoryCatalogue> = LazyLock::new(CategoryCatalogue::sample);

const RESIDENT: &str = "wx-oU7x2kQ9dLr3";
const WORKER: &str = "gw-0427";

/// The engine's clock as the messages arrive: shortly after the last of them was sent.
const NOW: &str = "2026-03-13T12:00:00+08:00";

fn reference() -> ReferenceData<'static> {
    ReferenceData {
        grid: &GRID,
        categories: &CATEGORIES,
        now: NOW.parse().expect("a time"),
        clock_bounds: Default::default(),
    }
}

/// A case on an in-memory log, taken through its steps by the command handler.
struct Case {
    id: CaseId,
    cases: CaseService<MemoryLog>,
    steps: u64,
}

impl Case {
    async fn reported_by(resident: Option<&str>) -> Self {
        let clock = ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 3, 12, 0, 15, 0).unwrap());
        let case = Self {
            id: CaseId::derived_from_source(&source("miniprogram", "mp-20260312-000187")),
            cases: CaseService::new(MemoryLog::new(), Arc::new(clock)),
            steps: 0,
        };
        let details = match resident {
            Some(id) => ReportDetails::ResidentReport {
                channel: Channel::MiniProgram,
                resident: Resident {
                    id: id.to_owned(),
                    contact: None,
                    legacy_contact: None,
                },
            },
            None => ReportDetails::PatrolFinding {
                worker_id: WORKER.to_owned(),
                patrol_kind: wangge_schemas::PatrolKind::Daily,
                fixed_on_spot: false,
            },
        };
        let location = GRID
            .locate_building("330106001001001")
            .expect("a building of the sample city")
            .clone();
        case.run_as(
            source("miniprogram", "mp-20260312-000187"),
            CaseCommand::Report {
                location,
                report: CaseReported {
                    intake_clock: None,
                    title: "下水道堵塞".to_owned(),
                    description: String::new(),
                    reported_category: "drainage.blocked".to_owned(),
                    media: Vec::new(),
                    coordinates: None,
                    details,
                },
            },
        )
        .await;
        case
    }

    async fn run_as(&self, source: Source, command: CaseCommand) {
        let name = command.name();
        let request = CommandRequest {
            case_id: self.id,
            command,
            actor: Actor::system("test"),
            source,
            occurred_at: None,
            correlation_id: None,
            causation_id: None,
        };
        if let Err(error) = self.cases.handle(request).await {
            panic!("{name} refused: {error}");
        }
    }

    async fn run(&mut self, command: CaseCommand) {
        self.steps += 1;
        let source = source("city-staff", &format!("staff-{}", self.steps));
        self.run_as(source, command).await;
    }

    async fn close(&mut self) {
        self.run(CaseCommand::AcceptAndDispatch {
            category: String::new(),
            priority: Priority::Normal,
            tier: Tier::Building,
            cell: "330106001001001".to_owned(),
            assignee: WORKER.to_owned(),
        })
        .await;
        self.run(CaseCommand::Acknowledge {
            worker_id: WORKER.to_owned(),
        })
        .await;
        self.run(CaseCommand::Resolve {
            worker_id: WORKER.to_owned(),
            notes: "已疏通".to_owned(),
            media: Vec::new(),
        })
        .await;
        self.run(CaseCommand::Verify {
            verifier: "sq-secretary-03".to_owned(),
            passed: true,
            notes: None,
        })
        .await;
    }

    async fn history(&self) -> Vec<EventEnvelope> {
        self.cases.log().load(self.id).await.expect("load").events
    }
}

fn source(system: &str, message_id: &str) -> Source {
    Source {
        system: system.to_owned(),
        message_id: message_id.to_owned(),
    }
}

fn message(case_id: CaseId, resident: &str, satisfaction: Value) -> Value {
    json!({
        "kind": "evaluation",
        "schema_version": 1,
        "source": {"system": "hotline-12345", "message_id": "12345-hf-0071"},
        "evaluated_at": "2026-03-13T10:02:11+08:00",
        "case_id": case_id,
        "resident": {"id": resident},
        "channel": "hotline12345",
        "satisfaction": satisfaction
    })
}

/// The message read from bytes as the intake service reads it; panics unless it is a
/// well-formed evaluation.
fn read(message: &Value) -> EvaluationV1 {
    match check_intake(
        Some("evaluation"),
        message.to_string().as_bytes(),
        reference(),
    ) {
        Ok(CheckedIntake::Evaluation(evaluation)) => *evaluation,
        Ok(CheckedIntake::Report(_)) => panic!("an evaluation was read as a report"),
        Err(rejection) => panic!("the message was refused: {rejection:?}"),
    }
}

fn checked(message: &Value, history: &[EventEnvelope]) -> Result<CommandRequest, IntakeRejection> {
    let now = Utc.with_ymd_and_hms(2026, 3, 13, 2, 5, 0).unwrap();
    evaluation_request(&read(message), history, now)
}

#[track_caller]
fn assert_refusal(
    result: Result<CommandRequest, IntakeRejection>,
    code: RejectCode,
    field: Option<&str>,
) -> String {
    match result {
        Ok(request) => panic!("expected {code:?}, got the command {:?}", request.command),
        Err(rejection) => {
            assert_eq!(
                (rejection.code, rejection.field.as_deref()),
                (code, field),
                "{}",
                rejection.reason
            );
            rejection.reason
        }
    }
}

#[tokio::test]
async fn the_reporting_resident_evaluating_a_closed_case_becomes_an_evaluate_command() {
    let mut case = Case::reported_by(Some(RESIDENT)).await;
    case.close().await;

    let request = checked(
        &message(case.id, RESIDENT, json!("basically_satisfied")),
        &case.history().await,
    )
    .expect("accepted");

    assert_eq!(request.case_id, case.id);
    assert_eq!(request.actor, Actor::resident(RESIDENT));
    assert_eq!(request.source, source("hotline-12345", "12345-hf-0071"));
    // Recorded at the engine's time of acceptance, not at the sender's `evaluated_at`.
    assert_eq!(request.occurred_at, None);
    assert_eq!(
        request.command,
        CaseCommand::Evaluate {
            satisfaction: 4,
            comment: None,
            resolved: None,
            level: Some(SatisfactionLevel::BasicallySatisfied),
            channel: Some(Channel::Hotline12345),
        }
    );
}

#[tokio::test]
async fn a_stranger_is_told_only_that_they_did_not_report_the_case_whatever_its_status() {
    let case = Case::reported_by(Some(RESIDENT)).await;
    // Still open: the reporter would hear `case_not_closed`, a stranger hears nothing of it.
    let history = case.history().await;
    assert_refusal(
        checked(&message(case.id, RESIDENT, json!(5)), &history),
        RejectCode::CaseNotClosed,
        None,
    );
    let reason = assert_refusal(
        checked(&message(case.id, "wx-stranger", json!(5)), &history),
        RejectCode::NotReporter,
        Some("resident.id"),
    );
    assert!(
        !reason.contains(RESIDENT),
        "the reporter is not named: {reason}"
    );
}

#[tokio::test]
async fn an_unknown_case_is_named_before_anything_else() {
    let nowhere = CaseId::derived_from_source(&source("miniprogram", "never-sent"));
    let reason = assert_refusal(
        checked(&message(nowhere, "wx-stranger", json!(5)), &[]),
        RejectCode::UnknownCase,
        Some("case_id"),
    );
    assert!(reason.contains(&nowhere.to_string()), "{reason}");
}

#[tokio::test]
async fn a_patrol_finding_has_no_reporting_resident() {
    let mut case = Case::reported_by(None).await;
    case.close().await;
    let reason = assert_refusal(
        checked(&message(case.id, RESIDENT, json!(5)), &case.history().await),
        RejectCode::NotReporter,
        Some("resident.id"),
    );
    assert!(reason.contains("patrol finding"), "{reason}");
}

#[tokio::test]
async fn the_recorded_evaluation_sent_again_passes_to_be_answered_with_the_earlier_result() {
    let mut case = Case::reported_by(Some(RESIDENT)).await;
    case.close().await;
    let evaluation = message(case.id, RESIDENT, json!(5));
    let request = checked(&evaluation, &case.history().await).expect("accepted");
    case.cases.handle(request).await.expect("recorded");

    // The same message: passes (the command handler answers it as a duplicate).
    assert!(checked(&evaluation, &case.history().await).is_ok());
    // Another message for the same closure: refused.
    let mut second = evaluation.clone();
    second["source"]["message_id"] = json!("12345-hf-0072");
    assert_refusal(
        checked(&second, &case.history().await),
        RejectCode::AlreadyEvaluated,
        None,
    );
}

#[tokio::test]
async fn a_message_id_the_case_used_for_its_report_is_not_taken_for_a_retry() {
    let mut case = Case::reported_by(Some(RESIDENT)).await;
    case.close().await;
    let mut reused = message(case.id, RESIDENT, json!(5));
    reused["source"] = json!({"system": "miniprogram", "message_id": "mp-20260312-000187"});
    let reason = assert_refusal(
        checked(&reused, &case.history().await),
        RejectCode::MessageIdReused,
        Some("source.message_id"),
    );
    assert!(reason.contains("mp-20260312-000187"), "{reason}");
}

#[test]
fn the_message_is_checked_before_any_case_is_looked_at() {
    // A bad score on a case nobody reported: the sender first hears about the score.
    let nowhere = CaseId::derived_from_source(&source("miniprogram", "never-sent"));
    let bytes = message(nowhere, RESIDENT, json!(9)).to_string();
    let rejection =
        check_intake(Some("evaluation"), bytes.as_bytes(), reference()).expect_err("refused");
    assert_eq!(
        (rejection.code, rejection.field.as_deref()),
        (RejectCode::InvalidValue, Some("satisfaction"))
    );
    assert!(
        rejection
            .reason
            .contains("`satisfied`, `basically_satisfied`, `dissatisfied` or a score from 1 to 5"),
        "{}",
        rejection.reason
    );
}

#[test]
fn an_evaluation_opens_no_case() {
    let nowhere = CaseId::derived_from_source(&source("miniprogram", "never-sent"));
    let bytes = message(nowhere, RESIDENT, json!(5)).to_string();
    let rejection = validate_intake(Some("evaluation"), bytes.as_bytes(), reference())
        .expect_err("validate_intake reads only messages that open a case");
    assert_eq!(
        (rejection.code, rejection.field.as_deref()),
        (RejectCode::KindMismatch, Some("kind"))
    );
}

#[test]
fn the_evaluation_example_is_read_by_this_engine() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/examples/intake/evaluation.json");
    let bytes = std::fs::read(&path).expect("the example");
    let Ok(CheckedIntake::Evaluation(evaluation)) =
        check_intake(Some("evaluation"), &bytes, reference())
    else {
        panic!("{} is not read as an evaluation", path.display());
    };
    assert_eq!(evaluation.satisfaction.score(), 5);
    assert_eq!(
        evaluation.satisfaction.level(),
        Some(SatisfactionLevel::Satisfied)
    );
}

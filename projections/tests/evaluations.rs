//! 解决率 and 满意率 as supervisors read them, from residents' evaluations that arrive the way
//! other systems send them: intake messages on `wangge.intake.evaluation`, checked and
//! recorded by the intake service, folded by the projections into the in-memory read models.

mod city;

use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use city::City;
use serde_json::{json, Value};
use wangge_engine::app::CaseService;
use wangge_engine::intake::service::IncomingMessage;
use wangge_engine::intake::{IntakeService, MemoryRejectedStore, RejectedStore};
use wangge_engine::log::MemoryLog;
use wangge_projections::query::IndicatorQuery;
use wangge_projections::ReadModels;
use wangge_schemas::intake::IntakeReply;
use wangge_schemas::CaseId;

/// The resident every case of [`City::dispatched_case`] is reported by.
const RESIDENT: &str = "resident-1";

struct Intake {
    service: IntakeService<MemoryLog, MemoryRejectedStore>,
}

impl Intake {
    /// The intake service of an engine on the city's log and clock.
    fn of(city: &City) -> Self {
        let cases = CaseService::new(city.log.clone(), Arc::new(city.clock.clone()));
        Self {
            service: IntakeService::new(
                Arc::new(cases),
                MemoryRejectedStore::default(),
                city.context.shared_grid().clone(),
                city.context.categories().clone(),
            ),
        }
    }

    async fn send(&self, message: &Value) -> IntakeReply {
        self.service
            .process(IncomingMessage {
                subject: "wangge.intake.evaluation".to_owned(),
                headers: Vec::new(),
                payload: Bytes::from(message.to_string()),
            })
            .await
    }
}

fn evaluation(case_id: CaseId, resident: &str, satisfaction: Value, resolved: Value) -> Value {
    let mut message = json!({
        "kind": "evaluation",
        "schema_version": 1,
        "source": {"system": "hotline-12345", "message_id": format!("hf-{case_id}")},
        "evaluated_at": "2026-11-24T16:00:00+08:00",
        "case_id": case_id,
        "resident": {"id": resident},
        "channel": "hotline12345",
        "satisfaction": satisfaction
    });
    if !resolved.is_null() {
        message["resolved"] = resolved;
    }
    message
}

fn the_day() -> IndicatorQuery {
    let day: NaiveDate = "2026-11-24".parse().expect("a date");
    IndicatorQuery {
        from: day,
        to: day,
        district: None,
        community: None,
        cell: None,
        category: None,
        group: None,
    }
}

#[tokio::test]
async fn resolution_and_satisfaction_rates_come_from_the_evaluations_residents_send() {
    let city = City::new();
    let intake = Intake::of(&city);
    let mut closed = Vec::new();
    for n in 0..6 {
        let (location, worker) = city.building(n);
        let case_id = city.dispatched_case(&location, &worker).await;
        city.later(15);
        city.handle_to_closing(case_id, &worker, true).await;
        closed.push(case_id);
    }
    city.later(60);

    // What the residents said when the hotline called back, and what it counts as:
    // (satisfaction, resolved) → solved (解决), satisfied (满意).
    let answers = [
        (json!("satisfied"), json!(true)),           // solved, satisfied
        (json!("basically_satisfied"), Value::Null), // not asked: 4 ≥ 3 → solved; satisfied
        (json!("dissatisfied"), Value::Null),        // not asked: 1 < 3 → unsolved
        (json!(3), json!(false)),                    // their answer wins over the score
        (json!("dissatisfied"), json!(true)),        // solved, yet unhappy with the handling
    ];
    for (case_id, (satisfaction, resolved)) in closed.iter().zip(answers) {
        let reply = intake
            .send(&evaluation(*case_id, RESIDENT, satisfaction, resolved))
            .await;
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
    }
    // The sixth case is closed but nobody evaluated it; a stranger's try is refused and
    // counts for nothing.
    let stranger = intake
        .send(&evaluation(closed[5], "resident-2", json!(5), json!(true)))
        .await;
    assert!(
        matches!(&stranger, IntakeReply::Rejected { code, .. } if code == "not_reporter"),
        "{stranger:?}"
    );
    assert_eq!(
        intake
            .service
            .rejected_store()
            .list(1, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let models = city.read_models().await;
    let rows = models.indicators(&the_day()).await.unwrap();
    let total = rows
        .iter()
        .find(|row| row.key == "total")
        .expect("a total row");
    assert_eq!(total.counts.closed, 6);
    assert_eq!(total.counts.evaluated, 5);
    assert_eq!(total.counts.resolved_for_resident, 3);
    assert_eq!(total.counts.satisfied, 2);
    assert_eq!(total.resolution_rate, Some(0.6), "解决率 = 3 of 5");
    assert_eq!(total.satisfaction_rate, Some(0.4), "满意率 = 2 of 5");

    // The case shows the last evaluation as the resident gave it.
    let case = models.case(closed[1]).await.unwrap().expect("the case");
    assert_eq!(case.summary.satisfaction, Some(4));
    assert_eq!(case.summary.resolved_for_resident, None);
    let case = models.case(closed[3]).await.unwrap().expect("the case");
    assert_eq!(
        (
            case.summary.satisfaction,
            case.summary.resolved_for_resident
        ),
        (Some(3), Some(false))
    );
}

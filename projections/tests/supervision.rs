//! 督办 on the read side: a case the district let run past its own limit shows as supervised
//! (since when, by whom) in the case list and on the SLA board, which can show supervised
//! cases alone, and its audit trail records the request — in memory and in PostgreSQL alike.

mod city;

use chrono::Duration;
use city::City;
use wangge_engine::domain::CaseCommand;
use wangge_projections::fold::audit::AuditProjection;
use wangge_projections::fold::cases::CasesProjection;
use wangge_projections::fold::Projection;
use wangge_projections::query::{BoardGroup, BoardQuery, CaseQuery};
use wangge_projections::runner::{project_batch, ProjectionStore};
use wangge_projections::{PostgresReadModels, ReadModels};
use wangge_schemas::{Actor, CaseId, SlaStep, Tier};
use wangge_testkit::TestDatabase;

const UNIT: &str = "翠苑街道党工委督查督办室";

struct Story {
    city: City,
    supervised: CaseId,
    other: CaseId,
}

/// Two cases at 翠苑街道: both escalated to the district; one the district lets run out and
/// is referred for supervision, the other is not.
async fn story() -> Story {
    let city = City::new();
    let (location, worker) = city.building(0);
    assert_eq!(location.district, "330106001");
    let mut cases = Vec::new();
    for _ in 0..2 {
        let case_id = city.dispatched_case(&location, &worker).await;
        city.later(10);
        city.run(
            case_id,
            Actor::system("wangge-sla-timer"),
            CaseCommand::Escalate {
                to_tier: Tier::District,
                cell: location.district.clone(),
                reason: "acknowledgement overdue".into(),
            },
        )
        .await;
        city.run(
            case_id,
            Actor::system("dispatcher"),
            CaseCommand::Dispatch {
                tier: Tier::District,
                cell: location.district.clone(),
                assignee: "ds-330106001-utilities".into(),
            },
        )
        .await;
        cases.push(case_id);
    }
    let supervised = cases[0];
    let overdue_since = city.now();
    city.later(150);
    city.timer_records(supervised, SlaStep::Acknowledge, overdue_since, true)
        .await;
    city.run(
        supervised,
        Actor::system("wangge-sla-timer"),
        CaseCommand::RequestSupervision {
            district: location.district.clone(),
            cell: location.district.clone(),
            unit: Some(UNIT.into()),
            leaders: vec!["lead-330106001-1".into(), "lead-330106001-2".into()],
            contact: None,
            step: SlaStep::Acknowledge,
            overdue_since,
            reason: "acknowledgement overdue at the district".into(),
        },
    )
    .await;
    city.later(1);
    Story {
        city,
        supervised,
        other: cases[1],
    }
}

async fn check(models: &dyn ReadModels, story: &Story) {
    let supervised_only = CaseQuery {
        supervised: Some(true),
        ..CaseQuery::default()
    };
    let page = models.cases(&supervised_only).await.unwrap();
    let ids: Vec<CaseId> = page.items.iter().map(|c| c.summary.case_id).collect();
    assert_eq!(ids, vec![story.supervised]);
    let shown = page.items[0].summary.supervision.clone().unwrap();
    assert_eq!(shown.unit.as_deref(), Some(UNIT));
    assert_eq!(shown.since, story.city.now() - Duration::minutes(1));
    assert_eq!(shown.requests, 1);
    // Still the district's handler's.
    assert_eq!(
        page.items[0].summary.assignee.as_deref(),
        Some("ds-330106001-utilities")
    );

    let others = CaseQuery {
        supervised: Some(false),
        ..CaseQuery::default()
    };
    let ids: Vec<CaseId> = models
        .cases(&others)
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.summary.case_id)
        .collect();
    assert_eq!(ids, vec![story.other]);

    let by_district = |supervised| BoardQuery {
        group: Some(BoardGroup::District),
        supervised,
        ..BoardQuery::default()
    };
    let all = models.sla_board(&by_district(None)).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].counts.total(), all[0].supervised), (2, 1));
    let only = models.sla_board(&by_district(Some(true))).await.unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!((only[0].counts.total(), only[0].supervised), (1, 1));
    let cells = models
        .sla_board(&BoardQuery {
            supervised: Some(true),
            ..BoardQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        cells
            .iter()
            .map(|row| (row.code.as_str(), row.tier))
            .collect::<Vec<_>>(),
        vec![("330106001", Some(Tier::District))]
    );

    let trail = models.audit_trail(story.supervised).await.unwrap().unwrap();
    let entry = trail
        .entries
        .iter()
        .find(|e| e.entry.event_type == "case.supervision_requested")
        .expect("the audit trail shows the request");
    assert!(
        entry
            .entry
            .changes
            .iter()
            .any(|c| c.field == "supervision" && c.to.as_deref() == Some(UNIT)),
        "{:?}",
        entry.entry.changes
    );
    assert!(trail.problems.is_empty());
}

#[tokio::test]
async fn a_supervised_case_shows_on_the_list_the_board_and_the_audit_trail_in_memory() {
    let story = story().await;
    let models = story.city.read_models().await;
    check(&*models, &story).await;
}

#[tokio::test]
async fn a_supervised_case_shows_on_the_list_the_board_and_the_audit_trail_in_postgres() {
    let story = story().await;
    let database = TestDatabase::create().await;
    let postgres = PostgresReadModels::connect(&database.url(), story.city.context.clone())
        .await
        .expect("connect the read models");
    let commits = story.city.commits().await;
    fold(&postgres, &CasesProjection, &commits).await;
    fold(&postgres, &AuditProjection, &commits).await;
    check(&*postgres, &story).await;
}

async fn fold<P: Projection>(
    postgres: &PostgresReadModels,
    projection: &P,
    commits: &[wangge_engine::log::StoredCommit],
) where
    PostgresReadModels: ProjectionStore<P>,
{
    // In batches of two commits, so a case's board entry moves within and across batches.
    let mut position = 0;
    for batch in commits.chunks(2) {
        position = project_batch(projection, postgres, position, batch)
            .await
            .expect("fold a batch into PostgreSQL");
    }
}

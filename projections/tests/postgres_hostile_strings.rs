//! A projection never stalls on one event. PostgreSQL cannot store U+0000, yet the log may
//! hold it: events written before intake refused control characters, or by another writer.
//! Such an event is put into the log directly here (past intake), taken through a whole
//! case, and every projection must fold it into PostgreSQL; the read models serve the case
//! as written (its state is compressed bytes, which hold the NUL), its columns hold U+FFFD
//! where the NUL was, and its audit trail stays intact.

mod city;

use city::City;
use wangge_engine::domain::CaseCommand;
use wangge_projections::fold::audit::AuditProjection;
use wangge_projections::fold::cases::CasesProjection;
use wangge_projections::fold::indicators::IndicatorsProjection;
use wangge_projections::fold::patrols::PatrolsProjection;
use wangge_projections::query::CaseQuery;
use wangge_projections::runner::{project_batch, ProjectionStore};
use wangge_projections::{PostgresReadModels, ReadModels};
use wangge_schemas::{
    Actor, CaseId, CaseReported, Channel, Priority, ReportDetails, Resident, ResidentContact,
};
use wangge_testkit::TestDatabase;

const HOSTILE_RESIDENT: &str = "resident-\u{0}-1";

#[tokio::test]
async fn every_projection_folds_a_case_whose_texts_hold_u0000_into_postgresql() {
    let city = City::new();
    let (location, worker) = city.building(0);
    let case_id = CaseId::new_v7();
    let report = CaseReported {
        intake_clock: None,
        title: "井盖\u{0}丢失".into(),
        description: "\u{0}\u{1b}[2J 路口井盖不见了\u{0}".into(),
        reported_category: "drainage.blocked".into(),
        media: Vec::new(),
        coordinates: None,
        details: ReportDetails::ResidentReport {
            channel: Channel::MiniProgram,
            resident: Resident {
                id: HOSTILE_RESIDENT.into(),
                contact: None,
                // An event written before contacts were sealed held them in plain text.
                legacy_contact: Some(Box::new(ResidentContact {
                    name: Some("王\u{0}".into()),
                    phone: Some("138\u{0}".into()),
                    id_number: None,
                })),
            },
        },
    };
    city.run(
        case_id,
        Actor::resident(HOSTILE_RESIDENT),
        CaseCommand::Report {
            location: location.clone(),
            report,
        },
    )
    .await;
    city.accept(case_id, "drainage.blocked", Priority::High)
        .await;
    city.dispatch(case_id, &location, &worker).await;
    city.handle_to_closing(case_id, &worker, true).await;
    // And an ordinary case after it, which must not wait behind the hostile one.
    let ordinary = city.dispatched_case(&location, &worker).await;

    let database = TestDatabase::create().await;
    let postgres = PostgresReadModels::connect(&database.url(), city.context.clone())
        .await
        .expect("the read models open");
    let commits = city.commits().await;
    let head = commits.last().expect("a log").position;
    macro_rules! fold {
        ($projection:ident) => {{
            let from = ProjectionStore::<$projection>::checkpoint(&*postgres)
                .await
                .unwrap();
            project_batch(&$projection, &*postgres, from, &commits)
                .await
                .unwrap_or_else(|error| panic!("{} stalled: {error}", stringify!($projection)));
        }};
    }
    fold!(CasesProjection);
    fold!(AuditProjection);
    fold!(IndicatorsProjection);
    fold!(PatrolsProjection);
    for checkpoint in postgres.checkpoints().await.unwrap() {
        assert_eq!(checkpoint.position, head, "{checkpoint:?}");
    }

    // The case is served as it was written: its state is kept compressed (`bytea`), which
    // holds the U+0000 a JSONB column could not.
    let view = postgres.case(case_id).await.unwrap().expect("the case");
    assert_eq!(view.summary.title, "井盖\u{0}丢失");
    assert_eq!(view.summary.reporter.as_deref(), Some("resident-\u{0}-1"));
    assert!(postgres.case(ordinary).await.unwrap().is_some());
    // The lists and the filters work around it.
    let page = postgres
        .cases(&CaseQuery {
            building: Some(location.building.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    // Its audit trail keeps every entry as hashed: intact.
    let trail = postgres
        .audit_trail(case_id)
        .await
        .unwrap()
        .expect("a trail");
    assert!(trail.problems.is_empty(), "{:?}", trail.problems);
    assert!(trail.entries[0]
        .entry
        .payload
        .to_string()
        .contains("\\u0000"));
}

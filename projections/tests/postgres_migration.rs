//! Read models of the previous release move to this one. `V3__indicators_as_defined` finds
//! indicators computed under the old definitions (every registered case in its report day
//! and building cell) and per-case states of another shape: it empties the indicators
//! projection and moves its checkpoint to the start of the log, so the runner folds the log
//! again under the new definitions. The other projections keep their rows and checkpoints.
//! `V4__provisional_deadlines` copies the provisional flag of each case's stored state into a
//! column of its own. `V9__compact_read_models` keeps states and trails compressed, which SQL
//! cannot write: it empties the cases, audit and indicators projections and moves their
//! checkpoints to the start of the log, and the runners fold it again into the new tables.

mod city;

use city::City;
use wangge_projections::fold::audit::AuditProjection;
use wangge_projections::fold::cases::CasesProjection;
use wangge_projections::fold::indicators::IndicatorsProjection;
use wangge_projections::postgres::pool::parse_url;
use wangge_projections::postgres::schema::migrate_to;
use wangge_projections::query::{IndicatorGroup, IndicatorQuery};
use wangge_projections::runner::{project_batch, ProjectionStore};
use wangge_projections::{PostgresReadModels, ReadModels};
use wangge_testkit::TestDatabase;

#[tokio::test]
async fn indicators_of_the_previous_release_are_folded_again_under_the_new_definitions() {
    let database = TestDatabase::create().await;
    let config = parse_url(&database.url()).expect("the test database's url");
    migrate_to(&config, Some(2))
        .await
        .expect("the previous release's schema");
    let client = database.connect().await;
    // What the previous release left: old counters at every level, an old-shaped case
    // state, and checkpoints part of the way through a log.
    client
        .batch_execute(
            "INSERT INTO indicator_daily VALUES ('2026-11-24', '330106001', '330106001001', \
             '330106001001001', 'drainage.blocked', 5, 2, 1, 2, 0, 5, 4, 0, 0, 0); \
             INSERT INTO indicator_daily_by_community VALUES ('2026-11-24', '330106001', \
             '330106001001', 'drainage.blocked', 5, 2, 1, 2, 0, 5, 4, 0, 0, 0); \
             INSERT INTO indicator_daily_by_district VALUES ('2026-11-24', '330106001', \
             'drainage.blocked', 5, 2, 1, 2, 0, 5, 4, 0, 0, 0); \
             INSERT INTO indicator_durations VALUES ('2026-11-24', '330106001', '330106001001', \
             '330106001001001', 'drainage.blocked', 'time_to_close', 30, 2); \
             INSERT INTO indicator_cases VALUES ('01936b2e-9c1d-7c3f-8a55-5c3f00000001', \
             '{\"contribution\": null}'); \
             UPDATE projection_checkpoints SET position = 42, recorded_at = now();",
        )
        .await
        .expect("the previous release's rows");

    // The next releases start, up to the one before the compact read models (which empty
    // every projection but patrols: see below).
    migrate_to(&config, Some(8))
        .await
        .expect("the migrations up to V8");
    let checkpoints: Vec<(String, i64)> = client
        .query(
            "SELECT projection, position FROM projection_checkpoints ORDER BY projection",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let expected: Vec<(String, i64)> = [
        ("audit", 42),
        ("cases", 42),
        ("indicators", 0),
        ("patrols", 42),
    ]
    .map(|(name, position)| (name.to_owned(), position))
    .to_vec();
    assert_eq!(checkpoints, expected);
    // The monthly tables come later (V10), summed from what is left here.
    for table in wangge_projections::postgres::schema::tables_of(IndicatorsProjection::NAME)
        .expect("the indicators' tables")
        .iter()
        .filter(|table| !table.contains("monthly"))
    {
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "{table} is emptied");
    }

    // The runner starts from the beginning of the log and counts under the new rules: a
    // case closed on time, and one open within its limit that is not due yet.
    let city = City::new();
    let postgres = PostgresReadModels::connect(&database.url(), city.context.clone())
        .await
        .expect("the read models open and migrate");
    let (location, worker) = city.building(0);
    let closed = city.dispatched_case(&location, &worker).await;
    city.handle_to_closing(closed, &worker, true).await;
    city.dispatched_case(&location, &worker).await;
    let from = ProjectionStore::<IndicatorsProjection>::checkpoint(&*postgres)
        .await
        .unwrap();
    assert_eq!(from, 0);
    project_batch(
        &IndicatorsProjection,
        &*postgres,
        from,
        &city.commits().await,
    )
    .await
    .expect("the indicators fold into the migrated tables");
    let query = IndicatorQuery {
        from: "2026-11-24".parse().unwrap(),
        to: "2026-11-24".parse().unwrap(),
        district: None,
        community: None,
        cell: None,
        category: None,
        group: Some(IndicatorGroup::District),
    };
    let rows = postgres.indicators(&query).await.unwrap();
    assert_eq!(
        rows,
        city.read_models().await.indicators(&query).await.unwrap()
    );
    let counts = &rows[0].counts;
    assert_eq!(
        (
            counts.registered,
            counts.due,
            counts.closed,
            counts.closed_on_time
        ),
        (2, 1, 1, 1)
    );
}

/// `V4__provisional_deadlines` copies each row's provisional flag out of its stored state
/// into a column, so the open cases with a provisional deadline can be listed and counted
/// without folding anything again.
#[tokio::test]
async fn provisional_deadlines_of_the_previous_release_are_found_in_the_stored_states() {
    let database = TestDatabase::create().await;
    let config = parse_url(&database.url()).expect("the test database's url");
    migrate_to(&config, Some(3))
        .await
        .expect("the previous release's schema");
    let client = database.connect().await;
    let row = |id: &str, open: bool, provisional: &str| {
        format!(
            "INSERT INTO cases (case_id, list_at, district, community, building, cell, status, \
             open, category, state) VALUES ('{id}', now(), '330106001', '330106001001', \
             '330106001001001', '330106001001001', 'in_progress', {open}, 'drainage.blocked', \
             '{{\"sla\": {{\"provisional\": {provisional}}}}}');"
        )
    };
    client
        .batch_execute(
            &[
                row("01936b2e-9c1d-7c3f-8a55-5c3f00000001", true, "true"),
                row("01936b2e-9c1d-7c3f-8a55-5c3f00000002", true, "false"),
                row("01936b2e-9c1d-7c3f-8a55-5c3f00000003", false, "true"),
                // A state written before the flag existed reads as not provisional.
                "INSERT INTO cases (case_id, list_at, district, community, building, cell, \
                 status, open, category, state) VALUES ('01936b2e-9c1d-7c3f-8a55-5c3f00000004', \
                 now(), '330106001', '330106001001', '330106001001001', '330106001001001', \
                 'in_progress', true, 'drainage.blocked', '{\"sla\": {}}');"
                    .to_owned(),
            ]
            .concat(),
        )
        .await
        .expect("the previous release's rows");

    migrate_to(&config, Some(8))
        .await
        .expect("the migrations up to V8");
    let flagged: Vec<(String, bool)> = client
        .query(
            "SELECT case_id::text, provisional FROM cases ORDER BY case_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        flagged,
        [
            ("01936b2e-9c1d-7c3f-8a55-5c3f00000001", true),
            ("01936b2e-9c1d-7c3f-8a55-5c3f00000002", false),
            ("01936b2e-9c1d-7c3f-8a55-5c3f00000003", true),
            ("01936b2e-9c1d-7c3f-8a55-5c3f00000004", false),
        ]
        .map(|(id, provisional)| (id.to_owned(), provisional))
    );
    // Only the open one is on the partial index the count reads.
    let counts: Vec<(String, i64)> = client
        .query(
            "SELECT district, count(*) FROM cases WHERE provisional AND open GROUP BY district",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(counts, [("330106001".to_owned(), 1)]);
}

/// `V9__compact_read_models`: the previous release's JSONB states and row-per-event trail
/// are emptied with their checkpoints; patrols keep theirs. The runners then fold the log
/// from the start into compressed states and per-case trails, and serve what the memory
/// store serves, the audit trail verified.
#[tokio::test]
async fn read_models_of_the_previous_release_are_folded_again_compactly() {
    let database = TestDatabase::create().await;
    let config = parse_url(&database.url()).expect("the test database's url");
    migrate_to(&config, Some(8))
        .await
        .expect("the previous release's schema");
    let client = database.connect().await;
    client
        .batch_execute(
            "INSERT INTO cases (case_id, list_at, district, community, building, cell, status, \
             open, category, state) VALUES ('01936b2e-9c1d-7c3f-8a55-5c3f00000001', now(), \
             '330106001', '330106001001', '330106001001001', '330106001001001', 'in_progress', \
             true, 'drainage.blocked', '{\"sla\": {}}'); \
             INSERT INTO audit_trail (case_id, sequence, event_id, event_type, actor_id, \
             occurred_at, entry_json, prev_hash, hash) VALUES \
             ('01936b2e-9c1d-7c3f-8a55-5c3f00000001', 1, gen_random_uuid(), 'case.reported', \
             'r-1', now(), '{}', 'a', 'b'); \
             INSERT INTO audit_heads VALUES ('01936b2e-9c1d-7c3f-8a55-5c3f00000001', 1, 'b', '{}'); \
             INSERT INTO indicator_cases VALUES ('01936b2e-9c1d-7c3f-8a55-5c3f00000001', '{}'); \
             INSERT INTO patrol_coverage VALUES ('330106001001001', '2026-11-24', '330106001', \
             '330106001001', 1, 0, now(), now(), 'w-1'); \
             CREATE TABLE cases_rebuild (LIKE cases INCLUDING ALL); \
             INSERT INTO projection_checkpoints (projection, position) VALUES ('cases_rebuild', 7); \
             UPDATE projection_checkpoints SET position = 42, recorded_at = now();",
        )
        .await
        .expect("the previous release's rows");

    let city = City::new();
    let postgres = PostgresReadModels::connect(&database.url(), city.context.clone())
        .await
        .expect("the read models open and migrate");
    let checkpoints: Vec<(String, i64)> = client
        .query(
            "SELECT projection, position FROM projection_checkpoints ORDER BY projection",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let expected: Vec<(String, i64)> = [
        ("audit", 0),
        ("cases", 0),
        ("indicators", 0),
        ("patrols", 42),
    ]
    .map(|(name, position)| (name.to_owned(), position))
    .to_vec();
    assert_eq!(checkpoints, expected);
    for table in ["cases", "audit_trails", "audit_heads", "indicator_cases"] {
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "{table} is emptied");
    }
    let patrols: i64 = client
        .query_one("SELECT count(*) FROM patrol_coverage", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(patrols, 1, "patrols keep their rows");
    let shadows: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\\_rebuild'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(shadows, 0, "an old-shaped rebuild under way is dropped");

    // The log folds again, into the compact tables.
    let (location, worker) = city.building(0);
    let closed = city.dispatched_case(&location, &worker).await;
    city.handle_to_closing(closed, &worker, true).await;
    let open = city.dispatched_case(&location, &worker).await;
    let commits = city.commits().await;
    project_batch(&CasesProjection, &*postgres, 0, &commits)
        .await
        .expect("cases fold");
    project_batch(&AuditProjection, &*postgres, 0, &commits)
        .await
        .expect("the audit folds");
    project_batch(&IndicatorsProjection, &*postgres, 0, &commits)
        .await
        .expect("the indicators fold");
    let memory = city.read_models().await;
    for case_id in [closed, open] {
        assert_eq!(
            postgres.case(case_id).await.unwrap(),
            memory.case(case_id).await.unwrap()
        );
        let trail = postgres
            .audit_trail(case_id)
            .await
            .unwrap()
            .expect("a trail");
        assert!(trail.problems.is_empty(), "{:?}", trail.problems);
        assert_eq!(Some(trail), memory.audit_trail(case_id).await.unwrap());
    }
}

/// `V10__monthly_indicators`: the months are summed from the days already there (the
/// checkpoint stays), and a range read by month answers what its days add up to.
#[tokio::test]
async fn the_days_already_counted_are_summed_into_months() {
    let database = TestDatabase::create().await;
    let config = parse_url(&database.url()).expect("the test database's url");
    migrate_to(&config, Some(9))
        .await
        .expect("the previous release's schema");
    let client = database.connect().await;
    // A building and its community over two months, a round due at the community, at
    // every level.
    let mut rows = String::new();
    for (day, cell, registered, due, closed) in [
        ("2026-10-03", "330106001001001", 2, 1, 1),
        ("2026-10-28", "330106001001001", 1, 1, 0),
        ("2026-11-02", "330106001001001", 3, 2, 2),
        ("2026-11-02", "330106001001", 0, 1, 1),
        ("2026-11-20", "330106001001", 0, 1, 0),
    ] {
        rows.push_str(&format!(
            "INSERT INTO indicator_daily VALUES ('{day}', '330106001', '330106001001', '{cell}', \
             'drainage.blocked', {registered}, {closed}, {closed}, 0, 0, 0, 0, 0, 0, 0, {due}); \
             INSERT INTO indicator_daily_by_community VALUES ('{day}', '330106001', \
             '330106001001', 'drainage.blocked', {registered}, {closed}, {closed}, 0, 0, 0, 0, \
             0, 0, 0, {due}) ON CONFLICT (day, district, community, category) DO UPDATE SET \
             registered = indicator_daily_by_community.registered + EXCLUDED.registered, \
             closed = indicator_daily_by_community.closed + EXCLUDED.closed, \
             closed_on_time = indicator_daily_by_community.closed_on_time + EXCLUDED.closed_on_time, \
             due = indicator_daily_by_community.due + EXCLUDED.due; \
             INSERT INTO indicator_daily_by_district VALUES ('{day}', '330106001', \
             'drainage.blocked', {registered}, {closed}, {closed}, 0, 0, 0, 0, 0, 0, 0, {due}) \
             ON CONFLICT (day, district, category) DO UPDATE SET \
             registered = indicator_daily_by_district.registered + EXCLUDED.registered, \
             closed = indicator_daily_by_district.closed + EXCLUDED.closed, \
             closed_on_time = indicator_daily_by_district.closed_on_time + EXCLUDED.closed_on_time, \
             due = indicator_daily_by_district.due + EXCLUDED.due; "
        ));
    }
    rows.push_str("UPDATE projection_checkpoints SET position = 42, recorded_at = now();");
    client
        .batch_execute(&rows)
        .await
        .expect("the previous release's rows");

    let city = City::new();
    let postgres = PostgresReadModels::connect(&database.url(), city.context.clone())
        .await
        .expect("the read models open and migrate");
    let months: Vec<(String, String, i64, i64)> = client
        .query(
            "SELECT month::text, cell, registered, due FROM indicator_monthly_by_cell \
             ORDER BY month, cell",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    let expected = [
        ("2026-10-01", "330106001001001", 3, 2),
        ("2026-11-01", "330106001001", 0, 2),
        ("2026-11-01", "330106001001001", 3, 2),
    ]
    .map(|(m, c, r, d)| (m.to_owned(), c.to_owned(), r, d))
    .to_vec();
    assert_eq!(months, expected);
    let position: i64 = client
        .query_one(
            "SELECT position FROM projection_checkpoints WHERE projection = 'indicators'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(position, 42, "the indicators keep their checkpoint");

    // 2026-10-04 … 2026-11-30: all of November by its month, October by its days.
    let day = |text: &str| text.parse().expect("a date");
    let query = |group| IndicatorQuery {
        from: day("2026-10-04"),
        to: day("2026-11-30"),
        district: Some("330106001".into()),
        community: None,
        cell: None,
        category: None,
        group: Some(group),
    };
    let by_community = postgres
        .indicators(&query(IndicatorGroup::Community))
        .await
        .expect("by community");
    let by_day = postgres
        .indicators(&query(IndicatorGroup::Day))
        .await
        .expect("by day");
    assert_eq!(by_community.len(), 1);
    let registered: i64 = by_day.iter().map(|row| row.counts.registered).sum();
    let due: i64 = by_day.iter().map(|row| row.counts.due).sum();
    assert_eq!(
        (
            by_community[0].counts.registered,
            by_community[0].counts.due
        ),
        (registered, due)
    );
    assert_eq!(
        (registered, due),
        (4, 5),
        "the 3rd of October is not in range"
    );
}

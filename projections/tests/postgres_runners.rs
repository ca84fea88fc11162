//! The projection runners on PostgreSQL: one active runner per projection across
//! instances, the other standing by and taking over; redelivered commits change nothing;
//! a rebuild while the live runners run ends equal to a from-scratch fold, with queries
//! answering throughout; an instance that runs no projection hears of the commits.

mod simulation;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use tokio::sync::watch;
use wangge_engine::log::{EventLog, MemoryLog};
use wangge_projections::fold::audit::AuditProjection;
use wangge_projections::fold::cases::CasesProjection;
use wangge_projections::fold::indicators::IndicatorsProjection;
use wangge_projections::fold::patrols::PatrolsProjection;
use wangge_projections::postgres::exclusive::run_exclusive;
use wangge_projections::postgres::schema::all_tables;
use wangge_projections::postgres::{spawn_runners, ExclusiveRunnerConfig, RunnerRole};
use wangge_projections::query::*;
use wangge_projections::runner::{project_batch, ProjectionStore, RunnerConfig, StoreError};
use wangge_projections::PostgresReadModels;
use wangge_testkit::TestDatabase;

use simulation::{context, op, read_log, Op, Simulation};

const WAIT: Duration = Duration::from_secs(60);

fn quick() -> ExclusiveRunnerConfig {
    ExclusiveRunnerConfig {
        runner: RunnerConfig {
            max_batch: 50,
            max_wait: Duration::from_millis(5),
            retry_delay: Duration::from_millis(50),
        },
        standby_retry: Duration::from_millis(50),
        heartbeat: Duration::from_millis(500),
    }
}

/// A random day of `n` operations (the same every run).
fn day(n: usize) -> Vec<Op> {
    let mut runner = TestRunner::deterministic();
    proptest::collection::vec(op(), n)
        .new_tree(&mut runner)
        .expect("a day of operations")
        .current()
}

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_caught_up(models: &PostgresReadModels, head: u64) {
    wait_for("the projections to catch up", async || {
        let checkpoints = models.checkpoints().await.ok()?;
        checkpoints.iter().all(|c| c.position == head).then_some(())
    })
    .await;
}

/// Every read-model table of `database`, row by row.
async fn tables_of(database: &TestDatabase) -> Vec<(String, Vec<String>)> {
    let mut tables = Vec::new();
    for table in all_tables() {
        tables.push((table.to_owned(), database.rows(table).await));
    }
    tables
}

/// A fresh database with the whole log folded in, one projection at a time, in one go.
async fn from_scratch(log: &MemoryLog) -> TestDatabase {
    let database = TestDatabase::create().await;
    let models = PostgresReadModels::connect(&database.url(), context())
        .await
        .unwrap();
    let commits = read_log(log, 1).await;

    project_batch(&CasesProjection, &*models, 0, &commits)
        .await
        .unwrap();
    project_batch(&AuditProjection, &*models, 0, &commits)
        .await
        .unwrap();
    project_batch(&IndicatorsProjection, &*models, 0, &commits)
        .await
        .unwrap();
    project_batch(&PatrolsProjection, &*models, 0, &commits)
        .await
        .unwrap();
    database
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_runner_is_active_the_other_takes_over_and_redelivered_commits_change_nothing() {
    let database = TestDatabase::create().await;
    let mut city = Simulation::in_memory();
    city.run_all(&day(150)).await;
    let log = city.log().clone();

    // Two instances, each with its own read models and a runner for `cases`.
    let first = PostgresReadModels::connect(&database.url(), context())
        .await
        .unwrap();
    let second = PostgresReadModels::connect(&database.url(), context())
        .await
        .unwrap();
    let (stop_first, first_stopped) = watch::channel(false);
    let (stop_second, second_stopped) = watch::channel(false);
    let until = |mut stopped: watch::Receiver<bool>| async move {
        stopped.wait_for(|stop| *stop).await.ok();
    };
    let (first_role, first_watch) = watch::channel(RunnerRole::Connecting);
    let (second_role, second_watch) = watch::channel(RunnerRole::Connecting);
    let first_task = tokio::spawn(run_exclusive(
        first.clone(),
        CasesProjection,
        log.clone(),
        quick(),
        first_role,
        until(first_stopped),
    ));
    wait_for("the first runner to take the lock", async || {
        (*first_watch.borrow() == RunnerRole::Active).then_some(())
    })
    .await;
    let second_task = tokio::spawn(run_exclusive(
        second.clone(),
        CasesProjection,
        log.clone(),
        quick(),
        second_role,
        until(second_stopped),
    ));
    wait_for("the second runner to stand by", async || {
        (*second_watch.borrow() == RunnerRole::Standby).then_some(())
    })
    .await;
    let head = log.head().await.unwrap();
    wait_for("cases to catch up", async || {
        let position = ProjectionStore::<CasesProjection>::checkpoint(&*first)
            .await
            .ok()?;
        (position == head).then_some(())
    })
    .await;
    assert_eq!(*first_watch.borrow(), RunnerRole::Active);
    assert_eq!(
        *second_watch.borrow(),
        RunnerRole::Standby,
        "only one runner is active"
    );
    let holders = first.runner_holders().await.unwrap();
    assert!(holders
        .iter()
        .any(|(name, pid)| *name == "cases" && pid.is_some()));

    // The first stops: the second takes over and folds what comes next.
    stop_first.send(true).unwrap();
    first_task.await.unwrap();
    assert_eq!(*first_watch.borrow(), RunnerRole::Stopped);
    wait_for("the second runner to take over", async || {
        (*second_watch.borrow() == RunnerRole::Active).then_some(())
    })
    .await;
    city.run_all(&day(40)).await;
    let head = log.head().await.unwrap();
    wait_for("the second runner to fold the new commits", async || {
        let position = ProjectionStore::<CasesProjection>::checkpoint(&*second)
            .await
            .ok()?;
        (position == head).then_some(())
    })
    .await;
    stop_second.send(true).unwrap();
    second_task.await.unwrap();

    // Redelivered commits change nothing: from an old position the commit is refused, from
    // the checkpoint they are skipped.
    let before = database.rows("cases").await;
    let board = database.rows("sla_board").await;
    let commits = read_log(&log, 1).await;
    let refused = project_batch(&CasesProjection, &*second, 0, &commits).await;
    assert!(
        matches!(refused, Err(StoreError::CheckpointMoved { expected: 0, actual, .. }) if actual == head),
        "{refused:?}"
    );
    let skipped = project_batch(&CasesProjection, &*second, head, &commits).await;
    assert_eq!(skipped.unwrap(), head);
    assert_eq!(database.rows("cases").await, before);
    assert_eq!(database.rows("sla_board").await, board);

    // And what the two runners wrote together is what one fold from scratch writes.
    let scratch = from_scratch(&log).await;
    assert_eq!(before, scratch.rows("cases").await);
    assert_eq!(board, scratch.rows("sla_board").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_while_the_live_runners_run_ends_equal_to_a_fold_from_scratch() {
    let database = TestDatabase::create().await;
    let mut city = Simulation::in_memory();
    city.run_all(&day(300)).await;
    let log = city.log().clone();
    let models = PostgresReadModels::connect(&database.url(), context())
        .await
        .unwrap();
    // An API instance that runs no projection.
    let api = PostgresReadModels::connect(&database.url(), context())
        .await
        .unwrap();
    let mut updates = api.subscribe();

    let (stop, stopped) = watch::channel(false);
    let until = {
        let mut stopped = stopped.clone();
        async move {
            stopped.wait_for(|stop| *stop).await.ok();
        }
    };
    let runners = spawn_runners(models.clone(), log.clone(), quick(), until);
    wait_caught_up(&models, log.head().await.unwrap()).await;

    // Queries keep answering, from the API instance, all the time.
    let answered = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (api, answered, mut stopped) = (api.clone(), answered.clone(), stopped.clone());
        tokio::spawn(async move {
            let today = simulation::start_of_day().date_naive();
            let indicators = IndicatorQuery {
                from: today,
                to: today + chrono::Duration::days(10),
                district: None,
                community: None,
                cell: None,
                category: None,
                group: Some(IndicatorGroup::Cell),
            };
            while !*stopped.borrow_and_update() {
                api.cases(&CaseQuery::default())
                    .await
                    .expect("cases answer during the rebuild");
                api.sla_board(&BoardQuery::default())
                    .await
                    .expect("the board answers");
                api.indicators(&indicators)
                    .await
                    .expect("indicators answer");
                api.audit_trail(wangge_schemas::CaseId::new_v7())
                    .await
                    .expect("trails answer");
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Commits keep coming while every projection is rebuilt.
    let writer = tokio::spawn(async move {
        city.run_all(&day(120)).await;
        city
    });
    for name in wangge_projections::PROJECTION_NAMES {
        let outcome = models
            .rebuild(name, &log, &RunnerConfig::default(), |_| {})
            .await
            .unwrap_or_else(|e| panic!("rebuild {name}: {e}"));
        assert_eq!(outcome.projection, name);
    }
    let _city = writer.await.unwrap();
    let head = log.head().await.unwrap();
    wait_caught_up(&models, head).await;
    stop.send(true).unwrap();
    runners.wait().await;
    reader.await.unwrap();
    assert!(answered.load(Ordering::Relaxed) > 0);

    // The API instance heard of commits of every projection, though it runs none.
    let mut heard = std::collections::BTreeSet::new();
    while let Ok(update) = updates.try_recv() {
        heard.insert(update.projection);
    }
    assert_eq!(heard.len(), 4, "heard of {heard:?}");

    let scratch = from_scratch(&log).await;
    assert_eq!(tables_of(&database).await, tables_of(&scratch).await);
    // The shadow tables are gone and the indexes have their names back.
    let client = database.connect().await;
    let leftovers = client
        .query(
            "SELECT relname::text FROM pg_class WHERE relname LIKE '%\\_rebuild%' OR relname LIKE '%\\_retired%'",
            &[],
        )
        .await
        .unwrap();
    assert!(
        leftovers.is_empty(),
        "{:?}",
        leftovers
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    );
    let index = client
        .query(
            "SELECT 1 FROM pg_indexes WHERE indexname = 'cases_overdue'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(index.len(), 1);
    // And the tables keep autovacuum's pace (V11), their TOAST tables too.
    let settings: Vec<String> = client
        .query_one(
            "SELECT array_cat(c.reloptions, t.reloptions) FROM pg_class c \
             JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.relname = 'audit_trails'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        settings,
        [
            "autovacuum_vacuum_scale_factor=0.01",
            "autovacuum_vacuum_cost_delay=0",
            "autovacuum_vacuum_scale_factor=0.01",
            "autovacuum_vacuum_cost_delay=0",
        ]
    );
}

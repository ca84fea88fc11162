//! The API's read models on a PostgreSQL read replica (the scaled shape: the primary takes
//! the projections' writes, a hot standby serves the dashboards): the replica answers as the
//! primary does once it has caught up; while it lags, nothing is announced that it does not
//! show yet; an API started before the replica has the schema waits, and says why when it
//! gives up.

mod simulation;

use std::time::Duration;

use tokio::sync::watch;
use wangge_engine::log::EventLog;
use wangge_projections::postgres::{spawn_runners, ExclusiveRunnerConfig};
use wangge_projections::query::*;
use wangge_projections::runner::RunnerConfig;
use wangge_projections::PostgresReadModels;
use wangge_testkit::PostgresReplicaPair;

use simulation::{context, op, Op, Simulation};

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

fn day(n: usize, seed: u8) -> Vec<Op> {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        proptest::test_runner::Config::default(),
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &[seed; 32],
        ),
    );
    proptest::collection::vec(op(), n)
        .new_tree(&mut runner)
        .expect("a day of operations")
        .current()
}

async fn caught_up(models: &PostgresReadModels, head: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let checkpoints = models.checkpoints().await.expect("checkpoints answer");
        if checkpoints.iter().all(|c| c.position == head) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not caught up with {head}: {checkpoints:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_cases(models: &PostgresReadModels) -> Vec<CaseView> {
    models
        .cases(&CaseQuery {
            limit: Some(500),
            ..CaseQuery::default()
        })
        .await
        .expect("cases answer")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_announces_only_what_it_shows_and_then_answers_as_the_primary() {
    let pair = PostgresReplicaPair::start();
    pair.primary_sql("postgres", "CREATE DATABASE wangge");
    let primary_url = pair.primary_url("wangge");
    let replica_url = pair.replica_url("wangge");
    let primary = PostgresReadModels::connect(&primary_url, context())
        .await
        .unwrap();
    let replica = PostgresReadModels::connect_replica(&replica_url, &primary_url, context(), WAIT)
        .await
        .unwrap();
    assert!(replica.is_replica());

    let mut city = Simulation::in_memory();
    city.run_all(&day(150, 1)).await;
    let log = city.log().clone();
    let (_stop, stopped) = watch::channel(false);
    let until = {
        let mut stopped = stopped.clone();
        async move {
            stopped.wait_for(|stop| *stop).await.ok();
        }
    };
    let _runners = spawn_runners(primary.clone(), log.clone(), quick(), until);
    let first_head = log.head().await.unwrap();
    caught_up(&primary, first_head).await;
    caught_up(&replica, first_head).await;
    assert_eq!(all_cases(&replica).await, all_cases(&primary).await);

    // The replica stops replaying: the primary moves on, the replica's API does not, and
    // its live stream says nothing of positions it does not hold.
    let mut updates = replica.subscribe();
    pair.pause_replay(true);
    city.run_all(&day(150, 2)).await;
    let second_head = log.head().await.unwrap();
    assert!(second_head > first_head);
    caught_up(&primary, second_head).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(update) = updates.try_recv() {
        assert!(
            update.position <= first_head,
            "announced {update:?} while the replica holds only up to {first_head}"
        );
    }
    let lagging = replica.checkpoints().await.unwrap();
    assert!(
        lagging.iter().all(|c| c.position == first_head),
        "{lagging:?}"
    );
    assert_ne!(all_cases(&replica).await, all_cases(&primary).await);

    // Replay resumes: every projection is announced at the new head, and by the time it
    // is, the replica answers exactly as the primary.
    pair.pause_replay(false);
    let mut announced = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while announced.len() < wangge_projections::PROJECTION_NAMES.len()
        || announced.values().any(|&p| p < second_head)
    {
        let update = tokio::time::timeout_at(deadline, updates.recv())
            .await
            .expect("announcements after the replica caught up")
            .expect("the live stream stays open");
        let shown = replica.checkpoints().await.unwrap();
        let here = shown
            .iter()
            .find(|c| c.projection == update.projection)
            .map(|c| c.position)
            .unwrap();
        assert!(
            here >= update.position,
            "announced {update:?} before the replica showed it ({here})"
        );
        announced.insert(update.projection.clone(), update.position);
    }
    assert_eq!(all_cases(&replica).await, all_cases(&primary).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_on_a_replica_without_the_schema_waits_then_names_both_versions() {
    let pair = PostgresReplicaPair::start();
    pair.primary_sql("postgres", "CREATE DATABASE wangge");
    let primary_url = pair.primary_url("wangge");
    let replica_url = pair.replica_url("wangge");
    let refused = PostgresReadModels::connect_replica(
        &replica_url,
        &primary_url,
        context(),
        Duration::from_millis(500),
    )
    .await
    .err()
    .expect("no schema on the replica yet");
    let message = refused.to_string();
    assert!(
        message.contains("schema is at version 0") && message.contains("--postgres-url"),
        "{message}"
    );
    // Once the primary is migrated, the replica follows and the API opens.
    let _primary = PostgresReadModels::connect(&primary_url, context())
        .await
        .unwrap();
    PostgresReadModels::connect_replica(&replica_url, &primary_url, context(), WAIT)
        .await
        .expect("the replica replays the schema");
}

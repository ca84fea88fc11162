//! Group commit: concurrent appends are stored as atomic batches, one fsync for many, and
//! every append still gets exactly the answer it would get alone — stored at its own
//! position, refused as a lost race, or recognised as a retry.
//!
//! Each test has a private nats-server with `sync_interval: always`, the production setting.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures::future::join_all;
use futures::{StreamExt, TryStreamExt};
use wangge_engine::domain::commit::StoredCommit;
use wangge_engine::domain::fold::audit::{verify_seals, AuditChanges, AuditProjection, SealPolicy};
use wangge_engine::domain::fold::Projection;
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig, LogError, SealKey};
use wangge_schemas::CaseId;
use wangge_testkit::NatsServer;

use support::{commit, jetstream_log_with, within};

fn durable_server() -> NatsServer {
    NatsServer::start_durable()
}

async fn grouped_log(server: &NatsServer) -> JetStreamLog {
    jetstream_log_with(server, JetStreamLogConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_appends_at_once_share_batches_and_each_is_stored_at_the_position_it_was_told() {
    let server = durable_server();
    let log = grouped_log(&server).await;
    let cases: Vec<CaseId> = (0..400).map(|_| CaseId::new_v7()).collect();

    let answers = join_all(cases.iter().map(|&case| {
        let log = log.clone();
        async move { log.append(commit(case, 0, 2, "report"), 0).await }
    }))
    .await;

    let mut positions = Vec::new();
    for (case, answer) in cases.iter().zip(answers) {
        let appended = answer.expect("every new case is stored");
        assert!(!appended.duplicate);
        let history = log.load(*case).await.unwrap();
        assert_eq!(
            history.last_position, appended.position,
            "the position an append was told is where its case's commit is"
        );
        assert_eq!(history.events.len(), 2);
        positions.push(appended.position);
    }
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(
        positions.len(),
        400,
        "no two appends were told one position"
    );
    assert_eq!(log.head().await.unwrap(), 400);

    let figures = log
        .group_commit_figures()
        .expect("group commit is on by default");
    assert!(
        figures.batches_stored > 0 && figures.appends_batched > figures.batches_stored,
        "400 appends at once were grouped: {figures:?}"
    );
    assert_eq!(figures.appends_batched + figures.appends_alone, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_race_among_many_appends_refuses_only_the_append_that_lost() {
    let server = durable_server();
    let log = grouped_log(&server).await;
    let existing: Vec<CaseId> = (0..20).map(|_| CaseId::new_v7()).collect();
    for &case in &existing {
        log.append(commit(case, 0, 1, "first"), 0).await.unwrap();
    }
    let fresh: Vec<CaseId> = (0..300).map(|_| CaseId::new_v7()).collect();

    // Every existing case is created again — each of those appends lost its race — among
    // 300 creates of new cases, all sent at once.
    let everyone: Vec<(CaseId, bool)> = existing
        .iter()
        .map(|&case| (case, true))
        .chain(fresh.iter().map(|&case| (case, false)))
        .collect();
    let answers = join_all(everyone.iter().map(|&(case, lost)| {
        let log = log.clone();
        let key = if lost { "second" } else { "report" };
        async move { (case, lost, log.append(commit(case, 0, 1, key), 0).await) }
    }))
    .await;

    for (case, lost, answer) in answers {
        if lost {
            match answer {
                Err(LogError::Conflict {
                    case_id, expected, ..
                }) => {
                    assert_eq!((case_id, expected), (case, 0));
                }
                other => panic!("a create of an existing case must be a conflict: {other:?}"),
            }
            assert_eq!(log.load(case).await.unwrap().events.len(), 1);
        } else {
            let appended = answer.expect("a new case among lost races is still stored");
            assert_eq!(
                log.load(case).await.unwrap().last_position,
                appended.position
            );
        }
    }
    assert_eq!(
        log.head().await.unwrap(),
        320,
        "nothing stored twice, nothing lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_append_among_many_is_answered_as_a_duplicate_and_stored_once() {
    let server = durable_server();
    let log = grouped_log(&server).await;
    let case = CaseId::new_v7();
    let first = log.append(commit(case, 0, 1, "report"), 0).await.unwrap();
    let retry = commit(case, 0, 1, "report");
    let retried_key = retry.idempotency_key.clone();

    let fresh: Vec<CaseId> = (0..200).map(|_| CaseId::new_v7()).collect();
    let others = fresh.iter().map(|&case| {
        let log = log.clone();
        async move {
            log.append(commit(case, 0, 1, "report"), 0)
                .await
                .map(|_| ())
        }
    });
    let (retried, others) = tokio::join!(log.append(retry, 0), join_all(others));

    let retried = retried.expect("a retry is not an error");
    assert!(
        retried.duplicate,
        "the retry of {retried_key} is recognised"
    );
    assert_eq!(retried.position, first.position);
    assert!(others.iter().all(Result::is_ok));
    assert_eq!(log.load(case).await.unwrap().events.len(), 1);
    assert_eq!(log.head().await.unwrap(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_writers_between_batches_never_shift_the_positions_appends_are_told() {
    let server = durable_server();
    let log = grouped_log(&server).await;
    let context = jetstream::new(server.connect().await);
    // A plain publisher writes to subjects of the stream while the engine appends in batches.
    let plain = tokio::spawn(async move {
        for i in 0..300 {
            context
                .publish(format!("wangge.events.zz.other-{i}"), "{}".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    });
    let cases: Vec<CaseId> = (0..600).map(|_| CaseId::new_v7()).collect();
    let answers = join_all(cases.iter().map(|&case| {
        let log = log.clone();
        async move { log.append(commit(case, 0, 1, "report"), 0).await }
    }))
    .await;
    plain.await.unwrap();

    for (case, answer) in cases.iter().zip(answers) {
        let appended = answer.unwrap();
        assert_eq!(
            log.load(*case).await.unwrap().last_position,
            appended.position
        );
    }
    assert_eq!(log.head().await.unwrap(), 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sealed_commits_stored_in_batches_chain_their_seals_case_by_case() {
    let server = durable_server();
    let key = Arc::new(SealKey::generate());
    let log = grouped_log(&server).await.with_seal_key(key.clone());
    let cases: Vec<CaseId> = (0..100).map(|_| CaseId::new_v7()).collect();
    // Three rounds at once: each case's later commits link to its earlier ones, whichever
    // batches they were stored in.
    for round in 0..3u64 {
        let answers = join_all(cases.iter().map(|&case| {
            let log = log.clone();
            async move {
                let history = log.load(case).await.unwrap();
                log.append_after(commit(case, round, 1, &format!("round-{round}")), &history)
                    .await
            }
        }))
        .await;
        assert!(answers.iter().all(Result::is_ok));
    }

    let head = log.head().await.unwrap();
    assert_eq!(head, 300);
    let commits: Vec<StoredCommit> = within(
        "the whole log",
        Duration::from_secs(10),
        log.read_from(1).take(head as usize).try_collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let mut states = BTreeMap::new();
    let mut changes = AuditChanges::default();
    for commit in &commits {
        let state = states.entry(commit.case_id).or_insert(None);
        AuditProjection.apply(state, commit, &mut changes);
    }
    let mut by_case: BTreeMap<CaseId, Vec<_>> = BTreeMap::new();
    for record in changes.records {
        by_case.entry(record.case_id).or_default().push(record);
    }
    let policy = SealPolicy {
        keyring: key.keyring(),
        allow_unsealed_before: None,
    };
    let problems: Vec<_> = by_case
        .iter()
        .flat_map(|(case_id, records)| verify_seals(*case_id, records, &policy))
        .collect();
    assert_eq!(by_case.len(), 100);
    assert!(
        problems.is_empty(),
        "every batched commit is sealed and linked: {problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_group_commit_every_append_is_a_publish_of_its_own() {
    let server = durable_server();
    let config = JetStreamLogConfig {
        group_commit: false,
        ..JetStreamLogConfig::default()
    };
    let log = jetstream_log_with(&server, config).await;
    let cases: Vec<CaseId> = (0..50).map(|_| CaseId::new_v7()).collect();
    let answers = join_all(cases.iter().map(|&case| {
        let log = log.clone();
        async move { log.append(commit(case, 0, 1, "report"), 0).await }
    }))
    .await;
    assert!(answers.iter().all(Result::is_ok));
    assert!(log.group_commit_figures().is_none());
    assert_eq!(log.head().await.unwrap(), 50);
}

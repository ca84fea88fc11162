//! The contract of the event log, written once and held by both implementations.
//!
//! Every behaviour is a generic async function over `L: EventLog`; the `contract!` macro at
//! the bottom runs each one against a [`MemoryLog`] (module `memory`) and against a
//! [`JetStreamLog`] on a nats-server of its own (module `jetstream`). The module
//! `jetstream_stream` holds what only the real stream has: its settings, its subjects and
//! events written by older versions.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::StorageType;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Barrier;
use wangge_engine::log::{
    Appended, EventLog, JetStreamLog, JetStreamLogConfig, LogError, MemoryLog, StoredCommit,
};
use wangge_schemas::{CaseEvent, CaseId, EventEnvelope, MediaKind, MediaRef};
use wangge_testkit::NatsServer;

use support::{commit, eventually, within};

const PATIENCE: Duration = Duration::from_secs(5);

fn sequences(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

async fn read_n<L: EventLog>(log: &L, from: u64, n: usize) -> Vec<StoredCommit> {
    within(
        "commits from the log reader",
        PATIENCE,
        log.read_from(from).take(n).try_collect::<Vec<_>>(),
    )
    .await
    .expect("read the log")
}

// ---------------------------------------------------------------------------------------
// The behaviours, once
// ---------------------------------------------------------------------------------------

async fn an_empty_log_has_its_head_at_zero<L: EventLog>(log: L) {
    assert_eq!(log.head().await.unwrap(), 0);
}

async fn a_case_with_no_events_loads_empty_at_position_zero<L: EventLog>(log: L) {
    let other = CaseId::new_v7();
    log.append(commit(other, 0, 1, "other-1"), 0).await.unwrap();

    let history = log.load(CaseId::new_v7()).await.unwrap();

    assert!(history.events.is_empty());
    assert_eq!(history.last_position, 0);
}

async fn a_new_case_is_created_at_expected_position_zero<L: EventLog>(log: L) {
    let case = CaseId::new_v7();
    let first = commit(case, 0, 1, "report-1");

    let appended = log.append(first.clone(), 0).await.unwrap();

    assert!(!appended.duplicate);
    assert_eq!(log.head().await.unwrap(), appended.position);
    let history = log.load(case).await.unwrap();
    assert_eq!(history.events, first.events);
    assert_eq!(history.last_position, appended.position);
}

async fn a_commit_of_several_events_is_stored_as_one_and_loads_back_whole<L: EventLog>(log: L) {
    let case = CaseId::new_v7();
    let head_before = log.head().await.unwrap();
    let three = commit(case, 0, 3, "self-handled");

    let appended = log.append(three.clone(), 0).await.unwrap();

    assert_eq!(
        log.head().await.unwrap(),
        head_before + 1,
        "one commit is one entry in the log"
    );
    assert_eq!(log.load(case).await.unwrap().events, three.events);
    let stored = read_n(&log, appended.position, 1).await;
    assert_eq!(stored[0].position, appended.position);
    assert_eq!(stored[0].case_id, case);
    assert_eq!(
        stored[0].events, three.events,
        "the commit reads back whole"
    );
}

async fn two_concurrent_creates_of_one_case_exactly_one_wins<L: EventLog + Clone>(log: L) {
    // Several rounds, each on a fresh case, so that a lucky interleaving cannot hide a race.
    for round in 0..5 {
        let case = CaseId::new_v7();
        let barrier = Arc::new(Barrier::new(2));
        let tasks: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let (log, barrier) = (log.clone(), barrier.clone());
                let create = commit(case, 0, 1, &format!("create-{round}-{who}"));
                tokio::spawn(async move {
                    barrier.wait().await;
                    (create.clone(), log.append(create, 0).await)
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut conflicts = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (create, Ok(appended)) => winners.push((create, appended)),
                (
                    _,
                    Err(LogError::Conflict {
                        case_id,
                        expected,
                        actual,
                    }),
                ) => conflicts.push((case_id, expected, actual)),
                (_, Err(other)) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one create wins (round {round})");
        assert_eq!(
            conflicts.len(),
            1,
            "the other create conflicts (round {round})"
        );
        let (create, appended) = &winners[0];
        assert!(!appended.duplicate);
        assert_eq!(
            conflicts[0],
            (case, 0, appended.position),
            "the loser learns where the case is"
        );
        let history = log.load(case).await.unwrap();
        assert_eq!(
            history.events, create.events,
            "only the winner's events are stored"
        );
        assert_eq!(history.last_position, appended.position);
    }
}

async fn racing_appends_at_the_same_position_exactly_one_wins_per_version<L: EventLog + Clone>(
    log: L,
) {
    const RACERS: usize = 6;
    const VERSIONS: u64 = 5;
    let case = CaseId::new_v7();
    let mut position = log
        .append(commit(case, 0, 1, "report"), 0)
        .await
        .unwrap()
        .position;

    for version in 1..=VERSIONS {
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|racer| {
                let (log, barrier) = (log.clone(), barrier.clone());
                let next = commit(case, version, 1, &format!("v{version}-racer{racer}"));
                tokio::spawn(async move {
                    barrier.wait().await;
                    log.append(next, position).await
                })
            })
            .collect();
        let mut won = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(appended) => won.push(appended),
                Err(LogError::Conflict { expected, .. }) => assert_eq!(expected, position),
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "exactly one racer wins version {}",
            version + 1
        );
        position = won[0].position;
    }

    let history = log.load(case).await.unwrap();
    assert_eq!(
        sequences(&history.events),
        (1..=VERSIONS + 1).collect::<Vec<_>>()
    );
    assert_eq!(history.last_position, position);
}

async fn an_append_behind_the_case_is_refused_and_names_where_the_case_is<L: EventLog>(log: L) {
    let case = CaseId::new_v7();
    let first = log.append(commit(case, 0, 1, "report"), 0).await.unwrap();
    let second = log
        .append(commit(case, 1, 1, "comment-a"), first.position)
        .await
        .unwrap();

    let stale = log
        .append(commit(case, 1, 1, "comment-b"), first.position)
        .await;

    match stale {
        Err(LogError::Conflict {
            case_id,
            expected,
            actual,
        }) => {
            assert_eq!(
                (case_id, expected, actual),
                (case, first.position, second.position)
            )
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        log.load(case).await.unwrap().events.len(),
        2,
        "nothing was written"
    );
}

async fn a_create_of_a_case_that_exists_is_refused<L: EventLog>(log: L) {
    let case = CaseId::new_v7();
    let first = log.append(commit(case, 0, 1, "report"), 0).await.unwrap();

    let again = log.append(commit(case, 0, 1, "report-again"), 0).await;

    assert!(
        matches!(again, Err(LogError::Conflict { expected: 0, actual, .. }) if actual == first.position),
        "got {again:?}"
    );
}

async fn the_same_commit_appended_twice_is_stored_once<L: EventLog>(log: L) {
    let case = CaseId::new_v7();
    let report = commit(case, 0, 2, "report");
    let first = log.append(report.clone(), 0).await.unwrap();

    let second = log.append(report.clone(), 0).await.unwrap();

    assert_eq!(
        second,
        Appended {
            position: first.position,
            duplicate: true,
            next_seal_link: None,
        }
    );
    assert_eq!(log.head().await.unwrap(), first.position);
    assert_eq!(log.load(case).await.unwrap().events, report.events);
}

async fn a_retried_commit_is_a_duplicate_even_after_the_case_moved_on<L: EventLog>(log: L) {
    // The retry still names the old expected position; the log recognises the key before
    // it checks the position, so the retry is answered as a duplicate, not a conflict.
    let case = CaseId::new_v7();
    let report = commit(case, 0, 1, "report");
    let first = log.append(report.clone(), 0).await.unwrap();
    log.append(commit(case, 1, 1, "comment"), first.position)
        .await
        .unwrap();

    let retry = log.append(report, 0).await.unwrap();

    assert_eq!(
        retry,
        Appended {
            position: first.position,
            duplicate: true,
            next_seal_link: None,
        }
    );
    assert_eq!(log.load(case).await.unwrap().events.len(), 2);
}

async fn a_case_with_twenty_events_across_several_commits_loads_in_order<L: EventLog>(log: L) {
    let case = CaseId::new_v7();
    let neighbour = CaseId::new_v7();
    let mut position = 0;
    let mut neighbour_position = 0;
    let mut written = Vec::new();
    let mut after = 0;
    for (n, size) in [1usize, 3, 5, 2, 4, 5].into_iter().enumerate() {
        let next = commit(case, after, size, &format!("case-{n}"));
        written.extend(next.events.clone());
        position = log.append(next, position).await.unwrap().position;
        after += size as u64;
        // Another case's commits land in between.
        let other = commit(neighbour, n as u64, 1, &format!("neighbour-{n}"));
        neighbour_position = log
            .append(other, neighbour_position)
            .await
            .unwrap()
            .position;
    }

    let history = log.load(case).await.unwrap();

    assert_eq!(history.events.len(), 20);
    assert_eq!(sequences(&history.events), (1..=20).collect::<Vec<_>>());
    assert_eq!(history.events, written);
    assert_eq!(history.last_position, position);
    assert!(history.events.iter().all(|e| e.case_id == case));
    assert_eq!(log.load(neighbour).await.unwrap().events.len(), 6);
}

async fn reading_from_a_position_returns_every_commit_in_log_order_then_follows_new_ones<
    L: EventLog,
>(
    log: L,
) {
    let cases = [CaseId::new_v7(), CaseId::new_v7(), CaseId::new_v7()];
    let mut last = [0u64; 3];
    let mut appended = Vec::new();
    for round in 0..3u64 {
        for (i, case) in cases.iter().enumerate() {
            let next = commit(*case, round, 1, &format!("{i}-{round}"));
            let at = log.append(next.clone(), last[i]).await.unwrap().position;
            last[i] = at;
            appended.push((at, next));
        }
    }

    let everything = read_n(&log, 0, appended.len()).await;
    let expected: Vec<_> = appended
        .iter()
        .map(|(position, c)| StoredCommit {
            position: *position,
            case_id: c.case_id,
            events: c.events.clone(),
            seal: None,
        })
        .collect();
    assert_eq!(
        everything, expected,
        "every commit of every case, in log order"
    );

    let from_fourth = read_n(&log, appended[3].0, appended.len() - 3).await;
    assert_eq!(
        from_fourth,
        expected[3..],
        "reading starts at the given position"
    );

    // The reader keeps following: a commit made after it caught up still arrives.
    let mut reader = log.read_from(appended[8].0);
    let caught_up = within("the last existing commit", PATIENCE, reader.next()).await;
    assert_eq!(caught_up.unwrap().unwrap().position, appended[8].0);
    let later = commit(cases[0], 3, 2, "later");
    let later_at = log.append(later.clone(), last[0]).await.unwrap().position;
    let followed = within(
        "a commit made after the reader caught up",
        PATIENCE,
        reader.next(),
    )
    .await
    .expect("the reader does not end")
    .unwrap();
    assert_eq!(
        followed,
        StoredCommit {
            position: later_at,
            case_id: cases[0],
            events: later.events,
            seal: None,
        }
    );
}

async fn a_reader_waiting_at_the_end_sees_a_commit_as_soon_as_it_is_made<L: EventLog + Clone>(
    log: L,
) {
    let case = CaseId::new_v7();
    let mut reader = log.read_from(1);
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            log.append(commit(case, 0, 1, "report"), 0).await.unwrap()
        })
    };

    let first = within("the first commit", PATIENCE, reader.next())
        .await
        .unwrap()
        .unwrap();

    let appended = writer.await.unwrap();
    assert_eq!((first.position, first.case_id), (appended.position, case));
}

async fn head_is_the_position_of_the_newest_commit<L: EventLog>(log: L) {
    let (a, b) = (CaseId::new_v7(), CaseId::new_v7());
    log.append(commit(a, 0, 1, "a"), 0).await.unwrap();
    let newest = log.append(commit(b, 0, 4, "b"), 0).await.unwrap();

    assert_eq!(log.head().await.unwrap(), newest.position);
    // A duplicate moves nothing.
    log.append(commit(a, 0, 1, "a"), 0).await.unwrap();
    assert_eq!(log.head().await.unwrap(), newest.position);
}

// ---------------------------------------------------------------------------------------
// Both implementations run every behaviour
// ---------------------------------------------------------------------------------------

macro_rules! contract {
    ($($behaviour:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $behaviour() {
                    super::$behaviour(MemoryLog::new()).await;
                }
            )*
        }

        mod jetstream {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $behaviour() {
                    let server = NatsServer::start();
                    let log = support::jetstream_log(&server).await;
                    super::$behaviour(log).await;
                }
            )*
        }
    };
}

contract!(
    an_empty_log_has_its_head_at_zero,
    a_case_with_no_events_loads_empty_at_position_zero,
    a_new_case_is_created_at_expected_position_zero,
    a_commit_of_several_events_is_stored_as_one_and_loads_back_whole,
    two_concurrent_creates_of_one_case_exactly_one_wins,
    racing_appends_at_the_same_position_exactly_one_wins_per_version,
    an_append_behind_the_case_is_refused_and_names_where_the_case_is,
    a_create_of_a_case_that_exists_is_refused,
    the_same_commit_appended_twice_is_stored_once,
    a_retried_commit_is_a_duplicate_even_after_the_case_moved_on,
    a_case_with_twenty_events_across_several_commits_loads_in_order,
    reading_from_a_position_returns_every_commit_in_log_order_then_follows_new_ones,
    a_reader_waiting_at_the_end_sees_a_commit_as_soon_as_it_is_made,
    head_is_the_position_of_the_newest_commit,
);

// ---------------------------------------------------------------------------------------
// What only the JetStream stream has
// ---------------------------------------------------------------------------------------

mod jetstream_stream {
    use super::*;
    use async_nats::jetstream;

    fn stream_name() -> String {
        JetStreamLogConfig::default().stream_name
    }

    #[tokio::test]
    async fn opening_the_log_creates_a_file_stream_that_keeps_events_forever() {
        let server = NatsServer::start();
        let log = support::jetstream_log(&server).await;
        let context = jetstream::new(server.connect().await);

        let info = context
            .get_stream(stream_name())
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap();

        let config = &info.config;
        assert_eq!(config.storage, StorageType::File);
        assert_eq!(config.subjects, vec!["wangge.events.>".to_owned()]);
        assert_eq!(config.num_replicas, 1);
        assert!(config.deny_delete, "deleting a message is denied");
        assert!(config.deny_purge, "purging is denied");
        assert!(!config.allow_rollup, "a rollup would purge, so it is off");
        assert!(config.allow_direct, "cases are loaded with direct gets");
        assert_eq!(config.max_age, Duration::ZERO, "events never expire");
        assert_eq!(config.duplicate_window, log.config().duplicate_window);
    }

    #[tokio::test]
    async fn the_server_refuses_to_purge_the_stream_or_delete_an_event() {
        let server = NatsServer::start();
        let log = support::jetstream_log(&server).await;
        let case = CaseId::new_v7();
        let stored = log.append(commit(case, 0, 1, "report"), 0).await.unwrap();
        let stream = jetstream::new(server.connect().await)
            .get_stream(stream_name())
            .await
            .unwrap();

        let purge = stream.purge().await;
        let purge_subject = stream.purge().filter(log.config().case_subject(case)).await;
        let delete = stream.delete_message(stored.position).await;

        // The server answers 10110 "stream purge not permitted", 10057 "message delete not permitted".
        assert!(
            format!("{purge:?}").contains("purge not permitted"),
            "purge: {purge:?}"
        );
        assert!(
            format!("{purge_subject:?}").contains("purge not permitted"),
            "purging a case: {purge_subject:?}"
        );
        assert!(
            format!("{delete:?}").contains("delete not permitted"),
            "delete: {delete:?}"
        );
        assert_eq!(
            log.load(case).await.unwrap().events.len(),
            1,
            "the event is still there"
        );
        assert_eq!(log.head().await.unwrap(), stored.position);
    }

    #[tokio::test]
    async fn each_case_has_its_own_subject_named_by_shard_and_case_id() {
        let server = NatsServer::start();
        let log = support::jetstream_log(&server).await;
        let (a, b) = (CaseId::new_v7(), CaseId::new_v7());
        let stored = log.append(commit(a, 0, 3, "a"), 0).await.unwrap();
        log.append(commit(a, 3, 1, "a2"), stored.position)
            .await
            .unwrap();
        log.append(commit(b, 0, 1, "b"), 0).await.unwrap();
        let stream = jetstream::new(server.connect().await)
            .get_stream(stream_name())
            .await
            .unwrap();

        let message = stream.get_raw_message(stored.position).await.unwrap();

        let shard = format!("{:02x}", a.0.as_bytes()[15]);
        assert_eq!(
            message.subject.as_str(),
            format!("wangge.events.{shard}.{a}")
        );
        assert_eq!(message.subject.as_str(), log.config().case_subject(a));
        let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(header("Nats-Msg-Id"), Some(format!("a@{a}")));
        assert_eq!(
            header("Nats-Expected-Last-Subject-Sequence").as_deref(),
            Some("0")
        );
        assert_eq!(header("Wangge-Case-Id"), Some(a.to_string()));
        assert_eq!(header("Wangge-First-Sequence").as_deref(), Some("1"));
        assert_eq!(header("Wangge-Last-Sequence").as_deref(), Some("3"));
        assert_eq!(
            header("Wangge-Event-Types").as_deref(),
            Some("case.reported,case.comment_added,case.comment_added")
        );
        let subjects: Vec<(String, usize)> = stream
            .info_with_subjects("wangge.events.>")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let subjects: HashSet<_> = subjects.into_iter().collect();
        assert_eq!(
            subjects,
            HashSet::from([
                (log.config().case_subject(a), 2),
                (log.config().case_subject(b), 1)
            ]),
            "one subject per case, holding that case's commits"
        );
    }

    #[tokio::test]
    async fn opening_the_log_again_keeps_the_stream_and_its_events() {
        let server = NatsServer::start();
        let first = support::jetstream_log(&server).await;
        let case = CaseId::new_v7();
        let stored = first.append(commit(case, 0, 2, "report"), 0).await.unwrap();
        let created = jetstream::new(server.connect().await)
            .get_stream(stream_name())
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap()
            .created;

        let second = support::jetstream_log(&server).await;
        let third = support::jetstream_log(&server).await;

        assert_eq!(second.load(case).await.unwrap().events.len(), 2);
        assert_eq!(third.head().await.unwrap(), stored.position);
        let info = jetstream::new(server.connect().await)
            .get_stream(stream_name())
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap();
        assert_eq!(info.created, created, "the stream was not recreated");
    }

    #[tokio::test]
    async fn opening_the_log_with_a_stronger_setting_updates_the_stream_a_weaker_is_refused() {
        let server = NatsServer::start();
        let log = support::jetstream_log(&server).await;
        let case = CaseId::new_v7();
        log.append(commit(case, 0, 1, "report"), 0).await.unwrap();
        let stronger = JetStreamLogConfig {
            duplicate_window: Duration::from_secs(300),
            max_commit_bytes: 2 * 1024 * 1024,
            ..JetStreamLogConfig::default()
        };

        let reopened = support::jetstream_log_with(&server, stronger).await;

        let info = || async {
            jetstream::new(server.connect().await)
                .get_stream(stream_name())
                .await
                .unwrap()
                .get_info()
                .await
                .unwrap()
        };
        let updated = info().await;
        assert_eq!(updated.config.duplicate_window, Duration::from_secs(300));
        assert_eq!(updated.config.max_message_size, 2 * 1024 * 1024);
        assert!(updated.config.deny_delete && updated.config.deny_purge);
        assert_eq!(
            reopened.load(case).await.unwrap().events.len(),
            1,
            "events survive the update"
        );

        // Smaller commits and a shorter duplicate window would weaken it: refused, unchanged.
        let weaker = JetStreamLogConfig {
            duplicate_window: Duration::from_secs(30),
            max_commit_bytes: 256 * 1024,
            ..JetStreamLogConfig::default()
        };
        let refused = JetStreamLog::open(server.connect().await, weaker)
            .await
            .err()
            .expect("a weakening is refused")
            .to_string();
        assert!(
            refused.contains("max_msg_size from 2097152 to 262144")
                && refused.contains("duplicate_window from 300s to 30s"),
            "{refused}"
        );
        assert_eq!(info().await.config.max_message_size, 2 * 1024 * 1024);
    }

    #[tokio::test]
    async fn the_replica_count_comes_from_the_configuration() {
        // One server cannot hold three replicas: the server must be asked for three (and
        // refuse) rather than the log quietly creating a single copy.
        let server = NatsServer::start();
        let three = JetStreamLogConfig {
            replicas: 3,
            ..JetStreamLogConfig::default()
        };

        let opened = JetStreamLog::open(server.connect().await, three).await;

        match opened {
            Err(LogError::Unavailable(reason)) => assert!(reason.contains("replicas"), "{reason}"),
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("a stream of 3 replicas was opened on a single server"),
        }
        let one = support::jetstream_log(&server).await;
        let info = jetstream::new(server.connect().await)
            .get_stream(one.config().stream_name.clone())
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap();
        assert_eq!(info.config.num_replicas, 1);
    }

    /// Three nodes on free ports, routed to each other, with a JetStream leader elected.
    async fn cluster_of_three() -> (Vec<NatsServer>, async_nats::Client) {
        let cluster_ports: Vec<u16> = (0..3).map(|_| support::free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes: Vec<NatsServer> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let name = format!("wangge-{i}");
                let listen = format!("nats://127.0.0.1:{port}");
                NatsServer::start_with_args(&[
                    "--server_name",
                    &name,
                    "--cluster_name",
                    "wangge",
                    "--cluster",
                    &listen,
                    "--routes",
                    &routes,
                ])
            })
            .collect();
        let client = nodes[0].connect().await;
        // Ask briefly and often until the cluster has elected its JetStream leader.
        eventually(
            "the cluster to elect a JetStream leader",
            Duration::from_secs(8),
            || {
                let client = client.clone();
                async move {
                    let asked = client.request("$JS.API.INFO", "".into());
                    let answer = tokio::time::timeout(Duration::from_millis(250), asked).await;
                    let body = answer.ok()?.ok()?.payload;
                    (!String::from_utf8_lossy(&body).contains("\"error\"")).then_some(())
                }
            },
        )
        .await;
        (nodes, client)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_cluster_of_three_the_stream_keeps_three_replicas_when_configured() {
        let (_nodes, client) = cluster_of_three().await;
        let three = JetStreamLogConfig {
            replicas: 3,
            ..JetStreamLogConfig::default()
        };

        let log = JetStreamLog::open(client.clone(), three)
            .await
            .expect("open on the cluster");

        let info = jetstream::new(client.clone())
            .get_stream(stream_name())
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap();
        assert_eq!(info.config.num_replicas, 3);
        let cluster = info.cluster.expect("a clustered stream reports its peers");
        assert_eq!(cluster.replicas.len(), 2, "a leader and two followers");
        let case = CaseId::new_v7();
        let stored = eventually("the first commit on the new stream", PATIENCE, || {
            let (log, create) = (log.clone(), commit(case, 0, 1, "report"));
            async move { log.append(create, 0).await.ok() }
        })
        .await;
        assert_eq!(log.load(case).await.unwrap().last_position, stored.position);
    }

    /// A replicated stream must serialise `Nats-Expected-Last-Subject-Sequence` against
    /// publishes still in flight, not only against what is stored: nats-server before 2.9.21
    /// let several racers at one position all win (nats-io/nats-server#4320), which is one
    /// reason the engine refuses servers older than 2.12.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn on_a_cluster_of_three_racing_appends_still_have_exactly_one_winner() {
        let (_nodes, client) = cluster_of_three().await;
        let three = JetStreamLogConfig {
            replicas: 3,
            ..JetStreamLogConfig::default()
        };
        let log = JetStreamLog::open(client, three)
            .await
            .expect("open on the cluster");
        eventually("the new stream to take commits", PATIENCE, || {
            let (log, probe) = (log.clone(), commit(CaseId::new_v7(), 0, 1, "probe"));
            async move { log.append(probe, 0).await.ok() }
        })
        .await;

        super::two_concurrent_creates_of_one_case_exactly_one_wins(log.clone()).await;
        super::racing_appends_at_the_same_position_exactly_one_wins_per_version(log).await;
    }

    #[tokio::test]
    async fn a_resolved_event_written_as_version_one_loads_as_the_current_version() {
        let server = NatsServer::start();
        let log = support::jetstream_log(&server).await;
        let case = CaseId::new_v7();
        let report = log.append(commit(case, 0, 1, "report"), 0).await.unwrap();
        // What an older engine wrote: `case.resolved` v1 with a single photo_url.
        let mut old = serde_json::to_value(&commit(case, 1, 1, "old-resolved").events[0]).unwrap();
        old["event_type"] = "case.resolved".into();
        old["schema_version"] = 1.into();
        old["payload"] = serde_json::json!({
            "worker_id": "wang-li",
            "notes": "Replaced the lamp",
            "photo_url": "oss://wangge/results/lamp.jpg"
        });
        let body = serde_json::to_vec(&vec![old]).unwrap();
        let context = jetstream::new(server.connect().await);
        let stored = context
            .publish(log.config().case_subject(case), body.into())
            .await
            .unwrap()
            .await
            .unwrap();

        let history = log.load(case).await.unwrap();

        assert_eq!(history.events.len(), 2);
        assert_eq!(history.last_position, stored.sequence);
        let resolved = &history.events[1];
        assert_eq!(resolved.schema_version, 2);
        let CaseEvent::Resolved(payload) = &resolved.event else {
            panic!("expected case.resolved, got {:?}", resolved.event)
        };
        assert_eq!(payload.worker_id, "wang-li");
        assert_eq!(payload.notes, "Replaced the lamp");
        assert_eq!(
            payload.media,
            vec![MediaRef {
                kind: MediaKind::Photo,
                url: "oss://wangge/results/lamp.jpg".to_owned(),
                sha256: None
            }]
        );
        let read = read_n(&log, report.position + 1, 1).await;
        assert_eq!(
            read[0].events,
            history.events[1..],
            "the log reader upcasts too"
        );
    }

    #[tokio::test]
    async fn a_commit_made_by_a_plain_publisher_is_loaded_like_any_other() {
        // Another system may publish a commit with core NATS; the stream still captures it.
        let server = NatsServer::start();
        let log = support::jetstream_log(&server).await;
        let case = CaseId::new_v7();
        let raw = commit(case, 0, 2, "raw");
        let client = server.connect().await;
        client
            .publish(
                log.config().case_subject(case),
                serde_json::to_vec(&raw.events).unwrap().into(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();

        let history = eventually("the raw commit to be stored", PATIENCE, || async {
            let history = log.load(case).await.unwrap();
            (!history.events.is_empty()).then_some(history)
        })
        .await;

        assert_eq!(history.events, raw.events);
    }
}

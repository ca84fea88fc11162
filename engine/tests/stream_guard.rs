//! The log defends itself: after the engine opened its streams, a client with administration
//! rights changing a setting the engine owns, trimming the event log (even with the settings
//! put back afterwards), or deleting a stream is found by the guard, which names the stream
//! and what changed.

mod support;

use std::time::Duration;

use async_nats::jetstream::stream::DiscardPolicy;
use support::{jetstream_log, report_command, request, service};
use wangge_engine::grid::{GridStream, GridStreamConfig};
use wangge_engine::nats::{StreamGuard, StreamViolation};
use wangge_schemas::CaseId;
use wangge_testkit::NatsServer;

const EVENTS: &str = "WANGGE_EVENTS";
const GRID: &str = "WANGGE_GRID";

async fn engine_streams(server: &NatsServer) -> (async_nats::jetstream::Context, StreamGuard) {
    let log = jetstream_log(server).await;
    let cases = service(log);
    for n in 0..10 {
        cases
            .handle(request(
                CaseId::new_v7(),
                report_command(),
                &format!("m-{n}"),
            ))
            .await
            .expect("a report");
    }
    GridStream::open(server.connect().await, GridStreamConfig::default())
        .await
        .expect("the grid stream");
    let context = async_nats::jetstream::new(server.connect().await);
    let guard = StreamGuard::baseline(context.clone(), &[(EVENTS, true), (GRID, true)])
        .await
        .expect("the streams as the engine left them");
    (context, guard)
}

#[tokio::test]
async fn streams_as_the_engine_left_them_pass() {
    let server = NatsServer::start();
    let (_, guard) = engine_streams(&server).await;
    guard.check().await.expect("nothing changed");
}

#[tokio::test]
async fn an_operators_strengthening_is_no_violation_a_weakening_is() {
    let server = NatsServer::start();
    let (context, guard) = engine_streams(&server).await;
    let current = || async {
        context
            .get_stream(EVENTS)
            .await
            .unwrap()
            .cached_info()
            .config
            .clone()
    };
    // Larger commits allowed: the stream is no weaker, the engine keeps serving.
    let mut config = current().await;
    let engines = config.max_message_size;
    config.max_message_size = engines * 2;
    context.update_stream(&config).await.expect("raise");
    guard.check().await.expect("a raised limit is no violation");

    // Below what the engine started with: a violation, named.
    let mut config = current().await;
    config.max_message_size = engines / 2;
    context.update_stream(&config).await.expect("lower");
    let violations = guard.check().await.expect_err("a lowered limit is found");
    assert!(
        violations.iter().any(|v| matches!(
            v,
            StreamViolation::Changed { stream, setting: "max_msg_size", .. } if stream == EVENTS
        )),
        "{violations:?}"
    );
}

#[tokio::test]
async fn a_message_limit_with_discard_old_on_the_event_log_is_found() {
    let server = NatsServer::start();
    let (context, guard) = engine_streams(&server).await;
    let mut config = context
        .get_stream(EVENTS)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    config.max_messages = 5;
    config.discard = DiscardPolicy::Old;
    context
        .update_stream(&config)
        .await
        .expect("the attacker's update");

    let violations = guard.check().await.expect_err("found");
    let settings: Vec<&str> = violations
        .iter()
        .filter_map(|v| match v {
            StreamViolation::Changed {
                stream, setting, ..
            } if stream == EVENTS => Some(*setting),
            _ => None,
        })
        .collect();
    assert!(settings.contains(&"max_msgs"), "{violations:?}");
    assert!(settings.contains(&"discard"), "{violations:?}");
    // 10 commits became 5: the start of the log is gone too.
    assert!(
        violations.iter().any(|v| matches!(
            v,
            StreamViolation::Trimmed { stream, first_sequence: 6 } if stream == EVENTS
        )),
        "{violations:?}"
    );
    let message = violations[0].to_string();
    assert!(message.contains(EVENTS), "{message}");
}

#[tokio::test]
async fn a_trim_is_found_even_when_the_settings_are_put_back() {
    let server = NatsServer::start();
    let (context, guard) = engine_streams(&server).await;
    let original = context
        .get_stream(EVENTS)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    // The server itself refuses to lift deny_purge (and deny_delete) once set: a purge is
    // out of reach even for an administrator.
    let mut open = original.clone();
    open.deny_purge = false;
    assert!(context.update_stream(&open).await.is_err());
    // A limit with discard-old is not: the log is cut to its last four commits, and the
    // settings are put back as they were.
    let mut trimming = original.clone();
    trimming.max_messages = 4;
    trimming.discard = DiscardPolicy::Old;
    context.update_stream(&trimming).await.expect("trimmed");
    context
        .update_stream(&original)
        .await
        .expect("settings back");

    let violations = guard.check().await.expect_err("found");
    assert_eq!(
        violations,
        vec![StreamViolation::Trimmed {
            stream: EVENTS.to_owned(),
            first_sequence: 7,
        }]
    );
}

#[tokio::test]
async fn a_deleted_stream_is_found_and_named() {
    let server = NatsServer::start();
    let (context, guard) = engine_streams(&server).await;
    context.delete_stream(GRID).await.expect("deleted");
    let violations = guard.check().await.expect_err("found");
    assert!(
        matches!(&violations[..], [StreamViolation::Missing { stream, .. }] if stream == GRID),
        "{violations:?}"
    );
    // Watching stops with the same finding instead of carrying on.
    let watched = guard
        .watch(Duration::from_millis(50), std::future::pending())
        .await
        .expect_err("the watch stops");
    assert_eq!(watched.len(), 1);
}

#[tokio::test]
async fn an_engine_starting_on_a_trimmed_log_refuses() {
    let server = NatsServer::start();
    let (context, _) = engine_streams(&server).await;
    let mut config = context
        .get_stream(EVENTS)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    config.max_messages = 3;
    config.discard = DiscardPolicy::Old;
    context.update_stream(&config).await.unwrap();
    // The next start puts its settings back, but the lost commits cannot come back: the
    // baseline check refuses.
    jetstream_log(&server).await;
    let refused = StreamGuard::baseline(context.clone(), &[(EVENTS, true)])
        .await
        .expect_err("a trimmed log is refused at start");
    assert!(
        matches!(
            &refused[..],
            [StreamViolation::Trimmed {
                first_sequence: 8,
                ..
            }]
        ),
        "{refused:?}"
    );
}

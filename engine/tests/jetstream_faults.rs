//! What happens to the event log when things go wrong: the server dies between storing a
//! commit and acknowledging it, the server restarts under a connected engine, a command is
//! sent while the server is down, and the stream holds a commit the engine cannot read.
//!
//! Every test has a nats-server of its own, so killing it (SIGKILL: no flush, no goodbye)
//! disturbs nobody else.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use wangge_engine::app::{CommandError, CommandOutcome, CommandRequest};
use wangge_engine::domain::CaseCommand;
use wangge_engine::log::codec::{
    encode_events, event_types, HEADER_CASE_ID, HEADER_EVENT_TYPES, HEADER_FIRST_SEQUENCE,
    HEADER_LAST_SEQUENCE,
};
use wangge_engine::log::{
    Appended, CaseHistory, Commit, EventLog, JetStreamLog, LogError, LogPosition, StoredCommit,
};
use wangge_schemas::{CaseId, Priority};
use wangge_testkit::NatsServer;

use support::{commit, eventually, report_command, request, within};

const PATIENCE: Duration = Duration::from_secs(5);
/// Long enough for a restarted server to come back and the client to reconnect.
const AFTER_RESTART: Duration = Duration::from_secs(8);

fn accept() -> CaseCommand {
    CaseCommand::Accept {
        category: "municipal.lighting".to_owned(),
        priority: Priority::High,
    }
}

/// Every commit in the log, oldest first.
async fn all_commits<L: EventLog>(log: &L) -> Vec<StoredCommit> {
    let head = log.head().await.expect("read the head") as usize;
    within(
        "the whole log",
        PATIENCE,
        log.read_from(1).take(head).try_collect::<Vec<_>>(),
    )
    .await
    .expect("read the log")
}

async fn commits_of<L: EventLog>(log: &L, case: CaseId) -> Vec<StoredCommit> {
    all_commits(log)
        .await
        .into_iter()
        .filter(|c| c.case_id == case)
        .collect()
}

/// Whether some file under `dir` contains `needle`: the server has handed the bytes to the
/// operating system, so they survive the process being killed.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            on_disk(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

async fn wait_until_on_disk(server: &NatsServer, needle: &str) {
    let dir = server.store_dir().join("jetstream");
    eventually("the commit to reach the store's files", PATIENCE, || {
        let found = on_disk(&dir, needle.as_bytes());
        async move { found.then_some(()) }
    })
    .await;
}

/// The headers the JetStream log puts on a commit.
fn commit_headers(commit: &Commit, expected: LogPosition) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", commit.idempotency_key.as_str());
    headers.insert("Nats-Expected-Last-Subject-Sequence", expected.to_string());
    headers.insert(HEADER_CASE_ID, commit.case_id.to_string());
    headers.insert(HEADER_FIRST_SEQUENCE, commit.events[0].sequence.to_string());
    headers.insert(
        HEADER_LAST_SEQUENCE,
        commit.events[commit.events.len() - 1].sequence.to_string(),
    );
    headers.insert(HEADER_EVENT_TYPES, event_types(&commit.events));
    headers
}

/// Publishes a commit with core NATS and no reply subject: the stream stores it, and nobody
/// ever hears the acknowledgement, exactly as when the server dies before answering.
async fn publish_without_hearing_the_ack(
    client: &async_nats::Client,
    log: &JetStreamLog,
    commit: &Commit,
    expected: LogPosition,
) {
    let subject = log.config().case_subject(commit.case_id);
    let headers = commit_headers(commit, expected);
    client
        .publish_with_headers(subject, headers, encode_events(&commit.events))
        .await
        .unwrap();
    client.flush().await.unwrap();
}

/// A JetStream log whose next append is stored by the server but never acknowledged: the
/// caller gets `Unavailable`, as if the server had died between publish and ack.
#[derive(Clone)]
struct AckGetsLost {
    inner: JetStreamLog,
    client: async_nats::Client,
    armed: Arc<AtomicBool>,
    lost_key: Arc<Mutex<Option<String>>>,
}

impl AckGetsLost {
    fn new(inner: JetStreamLog, client: async_nats::Client) -> Self {
        Self {
            inner,
            client,
            armed: Arc::default(),
            lost_key: Arc::default(),
        }
    }

    fn lose_the_next_ack(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn lost_key(&self) -> String {
        self.lost_key
            .lock()
            .unwrap()
            .clone()
            .expect("an ack was lost")
    }
}

impl EventLog for AckGetsLost {
    async fn append(&self, commit: Commit, expected: LogPosition) -> Result<Appended, LogError> {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return self.inner.append(commit, expected).await;
        }
        publish_without_hearing_the_ack(&self.client, &self.inner, &commit, expected).await;
        *self.lost_key.lock().unwrap() = Some(commit.idempotency_key);
        Err(LogError::Unavailable(
            "the server died before it acknowledged the commit".into(),
        ))
    }

    async fn append_after(
        &self,
        commit: Commit,
        history: &CaseHistory,
    ) -> Result<Appended, LogError> {
        if self.armed.load(Ordering::SeqCst) {
            return self.append(commit, history.last_position).await;
        }
        self.inner.append_after(commit, history).await
    }

    async fn load(&self, case_id: CaseId) -> Result<CaseHistory, LogError> {
        self.inner.load(case_id).await
    }

    fn read_from(&self, from: LogPosition) -> BoxStream<'static, Result<StoredCommit, LogError>> {
        self.inner.read_from(from)
    }

    async fn head(&self) -> Result<LogPosition, LogError> {
        self.inner.head().await
    }
}

/// Retries a command until the log answers, as a sender would after an outage.
async fn retry_until_answered<L: EventLog>(
    service: &wangge_engine::app::CaseService<L>,
    request: &CommandRequest,
) -> CommandOutcome {
    eventually(
        "the retried command to be answered",
        AFTER_RESTART,
        || async {
            match service.handle(request.clone()).await {
                Ok(outcome) => Some(outcome),
                Err(CommandError::Log(LogError::Unavailable(_))) => None,
                Err(other) => panic!("the retry was refused: {other}"),
            }
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------
// The server dies between publish and ack
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_ack_was_lost_when_the_server_died_is_committed_exactly_once() {
    let mut server = NatsServer::start();
    let log = support::jetstream_log(&server).await;
    let lossy = AckGetsLost::new(log.clone(), server.connect().await);
    let service = support::service(lossy.clone());
    let case = CaseId::new_v7();
    service
        .handle(request(case, report_command(), "report-1"))
        .await
        .unwrap();
    let accept = request(case, accept(), "accept-1");

    // The server stores the commit, then dies before the engine hears back.
    lossy.lose_the_next_ack();
    let first = service.handle(accept.clone()).await;
    assert!(
        matches!(first, Err(CommandError::Log(LogError::Unavailable(_)))),
        "got {first:?}"
    );
    eventually(
        "the unacknowledged commit to be stored",
        PATIENCE,
        || async { (log.head().await.unwrap() == 2).then_some(()) },
    )
    .await;
    wait_until_on_disk(&server, &lossy.lost_key()).await;
    server.kill();
    server.restart();

    // The sender retries the same message.
    let retried = retry_until_answered(&service, &accept).await;

    assert!(
        retried.duplicate,
        "the retry is recognised, not written again"
    );
    assert_eq!(retried.sequence, 2);
    let stored = commits_of(&log, case).await;
    assert_eq!(stored.len(), 2, "the report and exactly one acceptance");
    assert_eq!(
        retried.events, stored[1].events,
        "the retry answers with what was stored"
    );
    // An engine that restarted too (nothing cached) gives the same answer.
    let fresh = support::service(log.clone());
    let again = fresh.handle(accept).await.unwrap();
    assert_eq!(
        (again.duplicate, again.events),
        (true, stored[1].events.clone())
    );
    assert_eq!(log.head().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_ack_was_lost_is_recognised_by_its_key_after_the_server_restarts() {
    // The server rebuilds its duplicate window from the stored messages on restart, so the
    // log itself answers the retry as a duplicate (the case history is not even needed).
    let mut server = NatsServer::start();
    let log = support::jetstream_log(&server).await;
    let case = CaseId::new_v7();
    let report = commit(case, 0, 2, "report");
    publish_without_hearing_the_ack(&server.connect().await, &log, &report, 0).await;
    eventually(
        "the unacknowledged commit to be stored",
        PATIENCE,
        || async { (log.head().await.unwrap() == 1).then_some(()) },
    )
    .await;
    wait_until_on_disk(&server, &report.idempotency_key).await;
    server.kill();
    server.restart();

    let retried = eventually("the retry to be answered", AFTER_RESTART, || {
        let (log, report) = (log.clone(), report.clone());
        async move { log.append(report, 0).await.ok() }
    })
    .await;

    assert_eq!(
        retried,
        Appended {
            position: 1,
            duplicate: true,
            next_seal_link: None,
        }
    );
    assert_eq!(log.load(case).await.unwrap().events, report.events);
    assert_eq!(log.head().await.unwrap(), 1);
}

// ---------------------------------------------------------------------------------------
// The server restarts under a connected engine
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_keeps_working_after_the_server_is_killed_and_restarted() {
    let mut server = NatsServer::start();
    let log = support::jetstream_log(&server).await;
    let case = CaseId::new_v7();
    let before = commit(case, 0, 3, "before");
    let first = log.append(before.clone(), 0).await.unwrap();
    wait_until_on_disk(&server, &before.idempotency_key).await;

    server.kill();
    server.restart();

    // The same client reconnects by itself; the first append goes through once it has.
    let after = commit(case, 3, 2, "after");
    let second = eventually("an append after the restart", AFTER_RESTART, || {
        let (log, after) = (log.clone(), after.clone());
        async move {
            match log.append(after, first.position).await {
                Ok(appended) => Some(appended),
                Err(LogError::Unavailable(_)) => None,
                Err(other) => panic!("unexpected error after the restart: {other}"),
            }
        }
    })
    .await;
    let history = log.load(case).await.unwrap();
    assert_eq!(
        history.events.len(),
        5,
        "what was written before the kill is still there"
    );
    assert_eq!(history.events[..3], before.events);
    assert_eq!(history.events[3..], after.events);
    assert_eq!(history.last_position, second.position);
    assert_eq!(log.head().await.unwrap(), second.position);
    let read = all_commits(&log).await;
    assert_eq!(
        read.iter().map(|c| c.position).collect::<Vec<_>>(),
        vec![first.position, second.position]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_following_the_log_carries_on_after_the_server_restarts() {
    let mut server = NatsServer::start();
    let log = support::jetstream_log(&server).await;
    let case = CaseId::new_v7();
    let first = log.append(commit(case, 0, 1, "report"), 0).await.unwrap();
    let mut reader = log.read_from(1);
    let seen = within("the first commit", PATIENCE, reader.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.position, first.position);

    server.kill();
    server.restart();
    let second = eventually("an append after the restart", AFTER_RESTART, || {
        let log = log.clone();
        async move {
            log.append(commit(case, 1, 1, "comment"), first.position)
                .await
                .ok()
        }
    })
    .await;

    let next = within("the commit made after the restart", AFTER_RESTART, async {
        loop {
            // A reader may report the outage as an error; it must not end, and it must not
            // skip or repeat commits once the server is back.
            match reader.next().await.expect("the reader does not end") {
                Ok(commit) => break commit,
                Err(LogError::Unavailable(_)) => continue,
                Err(other) => panic!("unexpected error from the reader: {other}"),
            }
        }
    })
    .await;
    assert_eq!(next.position, second.position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_sent_while_the_server_was_down_is_committed_once_when_retried() {
    let mut server = NatsServer::start();
    let log = support::jetstream_log(&server).await;
    let service = Arc::new(support::service(log.clone()));
    let case = CaseId::new_v7();
    service
        .handle(request(case, report_command(), "report-1"))
        .await
        .unwrap();
    let accept = request(case, accept(), "accept-1");

    server.kill();
    // The client keeps the message while it reconnects; whether the server ends up storing
    // it before the engine gives up waiting is up to timing.
    let during = tokio::spawn({
        let (service, accept) = (service.clone(), accept.clone());
        async move { service.handle(accept).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.restart();
    let first = during.await.unwrap();
    let retried = retry_until_answered(&service, &accept).await;

    let stored = commits_of(&log, case).await;
    assert_eq!(stored.len(), 2, "the report and exactly one acceptance");
    assert_eq!(retried.events, stored[1].events);
    match first {
        Ok(outcome) => assert_eq!(
            (outcome.events, retried.duplicate),
            (stored[1].events.clone(), true)
        ),
        Err(error) => assert_eq!(error.code(), "unavailable", "{error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_riding_out_a_restart_answers_the_command_itself_and_commits_it_once() {
    let mut server = NatsServer::start();
    let log = support::jetstream_log(&server).await;
    // As `wangge serve` runs it: the log's outages ridden out for up to 10 s.
    let service = Arc::new(
        support::service(log.clone()).with_outage_policy(wangge_engine::app::OutagePolicy::SERVE),
    );
    let case = CaseId::new_v7();
    service
        .handle(request(case, report_command(), "report-1"))
        .await
        .unwrap();
    let accept = request(case, accept(), "accept-1");

    server.kill();
    let during = tokio::spawn({
        let (service, accept) = (service.clone(), accept.clone());
        async move { service.handle(accept).await }
    });
    // Down for a second and a half: longer than any one publish waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart();
    let answered = during
        .await
        .unwrap()
        .expect("answered once the server is back, without the sender retrying");

    let stored = commits_of(&log, case).await;
    assert_eq!(stored.len(), 2, "the report and exactly one acceptance");
    assert_eq!(answered.events, stored[1].events);
}

// ---------------------------------------------------------------------------------------
// A commit the engine cannot read
// ---------------------------------------------------------------------------------------

async fn publish_raw(server: &NatsServer, subject: String, body: Vec<u8>) -> LogPosition {
    async_nats::jetstream::new(server.connect().await)
        .publish(subject, body.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

#[tokio::test]
async fn a_commit_that_is_not_json_makes_loading_its_case_fail_as_corrupt_at_its_position() {
    let server = NatsServer::start();
    let log = support::jetstream_log(&server).await;
    let (case, neighbour) = (CaseId::new_v7(), CaseId::new_v7());
    let report = log.append(commit(case, 0, 1, "report"), 0).await.unwrap();
    log.append(commit(neighbour, 0, 1, "neighbour"), 0)
        .await
        .unwrap();
    let garbage = publish_raw(
        &server,
        log.config().case_subject(case),
        b"\x00not json{".to_vec(),
    )
    .await;

    let loaded = log.load(case).await;

    match loaded {
        Err(LogError::Corrupt { position, reason }) => {
            assert_eq!(position, garbage, "the error names the unreadable commit");
            assert!(reason.contains("json"), "{reason}");
        }
        other => panic!("expected a corrupt history, got {other:?}"),
    }
    assert_eq!(
        log.load(neighbour).await.unwrap().events.len(),
        1,
        "other cases still load"
    );
    let read: Vec<_> = within(
        "the log",
        PATIENCE,
        log.read_from(report.position).take(3).collect::<Vec<_>>(),
    )
    .await;
    assert!(read[0].is_ok() && read[1].is_ok());
    assert!(
        matches!(&read[2], Err(LogError::Corrupt { position, .. }) if *position == garbage),
        "the reader names it too: {:?}",
        read[2]
    );
    // A command on the case is refused without writing anything.
    let service = support::service(log.clone());
    let refused = service
        .handle(request(case, accept(), "accept-1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "corrupt_history");
    assert_eq!(log.head().await.unwrap(), garbage);
}

#[tokio::test]
async fn a_commit_holding_another_cases_events_is_corrupt() {
    let server = NatsServer::start();
    let log = support::jetstream_log(&server).await;
    let (case, other) = (CaseId::new_v7(), CaseId::new_v7());
    let foreign = commit(other, 0, 1, "foreign");
    let position = publish_raw(
        &server,
        log.config().case_subject(case),
        serde_json::to_vec(&foreign.events).unwrap(),
    )
    .await;

    let loaded = log.load(case).await;

    assert!(
        matches!(&loaded, Err(LogError::Corrupt { position: p, reason }) if *p == position && reason.contains(&other.to_string())),
        "got {loaded:?}"
    );
}

#[tokio::test]
async fn an_event_from_a_newer_schema_version_is_not_guessed_at() {
    let server = NatsServer::start();
    let log = support::jetstream_log(&server).await;
    let case = CaseId::new_v7();
    let mut event = serde_json::to_value(&commit(case, 0, 1, "future").events[0]).unwrap();
    event["schema_version"] = 99.into();
    let position = publish_raw(
        &server,
        log.config().case_subject(case),
        serde_json::to_vec(&vec![event]).unwrap(),
    )
    .await;

    let loaded = log.load(case).await;

    assert!(
        matches!(&loaded, Err(LogError::Corrupt { position: p, reason }) if *p == position && reason.contains("99")),
        "got {loaded:?}"
    );
}

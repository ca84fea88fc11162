//! Intake over NATS, against a real nats-server of the test's own: other systems publish to
//! `wangge.intake.<kind>` and get a JSON answer; the engine opens exactly one case per source
//! message however often it arrives, keeps every refused message byte for byte with the
//! sender's headers and the reason, and changes nothing else when it refuses one.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::client::RequestErrorKind;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use wangge_engine::app::{CaseService, SystemClock};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::intake::nats::serve_intake;
use wangge_engine::intake::rejected::{
    HEADER_ORIGINAL_SUBJECT, HEADER_REJECTED_AT, HEADER_REJECT_CODE, HEADER_REJECT_FIELD,
    HEADER_REJECT_REASON,
};
use wangge_engine::intake::{IntakeService, JetStreamRejectedStore, RejectedStore};
use wangge_engine::log::{
    Appended, CaseHistory, Commit, EventLog, JetStreamLog, JetStreamLogConfig, LogError,
    LogPosition, StoredCommit,
};
use wangge_schemas::intake::{IntakeReply, MAX_MESSAGE_BYTES};
use wangge_schemas::{CaseId, CaseReported, Source};
use wangge_testkit::NatsServer;

// ---------------------------------------------------------------------------------------
// The harness: a private nats-server, engine instances serving intake, a sending system
// ---------------------------------------------------------------------------------------

const WAIT: Duration = Duration::from_secs(10);

/// A JetStream log that counts, for one engine instance, the commits it tried to append
/// (one per new report it handles) and the commits it wrote.
#[derive(Clone)]
struct CountingLog {
    inner: JetStreamLog,
    attempts: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
}

impl CountingLog {
    fn count(&self, appended: Result<Appended, LogError>) -> Result<Appended, LogError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if matches!(
            appended,
            Ok(Appended {
                duplicate: false,
                ..
            })
        ) {
            self.written.fetch_add(1, Ordering::SeqCst);
        }
        appended
    }
}

impl EventLog for CountingLog {
    async fn append(&self, commit: Commit, expected: LogPosition) -> Result<Appended, LogError> {
        self.count(self.inner.append(commit, expected).await)
    }

    async fn append_after(
        &self,
        commit: Commit,
        history: &CaseHistory,
    ) -> Result<Appended, LogError> {
        self.count(self.inner.append_after(commit, history).await)
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

/// One running engine instance: its own connection, serving intake in a task.
struct Instance {
    attempts: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Instance {
    async fn start(server: &NatsServer) -> Self {
        let client = server.connect().await;
        let log = JetStreamLog::open(client.clone(), JetStreamLogConfig::default())
            .await
            .expect("open the event log");
        let rejected = JetStreamRejectedStore::open(client.clone(), 1)
            .await
            .expect("open the rejected store");
        let (attempts, written) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let log = CountingLog {
            inner: log,
            attempts: attempts.clone(),
            written: written.clone(),
        };
        let cases = Arc::new(CaseService::new(log, Arc::new(SystemClock)));
        let service = Arc::new(IntakeService::new(
            cases,
            rejected,
            Arc::new(GridDirectory::sample_city()),
            Arc::new(CategoryCatalogue::sample()),
        ));
        let task = tokio::spawn(async move {
            serve_intake(client, service, std::future::pending())
                .await
                .expect("serve intake");
        });
        Self {
            attempts,
            written,
            task,
        }
    }

    fn commits_written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// How many new reports this instance handled: each one tries one append.
    fn appends_tried(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The server, one engine instance, and a sending system with read access to the streams.
struct World {
    server: NatsServer,
    instances: Vec<Instance>,
    /// The sending system's connection.
    sender: async_nats::Client,
    events: JetStreamLog,
    rejected: JetStreamRejectedStore,
}

impl World {
    async fn start() -> Self {
        let server = NatsServer::start();
        let instance = Instance::start(&server).await;
        let sender = server.connect().await;
        let events = JetStreamLog::open(sender.clone(), JetStreamLogConfig::default())
            .await
            .expect("open the event log");
        let rejected = JetStreamRejectedStore::open(sender.clone(), 1)
            .await
            .expect("open the rejected store");
        Self {
            server,
            instances: vec![instance],
            sender,
            events,
            rejected,
        }
    }

    async fn add_instance(&mut self) {
        let instance = Instance::start(&self.server).await;
        self.instances.push(instance);
    }

    /// Request-reply as a careful sender does it: retry while no engine has subscribed yet.
    async fn request(
        &self,
        subject: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> IntakeReply {
        let body = body.into();
        let deadline = Instant::now() + WAIT;
        loop {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(*name, *value);
            }
            match self
                .sender
                .request_with_headers(subject.to_owned(), map, body.clone())
                .await
            {
                Ok(answer) => {
                    return serde_json::from_slice(&answer.payload).unwrap_or_else(|e| {
                        panic!(
                            "the answer is not an intake reply ({e}): {}",
                            String::from_utf8_lossy(&answer.payload)
                        )
                    })
                }
                Err(error)
                    if error.kind() == RequestErrorKind::NoResponders
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("request on {subject} failed: {error}"),
            }
        }
    }

    /// Sends a report and expects a new case; also proves the engine is listening.
    async fn report(&self, message: &Value) -> CaseId {
        match self
            .request(&subject_of(message), &[], message.to_string())
            .await
        {
            IntakeReply::Accepted {
                case_id,
                sequence: 1,
                duplicate: false,
            } => case_id,
            other => panic!("expected a new case, got {other:?}"),
        }
    }

    /// Publishes without a reply subject: fire and forget.
    async fn publish(&self, subject: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, *value);
        }
        self.sender
            .publish_with_headers(subject.to_owned(), map, body.into())
            .await
            .expect("publish");
        self.sender.flush().await.expect("flush");
    }

    async fn event_head(&self) -> LogPosition {
        self.events.head().await.expect("event log head")
    }

    async fn case_events(&self, case_id: CaseId) -> usize {
        self.events
            .load(case_id)
            .await
            .expect("load the case")
            .events
            .len()
    }

    async fn rejected_count(&self) -> u64 {
        let context = async_nats::jetstream::new(self.sender.clone());
        let stream = context
            .get_stream(JetStreamRejectedStore::STREAM)
            .await
            .expect("the rejected stream exists");
        stream
            .get_info()
            .await
            .expect("rejected stream info")
            .state
            .messages
    }

    /// The kept message exactly as it sits in the rejected stream.
    async fn raw_rejected(&self, id: u64) -> async_nats::jetstream::message::StreamMessage {
        let context = async_nats::jetstream::new(self.sender.clone());
        let stream = context
            .get_stream(JetStreamRejectedStore::STREAM)
            .await
            .expect("the rejected stream exists");
        stream.direct_get(id).await.expect("the kept message")
    }
}

/// Waits for `probe` to return something, for at most a few seconds.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn subject_of(message: &Value) -> String {
    format!(
        "wangge.intake.{}",
        message["kind"].as_str().expect("a kind")
    )
}

fn resident_report(message_id: &str) -> Value {
    json!({
        "kind": "resident_report",
        "schema_version": 1,
        "source": {"system": "miniprogram", "message_id": message_id},
        "reported_at": "2026-03-12T08:15:42+08:00",
        "building": "330106001001001",
        "channel": "mini_program",
        "resident": {"id": "wx-oU7x2kQ9dLr3", "name": "王阿姨"},
        "title": "2栋3单元门口下水道堵塞",
        "description": "下水道堵了两天,污水漫到楼道口。",
        "category": "drainage.blocked",
        "media": [{"kind": "photo", "url": "oss://wangge-media/2026/03/12/mp-1.jpg"}]
    })
}

fn patrol_finding(message_id: &str) -> Value {
    json!({
        "kind": "patrol_finding",
        "schema_version": 1,
        "source": {"system": "grid-app", "message_id": message_id},
        "reported_at": "2026-03-12T15:40:05+08:00",
        "building": "330106001002003",
        "worker_id": "gw-0427",
        "patrol_kind": "fire_safety",
        "title": "楼道堆放电动车和纸箱",
        "description": "占用疏散通道,已劝导清理。",
        "category": "fire_safety.corridor_blocked",
        "fixed_on_spot": true
    })
}

fn service_request(message_id: &str) -> Value {
    json!({
        "kind": "service_request",
        "schema_version": 1,
        "source": {"system": "kiosk-07", "message_id": message_id},
        "reported_at": "2026-03-12T09:05:30+08:00",
        "building": "330106001001002",
        "channel": "kiosk",
        "resident": {"id": "sbk-A27731904"},
        "service": "service.residence_certificate",
        "title": "申请开具居住证明",
        "description": "办理入学需要居住证明。"
    })
}

fn with(mut message: Value, pointer: &str, value: Value) -> Value {
    *message
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the message")) = value;
    message
}

fn case_of(message: &Value) -> CaseId {
    CaseId::derived_from_source(&Source {
        system: message["source"]["system"]
            .as_str()
            .expect("source.system")
            .to_owned(),
        message_id: message["source"]["message_id"]
            .as_str()
            .expect("source.message_id")
            .to_owned(),
    })
}

/// The sending system's own headers; they must come back untouched.
const SENDER_HEADERS: [(&str, &str); 2] = [
    ("X-Request-Id", "req-20260312-0042"),
    ("X-Gateway", "miniprogram-gw-3"),
];

/// A broken message sent by request-reply is answered with its code and field, kept in the
/// rejected stream with its original bytes, the sender's headers and the reason — and the
/// event log does not move.
async fn assert_refused_and_kept(subject: &str, body: Vec<u8>, code: &str, field: Option<&str>) {
    let world = World::start().await;
    let earlier_case = world.report(&service_request("k07-earlier")).await;
    let head_before = world.event_head().await;

    let reply = world.request(subject, &SENDER_HEADERS, body.clone()).await;

    let IntakeReply::Rejected {
        code: got_code,
        field: got_field,
        reason,
        rejected_id,
    } = reply
    else {
        panic!("expected a rejection with {code}, got {reply:?}");
    };
    assert_eq!(
        (got_code.as_str(), got_field.as_deref()),
        (code, field),
        "reason: {reason}"
    );
    assert!(!reason.is_empty());
    let id = rejected_id.expect("the reply says where the message is kept");

    // Kept: the original bytes, the sender's headers, the reason.
    let entry = world.rejected.get(id).await.expect("the kept message");
    assert_eq!(
        entry.rejection.payload,
        Bytes::from(body.clone()),
        "kept byte for byte"
    );
    assert_eq!(entry.rejection.subject, subject);
    assert_eq!(
        (
            entry.rejection.code.as_str(),
            entry.rejection.field.as_deref()
        ),
        (code, field)
    );
    assert_eq!(entry.rejection.reason, reason);
    let own: BTreeSet<(String, String)> = entry.rejection.headers.iter().cloned().collect();
    let sent: BTreeSet<(String, String)> = SENDER_HEADERS
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(own, sent, "exactly the sender's own headers come back");
    assert!(entry.last_replay.is_none());

    // On the wire: the body as sent, the sender's headers and ours beside them.
    let raw = world.raw_rejected(id).await;
    assert_eq!(raw.payload, Bytes::from(body));
    assert_eq!(
        raw.subject.as_str(),
        format!(
            "wangge.rejected.message.{}",
            subject.rsplit('.').next().unwrap()
        )
    );
    let header = |name: &str| raw.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header("X-Request-Id").as_deref(), Some("req-20260312-0042"));
    assert_eq!(header("X-Gateway").as_deref(), Some("miniprogram-gw-3"));
    assert_eq!(header(HEADER_REJECT_CODE).as_deref(), Some(code));
    assert_eq!(header(HEADER_REJECT_FIELD).as_deref(), field);
    assert_eq!(
        header(HEADER_REJECT_REASON).as_deref(),
        Some(reason.as_str())
    );
    assert_eq!(header(HEADER_ORIGINAL_SUBJECT).as_deref(), Some(subject));
    assert!(header(HEADER_REJECTED_AT).is_some());

    // Nothing else changed: no event written, nothing else kept.
    assert_eq!(
        world.event_head().await,
        head_before,
        "a refused message writes no event"
    );
    assert_eq!(world.case_events(earlier_case).await, 1);
    assert_eq!(
        world.rejected_count().await,
        1,
        "exactly the one message is kept"
    );
}

// ---------------------------------------------------------------------------------------
// One case per source message, however often it arrives
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_intake_kind_has_its_subject_and_is_answered_with_its_case() {
    let world = World::start().await;
    for message in [
        resident_report("mp-1"),
        patrol_finding("ga-1"),
        service_request("k07-1"),
    ] {
        let case_id = world.report(&message).await;
        assert_eq!(
            case_id,
            case_of(&message),
            "the case id is derived from the source message"
        );
        assert_eq!(world.case_events(case_id).await, 1);
    }
    assert_eq!(world.event_head().await, 3);
    assert_eq!(world.rejected_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_report_sent_ten_times_opens_one_case_with_one_commit() {
    let world = World::start().await;
    let message = resident_report("mp-20260312-000187");

    let mut replies = Vec::new();
    for _ in 0..10 {
        replies.push(
            world
                .request(&subject_of(&message), &[], message.to_string())
                .await,
        );
    }

    let case_id = case_of(&message);
    assert_eq!(
        replies[0],
        IntakeReply::Accepted {
            case_id,
            sequence: 1,
            duplicate: false
        }
    );
    for reply in &replies[1..] {
        assert_eq!(
            reply,
            &IntakeReply::Accepted {
                case_id,
                sequence: 1,
                duplicate: true
            }
        );
    }
    assert_eq!(world.event_head().await, 1, "one commit");
    assert_eq!(world.case_events(case_id).await, 1, "one report event");
    assert_eq!(world.instances[0].commits_written(), 1);
    assert_eq!(world.rejected_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_copies_of_a_report_arriving_at_once_open_one_case_with_one_commit() {
    let world = World::start().await;
    // Be sure the engine listens, so all ten race each other rather than the subscription.
    world.report(&service_request("k07-warm-up")).await;
    let message = patrol_finding("ga-patrol-20260312-0719");
    let subject = subject_of(&message);

    let replies = futures::future::join_all(
        (0..10).map(|_| world.request(&subject, &[], message.to_string())),
    )
    .await;

    let case_id = case_of(&message);
    let mut duplicates = 0;
    for reply in &replies {
        match reply {
            IntakeReply::Accepted {
                case_id: got,
                sequence: 1,
                duplicate,
            } => {
                assert_eq!(*got, case_id);
                duplicates += usize::from(*duplicate);
            }
            other => panic!("every copy is accepted, got {other:?}"),
        }
    }
    assert_eq!(
        duplicates, 9,
        "exactly one copy wrote the case: {replies:?}"
    );
    assert_eq!(
        world.event_head().await,
        2,
        "the warm-up and this case: one commit each"
    );
    assert_eq!(world.case_events(case_id).await, 1);
    assert_eq!(world.instances[0].commits_written(), 2);
    assert_eq!(world.rejected_count().await, 0);
}

// ---------------------------------------------------------------------------------------
// Each broken message: its code and field, kept as sent, nothing else changed
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_json_is_refused_and_kept() {
    let body = r#"{"kind": "resident_report", "title": "楼道灯坏了""#
        .as_bytes()
        .to_vec();
    assert_refused_and_kept(
        "wangge.intake.resident_report",
        body,
        "malformed_json",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_kind_is_refused_and_kept() {
    let body = with(resident_report("mp-2"), "/kind", json!("complaint"))
        .to_string()
        .into_bytes();
    assert_refused_and_kept(
        "wangge.intake.complaint",
        body,
        "unknown_kind",
        Some("kind"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_on_another_kinds_subject_is_refused_and_kept() {
    let body = patrol_finding("ga-2").to_string().into_bytes();
    assert_refused_and_kept(
        "wangge.intake.resident_report",
        body,
        "kind_mismatch",
        Some("kind"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unsupported_schema_version_is_refused_and_kept() {
    let body = with(service_request("k07-2"), "/schema_version", json!(2))
        .to_string()
        .into_bytes();
    assert_refused_and_kept(
        "wangge.intake.service_request",
        body,
        "unsupported_version",
        Some("schema_version"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_nested_field_is_refused_and_kept() {
    let mut message = resident_report("mp-3");
    message["resident"].as_object_mut().unwrap().remove("id");
    let body = message.to_string().into_bytes();
    assert_refused_and_kept(
        "wangge.intake.resident_report",
        body,
        "missing_field",
        Some("resident.id"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrongly_typed_list_item_field_is_refused_and_kept() {
    let body = with(resident_report("mp-4"), "/media/0/url", json!(17))
        .to_string()
        .into_bytes();
    assert_refused_and_kept(
        "wangge.intake.resident_report",
        body,
        "invalid_type",
        Some("media[0].url"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_field_is_refused_and_kept() {
    let mut message = patrol_finding("ga-3");
    message["priority"] = json!("urgent");
    let body = message.to_string().into_bytes();
    assert_refused_and_kept(
        "wangge.intake.patrol_finding",
        body,
        "unknown_field",
        Some("priority"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_title_is_refused_and_kept() {
    let body = with(service_request("k07-3"), "/title", json!(""))
        .to_string()
        .into_bytes();
    assert_refused_and_kept(
        "wangge.intake.service_request",
        body,
        "empty_text",
        Some("title"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_title_over_its_limit_is_refused_and_kept() {
    let body = with(
        resident_report("mp-5"),
        "/title",
        json!("很长的标题".repeat(21)),
    )
    .to_string()
    .into_bytes();
    assert_refused_and_kept(
        "wangge.intake.resident_report",
        body,
        "text_too_long",
        Some("title"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_many_media_are_refused_and_kept() {
    let media: Vec<Value> = (0..11)
        .map(|i| json!({"kind": "photo", "url": format!("oss://m/{i}.jpg")}))
        .collect();
    let body = with(resident_report("mp-6"), "/media", json!(media))
        .to_string()
        .into_bytes();
    assert_refused_and_kept(
        "wangge.intake.resident_report",
        body,
        "too_many_items",
        Some("media"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payload_over_the_size_limit_is_refused_and_kept_whole() {
    let mut body = resident_report("mp-7").to_string().into_bytes();
    body.resize(MAX_MESSAGE_BYTES + 1, b' ');
    assert_refused_and_kept(
        "wangge.intake.resident_report",
        body,
        "payload_too_large",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_grid_location_is_refused_and_kept() {
    let body = with(
        patrol_finding("ga-4"),
        "/building",
        json!("330106001001999"),
    )
    .to_string()
    .into_bytes();
    assert_refused_and_kept(
        "wangge.intake.patrol_finding",
        body,
        "unknown_grid_location",
        Some("building"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_category_is_refused_and_kept() {
    let body = with(
        resident_report("mp-8"),
        "/category",
        json!("noise.square_dancing"),
    )
    .to_string()
    .into_bytes();
    assert_refused_and_kept(
        "wangge.intake.resident_report",
        body,
        "unknown_category",
        Some("category"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_category_not_allowed_for_the_kind_is_refused_and_kept() {
    let body = with(
        service_request("k07-4"),
        "/service",
        json!("drainage.blocked"),
    )
    .to_string()
    .into_bytes();
    assert_refused_and_kept(
        "wangge.intake.service_request",
        body,
        "category_not_allowed",
        Some("service"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_senders_own_nats_headers_do_not_change_how_a_refused_message_is_kept() {
    let world = World::start().await;
    world.report(&resident_report("mp-warm-up")).await;
    // A sender that bridges from JetStream forwards its own control headers. Two different
    // broken messages with the same Nats-Msg-Id, and one with an expectation about a stream.
    let first = with(resident_report("mp-9"), "/building", json!("nowhere")).to_string();
    let second = with(resident_report("mp-10"), "/category", json!("nothing")).to_string();
    let third = with(resident_report("mp-11"), "/title", json!("")).to_string();
    let headers = [("Nats-Msg-Id", "bridge-1"), ("X-Request-Id", "r-1")];

    let replies = [
        world
            .request("wangge.intake.resident_report", &headers, first.clone())
            .await,
        world
            .request("wangge.intake.resident_report", &headers, second.clone())
            .await,
        world
            .request(
                "wangge.intake.resident_report",
                &[("Nats-Expected-Last-Sequence", "999")],
                third.clone(),
            )
            .await,
    ];

    let mut ids = Vec::new();
    for (reply, body) in replies.iter().zip([&first, &second, &third]) {
        let IntakeReply::Rejected {
            rejected_id: Some(id),
            ..
        } = reply
        else {
            panic!("expected a kept rejection, got {reply:?}");
        };
        let entry = world.rejected.get(*id).await.expect("kept");
        assert_eq!(entry.rejection.payload, Bytes::from(body.clone()));
        ids.push(*id);
    }
    assert_eq!(
        BTreeSet::from_iter(ids.iter()).len(),
        3,
        "three messages, three entries: {ids:?}"
    );
    let entry = world.rejected.get(ids[0]).await.expect("kept");
    let own: BTreeSet<(String, String)> = entry.rejection.headers.iter().cloned().collect();
    let expected: BTreeSet<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(own, expected, "the sender's headers come back as sent");
    assert_eq!(world.rejected_count().await, 3);
}

// ---------------------------------------------------------------------------------------
// Without a reply subject: handled the same way
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_published_without_a_reply_subject_still_opens_its_case() {
    let world = World::start().await;
    world.report(&service_request("k07-warm-up")).await;
    let message = resident_report("mp-fire-and-forget");

    world
        .publish(&subject_of(&message), &[], message.to_string())
        .await;

    let case_id = case_of(&message);
    eventually("the case to appear", || async {
        (world.case_events(case_id).await == 1).then_some(())
    })
    .await;
    let history = world.events.load(case_id).await.expect("the case");
    let reported: &CaseReported = match &history.events[0].event {
        wangge_schemas::CaseEvent::Reported(report) => report,
        other => panic!("the first event is the report, got {other:?}"),
    };
    assert_eq!(reported.reported_category, "drainage.blocked");
    assert_eq!(history.events[0].location.building, "330106001001001");
    assert_eq!(world.event_head().await, 2);
    assert_eq!(world.rejected_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_message_published_without_a_reply_subject_is_still_kept() {
    let world = World::start().await;
    world.report(&service_request("k07-warm-up")).await;
    let head_before = world.event_head().await;
    let body = with(
        patrol_finding("ga-fire-and-forget"),
        "/category",
        json!("noise.square_dancing"),
    )
    .to_string();

    world
        .publish(
            "wangge.intake.patrol_finding",
            &SENDER_HEADERS,
            body.clone(),
        )
        .await;

    let entries = eventually("the message to be kept", || async {
        let entries = world.rejected.list(1, 10).await.expect("list");
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    assert_eq!(entries.len(), 1);
    let kept = &entries[0].rejection;
    assert_eq!(kept.payload, Bytes::from(body));
    assert_eq!(
        (kept.code.as_str(), kept.field.as_deref()),
        ("unknown_category", Some("category"))
    );
    assert!(
        kept.reason.contains("noise.square_dancing"),
        "{}",
        kept.reason
    );
    assert!(
        kept.headers
            .contains(&("X-Request-Id".to_owned(), "req-20260312-0042".to_owned())),
        "{:?}",
        kept.headers
    );
    assert_eq!(world.event_head().await, head_before);
}

// ---------------------------------------------------------------------------------------
// Several engine instances share the load
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engine_instances_share_the_load_and_handle_each_message_exactly_once() {
    let mut world = World::start().await;
    world.add_instance().await;

    // Keep sending new reports until both instances have taken a share (the second one may
    // still be subscribing at first), then check that every report was handled exactly once.
    let deadline = Instant::now() + WAIT;
    let mut sent = Vec::new();
    while sent.len() < 20 || world.instances.iter().any(|i| i.commits_written() == 0) {
        assert!(
            Instant::now() < deadline,
            "the second instance never took a message"
        );
        let batch: Vec<Value> = (sent.len()..sent.len() + 10)
            .map(|n| resident_report(&format!("mp-load-{n}")))
            .collect();
        let replies = futures::future::join_all(batch.iter().map(|message| {
            let world = &world;
            async move {
                world
                    .request(&subject_of(message), &[], message.to_string())
                    .await
            }
        }))
        .await;
        for (message, reply) in batch.into_iter().zip(replies) {
            assert_eq!(
                reply,
                IntakeReply::Accepted {
                    case_id: case_of(&message),
                    sequence: 1,
                    duplicate: false
                }
            );
            sent.push(message);
        }
    }

    let handled: Vec<usize> = world
        .instances
        .iter()
        .map(Instance::appends_tried)
        .collect();
    assert_eq!(
        handled.iter().sum::<usize>(),
        sent.len(),
        "each message handled by one instance, once: {handled:?}"
    );
    let written: Vec<usize> = world
        .instances
        .iter()
        .map(Instance::commits_written)
        .collect();
    assert_eq!(written, handled, "every handled message wrote its case");
    assert_eq!(
        world.event_head().await,
        sent.len() as u64,
        "one commit per message"
    );
    for message in &sent {
        assert_eq!(world.case_events(case_of(message)).await, 1);
    }
    assert_eq!(world.rejected_count().await, 0);
}

// ---------------------------------------------------------------------------------------
// No sender can fill the store
// ---------------------------------------------------------------------------------------

/// A flood of 900 kB garbage costs a few kilobytes a message: what was refused is kept, cut
/// to its first 4 KiB with its size as it arrived, and valid reports among the flood are
/// accepted as usual.
#[tokio::test]
async fn a_flood_of_oversized_garbage_is_kept_cut_short_and_valid_reports_still_get_in() {
    let world = World::start().await;
    let garbage = Bytes::from(vec![b'x'; 900_000]);
    let mut accepted = 0;
    for n in 0..400 {
        let reply = world
            .request("wangge.intake.resident_report", &[], garbage.clone())
            .await;
        assert!(
            matches!(&reply, IntakeReply::Rejected { code, .. } if code == "payload_too_large"),
            "{reply:?}"
        );
        if n % 50 == 0 {
            world.report(&resident_report(&format!("flood-{n}"))).await;
            accepted += 1;
        }
    }
    assert_eq!(accepted, 8);
    assert_eq!(world.rejected_count().await, 400);
    let context = async_nats::jetstream::new(world.sender.clone());
    let mut stream = context
        .get_stream(JetStreamRejectedStore::STREAM)
        .await
        .expect("the rejected stream");
    let info = stream.info().await.expect("its info");
    // 400 × 900 kB arrived; under 3 MB is kept.
    assert!(
        info.state.bytes < 3_000_000,
        "{} bytes kept",
        info.state.bytes
    );
    assert_eq!(
        info.config.max_age,
        Duration::from_secs(30 * 24 * 3600),
        "kept 30 days"
    );
    assert!(info.config.max_bytes > 0, "the stream has a size limit");
    let kept = world.raw_rejected(info.state.last_sequence).await;
    assert_eq!(kept.payload.len(), 4096);
    assert_eq!(
        kept.headers
            .get(wangge_engine::intake::rejected::HEADER_PAYLOAD_BYTES)
            .map(|v| v.as_str().to_owned()),
        Some("900000".to_owned())
    );
}

/// Past its size the stream makes room by dropping its oldest entries, never by refusing
/// the newest; and `wangge serve` brings a stream made without limits up to them.
#[tokio::test]
async fn the_rejected_stream_keeps_within_its_size_by_dropping_the_oldest() {
    let server = NatsServer::start();
    let client = server.connect().await;
    // A stream as an earlier release made it: no size limit.
    JetStreamRejectedStore::open(client.clone(), 1)
        .await
        .expect("open with the defaults");
    let context = async_nats::jetstream::new(client.clone());
    let mut config = context
        .get_stream(JetStreamRejectedStore::STREAM)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    config.max_bytes = -1;
    context.update_stream(&config).await.expect("unlimited");

    let limits = wangge_engine::intake::rejected::RejectedLimits {
        max_bytes: 1024 * 1024,
        ..Default::default()
    };
    let store = JetStreamRejectedStore::open_with_limits(client.clone(), 1, limits)
        .await
        .expect("open with a 1 MiB limit");
    let mut last = 0;
    for n in 0..60 {
        last = store
            .keep(wangge_engine::intake::rejected::Rejection {
                subject: "wangge.intake.resident_report".into(),
                headers: Vec::new(),
                payload: Bytes::from(vec![b'y'; 60_000]),
                code: "malformed_json".into(),
                field: None,
                reason: format!("garbage {n}"),
                rejected_at: chrono::Utc::now(),
            })
            .await
            .expect("kept, never refused for room");
    }
    let info = context
        .get_stream(JetStreamRejectedStore::STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.config.max_bytes, 1024 * 1024);
    assert!(info.state.bytes <= 1024 * 1024, "{}", info.state.bytes);
    assert!(info.state.first_sequence > 1, "the oldest made room");
    assert_eq!(
        store.get(last).await.expect("the newest").rejection.reason,
        "garbage 59"
    );
}

//! Identity proven by NATS, on a real server started from the shipped accounts
//! (`deploy/nats/accounts.conf`) with users made by `wangge nats users`, and a real
//! `wangge serve` in its default `--identity nats`:
//!
//! - anonymous clients cannot connect, let alone command;
//! - a worker acts only as themselves: not as another worker, not as a supervisor, not as a
//!   resident; and reads only their own task inbox;
//! - a system passes on a resident's verification or evaluation only for a case it reported;
//! - an intake system's events carry its own name as their source, and nothing else;
//! - only the engine can write events or touch a stream: intake systems and workers publishing
//!   onto an event subject, or calling the JetStream API to update, purge or delete a stream or
//!   delete a message, change nothing;
//! - the grid changes only by a grid administrator, under their own name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;
use wangge_engine::domain::replay;
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_schemas::CaseId;
use wangge_testkit::{nats_server_binary, NatsServer};

const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");
/// A building of the sample city and a worker who does not cover it.
const BUILDING: &str = "330106001001001";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `wangge` with nothing from the developer's environment.
fn wangge_command() -> Command {
    let mut command = Command::new(WANGGE);
    for (name, _) in std::env::vars() {
        if name.starts_with("WANGGE_") {
            command.env_remove(name);
        }
    }
    command
}

fn wangge(args: &[&str]) -> std::process::Output {
    wangge_command().args(args).output().expect("run wangge")
}

/// A server with the shipped accounts, its users' passwords, and an engine serving it.
struct Site {
    dir: TempDir,
    server: NatsServer,
    passwords: HashMap<String, String>,
    engine: Child,
    engine_log: PathBuf,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.engine.kill().ok();
        self.engine.wait().ok();
    }
}

impl Site {
    fn start() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let users = dir.path().join("users");
        let generated = wangge(&[
            "nats",
            "users",
            "--intake",
            "hotline",
            "--intake",
            "miniprogram",
            "--grid-admin",
            "admin-1",
            "--bcrypt-cost",
            "4",
            "--out",
            users.to_str().expect("utf-8"),
        ]);
        assert!(generated.status.success(), "{generated:?}");
        std::fs::copy(
            repo().join("deploy/nats/accounts.conf"),
            dir.path().join("accounts.conf"),
        )
        .expect("copy the shipped accounts");
        let config = dir.path().join("server.conf");
        std::fs::write(&config, "include \"accounts.conf\"\n").expect("write the config");
        let server = NatsServer::start_with_args(&["-c", config.to_str().expect("utf-8")]);
        let passwords = std::fs::read_to_string(users.join("passwords.tsv"))
            .expect("passwords")
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                (fields[1].to_owned(), fields[2].to_owned())
            })
            .collect::<HashMap<_, _>>();
        // The engine's own keys: its seal, the API's token key, residents' KEK.
        let seal_key = dir.path().join("seal.pem");
        let auth_key = dir.path().join("auth.key");
        let kek = dir.path().join("kek");
        for args in [
            vec!["seal", "keygen", "--out", seal_key.to_str().expect("utf-8")],
            vec!["auth", "keygen", "--out", auth_key.to_str().expect("utf-8")],
            vec!["residents", "new-kek", kek.to_str().expect("utf-8")],
        ] {
            let made = wangge(&args);
            assert!(made.status.success(), "{made:?}");
        }
        let engine_log = dir.path().join("engine.log");
        let engine = wangge_command()
            .args(["serve", "--nats-url", &server.url()])
            .args(["--http-listen", "127.0.0.1:0", "--no-timer-snapshot"])
            .args(["--nats-user", "wangge-engine"])
            .args(["--seal-key", seal_key.to_str().expect("utf-8")])
            .args(["--kek-file", kek.to_str().expect("utf-8")])
            .arg("--auth-public-key")
            .arg(dir.path().join("auth.key.pub"))
            .env("WANGGE_NATS_PASSWORD", &passwords["wangge-engine"])
            .env("WANGGE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&engine_log).expect("log file"))
            .spawn()
            .expect("start wangge serve");
        Self {
            dir,
            server,
            passwords,
            engine,
            engine_log,
        }
    }

    async fn connect_as(&self, user: &str) -> async_nats::Client {
        async_nats::ConnectOptions::with_user_and_password(
            user.to_owned(),
            self.passwords
                .get(user)
                .unwrap_or_else(|| panic!("no user {user}"))
                .clone(),
        )
        .custom_inbox_prefix(format!("_INBOX_{user}"))
        .connect(self.server.url())
        .await
        .unwrap_or_else(|error| panic!("connect as {user}: {error}"))
    }

    fn engine_log(&self) -> String {
        std::fs::read_to_string(&self.engine_log).unwrap_or_default()
    }
}

async fn ask(client: &async_nats::Client, subject: &str, body: &Value) -> Value {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(subject.to_owned(), body.to_string().into()),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer on {subject}"))
    .unwrap_or_else(|error| panic!("request on {subject}: {error}"));
    serde_json::from_slice(&reply.payload).expect("json reply")
}

fn report(system: &str, message_id: &str, resident: &str) -> Value {
    json!({
        "kind": "resident_report",
        "schema_version": 1,
        "source": {"system": system, "message_id": message_id},
        "reported_at": chrono::Utc::now().to_rfc3339(),
        "building": BUILDING,
        "channel": "mini_program",
        "resident": {"id": resident},
        "title": "楼道灯不亮",
        "description": "3单元楼道灯坏了一周",
        "category": "drainage.blocked"
    })
}

/// Reports as `system` once the engine answers, and returns the case.
async fn report_case(
    client: &async_nats::Client,
    system: &str,
    id: &str,
    resident: &str,
) -> CaseId {
    for _ in 0..300 {
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(
                "wangge.intake.resident_report",
                report(system, id, resident).to_string().into(),
            ),
        )
        .await;
        if let Ok(Ok(reply)) = answer {
            let reply: Value = serde_json::from_slice(&reply.payload).expect("json");
            assert_eq!(reply["status"], "accepted", "{reply}");
            return serde_json::from_value(reply["case_id"].clone()).expect("case id");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the engine never answered intake");
}

/// The case's events, read as the engine.
async fn history(site: &Site, case_id: CaseId) -> Vec<wangge_schemas::EventEnvelope> {
    let engine = site.connect_as("wangge-engine").await;
    let log = JetStreamLog::open(engine, JetStreamLogConfig::default())
        .await
        .expect("open the log");
    log.load(case_id).await.expect("load").events
}

/// Waits for the dispatcher to give the case to someone, and returns who.
async fn assignee(site: &Site, case_id: CaseId) -> String {
    for _ in 0..200 {
        if let Some(worker) = replay(&history(site, case_id).await).assignee {
            return worker;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "case {case_id} was never dispatched; engine log:\n{}",
        site.engine_log()
    );
}

fn command(worker: &str, case_id: CaseId, message_id: &str, command: Value) -> Value {
    json!({
        "schema_version": 1,
        "message_id": message_id,
        "worker_id": worker,
        "case_id": case_id,
        "command": command
    })
}

fn assert_refused(reply: &Value, code: &str) {
    assert_eq!(reply["status"], "rejected", "{reply}");
    assert_eq!(reply["code"], code, "{reply}");
}

#[test]
fn the_shipped_configurations_are_valid() {
    for config in [
        "deploy/nats/nats-server.conf",
        "deploy/nats/cluster/nats-1.conf",
        "deploy/nats/cluster/nats-2.conf",
        "deploy/nats/cluster/nats-3.conf",
    ] {
        let output = Command::new(nats_server_binary())
            .arg("-t")
            .arg("-c")
            .arg(repo().join(config))
            .output()
            .expect("run nats-server -t");
        assert!(
            output.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_act_only_as_themselves_and_systems_only_for_their_own_residents() {
    let site = Site::start();

    // Nobody gets in without a user.
    let anonymous = async_nats::connect(site.server.url()).await;
    assert!(anonymous.is_err(), "an anonymous client connected");

    let hotline = site.connect_as("hotline").await;
    let case_id = report_case(&hotline, "hotline", "hl-1", "resident-1").await;
    let events = history(&site, case_id).await;
    assert_eq!(
        events[0].source.system, "hotline",
        "the source is the proven system"
    );

    // A system cannot report under another's name.
    let forged = ask(
        &hotline,
        "wangge.intake.resident_report",
        &report("miniprogram", "hl-forged", "resident-9"),
    )
    .await;
    assert_refused(&forged, "identity_mismatch");
    assert_eq!(forged["field"], "source.system");

    let worker_a = assignee(&site, case_id).await;
    let worker_b = site
        .passwords
        .keys()
        .find(|name| name.starts_with("w-") && **name != worker_a)
        .expect("another worker")
        .clone();
    let a = site.connect_as(&worker_a).await;
    let b = site.connect_as(&worker_b).await;
    let before = history(&site, case_id).await.len();

    // Worker B names worker A: refused, nothing written.
    let as_a = ask(
        &b,
        "wangge.workers.commands",
        &command(&worker_a, case_id, "b-1", json!({"type": "acknowledge"})),
    )
    .await;
    assert_refused(&as_a, "identity_mismatch");
    assert_eq!(as_a["field"], "worker_id");
    // Worker B names the building's supervisor: refused.
    let supervisor = "sup-330106001001001";
    let as_supervisor = ask(
        &b,
        "wangge.workers.commands",
        &command(
            supervisor,
            case_id,
            "b-2",
            json!({"type": "verify", "passed": true}),
        ),
    )
    .await;
    assert_refused(&as_supervisor, "identity_mismatch");
    // Worker B acting as themselves is not the assignee: the case's rules refuse.
    let own = ask(
        &b,
        "wangge.workers.commands",
        &command(&worker_b, case_id, "b-3", json!({"type": "acknowledge"})),
    )
    .await;
    assert_eq!(own["status"], "rejected", "{own}");
    // A worker may not pose as the resident.
    let mut as_resident = command(
        "resident-1",
        case_id,
        "b-4",
        json!({"type": "verify", "passed": true}),
    );
    as_resident["acting_as"] = json!("resident");
    assert_refused(
        &ask(&b, "wangge.workers.commands", &as_resident).await,
        "identity_mismatch",
    );
    assert_eq!(
        history(&site, case_id).await.len(),
        before,
        "nothing was written"
    );

    // The same through `wangge worker`, as a worker runs it with their own user.
    let url = site.server.url();
    let as_b = |args: &[&str]| {
        wangge_command()
            .args(["worker", "--nats-url", &url, "--nats-user", &worker_b])
            .env("WANGGE_NATS_PASSWORD", &site.passwords[&worker_b])
            .args(args)
            .output()
            .expect("run wangge worker")
    };
    let inbox = as_b(&["inbox"]);
    assert!(inbox.status.success(), "{inbox:?}");
    let message = site.dir.path().join("as-a.json");
    std::fs::write(
        &message,
        command(&worker_a, case_id, "b-5", json!({"type": "start"})).to_string(),
    )
    .expect("write");
    let act = as_b(&["act", message.to_str().expect("utf-8")]);
    assert_eq!(act.status.code(), Some(2), "{act:?}");
    assert!(
        String::from_utf8_lossy(&act.stdout).contains("identity_mismatch"),
        "{act:?}"
    );

    // Worker A reads their own task, and not B's inbox; then acknowledges the case.
    let inbox = ask(
        &a,
        "wangge.workers.inbox",
        &json!({"max": 10, "wait_seconds": 5}),
    )
    .await;
    assert_eq!(inbox["status"], "tasks", "{inbox}");
    let tasks = inbox["tasks"].as_array().expect("tasks");
    assert!(
        tasks.iter().any(|t| t["task"]["case_id"] == json!(case_id)),
        "{inbox}"
    );
    let receipts: Vec<Value> = tasks.iter().map(|t| t["receipt"].clone()).collect();
    let acked = ask(
        &a,
        "wangge.workers.inbox",
        &json!({"max": 0, "ack": receipts}),
    )
    .await;
    assert_eq!(acked["acknowledged"], json!(tasks.len()), "{acked}");
    let others = ask(&a, "wangge.workers.inbox", &json!({"worker_id": worker_b})).await;
    assert_refused(&others, "identity_mismatch");
    // B cannot acknowledge A's deliveries either.
    let stolen = ask(
        &b,
        "wangge.workers.inbox",
        &json!({"max": 0, "ack": [tasks[0]["receipt"]]}),
    )
    .await;
    assert_refused(&stolen, "invalid_value");
    let acknowledged = ask(
        &a,
        "wangge.workers.commands",
        &command(&worker_a, case_id, "a-1", json!({"type": "acknowledge"})),
    )
    .await;
    assert_eq!(acknowledged["status"], "accepted", "{acknowledged}");
    let events = history(&site, case_id).await;
    let last = events.last().expect("events");
    assert_eq!(last.actor.id, worker_a, "the actor is the proven worker");

    // Another system speaks for the resident of a case it did not report: refused.
    let miniprogram = site.connect_as("miniprogram").await;
    let mut verify = command(
        "resident-1",
        case_id,
        "mp-v-1",
        json!({"type": "verify", "passed": true}),
    );
    verify["acting_as"] = json!("resident");
    let by_other_system = ask(&miniprogram, "wangge.workers.commands", &verify).await;
    assert_refused(&by_other_system, "not_reporter");
    let evaluation = json!({
        "kind": "evaluation",
        "schema_version": 1,
        "source": {"system": "miniprogram", "message_id": "mp-e-1"},
        "evaluated_at": chrono::Utc::now().to_rfc3339(),
        "case_id": case_id,
        "resident": {"id": "resident-1"},
        "channel": "mini_program",
        "satisfaction": "satisfied",
        "resolved": true
    });
    let evaluated = ask(&miniprogram, "wangge.intake.evaluation", &evaluation).await;
    assert_refused(&evaluated, "not_reporter");
    // The reporting system names another resident: the case's rules refuse.
    let mut other_resident = command(
        "resident-2",
        case_id,
        "hl-v-1",
        json!({"type": "verify", "passed": true}),
    );
    other_resident["acting_as"] = json!("resident");
    let reply = ask(&hotline, "wangge.workers.commands", &other_resident).await;
    assert_eq!(reply["status"], "rejected", "{reply}");
    assert_eq!(
        history(&site, case_id).await.len(),
        events.len(),
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_engine_writes_events_or_touches_a_stream() {
    let site = Site::start();
    let hotline = site.connect_as("hotline").await;
    let case_id = report_case(&hotline, "hotline", "hl-2", "resident-3").await;
    let worker = assignee(&site, case_id).await;
    let events_before = history(&site, case_id).await;

    let engine = site.connect_as("wangge-engine").await;
    let js = async_nats::jetstream::new(engine);
    let mut stream = js
        .get_stream("WANGGE_EVENTS")
        .await
        .expect("the event stream");
    let info_before = stream.info().await.expect("info").clone();

    let forged_event = json!({"event_type": "case.voided", "payload": {"reason": "forged"}});
    let subject = format!("wangge.events.{case_id}");
    for user in ["hotline", worker.as_str(), "admin-1"] {
        let client = site.connect_as(user).await;
        // Onto the event subject.
        client
            .publish(subject.clone(), forged_event.to_string().into())
            .await
            .ok();
        // The JetStream API: update to trim, purge, delete a message, delete the stream.
        for (api, body) in [
            (
                "$JS.API.STREAM.UPDATE.WANGGE_EVENTS",
                json!({"name": "WANGGE_EVENTS", "subjects": ["wangge.events.>"], "max_msgs": 5, "discard": "old"}),
            ),
            ("$JS.API.STREAM.PURGE.WANGGE_EVENTS", json!({})),
            ("$JS.API.STREAM.MSG.DELETE.WANGGE_EVENTS", json!({"seq": 1})),
            ("$JS.API.STREAM.DELETE.WANGGE_EVENTS", json!({})),
            ("$JS.API.STREAM.DELETE.WANGGE_TASKS", json!({})),
        ] {
            let answer = tokio::time::timeout(
                Duration::from_secs(2),
                client.request(api.to_owned(), body.to_string().into()),
            )
            .await;
            if let Ok(Ok(message)) = answer {
                // Whatever answered, it was not a stream's success.
                let text = String::from_utf8_lossy(&message.payload).to_string();
                assert!(!text.contains("\"success\":true"), "{user} {api}: {text}");
            }
        }
        client.flush().await.ok();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let info_after = stream
        .info()
        .await
        .expect("the stream still exists")
        .clone();
    assert_eq!(
        info_after.config.max_messages,
        info_before.config.max_messages
    );
    assert_eq!(info_after.config.discard, info_before.config.discard);
    assert_eq!(
        info_after.state.first_sequence,
        info_before.state.first_sequence
    );
    assert!(info_after.state.messages >= info_before.state.messages);
    assert_eq!(
        history(&site, case_id).await[..events_before.len()],
        events_before[..],
        "the case's events are untouched"
    );
    assert!(
        history(&site, case_id)
            .await
            .iter()
            .all(|event| event.event.event_type() != "case.voided"),
        "no forged event landed"
    );
    assert!(js.get_stream("WANGGE_TASKS").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_changes_only_by_a_grid_administrator_under_their_own_name() {
    let site = Site::start();
    let hotline = site.connect_as("hotline").await;
    // The engine is up once intake answers.
    report_case(&hotline, "hotline", "hl-3", "resident-4").await;

    let mut change: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("schemas/examples/grid/commands/grid.worker_duty_changed.json"),
        )
        .expect("example"),
    )
    .expect("json");
    change["actor"] = json!({"kind": "supervisor", "id": "admin-1"});

    // A worker or an intake system cannot even reach the grid subject.
    for user in ["hotline", "sup-330106001001001"] {
        let client = site.connect_as(user).await;
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            client.request("wangge.grid.commands", change.to_string().into()),
        )
        .await;
        assert!(
            !matches!(answer, Ok(Ok(_))),
            "{user} got an answer from the grid commands"
        );
    }
    let admin = site.connect_as("admin-1").await;
    let mut as_someone_else = change.clone();
    as_someone_else["actor"]["id"] = json!("admin-2");
    let reply = ask(&admin, "wangge.grid.commands", &as_someone_else).await;
    assert_refused(&reply, "identity_mismatch");
    assert_eq!(reply["field"], "actor.id");
    let reply = ask(&admin, "wangge.grid.commands", &change).await;
    assert_eq!(reply["status"], "accepted", "{reply}");
}

/// One sender's flood of garbage is counted and sampled beyond its budget (600 kept a minute
/// by default, then one in 100): the rejected stream does not fill, another system's refused
/// message is still kept for replay, and valid reports still get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_sender_cannot_fill_the_rejected_stream_for_everyone_else() {
    let site = Site::start();
    let hotline = site.connect_as("hotline").await;
    report_case(&hotline, "hotline", "hl-before", "resident-5").await;
    let miniprogram = site.connect_as("miniprogram").await;

    let mut kept_of_flood = 0;
    let started = std::time::Instant::now();
    for n in 0..2_000 {
        let reply = ask(
            &hotline,
            "wangge.intake.resident_report",
            &json!({"garbage": n}),
        )
        .await;
        assert_eq!(reply["status"], "rejected", "{reply}");
        if !reply["rejected_id"].is_null() {
            kept_of_flood += 1;
        }
    }
    // The budget, what it refilled while the flood lasted (10 a second), and a sample of the
    // rest.
    let refilled = (started.elapsed().as_secs_f64() * 10.0).ceil() as usize;
    assert!(
        (600..=600 + refilled + 2_000 / 100 + 1).contains(&kept_of_flood),
        "{kept_of_flood} of the flood kept ({refilled} refilled)"
    );
    let refused = ask(
        &miniprogram,
        "wangge.intake.resident_report",
        &json!({"oops": true}),
    )
    .await;
    assert_eq!(refused["status"], "rejected", "{refused}");
    assert!(
        refused["rejected_id"].is_u64(),
        "another sender's refusal is still kept: {refused}"
    );
    report_case(&miniprogram, "miniprogram", "mp-after", "resident-6").await;
    report_case(&hotline, "hotline", "hl-after", "resident-5").await;
}

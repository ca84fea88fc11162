//! The `wangge` command as an operator and a sending system use it, against a private
//! nats-server: `serve` runs the engine, `publish` sends a message and prints the answer,
//! `rejected list | show | replay` deal with what was refused, `case show` prints a case,
//! `grid` and `sla` publish reference data to the running engines and show it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;
use wangge_engine::domain::seal::Keyring;
use wangge_engine::log::SealKey;
use wangge_schemas::intake::IntakeReply;
use wangge_schemas::{CaseId, Source};
use wangge_testkit::NatsServer;

// ---------------------------------------------------------------------------------------
// The harness: a private nats-server, `wangge serve` as a child process, and the command
// ---------------------------------------------------------------------------------------

const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");
const WAIT: Duration = Duration::from_secs(10);

/// What one run of the command did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The engine's answer printed by `publish` and `rejected replay`.
    fn reply(&self) -> IntakeReply {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not an intake reply ({e}): {self:?}"))
    }
}

/// `wangge serve`, killed when dropped.
struct Engine {
    child: Child,
    log: PathBuf,
}

impl Engine {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("engine status") {
            panic!(
                "`wangge serve` exited with {status}; its log:\n{}",
                self.log()
            );
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private server, a scratch directory, and the command pointed at both.
struct Site {
    server: NatsServer,
    dir: TempDir,
    engines_started: usize,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("scratch dir");
        // The engine seals every commit: its key, written as `wangge seal keygen` writes one.
        SealKey::generate()
            .write_new(&dir.path().join("seal.pem"))
            .expect("write the engine's seal key");
        Self {
            server: NatsServer::start(),
            dir,
            engines_started: 0,
        }
    }

    /// The engine's seal key file.
    fn seal_key(&self) -> String {
        path_str(&self.dir.path().join("seal.pem")).to_owned()
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn command(&self) -> Command {
        let mut command = Command::new(WANGGE);
        // Nothing from the developer's environment may point the command elsewhere.
        for var in [
            "WANGGE_NATS_URL",
            "WANGGE_GRID",
            "WANGGE_CATEGORIES",
            "WANGGE_STREAM_REPLICAS",
            "WANGGE_SLA_DIR",
            "WANGGE_LOG",
            "WANGGE_IDENTITY",
            "WANGGE_SEAL_KEY_FILE",
            "WANGGE_SEAL_PUBLIC_KEYS_FILE",
            "WANGGE_AUTH_PUBLIC_KEY",
            "WANGGE_AUTH_JWKS_FILE",
            "WANGGE_AUTH_HMAC_SECRET_FILE",
            "WANGGE_AUTH_KEY_FILE",
            "WANGGE_AUTH_API_KEYS_FILE",
            "WANGGE_POSTGRES_URL",
        ] {
            command.env_remove(var);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    /// An operator's token (role admin), signed with the key `wangge serve` checks.
    fn operator_token(&self) -> String {
        self.auth_public_key();
        let private = self.dir.path().join("auth.key");
        let run = self.run(&[
            "auth",
            "token",
            "--as",
            "ops",
            "--role",
            "admin",
            "--auth-key",
            path_str(&private),
        ]);
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout.trim().to_owned()
    }

    /// The public key `wangge serve` checks tokens with (written by `wangge auth keygen`
    /// on first use).
    fn auth_public_key(&self) -> String {
        let key = self.dir.path().join("auth.key");
        let public = self.dir.path().join("auth.key.pub");
        if !public.exists() {
            let run = self.run(&["auth", "keygen", "--out", path_str(&key)]);
            assert_eq!(run.code, 0, "{run:?}");
        }
        path_str(&public).to_owned()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut child = self
            .command()
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run wangge");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input)
                .expect("write stdin");
        }
        let output = child.wait_with_output().expect("wait for wangge");
        Run {
            code: output.status.code().expect("wangge exited normally"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `wangge serve` with extra arguments (e.g. `--categories FILE`).
    fn serve(&mut self, extra: &[&str]) -> Engine {
        self.engines_started += 1;
        let log = self
            .dir
            .path()
            .join(format!("serve-{}.log", self.engines_started));
        let url = self.url();
        let seal_key = self.seal_key();
        let public_key = self.auth_public_key();
        let child = self
            .command()
            // A development server without accounts: senders are named by their messages.
            .args(["serve", "--nats-url", &url, "--http-listen", "127.0.0.1:0"])
            .args(["--identity", "claimed"])
            .args(["--seal-key", &seal_key])
            .args(["--auth-public-key", &public_key])
            .args(extra)
            .env("WANGGE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("engine log file"))
            .spawn()
            .expect("start wangge serve");
        Engine { child, log }
    }

    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write a scratch file");
        path
    }

    fn publish(&self, file: &Path) -> Run {
        self.run(&[
            "publish",
            "--nats-url",
            &self.url(),
            "--timeout",
            "5",
            path_str(file),
        ])
    }

    /// Publishes once the engine listens: a careful sender retries while no one answers.
    fn publish_when_served(&self, engine: &mut Engine, file: &Path) -> Run {
        let deadline = Instant::now() + WAIT;
        loop {
            engine.assert_running();
            let run = self.publish(file);
            if run.code != 1 || Instant::now() > deadline {
                return run;
            }
            assert!(
                run.stderr.contains("no responders"),
                "unexpected failure: {run:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn rejected(&self, args: &[&str]) -> Run {
        let url = self.url();
        let mut all = vec!["rejected", "--nats-url", &url];
        all.extend_from_slice(args);
        self.run(&all)
    }

    fn case_show(&self, case_id: &str) -> Run {
        self.run(&["case", "--nats-url", &self.url(), "show", case_id])
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

fn resident_report(message_id: &str, category: &str) -> Value {
    json!({
        "kind": "resident_report",
        "schema_version": 1,
        "source": {"system": "miniprogram", "message_id": message_id},
        "reported_at": "2026-03-12T08:15:42+08:00",
        "building": "330106001001001",
        "channel": "mini_program",
        "resident": {"id": "wx-oU7x2kQ9dLr3", "name": "王阿姨"},
        "title": "广场舞音响太吵",
        "description": "每晚九点以后小区广场的音响声音很大,影响老人和孩子休息。",
        "category": category
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
        "resident": {"id": "sbk-A27731904", "name": "李大爷"},
        "service": "service.elderly_age_certification",
        "title": "申请高龄认证",
        "description": "本人今年满80周岁,希望网格员上门采集信息。"
    })
}

fn case_of(system: &str, message_id: &str) -> CaseId {
    CaseId::derived_from_source(&Source {
        system: system.to_owned(),
        message_id: message_id.to_owned(),
    })
}

/// The bundled catalogue with one more category, as an operator would extend it.
fn catalogue_with(extra: Value) -> Vec<u8> {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grid/categories.json");
    let mut catalogue: Value =
        serde_json::from_str(&std::fs::read_to_string(bundled).expect("the bundled catalogue"))
            .expect("valid json");
    catalogue["categories"]
        .as_array_mut()
        .expect("a category list")
        .push(extra);
    serde_json::to_vec_pretty(&catalogue).expect("serialize")
}

fn rejected_id(reply: &IntakeReply) -> u64 {
    match reply {
        IntakeReply::Rejected {
            rejected_id: Some(id),
            ..
        } => *id,
        other => panic!("expected a kept rejection, got {other:?}"),
    }
}

/// The `rejected list` line of one kept message.
fn list_line(list: &Run, id: u64) -> String {
    list.stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("no line for #{id} in `rejected list`:\n{}", list.stdout))
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// publish and case show
// ---------------------------------------------------------------------------------------

#[test]
fn publishing_a_valid_report_exits_0_with_its_case_and_case_show_prints_it() {
    let mut site = Site::new();
    // Intake only: this test is about what intake wrote, before any dispatcher acts.
    let mut engine = site.serve(&["--intake-only"]);
    let file = site.write(
        "report.json",
        resident_report("mp-001", "drainage.blocked")
            .to_string()
            .as_bytes(),
    );

    let first = site.publish_when_served(&mut engine, &file);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains(r#""status": "accepted""#),
        "{}",
        first.stdout
    );
    let case_id = case_of("miniprogram", "mp-001");
    assert_eq!(
        first.reply(),
        IntakeReply::Accepted {
            case_id,
            sequence: 1,
            duplicate: false
        }
    );

    // Sent again: the same case, nothing new.
    let again = site.publish(&file);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.reply(),
        IntakeReply::Accepted {
            case_id,
            sequence: 1,
            duplicate: true
        }
    );

    let shown = site.case_show(&case_id.to_string());
    assert_eq!(shown.code, 0, "{shown:?}");
    let events: Vec<Value> = shown
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event a line"))
        .collect();
    assert_eq!(events.len(), 1, "{}", shown.stdout);
    assert_eq!(events[0]["event_type"], "case.reported");
    assert_eq!(events[0]["case_id"], case_id.to_string());
    assert_eq!(events[0]["location"]["community"], "330106001001");
    assert!(shown.stdout.contains("广场舞音响太吵"));
    assert!(
        shown.stderr.contains("1 events, status reported"),
        "{}",
        shown.stderr
    );
    engine.stop();
}

#[test]
fn a_message_can_be_piped_into_publish() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    // Make sure the engine listens before piping (stdin can be read only once).
    let warm_up = site.write(
        "warm-up.json",
        service_request("k07-warm-up").to_string().as_bytes(),
    );
    assert_eq!(site.publish_when_served(&mut engine, &warm_up).code, 0);

    let message = service_request("k07-0015").to_string();
    let run = site.run_with_stdin(
        &["publish", "--nats-url", &site.url(), "-"],
        Some(message.as_bytes()),
    );

    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.reply(),
        IntakeReply::Accepted {
            case_id: case_of("kiosk-07", "k07-0015"),
            sequence: 1,
            duplicate: false
        }
    );
}

#[test]
fn an_invalid_message_exits_2_with_the_code_and_field_at_fault() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let mut message = resident_report("mp-002", "drainage.blocked");
    message["building"] = json!("330106001001999");
    let file = site.write("bad.json", message.to_string().as_bytes());

    let run = site.publish_when_served(&mut engine, &file);

    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout.contains(r#""status": "rejected""#),
        "{}",
        run.stdout
    );
    let IntakeReply::Rejected {
        code,
        field,
        reason,
        rejected_id,
    } = run.reply()
    else {
        unreachable!()
    };
    assert_eq!(code, "unknown_grid_location");
    assert_eq!(field.as_deref(), Some("building"));
    assert!(reason.contains("330106001001999"), "{reason}");
    assert!(rejected_id.is_some());
}

#[test]
fn a_message_that_is_not_json_is_refused_even_without_a_kind_to_route_by() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let warm_up = site.write(
        "warm-up.json",
        service_request("k07-warm-up").to_string().as_bytes(),
    );
    assert_eq!(site.publish_when_served(&mut engine, &warm_up).code, 0);

    let run = site.run_with_stdin(
        &["publish", "--nats-url", &site.url()],
        Some(b"kind=resident_report"),
    );

    assert_eq!(run.code, 2, "{run:?}");
    let IntakeReply::Rejected { code, field, .. } = run.reply() else {
        unreachable!()
    };
    assert_eq!((code.as_str(), field), ("malformed_json", None));
}

#[test]
fn publish_without_a_running_engine_says_so() {
    let site = Site::new();
    let file = site.write(
        "report.json",
        resident_report("mp-003", "drainage.blocked")
            .to_string()
            .as_bytes(),
    );

    let run = site.publish(&file);

    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("is `wangge serve` running?"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn case_show_of_a_case_that_does_not_exist_exits_2() {
    let site = Site::new();
    let case_id = case_of("miniprogram", "never-sent");

    let run = site.case_show(&case_id.to_string());

    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(&format!("no case {case_id}")),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------
// rejected list | show | replay
// ---------------------------------------------------------------------------------------

#[test]
fn rejected_list_and_show_give_the_reason_the_senders_headers_and_the_original_body() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let warm_up = site.write(
        "warm-up.json",
        service_request("k07-warm-up").to_string().as_bytes(),
    );
    assert_eq!(site.publish_when_served(&mut engine, &warm_up).code, 0);
    // Another system sends a report with its own tracing headers and an empty title.
    let mut message = resident_report("mp-004", "drainage.blocked");
    message["title"] = json!("");
    let body = serde_json::to_string_pretty(&message).expect("serialize");
    let reply = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let client = site.server.connect().await;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("X-Request-Id", "req-20260312-0042");
            headers.insert("X-Gateway", "miniprogram-gw-3");
            let answer = client
                .request_with_headers(
                    "wangge.intake.resident_report",
                    headers,
                    body.clone().into(),
                )
                .await
                .expect("an answer");
            serde_json::from_slice::<IntakeReply>(&answer.payload).expect("an intake reply")
        });
    let id = rejected_id(&reply);

    let list = site.rejected(&["list"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert_eq!(list.stdout.lines().count(), 1, "{}", list.stdout);
    let line = list_line(&list, id);
    for expected in ["wangge.intake.resident_report", "empty_text", "title"] {
        assert!(line.contains(expected), "{line:?} should show {expected}");
    }

    let show = site.rejected(&["show", &id.to_string()]);
    assert_eq!(show.code, 0, "{show:?}");
    for expected in [
        format!("id:          {id}"),
        "subject:     wangge.intake.resident_report".to_owned(),
        "code:        empty_text".to_owned(),
        "field:       title".to_owned(),
        "reason:      `title` must not be empty".to_owned(),
        "  X-Request-Id: req-20260312-0042".to_owned(),
        "  X-Gateway: miniprogram-gw-3".to_owned(),
        format!("body ({} bytes):", body.len()),
        body.clone(),
    ] {
        assert!(
            show.stdout.contains(&expected),
            "`rejected show` should print {expected:?}:\n{}",
            show.stdout
        );
    }
    // Only the sender's headers are listed as theirs: no server or Wangge bookkeeping.
    let headers_section = show
        .stdout
        .split("headers:")
        .nth(1)
        .and_then(|rest| rest.split("body (").next())
        .unwrap_or("");
    assert_eq!(
        headers_section
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count(),
        2,
        "{headers_section}"
    );

    let missing = site.rejected(&["show", "999"]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("no rejected message with id 999"),
        "{missing:?}"
    );
}

#[test]
fn a_report_refused_for_an_unknown_category_is_accepted_on_replay_once_the_catalogue_has_it() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let file = site.write(
        "noise.json",
        resident_report("mp-005", "noise.square_dancing")
            .to_string()
            .as_bytes(),
    );

    // The catalogue has no category for square-dance noise yet: refused and kept.
    let refused = site.publish_when_served(&mut engine, &file);
    assert_eq!(refused.code, 2, "{refused:?}");
    let IntakeReply::Rejected {
        ref code,
        ref field,
        ..
    } = refused.reply()
    else {
        unreachable!()
    };
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("unknown_category", Some("category"))
    );
    let id = rejected_id(&refused.reply());

    // The operator adds the category and restarts the engine with the new catalogue.
    engine.stop();
    let categories = site.write(
        "categories.json",
        &catalogue_with(json!({
            "code": "noise.square_dancing",
            "name": "广场舞噪音 square-dance noise",
            "intake_kinds": ["resident_report"],
            "handling_tier": "community",
            "default_priority": "normal"
        })),
    );
    let mut engine = site.serve(&["--categories", path_str(&categories)]);
    let warm_up = site.write(
        "warm-up.json",
        service_request("k07-warm-up").to_string().as_bytes(),
    );
    assert_eq!(
        site.publish_when_served(&mut engine, &warm_up).code,
        0,
        "{}",
        engine.log()
    );

    let replay = site.rejected(&["replay", &id.to_string()]);

    assert_eq!(replay.code, 0, "{replay:?}");
    let case_id = case_of("miniprogram", "mp-005");
    assert_eq!(
        replay.reply(),
        IntakeReply::Accepted {
            case_id,
            sequence: 1,
            duplicate: false
        }
    );
    let list = site.rejected(&["list"]);
    assert!(
        list_line(&list, id).contains(&format!("[replayed → case {case_id}]")),
        "{}",
        list.stdout
    );
    let show = site.rejected(&["show", &id.to_string()]);
    assert!(show.stdout.contains("last replay:"), "{}", show.stdout);
    let case = site.case_show(&case_id.to_string());
    assert_eq!(case.code, 0, "{case:?}");
    assert!(
        case.stdout
            .contains(r#""reported_category":"noise.square_dancing""#),
        "{}",
        case.stdout
    );
    engine.stop();
}

#[test]
fn replaying_a_message_whose_cause_is_not_fixed_is_refused_again() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let file = site.write(
        "noise.json",
        resident_report("mp-006", "noise.square_dancing")
            .to_string()
            .as_bytes(),
    );
    let id = rejected_id(&site.publish_when_served(&mut engine, &file).reply());

    let replay = site.rejected(&["replay", &id.to_string()]);

    assert_eq!(replay.code, 2, "{replay:?}");
    let IntakeReply::Rejected { code, .. } = replay.reply() else {
        unreachable!()
    };
    assert_eq!(code, "unknown_category");
    let list = site.rejected(&["list"]);
    assert!(
        list_line(&list, id).contains("[replayed → rejected again: unknown_category]"),
        "{}",
        list.stdout
    );
    let case = site.case_show(&case_of("miniprogram", "mp-006").to_string());
    assert_eq!(case.code, 2, "no case was opened: {case:?}");
}

// ---------------------------------------------------------------------------------------
// publish an evaluation
// ---------------------------------------------------------------------------------------

fn evaluation(case_id: CaseId, resident: &str) -> Value {
    json!({
        "kind": "evaluation",
        "schema_version": 1,
        "source": {"system": "hotline-12345", "message_id": format!("12345-hf-{resident}")},
        "evaluated_at": "2026-03-13T10:02:11+08:00",
        "case_id": case_id,
        "resident": {"id": resident},
        "channel": "hotline12345",
        "satisfaction": "basically_satisfied",
        "resolved": true
    })
}

/// A worker's (or resident's) command through `wangge worker act`, accepted.
fn act(site: &Site, name: &str, command: Value) {
    let file = site.write(name, command.to_string().as_bytes());
    let url = site.url();
    let run = site.run(&["worker", "--nats-url", &url, "act", path_str(&file)]);
    assert_eq!(run.code, 0, "{name}: {run:?}");
}

/// The case's events as `case show` prints them, one JSON object a line.
fn events_of(site: &Site, case_id: CaseId) -> Vec<Value> {
    site.case_show(&case_id.to_string())
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON event a line"))
        .collect()
}

#[test]
fn an_evaluation_is_published_to_its_own_subject_refused_while_the_case_is_open_and_replayed_once_closed(
) {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let report = site.write(
        "report.json",
        resident_report("mp-007", "drainage.blocked")
            .to_string()
            .as_bytes(),
    );
    assert_eq!(site.publish_when_served(&mut engine, &report).code, 0);
    let case_id = case_of("miniprogram", "mp-007");
    let file = site.write(
        "evaluation.json",
        evaluation(case_id, "wx-oU7x2kQ9dLr3")
            .to_string()
            .as_bytes(),
    );

    // The hotline called back too early: the case is still open.
    let early = site.publish(&file);
    assert_eq!(early.code, 2, "{early:?}");
    let IntakeReply::Rejected { ref code, .. } = early.reply() else {
        unreachable!()
    };
    assert_eq!(code, "case_not_closed", "routed by its kind: {early:?}");
    let id = rejected_id(&early.reply());

    // The dispatcher sends the case to a worker, who handles it; the resident checks it.
    let deadline = Instant::now() + WAIT;
    let worker = loop {
        let dispatched = events_of(&site, case_id)
            .into_iter()
            .find(|event| event["event_type"] == "case.dispatched");
        if let Some(event) = dispatched {
            break event["payload"]["assignee"]
                .as_str()
                .expect("an assignee")
                .to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "never dispatched: {}",
            engine.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for (n, (person, acting_as, command)) in [
        (
            worker.as_str(),
            "grid_worker",
            json!({"type": "acknowledge"}),
        ),
        (
            worker.as_str(),
            "grid_worker",
            json!({"type": "resolve", "notes": "已清理疏通"}),
        ),
        (
            "wx-oU7x2kQ9dLr3",
            "resident",
            json!({"type": "verify", "passed": true}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        act(
            &site,
            &format!("act-{n}.json"),
            json!({
                "schema_version": 1,
                "message_id": format!("app-{n}"),
                "worker_id": person,
                "acting_as": acting_as,
                "case_id": case_id,
                "command": command
            }),
        );
    }

    // The kept message, replayed byte for byte, is recorded now.
    let replay = site.rejected(&["replay", &id.to_string()]);
    assert_eq!(replay.code, 0, "{replay:?}");
    let IntakeReply::Accepted {
        sequence,
        duplicate: false,
        ..
    } = replay.reply()
    else {
        panic!("expected the evaluation to be recorded: {replay:?}");
    };
    let evaluated = events_of(&site, case_id)
        .into_iter()
        .last()
        .expect("events");
    assert_eq!(evaluated["event_type"], "case.evaluated");
    assert_eq!(evaluated["payload"]["satisfaction"], 4);
    assert_eq!(evaluated["payload"]["level"], "basically_satisfied");
    assert_eq!(evaluated["payload"]["resolved"], true);

    // Published again: the same answer, nothing new. Another resident: refused.
    let again = site.publish(&file);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.reply(),
        IntakeReply::Accepted {
            case_id,
            sequence,
            duplicate: true
        }
    );
    let stranger = site.write(
        "stranger.json",
        evaluation(case_id, "wx-someone-else")
            .to_string()
            .as_bytes(),
    );
    let refused = site.publish(&stranger);
    assert_eq!(refused.code, 2, "{refused:?}");
    let IntakeReply::Rejected { code, field, .. } = refused.reply() else {
        unreachable!()
    };
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("not_reporter", Some("resident.id"))
    );
    engine.stop();
}

// ---------------------------------------------------------------------------------------
// grid publish | show
// ---------------------------------------------------------------------------------------

fn grid_command(message_id: &str, event_type: &str, payload: Value) -> Value {
    json!({
        "event_type": event_type,
        "schema_version": 1,
        "source": {"system": "grid-admin", "message_id": message_id},
        "actor": {"kind": "supervisor", "id": "sup-330106001001"},
        "payload": payload
    })
}

#[test]
fn grid_publish_sends_each_command_of_an_array_and_grid_show_prints_the_live_grid() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let url = site.url();
    // Wait until the engine listens (intake and grid commands start together).
    let warm_up = site.write(
        "warm-up.json",
        service_request("k07-warm-up").to_string().as_bytes(),
    );
    assert_eq!(site.publish_when_served(&mut engine, &warm_up).code, 0);
    let changes = json!([
        grid_command(
            "add-13",
            "grid.cell_added",
            json!({
            "tier": "building", "code": "330106001001006", "name": "13栋",
            "parent": "330106001001", "supervisor": "sup-330106001001006"})
        ),
        grid_command(
            "register-zhou",
            "grid.worker_registered",
            json!({"worker": {
            "id": "w-330106001001006", "name": "周晓燕", "cells": ["330106001001006"],
            "skills": ["drainage"], "on_duty": true}})
        ),
        grid_command(
            "off-ghost",
            "grid.worker_duty_changed",
            json!({"worker_id": "w-ghost", "on_duty": false})
        ),
    ]);
    let file = site.write("changes.json", changes.to_string().as_bytes());

    let run = site.run(&["grid", "--nats-url", &url, "publish", path_str(&file)]);

    assert_eq!(run.code, 2, "one command is refused: {run:?}");
    let replies: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON reply a line"))
        .collect();
    assert_eq!(replies.len(), 3, "{}", run.stdout);
    assert_eq!(replies[0]["status"], "accepted");
    assert_eq!(replies[0]["position"], 1);
    assert_eq!(replies[1]["status"], "accepted");
    assert_eq!(replies[1]["position"], 2);
    assert_eq!(replies[2]["status"], "rejected");
    assert_eq!(replies[2]["code"], "unknown_worker");
    assert_eq!(replies[2]["field"], "payload.worker_id");

    let summary = site.run(&["grid", "--nats-url", &url, "show"]);
    assert_eq!(summary.code, 0, "{summary:?}");
    assert!(
        summary
            .stdout
            .contains("grid stream: position 2 (2 events, 0 refused)"),
        "{}",
        summary.stdout
    );
    assert!(
        summary.stdout.contains("1193 buildings"),
        "{}",
        summary.stdout
    );

    let cell = site.run(&["grid", "--nats-url", &url, "show", "330106001001006"]);
    assert_eq!(cell.code, 0, "{cell:?}");
    for expected in [
        "cell:       330106001001006 (building)",
        "parent:     330106001001 学院公寓社区 (community)",
        "supervisor: sup-330106001001006",
        "  w-330106001001006  周晓燕  on duty  skills: drainage",
    ] {
        assert!(
            cell.stdout.contains(expected),
            "{expected:?} in:\n{}",
            cell.stdout
        );
    }

    let unknown = site.run(&["grid", "--nats-url", &url, "show", "330106001001999"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");

    // The refused command is kept with the other refused messages.
    let list = site.rejected(&["list"]);
    assert!(
        list.stdout.contains("wangge.grid.commands") && list.stdout.contains("unknown_worker"),
        "{}",
        list.stdout
    );
    engine.stop();
}

// ---------------------------------------------------------------------------------------
// serve: the HTTP API and the dashboard
// ---------------------------------------------------------------------------------------

/// The address `wangge serve` says its dashboard is on.
fn http_address(engine: &mut Engine) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        engine.assert_running();
        let log = engine.log();
        if let Some(rest) = log.split("dashboard and api on http://").nth(1) {
            return rest.split('/').next().expect("an address").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "serve never printed its address:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.1 GET: the status and the body.
fn http_get(address: &str, path: &str) -> (u16, String) {
    http_get_as(address, path, None)
}

/// GETs `path` with `Authorization: Bearer <token>` when a token is given.
fn http_get_as(address: &str, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the api");
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

#[test]
fn serve_answers_the_api_and_the_dashboard_over_the_cases_it_takes_in() {
    let mut site = Site::new();
    let mut engine = site.serve(&["--intake-only"]);
    let address = http_address(&mut engine);
    let (status, page) = http_get(&address, "/");
    assert_eq!(status, 200);
    assert!(page.contains("网格治理监督看板"));
    // The data needs a token: an operator's, issued with the key the engine checks.
    let (status, body) = http_get(&address, "/api/v1/cases");
    assert_eq!(status, 401, "{body}");
    let private = site.dir.path().join("auth.key");
    let issued = site.run(&[
        "auth",
        "token",
        "--as",
        "ops",
        "--role",
        "admin",
        "--auth-key",
        path_str(&private),
    ]);
    assert_eq!(issued.code, 0, "{issued:?}");
    let token = issued.stdout.trim().to_owned();
    let http_get = |address: &str, path: &str| http_get_as(address, path, Some(&token));

    let file = site.write(
        "report.json",
        resident_report("mp-http-1", "drainage.blocked")
            .to_string()
            .as_bytes(),
    );
    let run = site.publish_when_served(&mut engine, &file);
    assert_eq!(run.code, 0, "{run:?}");
    let case_id = case_of("miniprogram", "mp-http-1");

    // The read models follow the log: the case shows up in the API.
    let deadline = Instant::now() + WAIT;
    let case = loop {
        let (status, body) = http_get(&address, &format!("/api/v1/cases/{case_id}"));
        if status == 200 {
            break serde_json::from_str::<Value>(&body).expect("json");
        }
        assert_eq!(status, 404, "{body}");
        assert!(Instant::now() < deadline, "the case never reached the api");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(case["status"], "reported");
    assert_eq!(case["title"], "广场舞音响太吵");
    let (status, body) = http_get(&address, "/api/v1/cases?limit=0");
    assert_eq!(status, 400);
    let refusal: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(refusal["field"], "limit");
    let (status, metrics) = http_get(&address, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("wangge_projection_behind{projection=\"cases\"}"));
    engine.stop();
}

// ---------------------------------------------------------------------------------------
// sla publish | show | status
// ---------------------------------------------------------------------------------------

const TEST_2027_NAME: &str = "TEST calendar for 2027 — not the official schedule";

fn bundled_sla_file(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/sla")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("a bundled sla file"))
        .expect("valid json")
}

/// The bundled calendars file with `cn` replaced by a test calendar published through 2027:
/// an invented holiday and make-up day, not the State Council's 2027 schedule.
fn calendars_file_2027() -> Value {
    let mut file = bundled_sla_file("calendars.json");
    let cn = &mut file["calendars"][0];
    cn["name"] = json!(TEST_2027_NAME);
    cn["holidays"]
        .as_array_mut()
        .expect("holidays")
        .push(json!({"name": "TEST holiday (invented)", "from": "2027-01-04", "to": "2027-01-05"}));
    cn["holidays_published_through"] = json!("2027-12-31");
    file
}

impl Site {
    fn sla(&self, args: &[&str]) -> Run {
        let url = self.url();
        let mut all = vec!["sla", "--nats-url", &url];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `sla publish`, once the engine listens.
    fn sla_publish_when_served(&self, engine: &mut Engine, args: &[&str]) -> Run {
        let deadline = Instant::now() + WAIT;
        let mut all = vec!["publish", "--actor", "ops-zhang", "--timeout", "5"];
        all.extend_from_slice(args);
        loop {
            engine.assert_running();
            let run = self.sla(&all);
            if run.code != 1 || Instant::now() > deadline {
                return run;
            }
            assert!(
                run.stderr.contains("no responders"),
                "unexpected failure: {run:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The JSON reply `sla publish` prints on its first line.
fn sla_reply(run: &Run) -> Value {
    let line = run.stdout.lines().next().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not an sla reply ({e}): {run:?}"))
}

#[test]
fn sla_status_warns_45_days_before_the_calendar_runs_out_and_not_46() {
    let site = Site::new();
    // The bundled calendar is published through 2026-12-31.
    let calm = site.sla(&["status", "--today", "2026-11-15"]);
    assert_eq!(calm.code, 0, "{calm:?}");
    assert!(
        calm.stdout.contains("cn  全国 2026 national working calendar (国务院办公厅 2025-11-04)  holidays published through 2026-12-31, 46 days left"),
        "{}",
        calm.stdout
    );
    assert!(!calm.stdout.contains("WARNING"), "{}", calm.stdout);
    assert!(
        calm.stdout.contains("ok: every calendar"),
        "{}",
        calm.stdout
    );

    let warned = site.sla(&["status", "--today", "2026-11-16"]);
    assert_eq!(warned.code, 0, "a warning is not a failure: {warned:?}");
    assert!(
        warned.stdout.contains("WARNING: calendar cn (全国 2026 national working calendar (国务院办公厅 2025-11-04)) runs out in 45 days (holidays published through 2026-12-31)"),
        "{}",
        warned.stdout
    );

    let past = site.sla(&["status", "--today", "2027-01-03"]);
    assert!(
        past.stdout.contains("ran out 3 days ago"),
        "{}",
        past.stdout
    );
}

#[test]
fn sla_publish_reaches_the_engine_and_show_and_status_print_the_live_data() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let file = site.write(
        "calendars.json",
        calendars_file_2027().to_string().as_bytes(),
    );

    let published =
        site.sla_publish_when_served(&mut engine, &["--message-id", "cal-2027", path_str(&file)]);
    assert_eq!(published.code, 0, "{published:?}");
    let reply = sla_reply(&published);
    assert_eq!(
        (
            &reply["status"],
            &reply["position"],
            &reply["duplicate"],
            &reply["published"]
        ),
        (&json!("accepted"), &json!(1), &json!(false), &json!(["cn"]))
    );
    assert!(
        published
            .stdout
            .contains("published cn at sla stream position 1"),
        "{}",
        published.stdout
    );
    // Sent again with the same id: the same event, nothing new.
    let again =
        site.sla_publish_when_served(&mut engine, &["--message-id", "cal-2027", path_str(&file)]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(sla_reply(&again)["duplicate"], true);

    let shown = site.sla(&["show", "--history"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    for expected in [
        "sla stream:  position 1 (1 events, 0 refused); files: bundled",
        "calendars:   default cn",
        &format!("  cn  {TEST_2027_NAME}  (+08:00 Asia/Shanghai; 8 holidays, 6 make-up days; published through 2027-12-31)"),
        "policies:    default standard",
        "  urgent_facility  warning at 80 %",
        "published revisions: 1",
        "calendars cn; default cn  by ops-zhang (Supervisor)  source wangge-cli/cal-2027",
    ] {
        assert!(shown.stdout.contains(expected), "{expected:?} in:\n{}", shown.stdout);
    }

    let status = site.sla(&["status", "--today", "2026-11-16"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(!status.stdout.contains("WARNING"), "{}", status.stdout);
    assert!(
        status
            .stdout
            .contains("holidays published through 2027-12-31, 410 days left"),
        "{}",
        status.stdout
    );

    // The engine's own API reads the live data: the publish shows without a restart.
    let address = http_address(&mut engine);
    let (code, body) = http_get_as(
        &address,
        "/api/v1/sla/status?today=2026-11-16",
        Some(&site.operator_token()),
    );
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status["position"], 1);
    assert_eq!(status["calendars"][0]["published_through"], "2027-12-31");
    assert_eq!(status["calendars"][0]["expiring"], false);
    // Started on the bundled calendar, which runs out on 2026-12-31: the start-up warning
    // (true on any day from 2026-11-16 on, which the wall clock is past).
    assert!(
        engine.log().contains("business calendar runs out"),
        "{}",
        engine.log()
    );
    engine.stop();
}

#[test]
fn a_refused_sla_publish_exits_2_naming_the_json_path_and_is_kept_for_replay() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let mut overlapping = calendars_file_2027();
    overlapping["calendars"][0]["working_hours"]["monday"] = json!(["08:30-12:00", "11:30-17:30"]);
    let file = site.write("overlapping.json", overlapping.to_string().as_bytes());

    let refused = site.sla_publish_when_served(&mut engine, &[path_str(&file)]);
    assert_eq!(refused.code, 2, "{refused:?}");
    let reply = sla_reply(&refused);
    assert_eq!(reply["code"], "overlapping_intervals");
    assert_eq!(
        reply["field"],
        "payload.calendars[0].working_hours.monday[1]"
    );
    assert!(
        refused.stdout.contains("refused: overlapping_intervals at payload.calendars[0].working_hours.monday[1]: calendar `cn`: monday: working intervals 08:30-12:00 and 11:30-17:30 overlap"),
        "{}",
        refused.stdout
    );
    let rejected = reply["rejected_id"].as_u64().expect("kept");

    let policies = site.write(
        "policies.json",
        json!({"policies": [], "removed": ["utilities"]})
            .to_string()
            .as_bytes(),
    );
    let in_use = site.sla_publish_when_served(&mut engine, &[path_str(&policies)]);
    assert_eq!(in_use.code, 2, "{in_use:?}");
    assert_eq!(sla_reply(&in_use)["code"], "policy_in_use");
    assert_eq!(sla_reply(&in_use)["field"], "payload.removed[0]");

    let neither = site.write("grid.json", b"{\"districts\": []}");
    let run = site.sla(&["publish", path_str(&neither)]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("neither a calendars file"), "{run:?}");

    // Nothing was written; both refusals are with the other refused messages.
    let shown = site.sla(&["show"]);
    assert!(
        shown.stdout.contains("position 0 (0 events"),
        "{}",
        shown.stdout
    );
    let list = site.rejected(&["list"]);
    let line = list_line(&list, rejected);
    assert!(
        line.contains("wangge.sla.commands") && line.contains("overlapping_intervals"),
        "{line}"
    );
    // Replayed as it is, it is refused again for the same reason.
    let replay = site.rejected(&["replay", &rejected.to_string()]);
    assert_eq!(replay.code, 2, "{replay:?}");
    assert!(
        replay.stdout.contains("overlapping_intervals"),
        "{}",
        replay.stdout
    );
    engine.stop();
}

#[test]
fn serve_refuses_an_invalid_sla_dir_naming_the_file_and_the_json_path() {
    let site = Site::new();
    let dir = site.dir.path().join("sla");
    std::fs::create_dir(&dir).expect("sla dir");
    let mut calendars = bundled_sla_file("calendars.json");
    calendars["calendars"][0]["holidays"][2]["to"] = json!("2026-03-01");
    std::fs::write(dir.join("calendars.json"), calendars.to_string()).expect("write");
    let url = site.url();
    let seal_key = site.seal_key();
    let public_key = site.auth_public_key();
    let run = site.run(&[
        "serve",
        "--nats-url",
        &url,
        "--http-listen",
        "127.0.0.1:0",
        "--seal-key",
        &seal_key,
        "--auth-public-key",
        &public_key,
        "--sla-dir",
        path_str(&dir),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("calendars.json is not valid at `calendars[0].holidays[2].to`"),
        "{}",
        run.stderr
    );
}

/// The log defends itself: when another client with administration rights shrinks the event
/// log, a running engine stops with an error naming the stream and the setting, instead of
/// serving cases the log no longer holds.
#[test]
fn serve_stops_loudly_when_its_event_log_is_changed_outside_it() {
    let mut site = Site::new();
    let mut engine = site.serve(&[]);
    let deadline = Instant::now() + WAIT;
    while !engine.log().contains("watching the engine's streams") {
        engine.assert_running();
        assert!(Instant::now() < deadline, "never started: {}", engine.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let client = async_nats::connect(site.url()).await.expect("connect");
        let context = async_nats::jetstream::new(client);
        let mut config = context
            .get_stream("WANGGE_EVENTS")
            .await
            .expect("the event log")
            .cached_info()
            .config
            .clone();
        config.max_messages = 5;
        config.discard = async_nats::jetstream::stream::DiscardPolicy::Old;
        context.update_stream(&config).await.expect("the change");
    });
    // Checked every 10 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = engine.child.try_wait().expect("engine status") {
            break status;
        }
        assert!(Instant::now() < deadline, "still running: {}", engine.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1), "{}", engine.log());
    let log = engine.log();
    assert!(
        log.contains("WANGGE_EVENTS") && log.contains("max_msgs") && log.contains("stopping"),
        "{log}"
    );
}

/// The engine never appends unsealed: `wangge serve` refuses to start without a usable seal
/// key, naming the file and the reason, and never showing any byte of the key.
#[test]
fn serve_refuses_a_seal_key_that_is_missing_open_to_others_or_malformed() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let url = site.url();
    let auth_public_key = site.auth_public_key();
    let serve_with = |key: &Path| {
        site.run(&[
            "serve",
            "--nats-url",
            &url,
            "--http-listen",
            "127.0.0.1:0",
            "--seal-key",
            path_str(key),
            "--auth-public-key",
            &auth_public_key,
        ])
    };
    let pem = std::fs::read_to_string(site.seal_key()).expect("the key file");
    let secret_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let shows_no_key = |run: &Run| {
        !run.stderr.contains(&secret_body)
            && !run.stdout.contains(&secret_body)
            && !run.stderr.contains("PRIVATE KEY")
    };

    let missing = site.dir.path().join("nowhere.pem");
    let run = serve_with(&missing);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("nowhere.pem: missing") && run.stderr.contains("wangge seal keygen"),
        "{}",
        run.stderr
    );

    let shared = site.dir.path().join("shared.pem");
    std::fs::copy(site.seal_key(), &shared).expect("copy the key");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let run = serve_with(&shared);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("shared.pem: mode 0640") && run.stderr.contains("chmod 600"),
        "{}",
        run.stderr
    );
    assert!(shows_no_key(&run), "{}", run.stderr);

    let short = site.write("short.seed", &[7u8; 31]);
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = serve_with(&short);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("short.seed: malformed: 31 bytes"),
        "{}",
        run.stderr
    );

    let damaged = site.write(
        "damaged.pem",
        pem.replace(&secret_body[..12], "AAAAAAAAAAAA").as_bytes(),
    );
    std::fs::set_permissions(&damaged, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = serve_with(&damaged);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("damaged.pem: malformed"),
        "{}",
        run.stderr
    );
    assert!(shows_no_key(&run), "{}", run.stderr);
}

/// `wangge seal keygen` writes a key only its owner can read, prints the line the verifiers'
/// keyring needs (and nothing of the private key), and never writes over an existing key.
#[test]
fn seal_keygen_writes_a_private_key_and_prints_its_keyring_line() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let out = site.dir.path().join("engine-2027.pem");

    let run = site.run(&["seal", "keygen", "--out", path_str(&out)]);

    assert_eq!(run.code, 0, "{run:?}");
    let mode = std::fs::metadata(&out)
        .expect("key written")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let key = SealKey::load(&out).expect("the key loads back");
    assert_eq!(run.stdout.trim(), key.keyring_line());
    let keyring = Keyring::parse(&run.stdout).expect("the printed line is a keyring");
    assert_eq!(keyring.key_ids().collect::<Vec<_>>(), vec![key.key_id()]);
    assert!(run.stderr.contains(key.key_id()), "{}", run.stderr);
    let pem = std::fs::read_to_string(&out).expect("key file");
    let secret_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!run.stdout.contains(&secret_body) && !run.stderr.contains(&secret_body));

    // `seal public` prints the same line from the file; keygen never overwrites it.
    let public = site.run(&["seal", "public", "--seal-key", path_str(&out)]);
    assert_eq!(public.code, 0, "{public:?}");
    assert_eq!(public.stdout, run.stdout);
    let again = site.run(&["seal", "keygen", "--out", path_str(&out)]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&out).expect("key file"), pem);
}

/// Without a way to check who is asking, `wangge serve` does not start; the development
/// escape is loud.
#[test]
fn serve_refuses_to_start_without_http_authentication() {
    let site = Site::new();
    let url = site.url();
    let seal_key = site.seal_key();
    let run = site.run(&[
        "serve",
        "--nats-url",
        &url,
        "--http-listen",
        "127.0.0.1:0",
        "--seal-key",
        &seal_key,
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("the HTTP API needs authentication")
            && run.stderr.contains("--auth-public-key")
            && run.stderr.contains("--auth-disabled-for-development"),
        "{}",
        run.stderr
    );
    let private = site.dir.path().join("auth.key");
    site.auth_public_key();
    let run = site.run(&[
        "serve",
        "--nats-url",
        &url,
        "--http-listen",
        "127.0.0.1:0",
        "--auth-public-key",
        path_str(&private),
        "--seal-key",
        &seal_key,
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("never the signing key"),
        "{}",
        run.stderr
    );
    // The development escape: everyone reads everything, and the server says so.
    let child = site
        .command()
        .args([
            "serve",
            "--nats-url",
            &url,
            "--http-listen",
            "127.0.0.1:0",
            "--intake-only",
        ])
        .arg("--auth-disabled-for-development")
        .args(["--seal-key", &site.seal_key()])
        .env("WANGGE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(site.dir.path().join("serve-open.log")).unwrap())
        .spawn()
        .expect("start wangge serve");
    let mut engine = Engine {
        child,
        log: site.dir.path().join("serve-open.log"),
    };
    let address = http_address(&mut engine);
    let (status, body) = http_get(&address, "/api/v1/me");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"credential\":\"development\""), "{body}");
    assert!(
        engine.log().contains("WARNING: authentication is disabled"),
        "{}",
        engine.log()
    );
    engine.stop();
}

/// `wangge auth`: a key pair with a private file only its owner reads, tokens whose role
/// comes from the grid (and only for ids the grid has), API keys shown once and revocable.
#[test]
fn auth_issues_tokens_for_people_of_the_grid_and_manages_api_keys() {
    let site = Site::new();
    let public = site.auth_public_key();
    let private = site.dir.path().join("auth.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the signing key is its owner's only");
    }
    let again = site.run(&["auth", "keygen", "--out", path_str(&private)]);
    assert_eq!(
        again.code, 1,
        "an existing key is not overwritten: {again:?}"
    );

    let verifier = wangge_projections::http::TokenVerifier::from_public_key_pem(
        &std::fs::read_to_string(&public).unwrap(),
        "the site's key",
    )
    .unwrap();
    let token = |args: &[&str]| {
        let mut all = vec!["auth", "token", "--auth-key", path_str(&private)];
        all.extend_from_slice(args);
        site.run(&all)
    };
    for (id, role) in [
        ("sup-330106001001", "supervisor"),
        ("lead-330106002-1", "district"),
        ("w-330106001001001", "grid_worker"),
    ] {
        let run = token(&["--as", id]);
        assert_eq!(run.code, 0, "{run:?}");
        let claims = verifier.verify(run.stdout.trim()).expect("a valid token");
        assert_eq!(claims.sub, id);
        assert_eq!(claims.role.map(|r| r.as_str()), Some(role), "{id}");
    }
    let auditor = token(&["--as", "audit-office", "--role", "auditor", "--ttl", "30m"]);
    let claims = verifier
        .verify(auditor.stdout.trim())
        .expect("a valid token");
    assert!(claims.exp - claims.iat.unwrap() == 1800);
    let stranger = token(&["--as", "mallory"]);
    assert_eq!(stranger.code, 1);
    assert!(
        stranger.stderr.contains("`mallory` is not in the grid"),
        "{}",
        stranger.stderr
    );
    let pretender = token(&["--as", "w-330106001001001", "--role", "supervisor"]);
    assert_eq!(pretender.code, 1);
    assert!(
        pretender.stderr.contains("supervises no cell"),
        "{}",
        pretender.stderr
    );

    let keys = site.dir.path().join("keys.json");
    let keys = path_str(&keys);
    let created = site.run(&[
        "auth",
        "key",
        "create",
        "--name",
        "bi",
        "--role",
        "district",
        "--district",
        "330106002",
        "--keys-file",
        keys,
    ]);
    assert_eq!(created.code, 0, "{created:?}");
    let key = created.stdout.trim().to_owned();
    assert!(key.starts_with("wk_") && key.len() > 40, "{key}");
    assert!(
        !std::fs::read_to_string(keys).unwrap().contains(&key),
        "only the hash is stored"
    );
    let unknown = site.run(&[
        "auth",
        "key",
        "create",
        "--name",
        "x",
        "--role",
        "district",
        "--district",
        "999",
        "--keys-file",
        keys,
    ]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no district `999`"),
        "{}",
        unknown.stderr
    );
    let revoked = site.run(&["auth", "key", "revoke", "--name", "bi", "--keys-file", keys]);
    assert_eq!(revoked.code, 0, "{revoked:?}");
    let listed = site.run(&["auth", "key", "list", "--keys-file", keys]);
    assert!(
        listed.stdout.contains("bi\tdistrict\t330106002") && listed.stdout.contains("revoked"),
        "{}",
        listed.stdout
    );
}

/// An identity provider's keys at a JWKS URL: fetched at start, tokens signed with the key
/// are accepted, others refused; an unreachable URL stops the start.
#[test]
fn serve_checks_tokens_against_a_jwks_url() {
    let site = Site::new();
    let public = site.auth_public_key();
    let private = site.dir.path().join("auth.key");
    let jwks = wangge_projections::http::auth::ed25519_jwks(
        &std::fs::read_to_string(&public).unwrap(),
        "key-1",
    )
    .expect("a JWKS of the key");
    // A one-file web server for the JWKS.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::Read;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{jwks}",
                jwks.len()
            );
        }
    });
    let url = site.url();
    let unreachable = site.run(&[
        "serve",
        "--nats-url",
        &url,
        "--http-listen",
        "127.0.0.1:0",
        "--auth-jwks-url",
        "http://127.0.0.1:9/jwks.json",
        "--seal-key",
        &site.seal_key(),
    ]);
    assert_eq!(unreachable.code, 1, "{unreachable:?}");
    assert!(
        unreachable.stderr.contains("cannot fetch the JWKS"),
        "{}",
        unreachable.stderr
    );

    let child = site
        .command()
        .args([
            "serve",
            "--nats-url",
            &url,
            "--http-listen",
            "127.0.0.1:0",
            "--intake-only",
        ])
        .args(["--auth-jwks-url", &jwks_url])
        .args(["--seal-key", &site.seal_key()])
        .env("WANGGE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(site.dir.path().join("serve-jwks.log")).unwrap())
        .spawn()
        .expect("start wangge serve");
    let mut engine = Engine {
        child,
        log: site.dir.path().join("serve-jwks.log"),
    };
    let address = http_address(&mut engine);
    let issued = site.run(&[
        "auth",
        "token",
        "--as",
        "ops",
        "--role",
        "auditor",
        "--auth-key",
        path_str(&private),
    ]);
    assert_eq!(issued.code, 0, "{issued:?}");
    let (status, body) = http_get_as(&address, "/api/v1/me", Some(issued.stdout.trim()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"role\":\"auditor\""), "{body}");
    let other = site.dir.path().join("other.key");
    assert_eq!(
        site.run(&["auth", "keygen", "--out", path_str(&other)])
            .code,
        0
    );
    let forged = site.run(&[
        "auth",
        "token",
        "--as",
        "ops",
        "--role",
        "auditor",
        "--auth-key",
        path_str(&other),
    ]);
    let (status, body) = http_get_as(&address, "/api/v1/me", Some(forged.stdout.trim()));
    assert_eq!(status, 401, "{body}");
    engine.stop();
}

//! Residents' personal data on real parts: `wangge serve` on a private nats-server (its store
//! directory known) with its read models in a PostgreSQL database of its own, and the
//! `wangge residents` and `wangge rejected` commands an operator runs.
//!
//! The done criterion of issue 10, item 6: a resident's name, phone and ID number are in no
//! byte of the NATS store directory nor of a `pg_dump`, before or after erasure; before it,
//! the API shows them masked and an auditor may reveal them (recorded); `wangge residents
//! erase` destroys the resident's data key so its wrapped bytes are gone from the store
//! files, a reveal then answers "erased", the API shows `已删除`, the audit chain verifies,
//! and the case's facts are intact. A refused message naming the resident is sealed under
//! their key and becomes unreadable with them; one naming nobody is sealed under the day's.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;
use wangge_schemas::{CaseId, Source};
use wangge_testkit::{NatsServer, TestDatabase};

const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");
const WAIT: Duration = Duration::from_secs(20);

/// The resident: distinctive strings that appear nowhere else.
const NAME: &str = "欧阳测试娜";
const PHONE: &str = "13912345678";
const ID_NUMBER: &str = "11010519491231002X";
const RESIDENT: &str = "wx-privacy-7731";
/// A phone in a refused message that names no resident (not even JSON).
const STRAY_PHONE: &str = "13700001111";
/// A phone in a refused report that names the resident.
const REFUSED_PHONE: &str = "13987654321";

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

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
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Site {
    server: NatsServer,
    database: TestDatabase,
    dir: TempDir,
    kek: PathBuf,
}

impl Site {
    fn command(&self) -> Command {
        let mut command = Command::new(WANGGE);
        for var in [
            "WANGGE_NATS_URL",
            "WANGGE_GRID",
            "WANGGE_CATEGORIES",
            "WANGGE_STREAM_REPLICAS",
            "WANGGE_SLA_DIR",
            "WANGGE_LOG",
            "WANGGE_KEK",
            "WANGGE_KEK_FILE",
            "WANGGE_POSTGRES_URL",
            "WANGGE_IDENTITY",
            "WANGGE_SEAL_KEY_FILE",
            "WANGGE_SEAL_PUBLIC_KEYS_FILE",
            "WANGGE_AUTH_PUBLIC_KEY",
            "WANGGE_AUTH_KEY_FILE",
        ] {
            command.env_remove(var);
        }
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        let output = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run wangge");
        Run {
            code: output.status.code().expect("wangge exited normally"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn nats(&self) -> String {
        self.server.url()
    }

    /// The engine's seal key and the keyring line verifiers need, made on first use.
    fn seal_key(&self) -> String {
        let key = self.dir.path().join("seal.pem");
        let keyring = self.dir.path().join("keyring");
        if !key.exists() {
            let run = self.run(&["seal", "keygen", "--out", key.to_str().expect("path")]);
            assert_eq!(run.code, 0, "{run:?}");
            std::fs::write(&keyring, &run.stdout).expect("write the keyring");
        }
        key.to_str().expect("path").to_owned()
    }

    fn keyring(&self) -> String {
        self.seal_key();
        self.dir
            .path()
            .join("keyring")
            .to_str()
            .expect("path")
            .to_owned()
    }

    /// The public half of the key the API's tokens are checked against, made on first use.
    fn auth_public_key(&self) -> String {
        let key = self.dir.path().join("auth.key");
        if !key.exists() {
            let run = self.run(&["auth", "keygen", "--out", key.to_str().expect("path")]);
            assert_eq!(run.code, 0, "{run:?}");
        }
        self.dir
            .path()
            .join("auth.key.pub")
            .to_str()
            .expect("path")
            .to_owned()
    }

    /// An auditor's token for the API.
    fn auditor_token(&self) -> String {
        self.token_for("auditor-li", "auditor")
    }

    /// A token for `person` in `role`.
    fn token_for(&self, person: &str, role: &str) -> String {
        self.auth_public_key();
        let key = self.dir.path().join("auth.key");
        let run = self.run(&[
            "auth",
            "token",
            "--as",
            person,
            "--role",
            role,
            "--auth-key",
            key.to_str().expect("path"),
        ]);
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout.trim().to_owned()
    }

    fn kek(&self) -> &str {
        self.kek.to_str().expect("a UTF-8 path")
    }

    fn serve(&self) -> Engine {
        let log = self.dir.path().join("serve.log");
        let child = self
            .command()
            .args([
                "serve",
                "--nats-url",
                &self.nats(),
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args([
                "--postgres-url",
                &self.database.url(),
                "--kek-file",
                self.kek(),
            ])
            // A development server without accounts: senders are named by their messages.
            .args(["--identity", "claimed"])
            .args(["--seal-key", &self.seal_key()])
            .args(["--auth-public-key", &self.auth_public_key()])
            .env("WANGGE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("engine log file"))
            .spawn()
            .expect("start wangge serve");
        Engine { child, log }
    }

    /// Publishes a message (retrying while the engine is not yet listening).
    fn publish(&self, engine: &mut Engine, name: &str, body: &[u8]) -> Run {
        let file = self.dir.path().join(name);
        std::fs::write(&file, body).expect("write the message");
        let deadline = Instant::now() + WAIT;
        loop {
            engine.assert_running();
            let run = self.run(&[
                "publish",
                "--nats-url",
                &self.nats(),
                "--timeout",
                "5",
                file.to_str().expect("path"),
            ]);
            if !(run.code == 1 && run.stderr.contains("no responders")) || Instant::now() > deadline
            {
                return run;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn reveal(&self, case_id: CaseId, requester: &str, role: &str) -> Run {
        self.run(&[
            "residents",
            "reveal",
            &case_id.to_string(),
            "--as",
            requester,
            "--role",
            role,
            "--reason",
            "回访核实处理结果",
            "--nats-url",
            &self.nats(),
            "--kek-file",
            self.kek(),
            "--postgres-url",
            &self.database.url(),
        ])
    }

    /// Every file under the NATS store directory that contains `needle`.
    fn store_files_containing(&self, needle: &[u8]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        walk(self.server.store_dir(), &mut |path| {
            let bytes = std::fs::read(path).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.to_owned());
            }
        });
        found
    }

    fn pg_dump(&self) -> String {
        let output = Command::new("pg_dump")
            .args(["--dbname", &self.database.url()])
            .output()
            .expect("run pg_dump");
        assert!(
            output.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("pg_dump prints UTF-8")
    }

    /// No byte of the store directory, nor of a dump of the read models, holds a plain
    /// contact.
    fn assert_no_plaintext_anywhere(&self, when: &str) {
        let dump = self.pg_dump();
        assert!(
            dump.contains("contact_reveals"),
            "the dump covers the reveals table"
        );
        for secret in [NAME, PHONE, ID_NUMBER, REFUSED_PHONE, STRAY_PHONE] {
            let files = self.store_files_containing(secret.as_bytes());
            assert!(
                files.is_empty(),
                "{when}: `{secret}` in NATS store files {files:?}"
            );
            assert!(!dump.contains(secret), "{when}: `{secret}` in the pg_dump");
        }
    }
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    for entry in std::fs::read_dir(dir)
        .expect("read a store directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, visit);
        } else {
            visit(&path);
        }
    }
}

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

fn http_get(address: &str, token: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the api");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
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
    // Chunked bodies: the JSON is the part between the first `{` or `[` and the last `}`
    // or `]`.
    let body = match (body.find(['{', '[']), body.rfind(['}', ']'])) {
        (Some(start), Some(end)) if end > start => body[start..=end].to_owned(),
        _ => body,
    };
    (status, body)
}

/// The case's history as the API serves it, once it holds at least `events` events.
fn history(address: &str, token: &str, case_id: CaseId, events: usize) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(address, token, &format!("/api/v1/cases/{case_id}/history"));
        if status == 200 {
            let history: Value = serde_json::from_str(&body).expect("json");
            if history["events"]
                .as_array()
                .is_some_and(|e| e.len() >= events)
            {
                return history;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the case's history never reached the api: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn report(message_id: &str, category: &str, phone: &str) -> Value {
    json!({
        "kind": "resident_report",
        "schema_version": 1,
        "source": {"system": "miniprogram", "message_id": message_id},
        "reported_at": "2026-03-12T08:15:42+08:00",
        "building": "330106001001001",
        "channel": "mini_program",
        "resident": {"id": RESIDENT, "name": NAME, "phone": phone, "id_number": ID_NUMBER},
        "title": "楼道堆放杂物堵塞消防通道",
        "description": "3单元楼道长期堆放纸箱和旧家具,堵住了消防通道。",
        "category": category
    })
}

/// The wrapped data key of the resident as the bucket holds it (the base64 text stored in
/// the entry's JSON), read straight from the KV bucket.
async fn wrapped_resident_keys(server: &NatsServer) -> Vec<String> {
    use futures::TryStreamExt;
    let context = async_nats::jetstream::new(server.connect().await);
    let kv = context
        .get_key_value("WANGGE_RESIDENT_KEYS")
        .await
        .expect("the resident key bucket");
    let keys: Vec<String> = kv
        .keys()
        .await
        .expect("keys")
        .try_collect()
        .await
        .expect("keys");
    let mut wrapped = Vec::new();
    for key in keys.iter().filter(|k| k.starts_with("resident.")) {
        if let Some(value) = kv.get(key).await.expect("get") {
            let entry: Value = serde_json::from_slice(&value).expect("a wrapped key");
            wrapped.push(entry["wrapped"].as_str().expect("wrapped").to_owned());
        }
    }
    wrapped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_residents_contact_is_in_no_byte_of_the_store_nor_the_read_models_and_the_case_stays_intact(
) {
    let dir = tempfile::tempdir().expect("scratch dir");
    let kek = dir.path().join("kek");
    let site = Site {
        server: NatsServer::start(),
        database: TestDatabase::create().await,
        dir,
        kek,
    };
    // A key file that others may read is refused, naming the file and what to do.
    let created = site.run(&["residents", "new-kek", site.kek()]);
    assert_eq!(created.code, 0, "{created:?}");
    let loose = site.dir.path().join("loose-kek");
    std::fs::copy(&site.kek, &loose).expect("copy the key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let refused = site.run(&[
        "residents",
        "rewrap",
        "--nats-url",
        &site.nats(),
        "--kek-file",
        loose.to_str().expect("path"),
    ]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("others may read it") && refused.stderr.contains("chmod 600"),
        "{refused:?}"
    );
    let key_text = std::fs::read_to_string(&site.kek).expect("key");
    assert!(
        !refused.stderr.contains(key_text.trim()),
        "the key is never printed"
    );

    let mut engine = site.serve();
    let address = http_address(&mut engine);
    let token = site.auditor_token();

    // A report, a refused report naming the resident, and a refused message naming nobody.
    let accepted = site.publish(
        &mut engine,
        "report.json",
        report("mp-pii-1", "drainage.blocked", PHONE)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(accepted.code, 0, "{accepted:?}");
    let case_id = CaseId::derived_from_source(&Source {
        system: "miniprogram".into(),
        message_id: "mp-pii-1".into(),
    });
    let refused_named = site.publish(
        &mut engine,
        "refused.json",
        report("mp-pii-2", "no.such_category", REFUSED_PHONE)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(refused_named.code, 2, "{refused_named:?}");
    let named_id: u64 = serde_json::from_str::<Value>(&refused_named.stdout).expect("reply")
        ["rejected_id"]
        .as_u64()
        .expect("kept");
    let stray = site.publish(
        &mut engine,
        "stray.txt",
        format!("call me on {STRAY_PHONE}").as_bytes(),
    );
    assert_eq!(stray.code, 2, "{stray:?}");
    let stray_id: u64 = serde_json::from_str::<Value>(&stray.stdout).expect("reply")["rejected_id"]
        .as_u64()
        .expect("kept");

    // The API serves the contact masked.
    let before = history(&address, &token, case_id, 1);
    let resident = &before["events"][0]["payload"]["details"]["resident"];
    assert_eq!(resident["id"], RESIDENT);
    assert_eq!(resident["contact"]["phone"], "139****5678");
    assert_eq!(resident["contact"]["name"], "欧****");
    assert_eq!(resident["contact"]["id_number"], "1101**********002X");
    let (_, case_before) = http_get(&address, &token, &format!("/api/v1/cases/{case_id}"));
    let case_before: Value = serde_json::from_str(&case_before).expect("json");

    // An auditor may reveal it; a worker not assigned to the case may not. Both recorded.
    let revealed = site.reveal(case_id, "auditor-li", "auditor");
    assert_eq!(revealed.code, 0, "{revealed:?}");
    let contact: Value = serde_json::from_str(&revealed.stdout).expect("the contact");
    assert_eq!(
        (contact["name"].as_str(), contact["phone"].as_str()),
        (Some(NAME), Some(PHONE))
    );
    let not_theirs = site.reveal(case_id, "gw-no-such-worker", "grid_worker");
    assert_eq!(not_theirs.code, 3, "{not_theirs:?}");
    assert!(
        not_theirs.stderr.contains("not the grid worker assigned"),
        "{not_theirs:?}"
    );

    // The operator opens refused bodies with the KEK; without it they stay sealed.
    let kek = site.kek().to_owned();
    let nats = site.nats();
    let show = |id: u64, with_kek: bool| {
        let id = id.to_string();
        let mut args = vec!["rejected", "--nats-url", nats.as_str()];
        if with_kek {
            args.extend(["--kek-file", kek.as_str()]);
        }
        args.extend(["show", id.as_str()]);
        site.run(&args)
    };
    assert!(show(named_id, true).stdout.contains(REFUSED_PHONE));
    assert!(show(stray_id, true).stdout.contains(STRAY_PHONE));
    // Our sealing headers are ours: the operator sees the sender's headers only.
    assert!(!show(stray_id, true).stdout.contains("Wangge-Sealed-Key"));
    assert!(show(named_id, false)
        .stdout
        .contains("sealed: give --kek-file"));

    site.assert_no_plaintext_anywhere("before erasure");
    let wrapped = wrapped_resident_keys(&site.server).await;
    assert_eq!(wrapped.len(), 1, "one resident, one data key");
    assert_eq!(
        site.store_files_containing(wrapped[0].as_bytes()).len(),
        1,
        "the wrapped key is on disk"
    );

    // Erase.
    let erased = site.run(&[
        "residents",
        "erase",
        "miniprogram",
        RESIDENT,
        "--by",
        "dpo-zhang",
        "--nats-url",
        &site.nats(),
        "--kek-file",
        site.kek(),
        "--postgres-url",
        &site.database.url(),
    ]);
    assert_eq!(erased.code, 0, "{erased:?}");
    assert!(erased.stdout.contains("resident erased: rk-"), "{erased:?}");
    assert!(erased.stdout.contains("ordered by dpo-zhang"), "{erased:?}");
    assert!(
        erased
            .stdout
            .contains("no report written before contacts were sealed"),
        "{erased:?}"
    );
    assert!(
        !erased.stdout.contains(RESIDENT),
        "the erasure names the resident by keyed hash only"
    );

    // The key's bytes are gone from every store file; no plaintext appeared anywhere.
    assert!(
        site.store_files_containing(wrapped[0].as_bytes())
            .is_empty(),
        "the wrapped key was overwritten"
    );
    site.assert_no_plaintext_anywhere("after erasure");

    // Nothing can read the contact any more: the reveal says so, the API shows 已删除, and
    // the refused report naming the resident is unreadable too; the stray one is not.
    let after_reveal = site.reveal(case_id, "auditor-li", "auditor");
    assert_eq!(after_reveal.code, 4, "{after_reveal:?}");
    assert!(after_reveal.stderr.contains("erased"), "{after_reveal:?}");
    let deadline = Instant::now() + WAIT;
    let after = loop {
        // The serving instance hears of the erasure through its watch on the bucket.
        let after = history(
            &address,
            &token,
            case_id,
            before["events"].as_array().map_or(1, Vec::len),
        );
        if after["events"][0]["payload"]["details"]["resident"]["contact"] == "已删除" {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "the api never showed the erasure"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(show(named_id, true)
        .stdout
        .contains("the resident it names was erased"));
    assert!(show(stray_id, true).stdout.contains(STRAY_PHONE));

    // The case's facts are intact: the same events with the same hashes, the same case.
    for (old, new) in before["events"]
        .as_array()
        .expect("events")
        .iter()
        .zip(after["events"].as_array().expect("events"))
    {
        assert_eq!(old["event_id"], new["event_id"]);
        assert_eq!(old["event_type"], new["event_type"]);
        assert_eq!(old["changes"], new["changes"]);
    }
    let (_, case_after) = http_get(&address, &token, &format!("/api/v1/cases/{case_id}"));
    let case_after: Value = serde_json::from_str(&case_after).expect("json");
    for field in ["title", "cell", "location", "reporter", "reported_at"] {
        assert_eq!(case_before[field], case_after[field], "{field}");
    }
    let keyring = site.keyring();
    let verified = site.run(&[
        "audit",
        "--postgres-url",
        &site.database.url(),
        "--seal-public-keys",
        &keyring,
        "verify",
    ]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(verified.stderr.contains("intact"), "{verified:?}");

    // Every reveal is on record, the refused one and the one after erasure included.
    let reveals = site.run(&[
        "residents",
        "reveals",
        "--postgres-url",
        &site.database.url(),
        "--case",
        &case_id.to_string(),
    ]);
    assert_eq!(reveals.code, 0, "{reveals:?}");
    let lines: Vec<&str> = reveals.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{reveals:?}");
    assert!(lines[0].contains("auditor-li") && lines[0].contains("erased"));
    assert!(lines[1].contains("gw-no-such-worker") && lines[1].contains("refused"));
    assert!(lines[2].contains("auditor-li") && lines[2].contains("revealed"));
    assert!(!reveals.stdout.contains(RESIDENT));

    // Over HTTP the requester is the token's holder: an auditor gets the answer ("erased"
    // now), a supervisor of another district is refused, both recorded; only auditors read
    // the records.
    let path =
        format!("/api/v1/cases/{case_id}/reporter?reason=%E5%9B%9E%E8%AE%BF%E7%A1%AE%E8%AE%A4");
    let (status, answer) = http_get(&address, &token, &path);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"outcome\":\"erased\""), "{answer}");
    assert!(!answer.contains(PHONE), "{answer}");
    let outsider = site.token_for("sup-330106002", "supervisor");
    let (status, answer) = http_get(&address, &outsider, &path);
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = http_get(
        &address,
        &token,
        &format!("/api/v1/cases/{case_id}/reporter"),
    );
    assert_eq!(status, 400, "{answer}");
    let (status, records) = http_get(
        &address,
        &token,
        &format!("/api/v1/reveals?case_id={case_id}"),
    );
    assert_eq!(status, 200, "{records}");
    let records: Value = serde_json::from_str(&records).expect("json");
    // The three from the command line, then these two (a reveal without a reason is not one).
    assert_eq!(records.as_array().map(Vec::len), Some(5), "{records}");
    assert_eq!(records[0]["requester"], "sup-330106002", "{records}");
    assert_eq!(records[0]["outcome"], "refused", "{records}");
    assert_eq!(records[1]["requester"], "auditor-li", "{records}");
    assert_eq!(records[1]["outcome"], "erased", "{records}");
    let (status, _) = http_get(&address, &outsider, "/api/v1/reveals");
    assert_eq!(status, 403);
}

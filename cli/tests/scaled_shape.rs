//! The scaled shape of `deploy/README.md` ("Where one machine is outgrown"), on one machine:
//! a 3-node NATS cluster with R3 streams, two engine instances sharing the cases' partitions
//! (each given the whole list of nodes), the projections writing to a PostgreSQL primary, and
//! an API instance reading from the primary's streaming hot standby. Reports sent through
//! any node are accepted, dispatched by whichever instance holds their partition, projected
//! on the primary and served, dispatched, by the API on the replica.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;
use wangge_testkit::{NatsCluster, PostgresReplicaPair};

mod support;
use support::{strip_ansi, wangge_command};

const WAIT: Duration = Duration::from_secs(90);
const REPORTS: usize = 24;

struct Instance {
    child: Child,
    log: PathBuf,
}

impl Instance {
    /// The instance's log, without the terminal colours the logger may add.
    fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("instance status") {
            panic!(
                "`wangge serve` exited with {status}; its log:\n{}",
                self.log()
            );
        }
    }

    fn http_address(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            self.assert_running();
            if let Some(rest) = self.log().split("dashboard and api on http://").nth(1) {
                return rest.split('/').next().expect("an address").to_owned();
            }
            assert!(Instant::now() < deadline, "no address:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The partitions this instance says it took.
    fn partitions_taken(&self) -> BTreeSet<u8> {
        self.log()
            .lines()
            .filter(|line| line.contains("took a partition"))
            .filter_map(|line| {
                line.split("partition=")
                    .nth(1)?
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wangge(dir: &TempDir) -> Command {
    let mut command = wangge_command();
    command.current_dir(dir.path());
    command
}

fn run_ok(command: &mut Command) -> String {
    let output = command.stdin(Stdio::null()).output().expect("run wangge");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
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
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_owned());
    let body = match (body.find(['{', '[']), body.rfind(['}', ']'])) {
        (Some(start), Some(end)) if end > start => body[start..=end].to_owned(),
        _ => body,
    };
    (status, body)
}

fn report(n: usize) -> Value {
    json!({
        "kind": "resident_report",
        "schema_version": 1,
        "source": {"system": "hotline-12345", "message_id": format!("scaled-{n}")},
        "reported_at": "2026-03-12T08:15:42+08:00",
        "building": "330106001001001",
        "channel": "hotline12345",
        "resident": {"id": format!("caller-{n}")},
        "title": format!("路灯不亮 {n}"),
        "description": "小区北门路灯晚上不亮,行人看不清路。",
        "category": "lighting.street_light_out"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_through_any_node_are_dispatched_by_the_partition_holder_and_served_from_the_replica(
) {
    let cluster = NatsCluster::start(3).await;
    let pair = PostgresReplicaPair::start();
    pair.primary_sql("postgres", "CREATE DATABASE wangge");
    let primary = pair.primary_url("wangge");
    let replica = pair.replica_url("wangge");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    run_ok(wangge(&dir).args(["seal", "keygen", "--out", &path("seal.pem")]));
    run_ok(wangge(&dir).args(["auth", "keygen", "--out", &path("auth.key")]));
    let token = run_ok(wangge(&dir).args([
        "auth",
        "token",
        "--as",
        "auditor-li",
        "--role",
        "auditor",
        "--auth-key",
        &path("auth.key"),
    ]))
    .trim()
    .to_owned();

    let serve = |name: &str, urls: String, extra: &[&str]| {
        let log = dir.path().join(format!("{name}.log"));
        let child = wangge(&dir)
            .args([
                "serve",
                "--instance",
                name,
                "--nats-url",
                &urls,
                "--replicas",
                "3",
            ])
            .args(["--http-listen", "127.0.0.1:0", "--postgres-url", &primary])
            .args(["--identity", "claimed", "--seal-key", &path("seal.pem")])
            .args(["--auth-public-key", &path("auth.key.pub")])
            .args(extra)
            .env("WANGGE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start wangge serve");
        Instance { child, log }
    };
    // Each engine is given every node, first its "own".
    let list_from = |first: usize| {
        (0..3)
            .map(|k| cluster.url((first + k) % 3))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut first = serve("e1", list_from(0), &[]);
    first.http_address();
    let mut second = serve("e2", list_from(1), &[]);
    second.http_address();
    let mut api = serve(
        "api",
        list_from(2),
        &["--intake-only", "--postgres-read-url", &replica],
    );
    let api_address = api.http_address();
    assert_eq!(cluster.stream_replicas("WANGGE_EVENTS").await, Some(3));

    // The two engines share the 16 partitions, none held twice.
    let deadline = Instant::now() + WAIT;
    loop {
        first.assert_running();
        second.assert_running();
        let (a, b) = (first.partitions_taken(), second.partitions_taken());
        if !a.is_empty() && !b.is_empty() && a.len() + b.len() >= 16 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not shared: e1 {a:?}, e2 {b:?}; e1's log:\n{}",
            first.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Reports through each node in turn, as a hotline's sender would send them.
    for n in 0..REPORTS {
        let file = dir.path().join(format!("report-{n}.json"));
        std::fs::write(&file, report(n).to_string()).unwrap();
        let answer = run_ok(wangge(&dir).args([
            "publish",
            "--nats-url",
            &cluster.url(n % 3),
            "--timeout",
            "10",
            file.to_str().unwrap(),
        ]));
        assert!(answer.contains("accepted"), "report {n}: {answer}");
    }

    // Served from the replica: every case, each dispatched.
    let deadline = Instant::now() + WAIT;
    loop {
        api.assert_running();
        let (status, body) = http_get(&api_address, &token, "/api/v1/cases?limit=100");
        if status == 200 {
            let page: Value = serde_json::from_str(&body).unwrap();
            let items = page["items"].as_array().cloned().unwrap_or_default();
            let dispatched = items
                .iter()
                .filter(|case| case["status"] == "dispatched" || case["assignee"].is_string())
                .count();
            if items.len() == REPORTS && dispatched == REPORTS {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replica's API shows {} cases, {dispatched} dispatched: {body}",
                items.len()
            );
        } else {
            assert!(Instant::now() < deadline, "{status} {body}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The replica's checkpoints are what the API reports as its projections' positions.
    let (status, body) = http_get(&api_address, &token, "/api/v1/projections");
    assert_eq!(status, 200, "{body}");
    assert!(
        api.log().contains("the API reads from the replica"),
        "{}",
        api.log()
    );
}

//! Failover that loses nothing, on a real 3-node cluster with R3 streams: `wangge serve`
//! under a steady stream of reports from a sender that follows the README's rule (resend the
//! same message on `unavailable`, `contended`, a timeout or no responders), while the event
//! stream's leader is killed — and, separately, the node the engine is connected to. Each
//! scenario prints sent / acknowledged / in the log / duplicated and the longest time a
//! report waited, and requires every report in the log exactly once.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_testkit::NatsCluster;

mod support;
use support::{strip_ansi, wangge_command, WANGGE};

/// Reports sent, one every `PACE`.
const REPORTS: usize = 200;
const PACE: Duration = Duration::from_millis(40);
/// How long the README's sender keeps a message before giving up on it.
const SENDER_GIVES_UP: Duration = Duration::from_secs(90);

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

struct Engine {
    child: Child,
    log: PathBuf,
}

impl Engine {
    fn start(dir: &tempfile::TempDir, urls: &str) -> Self {
        let key = dir.path().join("seal.pem");
        if !key.exists() {
            let made = Command::new(WANGGE)
                .args(["seal", "keygen", "--out", key.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(made.status.success());
            let made = Command::new(WANGGE)
                .args(["auth", "keygen", "--out"])
                .arg(dir.path().join("auth.key"))
                .output()
                .unwrap();
            assert!(made.status.success());
        }
        let log = dir.path().join("serve.log");
        let mut command = wangge_command();
        let replicas = if urls.contains(',') { "3" } else { "1" };
        let child = command
            .args(["serve", "--nats-url", urls, "--replicas", replicas])
            .args(["--http-listen", "127.0.0.1:0", "--identity", "claimed"])
            .arg("--seal-key")
            .arg(&key)
            .arg("--auth-public-key")
            .arg(dir.path().join("auth.key.pub"))
            .env("WANGGE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("start wangge serve");
        Self { child, log }
    }

    /// The node the engine's client is connected to now, by the port its log names.
    fn connected_node(&self, cluster: &NatsCluster) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let plain: String = strip_ansi(&log);
        let port = plain
            .lines()
            .rev()
            .filter(|line| line.contains("connected successfully"))
            .find_map(|line| {
                line.split("server=")
                    .nth(1)?
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<u16>()
                    .ok()
            })
            .expect("the engine logged its connection");
        (0..cluster.size())
            .find(|&index| cluster.url(index).ends_with(&format!(":{port}")))
            .expect("the engine is connected to a node of the cluster")
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "`wangge serve` exited with {status}:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
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

fn report(scenario: &str, n: usize) -> Value {
    json!({
        "kind": "resident_report",
        "schema_version": 1,
        "source": {"system": "hotline-12345", "message_id": format!("{scenario}-{n}")},
        "reported_at": "2026-03-12T08:15:42+08:00",
        "building": "330106001001001",
        "channel": "hotline12345",
        "resident": {"id": format!("caller-{n}")},
        "title": format!("路灯不亮 {n}"),
        "description": "小区北门路灯晚上不亮。",
        "category": "lighting.street_light_out"
    })
}

/// What the sender saw for one report.
#[derive(Debug, Default, Clone)]
struct Sent {
    acknowledged: bool,
    attempts: u32,
    /// From the first send to the acknowledgement.
    waited: Duration,
    answers: Vec<String>,
}

/// Sends one report as the README says: the same message again on `unavailable`,
/// `contended`, a timeout or no responders, pausing 1 s, doubling to 30 s.
async fn send_as_the_readme_says(client: async_nats::Client, body: Vec<u8>) -> Sent {
    let began = Instant::now();
    let mut sent = Sent::default();
    let mut pause = Duration::from_secs(1);
    while began.elapsed() < SENDER_GIVES_UP {
        sent.attempts += 1;
        let answer = tokio::time::timeout(
            Duration::from_secs(15),
            client.request("wangge.intake.resident_report", body.clone().into()),
        )
        .await;
        let resend = match answer {
            Ok(Ok(reply)) => {
                let reply: Value = serde_json::from_slice(&reply.payload).unwrap_or_default();
                sent.answers.push(reply.to_string());
                match (reply["status"].as_str(), reply["code"].as_str()) {
                    (Some("accepted"), _) => {
                        sent.acknowledged = true;
                        sent.waited = began.elapsed();
                        return sent;
                    }
                    (
                        Some("rejected"),
                        Some("unavailable" | "key_store_unavailable" | "contended"),
                    ) => true,
                    _ => return sent,
                }
            }
            Ok(Err(error)) => {
                sent.answers.push(format!("request failed: {error}"));
                true
            }
            Err(_) => {
                sent.answers.push("no answer within 15 s".into());
                true
            }
        };
        if resend {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }
    sent
}

/// Every report's message id as the log holds it: how many `case.reported` events name it.
async fn reports_in_the_log(client: async_nats::Client) -> BTreeMap<String, usize> {
    let log = JetStreamLog::open(
        client,
        JetStreamLogConfig {
            replicas: 0,
            ..Default::default()
        },
    )
    .await
    .expect("open the log");
    let head = log.head().await.unwrap();
    let mut found = BTreeMap::new();
    let mut commits = log.read_from(1);
    let mut read = 0;
    let mut hiccups = 0;
    while read < head {
        // Just after a fault the cluster may still drop a reader: read on from where it was.
        let commit = match commits.next().await.expect("the log goes on") {
            Ok(commit) => commit,
            Err(error) => {
                hiccups += 1;
                assert!(hiccups < 50, "the log cannot be read: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                commits = log.read_from(read + 1);
                continue;
            }
        };
        read = commit.position;
        for event in &commit.events {
            let event = serde_json::to_value(event).unwrap();
            if event["event_type"] == "case.reported" {
                let id = event["source"]["message_id"]
                    .as_str()
                    .expect("a report's source")
                    .to_owned();
                *found.entry(id).or_insert(0) += 1;
            }
        }
    }
    found
}

/// Runs one scenario: steady reports, `fault` done after a second of them, then everything
/// counted. Returns the printed line.
async fn scenario(
    name: &str,
    fault: impl for<'a> FnOnce(
        &'a mut NatsCluster,
        &'a Engine,
    ) -> futures::future::BoxFuture<'a, String>,
) {
    // One cluster at a time: three nodes each, on two cores.
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::start(&dir, &cluster.url_list());
    let sender = cluster.connect().await;
    // The engine is up when it answers a report.
    let first =
        send_as_the_readme_says(sender.clone(), report(name, 0).to_string().into_bytes()).await;
    engine.assert_running();
    assert!(first.acknowledged, "the engine never answered: {first:?}");

    let results = Arc::new(Mutex::new(BTreeMap::new()));
    let sending = {
        let results = results.clone();
        async move {
            let mut tasks = Vec::new();
            for n in 1..=REPORTS {
                let (sender, results) = (sender.clone(), results.clone());
                let body = report(name, n).to_string().into_bytes();
                tasks.push(tokio::spawn(async move {
                    let sent = send_as_the_readme_says(sender, body).await;
                    results.lock().await.insert(n, sent);
                }));
                tokio::time::sleep(PACE).await;
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    // The fault starts a second into the reports, while they keep coming.
    let faulting = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        fault(&mut cluster, &engine).await
    };
    let ((), what) = tokio::join!(sending, faulting);
    engine.assert_running();
    let results = results.lock().await.clone();
    let acknowledged = results.values().filter(|s| s.acknowledged).count() + 1;
    let longest = results.values().map(|s| s.waited).max().unwrap_or_default();
    let resent = results.values().filter(|s| s.attempts > 1).count();
    let in_log = reports_in_the_log(cluster.connect().await).await;
    let logged = in_log.len();
    let duplicated = in_log.values().filter(|&&count| count > 1).count();
    let sent = REPORTS + 1;
    println!(
        "{name} ({what}): sent {sent}, acknowledged {acknowledged}, in the log {logged}, \
         duplicated {duplicated}, resent {resent}, longest wait {:.1} s",
        longest.as_secs_f64()
    );
    let not_acknowledged: Vec<_> = results
        .iter()
        .filter(|(_, s)| !s.acknowledged)
        .take(3)
        .collect();
    assert!(
        not_acknowledged.is_empty(),
        "not acknowledged: {not_acknowledged:?}"
    );
    assert_eq!(acknowledged, sent);
    assert_eq!(logged, sent, "every report is in the log");
    assert_eq!(duplicated, 0, "none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_event_streams_leader_under_load_loses_no_report() {
    scenario("leader-killed", |cluster, _| {
        Box::pin(async move {
            let leader = cluster
                .stream_leader("WANGGE_EVENTS")
                .await
                .expect("the stream has a leader");
            let index = cluster.index_of(&leader).unwrap();
            cluster.kill(index);
            format!("killed the leader {leader}")
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_the_engine_is_connected_to_loses_no_report() {
    scenario("engines-node-killed", |cluster, engine| {
        Box::pin(async move {
            let node = engine.connected_node(cluster);
            cluster.kill(node);
            format!("killed {}, the engine's node", cluster.name(node))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_all_three_nodes_one_by_one_loses_no_report() {
    scenario("rolled", |cluster, _| {
        Box::pin(async move {
            for node in 0..cluster.size() {
                cluster.kill(node);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                cluster.restart(node);
                cluster.wait_stream_current("WANGGE_EVENTS").await;
            }
            "restarted n1, n2, n3 in turn".to_owned()
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_whole_cluster_and_starting_it_again_loses_no_report() {
    scenario("cluster-restarted", |cluster, _| {
        Box::pin(async move {
            for node in 0..cluster.size() {
                cluster.kill(node);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            for node in 0..cluster.size() {
                cluster.restart(node);
            }
            "killed all three nodes, started them again".to_owned()
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_single_fsync_always_server_under_load_loses_no_acknowledged_report() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut server = wangge_testkit::NatsServer::start_durable();
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::start(&dir, &server.url());
    let sender = server.connect().await;
    let first =
        send_as_the_readme_says(sender.clone(), report("single", 0).to_string().into_bytes()).await;
    engine.assert_running();
    assert!(first.acknowledged, "the engine never answered: {first:?}");
    let results = Arc::new(Mutex::new(BTreeMap::new()));
    let mut tasks = Vec::new();
    for n in 1..=REPORTS {
        if n == 25 {
            // SIGKILL: whatever was acknowledged must have been fsynced.
            server.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            server.restart();
        }
        let (sender, results) = (sender.clone(), results.clone());
        let body = report("single", n).to_string().into_bytes();
        tasks.push(tokio::spawn(async move {
            let sent = send_as_the_readme_says(sender, body).await;
            results.lock().await.insert(n, sent);
        }));
        tokio::time::sleep(PACE).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    engine.assert_running();
    let results = results.lock().await.clone();
    let acknowledged = results.values().filter(|s| s.acknowledged).count() + 1;
    let in_log = reports_in_the_log(server.connect().await).await;
    let duplicated = in_log.values().filter(|&&count| count > 1).count();
    println!(
        "single node, SIGKILL and restart: sent {}, acknowledged {acknowledged}, in the log {}, \
         duplicated {duplicated}, resent {}",
        REPORTS + 1,
        in_log.len(),
        results.values().filter(|s| s.attempts > 1).count()
    );
    assert_eq!(
        acknowledged,
        REPORTS + 1,
        "every report acknowledged in the end"
    );
    assert_eq!(in_log.len(), REPORTS + 1, "no acknowledged report lost");
    assert_eq!(duplicated, 0);
}

//! A three-node (or n-node) JetStream cluster private to one test: the production shape of
//! `deploy/nats/cluster/` on one machine, always the pinned nats-server.
//!
//! Each node has its own client and route ports (free ports), its own store directory and a
//! server name (`n1`, `n2`, …); nodes can be killed (SIGKILL), stopped and started again on
//! the same ports and store, so tests can take the stream leader or the whole cluster down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{free_port, nats_server_binary, ready_lines};

struct Node {
    name: String,
    client_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A JetStream cluster of nodes on 127.0.0.1, stopped and removed when dropped.
pub struct NatsCluster {
    binary: PathBuf,
    nodes: Vec<Node>,
    _dir: TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes with `sync_interval: always` (as `deploy/` requires) and waits
    /// until the cluster has elected its JetStream meta leader.
    pub async fn start(size: usize) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wangge-nats-cluster-")
            .tempdir()
            .expect("create the cluster's directory");
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, route)| format!("nats-route://127.0.0.1:{route}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(index, (client_port, route_port))| {
                let name = format!("n{}", index + 1);
                let store = dir.path().join(&name);
                let config = dir.path().join(format!("{name}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "server_name: {name}\nlisten: 127.0.0.1:{client_port}\n\
                         jetstream {{\n  store_dir: {store:?}\n  sync_interval: always\n}}\n\
                         cluster {{\n  name: wangge-test\n  listen: 127.0.0.1:{route_port}\n  \
                         routes: [{routes}]\n}}\n"
                    ),
                )
                .expect("write a node's config");
                Node {
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port: *client_port,
                    config,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Self {
            binary: nats_server_binary(),
            nodes,
            _dir: dir,
        };
        for index in 0..size {
            cluster.spawn(index);
        }
        for index in 0..size {
            cluster.wait_started(index, 0);
        }
        cluster.wait_for_meta_leader().await;
        cluster
    }

    /// The node's client URL.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].client_port)
    }

    /// Every node's client URL, comma-separated: what `--nats-url` takes.
    pub fn url_list(&self) -> String {
        (0..self.nodes.len())
            .map(|index| self.url(index))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node's server name (`n1`, `n2`, …), as stream info names leaders and replicas.
    pub fn name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// A client that knows every node and keeps reconnecting (for fault tests).
    pub async fn connect(&self) -> async_nats::Client {
        let urls: Vec<async_nats::ServerAddr> = (0..self.nodes.len())
            .map(|index| self.url(index).parse().expect("a server address"))
            .collect();
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(urls)
            .await
            .expect("connect to the test cluster")
    }

    /// SIGKILL: no flush, no goodbye; the store stays.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again on its ports and store, waiting until it says it is ready.
    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        let before = ready_lines(&self.nodes[index].log);
        self.spawn(index);
        self.wait_started(index, before);
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.nodes[index].child.is_some()
    }

    /// The stream's info as the JetStream API answers it (`config`, `state`, `cluster`),
    /// asked of any live node; `None` when no node answers.
    pub async fn stream_info(&self, stream: &str) -> Option<serde_json::Value> {
        stream_info_via(&self.connect().await, stream).await
    }

    /// The name of the node leading `stream` now.
    pub async fn stream_leader(&self, stream: &str) -> Option<String> {
        let info = self.stream_info(stream).await?;
        info["cluster"]["leader"].as_str().map(str::to_owned)
    }

    /// The stream's replicas as configured on the server.
    pub async fn stream_replicas(&self, stream: &str) -> Option<u64> {
        self.stream_info(stream).await?["config"]["num_replicas"].as_u64()
    }

    /// Waits (at most 60 s) until `stream` has a leader and every replica is current: a node
    /// just restarted has caught up.
    pub async fn wait_stream_current(&self, stream: &str) {
        let client = self.connect().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(info) = stream_info_via(&client, stream).await {
                let cluster = &info["cluster"];
                let replicas = cluster["replicas"].as_array().cloned().unwrap_or_default();
                if cluster["leader"].is_string()
                    && replicas.len() + 1 == self.nodes.len()
                    && replicas
                        .iter()
                        .all(|r| r["current"] == true && r["offline"] != true)
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "stream {stream} not current on every node within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn spawn(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&node.config)
            .arg("-l")
            .arg(&node.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        node.child = Some(child);
    }

    fn wait_started(&self, index: usize, ready_before: usize) {
        let node = &self.nodes[index];
        wait_for_log(&node.log, ready_before, &node.name);
    }

    /// Until a JetStream request is answered (the meta leader elected), at most 60 s.
    async fn wait_for_meta_leader(&self) {
        let client = self.connect().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(reply) = client.request("$JS.API.INFO", "".into()).await {
                let info: serde_json::Value =
                    serde_json::from_slice(&reply.payload).unwrap_or_default();
                if info.get("error").is_none() && info.get("type").is_some() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the test cluster elected no JetStream meta leader within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn stream_info_via(client: &async_nats::Client, stream: &str) -> Option<serde_json::Value> {
    let reply = client
        .request(format!("$JS.API.STREAM.INFO.{stream}"), "".into())
        .await
        .ok()?;
    serde_json::from_slice(&reply.payload).ok()
}

fn wait_for_log(log: &Path, ready_before: usize, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready_lines(log) <= ready_before {
        assert!(
            Instant::now() < deadline,
            "cluster node {name} not ready after 60 s; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}

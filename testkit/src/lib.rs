//! Real servers for tests and benchmarks.
//!
//! [`NatsServer`] starts a `nats-server` binary with JetStream on a free port and its own
//! store directory, so tests run in parallel and can kill and restart the server (same port,
//! same store) to test what survives. The process is killed and the directory removed on drop.
//! [`NatsCluster`] is a JetStream cluster of a test's own (three nodes, say), whose nodes can
//! be killed and restarted. [`TestDatabase`] is a PostgreSQL database of a test's own,
//! dropped with it; [`PostgresReplicaPair`] a private primary with a streaming hot standby.
//! [`purity`] checks, as text, that a pure core performs no I/O and reads no clock.

mod cluster;
mod postgres;
mod postgres_replica;
pub mod purity;

pub use cluster::NatsCluster;
pub use postgres::{postgres_server_url, TestDatabase};
pub use postgres_replica::PostgresReplicaPair;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The pin file of the project's nats-server (`deploy/dev/nats-server.pin`).
const NATS_SERVER_PIN: &str = include_str!("../../deploy/dev/nats-server.pin");

/// The nats-server version the project pins, e.g. `2.15.1`.
pub fn pinned_nats_server_version() -> &'static str {
    NATS_SERVER_PIN
        .lines()
        .find_map(|line| line.strip_prefix("NATS_SERVER_VERSION="))
        .map(str::trim)
        .expect("deploy/dev/nats-server.pin names NATS_SERVER_VERSION")
}

/// Where `deploy/dev/install-nats-server.sh` installs the pinned binary by default.
pub fn pinned_nats_server_path() -> Option<PathBuf> {
    let root = match std::env::var_os("WANGGE_NATS_SERVER_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
            cache.join("wangge").join("nats-server")
        }
    };
    Some(root.join(pinned_nats_server_version()).join("nats-server"))
}

/// The project's pinned nats-server: `$WANGGE_NATS_SERVER` (set by `deploy/dev/test-all.sh`),
/// else the install script's default path. Never a nats-server from PATH or `/usr/sbin`: a
/// system server of another version would make the tests say nothing about the one we run.
///
/// Panics, saying what to run, when the binary is missing or is not the pinned version.
pub fn nats_server_binary() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED.get_or_init(find_pinned_binary).clone()
}

fn find_pinned_binary() -> PathBuf {
    let pinned = pinned_nats_server_version();
    let install = "install it with `bash deploy/dev/install-nats-server.sh` (or `bash deploy/dev/ensure-services.sh`), or run the tests through `bash deploy/dev/test-all.sh`";
    let binary = match std::env::var_os("WANGGE_NATS_SERVER") {
        Some(path) => PathBuf::from(path),
        None => pinned_nats_server_path().unwrap_or_else(|| {
            panic!("the project's nats-server {pinned} cannot be found: neither WANGGE_NATS_SERVER nor HOME is set; {install}")
        }),
    };
    if !binary.is_file() {
        panic!(
            "the project's nats-server {pinned} is not at {}; {install}",
            binary.display()
        );
    }
    let said = Command::new(&binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} --version: {e}; {install}", binary.display()));
    let said = String::from_utf8_lossy(&said.stdout).trim().to_owned();
    if said != format!("nats-server: v{pinned}") {
        panic!(
            "{} says '{said}', the project pins nats-server {pinned}; {install}",
            binary.display()
        );
    }
    binary
}

/// A nats-server with JetStream that belongs to one test.
pub struct NatsServer {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    store: TempDir,
    extra_args: Vec<String>,
}

impl NatsServer {
    /// Starts a fresh server on a free port with an empty store.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a fresh server with extra command-line arguments.
    pub fn start_with_args(extra_args: &[&str]) -> Self {
        Self::start_binary(nats_server_binary(), extra_args)
    }

    /// Starts a fresh server that fsyncs every write (`sync_interval: always`), as `deploy/`
    /// requires in production: what durability tests and the group-commit tests run on.
    pub fn start_durable() -> Self {
        Self::start_durable_binary(nats_server_binary())
    }

    /// [`NatsServer::start_durable`] from another binary than the pinned one (to compare
    /// releases).
    pub fn start_durable_binary(binary: PathBuf) -> Self {
        let config = tempfile::Builder::new()
            .prefix("wangge-nats-durable-")
            .suffix(".conf")
            .tempfile()
            .expect("create a server config file");
        std::fs::write(config.path(), "jetstream { sync_interval: always }\n")
            .expect("write the server config file");
        let (_, path) = config.keep().expect("keep the server config file");
        let path = path.to_string_lossy().into_owned();
        Self::start_binary(binary, &["-c", &path])
    }

    /// Starts a fresh server from another binary than the pinned one (a test of how the
    /// engine meets an older server), with extra command-line arguments.
    pub fn start_binary(binary: PathBuf, extra_args: &[&str]) -> Self {
        let store = tempfile::Builder::new()
            .prefix("wangge-nats-")
            .tempdir()
            .expect("create a temporary store dir");
        let port = free_port();
        let mut server = Self {
            binary,
            child: None,
            port,
            store,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Connects a client that keeps retrying while the server is down (for restart tests).
    pub async fn connect(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(self.url())
            .await
            .expect("connect to the test nats-server")
    }

    /// Kills the server at once (SIGKILL: no flush, no goodbye), keeping its store.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The server's process id while it runs (to watch it: its memory, its system calls).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self) {
        let binary = &self.binary;
        let log_file = self.store.path().join("server.log");
        let ready_before = ready_lines(&log_file);
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path().join("jetstream"))
            .arg("-l")
            .arg(&log_file)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; install the project's nats-server with `bash deploy/dev/install-nats-server.sh`",
                    binary.display()
                )
            });
        self.child = Some(child);
        wait_until_ready(self.port, &log_file, ready_before);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now. The OS picks it; there is a tiny window in which
/// another process could take it, which the readiness wait below would reveal.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("find a free port")
}

/// How many times the server has said it is ready in this log (the log survives restarts).
fn ready_lines(log_file: &Path) -> usize {
    std::fs::read_to_string(log_file)
        .map(|log| log.matches("Server is ready").count())
        .unwrap_or(0)
}

/// Waits until the server accepts connections and says it is ready (JetStream recovered).
fn wait_until_ready(port: u16, log_file: &Path, ready_before: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        let ready = ready_lines(log_file) > ready_before;
        if listening && ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nats-server on port {port} not ready after 30 s; log: {}",
            std::fs::read_to_string(log_file).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

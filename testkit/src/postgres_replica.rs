//! A PostgreSQL primary with a streaming hot-standby replica, both private to one test: the
//! scaled shape's read side (`deploy/README.md`, "Where one machine is outgrown") on one
//! machine.
//!
//! Both are fresh clusters of the machine's PostgreSQL 15 binaries (`initdb`, then
//! `pg_basebackup --write-recovery-conf` from the primary), on free ports, in temporary
//! directories, stopped (`pg_ctl stop -m immediate`) and removed when dropped. The
//! development server on 5432 is left alone: a base backup of it would copy every database
//! other tests and benchmarks keep there, and its `pg_hba.conf` allows no replication.
//!
//! PostgreSQL refuses to run as root, so when the test runs as root the server programs run
//! as the `postgres` user (`runuser`), which then owns the directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Where Debian keeps PostgreSQL 15's server programs (`$WANGGE_PG_BIN` overrides).
fn pg_bin(program: &str) -> PathBuf {
    let dir =
        std::env::var("WANGGE_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    Path::new(&dir).join(program)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL program, as `postgres` when we are root.
fn pg_command(program: &str) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(pg_bin(program));
        command
    } else {
        Command::new(pg_bin(program))
    }
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e} (is PostgreSQL 15 installed?)"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// One private PostgreSQL server: its data directory and port.
struct Instance {
    data: PathBuf,
    port: u16,
    started: bool,
}

impl Instance {
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn start(&mut self, log: &Path) {
        run(
            pg_command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(log)
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
                    self.port,
                    self.data.display()
                ))
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
        self.started = true;
    }

    fn stop(&mut self) {
        if self.started {
            let _ = pg_command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.started = false;
        }
    }
}

/// A primary and its hot standby, streaming.
pub struct PostgresReplicaPair {
    primary: Instance,
    replica: Instance,
    _dir: TempDir,
}

impl PostgresReplicaPair {
    /// Creates and starts both servers; the replica follows the primary before this returns.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wangge-pg-pair-")
            .tempdir()
            .expect("create a directory for the PostgreSQL pair");
        if running_as_root() {
            run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.path()),
                "chown the pair's directory to postgres",
            );
        }
        let mut primary = Instance {
            data: dir.path().join("primary"),
            port: free_port(),
            started: false,
        };
        run(
            pg_command("initdb")
                .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
                .arg(&primary.data),
            "initdb (primary)",
        );
        // Replication connections from this machine, no password (a private test cluster).
        let hba = primary.data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).expect("read the primary's pg_hba.conf");
        rules.push_str("\nhost replication all 127.0.0.1/32 trust\n");
        std::fs::write(&hba, rules).expect("allow replication from 127.0.0.1");
        primary.start(&dir.path().join("primary.log"));

        let mut replica = Instance {
            data: dir.path().join("replica"),
            port: free_port(),
            started: false,
        };
        run(
            pg_command("pg_basebackup")
                .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
                .args([
                    "-U",
                    "postgres",
                    "--write-recovery-conf",
                    "--checkpoint=fast",
                ])
                .args(["--wal-method=stream", "--no-sync", "-D"])
                .arg(&replica.data),
            "pg_basebackup (replica)",
        );
        replica.start(&dir.path().join("replica.log"));
        let pair = Self {
            primary,
            replica,
            _dir: dir,
        };
        pair.wait_until_streaming();
        pair
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>` on the primary.
    pub fn primary_url(&self, database: &str) -> String {
        self.primary.url(database)
    }

    /// The same database on the hot standby (read-only).
    pub fn replica_url(&self, database: &str) -> String {
        self.replica.url(database)
    }

    /// Runs SQL on the primary through `psql` (creating databases, say).
    pub fn primary_sql(&self, database: &str, sql: &str) {
        run(
            Command::new("psql").arg(self.primary.url(database)).args([
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ]),
            "psql on the primary",
        );
    }

    /// Pauses or resumes the replica's replay of the primary's WAL: the replica's lag made
    /// as long as a test needs.
    pub fn pause_replay(&self, paused: bool) {
        let function = if paused {
            "pg_wal_replay_pause()"
        } else {
            "pg_wal_replay_resume()"
        };
        run(
            Command::new("psql")
                .arg(self.replica.url("postgres"))
                .args(["-qAtc", &format!("SELECT {function}")]),
            "psql on the replica",
        );
    }

    fn wait_until_streaming(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("psql")
                .arg(self.primary.url("postgres"))
                .args([
                    "-qAtc",
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                ])
                .output();
            if matches!(&out, Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "1") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not start streaming within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PostgresReplicaPair {
    fn drop(&mut self) {
        self.replica.stop();
        self.primary.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("find a free port")
}

//! The read side's operator commands against real servers: `wangge audit verify` finds an
//! audit row altered, removed or inserted directly in PostgreSQL and names the case and the
//! entry; `wangge projections run`, killed mid-batch while it catches up with a large log and
//! started again, ends with read models equal, row by row, to `wangge projections rebuild`
//! into a fresh database.

#[path = "../../projections/tests/simulation/mod.rs"]
mod simulation;

use std::collections::HashMap;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use wangge_engine::log::{Commit, EventLog, JetStreamLog, JetStreamLogConfig, SealKey};
use wangge_projections::compact::trail;
use wangge_projections::fold::audit::{chain_hash, AuditProjection, AuditRecord};
use wangge_projections::postgres::schema::all_tables;
use wangge_projections::query::ReadModels;
use wangge_projections::runner::project_batch;
use wangge_projections::{PostgresReadModels, PROJECTION_NAMES};
use wangge_testkit::{NatsServer, TestDatabase};

use simulation::{context, op, read_log, Op, Simulation};

const WANGGE: &str = env!("CARGO_BIN_EXE_wangge");

fn day(n: usize) -> Vec<Op> {
    let mut runner = TestRunner::deterministic();
    proptest::collection::vec(op(), n)
        .new_tree(&mut runner)
        .expect("a day of operations")
        .current()
}

fn wangge(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = Command::new(WANGGE);
    command.args(args).env("WANGGE_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run wangge")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_the_case_and_the_entry_altered_removed_or_inserted() {
    let database = TestDatabase::create().await;
    let models = PostgresReadModels::connect(&database.url(), context())
        .await
        .unwrap();
    let mut city = Simulation::in_memory();
    city.run_all(&day(120)).await;
    let commits = read_log(city.log(), 1).await;
    project_batch(&AuditProjection, &*models, 0, &commits)
        .await
        .unwrap();
    // The simulated day's log was written without seals, like a log from before sealing:
    // accepted below the position after its last commit, against a keyring of one key.
    let keys = tempfile::tempdir().unwrap();
    let keyring = keys.path().join("keyring");
    std::fs::write(&keyring, SealKey::generate().keyring_line()).unwrap();
    let after_the_day = commits.last().map_or(1, |c| c.position + 1);
    let env = [
        ("WANGGE_POSTGRES_URL", database.url()),
        (
            "WANGGE_SEAL_PUBLIC_KEYS_FILE",
            keyring.to_str().unwrap().to_owned(),
        ),
        ("WANGGE_ALLOW_UNSEALED_BEFORE", after_the_day.to_string()),
    ];

    let intact = wangge(&["audit", "verify"], &env);
    assert!(intact.status.success(), "{}", text(&intact.stderr));
    assert!(
        text(&intact.stderr).contains("intact"),
        "{}",
        text(&intact.stderr)
    );

    // Three cases with at least three entries each. The forger of the inserted entry even
    // links and hashes it properly (its copied text still gives it away as well).
    let mut long_trails = Vec::new();
    for case_id in &city.cases {
        let trail = models.audit_trail(*case_id).await.unwrap().unwrap();
        if trail.entries.len() >= 3 {
            long_trails.push((*case_id, trail.entries.len() as u64));
        }
    }
    assert!(long_trails.len() >= 3, "the day has too few long trails");
    let (altered, _) = long_trails[0];
    let (removed, _) = long_trails[1];
    let (inserted, length) = long_trails[2];
    let client = database.connect().await;
    // The trails are stored compressed, a row per case: the tamperer reads one, edits its
    // entries and writes it back, as anyone with the database's password could.
    rewrite_trail(&client, altered, |records| {
        let second = records.iter_mut().find(|r| r.sequence == 2).unwrap();
        second.entry_json = second
            .entry_json
            .replace("\"simulation\"", "\"somebody else\"");
    })
    .await;
    rewrite_trail(&client, removed, |records| {
        records.retain(|r| r.sequence != 2)
    })
    .await;
    rewrite_trail(&client, inserted, |records| {
        let last = records.last().unwrap().clone();
        let hash = chain_hash(&last.hash, &last.entry_json);
        records.push(AuditRecord {
            sequence: length + 1,
            prev_hash: last.hash.clone(),
            hash,
            ..last
        });
    })
    .await;

    let verify = wangge(&["audit", "verify"], &env);
    let stdout = text(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&verify.stderr)
    );
    let line_of = |case: &wangge_schemas::CaseId| {
        stdout
            .lines()
            .filter(|line| line.contains(&case.to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        line_of(&altered).contains(&format!("case {altered} entry 2")),
        "{stdout}"
    );
    assert!(line_of(&altered).contains("altered"), "{stdout}");
    assert!(
        line_of(&removed).contains(&format!("case {removed} entry 2")),
        "{stdout}"
    );
    assert!(line_of(&removed).contains("removed"), "{stdout}");
    let extra = length + 1;
    assert!(
        line_of(&inserted).contains(&format!("case {inserted} entry {extra}")),
        "{stdout}"
    );
    assert!(line_of(&inserted).contains("inserted"), "{stdout}");
    let named: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(named.len(), 3, "only the three tampered cases: {stdout}");

    // One case at a time.
    let one = wangge(&["audit", "verify", &altered.to_string()], &env);
    assert_eq!(one.status.code(), Some(1));
    assert!(text(&one.stdout).contains(&format!("case {altered} entry 2")));
    let fine = long_trails[3.min(long_trails.len() - 1)].0;
    if ![altered, removed, inserted].contains(&fine) {
        let ok = wangge(&["audit", "verify", &fine.to_string()], &env);
        assert!(ok.status.success(), "{}", text(&ok.stdout));
    }
}

/// `wangge projections run`, killed when dropped.
struct Runners(Child);

impl Runners {
    fn start(env: &[(&str, String)], log: &std::path::Path) -> Self {
        let mut command = Command::new(WANGGE);
        command
            .args(["projections", "run", "--max-batch", "200"])
            .env("WANGGE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        Self(command.spawn().expect("start wangge projections run"))
    }

    /// SIGKILL: no goodbye, whatever transaction is in flight.
    fn kill(mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

impl Drop for Runners {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

async fn checkpoints(models: &PostgresReadModels) -> Vec<u64> {
    models
        .checkpoints()
        .await
        .unwrap()
        .iter()
        .map(|c| c.position)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_killed_mid_batch_and_restarted_equal_a_rebuild_row_by_row() {
    // A large log on JetStream: a simulated day, copied commit by commit.
    let server = NatsServer::start();
    let jetstream = JetStreamLog::open(server.connect().await, JetStreamLogConfig::default())
        .await
        .unwrap();
    let mut city = Simulation::in_memory();
    city.run_all(&day(6_000)).await;
    let mut last: HashMap<wangge_schemas::CaseId, u64> = HashMap::new();
    for commit in read_log(city.log(), 1).await {
        let expected = last.get(&commit.case_id).copied().unwrap_or(0);
        let appended = jetstream
            .append(
                Commit {
                    case_id: commit.case_id,
                    events: commit.events,
                    idempotency_key: format!("copy-{}", commit.position),
                },
                expected,
            )
            .await
            .unwrap();
        last.insert(commit.case_id, appended.position);
    }
    let head = jetstream.head().await.unwrap();
    assert!(head > 2_000, "a large log: {head} commits");

    let live = TestDatabase::create().await;
    let models = PostgresReadModels::connect(&live.url(), context())
        .await
        .unwrap();
    let env = [
        ("WANGGE_NATS_URL", server.url()),
        ("WANGGE_POSTGRES_URL", live.url()),
    ];
    let scratch_dir = tempfile::tempdir().unwrap();

    // Kill it while it catches up: some projection has committed batches, none is done.
    let runners = Runners::start(&env, &scratch_dir.path().join("first.log"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let positions = checkpoints(&models).await;
        if positions.iter().any(|p| *p > 0) {
            break positions;
        }
        assert!(
            Instant::now() < deadline,
            "the runners never committed a batch"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    runners.kill();
    assert!(
        at_kill.iter().any(|p| *p > 0 && *p < head),
        "killed while catching up: {at_kill:?} of {head}"
    );

    // Start again: it carries on from the checkpoints to the head.
    let runners = Runners::start(&env, &scratch_dir.path().join("second.log"));
    let deadline = Instant::now() + Duration::from_secs(300);
    while checkpoints(&models).await.iter().any(|p| *p != head) {
        assert!(
            Instant::now() < deadline,
            "not caught up: {:?} of {head}; log:\n{}",
            checkpoints(&models).await,
            std::fs::read_to_string(scratch_dir.path().join("second.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = wangge(&["projections", "status"], &env);
    let status_text = text(&status.stdout);
    assert!(status.status.success(), "{}", text(&status.stderr));
    for name in PROJECTION_NAMES {
        let line = status_text
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no status of {name}: {status_text}"));
        let columns: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(columns[1], head.to_string(), "{line}");
        assert_eq!(columns[2], "0", "{line}");
        assert!(line.contains("active"), "a runner holds {name}: {line}");
    }
    runners.kill();

    // A fresh database, every projection rebuilt from the log: the same rows.
    let fresh = TestDatabase::create().await;
    let fresh_env = [
        ("WANGGE_NATS_URL", server.url()),
        ("WANGGE_POSTGRES_URL", fresh.url()),
    ];
    for name in PROJECTION_NAMES {
        let rebuilt = wangge(&["projections", "rebuild", name], &fresh_env);
        assert!(
            rebuilt.status.success(),
            "rebuild {name}: {}",
            text(&rebuilt.stderr)
        );
        assert!(text(&rebuilt.stderr).contains(&format!("rebuilt {name}")));
    }
    for table in all_tables() {
        let (live_rows, fresh_rows) = (live.rows(table).await, fresh.rows(table).await);
        assert_eq!(live_rows.len(), fresh_rows.len(), "rows of {table}");
        for (live_row, fresh_row) in live_rows.iter().zip(&fresh_rows) {
            assert_eq!(live_row, fresh_row, "a row of {table}");
        }
    }
    let fresh_models = PostgresReadModels::connect(&fresh.url(), context())
        .await
        .unwrap();
    assert_eq!(checkpoints(&fresh_models).await, vec![head; 4]);
}

/// Reads a case's stored trail, lets `edit` change its entries, and writes it back.
async fn rewrite_trail(
    client: &tokio_postgres::Client,
    case_id: wangge_schemas::CaseId,
    edit: impl FnOnce(&mut Vec<AuditRecord>),
) {
    let row = client
        .query_one(
            "SELECT entries FROM audit_trails WHERE case_id = $1",
            &[&case_id.0],
        )
        .await
        .unwrap();
    let mut records = trail::decode(case_id, row.get(0)).records;
    assert!(!records.is_empty(), "case {case_id} has a stored trail");
    edit(&mut records);
    client
        .execute(
            "UPDATE audit_trails SET entries = $1 WHERE case_id = $2",
            &[&trail::encode_whole(&records), &case_id.0],
        )
        .await
        .unwrap();
}

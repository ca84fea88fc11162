//! `wangge-bench store-memory`: what a city's years of cases cost nats-server in memory and
//! on disk, on the pinned server, with the event stream exactly as the engine sets it up.
//!
//! The sample city's history (`history.rs`: 8–10 events per case in about 7 commits, real
//! event JSON) is written case step by case step — every case's first commit, then every
//! case's second, … — so each commit carries the headers the engine writes (idempotency key,
//! expected subject sequence, case id, sequences, event types, the positions of the case's
//! earlier commits and a real Ed25519 seal chained to the previous commit). At each
//! checkpoint (`--at`) the bench records the server's resident memory (now and its peak), the
//! store's size on disk and the stream's figures; then stops the server gracefully, starts it
//! again on the same store, records how long recovery took and the memory after it, and loads
//! `--loads` random cases through the engine's own `load` (two round trips: the case's last
//! commit, then its earlier commits by position), checking each comes back whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream::message::PublishMessage;
use async_nats::HeaderMap;
use chrono::Utc;
use clap::Args;
use wangge_engine::domain::seal::{HEADER_SEAL, HEADER_SEAL_LINK};
use wangge_engine::grid::GridDirectory;
use wangge_engine::log::codec::{
    encode_events, event_types, HEADER_CASE_ID, HEADER_EARLIER_POSITIONS, HEADER_EVENT_TYPES,
    HEADER_FIRST_SEQUENCE, HEADER_LAST_SEQUENCE,
};
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig, SealKey, StoredCommit};
use wangge_schemas::CaseId;

use crate::history::CityHistory;
use crate::report;
use crate::setup::publish_windowed;

#[derive(Debug, Args)]
pub struct StoreMemoryArgs {
    /// Cases written in all.
    #[arg(long, default_value_t = 5_000_000)]
    cases: usize,
    /// Case counts at which memory and disk are measured and the server restarted.
    #[arg(long, value_delimiter = ',', default_value = "1000000,3000000,5000000")]
    at: Vec<usize>,
    /// Cases generated and written at a time.
    #[arg(long, default_value_t = 20_000)]
    stretch: usize,
    /// `GOMEMLIMIT` for the server (e.g. `1536MiB`), as `deploy/` sets it; unset by default.
    #[arg(long)]
    gomemlimit: Option<String>,
    /// Where the server keeps its store (default: a temporary directory, removed afterwards).
    #[arg(long)]
    store_dir: Option<PathBuf>,
    /// Random cases loaded after each restart.
    #[arg(long, default_value_t = 1_000)]
    loads: usize,
    /// Seconds the server is left idle before its held memory is read: past the stream's
    /// 120 s duplicate window (whose message ids the server keeps in memory, and rebuilds
    /// from the last window's messages when it starts: at the bench's write rate, millions
    /// of ids a city never writes in two minutes) and the block caches' expiry.
    #[arg(long, default_value_t = 130)]
    idle: u64,
    /// Compress the stream's blocks with S2 (the engine does not: a compressed block is
    /// decompressed whole to read one message, which slows every cold case load).
    #[arg(long)]
    s2: bool,
}

/// One checkpoint's figures.
struct Checkpoint {
    cases: usize,
    messages: u64,
    subjects: u64,
    stream_bytes: u64,
    disk_bytes: u64,
    rss_after_write: u64,
    peak_while_writing: u64,
    rss_idle: u64,
    recovery: Duration,
    rss_after_restart: u64,
    peak_during_recovery: u64,
    rss_after_loads: u64,
    rss_idle_after_loads: u64,
    load_p50_ms: f64,
    load_p99_ms: f64,
}

pub async fn run(args: StoreMemoryArgs) -> anyhow::Result<()> {
    let mut at = args.at.clone();
    at.retain(|&n| n > 0 && n <= args.cases);
    at.sort_unstable();
    at.dedup();
    if at.last() != Some(&args.cases) {
        at.push(args.cases);
    }
    let temp;
    let store = match &args.store_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("wangge-store-memory-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let mut server = Server::start(&store, args.gomemlimit.as_deref())?;
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(server.url())
        .await?;
    let config = JetStreamLogConfig::default();
    if args.s2 {
        // Compression is chosen when the stream is created: the engine's stream, with S2.
        let mut compressed = config.stream_config();
        compressed.compression = Some(async_nats::jetstream::stream::Compression::S2);
        async_nats::jetstream::new(client.clone())
            .create_stream(compressed)
            .await?;
    }
    let log = JetStreamLog::open(client.clone(), config.clone()).await?;

    let grid = GridDirectory::sample_city();
    let year = chrono::Duration::days(365);
    let spacing =
        chrono::Duration::milliseconds((year.num_milliseconds() / args.cases.max(1) as i64).max(1));
    let mut history = CityHistory::new(&grid, 11, Utc::now() - year, spacing);
    let key = Arc::new(SealKey::generate());
    let mut written_cases: Vec<(CaseId, usize)> = Vec::with_capacity(args.cases);
    let mut checkpoints = Vec::new();
    let mut dice = 0x9e37_79b9_7f4a_7c15_u64;

    print_header(&args);
    let bar = report::progress("store-memory: write", args.cases as u64);
    let mut peak_while_writing = 0;
    for &target in &at {
        while written_cases.len() < target {
            let n = args.stretch.min(target - written_cases.len());
            let commits = history.stretch(n);
            let cases = write_case_by_step(&client, &config, &key, commits).await?;
            written_cases.extend(cases);
            bar.inc(n as u64);
            peak_while_writing = peak_while_writing.max(server.memory()?.rss);
        }
        bar.suspend(|| eprintln!("checkpoint at {target} cases: measuring, then restarting"));
        let info = log_stream_info(&client, &config.stream_name).await?;
        let now = server.memory()?;
        peak_while_writing = peak_while_writing.max(now.peak);
        let disk_bytes = size_on_disk(&store);
        tokio::time::sleep(Duration::from_secs(args.idle)).await;
        let idle = server.memory()?;

        let started = Instant::now();
        server.restart()?;
        // The client reconnects by itself; wait until the stream answers again.
        wait_for_stream(&client, &config.stream_name).await?;
        let recovery = started.elapsed();
        let after_restart = server.memory()?;

        let mut histogram = report::histogram();
        for _ in 0..args.loads {
            dice ^= dice << 13;
            dice ^= dice >> 7;
            dice ^= dice << 17;
            let (case_id, commits) = written_cases[(dice % written_cases.len() as u64) as usize];
            let began = Instant::now();
            let loaded = log.load(case_id).await?;
            report::record(&mut histogram, began.elapsed());
            if loaded.commit_positions.len() != commits {
                bail!(
                    "case {case_id} came back with {} commits, not {commits}",
                    loaded.commit_positions.len()
                );
            }
        }
        let after_loads = server.memory()?;
        tokio::time::sleep(Duration::from_secs(args.idle)).await;
        let idle_after_loads = server.memory()?;
        checkpoints.push(Checkpoint {
            cases: target,
            messages: info.0,
            subjects: info.1,
            stream_bytes: info.2,
            disk_bytes,
            rss_after_write: now.rss,
            peak_while_writing,
            rss_idle: idle.rss,
            recovery,
            rss_after_restart: after_restart.rss,
            peak_during_recovery: after_restart.peak,
            rss_after_loads: after_loads.rss,
            rss_idle_after_loads: idle_after_loads.rss,
            load_p50_ms: report::millis(&histogram, 0.5),
            load_p99_ms: report::millis(&histogram, 0.99),
        });
        bar.suspend(|| print_row(checkpoints.last().expect("just pushed")));
        peak_while_writing = 0;
    }
    bar.finish();
    print_per_case(&checkpoints);
    drop(server);
    Ok(())
}

/// Writes a stretch's commits case step by case step, with the engine's headers; returns
/// each case with its number of commits.
async fn write_case_by_step(
    client: &async_nats::Client,
    config: &JetStreamLogConfig,
    key: &SealKey,
    commits: Vec<StoredCommit>,
) -> anyhow::Result<Vec<(CaseId, usize)>> {
    // Each case's commits in order, cases in order of their first commit.
    let mut order = Vec::new();
    let mut by_case: HashMap<CaseId, Vec<StoredCommit>> = HashMap::new();
    for commit in commits {
        let entry = by_case.entry(commit.case_id).or_default();
        if entry.is_empty() {
            order.push(commit.case_id);
        }
        entry.push(commit);
    }
    struct Written {
        positions: Vec<u64>,
        link: [u8; 32],
    }
    let mut written: HashMap<CaseId, Written> = order
        .iter()
        .map(|&case| {
            (
                case,
                Written {
                    positions: Vec::new(),
                    link: wangge_engine::domain::seal::GENESIS_LINK,
                },
            )
        })
        .collect();
    let steps = by_case.values().map(Vec::len).max().unwrap_or(0);
    let quiet = indicatif::ProgressBar::hidden();
    for step in 0..steps {
        let mut subjects_to_case = HashMap::new();
        let mut messages = Vec::new();
        for case in &order {
            let Some(commit) = by_case[case].get(step) else {
                continue;
            };
            let state = written.get_mut(case).expect("every case is tracked");
            let payload = encode_events(&commit.events);
            let seal = key.seal_commit(*case, &commit.events, &payload, state.link);
            state.link = seal.next_link();
            let expected = state.positions.last().copied().unwrap_or(0);
            let first = commit.events.first().map_or(0, |e| e.sequence);
            let last = commit.events.last().map_or(0, |e| e.sequence);
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("bench-{case}-{step}").as_str(),
            );
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                expected.to_string().as_str(),
            );
            headers.insert(HEADER_CASE_ID, case.to_string().as_str());
            headers.insert(HEADER_FIRST_SEQUENCE, first.to_string().as_str());
            headers.insert(HEADER_LAST_SEQUENCE, last.to_string().as_str());
            headers.insert(HEADER_EVENT_TYPES, event_types(&commit.events).as_str());
            headers.insert(HEADER_SEAL, seal.header_value().as_str());
            headers.insert(HEADER_SEAL_LINK, seal.link_value().as_str());
            let earlier: Vec<String> = state.positions.iter().map(u64::to_string).collect();
            headers.insert(HEADER_EARLIER_POSITIONS, earlier.join(",").as_str());
            let subject = config.case_subject(*case);
            subjects_to_case.insert(subject.clone(), *case);
            messages.push((
                subject,
                PublishMessage::build().headers(headers).payload(payload),
            ));
        }
        for (subject, position) in publish_windowed(client, messages, &quiet).await? {
            let case = subjects_to_case[&subject];
            written
                .get_mut(&case)
                .expect("every case is tracked")
                .positions
                .push(position);
        }
    }
    Ok(order
        .into_iter()
        .map(|case| (case, by_case[&case].len()))
        .collect())
}

/// The stream's messages, subjects and bytes.
async fn log_stream_info(
    client: &async_nats::Client,
    stream: &str,
) -> anyhow::Result<(u64, u64, u64)> {
    let context = async_nats::jetstream::new(client.clone());
    let mut stream = context.get_stream(stream).await?;
    let info = stream.info().await?;
    Ok((
        info.state.messages,
        info.state.subjects_count,
        info.state.bytes,
    ))
}

async fn wait_for_stream(client: &async_nats::Client, stream: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        if log_stream_info(client, stream).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the stream {stream} did not come back within 30 minutes of the restart");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn size_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The bench's own nats-server: a config file in the store directory, stopped gracefully
/// (SIGTERM, as an operator's restart) so recovery reads the index it wrote.
struct Server {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    gomemlimit: Option<String>,
    child: Option<Child>,
}

struct Memory {
    rss: u64,
    peak: u64,
}

impl Server {
    fn start(store: &Path, gomemlimit: Option<&str>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(store)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = store.join("nats.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {:?}\n}}\n",
                store.join("jetstream")
            ),
        )?;
        let mut server = Self {
            binary: wangge_testkit::nats_server_binary(),
            config,
            log: store.join("server.log"),
            port,
            gomemlimit: gomemlimit.map(str::to_owned),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let ready_before = ready_lines(&self.log);
        let mut command = Command::new(&self.binary);
        command
            .arg("-c")
            .arg(&self.config)
            .arg("-l")
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(limit) = &self.gomemlimit {
            command.env("GOMEMLIMIT", limit);
        }
        self.child = Some(
            command
                .spawn()
                .with_context(|| format!("start {}", self.binary.display()))?,
        );
        let deadline = Instant::now() + Duration::from_secs(1800);
        while ready_lines(&self.log) <= ready_before {
            if Instant::now() > deadline {
                bail!("nats-server not ready after 30 minutes");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// SIGTERM, wait for the exit, start again on the same store.
    fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Resident memory now and its peak since the process started (`/proc`, bytes).
    fn memory(&self) -> anyhow::Result<Memory> {
        let pid = self.child.as_ref().context("server not running")?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        Ok(Memory {
            rss: field("VmRSS:"),
            peak: field("VmHWM:"),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ready_lines(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|text| text.matches("Server is ready").count())
        .unwrap_or(0)
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn print_header(args: &StoreMemoryArgs) {
    println!(
        "nats-server {} (pinned), GOMEMLIMIT {}, one event stream{}, a subject per case",
        wangge_testkit::pinned_nats_server_version(),
        args.gomemlimit.as_deref().unwrap_or("unset"),
        if args.s2 { " compressed with S2" } else { "" },
    );
    println!();
    println!("| cases | commits | subjects | stream bytes | disk | RSS after writing (peak) | RSS idle, {} s later | recovery after restart | RSS after restart (peak) | RSS after {} loads, {} s later | load p50 / p99 |", args.idle, args.loads, args.idle);
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
}

fn print_row(c: &Checkpoint) {
    println!(
        "| {} | {} | {} | {} | {} | {} ({}) | {} | {:.1} s | {} ({}) | {}, {} | {:.2} / {:.2} ms |",
        c.cases,
        c.messages,
        c.subjects,
        gib(c.stream_bytes),
        gib(c.disk_bytes),
        gib(c.rss_after_write),
        gib(c.peak_while_writing),
        gib(c.rss_idle),
        c.recovery.as_secs_f64(),
        gib(c.rss_after_restart),
        gib(c.peak_during_recovery),
        gib(c.rss_after_loads),
        gib(c.rss_idle_after_loads),
        c.load_p50_ms,
        c.load_p99_ms,
    );
}

fn print_per_case(checkpoints: &[Checkpoint]) {
    println!();
    for c in checkpoints {
        println!(
            "per case at {}: {:.0} B of disk, {:.0} B resident idle, {:.0} B resident after restart",
            c.cases,
            c.disk_bytes as f64 / c.cases as f64,
            c.rss_idle as f64 / c.cases as f64,
            c.rss_after_restart as f64 / c.cases as f64
        );
    }
}

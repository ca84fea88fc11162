//! `wangge-bench`: benchmarks that print their figures.
//!
//! `wangge-bench commit` measures, in one run against one nats-server:
//! 1. the raw baseline — async-nats JetStream async publish of messages the size of our
//!    commits, to as many distinct subjects, with a window of acks in flight;
//! 2. engine commit throughput for new cases (commands/s, events/s) over N distinct cases;
//! 3. engine commit throughput for updates to existing cases;
//! 4. single-command commit latency (one command at a time, p50/p99), create and update;
//! 5. loading a 20-event case with all N cases in the stream (p50/p99), by the engine's
//!    direct-get walk, beside an ordered consumer per load (the alternative we rejected).
//!
//! `wangge-bench grid` measures the live grid (snapshot, fold, command round trip,
//! catch-up); `dispatch`, `restart` (the dispatcher's start-up) and `timers` their own parts; `catch-up`, `lag` and `api` the read
//! side in PostgreSQL (projection catch-up beside raw inserts, live lag, API latency);
//! `sizes` the read models' bytes per case in PostgreSQL and in memory.
//!
//! The figures are printed as a Markdown table for `benches/RESULTS.md`.

mod api;
mod catchup;
mod commit;
mod dictionary;
mod dispatch;
mod durable;
mod fsync_count;
mod grid;
mod history;
mod intake;
mod lag;
mod report;
mod restart;
mod secure;
mod setup;
mod sizes;
mod store_memory;
mod timers;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc: the engine allocates many small buffers per command on
/// many threads, and profiles showed glibc's allocator as its largest single cost. Wrapped
/// by `stats_alloc` to count live bytes for `sizes` (two atomic adds per allocation,
/// which every bench pays).
#[global_allocator]
static ALLOCATOR: stats_alloc::StatsAlloc<mimalloc::MiMalloc> =
    stats_alloc::StatsAlloc::new(mimalloc::MiMalloc);

#[derive(Debug, Parser)]
#[command(
    name = "wangge-bench",
    about = "Wangge benchmarks; each prints its figures"
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Event-log commit throughput and latency, and case load latency, against raw JetStream.
    Commit(commit::CommitArgs),
    /// Group commit under fsync on every write: the engine against raw durable publishes, a
    /// PostgreSQL reference and its own lazy-fsync rate, at 1, 10 and 512 in flight.
    Durable(durable::DurableArgs),
    /// Counts the fsyncs a nats-server makes for N appends, batched and not (needs strace).
    FsyncCount(fsync_count::FsyncCountArgs),
    /// Dispatch latency: case accepted → task on the worker's subject, at a sustained rate.
    Dispatch(dispatch::DispatchArgs),
    /// Dispatcher restart with a long log: the whole log, and from the dispatcher's snapshot.
    Restart(restart::RestartArgs),
    /// SLA timers: memory for open cases, rebuild time after a restart, breach latency.
    Timers(timers::TimerArgs),
    /// The live grid: snapshot cost, fold cost, grid command round trip, catch-up.
    Grid(grid::GridArgs),
    /// Projection catch-up into PostgreSQL beside a raw multi-row insert of the same rows.
    CatchUp(catchup::CatchUpArgs),
    /// Live projection lag at a sustained event rate.
    Lag(lag::LagArgs),
    /// Dashboard API latency with a million cases in the PostgreSQL read models.
    Api(api::ApiArgs),
    /// Read-model sizes: bytes per case in PostgreSQL (per table and index) and in memory.
    Sizes(sizes::SizesArgs),
    /// Trains the read models' compression dictionary on the folds' own values.
    Dictionary(dictionary::DictionaryArgs),
    /// Intake round trips, open and with NATS accounts and proven senders, in one run.
    Intake(intake::IntakeArgs),
    /// nats-server memory and disk at 1, 3 and 5 million cases, with restarts and case loads.
    StoreMemory(store_memory::StoreMemoryArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Commit(args) => commit::run(args).await,
        Bench::Durable(args) => durable::run(args).await,
        Bench::FsyncCount(args) => fsync_count::run(args).await,
        Bench::Timers(args) => timers::run(args).await,
        Bench::Dispatch(args) => dispatch::run(args).await,
        Bench::Restart(args) => restart::run(args).await,
        Bench::Grid(args) => grid::run(args).await,
        Bench::CatchUp(args) => catchup::run(args).await,
        Bench::Lag(args) => lag::run(args).await,
        Bench::Api(args) => api::run(args).await,
        Bench::Sizes(args) => sizes::run(args).await,
        Bench::Dictionary(args) => dictionary::run(args).await,
        Bench::Intake(args) => intake::run(args).await,
        Bench::StoreMemory(args) => store_memory::run(args).await,
    }
}

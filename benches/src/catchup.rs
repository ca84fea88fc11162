//! Projection catch-up beside a raw PostgreSQL multi-row insert, in one run.
//!
//! 1. A city's history (`--cases` cases, every one of their commits) is written to a real
//!    JetStream event stream on a private nats-server.
//! 2. **Catch-up**: the four projection runners start on an empty read-model database, as
//!    `wangge serve` starts them (one supervisor per projection, advisory locks, batches of
//!    up to 2,000 commits with state reads, folds, `UNNEST` writes and the checkpoint in one
//!    transaction); timed from their start until every checkpoint has reached the log's
//!    head.
//! 3. **Raw baseline**: the rows the projections ended with, every table, read back and
//!    written into a second, empty database of the same schema by plain multi-row
//!    `INSERT … VALUES (…), (…), …` statements of up to 1,000 rows, one connection per
//!    projection as the runners have, nothing read, folded or checked.
//!
//! Both rates are the log's events divided by the wall time; the ratio is the target's.
//! The baseline writes each final row once, where catch-up writes a case's row again in
//! every batch its case changes in, so the comparison favours the baseline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeZone, Utc};
use clap::Args;
use wangge_engine::grid::GridDirectory;
use wangge_engine::log::{EventLog, JetStreamLog, JetStreamLogConfig};
use wangge_projections::postgres::schema::tables_of;
use wangge_projections::postgres::{spawn_runners, ExclusiveRunnerConfig};
use wangge_projections::{FoldContext, PostgresReadModels, ReadModels, PROJECTION_NAMES};

use crate::history::CityHistory;
use crate::report::{self, Row};
use crate::setup::{write_commits, BenchDatabase, Nats};

#[derive(Debug, Args)]
pub struct CatchUpArgs {
    /// Cases in the history (each with every commit of its life so far).
    #[arg(long, default_value_t = 50_000)]
    cases: usize,
    /// Keep the two databases afterwards (to look at the rows).
    #[arg(long)]
    keep_database: bool,
}

/// Rows in one baseline `INSERT` (fewer for wide tables: at most 60,000 parameters).
const BASELINE_ROWS_PER_INSERT: usize = 1_000;

pub async fn run(args: CatchUpArgs) -> anyhow::Result<()> {
    let grid = Arc::new(GridDirectory::sample_city());
    let nats = Nats::start(None).await?;
    let log = JetStreamLog::open(nats.client.clone(), JetStreamLogConfig::default()).await?;

    let start = Utc
        .with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
        .single()
        .expect("a date");
    let mut history = CityHistory::new(&grid, 7, start, chrono::Duration::seconds(20));
    let commits = history.stretch(args.cases);
    let events: usize = commits.iter().map(|c| c.events.len()).sum();
    write_commits(&nats.client, &log, &commits, "catch-up: write the log").await?;
    drop(commits);
    let head = log.head().await?;

    // 2. Catch-up: the runners on an empty database.
    let projected =
        BenchDatabase::fresh(&format!("wangge_bench_catchup_{}", std::process::id())).await?;
    let models = PostgresReadModels::connect(&projected.url(), FoldContext::bundled()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bar = report::progress("catch-up: projections", head);
    let started = Instant::now();
    let runners = spawn_runners(
        models.clone(),
        log.clone(),
        ExclusiveRunnerConfig::default(),
        async {
            stopped.await.ok();
        },
    );
    loop {
        let slowest = slowest_checkpoint(models.as_ref()).await?;
        bar.set_position(slowest);
        if slowest >= head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let catch_up_seconds = started.elapsed().as_secs_f64();
    bar.finish();
    stop.send(()).ok();
    runners.wait().await;
    let catch_up_rate = events as f64 / catch_up_seconds;

    // 3. The same rows by plain multi-row inserts into an empty database of the same schema.
    let baseline =
        BenchDatabase::fresh(&format!("wangge_bench_raw_{}", std::process::id())).await?;
    let baseline_models =
        PostgresReadModels::connect(&baseline.url(), FoldContext::bundled()).await?;
    drop(baseline_models);
    let mut per_projection = Vec::new();
    let source = projected.connect().await?;
    let mut total_rows = 0;
    for projection in PROJECTION_NAMES {
        let mut tables = Vec::new();
        for table in tables_of(projection).unwrap_or(&[]) {
            let rows = TableRows::read(&source, table).await?;
            total_rows += rows.rows.len();
            tables.push(rows);
        }
        per_projection.push(tables);
    }
    let bar = report::progress("catch-up: raw inserts", total_rows as u64);
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for tables in per_projection {
        let (target, bar) = (baseline.connect().await?, bar.clone());
        writers.spawn(async move {
            for table in &tables {
                table.insert_into(&target, &bar).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    let raw_seconds = started.elapsed().as_secs_f64();
    bar.finish();
    let raw_rate = events as f64 / raw_seconds;
    let ratio = catch_up_rate / raw_rate;

    if !args.keep_database {
        drop(models);
        projected.drop_it().await?;
        baseline.drop_it().await?;
    }
    let rows = vec![
        Row::new(
            format!(
                "projection catch-up, all four projections: {} cases, {events} events, {head} commits",
                args.cases
            ),
            format!("{catch_up_rate:.0} events/s ({catch_up_seconds:.2} s)"),
            "",
            None,
        ),
        Row::new(
            format!("raw multi-row INSERT of the same {total_rows} final rows"),
            format!("{raw_rate:.0} events/s ({raw_seconds:.2} s, {:.0} rows/s)", total_rows as f64 / raw_seconds),
            "",
            None,
        ),
        Row::new(
            "catch-up rate / raw insert rate (same run)",
            format!("{:.0} %", ratio * 100.0),
            "≥ 50 %",
            Some(ratio >= 0.5),
        ),
    ];
    println!();
    report::print_table(&rows);
    Ok(())
}

/// The checkpoint of the projection furthest behind.
async fn slowest_checkpoint(models: &PostgresReadModels) -> anyhow::Result<u64> {
    let checkpoints = models.checkpoints().await?;
    Ok(checkpoints.iter().map(|c| c.position).min().unwrap_or(0))
}

/// Every row of one table, each column as text (NULL as `None`).
struct TableRows {
    table: String,
    /// `(name, type)` in column order.
    columns: Vec<(String, String)>,
    rows: Vec<Vec<Option<String>>>,
}

impl TableRows {
    async fn read(client: &tokio_postgres::Client, table: &str) -> anyhow::Result<Self> {
        let columns: Vec<(String, String)> = client
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped \
                 ORDER BY attnum",
                &[&table],
            )
            .await
            .with_context(|| format!("columns of {table}"))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let select = columns
            .iter()
            .map(|(name, _)| format!("{name}::text"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = client
            .query(&format!("SELECT {select} FROM {table}"), &[])
            .await
            .with_context(|| format!("rows of {table}"))?
            .iter()
            .map(|row| (0..columns.len()).map(|i| row.get(i)).collect())
            .collect();
        Ok(Self {
            table: table.to_owned(),
            columns,
            rows,
        })
    }

    /// Multi-row inserts of every row, each statement on its own (autocommit).
    async fn insert_into(
        &self,
        client: &tokio_postgres::Client,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<()> {
        let width = self.columns.len();
        let per_insert = BASELINE_ROWS_PER_INSERT.min(60_000 / width.max(1));
        let names = self
            .columns
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        for chunk in self.rows.chunks(per_insert) {
            let mut sql = format!("INSERT INTO {} ({names}) VALUES ", self.table);
            let mut parameters: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                Vec::with_capacity(chunk.len() * width);
            for (r, row) in chunk.iter().enumerate() {
                sql.push_str(if r == 0 { "(" } else { ", (" });
                for (c, value) in row.iter().enumerate() {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    let ty = &self.columns[c].1;
                    sql.push_str(&format!("${}::text::{ty}", parameters.len() + 1));
                    parameters.push(value);
                }
                sql.push(')');
            }
            client
                .execute(sql.as_str(), &parameters)
                .await
                .with_context(|| format!("insert into {}", self.table))?;
            bar.inc(chunk.len() as u64);
        }
        Ok(())
    }
}

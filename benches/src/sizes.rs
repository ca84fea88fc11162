//! Read-model sizes: bytes per case in PostgreSQL and in the in-memory store.
//!
//! 1. **PostgreSQL**: `--cases` cases of a year of the sample city's history (the same
//!    generator and the same `project_batch` fill as `api`) folded by the four projections
//!    into a private database; after `VACUUM ANALYZE`, every table of the read models with
//!    its heap (`pg_relation_size`), TOAST, indexes (`pg_indexes_size`) and total
//!    (`pg_total_relation_size`), and the total per case.
//! 2. **Memory**: the same history folded into [`MemoryReadModels`]; the bench binary's
//!    counting allocator (`stats_alloc`) gives the bytes still live after the store is built (the history
//!    itself freed) minus those live before, per case; then each projection alone in a store
//!    of its own, to show where the bytes are.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use wangge_engine::grid::GridDirectory;
use wangge_engine::log::{LogPosition, StoredCommit};
use wangge_projections::fold::audit::AuditProjection;
use wangge_projections::fold::cases::CasesProjection;
use wangge_projections::fold::indicators::IndicatorsProjection;
use wangge_projections::fold::patrols::PatrolsProjection;
use wangge_projections::fold::Projection;
use wangge_projections::runner::{project_batch, ProjectionStore};
use wangge_projections::{FoldContext, MemoryReadModels, PostgresReadModels};

use crate::history::CityHistory;
use crate::report::{self, Row};
use crate::setup::BenchDatabase;

#[derive(Debug, Args)]
pub struct SizesArgs {
    /// Cases in the read models.
    #[arg(long, default_value_t = 100_000)]
    cases: usize,
    /// Measure only the in-memory store (no PostgreSQL).
    #[arg(long)]
    memory_only: bool,
    /// Measure only PostgreSQL.
    #[arg(long)]
    postgres_only: bool,
    /// Keep the database (`wangge_bench_sizes_<cases>`) for inspection afterwards.
    #[arg(long)]
    keep_database: bool,
    /// Commits without seal headers (a log written before sealing). By default every
    /// commit carries headers of the engine's shape, as `wangge serve` writes them.
    #[arg(long)]
    unsealed: bool,
    /// Leave vacuuming to autovacuum while filling, as `api --autovacuum-only`.
    #[arg(long)]
    autovacuum_only: bool,
}

/// Targets of issue 11, item 5 (bytes per case).
const POSTGRES_TARGET: f64 = 5_000.0;
const MEMORY_TARGET: f64 = 3_000.0;
/// Cases generated and folded at a time.
const STRETCH: usize = 10_000;

pub async fn run(args: SizesArgs) -> anyhow::Result<()> {
    let grid = Arc::new(GridDirectory::sample_city());
    let mut rows = Vec::new();
    if !args.postgres_only {
        rows.extend(memory(&grid, args.cases, !args.unsealed).await?);
    }
    if !args.memory_only {
        rows.extend(
            postgres(
                &grid,
                args.cases,
                !args.unsealed,
                args.keep_database,
                args.autovacuum_only,
            )
            .await?,
        );
    }
    println!();
    report::print_table(&rows);
    Ok(())
}

async fn memory(grid: &GridDirectory, cases: usize, sealed: bool) -> anyhow::Result<Vec<Row>> {
    let mut rows = vec![memory_of(grid, cases, sealed, "all four projections", Fold::All).await?];
    // Then each projection alone in a store of its own: where the bytes are.
    rows.push(memory_of(grid, cases, sealed, "cases", Fold::One(&CasesProjection)).await?);
    rows.push(memory_of(grid, cases, sealed, "audit", Fold::One(&AuditProjection)).await?);
    rows.push(
        memory_of(
            grid,
            cases,
            sealed,
            "indicators",
            Fold::One(&IndicatorsProjection),
        )
        .await?,
    );
    rows.push(
        memory_of(
            grid,
            cases,
            sealed,
            "patrols",
            Fold::One(&PatrolsProjection),
        )
        .await?,
    );
    Ok(rows)
}

/// What one memory measurement folds.
enum Fold<'a> {
    All,
    One(&'a (dyn FoldOne + Sync)),
}

/// One projection folded into a [`MemoryReadModels`], whichever it is.
trait FoldOne {
    fn fold<'a>(
        &'a self,
        models: &'a MemoryReadModels,
        from: LogPosition,
        commits: &'a [StoredCommit],
    ) -> futures::future::BoxFuture<'a, anyhow::Result<LogPosition>>;
}

impl<P: Projection + Sync> FoldOne for P
where
    MemoryReadModels: ProjectionStore<P>,
{
    fn fold<'a>(
        &'a self,
        models: &'a MemoryReadModels,
        from: LogPosition,
        commits: &'a [StoredCommit],
    ) -> futures::future::BoxFuture<'a, anyhow::Result<LogPosition>> {
        Box::pin(async move { Ok(project_batch(self, models, from, commits).await?) })
    }
}

async fn memory_of(
    grid: &GridDirectory,
    cases: usize,
    sealed: bool,
    label: &str,
    fold: Fold<'_>,
) -> anyhow::Result<Row> {
    let mut history = CityHistory::last_year(grid, cases, sealed);
    let bar = report::progress(&format!("sizes: memory, {label}"), cases as u64);
    let region = stats_alloc::Region::new(&crate::ALLOCATOR);
    let models = MemoryReadModels::new(FoldContext::bundled());
    let mut made = 0;
    let mut position = LogPosition::default();
    while made < cases {
        let count = STRETCH.min(cases - made);
        // The history is dropped before the next measurement: only the store stays live.
        let stretch = history.stretch(count);
        match &fold {
            Fold::All => models.fold_commits(&stretch).await?,
            Fold::One(projection) => {
                position = projection.fold(&models, position, &stretch).await?;
            }
        }
        made += count;
        bar.set_position(made as u64);
    }
    bar.finish();
    // The generator keeps a window of cases still open; measure without it.
    drop(history);
    let change = region.change();
    // A realloc's growth or shrinkage is already in bytes_allocated or bytes_deallocated
    // (bytes_reallocated repeats it).
    let held = change.bytes_allocated as isize - change.bytes_deallocated as isize;
    drop(models);
    let per_case = held as f64 / cases as f64;
    let all = matches!(fold, Fold::All);
    Ok(Row::new(
        format!("in-memory store, {cases} cases, {label}: bytes live after the fill"),
        format!("{:.1} MB, {per_case:.0} B per case", held as f64 / 1e6),
        if all { "≤ 3 kB per case" } else { "" },
        all.then_some(per_case <= MEMORY_TARGET),
    ))
}

async fn postgres(
    grid: &GridDirectory,
    cases: usize,
    sealed: bool,
    keep_database: bool,
    autovacuum_only: bool,
) -> anyhow::Result<Vec<Row>> {
    let database = BenchDatabase::fresh(&format!("wangge_bench_sizes_{cases}")).await?;
    let context = FoldContext::bundled();
    let models = PostgresReadModels::connect(&database.url(), context).await?;
    let vacuum = if autovacuum_only {
        None
    } else {
        Some(database.connect().await?)
    };
    crate::api::fill_with(
        CityHistory::last_year(grid, cases, sealed),
        models.clone(),
        cases,
        "sizes: fill PostgreSQL",
        vacuum,
    )
    .await?;
    drop(models);
    let client = database.connect().await?;
    client
        .batch_execute("VACUUM ANALYZE")
        .await
        .context("vacuum analyze")?;
    let tables = client
        .query(
            "SELECT c.relname::text,
                    pg_relation_size(c.oid),
                    COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0),
                    pg_indexes_size(c.oid),
                    pg_total_relation_size(c.oid),
                    c.reltuples::bigint
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
              ORDER BY pg_total_relation_size(c.oid) DESC",
            &[],
        )
        .await
        .context("table sizes")?;
    let indexes = client
        .query(
            "SELECT i.relname::text, t.relname::text, pg_relation_size(i.oid)
               FROM pg_index x
               JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_class t ON t.oid = x.indrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
              WHERE n.nspname = 'public'
              ORDER BY pg_relation_size(i.oid) DESC",
            &[],
        )
        .await
        .context("index sizes")?;
    if !keep_database {
        database.drop_it().await?;
    }

    let mb = |bytes: i64| bytes as f64 / 1e6;
    let mut rows = Vec::new();
    let mut total = 0_i64;
    for table in &tables {
        let (name, heap, toast, index, all, tuples): (String, i64, i64, i64, i64, i64) = (
            table.get(0),
            table.get(1),
            table.get(2),
            table.get(3),
            table.get(4),
            table.get(5),
        );
        total += all;
        rows.push(Row::new(
            format!("table `{name}` ({tuples} rows)"),
            format!(
                "heap {:.1} MB, TOAST {:.1} MB, indexes {:.1} MB, total {:.1} MB ({:.0} B per case)",
                mb(heap),
                mb(toast),
                mb(index),
                mb(all),
                all as f64 / cases as f64
            ),
            "",
            None,
        ));
    }
    for index in &indexes {
        let (name, table, size): (String, String, i64) = (index.get(0), index.get(1), index.get(2));
        rows.push(Row::new(
            format!("index `{name}` on `{table}`"),
            format!(
                "{:.1} MB ({:.0} B per case)",
                mb(size),
                size as f64 / cases as f64
            ),
            "",
            None,
        ));
    }
    let per_case = total as f64 / cases as f64;
    rows.insert(
        0,
        Row::new(
            format!("PostgreSQL read models, {cases} cases: tables + TOAST + indexes"),
            format!("{:.1} MB, {per_case:.0} B per case", mb(total)),
            "≤ 5 kB per case",
            Some(per_case <= POSTGRES_TARGET),
        ),
    );
    Ok(rows)
}

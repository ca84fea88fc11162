//! Trains the dictionary the read models compress their per-case values with
//! (`projections/src/compact/dictionary-v1.zdict`, issue 11 item 5).
//!
//! The samples are what the stores compress: the final state of every case as the cases,
//! audit and indicators projections keep it, and its whole audit trail (links and hashed
//! text of every entry), folded by the projections' own
//! pure folds from a year of the sample city's history with seal headers of the engine's
//! shape. The history starts on a fixed date with its own seed, so the same release trains
//! the same dictionary, and `sizes` (seed 3) measures cases the dictionary was not trained
//! on. A new dictionary must get a new file and id: values written with the old one keep
//! naming it (`projections/src/compact/mod.rs`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use clap::Args;
use wangge_engine::grid::GridDirectory;
use wangge_projections::compact::trail;
use wangge_projections::fold::audit::{AuditChanges, AuditProjection};
use wangge_projections::fold::cases::{CasesChanges, CasesProjection};
use wangge_projections::fold::indicators::{IndicatorChanges, IndicatorsProjection};
use wangge_projections::fold::Projection;
use wangge_schemas::CaseId;

use crate::history::CityHistory;

#[derive(Debug, Args)]
pub struct DictionaryArgs {
    /// Cases whose values are sampled.
    #[arg(long, default_value_t = 6_000)]
    cases: usize,
    /// The dictionary's size in bytes (zstd's default is 112,640).
    #[arg(long, default_value_t = 112_640)]
    size: usize,
    /// Where the dictionary is written.
    #[arg(long, default_value = "projections/src/compact/dictionary-v1.zdict")]
    out: PathBuf,
}

pub async fn run(args: DictionaryArgs) -> anyhow::Result<()> {
    let grid = GridDirectory::sample_city();
    let start = Utc
        .with_ymd_and_hms(2025, 12, 1, 0, 0, 0)
        .single()
        .context("a fixed start date")?;
    let year = chrono::Duration::days(365);
    let spacing =
        chrono::Duration::milliseconds((year.num_milliseconds() / args.cases.max(1) as i64).max(1));
    let mut history = CityHistory::new(&grid, 11, start, spacing).with_seal_headers();
    let commits = history.stretch(args.cases);

    let mut rows = HashMap::<CaseId, Option<_>>::new();
    let mut heads = HashMap::<CaseId, Option<_>>::new();
    let mut indicators = HashMap::<CaseId, Option<_>>::new();
    let mut samples: Vec<Vec<u8>> = Vec::new();
    let mut trails = HashMap::<CaseId, Vec<_>>::new();
    for commit in &commits {
        let id = commit.case_id;
        CasesProjection.apply(
            rows.entry(id).or_default(),
            commit,
            &mut CasesChanges::default(),
        );
        let mut audit = AuditChanges::default();
        AuditProjection.apply(heads.entry(id).or_default(), commit, &mut audit);
        trails.entry(id).or_default().extend(audit.records);
        IndicatorsProjection.apply(
            indicators.entry(id).or_default(),
            commit,
            &mut IndicatorChanges::default(),
        );
    }
    for records in trails.values() {
        samples.push(trail::whole_text(records));
    }
    for row in rows.values().flatten() {
        samples.push(serde_json::to_vec(row)?);
    }
    for head in heads.values().flatten() {
        // PostgreSQL keeps the summary alone, the memory store the whole head.
        samples.push(serde_json::to_vec(&head.summary)?);
        samples.push(serde_json::to_vec(head)?);
    }
    for case in indicators.values().flatten() {
        samples.push(serde_json::to_vec(case)?);
    }
    let bytes: usize = samples.iter().map(Vec::len).sum();
    println!(
        "dictionary: {} samples, {:.1} MB, from {} cases ({} commits)",
        samples.len(),
        bytes as f64 / 1e6,
        args.cases,
        commits.len()
    );
    let dictionary = zstd::dict::from_samples(&samples, args.size).context("training")?;
    std::fs::write(&args.out, &dictionary)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "dictionary: {} B written to {}",
        dictionary.len(),
        args.out.display()
    );
    Ok(())
}

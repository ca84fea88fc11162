//! Printing figures: progress bars for long phases, latency summaries, the final table.

use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

pub fn progress(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// Latencies in microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = (elapsed.as_micros() as u64).max(1);
    histogram.saturating_record(micros);
}

pub fn millis(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// One row of the results table.
pub struct Row {
    pub measure: String,
    pub figure: String,
    pub target: String,
    pub verdict: String,
}

impl Row {
    pub fn new(
        measure: impl Into<String>,
        figure: impl Into<String>,
        target: impl Into<String>,
        met: Option<bool>,
    ) -> Self {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "",
        };
        Self {
            measure: measure.into(),
            figure: figure.into(),
            target: target.into(),
            verdict: verdict.into(),
        }
    }
}

pub fn print_table(rows: &[Row]) {
    println!("| measure | figure | target | |");
    println!("|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} |",
            row.measure, row.figure, row.target, row.verdict
        );
    }
}

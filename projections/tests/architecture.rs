//! The read side's architecture invariants that a compiler cannot check, checked as text.

use std::path::Path;

use wangge_testkit::purity::{check_purity, IMPURE_WORDS};

#[test]
fn the_projection_folds_perform_no_io_and_read_no_clock() {
    let folds = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fold");
    let report = check_purity(&folds);
    assert!(
        report.files >= 5,
        "expected the fold modules under {}",
        folds.display()
    );
    assert!(
        report.offences.is_empty(),
        "the projection folds must stay pure (none of {IMPURE_WORDS:?}):\n{}",
        report.offences.join("\n")
    );
}

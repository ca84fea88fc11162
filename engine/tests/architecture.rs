//! Architecture invariants that a compiler cannot check, checked as text.

use std::path::Path;

use wangge_testkit::purity::{check_purity, IMPURE_WORDS};

#[test]
fn the_domain_core_performs_no_io_and_reads_no_clock() {
    let domain = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let report = check_purity(&domain);
    assert!(
        report.files >= 3,
        "expected the domain modules under {}",
        domain.display()
    );
    assert!(
        report.offences.is_empty(),
        "the domain core must stay pure (none of {IMPURE_WORDS:?}):\n{}",
        report.offences.join("\n")
    );
}

//! The read side's architecture invariants that a compiler cannot check, checked as text.

use std::path::Path;

/// Words that mean I/O, a clock or randomness. The folds take all of these as values.
const FORBIDDEN_IN_FOLDS: &[&str] = &[
    "tokio",
    "async_nats",
    "postgres",
    "std::fs",
    "std::net",
    "SystemTime",
    "Instant::now",
    "Utc::now",
    "Local::now",
    "now_v7",
    "new_v4",
    "rand::",
    "async fn",
];

#[test]
fn the_projection_folds_perform_no_io_and_read_no_clock() {
    let folds = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fold");
    let mut offences = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&folds).expect("readable folder") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).expect("readable source file");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in FORBIDDEN_IN_FOLDS {
                if code.contains(word) {
                    offences.push(format!(
                        "{}:{}: `{word}` in `{}`",
                        path.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        files >= 5,
        "expected the fold modules under {}",
        folds.display()
    );
    assert!(
        offences.is_empty(),
        "the projection folds must stay pure:\n{}",
        offences.join("\n")
    );
}

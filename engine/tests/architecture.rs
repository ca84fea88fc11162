//! Architecture invariants that a compiler cannot check, checked as text.

use std::path::Path;

/// Words that mean I/O, a clock or randomness. The domain core takes all of these as values.
const FORBIDDEN_IN_DOMAIN: &[&str] = &[
    "tokio",
    "async_nats",
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
    "postgres",
];

#[test]
fn the_domain_core_performs_no_io_and_reads_no_clock() {
    let domain = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let mut offences = Vec::new();
    let mut files = 0;
    for path in rust_files_under(&domain) {
        {
            files += 1;
            let text = std::fs::read_to_string(&path).expect("readable source file");
            for (number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for word in FORBIDDEN_IN_DOMAIN {
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
    }
    assert!(
        files >= 3,
        "expected the domain modules under {}",
        domain.display()
    );
    assert!(
        offences.is_empty(),
        "the domain core must stay pure:\n{}",
        offences.join("\n")
    );
}

/// Every `.rs` file under `dir`, in all its subfolders (`domain/sla/` included).
fn rust_files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("readable folder") {
            let path = entry.expect("readable directory entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

//! The purity check of a pure core (the domain crate's sources), as text: a second line behind
//! the dependency check of `domain/tests/architecture.rs`, which catches what Cargo's feature
//! unification would let through in a workspace build (chrono's `clock`, uuid's `v7`).

use std::path::{Path, PathBuf};

/// Words that mean I/O, a clock or randomness. A pure core takes all of these as values.
pub const IMPURE_WORDS: &[&str] = &[
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

/// What the check found under a folder.
pub struct PurityReport {
    /// The `.rs` files read.
    pub files: usize,
    /// One line per impure word outside a comment: `path:line: `word` in `code``.
    pub offences: Vec<String>,
}

/// Reads every `.rs` file under `dir` (subfolders included) for [`IMPURE_WORDS`].
pub fn check_purity(dir: &Path) -> PurityReport {
    let files = rust_files_under(dir);
    let mut offences = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable source file");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in IMPURE_WORDS {
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
    PurityReport {
        files: files.len(),
        offences,
    }
}

/// Every `.rs` file under `dir`, in all its subfolders, sorted.
fn rust_files_under(dir: &Path) -> Vec<PathBuf> {
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

//! Regenerates `schemas/json/` from the Rust types, or with `--check` reports drift and fails.
//!
//! `cargo run -p wangge-schemas --bin generate-schemas [-- --check]`

use std::path::PathBuf;
use std::process::ExitCode;

use wangge_schemas::generate::{all_schemas, check_all, write_all};

fn main() -> ExitCode {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let mut check_only = false;
    for argument in std::env::args().skip(1) {
        match argument.as_str() {
            "--check" => check_only = true,
            other => {
                eprintln!("unknown argument `{other}`; usage: generate-schemas [--check]");
                return ExitCode::from(2);
            }
        }
    }

    let problems = check_all(&dir);
    if check_only {
        if problems.is_empty() {
            println!("{}: up to date", dir.display());
            return ExitCode::SUCCESS;
        }
        for problem in &problems {
            eprintln!("{problem}");
        }
        eprintln!(
            "{} schema file(s) drifted from the types; regenerate with \
             `cargo run -p wangge-schemas --bin generate-schemas`",
            problems.len()
        );
        return ExitCode::from(1);
    }

    if let Err(error) = write_all(&dir) {
        eprintln!("cannot write schemas to {}: {error}", dir.display());
        return ExitCode::from(1);
    }
    for path in all_schemas().keys() {
        println!("wrote {}", dir.join(path).display());
    }
    for problem in &problems {
        println!("fixed {problem}");
    }
    ExitCode::SUCCESS
}

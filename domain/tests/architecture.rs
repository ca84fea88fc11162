//! The domain crate stays pure because of what it depends on, not because of what it says:
//! its dependency tree (as `cargo tree -p wangge-domain` prints it) holds no runtime, no
//! NATS or PostgreSQL client, no HTTP stack, and neither chrono's `clock` nor uuid's
//! time-and-randomness features, so `Utc::now()` or `Uuid::now_v7()` would not compile here.
//! The text scan of the old purity check is kept as a second line.

use std::path::Path;
use std::process::Command;

use wangge_testkit::purity::{check_purity, IMPURE_WORDS};

/// Crates that mean I/O, a runtime, a clock or randomness.
const FORBIDDEN_CRATES: &[&str] = &[
    "tokio",
    "async-nats",
    "tokio-postgres",
    "postgres-protocol",
    "deadpool-postgres",
    "axum",
    "hyper",
    "reqwest",
    "mio",
    "socket2",
    "getrandom",
    "rand",
    "iana-time-zone",
];

/// `cargo tree` of the domain crate over the given edges, one package per line as
/// `name version features`. Normal and build edges only: what its code can call
/// (dev-dependencies serve its tests).
fn cargo_tree(edges: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(cargo)
        .current_dir(&workspace)
        .args(["tree", "-p", "wangge-domain", "-e", edges])
        .args(["--prefix", "none", "--offline", "--format", "{p} {f}"])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo tree prints UTF-8")
}

#[test]
fn the_domain_crate_depends_on_no_runtime_no_client_and_no_http_stack() {
    let tree = cargo_tree("normal,build");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"wangge-domain"),
        "unexpected tree:\n{tree}"
    );
    let found: Vec<&&str> = FORBIDDEN_CRATES
        .iter()
        .filter(|forbidden| crates.contains(forbidden))
        .collect();
    assert!(
        found.is_empty(),
        "the domain crate must not depend on {found:?}; its tree:\n{tree}"
    );
}

#[test]
fn the_domain_crate_cannot_read_the_clock_or_mint_ids() {
    let tree = cargo_tree("normal,build");
    let mut seen = Vec::new();
    for line in tree.lines() {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default();
        // `name version [(path)] features`: the features are the last word, comma-separated.
        let enabled: Vec<&str> = line
            .split_whitespace()
            .last()
            .map(|list| list.split(',').collect())
            .unwrap_or_default();
        match name {
            "chrono" => assert!(
                !enabled.contains(&"clock") && !enabled.contains(&"now"),
                "chrono with its clock: {line}"
            ),
            "uuid" => assert!(
                ["v1", "v4", "v6", "v7", "fast-rng", "rng"]
                    .iter()
                    .all(|feature| !enabled.contains(feature)),
                "uuid able to mint ids from the clock or randomness: {line}"
            ),
            "wangge-schemas" => assert!(
                !enabled.contains(&"new-ids"),
                "wangge-schemas with `new-ids` (CaseId::new_v7 reads the clock): {line}"
            ),
            _ => continue,
        }
        seen.push(name);
    }
    for expected in ["chrono", "uuid", "wangge-schemas"] {
        assert!(
            seen.contains(&expected),
            "{expected} not in the tree:\n{tree}"
        );
    }
}

#[test]
fn the_domain_sources_name_no_io_clock_or_randomness() {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let report = check_purity(&sources);
    assert!(
        report.files >= 10,
        "expected the domain modules under {}",
        sources.display()
    );
    assert!(
        report.offences.is_empty(),
        "the domain core must stay pure (none of {IMPURE_WORDS:?}):\n{}",
        report.offences.join("\n")
    );
}

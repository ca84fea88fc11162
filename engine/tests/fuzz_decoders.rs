//! Fuzzing the decoders every message from outside goes through: intake messages, worker
//! commands, grid commands, SLA commands, and stored commits (the event decoder with its
//! upcasters). Whatever the bytes, a decoder answers — a value or a refusal with a code and a
//! reason — and never panics, and memory stays bounded.
//!
//! Inputs come from a seeded generator, two ways: byte-level damage (random bytes, flips,
//! cuts, insertions) and structure-aware mutation of the published examples (a value replaced
//! by one of another type, huge or deeply nested, text with control characters and every
//! plane of Unicode, fields removed or added). A failing input is printed with its seed.
//!
//! Size: `WANGGE_FUZZ_CASES` inputs per decoder, 50,000 by default (the size CI runs, a few
//! seconds each in a debug build). The million-input run:
//!
//! ```sh
//! WANGGE_FUZZ_CASES=1000000 cargo test --release -p wangge-engine --test fuzz_decoders -- --nocapture
//! ```
//!
//! `WANGGE_FUZZ_SEED` picks another sequence (default: a fixed seed, so CI is repeatable).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::LazyLock;

use serde_json::{json, Map, Value};
use wangge_engine::grid::{parse_grid_command, CategoryCatalogue, GridDirectory};
use wangge_engine::intake::{check_intake, ClaimedTimeBounds, ReferenceData};
use wangge_engine::log::codec::decode_events;
use wangge_engine::tasks::commands::parse_worker_command;
use wangge_schemas::CaseId;

static GRID: LazyLock<GridDirectory> = LazyLock::new(GridDirectory::sample_city);
static CATEGORIES: LazyLock<CategoryCatalogue> = LazyLock::new(CategoryCatalogue::sample);

/// splitmix64: small, fast and good enough to spread inputs; seeded, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

fn cases() -> usize {
    std::env::var("WANGGE_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50_000)
}

fn seed() -> u64 {
    std::env::var("WANGGE_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5747_2026_1203)
}

fn example(path: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas/examples")
        .join(path);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("an example is JSON")
}

/// Text a sender could put anywhere: ASCII, Chinese, control characters, astral planes,
/// escapes-looking text, sometimes long.
fn text(rng: &mut Rng, long_allowed: bool) -> String {
    const PIECES: &[&str] = &[
        "a",
        "井盖",
        "\u{0}",
        "\u{1b}[2J",
        "\u{7f}",
        "\u{85}",
        "\u{202e}",
        "😀",
        "\\u0000",
        "\"",
        "'",
        "${x}",
        "../",
        "%00",
        " ",
        "\n",
        "\t",
        "330106001001001",
        "-1",
        "1e999",
        "2999-01-01T00:00:00Z",
        "drainage.blocked",
    ];
    let pieces = if long_allowed && rng.chance(20) {
        2_000
    } else {
        rng.below(8)
    };
    (0..pieces)
        .map(|_| PIECES[rng.below(PIECES.len())])
        .collect()
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 7 } else { 10 }) {
        0 => Value::Null,
        1 => json!(rng.chance(2)),
        2 => json!(rng.next() as i64),
        3 => json!(f64::from_bits(rng.next()).is_finite().then_some(1.5e300)),
        4 => json!(u64::MAX),
        5 | 6 => Value::String(text(rng, depth == 0)),
        7 => {
            // Deep nesting: deeper than serde_json's recursion limit now and then.
            let levels = if rng.chance(4) { 300 } else { rng.below(20) };
            let mut value = Value::Null;
            for _ in 0..levels {
                value = Value::Array(vec![value]);
            }
            value
        }
        8 if depth == 0 && rng.chance(10) => {
            // A long list of small items.
            let items = rng.below(5_000);
            Value::Array((0..items).map(|n| json!(n)).collect())
        }
        8 => {
            let items = rng.below(4);
            Value::Array((0..items).map(|_| random_value(rng, depth + 1)).collect())
        }
        _ => {
            let mut object = Map::new();
            for _ in 0..rng.below(5) {
                object.insert(text(rng, false), random_value(rng, depth + 1));
            }
            Value::Object(object)
        }
    }
}

/// Every JSON pointer in `value`, the root included.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers(field, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// The example with a few of its values replaced, removed, or joined by new fields.
fn mutate(rng: &mut Rng, mut value: Value) -> Value {
    for _ in 0..1 + rng.below(3) {
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        let pointer = all[rng.below(all.len())].clone();
        match rng.below(4) {
            0 if !pointer.is_empty() => {
                let (parent, key) = pointer.rsplit_once('/').expect("a parent");
                match value.pointer_mut(parent) {
                    Some(Value::Object(fields)) => {
                        fields.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(items)) if !items.is_empty() => {
                        items.remove(key.parse::<usize>().unwrap_or(0).min(items.len() - 1));
                    }
                    _ => {}
                }
            }
            1 => {
                if let Some(Value::Object(fields)) = value.pointer_mut(&pointer) {
                    fields.insert(text(rng, false), random_value(rng, 0));
                }
            }
            _ => {
                let replacement = random_value(rng, 0);
                if let Some(slot) = value.pointer_mut(&pointer) {
                    *slot = replacement;
                }
            }
        }
    }
    value
}

/// Byte-level damage to `bytes`.
fn damage(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    match rng.below(5) {
        0 => (0..rng.below(4_096)).map(|_| rng.next() as u8).collect(),
        1 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes.truncate(at);
            bytes
        }
        2 if !bytes.is_empty() => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            bytes
        }
        3 => {
            let at = rng.below(bytes.len() + 1);
            let insert: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, insert);
            bytes
        }
        _ => bytes,
    }
}

/// One input for a decoder whose valid messages look like `samples`.
fn input(rng: &mut Rng, samples: &[Value]) -> Vec<u8> {
    let sample = samples[rng.below(samples.len())].clone();
    let value = if rng.chance(8) {
        sample
    } else {
        mutate(rng, sample)
    };
    let mut bytes = serde_json::to_vec(&value).expect("a value serializes");
    // Nothing larger reaches a decoder: NATS's own limit is 1 MiB.
    bytes.truncate(1024 * 1024);
    if rng.chance(3) {
        damage(rng, bytes)
    } else {
        bytes
    }
}

/// Feeds `cases()` inputs to `decode`, which returns whether its answer is well formed.
fn fuzz(name: &str, samples: &[Value], decode: impl Fn(&[u8]) -> bool) {
    let (count, seed) = (cases(), seed());
    let mut rng = Rng(seed
        ^ name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) + u64::from(b)));
    let (mut refused, mut accepted) = (0usize, 0usize);
    for n in 0..count {
        let state = rng.0;
        let bytes = input(&mut rng, samples);
        match catch_unwind(AssertUnwindSafe(|| decode(&bytes))) {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!(
                "{name}: input {n} (seed {seed}, generator state {state}) panicked: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(2_000)])
            ),
        }
    }
    eprintln!("{name}: {count} inputs, {accepted} accepted, {refused} refused, no panic");
    assert_eq!(accepted + refused, count);
    assert!(
        refused > 0,
        "{name}: the generator never produced a bad input"
    );
}

/// Resident memory of this process, from /proc.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn assert_bounded_memory(name: &str) {
    let resident = resident_bytes();
    assert!(
        resident < 1024 * 1024 * 1024,
        "{name}: {resident} bytes resident after fuzzing"
    );
}

#[test]
fn the_intake_decoder_answers_every_input_without_panicking() {
    let samples = [
        example("intake/resident_report.json"),
        example("intake/patrol_finding.json"),
        example("intake/service_request.json"),
        example("intake/evaluation.json"),
    ];
    let now = "2026-03-13T12:00:00Z".parse().expect("a time");
    fuzz("intake", &samples, |bytes| {
        let reference = ReferenceData {
            grid: &GRID,
            categories: &CATEGORIES,
            now,
            clock_bounds: ClaimedTimeBounds::default(),
        };
        match check_intake(None, bytes, reference) {
            Ok(_) => true,
            Err(rejection) => {
                assert!(!rejection.reason.is_empty(), "{rejection:?}");
                false
            }
        }
    });
    assert_bounded_memory("intake");
}

#[test]
fn the_worker_command_decoder_answers_every_input_without_panicking() {
    let case = "0193a4a5-8f3b-7c1d-9e2f-000000000001";
    let samples: Vec<Value> = [
        json!({"type": "acknowledge"}),
        json!({"type": "decline", "reason": "不在本网格"}),
        json!({"type": "request_extension", "working_minutes": 90, "reason": "等配件"}),
        json!({"type": "resolve", "note": "已疏通", "media": [{"kind": "photo", "url": "oss://a.jpg"}]}),
        json!({"type": "suspend", "reason": "awaiting_resident"}),
    ]
    .into_iter()
    .map(|command| {
        json!({
            "schema_version": 1, "message_id": "m-1", "worker_id": "wang-li",
            "case_id": case, "command": command,
        })
    })
    .collect();
    fuzz(
        "worker commands",
        &samples,
        |bytes| match parse_worker_command(bytes) {
            Ok(_) => true,
            Err(rejection) => {
                assert!(!rejection.code.is_empty() && !rejection.reason.is_empty());
                false
            }
        },
    );
    assert_bounded_memory("worker commands");
}

#[test]
fn the_grid_command_decoder_answers_every_input_without_panicking() {
    let samples = [
        example("grid/commands/grid.cell_added.json"),
        example("grid/commands/grid.worker_registered.json"),
        example("grid/commands/grid.worker_duty_changed.json"),
        example("grid/commands/grid.worker_cells_changed.json"),
        example("grid/commands/grid.worker_skills_changed.json"),
    ];
    fuzz(
        "grid commands",
        &samples,
        |bytes| match parse_grid_command(bytes) {
            Ok(_) => true,
            Err(rejection) => {
                assert!(!rejection.reason.is_empty(), "{rejection:?}");
                false
            }
        },
    );
    assert_bounded_memory("grid commands");
}

#[test]
fn the_sla_command_decoder_answers_every_input_without_panicking() {
    let samples = [
        example("sla/commands/sla.calendars_published.json"),
        example("sla/commands/sla.policies_published.json"),
    ];
    fuzz("sla commands", &samples, |bytes| {
        match wangge_engine::domain::sla::commands::parse_sla_command(bytes) {
            Ok(_) => true,
            Err(rejection) => {
                assert!(!rejection.reason.is_empty(), "{rejection:?}");
                false
            }
        }
    });
    assert_bounded_memory("sla commands");
}

#[test]
fn the_event_decoder_answers_every_mutated_stored_commit_without_panicking() {
    let events = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples/events");
    let mut samples = Vec::new();
    for entry in std::fs::read_dir(&events).expect("the event examples") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("an example");
        let event: Value = serde_json::from_str(&text).expect("JSON");
        // A stored commit is an array of envelopes of one case, from sequence 1 here.
        let mut event = event;
        event["sequence"] = json!(1);
        samples.push(Value::Array(vec![event]));
    }
    let case_of = |value: &Value| -> Option<CaseId> {
        serde_json::from_value(value.get(0)?.get("case_id")?.clone()).ok()
    };
    let cases: Vec<CaseId> = samples.iter().filter_map(case_of).collect();
    assert!(!cases.is_empty());
    fuzz("stored events", &samples, |bytes| {
        // Decoded for the case its first envelope names, or another: both must answer.
        let case_id = cases[bytes.len() % cases.len()];
        match decode_events(case_id, bytes) {
            Ok(_) => true,
            Err(reason) => {
                assert!(!reason.is_empty());
                false
            }
        }
    });
    assert_bounded_memory("stored events");
}

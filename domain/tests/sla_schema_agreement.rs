//! The SLA command checks and the committed JSON Schema (`schemas/json/sla/command.json`)
//! agree on shape: a command the schema refuses for its shape is refused by the engine's
//! checks too, and the examples both accept. A sender who validates against the published
//! schema first learns what the engine would say.

use std::path::Path;

use serde_json::{json, Value};
use wangge_domain::sla::parse_sla_command;

fn read(path: &str) -> Value {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    let text = std::fs::read_to_string(&full)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", full.display()));
    serde_json::from_str(&text).expect("valid json")
}

fn schema_accepts(instance: &Value) -> bool {
    let schema = read("schemas/json/sla/command.json");
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the committed schema compiles");
    validator.is_valid(instance)
}

fn checks_accept(instance: &Value) -> bool {
    parse_sla_command(&serde_json::to_vec(instance).expect("serialize")).is_ok()
}

#[test]
fn both_accept_the_examples() {
    for example in [
        "schemas/examples/sla/commands/sla.calendars_published.json",
        "schemas/examples/sla/commands/sla.policies_published.json",
    ] {
        let command = read(example);
        assert!(schema_accepts(&command), "{example}");
        assert!(checks_accept(&command), "{example}");
    }
}

/// What a case does to a valid command to break its shape.
type Edit = fn(&mut Value);

#[test]
fn what_the_schema_refuses_for_its_shape_the_checks_refuse() {
    let calendars = read("schemas/examples/sla/commands/sla.calendars_published.json");
    let policies = read("schemas/examples/sla/commands/sla.policies_published.json");
    let edits: Vec<(&str, Value, Edit)> = vec![
        ("unknown top-level field", calendars.clone(), |c| {
            c["calendars"] = json!([]);
        }),
        ("unknown holiday field", calendars.clone(), |c| {
            c["payload"]["calendars"][0]["holidays"][0]["until"] = json!("2026-01-03");
        }),
        ("interval without leading zero", calendars.clone(), |c| {
            c["payload"]["calendars"][0]["working_hours"]["monday"][0] = json!("8:30-12:00");
        }),
        ("offset beyond the pattern", calendars.clone(), |c| {
            c["payload"]["calendars"][0]["utc_offset"] = json!("+8");
        }),
        ("date that is not a date", calendars.clone(), |c| {
            c["payload"]["calendars"][0]["holidays"][0]["from"] = json!("2026-02-30");
        }),
        ("missing calendars", calendars.clone(), |c| {
            c["payload"] = json!({});
        }),
        ("unknown weekday", calendars, |c| {
            c["payload"]["calendars"][0]["working_hours"]["funday"] = json!([]);
        }),
        ("unknown policy field", policies.clone(), |c| {
            c["payload"]["policies"][0]["clock"] = json!("business");
        }),
        ("unknown step", policies.clone(), |c| {
            c["payload"]["policies"][0]["targets"]["patrol"] = json!({});
        }),
        ("unknown unit", policies.clone(), |c| {
            c["payload"]["policies"][0]["targets"]["resolve"]["all"]["unit"] = json!("fortnights");
        }),
        ("warning share as text", policies, |c| {
            c["payload"]["policies"][0]["warning_percent"] = json!("80");
        }),
    ];
    for (what, mut command, edit) in edits {
        edit(&mut command);
        assert!(!schema_accepts(&command), "the schema accepts {what}");
        assert!(!checks_accept(&command), "the checks accept {what}");
    }
}

//! The committed schemas are exactly what the Rust types generate, and well-formed 2020-12.

use std::collections::BTreeSet;

use serde_json::Value;
use wangge_schemas::generate::{
    all_schemas, check_all, event_schema_path, render, write_all, DRAFT_2020_12, ENVELOPE_PATH,
    ID_BASE,
};
use wangge_schemas::EVENT_CATALOGUE;

use crate::support::{read_json, schema_dir};

const REGENERATE: &str = "regenerate with `cargo run -p wangge-schemas --bin generate-schemas` \
                          and commit the result";

#[test]
fn committed_schemas_match_the_types() {
    let problems = check_all(&schema_dir());
    assert!(
        problems.is_empty(),
        "schemas/json has drifted from the Rust types:\n  {}\n{REGENERATE}",
        problems.join("\n  ")
    );
    for (relative, generated) in all_schemas() {
        let committed = read_json(&schema_dir().join(&relative));
        assert_eq!(
            committed, generated,
            "schemas/json/{relative} is stale; {REGENERATE}"
        );
    }
}

#[test]
fn generation_is_deterministic() {
    let first: Vec<String> = all_schemas().values().map(render).collect();
    let second: Vec<String> = all_schemas().values().map(render).collect();
    assert_eq!(first, second);
    assert!(first.iter().all(|text| text.ends_with("}\n")));
}

#[test]
fn check_all_reports_missing_stale_and_extra_files() {
    let dir = std::env::temp_dir().join(format!("wangge-schemas-drift-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_all(&dir).expect("write schemas to a temporary directory");
    assert_eq!(check_all(&dir), Vec::<String>::new());

    std::fs::remove_file(dir.join("intake/reply.json")).expect("remove a schema");
    std::fs::write(dir.join(ENVELOPE_PATH), "{}\n").expect("overwrite a schema");
    std::fs::write(dir.join("events/case.teleported.v1.json"), "{}\n").expect("add a file");
    let problems = check_all(&dir);
    assert_eq!(
        problems,
        vec![
            "stale: events/envelope.json differs from the generated schema".to_owned(),
            "missing: intake/reply.json".to_owned(),
            "extra: events/case.teleported.v1.json is not generated from any type".to_owned(),
        ]
    );

    // Regenerating repairs all three, including removing the file no type generates.
    write_all(&dir).expect("rewrite schemas");
    assert_eq!(check_all(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn every_schema_is_valid_draft_2020_12_with_a_stable_id() {
    for (relative, schema) in all_schemas() {
        assert_eq!(schema["$schema"], DRAFT_2020_12, "{relative}");
        assert_eq!(schema["$id"], format!("{ID_BASE}{relative}"), "{relative}");
        if let Err(error) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("{relative} is not a valid draft 2020-12 schema: {error}");
        }
    }
}

#[test]
fn every_catalogued_version_has_a_schema() {
    let schemas = all_schemas();
    for &(event_type, current) in EVENT_CATALOGUE {
        // Old versions stay published: stored events keep the version they were written in.
        for version in 1..=current {
            let path = event_schema_path(event_type, version);
            assert!(
                schemas.contains_key(&path),
                "no schema {path} for `{event_type}`"
            );
        }
    }
}

/// The envelope's `oneOf` (how schemars renders the flattened `CaseEvent`) names exactly the
/// catalogue's event types, so per-type schemas and the catalogue cannot disagree.
#[test]
fn envelope_branches_are_the_catalogue() {
    let envelope = &all_schemas()[ENVELOPE_PATH];
    let branches: BTreeSet<&str> = envelope["oneOf"]
        .as_array()
        .expect("the envelope schema has a oneOf")
        .iter()
        .filter_map(|branch| {
            branch
                .pointer("/properties/event_type/const")
                .and_then(Value::as_str)
        })
        .collect();
    let catalogue: BTreeSet<&str> = EVENT_CATALOGUE.iter().map(|(name, _)| *name).collect();
    assert_eq!(branches, catalogue);
    assert_eq!(
        envelope["oneOf"].as_array().map(Vec::len),
        Some(EVENT_CATALOGUE.len())
    );
}

/// A per-type schema keeps every envelope field: it is the envelope narrowed, not a copy.
#[test]
fn per_type_schemas_keep_every_envelope_field() {
    let schemas = all_schemas();
    let envelope = &schemas[ENVELOPE_PATH];
    for &(event_type, version) in EVENT_CATALOGUE {
        let schema = &schemas[&event_schema_path(event_type, version)];
        for (field, definition) in envelope["properties"].as_object().expect("properties") {
            let narrowed = &schema["properties"][field];
            if field == "schema_version" {
                assert_eq!(narrowed["const"], version, "{event_type}");
                continue;
            }
            assert_eq!(
                narrowed, definition,
                "{event_type}: field `{field}` differs"
            );
        }
        assert_eq!(schema["properties"]["event_type"]["const"], event_type);
        let required = schema["required"].as_array().expect("required");
        for field in envelope["required"].as_array().expect("required") {
            assert!(
                required.contains(field),
                "{event_type}: {field} not required"
            );
        }
        for field in ["event_type", "payload"] {
            assert!(
                required.contains(&field.into()),
                "{event_type}: {field} not required"
            );
        }
        assert!(
            schema.get("oneOf").is_none(),
            "{event_type} still has the envelope's oneOf"
        );
    }
}

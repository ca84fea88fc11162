//! The grid's contract: the data shipped under `deploy/grid/` satisfies the published schemas,
//! grid events decode to their own type at their current version, and the category defaults.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use wangge_schemas::generate::{
    all_schemas, CATEGORY_FILE_PATH, GRID_COMMAND_PATH, GRID_ENVELOPE_PATH, GRID_FILE_PATH,
};
use wangge_schemas::grid::{
    decode_grid_event, grid_event_id, Category, CategoryFile, GridCommand, GridEventEnvelope,
    GridEventMeta, GridFile, RoutingRule, GRID_COMMAND_FIELDS, GRID_EVENT_CATALOGUE,
};
use wangge_schemas::{DecodeError, Tier};

use crate::support::{assert_valid, crate_dir, example, read_json, validation_errors, Reader};

fn deployed(file: &str) -> Value {
    read_json(&crate_dir().join("../deploy/grid").join(file))
}

#[test]
fn the_deployed_sample_city_and_catalogue_satisfy_their_schemas() {
    let city = deployed("sample-city.json");
    assert_valid(GRID_FILE_PATH, &city, "deploy/grid/sample-city.json");
    assert_eq!(Reader::GridFile.read(city), Ok(()));

    let categories = deployed("categories.json");
    assert_valid(
        CATEGORY_FILE_PATH,
        &categories,
        "deploy/grid/categories.json",
    );
    assert_eq!(Reader::CategoryFile.read(categories), Ok(()));
}

#[test]
fn grid_event_examples_decode_to_their_own_type_and_round_trip() {
    for &(event_type, version) in GRID_EVENT_CATALOGUE {
        let original = example(&format!("grid/events/{event_type}.json"));
        let envelope = decode_grid_event(original.clone())
            .unwrap_or_else(|error| panic!("{event_type}: {error}"));
        assert_eq!(envelope.event_type(), event_type);
        assert_eq!(envelope.schema_version, version);
        assert_eq!(envelope.event.schema_version(), version);
        let written = serde_json::to_value(&envelope).expect("grid event serializes");
        assert_eq!(
            decode_grid_event(written.clone()).expect("re-decodes"),
            envelope
        );
        assert_eq!(written["payload"], original["payload"], "{event_type}");
    }
}

#[test]
fn grid_envelope_branches_are_the_grid_catalogue() {
    let envelope = &all_schemas()[GRID_ENVELOPE_PATH];
    let branches: BTreeSet<&str> = envelope["oneOf"]
        .as_array()
        .expect("the grid envelope schema has a oneOf")
        .iter()
        .filter_map(|branch| {
            branch
                .pointer("/properties/event_type/const")
                .and_then(Value::as_str)
        })
        .collect();
    let catalogue: BTreeSet<&str> = GRID_EVENT_CATALOGUE.iter().map(|(name, _)| *name).collect();
    assert_eq!(branches, catalogue);
}

#[test]
fn grid_events_of_unknown_types_or_versions_are_refused() {
    let duty = example("grid/events/grid.worker_duty_changed.json");

    let mut unknown = duty.clone();
    unknown["event_type"] = json!("grid.worker_teleported");
    assert_eq!(
        decode_grid_event(unknown),
        Err(DecodeError::UnknownEventType(
            "grid.worker_teleported".into()
        ))
    );

    let mut future = duty.clone();
    future["schema_version"] = json!(2);
    assert!(matches!(
        decode_grid_event(future),
        Err(DecodeError::UnsupportedVersion {
            version: 2,
            current: 1,
            ..
        })
    ));

    let mut typo = duty;
    typo["payload"]["on_dutty"] = json!(true);
    let error = decode_grid_event(typo).expect_err("unknown payload field");
    assert!(error.to_string().contains("on_dutty"), "{error}");
}

#[test]
fn a_category_without_routing_fields_takes_the_documented_defaults() {
    let file: CategoryFile = serde_json::from_value(json!({"categories": [{
        "code": "noise.square_dancing",
        "name": "广场舞噪音 square-dance noise",
        "intake_kinds": ["resident_report"],
        "handling_tier": "community",
        "default_priority": "normal"
    }]}))
    .expect("the pre-routing shape still reads");
    let category: &Category = &file.categories[0];
    assert_eq!(category.routing, RoutingRule::Event);
    assert_eq!(category.owner_tier(), Tier::Community);
    assert_eq!(category.skill(), "noise.square_dancing");
    assert_eq!(category.sla_policy(), "standard");
}

#[test]
fn a_district_without_a_calendar_uses_cn_2026() {
    let mut file = example("grid/grid-file.json");
    file["districts"][0]
        .as_object_mut()
        .expect("district")
        .remove("calendar");
    let grid: GridFile = serde_json::from_value(file).expect("reads");
    assert_eq!(grid.districts[0].calendar, "cn");
}

/// A grid command is the event it asks for: stamped with its derived id and the time it was
/// recorded, it is exactly the stored example of that type.
#[test]
fn each_grid_command_example_becomes_its_stored_event_example() {
    for &(event_type, _) in GRID_EVENT_CATALOGUE {
        let command: GridCommand =
            serde_json::from_value(example(&format!("grid/commands/{event_type}.json")))
                .unwrap_or_else(|error| panic!("{event_type}: {error}"));
        let stored = decode_grid_event(example(&format!("grid/events/{event_type}.json")))
            .expect("the stored example decodes");
        let event_id = grid_event_id(&command.source);
        let envelope = GridEventEnvelope::new(
            event_id,
            command.event.clone(),
            GridEventMeta {
                occurred_at: command.occurred_at.unwrap_or(stored.recorded_at),
                recorded_at: stored.recorded_at,
                actor: command.actor.clone(),
                source: command.source.clone(),
            },
        );
        assert_eq!(envelope, stored, "{event_type}");
        assert_eq!(event_id.get_version_num(), 8, "derived ids are UUIDv8");
    }
}

#[test]
fn a_grid_command_with_a_field_it_does_not_have_fails_its_schema() {
    let mut command = example("grid/commands/grid.worker_duty_changed.json");
    assert!(validation_errors(GRID_COMMAND_PATH, &command).is_empty());
    command["on_duty"] = json!(false);
    assert!(!validation_errors(GRID_COMMAND_PATH, &command).is_empty());
    for field in GRID_COMMAND_FIELDS {
        assert!(
            all_schemas()[GRID_COMMAND_PATH]["properties"]
                .get(field)
                .is_some()
                || ["event_type", "payload"].contains(field),
            "{field} is not in the command's schema"
        );
    }
}

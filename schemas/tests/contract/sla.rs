//! The SLA contract: the files shipped under `deploy/sla/` satisfy their published schemas, a
//! file is a valid payload of its publish event as it is, SLA events decode to their own
//! type at their current version, and each command example becomes its stored event.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use wangge_schemas::generate::{
    all_schemas, SLA_CALENDAR_FILE_PATH, SLA_COMMAND_PATH, SLA_ENVELOPE_PATH, SLA_POLICY_FILE_PATH,
    SLA_REPLY_PATH,
};
use wangge_schemas::sla::{
    decode_sla_event, sla_event_id, CalendarsPublished, PoliciesPublished, SlaCommand,
    SlaEventEnvelope, SlaEventMeta, SlaReply, SLA_COMMAND_FIELDS, SLA_EVENT_CATALOGUE,
};
use wangge_schemas::DecodeError;

use crate::support::{assert_valid, crate_dir, example, read_json, validation_errors, Reader};

fn deployed(file: &str) -> Value {
    read_json(&crate_dir().join("../deploy/sla").join(file))
}

#[test]
fn the_deployed_calendars_and_policies_satisfy_their_schemas() {
    let calendars = deployed("calendars.json");
    assert_valid(
        SLA_CALENDAR_FILE_PATH,
        &calendars,
        "deploy/sla/calendars.json",
    );
    assert_eq!(Reader::CalendarFile.read(calendars), Ok(()));

    let policies = deployed("policies.json");
    assert_valid(SLA_POLICY_FILE_PATH, &policies, "deploy/sla/policies.json");
    assert_eq!(Reader::PolicyFile.read(policies), Ok(()));
}

/// `wangge sla publish FILE` sends a file as the payload of its event: the file formats must
/// stay valid payloads.
#[test]
fn a_calendars_file_and_a_policies_file_are_publish_payloads_as_they_are() {
    let calendars: CalendarsPublished =
        serde_json::from_value(deployed("calendars.json")).expect("a calendars payload");
    assert_eq!(calendars.default_calendar.as_deref(), Some("cn"));
    assert!(calendars.removed.is_empty());
    let policies: PoliciesPublished =
        serde_json::from_value(deployed("policies.json")).expect("a policies payload");
    assert_eq!(policies.default_policy.as_deref(), Some("standard"));

    for (event_type, file) in [
        ("sla.calendars_published", "calendars.json"),
        ("sla.policies_published", "policies.json"),
    ] {
        let command = json!({
            "event_type": event_type,
            "schema_version": 1,
            "source": {"system": "wangge-cli", "message_id": "m-1"},
            "actor": {"kind": "supervisor", "id": "ops-zhang"},
            "payload": deployed(file),
        });
        assert_valid(SLA_COMMAND_PATH, &command, event_type);
        assert_eq!(Reader::SlaCommand.read(command), Ok(()));
    }
}

#[test]
fn sla_event_examples_decode_to_their_own_type_and_round_trip() {
    for &(event_type, version) in SLA_EVENT_CATALOGUE {
        let original = example(&format!("sla/events/{event_type}.json"));
        let envelope = decode_sla_event(original.clone())
            .unwrap_or_else(|error| panic!("{event_type}: {error}"));
        assert_eq!(envelope.event_type(), event_type);
        assert_eq!(envelope.schema_version, version);
        let written = serde_json::to_value(&envelope).expect("sla event serializes");
        assert_eq!(
            decode_sla_event(written.clone()).expect("re-decodes"),
            envelope
        );
        assert_eq!(written["payload"], original["payload"], "{event_type}");
    }
}

#[test]
fn sla_envelope_branches_are_the_sla_catalogue() {
    let envelope = &all_schemas()[SLA_ENVELOPE_PATH];
    let branches: BTreeSet<&str> = envelope["oneOf"]
        .as_array()
        .expect("the sla envelope schema has a oneOf")
        .iter()
        .filter_map(|branch| {
            branch
                .pointer("/properties/event_type/const")
                .and_then(Value::as_str)
        })
        .collect();
    let catalogue: BTreeSet<&str> = SLA_EVENT_CATALOGUE.iter().map(|(name, _)| *name).collect();
    assert_eq!(branches, catalogue);
}

#[test]
fn sla_events_of_unknown_types_or_versions_are_refused() {
    let published = example("sla/events/sla.policies_published.json");

    let mut unknown = published.clone();
    unknown["event_type"] = json!("sla.calendars_burned");
    assert_eq!(
        decode_sla_event(unknown),
        Err(DecodeError::UnknownEventType("sla.calendars_burned".into()))
    );

    let mut future = published.clone();
    future["schema_version"] = json!(2);
    assert!(matches!(
        decode_sla_event(future),
        Err(DecodeError::UnsupportedVersion {
            version: 2,
            current: 1,
            ..
        })
    ));

    let mut typo = published;
    typo["payload"]["policies"][0]["warning_percnt"] = json!(70);
    let error = decode_sla_event(typo).expect_err("unknown payload field");
    assert!(error.to_string().contains("warning_percnt"), "{error}");
}

/// An SLA command is the event it asks for: stamped with its derived id and the time it was
/// recorded, it is exactly the stored example of that type.
#[test]
fn each_sla_command_example_becomes_its_stored_event_example() {
    for &(event_type, _) in SLA_EVENT_CATALOGUE {
        let command: SlaCommand =
            serde_json::from_value(example(&format!("sla/commands/{event_type}.json")))
                .unwrap_or_else(|error| panic!("{event_type}: {error}"));
        let stored = decode_sla_event(example(&format!("sla/events/{event_type}.json")))
            .expect("the stored example decodes");
        let event_id = sla_event_id(&command.source);
        let envelope = SlaEventEnvelope::new(
            event_id,
            command.event.clone(),
            SlaEventMeta {
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
fn the_accepted_reply_example_names_the_calendars_example_event() {
    let reply: SlaReply =
        serde_json::from_value(example("sla/reply_accepted.json")).expect("reply reads");
    let stored = decode_sla_event(example("sla/events/sla.calendars_published.json"))
        .expect("the stored example decodes");
    assert_eq!(
        reply,
        SlaReply::Accepted {
            event_id: stored.event_id,
            event_type: stored.event_type().to_owned(),
            position: 1,
            duplicate: false,
            published: stored.event.published(),
        }
    );
}

/// What the engine refuses for its shape, the committed schema refuses too: a sender who
/// validates against the schema first learns the same.
#[test]
fn an_sla_command_with_a_field_it_does_not_have_fails_its_schema() {
    let command = example("sla/commands/sla.calendars_published.json");
    assert!(validation_errors(SLA_COMMAND_PATH, &command).is_empty());

    let mut top = command.clone();
    top["calendars"] = json!([]);
    assert!(!validation_errors(SLA_COMMAND_PATH, &top).is_empty());

    let mut deep = command.clone();
    deep["payload"]["calendars"][0]["holidays"][2]["until"] = json!("2026-04-06");
    let errors = validation_errors(SLA_COMMAND_PATH, &deep);
    assert!(!errors.is_empty());

    let mut interval = command;
    interval["payload"]["calendars"][0]["working_hours"]["monday"][0] = json!("8:30-12:00");
    assert!(!validation_errors(SLA_COMMAND_PATH, &interval).is_empty());

    for field in SLA_COMMAND_FIELDS {
        assert!(
            all_schemas()[SLA_COMMAND_PATH]["properties"]
                .get(field)
                .is_some()
                || ["event_type", "payload"].contains(field),
            "{field} is not in the command's schema"
        );
    }
}

#[test]
fn a_rejected_reply_names_the_json_path_at_fault() {
    let reply = example("sla/reply_rejected.json");
    assert_valid(SLA_REPLY_PATH, &reply, "sla/reply_rejected.json");
    let reply: SlaReply = serde_json::from_value(reply).expect("reply reads");
    assert!(matches!(
        reply,
        SlaReply::Rejected { field: Some(ref field), .. }
            if field == "payload.calendars[0].make_up_working_days[5].date"
    ));
}

//! Loading old versions: `case.resolved` v1 → v2, and the errors for events we cannot read.

use serde_json::{json, Value};
use wangge_schemas::upcast::{upcast_in_place, UPCASTERS};
use wangge_schemas::{
    current_schema_version, decode_event, decode_event_slice, CaseEvent, CaseResolved, DecodeError,
    MediaKind, MediaRef, EVENT_CATALOGUE,
};

use crate::support::{assert_valid, example};

/// A stored `case.resolved` written by a version 1 publisher, with the given payload.
fn resolved_v1(payload: Value) -> Value {
    let mut event = example("events/case.resolved.v1.json");
    event["payload"] = payload;
    event
}

fn decode_resolved(event: Value) -> CaseResolved {
    let envelope = decode_event(event).expect("version 1 decodes");
    assert_eq!(
        envelope.schema_version, 2,
        "decoded events carry the current version"
    );
    match envelope.event {
        CaseEvent::Resolved(resolved) => resolved,
        other => panic!("expected case.resolved, got {}", other.event_type()),
    }
}

#[test]
fn resolved_v1_photo_url_becomes_a_photo_in_media() {
    let resolved = decode_resolved(resolved_v1(json!({
        "worker_id": "gw-0311",
        "notes": "楼道灯已更换为声控LED灯,测试正常。",
        "photo_url": "https://media.wangge.dev/2024/09/05/ga-resolve-20931.jpg"
    })));
    assert_eq!(
        resolved,
        CaseResolved {
            worker_id: "gw-0311".into(),
            notes: "楼道灯已更换为声控LED灯,测试正常。".into(),
            media: vec![MediaRef {
                kind: MediaKind::Photo,
                url: "https://media.wangge.dev/2024/09/05/ga-resolve-20931.jpg".into(),
                sha256: None,
            }],
        }
    );
}

#[test]
fn resolved_v1_without_photo_url_has_no_media() {
    let without = decode_resolved(resolved_v1(
        json!({"worker_id": "gw-0311", "notes": "已处理"}),
    ));
    assert_eq!(without.media, Vec::new());
    assert_eq!(without.notes, "已处理");

    let null = json!({"worker_id": "gw-0311", "notes": "已处理", "photo_url": null});
    assert_eq!(decode_resolved(resolved_v1(null)).media, Vec::new());
}

#[test]
fn resolved_v1_with_a_malformed_photo_url_is_refused_not_dropped() {
    let event = resolved_v1(json!({"worker_id": "gw-0311", "notes": "已处理", "photo_url": 42}));
    match decode_event(event) {
        Err(DecodeError::Invalid { path, .. }) => assert_eq!(path, "$.payload.photo_url"),
        other => panic!("expected an invalid photo_url, got {other:?}"),
    }
}

/// The upcast JSON satisfies the current schema, not just the Rust type.
#[test]
fn upcast_output_satisfies_the_version_two_schema() {
    let mut event = example("events/case.resolved.v1.json");
    assert_valid(
        "events/case.resolved.v1.json",
        &event,
        "the stored v1 event",
    );
    upcast_in_place(&mut event).expect("upcasts");
    assert_eq!(event["schema_version"], 2);
    assert!(event["payload"].get("photo_url").is_none());
    assert_eq!(event["payload"]["media"][0]["kind"], "photo");
    assert_valid("events/case.resolved.v2.json", &event, "the upcast event");
    assert_valid("events/envelope.json", &event, "the upcast event");
}

#[test]
fn current_versions_pass_through_unchanged() {
    for &(event_type, _) in EVENT_CATALOGUE {
        let original = example(&format!("events/{event_type}.json"));
        let mut upcast = original.clone();
        upcast_in_place(&mut upcast).expect("a current event needs no upcast");
        assert_eq!(
            upcast, original,
            "{event_type} changed although it is current"
        );
    }
}

#[test]
fn every_version_below_current_has_an_upcaster() {
    for &(event_type, current) in EVENT_CATALOGUE {
        for version in 1..current {
            assert!(
                UPCASTERS
                    .iter()
                    .any(|u| u.event_type == event_type && u.from_version == version),
                "no upcaster for {event_type} v{version}"
            );
        }
    }
    for upcaster in UPCASTERS {
        let current = current_schema_version(upcaster.event_type).expect("catalogued type");
        assert!(
            upcaster.from_version < current,
            "{} v{}",
            upcaster.event_type,
            upcaster.from_version
        );
    }
}

#[test]
fn unknown_event_type_is_refused() {
    let mut event = example("events/case.accepted.json");
    event["event_type"] = json!("case.teleported");
    assert_eq!(
        decode_event(event),
        Err(DecodeError::UnknownEventType("case.teleported".into()))
    );
}

#[test]
fn version_zero_is_refused() {
    let mut event = example("events/case.resolved.json");
    event["schema_version"] = json!(0);
    assert_eq!(
        decode_event(event),
        Err(DecodeError::UnsupportedVersion {
            event_type: "case.resolved".into(),
            version: 0,
            current: 2
        })
    );
}

#[test]
fn version_above_current_is_refused() {
    let mut event = example("events/case.resolved.json");
    event["schema_version"] = json!(3);
    assert_eq!(
        decode_event(event),
        Err(DecodeError::UnsupportedVersion {
            event_type: "case.resolved".into(),
            version: 3,
            current: 2
        })
    );

    // Larger than a u16 can hold: still the version error, not a truncated version.
    let mut huge = example("events/case.accepted.json");
    huge["schema_version"] = json!(65_537);
    assert_eq!(
        decode_event(huge),
        Err(DecodeError::UnsupportedVersion {
            event_type: "case.accepted".into(),
            version: 65_537,
            current: 1
        })
    );
}

#[test]
fn missing_schema_version_is_refused() {
    let mut event = example("events/case.resolved.v1.json");
    event
        .as_object_mut()
        .expect("object")
        .remove("schema_version");
    assert_eq!(
        decode_event(event),
        Err(DecodeError::MissingField("schema_version"))
    );
}

#[test]
fn missing_event_type_is_refused() {
    let mut event = example("events/case.accepted.json");
    event.as_object_mut().expect("object").remove("event_type");
    assert_eq!(
        decode_event(event),
        Err(DecodeError::MissingField("event_type"))
    );
}

#[test]
fn non_objects_and_broken_json_are_refused() {
    assert_eq!(
        decode_event(json!(["case.accepted"])),
        Err(DecodeError::NotAnObject)
    );
    assert!(matches!(
        decode_event_slice(b"{\"event_type\":"),
        Err(DecodeError::MalformedJson(_))
    ));
}

#[test]
fn decode_from_bytes_matches_decode_from_value() {
    let event = example("events/case.resolved.v1.json");
    let bytes = serde_json::to_vec(&event).expect("serializes");
    assert_eq!(decode_event_slice(&bytes), decode_event(event));
}

/// A version 1 report's plain contact is kept readable as a legacy contact, and the result
/// satisfies the version 2 schema; a malformed one is refused, not dropped.
#[test]
fn reported_v1_plain_contact_becomes_a_legacy_contact_and_satisfies_version_two() {
    let mut event = example("events/case.reported.v1.json");
    upcast_in_place(&mut event).expect("upcasts");
    let resident = &event["payload"]["details"]["resident"];
    assert!(resident.get("name").is_none() && resident.get("phone").is_none());
    assert_eq!(resident["legacy_contact"]["name"], "王阿姨");
    assert_valid("events/case.reported.v2.json", &event, "the upcast event");

    let mut patrol = example("events/case.reported.v1.json");
    patrol["payload"]["details"] = json!({
        "intake": "patrol_finding", "worker_id": "gw-0311", "patrol_kind": "daily",
        "fixed_on_spot": false
    });
    let before = patrol["payload"].clone();
    upcast_in_place(&mut patrol).expect("a patrol finding upcasts");
    assert_eq!(
        patrol["payload"], before,
        "a patrol finding has no resident to change"
    );

    let mut malformed = example("events/case.reported.v1.json");
    malformed["payload"]["details"]["resident"]["phone"] = json!(13812341234_u64);
    match decode_event(malformed) {
        Err(DecodeError::Invalid { path, .. }) => {
            assert_eq!(path, "$.payload.details.resident.phone")
        }
        other => panic!("expected an invalid phone, got {other:?}"),
    }
}

//! Broken examples fail the schemas (so the validator is not vacuous), and the Rust types
//! refuse the same messages (so schema and types agree on what is required).

use serde_json::{json, Value};
use wangge_schemas::generate::event_schema_path;
use wangge_schemas::EVENT_CATALOGUE;

use crate::support::{example, example_cases, validation_errors, Reader};

/// A value of a JSON type different from `value`'s.
fn wrong_type(value: &Value) -> Value {
    match value {
        Value::String(_) => json!(12345),
        _ => json!("not the right type"),
    }
}

fn required_fields(schema: &Value) -> Vec<String> {
    schema["required"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn committed_schema(relative: &str) -> Value {
    crate::support::read_json(&crate::support::schema_dir().join(relative))
}

#[test]
fn removing_a_required_field_fails_schema_and_types() {
    for case in example_cases() {
        let original = example(&case.example);
        for schema in &case.schemas {
            // Intake replies are a oneOf: their required fields live in the branches.
            let mut required = required_fields(&committed_schema(schema));
            if required.is_empty() {
                required = vec!["status".to_owned()];
            }
            for field in required {
                let mut broken = original.clone();
                let removed = broken
                    .as_object_mut()
                    .and_then(|object| object.remove(&field));
                assert!(
                    removed.is_some(),
                    "{}: example lacks required `{field}`",
                    case.example
                );
                assert!(
                    !validation_errors(schema, &broken).is_empty(),
                    "{} without `{field}` still satisfies {schema}",
                    case.example
                );
                assert!(
                    case.reader.read(broken).is_err(),
                    "{} without `{field}` still reads as {:?}",
                    case.example,
                    case.reader
                );
            }
        }
    }
}

#[test]
fn a_field_of_the_wrong_type_fails_schema_and_types() {
    for case in example_cases() {
        let original = example(&case.example);
        let fields: Vec<String> = original
            .as_object()
            .expect("examples are objects")
            .keys()
            .cloned()
            .collect();
        for field in fields {
            let mut broken = original.clone();
            broken[&field] = wrong_type(&original[&field]);
            for schema in &case.schemas {
                assert!(
                    !validation_errors(schema, &broken).is_empty(),
                    "{} with `{field}` of the wrong type still satisfies {schema}",
                    case.example
                );
            }
            assert!(
                case.reader.read(broken).is_err(),
                "{} with `{field}` of the wrong type still reads",
                case.example
            );
        }
    }
}

/// The payload's own required fields are enforced too, through the `$ref` into `$defs`.
#[test]
fn removing_a_required_payload_field_fails_schema_and_types() {
    for &(event_type, version) in EVENT_CATALOGUE {
        let schema_path = event_schema_path(event_type, version);
        let schema = committed_schema(&schema_path);
        let reference = schema["properties"]["payload"]["$ref"]
            .as_str()
            .expect("payload ref");
        let name = reference.trim_start_matches("#/$defs/");
        let original = example(&format!("events/{event_type}.json"));
        for field in required_fields(&schema["$defs"][name]) {
            let mut broken = original.clone();
            let removed = broken["payload"]
                .as_object_mut()
                .and_then(|p| p.remove(&field));
            assert!(
                removed.is_some(),
                "{event_type} example lacks payload field `{field}`"
            );
            assert!(
                !validation_errors(&schema_path, &broken).is_empty(),
                "{event_type} without payload.{field} still satisfies {schema_path}"
            );
            assert!(
                !validation_errors("events/envelope.json", &broken).is_empty(),
                "{event_type} without payload.{field} still satisfies the envelope"
            );
            assert!(
                Reader::Event.read(broken).is_err(),
                "{event_type} without payload.{field}"
            );
        }
    }
}

#[test]
fn per_type_schemas_refuse_other_types_and_versions() {
    let reported = example("events/case.reported.json");
    let accepted_schema = event_schema_path("case.accepted", 1);
    assert!(!validation_errors(&accepted_schema, &reported).is_empty());

    // A v2 case.resolved is not a v1 one, and a v1 is not a v2, even though the v1 payload
    // would slip through the v2 payload schema (unknown fields are allowed, media defaults).
    let current = example("events/case.resolved.json");
    let old = example("events/case.resolved.v1.json");
    assert!(!validation_errors("events/case.resolved.v1.json", &current).is_empty());
    assert!(!validation_errors("events/case.resolved.v2.json", &old).is_empty());

    // The payload must match the event type, in the envelope as in the per-type schema.
    let mut mismatched = reported.clone();
    mismatched["event_type"] = json!("case.accepted");
    assert!(!validation_errors("events/envelope.json", &mismatched).is_empty());
    assert!(Reader::Event.read(mismatched).is_err());
}

#[test]
fn out_of_range_values_fail_the_schemas() {
    let mut evaluated = example("events/case.evaluated.json");
    evaluated["payload"]["satisfaction"] = json!(6);
    assert!(!validation_errors("events/case.evaluated.v1.json", &evaluated).is_empty());

    let mut first = example("events/case.reported.json");
    first["sequence"] = json!(0);
    assert!(!validation_errors("events/envelope.json", &first).is_empty());

    let mut bad_id = example("events/case.accepted.json");
    bad_id["event_id"] = json!("not-a-uuid");
    assert!(!validation_errors("events/envelope.json", &bad_id).is_empty());
    assert!(Reader::Event.read(bad_id).is_err());

    let mut bad_time = example("events/case.accepted.json");
    bad_time["occurred_at"] = json!("2026-03-12 08:21");
    assert!(!validation_errors("events/envelope.json", &bad_time).is_empty());
    assert!(Reader::Event.read(bad_time).is_err());
}

#[test]
fn intake_limits_and_unknown_fields_fail_schema_and_types() {
    let report = example("intake/resident_report.json");
    let schema = "intake/resident_report.v1.json";

    let mut long_title = report.clone();
    long_title["title"] = json!("下".repeat(101));
    assert!(!validation_errors(schema, &long_title).is_empty());
    let mut just_fits = report.clone();
    just_fits["title"] = json!("下".repeat(100));
    assert!(
        validation_errors(schema, &just_fits).is_empty(),
        "100 characters are allowed"
    );

    let mut typo = report.clone();
    typo["catgory"] = json!("drainage.blocked");
    assert!(!validation_errors(schema, &typo).is_empty());
    assert!(Reader::ResidentReport.read(typo).is_err());

    let mut wrong_kind = report.clone();
    wrong_kind["kind"] = json!("patrol_finding");
    assert!(!validation_errors(schema, &wrong_kind).is_empty());

    let mut version_two = report.clone();
    version_two["schema_version"] = json!(2);
    assert!(!validation_errors(schema, &version_two).is_empty());

    let mut many_photos = report;
    let photo = many_photos["media"][0].clone();
    many_photos["media"] = Value::Array(vec![photo; 11]);
    assert!(!validation_errors(schema, &many_photos).is_empty());

    let mut unknown_status = example("intake/reply_accepted.json");
    unknown_status["status"] = json!("queued");
    assert!(!validation_errors("intake/reply.json", &unknown_status).is_empty());
    assert!(Reader::Reply.read(unknown_status).is_err());
}

#[test]
fn evaluation_scales_limits_and_unknown_fields_fail_schema_and_types() {
    let schema = "intake/evaluation.v1.json";
    let evaluation = example("intake/evaluation.json");
    let refused = |broken: Value, what: &str| {
        assert!(
            !validation_errors(schema, &broken).is_empty(),
            "{what}: still satisfies {schema}"
        );
        let read = Reader::Evaluation.read(broken);
        assert!(read.is_err(), "{what}: still reads");
        read.unwrap_err()
    };
    let accepted = |fine: Value, what: &str| {
        assert!(
            validation_errors(schema, &fine).is_empty(),
            "{what}: fails {schema}"
        );
        assert_eq!(Reader::Evaluation.read(fine), Ok(()), "{what}");
    };

    for level in ["satisfied", "basically_satisfied", "dissatisfied"] {
        let mut fine = evaluation.clone();
        fine["satisfaction"] = json!(level);
        accepted(fine, level);
    }
    for score in 1..=5 {
        let mut fine = evaluation.clone();
        fine["satisfaction"] = json!(score);
        accepted(fine, &format!("score {score}"));
    }
    for (value, words) in [
        (
            json!("very_satisfied"),
            "unknown satisfaction level `very_satisfied`",
        ),
        (json!("满意"), "unknown satisfaction level `满意`"),
        (json!(0), "score 0 is out of range"),
        (json!(6), "score 6 is out of range"),
        (json!(-1), "score -1 is out of range"),
        (json!(4.5), "floating point `4.5`"),
        (json!(true), "boolean `true`"),
    ] {
        let mut broken = evaluation.clone();
        broken["satisfaction"] = value.clone();
        let error = refused(broken, &format!("satisfaction {value}"));
        assert!(error.contains(words), "{value}: {error}");
        assert!(
            error.contains(
                "`satisfied`, `basically_satisfied`, `dissatisfied` or a score from 1 to 5"
            ),
            "{value}: the error names both scales: {error}"
        );
    }

    let mut long_comment = evaluation.clone();
    long_comment["comment"] = json!("好".repeat(2001));
    assert!(!validation_errors(schema, &long_comment).is_empty());
    let mut empty_comment = evaluation.clone();
    empty_comment["comment"] = json!("");
    assert!(!validation_errors(schema, &empty_comment).is_empty());

    let mut typo = evaluation.clone();
    typo["solved"] = json!(true);
    refused(typo, "unknown field");
    let mut nested_typo = evaluation.clone();
    nested_typo["resident"]["phnoe"] = json!("13800000000");
    refused(nested_typo, "unknown resident field");
    let mut not_a_case = evaluation.clone();
    not_a_case["case_id"] = json!("case-42");
    refused(not_a_case, "a case id that is no uuid");
    let mut unknown_channel = evaluation.clone();
    unknown_channel["channel"] = json!("fax");
    refused(unknown_channel, "unknown channel");
    let mut answer_as_text = evaluation.clone();
    answer_as_text["resolved"] = json!("是");
    refused(answer_as_text, "resolved as text");

    let mut wrong_kind = evaluation.clone();
    wrong_kind["kind"] = json!("resident_report");
    assert!(!validation_errors(schema, &wrong_kind).is_empty());
    let mut version_two = evaluation;
    version_two["schema_version"] = json!(2);
    assert!(!validation_errors(schema, &version_two).is_empty());
}

#[test]
fn worker_limits_and_unknown_fields_fail_schema_and_types() {
    let schema = "workers/command.v1.json";
    let refused = |broken: Value, what: &str| {
        assert!(
            !validation_errors(schema, &broken).is_empty(),
            "{what}: still satisfies {schema}"
        );
        assert!(
            Reader::WorkerCommand.read(broken).is_err(),
            "{what}: still reads"
        );
    };

    let decline = example("workers/command_decline.json");
    let mut no_reason = decline.clone();
    no_reason["command"]
        .as_object_mut()
        .expect("command is an object")
        .remove("reason");
    refused(no_reason, "decline without a reason");
    let mut extra = decline.clone();
    extra["command"]["minutes"] = json!(5);
    refused(extra, "unknown command field");
    let mut typo = decline.clone();
    typo["acting_as"] = json!("supervisor");
    refused(typo, "unknown role");
    let mut unknown_type = decline.clone();
    unknown_type["command"]["type"] = json!("refuse");
    refused(unknown_type, "unknown command type");
    let mut version_two = decline.clone();
    version_two["schema_version"] = json!(2);
    assert!(!validation_errors(schema, &version_two).is_empty());
    let mut top_level = decline;
    top_level["urgent"] = json!(true);
    refused(top_level, "unknown top-level field");

    let mut lunch = example("workers/command_suspend.json");
    lunch["command"]["reason"] = json!("lunch");
    refused(lunch, "unknown suspend reason");

    let mut undecided = example("workers/command_verify.json");
    undecided["command"]
        .as_object_mut()
        .expect("command is an object")
        .remove("passed");
    refused(undecided, "verify without `passed`");

    let resolve = example("workers/command_resolve.json");
    let mut many_photos = resolve.clone();
    let photo = many_photos["command"]["media"][0].clone();
    many_photos["command"]["media"] = Value::Array(vec![photo; 11]);
    assert!(!validation_errors(schema, &many_photos).is_empty());
    let mut blank = resolve;
    blank["message_id"] = json!("");
    assert!(!validation_errors(schema, &blank).is_empty());

    let mut unknown_kind = example("workers/task_assigned.json");
    unknown_kind["kind"] = json!("reminder");
    assert!(!validation_errors("workers/task.v1.json", &unknown_kind).is_empty());
    assert!(Reader::Task.read(unknown_kind).is_err());

    let mut unknown_status = example("workers/reply_accepted.json");
    unknown_status["status"] = json!("queued");
    assert!(!validation_errors("workers/reply.json", &unknown_status).is_empty());
    assert!(Reader::WorkerReply.read(unknown_status).is_err());
}

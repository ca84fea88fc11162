//! Every example satisfies its schemas (independent validator) and reads into the Rust types.

use std::collections::BTreeSet;

use serde_json::json;
use serde_json::Value;
use wangge_schemas::envelope::{CaseId, Source};
use wangge_schemas::generate::all_schemas;
use wangge_schemas::intake::Satisfaction;
use wangge_schemas::intake::{EvaluationV1, IntakeReply, ResidentReportV1};
use wangge_schemas::worker::{
    is_valid_worker_id, ActingAs, TaskKind, TaskMessage, WorkerCommand, WorkerCommandV1,
    WorkerReply,
};
use wangge_schemas::{decode_event, CaseEvent, MediaKind, SatisfactionLevel, EVENT_CATALOGUE};

use crate::support::{assert_valid, example, example_cases, example_dir, files_under, Reader};

#[test]
fn every_example_satisfies_its_schemas_and_reads_into_the_types() {
    for case in example_cases() {
        let instance = example(&case.example);
        for schema in &case.schemas {
            assert_valid(schema, &instance, &format!("example {}", case.example));
        }
        if let Err(error) = case.reader.read(instance) {
            panic!(
                "example {} does not read as {:?}: {error}",
                case.example, case.reader
            );
        }
    }
}

#[test]
fn every_schema_is_covered_by_an_example() {
    let covered: BTreeSet<String> = example_cases()
        .into_iter()
        .flat_map(|case| case.schemas)
        .collect();
    let uncovered: Vec<String> = all_schemas()
        .into_keys()
        .filter(|schema| !covered.contains(schema))
        .collect();
    assert!(
        uncovered.is_empty(),
        "schemas without a validating example: {uncovered:?}"
    );
}

#[test]
fn every_example_file_is_checked() {
    let listed: BTreeSet<String> = example_cases()
        .into_iter()
        .map(|case| case.example)
        .collect();
    let on_disk: BTreeSet<String> = files_under(&example_dir()).into_iter().collect();
    assert_eq!(
        on_disk, listed,
        "examples on disk and examples checked differ"
    );
}

#[test]
fn event_examples_decode_to_their_own_type_at_the_current_version() {
    for &(event_type, version) in EVENT_CATALOGUE {
        let envelope = decode_event(example(&format!("events/{event_type}.json")))
            .unwrap_or_else(|error| panic!("{event_type}: {error}"));
        assert_eq!(envelope.event_type(), event_type);
        assert_eq!(envelope.schema_version, version);
        assert_eq!(envelope.event.schema_version(), version);
    }
}

/// Serializing a decoded example gives back the example, up to how timestamps are spelled.
#[test]
fn event_examples_survive_a_round_trip() {
    for &(event_type, _) in EVENT_CATALOGUE {
        let original = example(&format!("events/{event_type}.json"));
        let decoded = decode_event(original.clone()).expect("example decodes");
        let written = serde_json::to_value(&decoded).expect("envelope serializes");
        assert_eq!(decode_event(written.clone()).expect("re-decodes"), decoded);
        let keys = |value: &Value| -> BTreeSet<String> {
            value
                .as_object()
                .map(|object| object.keys().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(
            keys(&written),
            keys(&original),
            "{event_type}: envelope fields differ"
        );
        assert_eq!(
            written["payload"], original["payload"],
            "{event_type}: payload differs"
        );
    }
}

#[test]
fn old_resolved_example_is_upcast_to_version_two() {
    let old = example("events/case.resolved.v1.json");
    let photo_url = old["payload"]["photo_url"]
        .as_str()
        .expect("the example has a photo")
        .to_owned();

    let envelope = decode_event(old).expect("version 1 decodes");
    assert_eq!(envelope.schema_version, 2);
    let CaseEvent::Resolved(resolved) = envelope.event else {
        panic!(
            "expected case.resolved, got {}",
            envelope.event.event_type()
        );
    };
    assert_eq!(resolved.media.len(), 1);
    assert_eq!(resolved.media[0].kind, MediaKind::Photo);
    assert_eq!(resolved.media[0].url, photo_url);
    assert_eq!(resolved.media[0].sha256, None);
}

#[test]
fn old_extension_example_is_upcast_to_version_two_in_working_minutes() {
    let old = example("events/case.extension_granted.v1.json");
    assert_eq!(old["payload"]["extension"]["unit"], "minutes");
    let envelope = decode_event(old).expect("version 1 decodes");
    assert_eq!(envelope.schema_version, 2);
    let CaseEvent::ExtensionGranted(granted) = envelope.event else {
        panic!("expected case.extension_granted");
    };
    assert_eq!(
        granted.extension,
        wangge_schemas::TimeLimit::new(90, wangge_schemas::TimeUnit::WorkingMinutes)
    );
}

/// A report written before contacts were sealed keeps its plain name and phone readable,
/// as a legacy contact that erasure cannot reach; nothing is sealed.
#[test]
fn old_reported_example_is_upcast_with_its_plain_contact_as_legacy() {
    let old = example("events/case.reported.v1.json");
    let name = old["payload"]["details"]["resident"]["name"].clone();
    let envelope = decode_event(old).expect("version 1 decodes");
    assert_eq!(envelope.schema_version, 2);
    let CaseEvent::Reported(reported) = envelope.event else {
        panic!("expected case.reported");
    };
    let resident = reported.details.resident().expect("a resident's report");
    assert_eq!(resident.contact, None);
    let legacy = resident.legacy_contact.as_ref().expect("legacy contact");
    assert_eq!(legacy.name.as_deref(), name.as_str());
    assert_eq!(legacy.phone.as_deref(), Some("138****5621"));
}

/// The current report example holds no plain contact: only the sealed one.
#[test]
fn reported_example_holds_its_contact_sealed_only() {
    let reported = example("events/case.reported.json");
    let resident = &reported["payload"]["details"]["resident"];
    assert!(resident.get("name").is_none() && resident.get("phone").is_none());
    let envelope = decode_event(reported).expect("decodes");
    let CaseEvent::Reported(reported) = envelope.event else {
        panic!("expected case.reported");
    };
    let resident = reported.details.resident().expect("a resident's report");
    assert!(resident.contact.is_some() && resident.legacy_contact.is_none());
}

#[test]
fn a_dispatch_carries_the_acknowledge_clock_the_engine_computed() {
    let dispatched = decode_event(example("events/case.dispatched.json")).expect("decodes");
    let clock = dispatched
        .sla_clock
        .expect("the dispatch records its clock");
    assert_eq!(clock.step, wangge_schemas::SlaStep::Acknowledge);
    assert!(clock.deadline.is_some() && !clock.provisional);
    assert_eq!(clock.calendar.id, "cn");
}

/// The intake example, the reply to it and the case it opened all name the same case: the
/// id derived from the message's source, so a retried report lands on the same case.
#[test]
fn intake_examples_agree_on_the_derived_case_id() {
    let report: ResidentReportV1 =
        serde_json::from_value(example("intake/resident_report.json")).expect("report reads");
    let expected = CaseId::derived_from_source(&report.source);

    let reply: IntakeReply =
        serde_json::from_value(example("intake/reply_accepted.json")).expect("reply reads");
    let IntakeReply::Accepted {
        case_id,
        sequence,
        duplicate,
    } = reply
    else {
        panic!("reply_accepted.json is not an accepted reply");
    };
    assert_eq!((case_id, sequence, duplicate), (expected, 1, false));

    let reported = decode_event(example("events/case.reported.json")).expect("event decodes");
    assert_eq!(reported.case_id, expected);
    assert_eq!(reported.source, report.source);
    assert_eq!(reported.sequence, 1);
    assert_eq!(reported.causation_id, None);
}

/// The evaluation example is the reporting resident's, of the case the report example
/// opened, and the `case.evaluated` example is what it is stored as: the level's score,
/// the level itself, the answer about the problem, the channel, and the message as source.
#[test]
fn evaluation_example_is_stored_as_the_evaluated_example() {
    let report: ResidentReportV1 =
        serde_json::from_value(example("intake/resident_report.json")).expect("report reads");
    let evaluation: EvaluationV1 =
        serde_json::from_value(example("intake/evaluation.json")).expect("evaluation reads");
    assert_eq!(
        evaluation.case_id,
        CaseId::derived_from_source(&report.source)
    );
    assert_eq!(evaluation.resident.id, report.resident.id);

    let stored = decode_event(example("events/case.evaluated.json")).expect("event decodes");
    assert_eq!(stored.case_id, evaluation.case_id);
    assert_eq!(stored.source, evaluation.source);
    assert_eq!(stored.actor.id, evaluation.resident.id);
    assert_eq!(stored.occurred_at, evaluation.evaluated_at);
    let CaseEvent::Evaluated(evaluated) = stored.event else {
        panic!("expected case.evaluated, got {}", stored.event.event_type());
    };
    assert_eq!(evaluated.satisfaction, evaluation.satisfaction.score());
    assert_eq!(evaluated.level, evaluation.satisfaction.level());
    assert_eq!(evaluated.resolved, evaluation.resolved);
    assert_eq!(evaluated.channel, Some(evaluation.channel));
    assert_eq!(evaluated.comment, evaluation.comment);
}

/// 满意 5, 基本满意 4, 不满意 1: the three levels are stored so that the satisfaction rate
/// (4 or more) counts 满意 and 基本满意, as the hotlines do.
#[test]
fn the_three_levels_are_stored_as_five_four_and_one() {
    let scores: Vec<(String, u8)> = SatisfactionLevel::ALL
        .into_iter()
        .map(|level| (level.as_str().to_owned(), level.score()))
        .collect();
    assert_eq!(
        scores,
        [
            ("satisfied".to_owned(), 5),
            ("basically_satisfied".to_owned(), 4),
            ("dissatisfied".to_owned(), 1)
        ]
    );
    for (written, score, level) in [
        (json!("satisfied"), 5, Some(SatisfactionLevel::Satisfied)),
        (
            json!("basically_satisfied"),
            4,
            Some(SatisfactionLevel::BasicallySatisfied),
        ),
        (
            json!("dissatisfied"),
            1,
            Some(SatisfactionLevel::Dissatisfied),
        ),
        (json!(3), 3, None),
        (json!(4.0), 4, None),
    ] {
        let read: Satisfaction = serde_json::from_value(written.clone()).expect("reads");
        assert_eq!((read.score(), read.level()), (score, level), "{written}");
        let back = serde_json::to_value(read).expect("writes");
        assert_eq!(
            back.as_str(),
            written.as_str(),
            "a level is written back as its word"
        );
    }
}

#[test]
fn rejected_reply_example_is_a_rejection() {
    let reply: IntakeReply =
        serde_json::from_value(example("intake/reply_rejected.json")).expect("reply reads");
    assert!(
        matches!(reply, IntakeReply::Rejected { ref field, .. } if field.as_deref() == Some("category"))
    );
    assert_eq!(
        Reader::Reply.read(example("intake/reply_rejected.json")),
        Ok(())
    );
}

#[test]
fn derived_case_ids_are_version_8() {
    let source = Source {
        system: "miniprogram".into(),
        message_id: "mp-20260312-000187".into(),
    };
    let id = CaseId::derived_from_source(&source);
    assert_eq!(id.0.get_version_num(), 8);
    assert_eq!(id, CaseId::derived_from_source(&source.clone()));
}

/// The worker examples tell one story: the task assigned to `w-330106001001001` is the case
/// it acknowledges, the accepted reply follows the dispatch, and the withdrawn task carries
/// the reason of the decline that withdrew it.
#[test]
fn worker_examples_agree_with_each_other() {
    let assigned: TaskMessage =
        serde_json::from_value(example("workers/task_assigned.json")).expect("task reads");
    let acknowledge: WorkerCommandV1 =
        serde_json::from_value(example("workers/command_acknowledge.json")).expect("reads");
    assert_eq!(assigned.kind, TaskKind::Assigned);
    assert_eq!(assigned.worker_id, acknowledge.worker_id);
    assert_eq!(assigned.case_id, acknowledge.case_id);
    assert!(is_valid_worker_id(&assigned.worker_id));

    let reply: WorkerReply =
        serde_json::from_value(example("workers/reply_accepted.json")).expect("reply reads");
    assert_eq!(
        reply,
        WorkerReply::Accepted {
            case_id: acknowledge.case_id,
            sequence: assigned.sequence + 1,
            duplicate: false,
        }
    );

    let decline: WorkerCommandV1 =
        serde_json::from_value(example("workers/command_decline.json")).expect("reads");
    let withdrawn: TaskMessage =
        serde_json::from_value(example("workers/task_withdrawn.json")).expect("task reads");
    let WorkerCommand::Decline { reason } = &decline.command else {
        panic!("command_decline.json is not a decline");
    };
    assert_eq!(withdrawn.kind, TaskKind::Withdrawn);
    assert_eq!(withdrawn.event_type, "case.declined");
    assert_eq!(
        (&withdrawn.worker_id, withdrawn.case_id),
        (&decline.worker_id, decline.case_id)
    );
    assert_eq!(withdrawn.reason, Some(format!("declined: {reason}")));

    let verify: WorkerCommandV1 =
        serde_json::from_value(example("workers/command_verify.json")).expect("reads");
    assert_eq!(verify.acting_as, ActingAs::Resident);
    assert_eq!(verify.case_id, assigned.case_id);
}

#[test]
fn every_worker_command_example_is_of_its_own_type() {
    for name in WorkerCommand::NAMES {
        let message: WorkerCommandV1 =
            serde_json::from_value(example(&format!("workers/command_{name}.json")))
                .unwrap_or_else(|error| panic!("command_{name}.json: {error}"));
        assert_eq!(message.command.name(), name);
    }
    let rejected: WorkerReply =
        serde_json::from_value(example("workers/reply_rejected.json")).expect("reply reads");
    assert!(
        matches!(rejected, WorkerReply::Rejected { ref code, field: None, .. } if code == "not_assignee")
    );
}

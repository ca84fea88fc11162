//! Shared helpers: reading committed files, validating with the independent validator, and
//! the table that pairs every example with the schemas it must satisfy.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use jsonschema::Validator;
use serde_json::Value;
use wangge_schemas::generate::{
    event_schema_path, grid_event_schema_path, sla_event_schema_path, CATEGORY_FILE_PATH,
    ENVELOPE_PATH, GRID_COMMAND_PATH, GRID_ENVELOPE_PATH, GRID_FILE_PATH, GRID_REPLY_PATH,
    SLA_CALENDAR_FILE_PATH, SLA_COMMAND_PATH, SLA_ENVELOPE_PATH, SLA_POLICY_FILE_PATH,
    SLA_REPLY_PATH,
};
use wangge_schemas::grid::{
    decode_grid_event, CategoryFile, GridCommand, GridFile, GridReply, GRID_EVENT_CATALOGUE,
};
use wangge_schemas::intake::{
    EvaluationV1, IntakeReply, PatrolFindingV1, ResidentReportV1, ServiceRequestV1,
};
use wangge_schemas::sla::{
    decode_sla_event, CalendarFile, PolicyFile, SlaCommand, SlaReply, SLA_EVENT_CATALOGUE,
};
use wangge_schemas::worker::{TaskMessage, WorkerCommand, WorkerCommandV1, WorkerReply};
use wangge_schemas::{decode_event, EVENT_CATALOGUE};

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn schema_dir() -> PathBuf {
    crate_dir().join("json")
}

pub fn example_dir() -> PathBuf {
    crate_dir().join("examples")
}

pub fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not valid JSON: {error}", path.display()))
}

/// An example by its path under `schemas/examples/`.
pub fn example(relative: &str) -> Value {
    read_json(&example_dir().join(relative))
}

/// A validator for every committed schema file, built once: draft 2020-12 with `format`
/// asserted, so a malformed UUID or timestamp in an example is an error, not an annotation.
static VALIDATORS: LazyLock<BTreeMap<String, Validator>> = LazyLock::new(|| {
    wangge_schemas::generate::all_schemas()
        .keys()
        .map(|relative| {
            let schema = read_json(&schema_dir().join(relative));
            let validator = jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|error| panic!("schema {relative} does not compile: {error}"));
            (relative.clone(), validator)
        })
        .collect()
});

/// The committed schema at `relative` (under `schemas/json/`), compiled.
pub fn validator(relative: &str) -> &'static Validator {
    VALIDATORS
        .get(relative)
        .unwrap_or_else(|| panic!("no schema {relative}"))
}

/// Every reason `instance` fails the schema at `relative`; empty when it is valid.
pub fn validation_errors(relative: &str, instance: &Value) -> Vec<String> {
    validator(relative)
        .iter_errors(instance)
        .map(|error| format!("at `{}`: {error}", error.instance_path()))
        .collect()
}

pub fn assert_valid(relative: &str, instance: &Value, what: &str) {
    let errors = validation_errors(relative, instance);
    assert!(
        errors.is_empty(),
        "{what} does not satisfy {relative}:\n{}",
        errors.join("\n")
    );
}

/// How an example is read into the Rust types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Event,
    ResidentReport,
    PatrolFinding,
    ServiceRequest,
    Evaluation,
    Reply,
    GridFile,
    CategoryFile,
    GridEvent,
    GridCommand,
    GridReply,
    WorkerCommand,
    WorkerReply,
    Task,
    CalendarFile,
    PolicyFile,
    SlaEvent,
    SlaCommand,
    SlaReply,
}

impl Reader {
    /// Deserializes `value` as this reader's type; the error is the type's own message.
    pub fn read(self, value: Value) -> Result<(), String> {
        fn plain<T: serde::de::DeserializeOwned>(value: Value) -> Result<(), String> {
            serde_json::from_value::<T>(value)
                .map(drop)
                .map_err(|error| error.to_string())
        }
        match self {
            Self::Event => decode_event(value)
                .map(drop)
                .map_err(|error| error.to_string()),
            Self::ResidentReport => plain::<ResidentReportV1>(value),
            Self::PatrolFinding => plain::<PatrolFindingV1>(value),
            Self::ServiceRequest => plain::<ServiceRequestV1>(value),
            Self::Evaluation => plain::<EvaluationV1>(value),
            Self::Reply => plain::<IntakeReply>(value),
            Self::GridFile => plain::<GridFile>(value),
            Self::CategoryFile => plain::<CategoryFile>(value),
            Self::GridEvent => decode_grid_event(value)
                .map(drop)
                .map_err(|error| error.to_string()),
            Self::GridCommand => plain::<GridCommand>(value),
            Self::GridReply => plain::<GridReply>(value),
            Self::WorkerCommand => plain::<WorkerCommandV1>(value),
            Self::WorkerReply => plain::<WorkerReply>(value),
            Self::Task => plain::<TaskMessage>(value),
            Self::CalendarFile => plain::<CalendarFile>(value),
            Self::PolicyFile => plain::<PolicyFile>(value),
            Self::SlaEvent => decode_sla_event(value)
                .map(drop)
                .map_err(|error| error.to_string()),
            Self::SlaCommand => plain::<SlaCommand>(value),
            Self::SlaReply => plain::<SlaReply>(value),
        }
    }
}

/// One example file, the schemas it must satisfy, and how it is read.
#[derive(Debug, Clone)]
pub struct ExampleCase {
    pub example: String,
    pub schemas: Vec<String>,
    pub reader: Reader,
}

/// Every example under `schemas/examples/`, paired with its schemas.
///
/// Current-version events satisfy both the any-type envelope and their per-type schema.
/// The old `case.resolved` example is checked against its own version only: the envelope
/// describes current payloads.
pub fn example_cases() -> Vec<ExampleCase> {
    let mut cases: Vec<ExampleCase> = EVENT_CATALOGUE
        .iter()
        .map(|&(event_type, version)| ExampleCase {
            example: format!("events/{event_type}.json"),
            schemas: vec![
                ENVELOPE_PATH.to_owned(),
                event_schema_path(event_type, version),
            ],
            reader: Reader::Event,
        })
        .collect();
    let mut add = |example: &str, schema: &str, reader: Reader| {
        cases.push(ExampleCase {
            example: example.to_owned(),
            schemas: vec![schema.to_owned()],
            reader,
        });
    };
    add(
        "events/case.resolved.v1.json",
        "events/case.resolved.v1.json",
        Reader::Event,
    );
    add(
        "events/case.extension_granted.v1.json",
        "events/case.extension_granted.v1.json",
        Reader::Event,
    );
    add(
        "events/case.reported.v1.json",
        "events/case.reported.v1.json",
        Reader::Event,
    );
    add(
        "intake/resident_report.json",
        "intake/resident_report.v1.json",
        Reader::ResidentReport,
    );
    add(
        "intake/patrol_finding.json",
        "intake/patrol_finding.v1.json",
        Reader::PatrolFinding,
    );
    add(
        "intake/service_request.json",
        "intake/service_request.v1.json",
        Reader::ServiceRequest,
    );
    add(
        "intake/evaluation.json",
        "intake/evaluation.v1.json",
        Reader::Evaluation,
    );
    add(
        "intake/reply_accepted.json",
        "intake/reply.json",
        Reader::Reply,
    );
    add(
        "intake/reply_rejected.json",
        "intake/reply.json",
        Reader::Reply,
    );
    add("grid/grid-file.json", GRID_FILE_PATH, Reader::GridFile);
    add(
        "grid/categories.json",
        CATEGORY_FILE_PATH,
        Reader::CategoryFile,
    );
    for command in WorkerCommand::NAMES {
        add(
            &format!("workers/command_{command}.json"),
            "workers/command.v1.json",
            Reader::WorkerCommand,
        );
    }
    add(
        "workers/reply_accepted.json",
        "workers/reply.json",
        Reader::WorkerReply,
    );
    add(
        "workers/reply_rejected.json",
        "workers/reply.json",
        Reader::WorkerReply,
    );
    for kind in ["assigned", "withdrawn", "rework_requested", "supervised"] {
        add(
            &format!("workers/task_{kind}.json"),
            "workers/task.v1.json",
            Reader::Task,
        );
    }
    for &(event_type, version) in GRID_EVENT_CATALOGUE {
        cases.push(ExampleCase {
            example: format!("grid/events/{event_type}.json"),
            schemas: vec![
                GRID_ENVELOPE_PATH.to_owned(),
                grid_event_schema_path(event_type, version),
            ],
            reader: Reader::GridEvent,
        });
        cases.push(ExampleCase {
            example: format!("grid/commands/{event_type}.json"),
            schemas: vec![GRID_COMMAND_PATH.to_owned()],
            reader: Reader::GridCommand,
        });
    }
    for status in ["accepted", "rejected"] {
        cases.push(ExampleCase {
            example: format!("grid/reply_{status}.json"),
            schemas: vec![GRID_REPLY_PATH.to_owned()],
            reader: Reader::GridReply,
        });
    }
    add_sla_cases(&mut cases);
    cases
}

/// The SLA files, events, commands and replies under `examples/sla/`.
fn add_sla_cases(cases: &mut Vec<ExampleCase>) {
    let one = |example: &str, schema: &str, reader: Reader| ExampleCase {
        example: example.to_owned(),
        schemas: vec![schema.to_owned()],
        reader,
    };
    cases.push(one(
        "sla/calendars.json",
        SLA_CALENDAR_FILE_PATH,
        Reader::CalendarFile,
    ));
    cases.push(one(
        "sla/policies.json",
        SLA_POLICY_FILE_PATH,
        Reader::PolicyFile,
    ));
    for &(event_type, version) in SLA_EVENT_CATALOGUE {
        cases.push(ExampleCase {
            example: format!("sla/events/{event_type}.json"),
            schemas: vec![
                SLA_ENVELOPE_PATH.to_owned(),
                sla_event_schema_path(event_type, version),
            ],
            reader: Reader::SlaEvent,
        });
        cases.push(one(
            &format!("sla/commands/{event_type}.json"),
            SLA_COMMAND_PATH,
            Reader::SlaCommand,
        ));
    }
    for status in ["accepted", "rejected"] {
        cases.push(one(
            &format!("sla/reply_{status}.json"),
            SLA_REPLY_PATH,
            Reader::SlaReply,
        ));
    }
}

/// Every file below `dir`, as sorted `/`-separated relative paths.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current)
            .unwrap_or_else(|error| panic!("cannot list {}: {error}", current.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).expect("entry below its directory");
            let parts: Vec<String> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(parts.join("/"));
        }
    }
    files.sort();
    files
}

//! JSON Schema generation: derives every committed file under `schemas/json/` from the Rust types.
//!
//! The per-event-type schemas are cut out of the envelope's own schema rather than written
//! by hand, so a field added to [`EventEnvelope`] or to a payload reaches every file at the
//! next regeneration, and the drift test makes sure that regeneration happens.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value};

use crate::envelope::EventEnvelope;
use crate::events::EVENT_CATALOGUE;
use crate::grid::{
    CategoryFile, GridCommand, GridEventEnvelope, GridFile, GridReply, GRID_EVENT_CATALOGUE,
};
use crate::intake::{
    EvaluationV1, IntakeReply, PatrolFindingV1, ResidentReportV1, ServiceRequestV1,
};
use crate::sla::{
    CalendarFile, PolicyFile, SlaCommand, SlaEventEnvelope, SlaReply, SLA_EVENT_CATALOGUE,
};
use crate::upcast::{CaseReportedV1, CaseResolvedV1, ExtensionGrantedV1};
use crate::worker::{TaskMessage, WorkerCommandV1, WorkerReply};

/// The dialect of every generated schema.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Prefix of every schema's `$id`; the rest is the file's path under `schemas/json/`.
pub const ID_BASE: &str = "https://wangge.dev/schemas/";

/// Path of the schema that accepts an event of any type at its current version.
pub const ENVELOPE_PATH: &str = "events/envelope.json";

/// Path, relative to `schemas/json/`, of the schema of one event type at one version.
pub fn event_schema_path(event_type: &str, version: u16) -> String {
    format!("events/{event_type}.v{version}.json")
}

/// Path of the schema of the grid file (`deploy/grid/sample-city.json`).
pub const GRID_FILE_PATH: &str = "grid/grid-file.json";

/// Path of the schema of the category catalogue (`deploy/grid/categories.json`).
pub const CATEGORY_FILE_PATH: &str = "grid/categories.json";

/// Path of the schema that accepts a grid event of any type at its current version.
pub const GRID_ENVELOPE_PATH: &str = "grid/events/envelope.json";

/// Path of the schema of a grid command (what is sent to `wangge.grid.commands`).
pub const GRID_COMMAND_PATH: &str = "grid/command.json";

/// Path of the schema of the engine's reply to a grid command.
pub const GRID_REPLY_PATH: &str = "grid/reply.json";

/// Path, relative to `schemas/json/`, of the schema of one grid event type at one version.
pub fn grid_event_schema_path(event_type: &str, version: u16) -> String {
    format!("grid/events/{event_type}.v{version}.json")
}

/// Path of the schema of a calendars file (`deploy/sla/calendars.json`).
pub const SLA_CALENDAR_FILE_PATH: &str = "sla/calendars.json";

/// Path of the schema of a policies file (`deploy/sla/policies.json`).
pub const SLA_POLICY_FILE_PATH: &str = "sla/policies.json";

/// Path of the schema that accepts an SLA event of any type at its current version.
pub const SLA_ENVELOPE_PATH: &str = "sla/events/envelope.json";

/// Path of the schema of an SLA command (what is sent to `wangge.sla.commands`).
pub const SLA_COMMAND_PATH: &str = "sla/command.json";

/// Path of the schema of the engine's reply to an SLA command.
pub const SLA_REPLY_PATH: &str = "sla/reply.json";

/// Path, relative to `schemas/json/`, of the schema of one SLA event type at one version.
pub fn sla_event_schema_path(event_type: &str, version: u16) -> String {
    format!("sla/events/{event_type}.v{version}.json")
}

/// Every schema, keyed by its path relative to `schemas/json/`.
pub fn all_schemas() -> BTreeMap<String, Value> {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let envelope = generator.root_schema_for::<EventEnvelope>().to_value();
    let legacy = legacy_payloads(&mut generator);
    let definitions = generator.take_definitions(true);

    let mut schemas = BTreeMap::new();
    schemas.insert(
        ENVELOPE_PATH.to_owned(),
        finish(ENVELOPE_PATH, envelope.clone()),
    );

    for &(event_type, version) in EVENT_CATALOGUE {
        let path = event_schema_path(event_type, version);
        let schema = restrict_envelope(&envelope, &definitions, event_type, version, None);
        schemas.insert(path.clone(), finish(&path, schema));
    }
    for (event_type, version, payload) in legacy {
        let path = event_schema_path(event_type, version);
        let schema = restrict_envelope(&envelope, &definitions, event_type, version, Some(payload));
        schemas.insert(path.clone(), finish(&path, schema));
    }

    let intake = [
        (
            "intake/resident_report.v1.json",
            root_schema::<ResidentReportV1>(),
        ),
        (
            "intake/patrol_finding.v1.json",
            root_schema::<PatrolFindingV1>(),
        ),
        (
            "intake/service_request.v1.json",
            root_schema::<ServiceRequestV1>(),
        ),
        ("intake/evaluation.v1.json", root_schema::<EvaluationV1>()),
        ("intake/reply.json", root_schema::<IntakeReply>()),
    ];
    for (path, schema) in intake {
        schemas.insert(path.to_owned(), finish(path, schema));
    }

    let workers = [
        ("workers/command.v1.json", root_schema::<WorkerCommandV1>()),
        ("workers/reply.json", root_schema::<WorkerReply>()),
        ("workers/task.v1.json", root_schema::<TaskMessage>()),
    ];
    for (path, schema) in workers {
        schemas.insert(path.to_owned(), finish(path, schema));
    }
    schemas.extend(grid_schemas());
    schemas.extend(sla_schemas());
    schemas
}

/// The grid file, the category catalogue and the grid events, cut the same way as the case
/// events: one any-type envelope and one narrowed schema per event type.
fn grid_schemas() -> BTreeMap<String, Value> {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let envelope = generator.root_schema_for::<GridEventEnvelope>().to_value();
    let definitions = generator.take_definitions(true);

    let mut schemas = BTreeMap::new();
    schemas.insert(
        GRID_ENVELOPE_PATH.to_owned(),
        finish(GRID_ENVELOPE_PATH, envelope.clone()),
    );
    for &(event_type, version) in GRID_EVENT_CATALOGUE {
        let path = grid_event_schema_path(event_type, version);
        let mut schema = restrict_envelope(&envelope, &definitions, event_type, version, None);
        if let Some(root) = schema.as_object_mut() {
            root.insert(
                "title".to_owned(),
                format!("Wangge grid event {event_type} v{version}").into(),
            );
        }
        schemas.insert(path.clone(), finish(&path, schema));
    }
    for (path, schema) in [
        (GRID_FILE_PATH, root_schema::<GridFile>()),
        (CATEGORY_FILE_PATH, root_schema::<CategoryFile>()),
        (GRID_COMMAND_PATH, root_schema::<GridCommand>()),
        (GRID_REPLY_PATH, root_schema::<GridReply>()),
    ] {
        schemas.insert(path.to_owned(), finish(path, schema));
    }
    schemas
}

/// The SLA files and the SLA events, cut the same way as the grid events.
fn sla_schemas() -> BTreeMap<String, Value> {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let envelope = generator.root_schema_for::<SlaEventEnvelope>().to_value();
    let definitions = generator.take_definitions(true);

    let mut schemas = BTreeMap::new();
    schemas.insert(
        SLA_ENVELOPE_PATH.to_owned(),
        finish(SLA_ENVELOPE_PATH, envelope.clone()),
    );
    for &(event_type, version) in SLA_EVENT_CATALOGUE {
        let path = sla_event_schema_path(event_type, version);
        let mut schema = restrict_envelope(&envelope, &definitions, event_type, version, None);
        if let Some(root) = schema.as_object_mut() {
            root.insert(
                "title".to_owned(),
                format!("Wangge SLA event {event_type} v{version}").into(),
            );
        }
        schemas.insert(path.clone(), finish(&path, schema));
    }
    for (path, schema) in [
        (SLA_CALENDAR_FILE_PATH, root_schema::<CalendarFile>()),
        (SLA_POLICY_FILE_PATH, root_schema::<PolicyFile>()),
        (SLA_COMMAND_PATH, root_schema::<SlaCommand>()),
        (SLA_REPLY_PATH, root_schema::<SlaReply>()),
    ] {
        schemas.insert(path.to_owned(), finish(path, schema));
    }
    schemas
}

/// Payload schemas of superseded event versions, each as `(event_type, version, payload)`.
///
/// Old versions stay published because the log keeps events in the shape they were written
/// in, and readers outside this crate (exports, audits) meet them without our upcasters.
/// Bumping a version in the catalogue means adding the old payload type here.
fn legacy_payloads(generator: &mut SchemaGenerator) -> Vec<(&'static str, u16, Schema)> {
    vec![
        (
            "case.resolved",
            1,
            generator.subschema_for::<CaseResolvedV1>(),
        ),
        (
            "case.extension_granted",
            1,
            generator.subschema_for::<ExtensionGrantedV1>(),
        ),
        (
            "case.reported",
            1,
            generator.subschema_for::<CaseReportedV1>(),
        ),
    ]
}

fn root_schema<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The envelope schema narrowed to one event type at one version.
///
/// schemars renders the flattened, adjacently tagged [`crate::CaseEvent`] as a top-level
/// `oneOf` with one branch per variant, each holding the `event_type` const and the `payload`
/// reference. The branch for `event_type` is merged into the envelope's own `properties` and
/// `required`, `schema_version` gets a const, and `$defs` is pruned to what is still used.
///
/// Panics when the envelope schema does not have that shape: that is a change in schemars
/// or in the types, caught by the tests, never a property of input data.
fn restrict_envelope(
    envelope: &Value,
    definitions: &Map<String, Value>,
    event_type: &str,
    version: u16,
    payload_override: Option<Schema>,
) -> Value {
    let mut schema = envelope.clone();
    let root = schema
        .as_object_mut()
        .expect("the envelope schema is an object");
    let branches = match root.remove("oneOf") {
        Some(Value::Array(branches)) => branches,
        other => panic!("expected the envelope schema to carry a top-level oneOf, got {other:?}"),
    };
    let branch = branches
        .into_iter()
        .find(|branch| branch.pointer("/properties/event_type/const") == Some(&event_type.into()))
        .unwrap_or_else(|| panic!("the envelope schema has no branch for `{event_type}`"));

    let properties = root
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("the envelope schema has properties");
    if let Some(Value::Object(branch_properties)) = branch.get("properties") {
        properties.extend(branch_properties.clone());
    }
    if let Some(payload) = payload_override {
        properties.insert("payload".to_owned(), payload.to_value());
    }
    properties
        .get_mut("schema_version")
        .and_then(Value::as_object_mut)
        .expect("the envelope schema has a schema_version property")
        .insert("const".to_owned(), version.into());

    let required = root
        .get_mut("required")
        .and_then(Value::as_array_mut)
        .expect("the envelope schema lists required fields");
    if let Some(Value::Array(branch_required)) = branch.get("required") {
        required.extend(branch_required.iter().cloned());
    }

    root.insert(
        "title".to_owned(),
        format!("Wangge event {event_type} v{version}").into(),
    );
    root.insert(
        "description".to_owned(),
        format!(
            "The event envelope carrying a `{event_type}` payload at schema version {version}."
        )
        .into(),
    );
    root.remove("$defs");
    let used = reachable_definitions(&schema, definitions);
    let pruned: Map<String, Value> = definitions
        .iter()
        .filter(|(name, _)| used.contains(name.as_str()))
        .map(|(name, definition)| (name.clone(), definition.clone()))
        .collect();
    if !pruned.is_empty() {
        if let Some(root) = schema.as_object_mut() {
            root.insert("$defs".to_owned(), Value::Object(pruned));
        }
    }
    schema
}

/// Names of the definitions that `schema` refers to, directly or through other definitions.
fn reachable_definitions(schema: &Value, definitions: &Map<String, Value>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut pending = Vec::new();
    collect_refs(schema, &mut pending);
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(definition) = definitions.get(&name) {
            collect_refs(definition, &mut pending);
        }
    }
    seen
}

fn collect_refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) => {
                        if let Some(name) = reference.strip_prefix("#/$defs/") {
                            found.push(name.to_owned());
                        }
                    }
                    _ => collect_refs(child, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, found)),
        _ => {}
    }
}

/// Stamps the dialect and a stable `$id`, and sorts every object's keys.
fn finish(path: &str, schema: Value) -> Value {
    let mut schema = schema;
    if let Some(root) = schema.as_object_mut() {
        root.insert("$schema".to_owned(), DRAFT_2020_12.into());
        root.insert("$id".to_owned(), format!("{ID_BASE}{path}").into());
    }
    sort_keys(schema)
}

/// Rebuilds `value` with the keys of every object in sorted order.
///
/// serde_json keeps insertion order when any crate in the build enables its `preserve_order`
/// feature, so sorting here keeps the committed files stable whatever the feature set.
fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let sorted: BTreeMap<String, Value> = object
                .into_iter()
                .map(|(key, child)| (key, sort_keys(child)))
                .collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// The exact text committed for a schema: pretty JSON with a trailing newline.
pub fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a JSON value always serializes");
    text.push('\n');
    text
}

/// Writes every schema under `dir` and removes files that no longer correspond to a schema.
pub fn write_all(dir: &Path) -> io::Result<()> {
    let schemas = all_schemas();
    for (path, schema) in &schemas {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, render(schema))?;
    }
    for existing in files_under(dir)? {
        if !schemas.contains_key(&existing) {
            fs::remove_file(dir.join(&existing))?;
        }
    }
    Ok(())
}

/// Differences between `dir` and the generated schemas: missing, stale or extra files.
///
/// An empty list means the committed files are exactly what [`all_schemas`] renders.
pub fn check_all(dir: &Path) -> Vec<String> {
    let schemas = all_schemas();
    let mut problems = Vec::new();
    for (path, schema) in &schemas {
        match fs::read_to_string(dir.join(path)) {
            Ok(text) if text == render(schema) => {}
            Ok(_) => problems.push(format!("stale: {path} differs from the generated schema")),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                problems.push(format!("missing: {path}"));
            }
            Err(error) => problems.push(format!("unreadable: {path}: {error}")),
        }
    }
    match files_under(dir) {
        Ok(existing) => problems.extend(
            existing
                .into_iter()
                .filter(|path| !schemas.contains_key(path))
                .map(|path| format!("extra: {path} is not generated from any type")),
        ),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => problems.push(format!("unreadable: {}: {error}", dir.display())),
    }
    problems
}

/// Every file below `dir`, as `/`-separated paths relative to it, sorted.
fn files_under(dir: &Path) -> io::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            let parts: Vec<String> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(parts.join("/"));
        }
    }
    files.sort();
    Ok(files)
}

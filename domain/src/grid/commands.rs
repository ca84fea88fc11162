//! Checks a grid command and says exactly what is wrong with it: which field, and why.
//!
//! Pure: bytes in, a [`GridCommand`] or a [`GridRejection`] out ([`parse_grid_command`]),
//! then the command against a grid ([`check_against`]). The checks run from the outside in —
//! size, JSON syntax, top-level fields, event type, schema version, shape, text limits, ids,
//! and last the grid's own rules ([`GridState::apply`] on a copy) — so the first problem a
//! sender has to fix is the one reported.

use wangge_schemas::grid::{
    current_grid_schema_version, CellAdded, DistrictSupervisionChanged, GridCommand, GridEvent,
    WorkerCellsChanged, WorkerDutyChanged, WorkerRegistered, WorkerSkillsChanged,
    GRID_COMMAND_FIELDS, GRID_EVENT_CATALOGUE, MAX_GRID_COMMAND_BYTES, MAX_GRID_ID_CHARS,
    MAX_GRID_LIST_ITEMS, MAX_GRID_NAME_CHARS, MAX_SUPERVISION_LEADERS,
};
use wangge_schemas::worker::is_valid_worker_id;
use wangge_schemas::{Actor, Source};

use super::state::{is_valid_cell_code, GridError, GridState, MAX_CELL_CODE_CHARS};
use crate::command_checks::{
    self, command_object, field_of, occurred_at, read_event_type, read_schema_version, typed_at,
    Refusal,
};

/// Why a grid command was refused, in words a sender's developer can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridRejection {
    /// Stable, machine-readable (part of the reply contract): see [`GRID_REJECT_CODES`].
    pub code: &'static str,
    /// JSON path of the offending field (`payload.worker.cells[1]`); `None` when the
    /// problem is the message as a whole.
    pub field: Option<String>,
    pub reason: String,
}

/// Every code a grid command can be refused with.
pub const GRID_REJECT_CODES: &[&str] = &[
    "payload_too_large",
    "malformed_json",
    "control_character",
    "invalid_type",
    "missing_field",
    "unknown_field",
    "unknown_event_type",
    "unsupported_version",
    "invalid_value",
    "empty_text",
    "text_too_long",
    "too_many_items",
    "invalid_id",
    "duplicate_cell",
    "unknown_cell",
    "wrong_parent_tier",
    "code_not_under_parent",
    "duplicate_worker",
    "unknown_worker",
    "repeated_cell",
    "invalid_skill",
    "contended",
    "unavailable",
    // The sender, as NATS proved it, may not send this command.
    "unauthenticated",
    "forbidden",
    "identity_mismatch",
];

impl GridRejection {
    fn new(code: &'static str, field: Option<&str>, reason: impl Into<String>) -> Self {
        debug_assert!(GRID_REJECT_CODES.contains(&code), "{code} is listed");
        Self {
            code,
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }

    fn at(code: &'static str, field: &str, reason: impl Into<String>) -> Self {
        Self::new(code, Some(field), reason)
    }
}

impl From<Refusal> for GridRejection {
    fn from(refusal: Refusal) -> Self {
        debug_assert!(GRID_REJECT_CODES.contains(&refusal.code), "{refusal:?}");
        Self {
            code: refusal.code,
            field: refusal.field,
            reason: refusal.reason,
        }
    }
}

/// Parses one grid command and checks everything that does not depend on the grid.
pub fn parse_grid_command(bytes: &[u8]) -> Result<GridCommand, GridRejection> {
    let mut object = command_object(bytes, MAX_GRID_COMMAND_BYTES, GRID_COMMAND_FIELDS)?;
    let event_type = read_event_type(object.get("event_type"), GRID_EVENT_CATALOGUE, "grid")?;
    let current = current_grid_schema_version(event_type)
        .expect("read_event_type lets only catalogued types through");
    read_schema_version(event_type, current, object.get("schema_version"))?;
    let source: Source = field_of(&mut object, "source")?;
    let actor: Actor = field_of(&mut object, "actor")?;
    let occurred_at = occurred_at(&mut object)?;
    let payload = object.remove("payload").ok_or_else(|| {
        GridRejection::at("missing_field", "payload", "field `payload` is required")
    })?;
    let event = match event_type {
        "grid.cell_added" => GridEvent::CellAdded(typed_at::<CellAdded>("payload", payload)?),
        "grid.worker_registered" => {
            GridEvent::WorkerRegistered(typed_at::<WorkerRegistered>("payload", payload)?)
        }
        "grid.worker_duty_changed" => {
            GridEvent::WorkerDutyChanged(typed_at::<WorkerDutyChanged>("payload", payload)?)
        }
        "grid.worker_skills_changed" => {
            GridEvent::WorkerSkillsChanged(typed_at::<WorkerSkillsChanged>("payload", payload)?)
        }
        "grid.worker_cells_changed" => {
            GridEvent::WorkerCellsChanged(typed_at::<WorkerCellsChanged>("payload", payload)?)
        }
        "grid.district_supervision_changed" => {
            GridEvent::DistrictSupervisionChanged(typed_at::<DistrictSupervisionChanged>(
                "payload", payload,
            )?)
        }
        other => unreachable!("read_event_type lets only catalogued types through, not {other}"),
    };
    let command = GridCommand {
        schema_version: event.schema_version(),
        event,
        source,
        actor,
        occurred_at,
    };
    check_limits(&command)?;
    Ok(command)
}

// ---------------------------------------------------------------------------------------
// Limits and ids
// ---------------------------------------------------------------------------------------

fn check_text(
    field: &str,
    text: &str,
    max_chars: usize,
    required: bool,
) -> Result<(), GridRejection> {
    Ok(command_checks::check_text(
        field, text, max_chars, required,
    )?)
}

fn check_person_id(field: &str, id: &str) -> Result<(), GridRejection> {
    check_text(field, id, MAX_GRID_ID_CHARS, true)?;
    if is_valid_worker_id(id) {
        return Ok(());
    }
    Err(GridRejection::at(
        "invalid_id",
        field,
        format!("`{id}` is not a valid person id: 1 to 64 ASCII letters, digits, `-` or `_` (it names the person's task inbox)"),
    ))
}

fn check_cell_code(field: &str, code: &str) -> Result<(), GridRejection> {
    check_text(field, code, MAX_GRID_ID_CHARS, true)?;
    if is_valid_cell_code(code) {
        return Ok(());
    }
    Err(GridRejection::at(
        "invalid_id",
        field,
        format!("`{code}` is not a valid cell code: 1 to {MAX_CELL_CODE_CHARS} ASCII letters or digits, e.g. 330106001001001"),
    ))
}

fn check_list(field: &str, len: usize) -> Result<(), GridRejection> {
    Ok(command_checks::check_list(field, len, MAX_GRID_LIST_ITEMS)?)
}

fn check_cells(field: &str, cells: &[String]) -> Result<(), GridRejection> {
    check_list(field, cells.len())?;
    for (index, cell) in cells.iter().enumerate() {
        check_cell_code(&format!("{field}[{index}]"), cell)?;
    }
    Ok(())
}

fn check_limits(command: &GridCommand) -> Result<(), GridRejection> {
    check_text(
        "source.system",
        &command.source.system,
        MAX_GRID_ID_CHARS,
        true,
    )?;
    check_text(
        "source.message_id",
        &command.source.message_id,
        MAX_GRID_ID_CHARS,
        true,
    )?;
    check_text("actor.id", &command.actor.id, MAX_GRID_ID_CHARS, true)?;
    match &command.event {
        GridEvent::CellAdded(added) => {
            check_cell_code("payload.code", &added.code)?;
            check_text("payload.name", &added.name, MAX_GRID_NAME_CHARS, true)?;
            if let Some(parent) = &added.parent {
                check_cell_code("payload.parent", parent)?;
            }
            check_person_id("payload.supervisor", &added.supervisor)?;
            if let Some(calendar) = &added.calendar {
                check_text("payload.calendar", calendar, MAX_GRID_ID_CHARS, true)?;
            }
            Ok(())
        }
        GridEvent::WorkerRegistered(WorkerRegistered { worker }) => {
            check_person_id("payload.worker.id", &worker.id)?;
            check_text(
                "payload.worker.name",
                &worker.name,
                MAX_GRID_NAME_CHARS,
                true,
            )?;
            if let Some(department) = &worker.department {
                check_text(
                    "payload.worker.department",
                    department,
                    MAX_GRID_NAME_CHARS,
                    false,
                )?;
            }
            check_cells("payload.worker.cells", &worker.cells)?;
            check_list("payload.worker.skills", worker.skills.len())
        }
        GridEvent::WorkerDutyChanged(changed) => {
            check_person_id("payload.worker_id", &changed.worker_id)
        }
        GridEvent::WorkerSkillsChanged(changed) => {
            check_person_id("payload.worker_id", &changed.worker_id)?;
            check_list("payload.skills", changed.skills.len())
        }
        GridEvent::WorkerCellsChanged(changed) => {
            check_person_id("payload.worker_id", &changed.worker_id)?;
            check_cells("payload.cells", &changed.cells)
        }
        GridEvent::DistrictSupervisionChanged(changed) => {
            check_cell_code("payload.district", &changed.district)?;
            let supervision = &changed.supervision;
            check_text(
                "payload.supervision.unit",
                &supervision.unit,
                MAX_GRID_NAME_CHARS,
                true,
            )?;
            if let Some(contact) = &supervision.contact {
                check_text(
                    "payload.supervision.contact",
                    contact,
                    MAX_GRID_NAME_CHARS,
                    true,
                )?;
            }
            if supervision.leaders.is_empty() {
                return Err(GridRejection::at(
                    "invalid_value",
                    "payload.supervision.leaders",
                    "name at least one leader (a person id) who answers for supervision",
                ));
            }
            command_checks::check_list(
                "payload.supervision.leaders",
                supervision.leaders.len(),
                MAX_SUPERVISION_LEADERS,
            )?;
            for (index, leader) in supervision.leaders.iter().enumerate() {
                check_person_id(&format!("payload.supervision.leaders[{index}]"), leader)?;
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Against the grid
// ---------------------------------------------------------------------------------------

/// Whether the grid accepts the command's event: exactly the fold's own rules, on a copy.
pub fn check_against(command: &GridCommand, grid: &GridState) -> Result<(), GridRejection> {
    let mut scratch = grid.clone();
    scratch
        .apply(&command.event)
        .map_err(|error| rejection_of(&command.event, &error))
}

/// The grid's refusal as a code and the field of the command it is about.
pub fn rejection_of(event: &GridEvent, error: &GridError) -> GridRejection {
    let (cells_field, skills_field) = match event {
        GridEvent::WorkerRegistered(_) => ("payload.worker.cells", "payload.worker.skills"),
        _ => ("payload.cells", "payload.skills"),
    };
    let cells: &[String] = match event {
        GridEvent::WorkerRegistered(registered) => &registered.worker.cells,
        GridEvent::WorkerCellsChanged(changed) => &changed.cells,
        _ => &[],
    };
    let leaders: &[String] = match event {
        GridEvent::DistrictSupervisionChanged(changed) => &changed.supervision.leaders,
        _ => &[],
    };
    let skills: &[String] = match event {
        GridEvent::WorkerRegistered(registered) => &registered.worker.skills,
        GridEvent::WorkerSkillsChanged(changed) => &changed.skills,
        _ => &[],
    };
    let item = |list_field: &str, list: &[String], wanted: &str, last: bool| {
        let mut positions = list.iter().enumerate().filter(|(_, x)| *x == wanted);
        let index = if last {
            positions.next_back()
        } else {
            positions.next()
        };
        match index {
            Some((index, _)) => format!("{list_field}[{index}]"),
            None => list_field.to_owned(),
        }
    };
    let (code, field) = match error {
        GridError::EmptyCellCode { .. } => ("empty_text", "payload.code".to_owned()),
        GridError::InvalidCellCode { .. } => ("invalid_id", "payload.code".to_owned()),
        GridError::EmptyCellField { field, .. } => ("empty_text", format!("payload.{field}")),
        GridError::InvalidSupervisor { .. } => ("invalid_id", "payload.supervisor".to_owned()),
        GridError::DuplicateCell { .. } => ("duplicate_cell", "payload.code".to_owned()),
        GridError::DistrictWithParent { .. } => ("invalid_value", "payload.parent".to_owned()),
        GridError::MissingParent { .. } => ("missing_field", "payload.parent".to_owned()),
        GridError::UnknownParent { .. } => ("unknown_cell", "payload.parent".to_owned()),
        GridError::WrongParentTier { .. } => ("wrong_parent_tier", "payload.parent".to_owned()),
        GridError::CodeNotUnderParent { .. } => {
            ("code_not_under_parent", "payload.code".to_owned())
        }
        GridError::CalendarOutsideDistrict { .. } => {
            ("invalid_value", "payload.calendar".to_owned())
        }
        GridError::UnknownDistrict { .. } => ("unknown_cell", "payload.district".to_owned()),
        GridError::SupervisionOutsideDistrict { .. } => {
            ("invalid_value", "payload.district".to_owned())
        }
        GridError::EmptySupervisionField { field, .. } => {
            ("empty_text", format!("payload.supervision.{field}"))
        }
        GridError::SupervisionWithoutLeaders { .. } => {
            ("invalid_value", "payload.supervision.leaders".to_owned())
        }
        GridError::InvalidSupervisionLeader { leader, .. } => (
            "invalid_id",
            item("payload.supervision.leaders", leaders, leader, false),
        ),
        GridError::RepeatedSupervisionLeader { leader, .. } => (
            "invalid_value",
            item("payload.supervision.leaders", leaders, leader, true),
        ),
        GridError::EmptyWorkerId => ("empty_text", "payload.worker.id".to_owned()),
        GridError::InvalidWorkerId { .. } => ("invalid_id", "payload.worker.id".to_owned()),
        GridError::EmptyWorkerName { .. } => ("empty_text", "payload.worker.name".to_owned()),
        GridError::DuplicateWorker { .. } => ("duplicate_worker", "payload.worker.id".to_owned()),
        GridError::UnknownWorker { .. } => ("unknown_worker", "payload.worker_id".to_owned()),
        GridError::WorkerWithoutCells { .. } => ("invalid_value", cells_field.to_owned()),
        GridError::UnknownCell { cell, .. } => {
            ("unknown_cell", item(cells_field, cells, cell, false))
        }
        GridError::RepeatedCell { cell, .. } => {
            ("repeated_cell", item(cells_field, cells, cell, true))
        }
        GridError::InvalidSkill { skill, .. } => {
            ("invalid_skill", item(skills_field, skills, skill, false))
        }
    };
    GridRejection::at(code, &field, error.to_string())
}

#[cfg(test)]
mod control_character_tests {
    use super::*;

    #[test]
    fn a_grid_command_with_a_control_character_is_refused_with_its_path() {
        let example = include_str!("../../../schemas/examples/grid/commands/grid.cell_added.json");
        let mut command: serde_json::Value = serde_json::from_str(example).expect("the example");
        command["payload"]["name"] = serde_json::json!("一号楼\u{0}");
        let rejection = parse_grid_command(command.to_string().as_bytes())
            .expect_err("a NUL in a cell name is refused");
        assert_eq!(rejection.code, "control_character");
        assert_eq!(rejection.field.as_deref(), Some("payload.name"));
        assert!(rejection.reason.contains("U+0000"), "{}", rejection.reason);
    }
}

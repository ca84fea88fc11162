//! The grid with its people, as a pure fold over grid events.
//!
//! [`GridState::apply`] checks one [`GridEvent`] against the grid and either applies it
//! whole or refuses it with a [`GridError`] that names the offending code and leaves the
//! state untouched. The grid file is loaded by folding the events that build it
//! ([`super::file`]), and the events published at run time go through the same door, so a
//! file and the log are held to the same rules:
//!
//! - cell codes are 1 to 32 ASCII letters or digits, unique across tiers; a district has no
//!   parent, a community's parent is a district and a building's a community, and a cell's
//!   code starts with its parent's;
//! - every cell has a supervisor, whose id is a valid worker id (the supervisor acts on cases
//!   through worker commands); only districts name a business calendar;
//! - only districts name supervision (督办): a unit that is not blank, one or more leaders
//!   with valid, distinct person ids, and a contact that is not blank if given;
//! - worker ids are unique and valid (1 to 64 ASCII letters, digits, `-` or `_`: an id names
//!   the worker's task inbox subject); a worker covers at least one cell, every one of which
//!   exists, and its skills are well formed (see [`super::skills`]).
//!
//! Nothing here performs I/O, so the routing policy in `domain::routing` can read it.

use std::collections::{BTreeSet, HashMap};

use wangge_schemas::grid::{
    CellAdded, DistrictSupervision, DistrictSupervisionChanged, GridEvent, GridWorker,
    WorkerCellsChanged, WorkerDutyChanged, WorkerSkillsChanged, DEFAULT_CALENDAR,
};
use wangge_schemas::worker::is_valid_worker_id;
use wangge_schemas::{GridLocation, Tier};

use super::skills::{skill_covers, skill_problem};

/// A tier's name as the grid file and the errors spell it.
pub fn tier_name(tier: &Tier) -> &'static str {
    match tier {
        Tier::Building => "building",
        Tier::Community => "community",
        Tier::District => "district",
    }
}

/// Why a grid event (or a line of a grid file) cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    #[error("a {} cell has an empty code", tier_name(.tier))]
    EmptyCellCode { tier: Tier },
    #[error("{} code `{code}` is not 1 to {MAX_CELL_CODE_CHARS} ASCII letters or digits", tier_name(.tier))]
    InvalidCellCode { code: String, tier: Tier },
    #[error(
        "{} {code} names supervisor `{supervisor}`, which is not a valid person id (1 to 64 ASCII letters, digits, `-` or `_`)",
        tier_name(.tier)
    )]
    InvalidSupervisor {
        code: String,
        tier: Tier,
        supervisor: String,
    },
    #[error("{} {code} has an empty {field}", tier_name(.tier))]
    EmptyCellField {
        code: String,
        tier: Tier,
        field: &'static str,
    },
    #[error("{} {code} is already in the grid as a {}", tier_name(.tier), tier_name(.existing))]
    DuplicateCell {
        code: String,
        tier: Tier,
        existing: Tier,
    },
    #[error("district {code} names parent {parent}, but a district has no parent")]
    DistrictWithParent { code: String, parent: String },
    #[error("{} {code} names no parent; it must belong to a {}", tier_name(.tier), tier_name(.expected))]
    MissingParent {
        code: String,
        tier: Tier,
        expected: Tier,
    },
    #[error("{} {code} names parent {parent}, which is not in the grid", tier_name(.tier))]
    UnknownParent {
        code: String,
        tier: Tier,
        parent: String,
    },
    #[error(
        "{} {code} names parent {parent}, a {}; it must belong to a {}",
        tier_name(.tier), tier_name(.parent_tier), tier_name(.expected)
    )]
    WrongParentTier {
        code: String,
        tier: Tier,
        parent: String,
        parent_tier: Tier,
        expected: Tier,
    },
    #[error("{} {code} does not start with its parent's code {parent}", tier_name(.tier))]
    CodeNotUnderParent {
        code: String,
        tier: Tier,
        parent: String,
    },
    #[error("{} {code} names calendar {calendar}, but only districts have a calendar", tier_name(.tier))]
    CalendarOutsideDistrict {
        code: String,
        tier: Tier,
        calendar: String,
    },
    #[error("{code} is not in the grid: supervision is named for a district")]
    UnknownDistrict { code: String },
    #[error(
        "{} {code} cannot name supervision: only a district names the leadership that supervises its overdue cases (督办)",
        tier_name(.tier)
    )]
    SupervisionOutsideDistrict { code: String, tier: Tier },
    #[error("district {code} names supervision with an empty {field}")]
    EmptySupervisionField { code: String, field: &'static str },
    #[error("district {code} names supervision without leaders; name at least one person id")]
    SupervisionWithoutLeaders { code: String },
    #[error(
        "district {code} names supervision leader `{leader}`, which is not a valid person id (1 to 64 ASCII letters, digits, `-` or `_`)"
    )]
    InvalidSupervisionLeader { code: String, leader: String },
    #[error("district {code} names supervision leader {leader} twice")]
    RepeatedSupervisionLeader { code: String, leader: String },
    #[error("a worker has an empty id")]
    EmptyWorkerId,
    #[error("worker id `{id}` is not 1 to 64 ASCII letters, digits, `-` or `_`")]
    InvalidWorkerId { id: String },
    #[error("worker {id} has an empty name")]
    EmptyWorkerName { id: String },
    #[error("worker {id} is already registered")]
    DuplicateWorker { id: String },
    #[error("worker {id} is not registered")]
    UnknownWorker { id: String },
    #[error("worker {id} covers no cell")]
    WorkerWithoutCells { id: String },
    #[error("worker {id} names cell {cell}, which is not in the grid")]
    UnknownCell { id: String, cell: String },
    #[error("worker {id} names cell {cell} twice")]
    RepeatedCell { id: String, cell: String },
    #[error("worker {id} has skill `{skill}`, which {reason}")]
    InvalidSkill {
        id: String,
        skill: String,
        reason: &'static str,
    },
}

/// Longest cell code.
pub const MAX_CELL_CODE_CHARS: usize = 32;

/// Whether `code` can name a cell: 1 to [`MAX_CELL_CODE_CHARS`] ASCII letters or digits.
pub fn is_valid_cell_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CELL_CODE_CHARS
        && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// One cell of the grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridCell {
    pub code: String,
    pub name: String,
    pub tier: Tier,
    /// The enclosing cell; `None` for a district.
    pub parent: Option<String>,
    /// The person who answers for the cell.
    pub supervisor: String,
    /// The business calendar id; districts only.
    pub calendar: Option<String>,
}

/// A person who can be dispatched to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    pub id: String,
    pub name: String,
    pub department: Option<String>,
    /// Codes of the cells the worker covers, as registered.
    pub cells: Vec<String>,
    pub skills: Vec<String>,
    pub on_duty: bool,
}

impl Worker {
    /// Whether one of the worker's skills covers `needed` (a category's skill).
    pub fn has_skill(&self, needed: &str) -> bool {
        self.skills.iter().any(|skill| skill_covers(skill, needed))
    }

    pub fn covers(&self, cell: &str) -> bool {
        self.cells.iter().any(|covered| covered == cell)
    }
}

impl From<GridWorker> for Worker {
    fn from(worker: GridWorker) -> Self {
        Self {
            id: worker.id,
            name: worker.name,
            department: worker.department,
            cells: worker.cells,
            skills: worker.skills,
            on_duty: worker.on_duty,
        }
    }
}

/// The grid: cells of three tiers, their supervisors and calendars, and the workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GridState {
    city: String,
    cells: HashMap<String, GridCell>,
    /// The full location of every building cell.
    buildings: HashMap<String, GridLocation>,
    /// District codes in the order they were added.
    districts: Vec<String>,
    community_count: usize,
    workers: HashMap<String, Worker>,
    /// Ids of the workers covering each cell, sorted, so every choice among them is
    /// deterministic.
    workers_by_cell: HashMap<String, BTreeSet<String>>,
    /// The supervision (督办) each district names, by district code.
    supervision: HashMap<String, DistrictSupervision>,
}

impl GridState {
    /// An empty grid for `city`, to fold events into.
    pub fn new(city: impl Into<String>) -> Self {
        Self {
            city: city.into(),
            ..Self::default()
        }
    }

    /// Folds `events` into an empty grid; the first refusal stops the fold.
    pub fn replay<'a>(
        city: impl Into<String>,
        events: impl IntoIterator<Item = &'a GridEvent>,
    ) -> Result<Self, GridError> {
        let mut state = Self::new(city);
        for event in events {
            state.apply(event)?;
        }
        Ok(state)
    }

    /// Applies one event, or refuses it and leaves the grid as it was.
    pub fn apply(&mut self, event: &GridEvent) -> Result<(), GridError> {
        match event {
            GridEvent::CellAdded(added) => self.add_cell(added),
            GridEvent::WorkerRegistered(registered) => self.register(&registered.worker),
            GridEvent::WorkerDutyChanged(WorkerDutyChanged { worker_id, on_duty }) => {
                self.known_worker_mut(worker_id)?.on_duty = *on_duty;
                Ok(())
            }
            GridEvent::WorkerSkillsChanged(WorkerSkillsChanged { worker_id, skills }) => {
                self.known_worker(worker_id)?;
                check_skills(worker_id, skills)?;
                self.known_worker_mut(worker_id)?.skills = skills.clone();
                Ok(())
            }
            GridEvent::WorkerCellsChanged(WorkerCellsChanged { worker_id, cells }) => {
                let old_cells = self.known_worker(worker_id)?.cells.clone();
                self.check_cells(worker_id, cells)?;
                for cell in &old_cells {
                    if let Some(ids) = self.workers_by_cell.get_mut(cell) {
                        ids.remove(worker_id);
                        if ids.is_empty() {
                            self.workers_by_cell.remove(cell);
                        }
                    }
                }
                self.index_cells(worker_id, cells);
                self.known_worker_mut(worker_id)?.cells = cells.clone();
                Ok(())
            }
            GridEvent::DistrictSupervisionChanged(changed) => self.name_supervision(changed),
        }
    }

    fn name_supervision(&mut self, changed: &DistrictSupervisionChanged) -> Result<(), GridError> {
        let DistrictSupervisionChanged {
            district,
            supervision,
        } = changed;
        let code = || district.clone();
        let Some(cell) = self.cells.get(district) else {
            return Err(GridError::UnknownDistrict { code: code() });
        };
        if cell.tier != Tier::District {
            return Err(GridError::SupervisionOutsideDistrict {
                code: code(),
                tier: cell.tier,
            });
        }
        if supervision.unit.trim().is_empty() {
            return Err(GridError::EmptySupervisionField {
                code: code(),
                field: "unit",
            });
        }
        if supervision
            .contact
            .as_deref()
            .is_some_and(|contact| contact.trim().is_empty())
        {
            return Err(GridError::EmptySupervisionField {
                code: code(),
                field: "contact",
            });
        }
        if supervision.leaders.is_empty() {
            return Err(GridError::SupervisionWithoutLeaders { code: code() });
        }
        let mut seen = BTreeSet::new();
        for leader in &supervision.leaders {
            if !is_valid_worker_id(leader) {
                return Err(GridError::InvalidSupervisionLeader {
                    code: code(),
                    leader: leader.clone(),
                });
            }
            if !seen.insert(leader.as_str()) {
                return Err(GridError::RepeatedSupervisionLeader {
                    code: code(),
                    leader: leader.clone(),
                });
            }
        }
        self.supervision
            .insert(district.clone(), supervision.clone());
        Ok(())
    }

    fn add_cell(&mut self, added: &CellAdded) -> Result<(), GridError> {
        let CellAdded {
            tier,
            code,
            name,
            parent,
            supervisor,
            calendar,
        } = added;
        let tier = *tier;
        if code.is_empty() {
            return Err(GridError::EmptyCellCode { tier });
        }
        if !is_valid_cell_code(code) {
            return Err(GridError::InvalidCellCode {
                code: code.clone(),
                tier,
            });
        }
        let empty = |field| GridError::EmptyCellField {
            code: code.clone(),
            tier,
            field,
        };
        if name.trim().is_empty() {
            return Err(empty("name"));
        }
        if supervisor.trim().is_empty() {
            return Err(empty("supervisor"));
        }
        if !is_valid_worker_id(supervisor) {
            return Err(GridError::InvalidSupervisor {
                code: code.clone(),
                tier,
                supervisor: supervisor.clone(),
            });
        }
        if let Some(existing) = self.cells.get(code) {
            return Err(GridError::DuplicateCell {
                code: code.clone(),
                tier,
                existing: existing.tier,
            });
        }
        let location = match (tier, parent) {
            (Tier::District, Some(parent)) => {
                return Err(GridError::DistrictWithParent {
                    code: code.clone(),
                    parent: parent.clone(),
                })
            }
            (Tier::District, None) => None,
            (_, parent) => Some(self.check_parent(tier, code, parent.as_deref())?),
        };
        let calendar = match (tier, calendar) {
            (Tier::District, Some(calendar)) if calendar.trim().is_empty() => {
                return Err(empty("calendar"))
            }
            (Tier::District, calendar) => Some(
                calendar
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CALENDAR.to_owned()),
            ),
            (_, Some(calendar)) => {
                return Err(GridError::CalendarOutsideDistrict {
                    code: code.clone(),
                    tier,
                    calendar: calendar.clone(),
                })
            }
            (_, None) => None,
        };

        match tier {
            Tier::District => self.districts.push(code.clone()),
            Tier::Community => self.community_count += 1,
            Tier::Building => {
                if let Some(location) = location {
                    self.buildings.insert(code.clone(), location);
                }
            }
        }
        self.cells.insert(
            code.clone(),
            GridCell {
                code: code.clone(),
                name: name.clone(),
                tier,
                parent: parent.clone(),
                supervisor: supervisor.clone(),
                calendar,
            },
        );
        Ok(())
    }

    /// Checks a community's or building's parent; for a building, returns its location.
    fn check_parent(
        &self,
        tier: Tier,
        code: &str,
        parent: Option<&str>,
    ) -> Result<GridLocation, GridError> {
        let expected = tier.parent().unwrap_or(Tier::District);
        let Some(parent) = parent else {
            return Err(GridError::MissingParent {
                code: code.to_owned(),
                tier,
                expected,
            });
        };
        let Some(parent_cell) = self.cells.get(parent) else {
            return Err(GridError::UnknownParent {
                code: code.to_owned(),
                tier,
                parent: parent.to_owned(),
            });
        };
        if parent_cell.tier != expected {
            return Err(GridError::WrongParentTier {
                code: code.to_owned(),
                tier,
                parent: parent.to_owned(),
                parent_tier: parent_cell.tier,
                expected,
            });
        }
        if code.len() <= parent.len() || !code.starts_with(parent) {
            return Err(GridError::CodeNotUnderParent {
                code: code.to_owned(),
                tier,
                parent: parent.to_owned(),
            });
        }
        let district = parent_cell.parent.clone().unwrap_or_default();
        Ok(GridLocation {
            district,
            community: parent.to_owned(),
            building: code.to_owned(),
        })
    }

    fn register(&mut self, worker: &GridWorker) -> Result<(), GridError> {
        if worker.id.trim().is_empty() {
            return Err(GridError::EmptyWorkerId);
        }
        if !is_valid_worker_id(&worker.id) {
            return Err(GridError::InvalidWorkerId {
                id: worker.id.clone(),
            });
        }
        if worker.name.trim().is_empty() {
            return Err(GridError::EmptyWorkerName {
                id: worker.id.clone(),
            });
        }
        if self.workers.contains_key(&worker.id) {
            return Err(GridError::DuplicateWorker {
                id: worker.id.clone(),
            });
        }
        self.check_cells(&worker.id, &worker.cells)?;
        check_skills(&worker.id, &worker.skills)?;
        self.index_cells(&worker.id, &worker.cells);
        self.workers
            .insert(worker.id.clone(), Worker::from(worker.clone()));
        Ok(())
    }

    fn check_cells(&self, id: &str, cells: &[String]) -> Result<(), GridError> {
        if cells.is_empty() {
            return Err(GridError::WorkerWithoutCells { id: id.to_owned() });
        }
        let mut seen = BTreeSet::new();
        for cell in cells {
            if !self.cells.contains_key(cell) {
                return Err(GridError::UnknownCell {
                    id: id.to_owned(),
                    cell: cell.clone(),
                });
            }
            if !seen.insert(cell.as_str()) {
                return Err(GridError::RepeatedCell {
                    id: id.to_owned(),
                    cell: cell.clone(),
                });
            }
        }
        Ok(())
    }

    fn index_cells(&mut self, id: &str, cells: &[String]) {
        for cell in cells {
            self.workers_by_cell
                .entry(cell.clone())
                .or_default()
                .insert(id.to_owned());
        }
    }

    fn known_worker(&self, id: &str) -> Result<&Worker, GridError> {
        self.workers
            .get(id)
            .ok_or_else(|| GridError::UnknownWorker { id: id.to_owned() })
    }

    fn known_worker_mut(&mut self, id: &str) -> Result<&mut Worker, GridError> {
        self.workers
            .get_mut(id)
            .ok_or_else(|| GridError::UnknownWorker { id: id.to_owned() })
    }

    // -----------------------------------------------------------------------------------
    // Lookups
    // -----------------------------------------------------------------------------------

    pub fn city(&self) -> &str {
        &self.city
    }

    /// The full location of a building cell, or `None` when the grid has no such building.
    pub fn locate_building(&self, building: &str) -> Option<&GridLocation> {
        self.buildings.get(building)
    }

    /// Codes of every building cell, in no particular order.
    pub fn building_codes(&self) -> impl Iterator<Item = &str> {
        self.buildings.keys().map(String::as_str)
    }

    /// `(districts, communities, buildings)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.districts.len(),
            self.community_count,
            self.buildings.len(),
        )
    }

    /// A cell of any tier by its code.
    pub fn cell(&self, code: &str) -> Option<&GridCell> {
        self.cells.get(code)
    }

    /// The cells directly inside `code`, in order of code. Walks every cell: for tools, not
    /// for decisions on the hot path.
    pub fn children(&self, code: &str) -> Vec<&GridCell> {
        let mut children: Vec<&GridCell> = self
            .cells
            .values()
            .filter(|cell| cell.parent.as_deref() == Some(code))
            .collect();
        children.sort_by(|a, b| a.code.cmp(&b.code));
        children
    }

    /// How many workers are on duty.
    pub fn on_duty_count(&self) -> usize {
        self.workers
            .values()
            .filter(|worker| worker.on_duty)
            .count()
    }

    /// Every cell of every tier, in no particular order.
    pub fn cells(&self) -> impl Iterator<Item = &GridCell> {
        self.cells.values()
    }

    /// The cell that encloses `code`; `None` for a district or an unknown code.
    pub fn parent(&self, code: &str) -> Option<&GridCell> {
        let parent = self.cells.get(code)?.parent.as_deref()?;
        self.cells.get(parent)
    }

    /// The cell at `tier` that contains `location`, if the grid has it.
    pub fn cell_at(&self, location: &GridLocation, tier: Tier) -> Option<&GridCell> {
        let code = match tier {
            Tier::Building => &location.building,
            Tier::Community => &location.community,
            Tier::District => &location.district,
        };
        self.cells.get(code).filter(|cell| cell.tier == tier)
    }

    /// The districts, in the order they were added.
    pub fn districts(&self) -> impl Iterator<Item = &GridCell> {
        self.districts
            .iter()
            .filter_map(|code| self.cells.get(code))
    }

    /// `(district code, calendar id)` for every district, in the order they were added.
    pub fn district_calendars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.districts().map(|district| {
            (
                district.code.as_str(),
                district.calendar.as_deref().unwrap_or(DEFAULT_CALENDAR),
            )
        })
    }

    /// The business calendar id that applies in a cell of any tier: its district's.
    pub fn calendar_of(&self, code: &str) -> Option<&str> {
        let mut cell = self.cells.get(code)?;
        while let Some(parent) = cell.parent.as_deref() {
            cell = self.cells.get(parent)?;
        }
        Some(cell.calendar.as_deref().unwrap_or(DEFAULT_CALENDAR))
    }

    /// The supervision (督办) a district names, if it names one.
    pub fn supervision_of(&self, district: &str) -> Option<&DistrictSupervision> {
        self.supervision.get(district)
    }

    /// The person who answers for a cell.
    pub fn supervisor_of(&self, code: &str) -> Option<&str> {
        self.cells.get(code).map(|cell| cell.supervisor.as_str())
    }

    /// A worker by id.
    pub fn worker(&self, id: &str) -> Option<&Worker> {
        self.workers.get(id)
    }

    /// Every worker covering a cell (on duty or not), in order of id.
    pub fn workers_of(&self, code: &str) -> impl Iterator<Item = &Worker> {
        self.workers_by_cell
            .get(code)
            .into_iter()
            .flatten()
            .filter_map(|id| self.workers.get(id))
    }

    /// Every worker, in no particular order.
    pub fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values()
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }
}

fn check_skills(id: &str, skills: &[String]) -> Result<(), GridError> {
    for skill in skills {
        if let Some(reason) = skill_problem(skill) {
            return Err(GridError::InvalidSkill {
                id: id.to_owned(),
                skill: skill.clone(),
                reason,
            });
        }
    }
    Ok(())
}

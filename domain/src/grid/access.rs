//! Who may read what, as the grid says: the read side's roles and the cells each person's
//! scope covers.
//!
//! A token or an API key names a person (a grid id) and a role; the *cells* that role covers
//! are always taken from the grid, never from the token, so a token cannot widen its own
//! scope and a supervisor moved to another cell sees the new cell as soon as the grid event
//! arrives. Pure functions over a [`GridState`]; the HTTP layer turns them into 401 and 403
//! answers.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use wangge_schemas::Tier;

use super::state::GridState;

/// A reader's role on the read API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessRole {
    /// A grid worker (网格员): their own tasks and the cases they hold.
    GridWorker,
    /// The supervisor of one or more cells: those cells and every cell below them.
    Supervisor,
    /// A district's leadership (its supervisor, or a supervision leader it names): the
    /// district and everything in it.
    District,
    /// Everything, read only.
    Auditor,
    /// Everything, read only (the API has nothing to write); the operators' role.
    Admin,
    /// `/metrics` only: a Prometheus scraper's API key.
    Metrics,
}

impl AccessRole {
    pub const ALL: [AccessRole; 6] = [
        AccessRole::GridWorker,
        AccessRole::Supervisor,
        AccessRole::District,
        AccessRole::Auditor,
        AccessRole::Admin,
        AccessRole::Metrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessRole::GridWorker => "grid_worker",
            AccessRole::Supervisor => "supervisor",
            AccessRole::District => "district",
            AccessRole::Auditor => "auditor",
            AccessRole::Admin => "admin",
            AccessRole::Metrics => "metrics",
        }
    }
}

impl fmt::Display for AccessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessRole {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AccessRole::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = AccessRole::ALL.iter().map(|r| r.as_str()).collect();
                format!("`{text}` is not a role; one of {}", names.join(", "))
            })
    }
}

/// What a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessScope {
    /// Every case, report and figure (auditor, admin).
    Everything,
    /// These cells and everything below them (a supervisor's cells, a district).
    Cells(BTreeSet<String>),
    /// The cases this worker holds and their own inbox.
    OwnCases { worker: String },
    /// `/metrics` and nothing else.
    MetricsOnly,
}

/// Why a person cannot have a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("`{id}` is not a grid worker in the grid")]
    NotAWorker { id: String },
    #[error("`{id}` supervises no cell of the grid")]
    NotASupervisor { id: String },
    #[error("`{id}` neither supervises a district nor leads its supervision")]
    NotADistrictLead { id: String },
    #[error("no district `{code}` in the grid")]
    UnknownDistrict { code: String },
    #[error("`{id}` is not in the grid (no worker, no supervisor, no supervision leader)")]
    NotInGrid { id: String },
}

/// The cells `id` supervises, any tier.
pub fn cells_supervised_by(grid: &GridState, id: &str) -> BTreeSet<String> {
    grid.cells()
        .filter(|cell| cell.supervisor == id)
        .map(|cell| cell.code.clone())
        .collect()
}

/// The districts `id` answers for: as the district cell's supervisor or as one of the
/// supervision (督办) leaders the district names.
pub fn districts_led_by(grid: &GridState, id: &str) -> BTreeSet<String> {
    grid.districts()
        .filter(|district| {
            district.supervisor == id
                || grid
                    .supervision_of(&district.code)
                    .is_some_and(|supervision| supervision.leaders.iter().any(|l| l == id))
        })
        .map(|district| district.code.clone())
        .collect()
}

/// The scope of `id` in `role`, from the grid.
pub fn scope_of(grid: &GridState, id: &str, role: AccessRole) -> Result<AccessScope, AccessError> {
    match role {
        AccessRole::Auditor | AccessRole::Admin => Ok(AccessScope::Everything),
        AccessRole::Metrics => Ok(AccessScope::MetricsOnly),
        AccessRole::GridWorker => match grid.worker(id) {
            Some(_) => Ok(AccessScope::OwnCases {
                worker: id.to_owned(),
            }),
            None => Err(AccessError::NotAWorker { id: id.to_owned() }),
        },
        AccessRole::Supervisor => {
            let cells = cells_supervised_by(grid, id);
            if cells.is_empty() {
                return Err(AccessError::NotASupervisor { id: id.to_owned() });
            }
            Ok(AccessScope::Cells(cells))
        }
        AccessRole::District => {
            let districts = districts_led_by(grid, id);
            if districts.is_empty() {
                return Err(AccessError::NotADistrictLead { id: id.to_owned() });
            }
            Ok(AccessScope::Cells(districts))
        }
    }
}

/// The scope of an API key limited to one district: the district must be in the grid.
pub fn district_scope(grid: &GridState, code: &str) -> Result<AccessScope, AccessError> {
    match grid.cell(code) {
        Some(cell) if cell.tier == Tier::District => {
            Ok(AccessScope::Cells(BTreeSet::from([code.to_owned()])))
        }
        _ => Err(AccessError::UnknownDistrict {
            code: code.to_owned(),
        }),
    }
}

/// The role the grid gives `id` when none is asked for: a district lead before a
/// supervisor (a district's supervisor supervises its district cell too), a supervisor
/// before a worker.
pub fn role_in_grid(grid: &GridState, id: &str) -> Result<AccessRole, AccessError> {
    if !districts_led_by(grid, id).is_empty() {
        Ok(AccessRole::District)
    } else if !cells_supervised_by(grid, id).is_empty() {
        Ok(AccessRole::Supervisor)
    } else if grid.worker(id).is_some() {
        Ok(AccessRole::GridWorker)
    } else {
        Err(AccessError::NotInGrid { id: id.to_owned() })
    }
}

/// `code` and the cells above it, innermost first (only `code` when it is unknown).
pub fn cell_and_ancestors(grid: &GridState, code: &str) -> Vec<String> {
    let mut chain = vec![code.to_owned()];
    let mut current = code.to_owned();
    while let Some(parent) = grid.parent(&current) {
        current = parent.code.clone();
        chain.push(current.clone());
    }
    chain
}

/// Whether `code` is `root` or lies below it.
pub fn is_within(grid: &GridState, code: &str, root: &str) -> bool {
    cell_and_ancestors(grid, code).iter().any(|c| c == root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_city() -> GridState {
        GridState::sample_city()
    }

    #[test]
    fn a_district_lead_covers_the_district_and_a_community_supervisor_their_community() {
        let grid = sample_city();
        assert_eq!(
            scope_of(&grid, "lead-330106001-1", AccessRole::District),
            Ok(AccessScope::Cells(BTreeSet::from(["330106001".to_owned()])))
        );
        assert_eq!(
            role_in_grid(&grid, "sup-330106001001"),
            Ok(AccessRole::Supervisor)
        );
        assert!(is_within(&grid, "330106001001003", "330106001"));
        assert!(!is_within(&grid, "330106002001003", "330106001"));
    }

    #[test]
    fn nobody_outside_the_grid_gets_a_grid_role() {
        let grid = sample_city();
        assert!(role_in_grid(&grid, "mallory").is_err());
        assert!(scope_of(&grid, "mallory", AccessRole::Supervisor).is_err());
        assert!(scope_of(&grid, "sup-330106001001", AccessRole::GridWorker).is_err());
    }
}

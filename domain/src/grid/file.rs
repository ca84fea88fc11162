//! Reading a grid file: JSON of the documented shape, turned into the events that build it
//! and folded into a [`GridState`], so a file is held to exactly the rules of the run-time
//! grid events.
//!
//! The format is documented in `deploy/grid/README.md`; its JSON Schema is
//! `schemas/json/grid/grid-file.json`.

use wangge_schemas::grid::{
    CellAdded, DistrictSupervisionChanged, GridEvent, GridFile, WorkerRegistered,
};
use wangge_schemas::Tier;

use super::state::GridState;
use super::ReferenceDataError;

/// The bundled sample city, so the demo and tests need no files at run time.
pub const SAMPLE_CITY_JSON: &str = include_str!("../../../deploy/grid/sample-city.json");
/// The bundled category catalogue.
pub const SAMPLE_CATEGORIES_JSON: &str = include_str!("../../../deploy/grid/categories.json");

/// The events that build the grid a file describes: every cell, parents before children,
/// in file order (a district's supervision right after the district), then every worker.
pub fn events_of_file(file: &GridFile) -> Vec<GridEvent> {
    let mut events = Vec::new();
    for district in &file.districts {
        events.push(GridEvent::CellAdded(CellAdded {
            tier: Tier::District,
            code: district.code.clone(),
            name: district.name.clone(),
            parent: None,
            supervisor: district.supervisor.clone(),
            calendar: Some(district.calendar.clone()),
        }));
        if let Some(supervision) = &district.supervision {
            events.push(GridEvent::DistrictSupervisionChanged(
                DistrictSupervisionChanged {
                    district: district.code.clone(),
                    supervision: supervision.clone(),
                },
            ));
        }
        for community in &district.communities {
            events.push(GridEvent::CellAdded(CellAdded {
                tier: Tier::Community,
                code: community.code.clone(),
                name: community.name.clone(),
                parent: Some(district.code.clone()),
                supervisor: community.supervisor.clone(),
                calendar: None,
            }));
            for building in &community.buildings {
                events.push(GridEvent::CellAdded(CellAdded {
                    tier: Tier::Building,
                    code: building.code.clone(),
                    name: building.name.clone(),
                    parent: Some(community.code.clone()),
                    supervisor: building.supervisor.clone(),
                    calendar: None,
                }));
            }
        }
    }
    events.extend(file.workers.iter().map(|worker| {
        GridEvent::WorkerRegistered(WorkerRegistered {
            worker: worker.clone(),
        })
    }));
    events
}

impl GridState {
    /// The grid a parsed file describes, or the first rule it breaks.
    pub fn from_file(file: &GridFile) -> Result<Self, super::GridError> {
        Self::replay(file.city.clone(), &events_of_file(file))
    }

    /// Parses and checks a grid file's text; `what` names it in errors (a path, or
    /// "bundled sample city").
    pub fn from_json(json: &str, what: &str) -> Result<Self, ReferenceDataError> {
        let file: GridFile =
            serde_json::from_str(json).map_err(|source| ReferenceDataError::Parse {
                what: what.to_owned(),
                source,
            })?;
        Self::from_file(&file).map_err(|source| ReferenceDataError::Grid {
            what: what.to_owned(),
            source,
        })
    }

    /// The bundled sample city (`deploy/grid/sample-city.json`).
    pub fn sample_city() -> Self {
        Self::from_json(SAMPLE_CITY_JSON, "bundled sample city")
            .expect("the bundled sample city is valid")
    }
}

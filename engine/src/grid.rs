//! The grid directory and the category catalogue: the reference data intake checks against.
//!
//! Both are data an operator maintains (files under `deploy/`), never code. The grid file
//! lists districts → communities → buildings; the catalogue lists the case categories.
//! The formats are documented in `deploy/grid/README.md`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use wangge_schemas::{GridLocation, IntakeKind, Priority, Tier};

/// The bundled sample city, so the demo and tests need no files at run time.
pub const SAMPLE_CITY_JSON: &str = include_str!("../../deploy/grid/sample-city.json");
/// The bundled category catalogue.
pub const SAMPLE_CATEGORIES_JSON: &str = include_str!("../../deploy/grid/categories.json");

#[derive(Debug, thiserror::Error)]
pub enum ReferenceDataError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{what} is not valid: {source}")]
    Parse {
        what: String,
        source: serde_json::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// The grid file: a city's tree of cells.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridFile {
    pub city: String,
    pub districts: Vec<DistrictCell>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistrictCell {
    pub code: String,
    pub name: String,
    pub communities: Vec<CommunityCell>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityCell {
    pub code: String,
    pub name: String,
    pub buildings: Vec<BuildingCell>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildingCell {
    pub code: String,
    pub name: String,
}

/// Finds a building cell's place in the grid.
#[derive(Debug, Clone, Default)]
pub struct GridDirectory {
    city: String,
    buildings: HashMap<String, GridLocation>,
    district_count: usize,
    community_count: usize,
}

impl GridDirectory {
    pub fn from_json(json: &str, what: &str) -> Result<Self, ReferenceDataError> {
        let file: GridFile =
            serde_json::from_str(json).map_err(|source| ReferenceDataError::Parse {
                what: what.to_owned(),
                source,
            })?;
        Self::from_file_contents(file, what)
    }

    pub fn load(path: &Path) -> Result<Self, ReferenceDataError> {
        let json = read(path)?;
        Self::from_json(&json, &path.display().to_string())
    }

    pub fn sample_city() -> Self {
        Self::from_json(SAMPLE_CITY_JSON, "bundled sample city")
            .expect("the bundled sample city is valid")
    }

    fn from_file_contents(file: GridFile, what: &str) -> Result<Self, ReferenceDataError> {
        let invalid = |reason: String| ReferenceDataError::Invalid {
            what: what.to_owned(),
            reason,
        };
        let mut directory = Self {
            city: file.city,
            ..Self::default()
        };
        for district in &file.districts {
            directory.district_count += 1;
            for community in &district.communities {
                directory.community_count += 1;
                if !community.code.starts_with(&district.code) {
                    return Err(invalid(format!(
                        "community {} does not start with its district code {}",
                        community.code, district.code
                    )));
                }
                for building in &community.buildings {
                    if !building.code.starts_with(&community.code) {
                        return Err(invalid(format!(
                            "building {} does not start with its community code {}",
                            building.code, community.code
                        )));
                    }
                    let location = GridLocation {
                        district: district.code.clone(),
                        community: community.code.clone(),
                        building: building.code.clone(),
                    };
                    if directory
                        .buildings
                        .insert(building.code.clone(), location)
                        .is_some()
                    {
                        return Err(invalid(format!(
                            "building code {} appears twice",
                            building.code
                        )));
                    }
                }
            }
        }
        Ok(directory)
    }

    pub fn city(&self) -> &str {
        &self.city
    }

    /// The full location of a building cell, or `None` when the grid has no such cell.
    pub fn locate_building(&self, building: &str) -> Option<&GridLocation> {
        self.buildings.get(building)
    }

    pub fn building_codes(&self) -> impl Iterator<Item = &str> {
        self.buildings.keys().map(String::as_str)
    }

    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.district_count,
            self.community_count,
            self.buildings.len(),
        )
    }
}

/// One case category: what it is and how it is handled.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// Dotted code, e.g. `drainage.blocked`.
    pub code: String,
    pub name: String,
    /// Which intake kinds may use this category.
    pub intake_kinds: Vec<IntakeKind>,
    /// The tier that normally handles it.
    pub handling_tier: Tier,
    pub default_priority: Priority,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    categories: Vec<Category>,
}

/// The categories a case may be filed under.
#[derive(Debug, Clone, Default)]
pub struct CategoryCatalogue {
    categories: HashMap<String, Category>,
}

impl CategoryCatalogue {
    pub fn from_json(json: &str, what: &str) -> Result<Self, ReferenceDataError> {
        let file: CategoryFile =
            serde_json::from_str(json).map_err(|source| ReferenceDataError::Parse {
                what: what.to_owned(),
                source,
            })?;
        let mut categories = HashMap::new();
        for category in file.categories {
            if category.intake_kinds.is_empty() {
                return Err(ReferenceDataError::Invalid {
                    what: what.to_owned(),
                    reason: format!("category {} allows no intake kind", category.code),
                });
            }
            let code = category.code.clone();
            if categories.insert(code.clone(), category).is_some() {
                return Err(ReferenceDataError::Invalid {
                    what: what.to_owned(),
                    reason: format!("category {code} appears twice"),
                });
            }
        }
        Ok(Self { categories })
    }

    pub fn load(path: &Path) -> Result<Self, ReferenceDataError> {
        let json = read(path)?;
        Self::from_json(&json, &path.display().to_string())
    }

    pub fn sample() -> Self {
        Self::from_json(SAMPLE_CATEGORIES_JSON, "bundled categories")
            .expect("the bundled catalogue is valid")
    }

    pub fn get(&self, code: &str) -> Option<&Category> {
        self.categories.get(code)
    }

    pub fn len(&self) -> usize {
        self.categories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
    }

    pub fn codes_for(&self, kind: IntakeKind) -> Vec<&str> {
        let mut codes: Vec<&str> = self
            .categories
            .values()
            .filter(|c| c.intake_kinds.contains(&kind))
            .map(|c| c.code.as_str())
            .collect();
        codes.sort_unstable();
        codes
    }
}

fn read(path: &Path) -> Result<String, ReferenceDataError> {
    std::fs::read_to_string(path).map_err(|source| ReferenceDataError::Read {
        path: path.display().to_string(),
        source,
    })
}

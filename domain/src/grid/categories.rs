//! The category catalogue: what a case may be filed under, and how each category is routed.
//!
//! The format is documented in `deploy/grid/README.md`; its JSON Schema is
//! `schemas/json/grid/categories.json`.

use std::collections::HashMap;

use wangge_schemas::grid::{Category, CategoryFile};
use wangge_schemas::IntakeKind;

use super::file::SAMPLE_CATEGORIES_JSON;
use super::skills::skill_problem;
use super::ReferenceDataError;

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
        let invalid = |reason: String| ReferenceDataError::Invalid {
            what: what.to_owned(),
            reason,
        };
        let mut categories = HashMap::new();
        for category in file.categories {
            let code = category.code.clone();
            if code.is_empty() {
                return Err(invalid("a category has an empty code".to_owned()));
            }
            if category.intake_kinds.is_empty() {
                return Err(invalid(format!("category {code} allows no intake kind")));
            }
            if let Some(reason) = skill_problem(category.skill()) {
                return Err(invalid(format!(
                    "category {code} needs skill `{}`, which {reason}",
                    category.skill()
                )));
            }
            if category.sla_policy().trim().is_empty() {
                return Err(invalid(format!("category {code} has an empty sla_policy")));
            }
            if categories.insert(code.clone(), category).is_some() {
                return Err(invalid(format!("category {code} appears twice")));
            }
        }
        Ok(Self { categories })
    }

    /// The bundled catalogue (`deploy/grid/categories.json`).
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

    /// Every category, in order of code.
    pub fn iter(&self) -> impl Iterator<Item = &Category> {
        let mut categories: Vec<&Category> = self.categories.values().collect();
        categories.sort_unstable_by(|a, b| a.code.cmp(&b.code));
        categories.into_iter()
    }

    /// The codes a message of `kind` may use, sorted.
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

//! What the read side needs besides the log to answer: the live grid (names of cells, which
//! cells a scope holds) and the category catalogue; and, when configured, the keyring an
//! audit trail's seals are checked against. The folds take nothing from here: what a fold
//! needs is in the events.

use std::sync::Arc;

use wangge_engine::domain::fold::audit::SealPolicy;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory, LiveGrid, SharedGrid};

/// The read side's reference data for answers. Cheap to share: everything is behind `Arc`s.
#[derive(Clone)]
pub struct FoldContext {
    grid: SharedGrid,
    categories: Arc<CategoryCatalogue>,
    /// When set, every audit trail served is also checked against the engine's seals.
    seal_policy: Option<Arc<SealPolicy>>,
}

impl FoldContext {
    /// `grid`: the engine's live grid, or a fixed one (an `Arc<GridDirectory>`).
    pub fn new(grid: impl Into<SharedGrid>, categories: Arc<CategoryCatalogue>) -> Self {
        Self {
            grid: grid.into(),
            categories,
            seal_policy: None,
        }
    }

    /// Checks the seals of every audit trail served against `policy` (its keyring).
    pub fn with_seal_policy(mut self, policy: Arc<SealPolicy>) -> Self {
        self.seal_policy = Some(policy);
        self
    }

    /// The seal policy audit trails are checked against, when configured.
    pub fn seal_policy(&self) -> Option<&SealPolicy> {
        self.seal_policy.as_deref()
    }

    /// The bundled sample city and category catalogue.
    pub fn bundled() -> Self {
        Self::new(
            Arc::new(GridDirectory::sample_city()),
            Arc::new(CategoryCatalogue::sample()),
        )
    }

    /// The grid as it is now.
    pub fn grid(&self) -> Arc<LiveGrid> {
        self.grid.snapshot()
    }

    /// The live grid handle itself.
    pub fn shared_grid(&self) -> &SharedGrid {
        &self.grid
    }

    pub fn categories(&self) -> &Arc<CategoryCatalogue> {
        &self.categories
    }
}

impl std::fmt::Debug for FoldContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoldContext")
            .field("city", &self.grid.load().city())
            .field("categories", &self.categories.len())
            .finish_non_exhaustive()
    }
}

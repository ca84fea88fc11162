//! What the folds need besides the events: the grid (for a district's calendar, and the
//! names and cells answers show), the category catalogue and the SLA policies.
//!
//! The grid is the live one (`SharedGrid`): a cell added at run time is named and counted as
//! soon as the grid stream brings it. The folds read only districts' calendars from it, which
//! do not change while cases run.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use wangge_engine::domain::sla::{BusinessCalendar, SlaPolicy};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory, LiveGrid, SharedGrid};
use wangge_engine::runtime::timers::SlaReference;

/// Reference data for the folds. Cheap to share: everything is behind `Arc`s or `'static`.
#[derive(Clone)]
pub struct FoldContext {
    grid: SharedGrid,
    categories: Arc<CategoryCatalogue>,
    sla: Arc<SlaReference>,
}

impl FoldContext {
    /// `grid`: the engine's live grid, or a fixed one (an `Arc<GridDirectory>`).
    pub fn new(
        grid: impl Into<SharedGrid>,
        categories: Arc<CategoryCatalogue>,
        sla: Arc<SlaReference>,
    ) -> Self {
        Self {
            grid: grid.into(),
            categories,
            sla,
        }
    }

    /// The bundled sample city, category catalogue, policies and calendars.
    pub fn bundled() -> Self {
        Self::new(
            Arc::new(GridDirectory::sample_city()),
            Arc::new(CategoryCatalogue::sample()),
            Arc::new(SlaReference::bundled()),
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

    /// The policy and calendar a case reported in `district` under `reported_category`
    /// runs under — the same ones the SLA timers use.
    pub fn sla_terms(
        &self,
        district: &str,
        reported_category: &str,
    ) -> (&'static SlaPolicy, &'static BusinessCalendar) {
        self.sla.terms_for(
            &self.grid.load(),
            &self.categories,
            district,
            reported_category,
        )
    }

    /// The calendar day of `at` in the district's time zone: the day an indicator or a patrol
    /// counts on.
    pub fn local_day(&self, district: &str, at: DateTime<Utc>) -> NaiveDate {
        let (_, calendar) = self.sla_terms(district, "");
        calendar.local_date_time(at).date()
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

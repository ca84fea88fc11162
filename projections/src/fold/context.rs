//! What the folds need besides the events: the grid (for a district's calendar), the
//! category catalogue and the SLA policies — reference data loaded once at start-up.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use wangge_engine::domain::sla::{BusinessCalendar, SlaPolicy};
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::runtime::timers::SlaReference;

/// Reference data for the folds. Cheap to share: everything is behind `Arc`s or `'static`.
#[derive(Clone)]
pub struct FoldContext {
    grid: Arc<GridDirectory>,
    categories: Arc<CategoryCatalogue>,
    sla: Arc<SlaReference>,
}

impl FoldContext {
    pub fn new(
        grid: Arc<GridDirectory>,
        categories: Arc<CategoryCatalogue>,
        sla: Arc<SlaReference>,
    ) -> Self {
        Self {
            grid,
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

    pub fn grid(&self) -> &Arc<GridDirectory> {
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
        self.sla
            .terms_for(&self.grid, &self.categories, district, reported_category)
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
            .field("city", &self.grid.city())
            .field("categories", &self.categories.len())
            .finish_non_exhaustive()
    }
}

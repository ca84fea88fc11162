//! Which SLA policy and business calendar a case runs under: the one rule the timers and the
//! read models share, so a deadline on a dashboard is the deadline the timer fires at.

use crate::domain::sla::{BusinessCalendar, SlaPolicy};
use crate::grid::{CategoryCatalogue, GridDirectory};
use crate::runtime::timers::SlaReference;

impl SlaReference {
    /// The policy and calendar of a case reported in `district` under `reported_category`:
    /// the district's calendar (the default one when the district has none or is unknown),
    /// and the policy the catalogue names for the category (the policy file's default when
    /// the catalogue does not know the category or names a policy the file lacks).
    pub fn terms_for(
        &self,
        grid: &GridDirectory,
        categories: &CategoryCatalogue,
        district: &str,
        reported_category: &str,
    ) -> (&'static SlaPolicy, &'static BusinessCalendar) {
        let calendar = grid
            .calendar_of(district)
            .and_then(|id| self.calendars.get(id))
            .unwrap_or_else(|| self.calendars.default_calendar());
        let policy = self.policies.get_or_default(
            categories
                .get(reported_category)
                .map(|category| category.sla_policy()),
        );
        (policy, calendar)
    }
}

/// The timers' and read models' reference as of one state of the live SLA data (the files
/// and the SLA stream, `crate::sla::SharedSla`). The timer book and the projection folds
/// take their policies and calendars once, when they are built: a publish reaches them at
/// the instance's next start.
impl From<&wangge_domain::sla::SlaReference> for SlaReference {
    fn from(reference: &wangge_domain::sla::SlaReference) -> Self {
        let (policies, calendars) = reference.clone().into_parts();
        Self::new(policies, calendars)
    }
}

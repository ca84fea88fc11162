//! Which SLA policy and business calendar the engine computes a case's clocks under, now.
//!
//! Every command's commit carries the running step's clock as the engine computed it (the
//! envelope's `sla_clock`, see `wangge_domain::sla::deadlines`); this is where the terms of
//! that computation come from. The policy is the one the category catalogue names for the case's
//! category (the accepted one once accepted, else the reported one), else the policy file's
//! default. The calendar is the one the case's clocks were computed in before (a case keeps
//! its calendar), else its district's, else the default. Both are looked up in the reference
//! data as it stands when the command is decided; what they give is recorded, so later
//! changes never alter a clock already written.

use std::sync::Arc;

use wangge_domain::sla::{
    BusinessCalendar, CalendarSet, PolicySet, SlaPolicy, SlaReference, Terms,
};
use wangge_schemas::{CaseEvent, EventEnvelope};

use crate::domain::CaseState;
use crate::grid::{CategoryCatalogue, SharedGrid};
use crate::sla::SharedSla;

/// What a case's terms are chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermsKey<'a> {
    pub district: &'a str,
    /// The accepted category, else the reported one.
    pub category: Option<&'a str>,
    /// The calendar the case's clocks were computed in so far.
    pub calendar: Option<&'a str>,
}

impl<'a> TermsKey<'a> {
    /// The key of a case after a commit's `events` (stamped, not yet folded into `state`).
    pub fn after(state: &'a CaseState, events: &'a [EventEnvelope]) -> Option<TermsKey<'a>> {
        let district = state
            .location
            .as_ref()
            .or_else(|| events.first().map(|event| &event.location))?
            .district
            .as_str();
        let accepted = events.iter().rev().find_map(|event| match &event.event {
            CaseEvent::Accepted(accepted) => Some(accepted.category.as_str()),
            _ => None,
        });
        let reported = events.iter().find_map(|event| match &event.event {
            CaseEvent::Reported(reported) => Some(reported.reported_category.as_str()),
            _ => None,
        });
        let category = accepted
            .or(state.category.as_deref())
            .or(state.reported_category.as_deref())
            .or(reported);
        Some(TermsKey {
            district,
            category,
            calendar: state
                .sla
                .calendar
                .as_ref()
                .map(|calendar| calendar.id.as_str()),
        })
    }
}

/// Where the engine's terms come from: fixed data, or the live SLA reference data.
pub trait SlaTermsSource: Send + Sync + 'static {
    /// Runs `compute` with the terms of a case (borrowed from the source's current data).
    fn with_terms(&self, key: &TermsKey<'_>, compute: &mut dyn FnMut(Terms<'_>));
}

/// Terms from reference data fixed for the life of the source: the bundled data or a
/// city's files, with the grid (for districts' calendars) and the category catalogue.
pub struct FixedSlaTerms {
    policies: PolicySet,
    calendars: CalendarSet,
    grid: Option<SharedGrid>,
    categories: Arc<CategoryCatalogue>,
}

impl FixedSlaTerms {
    pub fn new(
        policies: PolicySet,
        calendars: CalendarSet,
        grid: Option<SharedGrid>,
        categories: Arc<CategoryCatalogue>,
    ) -> Self {
        Self {
            policies,
            calendars,
            grid,
            categories,
        }
    }

    /// The bundled policies, calendars and category catalogue, every district on the
    /// default calendar.
    pub fn bundled() -> Self {
        Self::new(
            PolicySet::bundled(),
            CalendarSet::bundled(),
            None,
            Arc::new(CategoryCatalogue::sample()),
        )
    }

    /// Reference data (a city's files) with districts' calendars from `grid`.
    pub fn from_reference(
        reference: SlaReference,
        grid: SharedGrid,
        categories: Arc<CategoryCatalogue>,
    ) -> Self {
        let (policies, calendars) = reference.into_parts();
        Self::new(policies, calendars, Some(grid), categories)
    }

    /// The bundled data, districts' calendars from `grid`.
    pub fn bundled_with_grid(grid: SharedGrid, categories: Arc<CategoryCatalogue>) -> Self {
        Self::new(
            PolicySet::bundled(),
            CalendarSet::bundled(),
            Some(grid),
            categories,
        )
    }
}

impl std::fmt::Debug for FixedSlaTerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedSlaTerms")
            .field("policies", &self.policies.policies().count())
            .field("calendars", &self.calendars.ids().count())
            .finish_non_exhaustive()
    }
}

/// The policy and calendar of a case under `policies`, `calendars`, the catalogue and the
/// district's calendar id: the one rule every source applies.
pub fn choose_terms<'a>(
    key: &TermsKey<'_>,
    policies: &'a PolicySet,
    calendars: &'a CalendarSet,
    categories: &CategoryCatalogue,
    district_calendar: Option<&str>,
) -> (&'a SlaPolicy, &'a BusinessCalendar) {
    let policy = policies.get_or_default(
        key.category
            .and_then(|code| categories.get(code))
            .map(|category| category.sla_policy()),
    );
    let calendar = key
        .calendar
        .and_then(|id| calendars.get(id))
        .or_else(|| district_calendar.and_then(|id| calendars.get(id)))
        .unwrap_or_else(|| calendars.default_calendar());
    (policy, calendar)
}

impl SlaTermsSource for FixedSlaTerms {
    fn with_terms(&self, key: &TermsKey<'_>, compute: &mut dyn FnMut(Terms<'_>)) {
        let district_calendar = self.grid.as_ref().and_then(|grid| {
            grid.load()
                .calendar_of(key.district)
                .map(|id| id.to_owned())
        });
        let (policy, calendar) = choose_terms(
            key,
            &self.policies,
            &self.calendars,
            &self.categories,
            district_calendar.as_deref(),
        );
        compute(Terms::new(policy, calendar));
    }
}

/// Terms from the live SLA data (the files, then every publication on the SLA stream), as
/// they stand when each command is decided: a calendar published at run time gives the next
/// commit's clock its holidays at once.
pub struct LiveSlaTerms {
    sla: SharedSla,
    grid: SharedGrid,
    categories: Arc<CategoryCatalogue>,
}

impl LiveSlaTerms {
    pub fn new(sla: SharedSla, grid: SharedGrid, categories: Arc<CategoryCatalogue>) -> Self {
        Self {
            sla,
            grid,
            categories,
        }
    }
}

impl std::fmt::Debug for LiveSlaTerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSlaTerms")
            .field("sla", &self.sla)
            .finish_non_exhaustive()
    }
}

impl SlaTermsSource for LiveSlaTerms {
    fn with_terms(&self, key: &TermsKey<'_>, compute: &mut dyn FnMut(Terms<'_>)) {
        let district_calendar = self
            .grid
            .load()
            .calendar_of(key.district)
            .map(|id| id.to_owned());
        let sla = self.sla.load();
        let (policy, calendar) = choose_terms(
            key,
            sla.policies(),
            sla.calendars(),
            &self.categories,
            district_calendar.as_deref(),
        );
        compute(Terms::new(policy, calendar));
    }
}

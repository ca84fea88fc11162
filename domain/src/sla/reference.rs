//! The SLA reference data as one value: the policies and the calendars every deadline is
//! computed from, and how a publish changes them.
//!
//! [`SlaReference`] is what a shell holds (the bundled files, an operator's files, and then
//! the SLA stream folded over them, see [`super::LiveSla`]). A publish is an upsert: a
//! published calendar replaces the one with its id and a published policy the one with its
//! name, the others stay, and only what the event lists in `removed` goes. The result is
//! checked whole, by the same rules a file is ([`CalendarSet::from_file`],
//! [`PolicySet::from_file`]), so a reference that exists is always a valid one.

use std::collections::{BTreeMap, BTreeSet};

use wangge_schemas::sla::{
    CalendarFile, CalendarSpec, CalendarsPublished, PoliciesPublished, PolicyFile, SlaEvent,
    SlaPolicy,
};

use super::calendar::{BusinessCalendar, CalendarSet};
use super::error::SlaDataError;
use super::policy::PolicySet;

/// The policies and calendars SLA deadlines are computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaReference {
    policies: PolicySet,
    calendars: CalendarSet,
}

impl SlaReference {
    pub fn new(policies: PolicySet, calendars: CalendarSet) -> Self {
        Self {
            policies,
            calendars,
        }
    }

    /// The data bundled with the engine (`deploy/sla/`), so tests and the demo need no files.
    pub fn bundled() -> Self {
        Self::new(PolicySet::bundled(), CalendarSet::bundled())
    }

    /// Both files' text, each checked by its own rules.
    pub fn from_json(calendars_json: &str, policies_json: &str) -> Result<Self, SlaDataError> {
        Ok(Self::new(
            PolicySet::from_json(policies_json)?,
            CalendarSet::from_json(calendars_json)?,
        ))
    }

    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    pub fn calendars(&self) -> &CalendarSet {
        &self.calendars
    }

    /// The calendar with `id`; the default one when `id` is `None` or names no calendar (a
    /// district is never left without working time).
    pub fn calendar(&self, id: Option<&str>) -> &BusinessCalendar {
        id.and_then(|id| self.calendars.get(id))
            .unwrap_or_else(|| self.calendars.default_calendar())
    }

    /// The policy named `name`; the default one when `name` is `None` or names no policy.
    pub fn policy(&self, name: Option<&str>) -> &SlaPolicy {
        self.policies.get_or_default(name)
    }

    pub fn into_parts(self) -> (PolicySet, CalendarSet) {
        (self.policies, self.calendars)
    }

    /// The reference once `event` is published over it, or why the result would not be a
    /// valid reference (nothing changes then). The fold's step; a command's checks run it
    /// too, on the reference they checked against.
    pub fn published(&self, event: &SlaEvent) -> Result<Self, SlaDataError> {
        match event {
            SlaEvent::CalendarsPublished(published) => Ok(Self {
                policies: self.policies.clone(),
                calendars: self.with_calendars(published)?,
            }),
            SlaEvent::PoliciesPublished(published) => Ok(Self {
                policies: self.with_policies(published)?,
                calendars: self.calendars.clone(),
            }),
        }
    }

    fn with_calendars(&self, published: &CalendarsPublished) -> Result<CalendarSet, SlaDataError> {
        let current = self.calendars.to_file();
        let by_id = upsert(
            current.calendars,
            &published.calendars,
            &published.removed,
            |spec: &CalendarSpec| &spec.id,
            "calendar",
        )?;
        CalendarSet::from_file(CalendarFile {
            default_calendar: published
                .default_calendar
                .clone()
                .unwrap_or(current.default_calendar),
            calendars: by_id,
        })
    }

    fn with_policies(&self, published: &PoliciesPublished) -> Result<PolicySet, SlaDataError> {
        let current = self.policies.to_file();
        let by_name = upsert(
            current.policies,
            &published.policies,
            &published.removed,
            |policy: &SlaPolicy| &policy.name,
            "policy",
        )?;
        PolicySet::from_file(PolicyFile {
            default_policy: published
                .default_policy
                .clone()
                .unwrap_or(current.default_policy),
            policies: by_name,
        })
    }
}

/// `current` without the `removed` keys, then with every item of `published` in place of
/// the one with its key. Removals go first, so an item both removed and published stays
/// published. A key published twice is refused: which one was meant is not said.
fn upsert<T: Clone>(
    current: Vec<T>,
    published: &[T],
    removed: &[String],
    key: impl Fn(&T) -> &String,
    what: &str,
) -> Result<Vec<T>, SlaDataError> {
    let mut seen = BTreeSet::new();
    for item in published {
        if !seen.insert(key(item)) {
            return Err(SlaDataError::invalid(
                format!("published {what}s"),
                format!("{what} `{}` is published twice", key(item)),
            ));
        }
    }
    let mut by_key: BTreeMap<String, T> = current
        .into_iter()
        .map(|item| (key(&item).clone(), item))
        .collect();
    for gone in removed {
        by_key.remove(gone);
    }
    for item in published {
        by_key.insert(key(item).clone(), item.clone());
    }
    Ok(by_key.into_values().collect())
}

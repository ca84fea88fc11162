//! The reference data of release 0.1, frozen: the clocks of commits written before clocks
//! were recorded in the log are computed under it, exactly as the engine of that release
//! computed them, so such a history folds the same today and in ten years.
//!
//! Release 0.1 computed deadlines when it read the log, from the policies and the 2026
//! calendar compiled into it; its policies said `minutes` for plain clock minutes (here
//! `clock_minutes`), and a category's policy came from the category catalogue, else from
//! the policy file's mapping by dotted prefix. Those files are kept beside this module and
//! never edited: changing them would change what old histories mean.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use wangge_schemas::sla::{PolicyFile, SlaPolicy};

use super::calendar::{BusinessCalendar, CalendarSet};
use super::deadlines::Terms;
use super::policy::PolicySet;

const CALENDARS_JSON: &str = include_str!("legacy/calendars-2026.json");
const POLICIES_JSON: &str = include_str!("legacy/policies-0.1.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyPolicies {
    #[allow(dead_code)]
    note: String,
    /// The category catalogue's `sla_policy` of each category, as release 0.1 shipped it.
    catalogue_policies: BTreeMap<String, String>,
    /// Category code or dotted prefix → policy, for categories the catalogue did not know.
    prefix_policies: BTreeMap<String, String>,
    default_policy: String,
    policies: Vec<SlaPolicy>,
}

struct Legacy {
    policies: PolicySet,
    calendars: CalendarSet,
    catalogue_policies: BTreeMap<String, String>,
    prefix_policies: BTreeMap<String, String>,
}

fn legacy() -> &'static Legacy {
    static LEGACY: OnceLock<Legacy> = OnceLock::new();
    LEGACY.get_or_init(|| {
        let file: LegacyPolicies =
            serde_json::from_str(POLICIES_JSON).expect("the frozen 0.1 policies are valid");
        Legacy {
            policies: PolicySet::from_file(PolicyFile {
                default_policy: file.default_policy,
                policies: file.policies,
            })
            .expect("the frozen 0.1 policies are valid"),
            calendars: CalendarSet::from_json(CALENDARS_JSON)
                .expect("the frozen 2026 calendar is valid"),
            catalogue_policies: file.catalogue_policies,
            prefix_policies: file.prefix_policies,
        }
    })
}

/// The policy release 0.1 gave a case reported under `category`.
pub fn policy_for(category: &str) -> &'static SlaPolicy {
    let legacy = legacy();
    if let Some(policy) = legacy
        .catalogue_policies
        .get(category)
        .and_then(|name| legacy.policies.get(name))
    {
        return policy;
    }
    let mut key = category;
    loop {
        if let Some(policy) = legacy
            .prefix_policies
            .get(key)
            .and_then(|name| legacy.policies.get(name))
        {
            return policy;
        }
        match key.rfind('.') {
            Some(dot) => key = &key[..dot],
            None => return legacy.policies.default_policy(),
        }
    }
}

/// The calendar release 0.1 computed every case in (the 2026 national calendar).
pub fn calendar() -> &'static BusinessCalendar {
    legacy().calendars.default_calendar()
}

/// The terms release 0.1 computed the clocks of a case reported under `category` in.
pub fn terms_for(category: &str) -> Terms<'static> {
    Terms::new(policy_for(category), calendar())
}

/// A compact handle on a release 0.1 policy, for holders of many cases (the timer book).
pub fn policy_index(category: &str) -> u8 {
    let name = &policy_for(category).name;
    legacy()
        .policies
        .policies()
        .position(|policy| &policy.name == name)
        .and_then(|index| u8::try_from(index).ok())
        .unwrap_or(u8::MAX)
}

/// The terms of a [`policy_index`].
pub fn terms_at(index: u8) -> Terms<'static> {
    let legacy = legacy();
    let policy = legacy
        .policies
        .policies()
        .nth(usize::from(index))
        .unwrap_or_else(|| legacy.policies.default_policy());
    Terms::new(policy, calendar())
}

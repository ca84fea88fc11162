//! SLA policies as data: how long each step of the closed loop may take, when to warn, and
//! the escalation ladder after a breach.
//!
//! Policies live in `deploy/sla/policies.json` (the format is described in
//! `deploy/sla/README.md`) and are chosen per case category: an exact category code first,
//! then its dotted prefixes (`sanitation.road_dirty`, then `sanitation`), then the default.
//!
//! # Clocks
//!
//! A `business` policy counts `working_hours` and `working_days` in the district's
//! [`BusinessCalendar`](super::BusinessCalendar) and `minutes` on the plain clock. A
//! `continuous` policy (emergencies) ignores the calendar: an hour is sixty minutes, a day
//! twenty-four hours, holidays included.
//!
//! # Escalation ladders
//!
//! A ladder belongs to one step. Its first level falls due `after` its limit past the step's
//! deadline, each further level `after` its limit past the level before, all counted on the
//! step's own clock (so a suspension delays them too). The actions are facts the timer
//! service turns into commands: `reassign_in_cell` (another worker of the same cell) and
//! `escalate_tier` (the cell above, 大事全网联动). Either action restarts the step, which
//! ends its ladder; a level the timer cannot carry out (nobody else on duty, the district
//! already answers) simply gives way to the next one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use wangge_schemas::{Priority, SlaStep, TimeLimit};

use super::error::{parse_json, SlaDataError};

/// The bundled policies, so tests and the demo need no files.
pub const BUNDLED_POLICIES_JSON: &str = include_str!("../../../deploy/sla/policies.json");

/// The share of a limit, in percent, at which a warning fires unless a policy says otherwise
/// (the supervisors' traffic light turns yellow).
pub const DEFAULT_WARNING_PERCENT: u8 = 80;

fn default_warning_percent() -> u8 {
    DEFAULT_WARNING_PERCENT
}

/// How a policy's limits are counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaClock {
    /// Working time of the business calendar (`minutes` stay plain clock minutes).
    #[default]
    Business,
    /// Plain clock time, day and night, holidays included (emergencies).
    Continuous,
}

/// One step's limit, per priority. A priority without its own entry uses `all`; before a
/// case is accepted its priority is unknown and `all` applies, else `normal`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepTargets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<TimeLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgent: Option<TimeLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<TimeLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normal: Option<TimeLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<TimeLimit>,
}

impl StepTargets {
    /// The same limit for every priority.
    pub fn all(limit: TimeLimit) -> Self {
        Self {
            all: Some(limit),
            ..Self::default()
        }
    }

    /// The limit for a case of `priority` (`None`: not accepted yet).
    pub fn limit_for(&self, priority: Option<Priority>) -> Option<TimeLimit> {
        let own = match priority {
            Some(Priority::Urgent) => self.urgent,
            Some(Priority::High) => self.high,
            Some(Priority::Normal) => self.normal,
            Some(Priority::Low) => self.low,
            None => None,
        };
        match priority {
            Some(_) => own.or(self.all),
            None => self.all.or(self.normal),
        }
    }

    fn limits(&self) -> impl Iterator<Item = TimeLimit> {
        [self.all, self.urgent, self.high, self.normal, self.low]
            .into_iter()
            .flatten()
    }
}

/// What the timer service does when an escalation level falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationAction {
    /// Give the task to another worker of the same cell.
    ReassignInCell,
    /// Move the case to the tier above (building → community → district).
    EscalateTier,
}

/// One rung of a ladder: `action`, `after` the previous rung (the first: after the deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    pub action: EscalationAction,
    pub after: TimeLimit,
}

/// Limits, warning threshold, clock and escalation ladders for a kind of case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    /// Stable name that the category assignments refer to, e.g. `standard`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub clock: SlaClock,
    /// Share of a limit (1..=99 percent) at which a warning fires.
    #[serde(default = "default_warning_percent")]
    pub warning_percent: u8,
    /// The limit of each timed step; a step without an entry is not timed.
    pub targets: BTreeMap<SlaStep, StepTargets>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub escalation: BTreeMap<SlaStep, Vec<EscalationLevel>>,
}

impl SlaPolicy {
    /// The limit of `step` for a case of `priority` (`None`: not accepted yet), or `None`
    /// when the policy does not time that step.
    pub fn limit(&self, step: SlaStep, priority: Option<Priority>) -> Option<TimeLimit> {
        self.targets.get(&step)?.limit_for(priority)
    }

    /// The escalation ladder of `step`, lowest rung first (empty if it has none).
    pub fn ladder(&self, step: SlaStep) -> &[EscalationLevel] {
        self.escalation.get(&step).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Checks what serde cannot: a name, a warning share of 1..=99 percent, limits of at
    /// least one unit, at least one timed step, and ladders only on timed steps.
    pub fn validate(&self) -> Result<(), SlaDataError> {
        let what = format!("sla policy `{}`", self.name);
        if self.name.trim().is_empty() {
            return Err(SlaDataError::invalid(
                "sla policy",
                "`name` must not be empty",
            ));
        }
        if !(1..=99).contains(&self.warning_percent) {
            return Err(SlaDataError::invalid(
                what,
                format!(
                    "warning_percent must be 1 to 99, got {}",
                    self.warning_percent
                ),
            ));
        }
        if self
            .targets
            .values()
            .all(|targets| targets.limits().next().is_none())
        {
            return Err(SlaDataError::invalid(what, "targets time no step"));
        }
        for (step, targets) in &self.targets {
            if targets.limits().any(|limit| limit.amount == 0) {
                return Err(SlaDataError::invalid(
                    what,
                    format!("targets.{}: a limit must be at least 1", step_name(*step)),
                ));
            }
        }
        for (step, ladder) in &self.escalation {
            if !self.targets.contains_key(step) {
                return Err(SlaDataError::invalid(
                    what,
                    format!(
                        "escalation.{0} has no target: step {0} is not timed",
                        step_name(*step)
                    ),
                ));
            }
            if ladder.iter().any(|level| level.after.amount == 0) {
                return Err(SlaDataError::invalid(
                    what,
                    format!(
                        "escalation.{}: `after` must be at least 1",
                        step_name(*step)
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn step_name(step: SlaStep) -> &'static str {
    match step {
        SlaStep::Accept => "accept",
        SlaStep::Dispatch => "dispatch",
        SlaStep::Acknowledge => "acknowledge",
        SlaStep::Resolve => "resolve",
        SlaStep::Verify => "verify",
    }
}

/// `policies.json`: the policies, which categories use which, and the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub default_policy: String,
    /// Category code or dotted prefix → policy name.
    #[serde(default)]
    pub categories: BTreeMap<String, String>,
    pub policies: Vec<SlaPolicy>,
}

/// The policies by name, and the category assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    default_policy: String,
    categories: BTreeMap<String, String>,
    policies: BTreeMap<String, SlaPolicy>,
}

impl PolicySet {
    pub fn from_json(json: &str) -> Result<Self, SlaDataError> {
        Self::from_file(parse_json(json, "sla policy file")?)
    }

    /// Checks every policy, unique names, and that the default and every assignment name
    /// an existing policy.
    pub fn from_file(file: PolicyFile) -> Result<Self, SlaDataError> {
        let mut policies = BTreeMap::new();
        for policy in file.policies {
            policy.validate()?;
            let name = policy.name.clone();
            if policies.insert(name.clone(), policy).is_some() {
                return Err(SlaDataError::invalid(
                    "sla policy file",
                    format!("policy `{name}` appears twice"),
                ));
            }
        }
        let known: BTreeSet<&String> = policies.keys().collect();
        if !known.contains(&file.default_policy) {
            return Err(SlaDataError::invalid(
                "sla policy file",
                format!(
                    "default_policy `{}` is not one of the policies",
                    file.default_policy
                ),
            ));
        }
        for (category, policy) in &file.categories {
            if !known.contains(policy) {
                return Err(SlaDataError::invalid(
                    "sla policy file",
                    format!("category `{category}` names unknown policy `{policy}`"),
                ));
            }
        }
        Ok(Self {
            default_policy: file.default_policy,
            categories: file.categories,
            policies,
        })
    }

    /// The policies bundled with the engine (`deploy/sla/policies.json`).
    pub fn bundled() -> Self {
        Self::from_json(BUNDLED_POLICIES_JSON).expect("the bundled sla policies are valid")
    }

    pub fn get(&self, name: &str) -> Option<&SlaPolicy> {
        self.policies.get(name)
    }

    pub fn default_policy(&self) -> &SlaPolicy {
        self.policies
            .get(&self.default_policy)
            .expect("the default policy is checked to exist when the set is built")
    }

    /// The policy of a category: its exact code, else its longest dotted prefix that is
    /// assigned, else the default.
    pub fn for_category(&self, category: &str) -> &SlaPolicy {
        let mut key = category;
        loop {
            if let Some(policy) = self.categories.get(key).and_then(|name| self.get(name)) {
                return policy;
            }
            match key.rfind('.') {
                Some(dot) => key = &key[..dot],
                None => return self.default_policy(),
            }
        }
    }

    pub fn policies(&self) -> impl Iterator<Item = &SlaPolicy> {
        self.policies.values()
    }

    pub fn to_file(&self) -> PolicyFile {
        PolicyFile {
            default_policy: self.default_policy.clone(),
            categories: self.categories.clone(),
            policies: self.policies.values().cloned().collect(),
        }
    }
}

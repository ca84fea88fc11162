//! SLA policies as data: how long each step of the closed loop may take, when to warn, and
//! the escalation ladder after a breach.
//!
//! Policies live in `deploy/sla/policies.json` (the format is [`PolicyFile`], described in
//! `deploy/sla/README.md`). Which policy a case runs under is said in one place only: the
//! category catalogue's `sla_policy` for the case's category (`deploy/grid/categories.json`),
//! else the file's `default_policy`.
//!
//! # Units
//!
//! Every limit names its unit, and the unit alone says how the step's time is counted:
//! `working_minutes`, `working_hours` and `working_days` in the district's
//! [`BusinessCalendar`](super::BusinessCalendar); `clock_minutes`, `clock_hours` and
//! `calendar_days` on the plain clock, day and night, holidays included (emergencies).
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

use wangge_schemas::sla::{PolicyFile, SlaPolicy};
use wangge_schemas::SlaStep;

use super::error::{parse_json, SlaDataError};

/// The bundled policies, so tests and the demo need no files.
pub const BUNDLED_POLICIES_JSON: &str = include_str!("../../../deploy/sla/policies.json");

/// Checks what serde cannot: a name, a warning share of 1..=99 percent, limits of at least
/// one unit, at least one timed step, and ladders only on timed steps.
pub fn check_policy(policy: &SlaPolicy) -> Result<(), SlaDataError> {
    let what = format!("sla policy `{}`", policy.name);
    if policy.name.trim().is_empty() {
        return Err(SlaDataError::invalid(
            "sla policy",
            "`name` must not be empty",
        ));
    }
    if !(1..=99).contains(&policy.warning_percent) {
        return Err(SlaDataError::invalid(
            what,
            format!(
                "warning_percent must be 1 to 99, got {}",
                policy.warning_percent
            ),
        ));
    }
    if policy
        .targets
        .values()
        .all(|targets| targets.limits().next().is_none())
    {
        return Err(SlaDataError::invalid(what, "targets time no step"));
    }
    for (step, targets) in &policy.targets {
        if targets.limits().any(|limit| limit.amount == 0) {
            return Err(SlaDataError::invalid(
                what,
                format!("targets.{}: a limit must be at least 1", step_name(*step)),
            ));
        }
    }
    for (step, ladder) in &policy.escalation {
        if !policy.targets.contains_key(step) {
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

/// The step's name as policy files write it.
pub fn step_name(step: SlaStep) -> &'static str {
    match step {
        SlaStep::Accept => "accept",
        SlaStep::Dispatch => "dispatch",
        SlaStep::Acknowledge => "acknowledge",
        SlaStep::Resolve => "resolve",
        SlaStep::Verify => "verify",
    }
}

/// The policies by name, and the default one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    default_policy: String,
    policies: BTreeMap<String, SlaPolicy>,
}

impl PolicySet {
    pub fn from_json(json: &str) -> Result<Self, SlaDataError> {
        Self::from_file(parse_json(json, "sla policy file")?)
    }

    /// Checks every policy, unique names, and that the default names an existing policy.
    pub fn from_file(file: PolicyFile) -> Result<Self, SlaDataError> {
        let mut policies = BTreeMap::new();
        for policy in file.policies {
            check_policy(&policy)?;
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
        Ok(Self {
            default_policy: file.default_policy,
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

    pub fn default_name(&self) -> &str {
        &self.default_policy
    }

    pub fn default_policy(&self) -> &SlaPolicy {
        self.policies
            .get(&self.default_policy)
            .expect("the default policy is checked to exist when the set is built")
    }

    /// The policy named `name`, or the default when `name` is `None` or unknown.
    pub fn get_or_default(&self, name: Option<&str>) -> &SlaPolicy {
        name.and_then(|name| self.get(name))
            .unwrap_or_else(|| self.default_policy())
    }

    pub fn policies(&self) -> impl Iterator<Item = &SlaPolicy> {
        self.policies.values()
    }

    pub fn to_file(&self) -> PolicyFile {
        PolicyFile {
            default_policy: self.default_policy.clone(),
            policies: self.policies.values().cloned().collect(),
        }
    }
}

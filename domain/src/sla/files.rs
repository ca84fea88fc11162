//! An operator's SLA files checked as strictly as a publish: the first problem is named by
//! its JSON path in the file (`calendars[0].holidays[2].to`) and its reason, so an engine
//! started with `--sla-dir` refuses a bad file with the same words `wangge sla publish`
//! would get back.

use serde::de::DeserializeOwned;
use serde_json::Value;
use wangge_schemas::sla::{CalendarFile, PolicyFile};

use super::calendar::CalendarSet;
use super::commands::{check_calendar_limits, check_policy_limits, typed_at, SlaRejection};
use super::policy::PolicySet;
use super::rules::{check_calendar_rules, check_policy_rules};

/// A calendars file (`calendars.json`), checked.
pub fn read_calendar_file(json: &str) -> Result<CalendarSet, SlaRejection> {
    let file: CalendarFile = parse(json)?;
    for (index, spec) in file.calendars.iter().enumerate() {
        let at = format!("calendars[{index}]");
        check_calendar_limits(&at, spec)?;
        check_calendar_rules(&at, spec)?;
        if file.calendars[..index]
            .iter()
            .any(|earlier| earlier.id == spec.id)
        {
            return Err(SlaRejection::at(
                "duplicate_calendar",
                &format!("{at}.id"),
                format!("calendar id `{}` appears twice", spec.id),
            ));
        }
    }
    if !file
        .calendars
        .iter()
        .any(|spec| spec.id == file.default_calendar)
    {
        return Err(SlaRejection::at(
            "unknown_calendar",
            "default_calendar",
            format!(
                "default_calendar `{}` is not one of the calendars",
                file.default_calendar
            ),
        ));
    }
    CalendarSet::from_file(file)
        .map_err(|error| SlaRejection::new("invalid_value", None, error.to_string()))
}

/// A policies file (`policies.json`), checked.
pub fn read_policy_file(json: &str) -> Result<PolicySet, SlaRejection> {
    let file: PolicyFile = parse(json)?;
    for (index, policy) in file.policies.iter().enumerate() {
        let at = format!("policies[{index}]");
        check_policy_limits(&at, policy)?;
        check_policy_rules(&at, policy)?;
        if file.policies[..index]
            .iter()
            .any(|earlier| earlier.name == policy.name)
        {
            return Err(SlaRejection::at(
                "duplicate_policy",
                &format!("{at}.name"),
                format!("policy `{}` appears twice", policy.name),
            ));
        }
    }
    if !file
        .policies
        .iter()
        .any(|policy| policy.name == file.default_policy)
    {
        return Err(SlaRejection::at(
            "unknown_policy",
            "default_policy",
            format!(
                "default_policy `{}` is not one of the policies",
                file.default_policy
            ),
        ));
    }
    PolicySet::from_file(file)
        .map_err(|error| SlaRejection::new("invalid_value", None, error.to_string()))
}

fn parse<T: DeserializeOwned>(json: &str) -> Result<T, SlaRejection> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| SlaRejection::new("malformed_json", None, format!("not valid json: {e}")))?;
    typed_at("", value)
}

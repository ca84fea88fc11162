//! Checks an SLA command and says exactly what is wrong with it: which JSON path, and why.
//!
//! Pure: bytes in, an [`SlaCommand`] or an [`SlaRejection`] out ([`parse_sla_command`]), then
//! the command against the live reference data, the grid and the category catalogue
//! ([`check_sla_against`]). The checks run from the outside in — size, JSON syntax,
//! top-level fields, event type, schema version, shape (the rules of the committed JSON
//! Schema `schemas/json/sla/command.json`: types, required and unknown fields, the interval
//! and offset formats), text limits and ids, each calendar's and policy's own rules
//! ([`rules`](super::rules)), and last what the publish would do to the data in use — so the
//! first problem a sender has to fix is the one reported.

use wangge_schemas::sla::{
    current_sla_schema_version, CalendarSpec, CalendarsPublished, PoliciesPublished, SlaCommand,
    SlaEvent, SlaPolicy, MAX_SLA_COMMAND_BYTES, MAX_SLA_ID_CHARS, MAX_SLA_LIST_ITEMS,
    MAX_SLA_NAME_CHARS, MAX_SLA_TEXT_CHARS, SLA_COMMAND_FIELDS, SLA_EVENT_CATALOGUE,
};
use wangge_schemas::{Actor, Source};

use super::reference::SlaReference;
use super::rules::{check_calendar_rules, check_policy_rules};
pub(super) use crate::command_checks::join;
use crate::command_checks::{
    self, command_object, field_of, occurred_at, read_event_type, read_schema_version, Refusal,
};
use crate::grid::{CategoryCatalogue, GridState};

/// Why an SLA command (or an SLA file) was refused, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaRejection {
    /// Stable, machine-readable (part of the reply contract): see [`SLA_REJECT_CODES`].
    pub code: &'static str,
    /// JSON path of the offending field (`payload.calendars[0].holidays[2].to`); `None`
    /// when the problem is the message as a whole.
    pub field: Option<String>,
    pub reason: String,
}

/// Every code an SLA command can be refused with.
pub const SLA_REJECT_CODES: &[&str] = &[
    "payload_too_large",
    "malformed_json",
    "control_character",
    "invalid_type",
    "missing_field",
    "unknown_field",
    "unknown_event_type",
    "unsupported_version",
    "invalid_value",
    "empty_text",
    "text_too_long",
    "too_many_items",
    "invalid_id",
    "duplicate_calendar",
    "duplicate_policy",
    "overlapping_intervals",
    "no_working_time",
    "make_up_day_without_hours",
    "invalid_holiday",
    "make_up_day_is_holiday",
    "no_timed_step",
    "untimed_escalation",
    "unknown_calendar",
    "unknown_policy",
    "calendar_in_use",
    "policy_in_use",
    "published_through_backwards",
    "contended",
    "unavailable",
    // The sender, as NATS proved it, may not send this command.
    "unauthenticated",
    "forbidden",
    "identity_mismatch",
];

impl SlaRejection {
    pub fn new(code: &'static str, field: Option<&str>, reason: impl Into<String>) -> Self {
        debug_assert!(SLA_REJECT_CODES.contains(&code), "{code} is listed");
        Self {
            code,
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }

    pub fn at(code: &'static str, field: &str, reason: impl Into<String>) -> Self {
        Self::new(code, Some(field), reason)
    }
}

impl From<Refusal> for SlaRejection {
    fn from(refusal: Refusal) -> Self {
        debug_assert!(SLA_REJECT_CODES.contains(&refusal.code), "{refusal:?}");
        Self {
            code: refusal.code,
            field: refusal.field,
            reason: refusal.reason,
        }
    }
}

impl std::fmt::Display for SlaRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} at `{field}`: {}", self.code, self.reason),
            None => write!(f, "{}: {}", self.code, self.reason),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parsing: everything that does not depend on the data in use
// ---------------------------------------------------------------------------------------

/// Parses one SLA command and checks everything that does not depend on the live data:
/// shape, limits, and each calendar's and policy's own rules.
pub fn parse_sla_command(bytes: &[u8]) -> Result<SlaCommand, SlaRejection> {
    let mut object = command_object(bytes, MAX_SLA_COMMAND_BYTES, SLA_COMMAND_FIELDS)?;
    let event_type = read_event_type(object.get("event_type"), SLA_EVENT_CATALOGUE, "sla")?;
    let current = current_sla_schema_version(event_type)
        .expect("read_event_type lets only catalogued types through");
    read_schema_version(event_type, current, object.get("schema_version"))?;
    let source: Source = field_of(&mut object, "source")?;
    let actor: Actor = field_of(&mut object, "actor")?;
    let occurred_at = occurred_at(&mut object)?;
    let payload = object.remove("payload").ok_or_else(|| {
        SlaRejection::at("missing_field", "payload", "field `payload` is required")
    })?;
    let event = match event_type {
        "sla.calendars_published" => {
            SlaEvent::CalendarsPublished(typed_at::<CalendarsPublished>("payload", payload)?)
        }
        "sla.policies_published" => {
            SlaEvent::PoliciesPublished(typed_at::<PoliciesPublished>("payload", payload)?)
        }
        other => unreachable!("read_event_type lets only catalogued types through, not {other}"),
    };
    let command = SlaCommand {
        schema_version: event.schema_version(),
        event,
        source,
        actor,
        occurred_at,
    };
    check_limits(&command)?;
    check_own_rules(&command.event)?;
    Ok(command)
}

/// Deserializes `value` found at `prefix` (`""`: the top of a file), naming the offending
/// field under it.
pub(super) fn typed_at<T: serde::de::DeserializeOwned>(
    prefix: &str,
    value: serde_json::Value,
) -> Result<T, SlaRejection> {
    Ok(command_checks::typed_at(prefix, value)?)
}

// ---------------------------------------------------------------------------------------
// Limits and ids
// ---------------------------------------------------------------------------------------

fn check_text(
    field: &str,
    text: &str,
    max_chars: usize,
    required: bool,
) -> Result<(), SlaRejection> {
    Ok(command_checks::check_text(
        field, text, max_chars, required,
    )?)
}

/// A calendar id or a policy name: other data names it (a district's `calendar`, a
/// category's `sla_policy`), so it is a short word of ASCII letters, digits, `-`, `_`, `.`.
fn check_name(field: &str, name: &str) -> Result<(), SlaRejection> {
    check_text(field, name, MAX_SLA_NAME_CHARS, true)?;
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Ok(());
    }
    Err(SlaRejection::at(
        "invalid_id",
        field,
        format!("`{name}` is not a valid id: 1 to {MAX_SLA_NAME_CHARS} ASCII letters, digits, `-`, `_` or `.`"),
    ))
}

fn check_list(field: &str, len: usize) -> Result<(), SlaRejection> {
    Ok(command_checks::check_list(field, len, MAX_SLA_LIST_ITEMS)?)
}

fn check_limits(command: &SlaCommand) -> Result<(), SlaRejection> {
    check_text(
        "source.system",
        &command.source.system,
        MAX_SLA_ID_CHARS,
        true,
    )?;
    check_text(
        "source.message_id",
        &command.source.message_id,
        MAX_SLA_ID_CHARS,
        true,
    )?;
    check_text("actor.id", &command.actor.id, MAX_SLA_ID_CHARS, true)?;
    match &command.event {
        SlaEvent::CalendarsPublished(published) => {
            check_list("payload.calendars", published.calendars.len())?;
            for (index, spec) in published.calendars.iter().enumerate() {
                check_calendar_limits(&format!("payload.calendars[{index}]"), spec)?;
            }
            if let Some(default) = &published.default_calendar {
                check_name("payload.default_calendar", default)?;
            }
            check_removed_names(&published.removed)
        }
        SlaEvent::PoliciesPublished(published) => {
            check_list("payload.policies", published.policies.len())?;
            for (index, policy) in published.policies.iter().enumerate() {
                check_policy_limits(&format!("payload.policies[{index}]"), policy)?;
            }
            if let Some(default) = &published.default_policy {
                check_name("payload.default_policy", default)?;
            }
            check_removed_names(&published.removed)
        }
    }
}

fn check_removed_names(removed: &[String]) -> Result<(), SlaRejection> {
    check_list("payload.removed", removed.len())?;
    for (index, name) in removed.iter().enumerate() {
        check_name(&format!("payload.removed[{index}]"), name)?;
    }
    Ok(())
}

/// The text limits of one calendar found at `at`.
pub(super) fn check_calendar_limits(at: &str, spec: &CalendarSpec) -> Result<(), SlaRejection> {
    check_name(&join(at, "id"), &spec.id)?;
    check_text(&join(at, "name"), &spec.name, MAX_SLA_TEXT_CHARS, true)?;
    check_text(
        &join(at, "time_zone"),
        &spec.time_zone,
        MAX_SLA_NAME_CHARS,
        true,
    )?;
    check_list(&join(at, "holidays"), spec.holidays.len())?;
    for (index, holiday) in spec.holidays.iter().enumerate() {
        check_text(
            &join(at, &format!("holidays[{index}].name")),
            &holiday.name,
            MAX_SLA_TEXT_CHARS,
            true,
        )?;
    }
    check_list(
        &join(at, "make_up_working_days"),
        spec.make_up_working_days.len(),
    )?;
    for (index, day) in spec.make_up_working_days.iter().enumerate() {
        check_text(
            &join(at, &format!("make_up_working_days[{index}].name")),
            &day.name,
            MAX_SLA_TEXT_CHARS,
            true,
        )?;
    }
    Ok(())
}

/// The text limits of one policy found at `at`.
pub(super) fn check_policy_limits(at: &str, policy: &SlaPolicy) -> Result<(), SlaRejection> {
    check_name(&join(at, "name"), &policy.name)?;
    if let Some(description) = &policy.description {
        check_text(
            &join(at, "description"),
            description,
            MAX_SLA_TEXT_CHARS,
            false,
        )?;
    }
    Ok(())
}

/// Each calendar's and policy's own rules, and no id twice in one publish.
fn check_own_rules(event: &SlaEvent) -> Result<(), SlaRejection> {
    match event {
        SlaEvent::CalendarsPublished(published) => {
            for (index, spec) in published.calendars.iter().enumerate() {
                let at = format!("payload.calendars[{index}]");
                check_calendar_rules(&at, spec)?;
                if published.calendars[..index]
                    .iter()
                    .any(|earlier| earlier.id == spec.id)
                {
                    return Err(SlaRejection::at(
                        "duplicate_calendar",
                        &join(&at, "id"),
                        format!("calendar `{}` is published twice", spec.id),
                    ));
                }
            }
            Ok(())
        }
        SlaEvent::PoliciesPublished(published) => {
            for (index, policy) in published.policies.iter().enumerate() {
                let at = format!("payload.policies[{index}]");
                check_policy_rules(&at, policy)?;
                if published.policies[..index]
                    .iter()
                    .any(|earlier| earlier.name == policy.name)
                {
                    return Err(SlaRejection::at(
                        "duplicate_policy",
                        &join(&at, "name"),
                        format!("policy `{}` is published twice", policy.name),
                    ));
                }
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Against the data in use
// ---------------------------------------------------------------------------------------

/// Whether the command may be published over `current`: every calendar a district of the
/// grid names and every policy the category catalogue names still exists afterwards, the
/// defaults exist, nothing removed is in use or unknown, and no calendar's
/// `holidays_published_through` goes backwards. Returns the reference after the publish.
pub fn check_sla_against(
    command: &SlaCommand,
    current: &SlaReference,
    grid: &GridState,
    categories: &CategoryCatalogue,
) -> Result<SlaReference, SlaRejection> {
    match &command.event {
        SlaEvent::CalendarsPublished(published) => {
            check_calendars_against(published, current, grid)?
        }
        SlaEvent::PoliciesPublished(published) => {
            check_policies_against(published, current, categories)?
        }
    }
    // The fold's own step on a copy: what the stream will hold must fold.
    current
        .published(&command.event)
        .map_err(|error| SlaRejection::at("invalid_value", "payload", error.to_string()))
}

fn check_calendars_against(
    published: &CalendarsPublished,
    current: &SlaReference,
    grid: &GridState,
) -> Result<(), SlaRejection> {
    let calendars = current.calendars();
    let is_published = |id: &str| published.calendars.iter().any(|spec| spec.id == id);
    let default = published
        .default_calendar
        .as_deref()
        .unwrap_or(calendars.default_id());
    for (index, id) in published.removed.iter().enumerate() {
        let field = format!("payload.removed[{index}]");
        if is_published(id) {
            return Err(SlaRejection::at(
                "invalid_value",
                &field,
                format!("calendar `{id}` is both published and removed"),
            ));
        }
        if calendars.get(id).is_none() {
            return Err(SlaRejection::at(
                "unknown_calendar",
                &field,
                format!("there is no calendar `{id}` to remove"),
            ));
        }
        if id == default {
            return Err(SlaRejection::at(
                "calendar_in_use",
                &field,
                format!("calendar `{id}` is the default calendar; name another default first"),
            ));
        }
        if let Some((district, _)) = grid
            .district_calendars()
            .find(|(_, calendar)| *calendar == id)
        {
            return Err(SlaRejection::at(
                "calendar_in_use",
                &field,
                format!("district {district} counts its time limits in calendar `{id}`"),
            ));
        }
    }
    let exists_after = |id: &str| {
        is_published(id)
            || (calendars.get(id).is_some() && !published.removed.iter().any(|gone| gone == id))
    };
    if let Some(default) = &published.default_calendar {
        if !exists_after(default) {
            return Err(SlaRejection::at(
                "unknown_calendar",
                "payload.default_calendar",
                format!(
                    "default_calendar `{default}` is neither published here nor a calendar in use"
                ),
            ));
        }
    }
    if let Some((district, id)) = grid
        .district_calendars()
        .find(|(_, calendar)| !exists_after(calendar))
    {
        return Err(SlaRejection::at(
            "unknown_calendar",
            "payload.calendars",
            format!("district {district} counts its time limits in calendar `{id}`, which would not exist; publish it too"),
        ));
    }
    for (index, spec) in published.calendars.iter().enumerate() {
        let Some(earlier) = calendars
            .get(&spec.id)
            .and_then(|calendar| calendar.holidays_published_through())
        else {
            continue;
        };
        let field = format!("payload.calendars[{index}].holidays_published_through");
        match spec.holidays_published_through {
            Some(through) if through >= earlier => {}
            Some(through) => {
                return Err(SlaRejection::at(
                    "published_through_backwards",
                    &field,
                    format!("calendar `{}` has holidays published through {earlier}; {through} would go backwards (publish the earlier years' holidays too)", spec.id),
                ))
            }
            None => {
                return Err(SlaRejection::at(
                    "published_through_backwards",
                    &field,
                    format!("calendar `{}` has holidays published through {earlier}; the published calendar must say through when, {earlier} or later", spec.id),
                ))
            }
        }
    }
    Ok(())
}

fn check_policies_against(
    published: &PoliciesPublished,
    current: &SlaReference,
    categories: &CategoryCatalogue,
) -> Result<(), SlaRejection> {
    let policies = current.policies();
    let is_published = |name: &str| published.policies.iter().any(|policy| policy.name == name);
    let default = published
        .default_policy
        .as_deref()
        .unwrap_or(policies.default_name());
    for (index, name) in published.removed.iter().enumerate() {
        let field = format!("payload.removed[{index}]");
        if is_published(name) {
            return Err(SlaRejection::at(
                "invalid_value",
                &field,
                format!("policy `{name}` is both published and removed"),
            ));
        }
        if policies.get(name).is_none() {
            return Err(SlaRejection::at(
                "unknown_policy",
                &field,
                format!("there is no policy `{name}` to remove"),
            ));
        }
        if name == default {
            return Err(SlaRejection::at(
                "policy_in_use",
                &field,
                format!("policy `{name}` is the default policy; name another default first"),
            ));
        }
        if let Some(category) = categories
            .iter()
            .find(|category| category.sla_policy() == name)
        {
            return Err(SlaRejection::at(
                "policy_in_use",
                &field,
                format!(
                    "category {} ({}) runs under policy `{name}` in the category catalogue",
                    category.code, category.name
                ),
            ));
        }
    }
    let exists_after = |name: &str| {
        is_published(name)
            || (policies.get(name).is_some() && !published.removed.iter().any(|gone| gone == name))
    };
    if let Some(default) = &published.default_policy {
        if !exists_after(default) {
            return Err(SlaRejection::at(
                "unknown_policy",
                "payload.default_policy",
                format!("default_policy `{default}` is neither published here nor a policy in use"),
            ));
        }
    }
    if let Some(category) = categories
        .iter()
        .find(|category| !exists_after(category.sla_policy()))
    {
        return Err(SlaRejection::at(
            "unknown_policy",
            "payload.policies",
            format!(
                "category {} runs under policy `{}` in the category catalogue, which would not exist; publish it too",
                category.code,
                category.sla_policy()
            ),
        ));
    }
    Ok(())
}

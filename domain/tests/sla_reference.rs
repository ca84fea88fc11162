//! SLA reference data at run time, as business rules: a publish replaces what it names and
//! leaves the rest, a refused publish names the JSON path at fault and why, the live data
//! folds every event without ever breaking, and a calendar is flagged 45 days before its
//! holidays run out.

use chrono::NaiveDate;
use serde_json::{json, Value};
use wangge_domain::grid::{CategoryCatalogue, GridState};
use wangge_domain::sla::{
    calendar_coverage, check_sla_against, parse_sla_command, read_calendar_file, read_policy_file,
    LiveSla, SlaCommand, SlaEventEnvelope, SlaReference, SlaRejection, BUNDLED_CALENDARS_JSON,
    BUNDLED_POLICIES_JSON, CALENDAR_WARNING_DAYS, SLA_REJECT_CODES,
};
use wangge_schemas::sla::{sla_event_id, SlaEventMeta};

fn date(text: &str) -> NaiveDate {
    text.parse().expect("a date")
}

/// A made-up calendar for tests, clearly not the State Council's 2027 schedule: its one
/// "holiday" and "make-up day" are invented dates.
fn test_calendar_2027(id: &str) -> Value {
    let mut calendar = bundled_calendar();
    calendar["id"] = json!(id);
    calendar["name"] = json!("TEST calendar for 2027 — not the official schedule");
    let holidays = calendar["holidays"].as_array_mut().expect("holidays");
    holidays
        .push(json!({"name": "TEST holiday (invented)", "from": "2027-01-04", "to": "2027-01-05"}));
    let make_up = calendar["make_up_working_days"]
        .as_array_mut()
        .expect("make-up days");
    make_up.push(json!({"name": "TEST make-up day (invented)", "date": "2027-01-09"}));
    calendar["holidays_published_through"] = json!("2027-12-31");
    calendar
}

fn bundled_calendar() -> Value {
    let file: Value = serde_json::from_str(BUNDLED_CALENDARS_JSON).expect("json");
    file["calendars"][0].clone()
}

fn bundled_policy(name: &str) -> Value {
    let file: Value = serde_json::from_str(BUNDLED_POLICIES_JSON).expect("json");
    file["policies"]
        .as_array()
        .expect("policies")
        .iter()
        .find(|policy| policy["name"] == name)
        .cloned()
        .expect("a bundled policy")
}

fn command(event_type: &str, payload: Value) -> Value {
    json!({
        "event_type": event_type,
        "schema_version": 1,
        "source": {"system": "wangge-cli", "message_id": format!("test-{event_type}")},
        "actor": {"kind": "supervisor", "id": "ops-zhang"},
        "payload": payload,
    })
}

fn calendars_command(payload: Value) -> Value {
    command("sla.calendars_published", payload)
}

fn policies_command(payload: Value) -> Value {
    command("sla.policies_published", payload)
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialize")
}

/// Parses and checks `message` against the bundled data, the sample city and catalogue.
fn publish(message: &Value) -> Result<SlaReference, SlaRejection> {
    publish_over(&SlaReference::bundled(), message)
}

fn publish_over(current: &SlaReference, message: &Value) -> Result<SlaReference, SlaRejection> {
    let command = parse_sla_command(&bytes(message))?;
    check_sla_against(
        &command,
        current,
        &GridState::sample_city(),
        &CategoryCatalogue::sample(),
    )
}

fn refusal(message: &Value) -> SlaRejection {
    match publish(message) {
        Ok(_) => panic!("expected a refusal of {message}"),
        Err(rejection) => {
            assert!(SLA_REJECT_CODES.contains(&rejection.code), "{rejection:?}");
            rejection
        }
    }
}

fn stored(message: &Value, at: &str) -> SlaEventEnvelope {
    let command: SlaCommand = parse_sla_command(&bytes(message)).expect("a valid command");
    let when = at.parse().expect("an instant");
    SlaEventEnvelope::new(
        sla_event_id(&command.source),
        command.event,
        SlaEventMeta {
            occurred_at: when,
            recorded_at: when,
            actor: command.actor,
            source: command.source,
        },
    )
}

// ---------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------

#[test]
fn a_published_calendar_replaces_the_one_with_its_id_and_the_others_stay() {
    let with_shanghai = {
        let mut shanghai = bundled_calendar();
        shanghai["id"] = json!("sh");
        shanghai["name"] = json!("TEST calendar sh");
        publish(&calendars_command(json!({"calendars": [shanghai]}))).expect("sh is added")
    };
    assert_eq!(
        with_shanghai.calendars().ids().collect::<Vec<_>>(),
        ["cn", "sh"]
    );

    let after = publish_over(
        &with_shanghai,
        &calendars_command(json!({"calendars": [test_calendar_2027("cn")]})),
    )
    .expect("the 2027 test calendar is accepted");
    let cn = after.calendar(Some("cn"));
    assert_eq!(
        cn.name(),
        "TEST calendar for 2027 — not the official schedule"
    );
    assert_eq!(cn.holidays_published_through(), Some(date("2027-12-31")));
    assert!(cn.is_holiday(date("2027-01-04")));
    assert!(cn.is_make_up_day(date("2027-01-09")));
    assert_eq!(after.calendar(Some("sh")).name(), "TEST calendar sh");
    assert_eq!(
        after.policies(),
        with_shanghai.policies(),
        "policies untouched"
    );
}

#[test]
fn a_calendars_file_is_a_publish_as_it_is_and_may_name_a_new_default() {
    let mut file: Value = serde_json::from_str(BUNDLED_CALENDARS_JSON).expect("json");
    let mut other = bundled_calendar();
    other["id"] = json!("cn-night-shift");
    file["calendars"].as_array_mut().expect("list").push(other);
    file["default_calendar"] = json!("cn-night-shift");
    let after = publish(&calendars_command(file)).expect("accepted");
    assert_eq!(after.calendars().default_id(), "cn-night-shift");
    assert_eq!(after.calendar(None).id(), "cn-night-shift");
}

#[test]
fn policies_are_upserted_by_name_and_removed_only_when_nothing_uses_them() {
    let mut stricter = bundled_policy("sanitation");
    stricter["warning_percent"] = json!(60);
    let mut spare = bundled_policy("standard");
    spare["name"] = json!("spare");
    let after =
        publish(&policies_command(json!({"policies": [stricter, spare]}))).expect("accepted");
    assert_eq!(after.policy(Some("sanitation")).warning_percent, 60);
    assert_eq!(after.policy(Some("spare")).name, "spare");
    assert_eq!(after.policy(Some("construction")).name, "construction");

    let removed = publish_over(
        &after,
        &policies_command(json!({"policies": [], "removed": ["spare"]})),
    )
    .expect("a policy no category names may go");
    assert!(removed.policies().get("spare").is_none());
}

#[test]
fn an_unknown_or_absent_name_falls_back_to_the_default() {
    let reference = SlaReference::bundled();
    assert_eq!(reference.calendar(None).id(), "cn");
    assert_eq!(reference.calendar(Some("atlantis")).id(), "cn");
    assert_eq!(reference.policy(None).name, "standard");
    assert_eq!(reference.policy(Some("no-such-policy")).name, "standard");
    assert_eq!(reference.policy(Some("utilities")).name, "utilities");
}

// ---------------------------------------------------------------------------------------
// Refusals name the JSON path at fault
// ---------------------------------------------------------------------------------------

#[test]
fn overlapping_working_intervals_are_refused_at_the_later_interval() {
    let mut calendar = test_calendar_2027("cn");
    calendar["working_hours"]["tuesday"] = json!(["13:30-17:30", "08:30-12:00", "11:00-12:30"]);
    let refused = refusal(&calendars_command(json!({"calendars": [calendar]})));
    assert_eq!(refused.code, "overlapping_intervals");
    assert_eq!(
        refused.field.as_deref(),
        Some("payload.calendars[0].working_hours.tuesday[2]")
    );
    assert!(refused.reason.contains("overlap"), "{}", refused.reason);
}

#[test]
fn a_holiday_that_ends_before_it_starts_is_refused_at_its_end() {
    let mut calendar = test_calendar_2027("cn");
    calendar["holidays"][2]["to"] = json!("2026-04-01");
    let refused = refusal(&calendars_command(json!({"calendars": [calendar]})));
    assert_eq!(refused.code, "invalid_holiday");
    assert_eq!(
        refused.field.as_deref(),
        Some("payload.calendars[0].holidays[2].to")
    );
}

#[test]
fn a_holiday_that_is_also_a_make_up_day_is_refused_at_the_make_up_day() {
    let mut calendar = test_calendar_2027("cn");
    calendar["make_up_working_days"][1]["date"] = json!("2026-02-16");
    let refused = refusal(&calendars_command(json!({"calendars": [calendar]})));
    assert_eq!(refused.code, "make_up_day_is_holiday");
    assert_eq!(
        refused.field.as_deref(),
        Some("payload.calendars[0].make_up_working_days[1].date")
    );
    assert!(refused.reason.contains("2026-02-16"), "{}", refused.reason);
}

#[test]
fn an_unknown_field_is_refused_where_it_is() {
    let mut calendar = test_calendar_2027("cn");
    calendar["holidays"][0]["until"] = json!("2026-01-03");
    let refused = refusal(&calendars_command(json!({"calendars": [calendar]})));
    assert_eq!(refused.code, "unknown_field");
    assert_eq!(
        refused.field.as_deref(),
        Some("payload.calendars[0].holidays[0].until")
    );

    let mut top = calendars_command(json!({"calendars": []}));
    top["calendar"] = json!("cn");
    let refused = refusal(&top);
    assert_eq!(
        (refused.code, refused.field.as_deref()),
        ("unknown_field", Some("calendar"))
    );
}

#[test]
fn a_malformed_interval_is_refused_with_its_path() {
    let mut calendar = test_calendar_2027("cn");
    calendar["working_hours"]["monday"][1] = json!("13:30-25:00");
    let refused = refusal(&calendars_command(json!({"calendars": [calendar]})));
    assert_eq!(refused.code, "invalid_value");
    assert_eq!(
        refused.field.as_deref(),
        Some("payload.calendars[0].working_hours.monday[1]")
    );
}

#[test]
fn removing_a_policy_the_catalogue_needs_is_refused() {
    let refused = refusal(&policies_command(
        json!({"policies": [], "removed": ["sanitation_road"]}),
    ));
    assert_eq!(refused.code, "policy_in_use");
    assert_eq!(refused.field.as_deref(), Some("payload.removed[0]"));
    assert!(
        refused.reason.contains("sanitation.road_dirty"),
        "names the category: {}",
        refused.reason
    );
}

#[test]
fn removing_the_default_or_a_calendar_a_district_uses_is_refused() {
    let refused = refusal(&policies_command(
        json!({"policies": [], "removed": ["standard"]}),
    ));
    assert_eq!(
        (refused.code, refused.field.as_deref()),
        ("policy_in_use", Some("payload.removed[0]"))
    );

    let mut other = bundled_calendar();
    other["id"] = json!("spare");
    let refused = refusal(&calendars_command(
        json!({"calendars": [other], "default_calendar": "spare", "removed": ["cn"]}),
    ));
    assert_eq!(refused.code, "calendar_in_use");
    assert_eq!(refused.field.as_deref(), Some("payload.removed[0]"));
    assert!(refused.reason.contains("330106001"), "{}", refused.reason);
}

#[test]
fn holidays_published_through_may_not_go_backwards() {
    let mut calendar = test_calendar_2027("cn");
    calendar["holidays_published_through"] = json!("2026-06-30");
    let refused = refusal(&calendars_command(json!({"calendars": [calendar.clone()]})));
    assert_eq!(refused.code, "published_through_backwards");
    assert_eq!(
        refused.field.as_deref(),
        Some("payload.calendars[0].holidays_published_through")
    );

    calendar
        .as_object_mut()
        .expect("object")
        .remove("holidays_published_through");
    let refused = refusal(&calendars_command(json!({"calendars": [calendar.clone()]})));
    assert_eq!(refused.code, "published_through_backwards");

    // The same date again is not backwards.
    calendar["holidays_published_through"] = json!("2026-12-31");
    assert!(publish(&calendars_command(json!({"calendars": [calendar]}))).is_ok());
}

#[test]
fn a_default_that_does_not_exist_and_an_id_published_twice_are_refused() {
    let refused = refusal(&calendars_command(
        json!({"calendars": [], "default_calendar": "atlantis"}),
    ));
    assert_eq!(
        (refused.code, refused.field.as_deref()),
        ("unknown_calendar", Some("payload.default_calendar"))
    );

    let refused = refusal(&calendars_command(json!({"calendars": [
        test_calendar_2027("cn"),
        test_calendar_2027("cn"),
    ]})));
    assert_eq!(
        (refused.code, refused.field.as_deref()),
        ("duplicate_calendar", Some("payload.calendars[1].id"))
    );
}

#[test]
fn a_policy_breaking_its_own_rules_is_refused_at_the_field() {
    let mut policy = bundled_policy("construction");
    policy["targets"]["resolve"]["all"]["amount"] = json!(0);
    let refused = refusal(&policies_command(json!({"policies": [policy]})));
    assert_eq!(
        (refused.code, refused.field.as_deref()),
        (
            "invalid_value",
            Some("payload.policies[0].targets.resolve.all.amount")
        )
    );

    let mut policy = bundled_policy("construction");
    policy["warning_percent"] = json!(100);
    let refused = refusal(&policies_command(json!({"policies": [policy]})));
    assert_eq!(
        refused.field.as_deref(),
        Some("payload.policies[0].warning_percent")
    );
}

#[test]
fn the_message_as_a_whole_is_checked_first() {
    assert_eq!(
        parse_sla_command(b"{not json").map_err(|r| r.code),
        Err("malformed_json")
    );
    let mut unknown = calendars_command(json!({"calendars": []}));
    unknown["event_type"] = json!("sla.holidays_cancelled");
    assert_eq!(refusal(&unknown).code, "unknown_event_type");
    let mut future = calendars_command(json!({"calendars": []}));
    future["schema_version"] = json!(2);
    assert_eq!(refusal(&future).code, "unsupported_version");
    let too_big = vec![b' '; 300 * 1024];
    assert_eq!(
        parse_sla_command(&too_big).map_err(|r| r.code),
        Err("payload_too_large")
    );
}

// ---------------------------------------------------------------------------------------
// The live data
// ---------------------------------------------------------------------------------------

#[test]
fn the_live_data_folds_every_event_and_never_breaks() {
    let mut live = LiveSla::new(SlaReference::bundled());
    let publish_2027 = calendars_command(json!({"calendars": [test_calendar_2027("cn")]}));
    live.fold(1, &stored(&publish_2027, "2026-11-05T01:00:00Z"))
        .expect("applied");
    assert_eq!(
        live.calendar(Some("cn")).holidays_published_through(),
        Some(date("2027-12-31"))
    );

    // An event this data cannot take (its default does not exist here) changes nothing.
    let before = live.reference().clone();
    let mut sh = bundled_calendar();
    sh["id"] = json!("sh");
    let mut broken = stored(
        &calendars_command(json!({"calendars": [sh]})),
        "2026-11-06T01:00:00Z",
    );
    if let wangge_schemas::sla::SlaEvent::CalendarsPublished(published) = &mut broken.event {
        published.default_calendar = Some("atlantis".to_owned());
    }
    assert!(live.fold(2, &broken).is_err());
    assert_eq!(live.reference(), &before);
    live.skip(3);
    assert_eq!((live.position(), live.events(), live.refused()), (3, 3, 2));
}

// ---------------------------------------------------------------------------------------
// Calendar coverage
// ---------------------------------------------------------------------------------------

#[test]
fn a_calendar_is_flagged_45_days_before_its_holidays_run_out_and_not_46() {
    let reference = SlaReference::bundled();
    let through = date("2026-12-31");
    let on = |today: NaiveDate| calendar_coverage(&reference, today).remove(0);

    let calm = on(through - chrono::Days::new(46));
    assert_eq!((calm.days_left, calm.expiring), (Some(46), false));
    let flagged = on(through - chrono::Days::new(45));
    assert_eq!((flagged.days_left, flagged.expiring), (Some(45), true));
    assert_eq!(CALENDAR_WARNING_DAYS, 45);
    let last_day = on(through);
    assert_eq!((last_day.days_left, last_day.expiring), (Some(0), true));
    let past = on(date("2027-01-02"));
    assert_eq!((past.days_left, past.expiring), (Some(-2), true));
    assert_eq!(past.published_through, Some(through));
    assert_eq!(past.id, "cn");
}

#[test]
fn a_calendar_that_does_not_say_through_when_is_not_flagged() {
    let mut file: Value = serde_json::from_str(BUNDLED_CALENDARS_JSON).expect("json");
    file["calendars"][0]
        .as_object_mut()
        .expect("object")
        .remove("holidays_published_through");
    let calendars = read_calendar_file(&file.to_string()).expect("valid");
    let reference = SlaReference::new(
        read_policy_file(BUNDLED_POLICIES_JSON).expect("valid"),
        calendars,
    );
    let coverage = calendar_coverage(&reference, date("2030-01-01")).remove(0);
    assert_eq!((coverage.days_left, coverage.expiring), (None, false));
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

#[test]
fn a_bad_file_is_refused_with_the_path_in_the_file() {
    let mut file: Value = serde_json::from_str(BUNDLED_CALENDARS_JSON).expect("json");
    file["calendars"][0]["holidays"][2]["to"] = json!("2026-03-01");
    let refused = read_calendar_file(&file.to_string()).expect_err("refused");
    assert_eq!(
        (refused.code, refused.field.as_deref()),
        ("invalid_holiday", Some("calendars[0].holidays[2].to"))
    );

    let mut policies: Value = serde_json::from_str(BUNDLED_POLICIES_JSON).expect("json");
    policies["policies"][1]["clock"] = json!("business");
    let refused = read_policy_file(&policies.to_string()).expect_err("refused");
    assert_eq!(
        (refused.code, refused.field.as_deref()),
        ("unknown_field", Some("policies[1].clock"))
    );
    assert_eq!(
        read_calendar_file("42").map(drop).map_err(|r| r.code),
        Err("invalid_type")
    );
}

#[test]
fn the_bundled_files_read_as_the_bundled_reference() {
    let reference = SlaReference::new(
        read_policy_file(BUNDLED_POLICIES_JSON).expect("valid"),
        read_calendar_file(BUNDLED_CALENDARS_JSON).expect("valid"),
    );
    assert_eq!(reference, SlaReference::bundled());
    assert_eq!(
        SlaReference::from_json(BUNDLED_CALENDARS_JSON, BUNDLED_POLICIES_JSON).expect("valid"),
        reference
    );
}

//! Intake validation, one business rule per test: what another system may send to open a
//! case, and — for everything it may not — which code, which field and which words it gets
//! back. Pure and fast: bytes and the bundled sample city in, a command or a rejection out.

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use wangge_engine::domain::CaseCommand;
use wangge_engine::grid::{CategoryCatalogue, GridDirectory};
use wangge_engine::intake::validate::ValidIntake;
use wangge_engine::intake::{
    validate_intake, ClaimedTimeBounds, IntakeRejection, ReferenceData, RejectCode,
};
use wangge_schemas::intake::{
    MAX_DESCRIPTION_CHARS, MAX_MEDIA, MAX_MESSAGE_BYTES, MAX_TITLE_CHARS,
};
use wangge_schemas::{
    Actor, CaseId, Channel, GridLocation, IntakeClock, MediaKind, PatrolKind, ReportDetails,
    Resident, ResidentContact, Source,
};

// ---------------------------------------------------------------------------------------
// The harness: the bundled sample city, three valid messages, and ways to break them
// ---------------------------------------------------------------------------------------

static GRID: LazyLock<GridDirectory> = LazyLock::new(GridDirectory::sample_city);
static CATEGORIES: LazyLock<CategoryCatalogue> = LazyLock::new(CategoryCatalogue::sample);

/// 学院公寓社区 2栋, in 翠苑街道 of the sample city.
const BUILDING: &str = "330106001001001";
const COMMUNITY: &str = "330106001001";
const DISTRICT: &str = "330106001";
/// 学院北苑社区 6栋, another community of the same street.
const OTHER_BUILDING: &str = "330106001002003";

/// The engine's clock as the messages arrive: shortly after the last of them was sent.
const NOW: &str = "2026-03-12T16:00:00+08:00";

fn reference() -> ReferenceData<'static> {
    ReferenceData {
        grid: &GRID,
        categories: &CATEGORIES,
        now: NOW.parse().expect("a time"),
        clock_bounds: Default::default(),
    }
}

fn resident_report() -> Value {
    json!({
        "kind": "resident_report",
        "schema_version": 1,
        "source": {"system": "miniprogram", "message_id": "mp-20260312-000187"},
        "reported_at": "2026-03-12T08:15:42+08:00",
        "building": BUILDING,
        "channel": "mini_program",
        "resident": {"id": "wx-oU7x2kQ9dLr3", "name": "王阿姨", "phone": "138****5621"},
        "title": "2栋3单元门口下水道堵塞",
        "description": "2栋3单元门口的下水道堵了两天,污水漫到楼道口,气味很大。",
        "category": "drainage.blocked",
        "media": [
            {"kind": "photo", "url": "oss://wangge-media/2026/03/12/mp-000187-1.jpg"},
            {"kind": "photo", "url": "oss://wangge-media/2026/03/12/mp-000187-2.jpg"}
        ],
        "coordinates": {"latitude": 30.274085, "longitude": 120.15507}
    })
}

fn patrol_finding() -> Value {
    json!({
        "kind": "patrol_finding",
        "schema_version": 1,
        "source": {"system": "grid-app", "message_id": "ga-patrol-20260312-0719"},
        "reported_at": "2026-03-12T15:40:05+08:00",
        "building": OTHER_BUILDING,
        "worker_id": "gw-0427",
        "patrol_kind": "fire_safety",
        "title": "6栋2单元楼道堆放电动车和纸箱",
        "description": "一楼至三楼楼道堆放电动车两辆、废纸箱若干,占用疏散通道。已现场劝导清理。",
        "category": "fire_safety.corridor_blocked",
        "fixed_on_spot": true
    })
}

fn service_request() -> Value {
    json!({
        "kind": "service_request",
        "schema_version": 1,
        "source": {"system": "kiosk-07", "message_id": "k07-20260312-0015"},
        "reported_at": "2026-03-12T09:05:30+08:00",
        "building": BUILDING,
        "channel": "kiosk",
        "resident": {"id": "sbk-A27731904", "name": "李大爷"},
        "service": "service.elderly_age_certification",
        "title": "申请高龄认证",
        "description": "本人今年满80周岁,申请办理高龄津贴认证,希望网格员上门采集信息。",
        "media": [{"kind": "document", "url": "oss://wangge-media/2026/03/12/k07-0015-hukou.pdf"}]
    })
}

/// The message with the value at a JSON pointer replaced.
fn with(mut message: Value, pointer: &str, value: Value) -> Value {
    *message
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the message")) = value;
    message
}

/// The message without the value at a JSON pointer.
fn without(mut message: Value, pointer: &str) -> Value {
    let (parent, name) = pointer.rsplit_once('/').expect("a pointer");
    let parent = if parent.is_empty() {
        &mut message
    } else {
        message.pointer_mut(parent).expect("parent exists")
    };
    match parent {
        Value::Object(object) => assert!(object.remove(name).is_some(), "no {pointer} to remove"),
        Value::Array(items) => {
            items.remove(name.parse::<usize>().expect("an index"));
        }
        _ => panic!("{pointer} is not inside an object or array"),
    }
    message
}

/// Validates a message as if it arrived on its own kind's subject.
fn validate(message: &Value) -> Result<ValidIntake, IntakeRejection> {
    let kind = message["kind"].as_str().map(str::to_owned);
    validate_intake(kind.as_deref(), message.to_string().as_bytes(), reference())
}

fn accepted(message: &Value) -> ValidIntake {
    validate(message).unwrap_or_else(|r| panic!("expected the message to be accepted, got {r:?}"))
}

fn refused_bytes(subject_kind: Option<&str>, bytes: &[u8]) -> IntakeRejection {
    match validate_intake(subject_kind, bytes, reference()) {
        Ok(valid) => panic!(
            "expected a rejection, the message was accepted: {:?}",
            valid.message
        ),
        Err(rejection) => rejection,
    }
}

fn refused(message: &Value) -> IntakeRejection {
    match validate(message) {
        Ok(valid) => panic!(
            "expected a rejection, the message was accepted: {:?}",
            valid.message
        ),
        Err(rejection) => rejection,
    }
}

/// The rejection names this code and field, and its reason mentions every one of `words`.
#[track_caller]
fn assert_refusal(
    rejection: &IntakeRejection,
    code: RejectCode,
    field: Option<&str>,
    words: &[&str],
) {
    assert_eq!(rejection.code, code, "wrong code in {rejection:?}");
    assert_eq!(
        rejection.field.as_deref(),
        field,
        "wrong field in {rejection:?}"
    );
    for word in words {
        assert!(
            rejection.reason.contains(word),
            "the reason {:?} should mention {word:?}",
            rejection.reason
        );
    }
}

fn report_of(valid: &ValidIntake) -> (&GridLocation, &wangge_schemas::CaseReported) {
    match &valid.request.command {
        CaseCommand::Report { location, report } => (location, report),
        other => panic!("a valid intake message should become a Report command, got {other:?}"),
    }
}

fn source(system: &str, message_id: &str) -> Source {
    Source {
        system: system.to_owned(),
        message_id: message_id.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Valid messages of each kind become a Report on the case their source names
// ---------------------------------------------------------------------------------------

#[test]
fn a_resident_report_becomes_a_report_located_by_its_building_cell() {
    let valid = accepted(&resident_report());

    let (location, report) = report_of(&valid);
    assert_eq!(
        location,
        &GridLocation {
            district: DISTRICT.into(),
            community: COMMUNITY.into(),
            building: BUILDING.into()
        }
    );
    assert_eq!(valid.location, *location);
    assert_eq!(report.title, "2栋3单元门口下水道堵塞");
    assert_eq!(report.reported_category, "drainage.blocked");
    assert_eq!(report.media.len(), 2);
    assert_eq!(report.media[0].kind, MediaKind::Photo);
    assert!(report.coordinates.is_some());
    assert_eq!(
        report.details,
        ReportDetails::ResidentReport {
            channel: Channel::MiniProgram,
            // The id only: the contact goes to the shell to be sealed, never in plain.
            resident: Resident::pseudonymous("wx-oU7x2kQ9dLr3"),
        }
    );
    assert_eq!(
        valid.reporter_contact(),
        Some((
            "miniprogram",
            "wx-oU7x2kQ9dLr3",
            ResidentContact {
                name: Some("王阿姨".into()),
                phone: Some("138****5621".into()),
                id_number: None,
            }
        ))
    );
    assert_eq!(valid.request.actor, Actor::resident("wx-oU7x2kQ9dLr3"));
    assert_eq!(
        valid.request.source,
        source("miniprogram", "mp-20260312-000187")
    );
    assert_eq!(
        valid.request.case_id,
        CaseId::derived_from_source(&valid.request.source)
    );
    // The case's clocks run from the engine's time of acceptance; the resident's own time
    // (08:15 in Hangzhou) is kept beside it as their claim.
    assert_eq!(valid.request.occurred_at, None);
    assert_eq!(
        report.intake_clock,
        Some(Box::new(IntakeClock {
            claimed_reported_at: Utc.with_ymd_and_hms(2026, 3, 12, 0, 15, 42).unwrap(),
            backdated: false,
        }))
    );
}

// ---------------------------------------------------------------------------------------
// No sender's clock is trusted
// ---------------------------------------------------------------------------------------

#[test]
fn a_report_dated_in_the_future_is_refused() {
    let rejection = refused(&with(
        resident_report(),
        "/reported_at",
        json!("2999-01-01T00:00:00Z"),
    ));
    assert_refusal(
        &rejection,
        RejectCode::TimeInFuture,
        Some("reported_at"),
        &["2999", "5 minutes ahead"],
    );
    // A few minutes of drift are allowed (NOW is 16:00 in Hangzhou).
    accepted(&with(
        resident_report(),
        "/reported_at",
        json!("2026-03-12T16:04:00+08:00"),
    ));
    let rejection = refused(&with(
        resident_report(),
        "/reported_at",
        json!("2026-03-12T16:06:00+08:00"),
    ));
    assert_eq!(rejection.code, RejectCode::TimeInFuture);
}

#[test]
fn a_report_dated_long_before_it_arrived_is_accepted_and_flagged_as_backdated() {
    let valid = accepted(&with(
        resident_report(),
        "/reported_at",
        json!("2026-03-10T09:00:00+08:00"),
    ));
    let (_, report) = report_of(&valid);
    let clock = report.intake_clock.clone().expect("the claim is kept");
    assert!(clock.backdated);
    assert_eq!(
        clock.claimed_reported_at,
        Utc.with_ymd_and_hms(2026, 3, 10, 1, 0, 0).unwrap()
    );
    // Its clocks still start at acceptance.
    assert_eq!(valid.request.occurred_at, None);
}

#[test]
fn the_bounds_are_configurable() {
    let strict = ClaimedTimeBounds {
        max_ahead: chrono::Duration::zero(),
        flag_behind: chrono::Duration::hours(1),
    };
    let now = Utc.with_ymd_and_hms(2026, 3, 12, 8, 0, 0).unwrap();
    let field = "reported_at";
    assert!(strict
        .check(field, now + chrono::Duration::seconds(1), now)
        .is_err());
    assert_eq!(strict.check(field, now, now), Ok(false));
    assert_eq!(
        strict.check(field, now - chrono::Duration::minutes(61), now),
        Ok(true)
    );
}

#[test]
fn a_patrol_finding_becomes_a_report_by_the_grid_worker_who_found_it() {
    let valid = accepted(&patrol_finding());

    let (location, report) = report_of(&valid);
    assert_eq!(location.building, OTHER_BUILDING);
    assert_eq!(location.community, "330106001002");
    assert_eq!(location.district, DISTRICT);
    assert_eq!(report.reported_category, "fire_safety.corridor_blocked");
    assert_eq!(
        report.details,
        ReportDetails::PatrolFinding {
            worker_id: "gw-0427".into(),
            patrol_kind: PatrolKind::FireSafety,
            fixed_on_spot: true,
        }
    );
    assert!(report.media.is_empty(), "media may be left out");
    assert_eq!(valid.request.actor, Actor::grid_worker("gw-0427"));
    assert_eq!(
        valid.request.case_id,
        CaseId::derived_from_source(&source("grid-app", "ga-patrol-20260312-0719"))
    );
}

#[test]
fn a_service_request_becomes_a_report_filed_under_the_requested_service() {
    let valid = accepted(&service_request());

    let (location, report) = report_of(&valid);
    assert_eq!(location.building, BUILDING);
    assert_eq!(
        report.reported_category,
        "service.elderly_age_certification"
    );
    assert_eq!(report.title, "申请高龄认证");
    assert_eq!(report.coordinates, None);
    assert_eq!(
        report.details,
        ReportDetails::ServiceRequest {
            channel: Channel::Kiosk,
            resident: Resident::pseudonymous("sbk-A27731904"),
        }
    );
    assert_eq!(
        valid.reporter_contact().map(|(_, _, contact)| contact.name),
        Some(Some("李大爷".into()))
    );
    assert_eq!(valid.request.actor, Actor::resident("sbk-A27731904"));
    assert_eq!(
        valid.request.case_id,
        CaseId::derived_from_source(&source("kiosk-07", "k07-20260312-0015"))
    );
}

#[test]
fn the_same_source_message_always_names_the_same_case() {
    let first = accepted(&resident_report());
    // A retry days later, with the text edited, still names the case the first one opened.
    let retried = accepted(&with(
        resident_report(),
        "/title",
        json!("2栋下水道堵塞(补充)"),
    ));
    assert_eq!(first.request.case_id, retried.request.case_id);

    let other_message = accepted(&with(
        resident_report(),
        "/source/message_id",
        json!("mp-20260312-000188"),
    ));
    assert_ne!(first.request.case_id, other_message.request.case_id);
    // The same message id from another system is another message.
    let other_system = accepted(&with(
        resident_report(),
        "/source/system",
        json!("hotline-12345"),
    ));
    assert_ne!(first.request.case_id, other_system.request.case_id);
}

#[test]
fn a_message_without_a_subject_kind_is_read_by_its_own_kind() {
    let valid = validate_intake(None, service_request().to_string().as_bytes(), reference())
        .expect("accepted");
    assert_eq!(valid.message.kind().as_str(), "service_request");
}

#[test]
fn texts_and_lists_exactly_at_their_limits_are_accepted() {
    // Limits count characters, not bytes: a Chinese character is three bytes of UTF-8.
    let title = "堵".repeat(MAX_TITLE_CHARS);
    let description = "水".repeat(MAX_DESCRIPTION_CHARS);
    let media: Vec<Value> = (0..MAX_MEDIA)
        .map(|i| json!({"kind": "photo", "url": format!("oss://m/{i}.jpg")}))
        .collect();
    let message = with(
        with(
            with(resident_report(), "/title", json!(title)),
            "/description",
            json!(description),
        ),
        "/media",
        json!(media),
    );

    let valid = accepted(&message);
    assert_eq!(report_of(&valid).1.media.len(), MAX_MEDIA);
}

#[test]
fn an_empty_description_is_allowed_but_an_empty_title_is_not() {
    accepted(&with(patrol_finding(), "/description", json!("")));
    assert_eq!(
        refused(&with(patrol_finding(), "/title", json!(""))).code,
        RejectCode::EmptyText
    );
}

#[test]
fn a_control_character_in_any_field_is_refused_with_its_path() {
    // U+0000 could not be stored by the read models; ESC could colour a terminal; none has a
    // use in a report.
    for (pointer, field, text) in [
        ("/title", "title", "井盖\u{0}丢失"),
        ("/description", "description", "\u{1b}[2J"),
        ("/resident/name", "resident.name", "张\u{7f}三"),
        ("/resident/id", "resident.id", "r-\u{85}"),
        ("/source/message_id", "source.message_id", "m\u{8}"),
    ] {
        let rejection = refused(&with(resident_report(), pointer, json!(text)));
        assert_refusal(
            &rejection,
            RejectCode::ControlCharacter,
            Some(field),
            &["control character", "U+"],
        );
    }
    // Lines and tabs are text.
    accepted(&with(
        resident_report(),
        "/description",
        json!("第一行\r\n第二行\t缩进"),
    ));
    // So is the same character written as a JSON escape: it is still a control character.
    let bytes = resident_report()
        .to_string()
        .replace("\"title\":\"", "\"title\":\"\\u0000");
    assert_eq!(
        refused_bytes(Some("resident_report"), bytes.as_bytes()).code,
        RejectCode::ControlCharacter
    );
}

// ---------------------------------------------------------------------------------------
// Every broken message is refused with a code, the field at fault and a reason
// ---------------------------------------------------------------------------------------

#[test]
fn a_message_that_is_not_json_is_refused_as_malformed_json() {
    let rejection = refused_bytes(Some("resident_report"), br#"{"kind": "resident_report", "#);
    assert_refusal(
        &rejection,
        RejectCode::MalformedJson,
        None,
        &["not valid json", "line 1"],
    );
}

#[test]
fn trailing_garbage_after_the_json_is_malformed_json() {
    let bytes = format!("{} ok", resident_report());
    let rejection = refused_bytes(Some("resident_report"), bytes.as_bytes());
    assert_refusal(
        &rejection,
        RejectCode::MalformedJson,
        None,
        &["not valid json", "trailing"],
    );
}

#[test]
fn json_that_is_not_an_object_is_refused_as_the_wrong_type() {
    let rejection = refused_bytes(None, br#"["resident_report", 1]"#);
    assert_refusal(
        &rejection,
        RejectCode::InvalidType,
        None,
        &["json object", "an array"],
    );
}

#[test]
fn an_unknown_kind_is_refused_naming_the_known_kinds() {
    let rejection = refused(&with(resident_report(), "/kind", json!("complaint")));
    assert_refusal(
        &rejection,
        RejectCode::UnknownKind,
        Some("kind"),
        &[
            "`complaint`",
            "resident_report",
            "patrol_finding",
            "service_request",
        ],
    );
}

#[test]
fn a_message_without_a_kind_is_refused_as_a_missing_field() {
    let rejection = refused(&without(resident_report(), "/kind"));
    assert_refusal(
        &rejection,
        RejectCode::MissingField,
        Some("kind"),
        &["`kind`", "required"],
    );
}

#[test]
fn a_kind_that_is_not_a_string_is_refused_as_the_wrong_type() {
    let rejection = refused_bytes(
        None,
        with(resident_report(), "/kind", json!(1))
            .to_string()
            .as_bytes(),
    );
    assert_refusal(
        &rejection,
        RejectCode::InvalidType,
        Some("kind"),
        &["must be a string", "a number"],
    );
}

#[test]
fn a_message_published_on_another_kinds_subject_is_refused_as_a_kind_mismatch() {
    let bytes = patrol_finding().to_string();
    let rejection = refused_bytes(Some("resident_report"), bytes.as_bytes());
    assert_refusal(
        &rejection,
        RejectCode::KindMismatch,
        Some("kind"),
        &[
            "`patrol_finding`",
            "`resident_report`",
            "wangge.intake.patrol_finding",
        ],
    );
}

#[test]
fn an_unsupported_schema_version_is_refused_naming_the_version_read() {
    let rejection = refused(&with(resident_report(), "/schema_version", json!(2)));
    assert_refusal(
        &rejection,
        RejectCode::UnsupportedVersion,
        Some("schema_version"),
        &["version 2", "version 1"],
    );
}

#[test]
fn a_message_without_a_schema_version_is_refused_as_a_missing_field() {
    let rejection = refused(&without(service_request(), "/schema_version"));
    assert_refusal(
        &rejection,
        RejectCode::MissingField,
        Some("schema_version"),
        &["`schema_version`", "required"],
    );
}

#[test]
fn a_schema_version_given_as_text_is_refused_as_the_wrong_type() {
    let rejection = refused(&with(service_request(), "/schema_version", json!("1")));
    assert_refusal(
        &rejection,
        RejectCode::InvalidType,
        Some("schema_version"),
        &["integer", "a string"],
    );
}

#[test]
fn a_missing_required_field_is_refused_by_name() {
    let rejection = refused(&without(resident_report(), "/building"));
    assert_refusal(
        &rejection,
        RejectCode::MissingField,
        Some("building"),
        &["`building`", "required"],
    );

    let rejection = refused(&without(patrol_finding(), "/worker_id"));
    assert_refusal(
        &rejection,
        RejectCode::MissingField,
        Some("worker_id"),
        &["`worker_id`", "required"],
    );
}

#[test]
fn a_missing_nested_field_is_refused_with_its_full_path() {
    let rejection = refused(&without(resident_report(), "/resident/id"));
    assert_refusal(
        &rejection,
        RejectCode::MissingField,
        Some("resident.id"),
        &["`id`", "required"],
    );

    let rejection = refused(&without(service_request(), "/source/message_id"));
    assert_refusal(
        &rejection,
        RejectCode::MissingField,
        Some("source.message_id"),
        &["`message_id`"],
    );
}

#[test]
fn a_missing_field_inside_a_list_item_is_refused_with_its_index() {
    let rejection = refused(&without(resident_report(), "/media/1/url"));
    assert_refusal(
        &rejection,
        RejectCode::MissingField,
        Some("media[1].url"),
        &["`url`", "required"],
    );
}

#[test]
fn a_wrongly_typed_field_is_refused_naming_the_expected_type() {
    let rejection = refused(&with(resident_report(), "/title", json!(42)));
    assert_refusal(
        &rejection,
        RejectCode::InvalidType,
        Some("title"),
        &["invalid type", "integer", "a string"],
    );

    let rejection = refused(&with(patrol_finding(), "/fixed_on_spot", json!("yes")));
    assert_refusal(
        &rejection,
        RejectCode::InvalidType,
        Some("fixed_on_spot"),
        &["invalid type", "a boolean"],
    );
}

#[test]
fn a_wrongly_typed_nested_field_is_refused_with_its_full_path() {
    let rejection = refused(&with(resident_report(), "/resident/id", json!(12345)));
    assert_refusal(
        &rejection,
        RejectCode::InvalidType,
        Some("resident.id"),
        &["invalid type", "a string"],
    );

    let rejection = refused(&with(
        resident_report(),
        "/media/0/url",
        json!(["oss://a.jpg"]),
    ));
    assert_refusal(
        &rejection,
        RejectCode::InvalidType,
        Some("media[0].url"),
        &["invalid type", "sequence"],
    );
}

#[test]
fn a_value_outside_its_set_is_refused_as_invalid_naming_the_allowed_values() {
    let rejection = refused(&with(resident_report(), "/channel", json!("fax")));
    assert_refusal(
        &rejection,
        RejectCode::InvalidValue,
        Some("channel"),
        &["`fax`", "mini_program", "hotline12345"],
    );

    let rejection = refused(&with(resident_report(), "/media/0/kind", json!("hologram")));
    assert_refusal(
        &rejection,
        RejectCode::InvalidValue,
        Some("media[0].kind"),
        &["`hologram`", "photo"],
    );
}

#[test]
fn a_report_time_that_is_not_a_timestamp_is_refused_showing_the_expected_format() {
    let rejection = refused(&with(
        service_request(),
        "/reported_at",
        json!("yesterday morning"),
    ));
    assert_refusal(
        &rejection,
        RejectCode::InvalidValue,
        Some("reported_at"),
        &["RFC 3339", "2026-03-12T08:15:42+08:00"],
    );
}

#[test]
fn coordinates_off_the_globe_are_refused_as_invalid() {
    // Latitude and longitude swapped: 120° north does not exist.
    let swapped = json!({"latitude": 120.15507, "longitude": 30.274085});
    let rejection = refused(&with(resident_report(), "/coordinates", swapped));
    assert_refusal(
        &rejection,
        RejectCode::InvalidValue,
        Some("coordinates.latitude"),
        &["120.15507", "between -90 and 90"],
    );

    let mut finding = patrol_finding();
    finding["coordinates"] = json!({"latitude": 30.27, "longitude": 181.0});
    let rejection = refused(&finding);
    assert_refusal(
        &rejection,
        RejectCode::InvalidValue,
        Some("coordinates.longitude"),
        &["between -180 and 180"],
    );
}

#[test]
fn an_unknown_field_is_refused_so_that_a_typo_is_not_silently_dropped() {
    let mut message = resident_report();
    message["categroy"] = json!("drainage.blocked");
    let rejection = refused(&message);
    assert_refusal(
        &rejection,
        RejectCode::UnknownField,
        Some("categroy"),
        &["unknown field", "`categroy`", "`category`"],
    );
}

#[test]
fn an_empty_title_is_refused_as_empty_text() {
    let rejection = refused(&with(resident_report(), "/title", json!("   ")));
    assert_refusal(
        &rejection,
        RejectCode::EmptyText,
        Some("title"),
        &["`title`", "must not be empty"],
    );
}

#[test]
fn an_empty_identifier_is_refused_as_empty_text_with_its_path() {
    let rejection = refused(&with(service_request(), "/resident/id", json!("")));
    assert_refusal(
        &rejection,
        RejectCode::EmptyText,
        Some("resident.id"),
        &["`resident.id`", "must not be empty"],
    );

    let rejection = refused(&with(resident_report(), "/source/message_id", json!(" ")));
    assert_refusal(
        &rejection,
        RejectCode::EmptyText,
        Some("source.message_id"),
        &["must not be empty"],
    );
}

#[test]
fn an_empty_media_link_is_refused_with_its_index() {
    let rejection = refused(&with(resident_report(), "/media/1/url", json!("")));
    assert_refusal(
        &rejection,
        RejectCode::EmptyText,
        Some("media[1].url"),
        &["`media[1].url`", "must not be empty"],
    );
}

#[test]
fn a_title_one_character_over_its_limit_is_refused_as_text_too_long() {
    let rejection = refused(&with(
        resident_report(),
        "/title",
        json!("堵".repeat(MAX_TITLE_CHARS + 1)),
    ));
    assert_refusal(
        &rejection,
        RejectCode::TextTooLong,
        Some("title"),
        &["`title`", "101 characters", "limit is 100"],
    );
}

#[test]
fn a_description_over_its_limit_is_refused_as_text_too_long() {
    let rejection = refused(&with(
        patrol_finding(),
        "/description",
        json!("x".repeat(MAX_DESCRIPTION_CHARS + 5)),
    ));
    assert_refusal(
        &rejection,
        RejectCode::TextTooLong,
        Some("description"),
        &["2005 characters", "limit is 2000"],
    );
}

#[test]
fn a_resident_name_over_its_limit_is_refused_with_its_path() {
    let rejection = refused(&with(
        resident_report(),
        "/resident/name",
        json!("王".repeat(65)),
    ));
    assert_refusal(
        &rejection,
        RejectCode::TextTooLong,
        Some("resident.name"),
        &["65 characters", "limit is 64"],
    );
}

/// An ID number (身份证号) is optional; one that is sent must have its shape and its check
/// digit right (GB 11643), and goes to be sealed with the rest of the contact.
#[test]
fn a_resident_id_number_must_be_well_formed_and_is_sealed_with_the_contact() {
    let with_id_number = |id_number: &str| {
        let mut message = resident_report();
        message["resident"]["id_number"] = json!(id_number);
        message
    };
    let valid = accepted(&with_id_number("11010519491231002X"));
    assert_eq!(
        valid
            .reporter_contact()
            .and_then(|(_, _, contact)| contact.id_number),
        Some("11010519491231002X".to_owned())
    );
    for (bad, words) in [
        ("110105194912310021", "wrong check digit"),
        ("11010519491231002x", "17 digits and a check digit"),
        ("1101051949123100", "17 digits and a check digit"),
    ] {
        let rejection = refused(&with_id_number(bad));
        assert_refusal(
            &rejection,
            RejectCode::InvalidValue,
            Some("resident.id_number"),
            &[words],
        );
    }
}

#[test]
fn more_media_than_allowed_are_refused_as_too_many_items() {
    let media: Vec<Value> = (0..=MAX_MEDIA)
        .map(|i| json!({"kind": "photo", "url": format!("oss://m/{i}.jpg")}))
        .collect();
    let rejection = refused(&with(resident_report(), "/media", json!(media)));
    assert_refusal(
        &rejection,
        RejectCode::TooManyItems,
        Some("media"),
        &["11 media", "limit is 10"],
    );
}

#[test]
fn a_payload_over_the_size_limit_is_refused_before_it_is_even_read() {
    // A well-formed report padded with whitespace to one byte over the limit.
    let mut bytes = resident_report().to_string().into_bytes();
    bytes.resize(MAX_MESSAGE_BYTES + 1, b' ');
    let rejection = refused_bytes(Some("resident_report"), &bytes);
    assert_refusal(
        &rejection,
        RejectCode::PayloadTooLarge,
        None,
        &["65537 bytes", "limit is 65536"],
    );

    // Exactly at the limit it is read (and here accepted).
    bytes.truncate(MAX_MESSAGE_BYTES);
    validate_intake(Some("resident_report"), &bytes, reference())
        .expect("a message of exactly 64 KiB is accepted");
}

#[test]
fn a_building_cell_not_in_the_grid_is_refused_as_an_unknown_grid_location() {
    let rejection = refused(&with(
        resident_report(),
        "/building",
        json!("330106001001999"),
    ));
    assert_refusal(
        &rejection,
        RejectCode::UnknownGridLocation,
        Some("building"),
        &["`330106001001999`", "示范市"],
    );
}

#[test]
fn a_community_code_is_not_a_building_cell_and_the_reason_says_so() {
    let rejection = refused(&with(patrol_finding(), "/building", json!(COMMUNITY)));
    assert_refusal(
        &rejection,
        RejectCode::UnknownGridLocation,
        Some("building"),
        &[COMMUNITY, "not a building cell", BUILDING],
    );

    // A code that is merely the start of some cells is not called a cell.
    let rejection = refused(&with(patrol_finding(), "/building", json!("3301")));
    assert_refusal(
        &rejection,
        RejectCode::UnknownGridLocation,
        Some("building"),
        &["no building cell `3301`"],
    );
}

#[test]
fn a_category_not_in_the_catalogue_is_refused_as_unknown_listing_the_kinds_categories() {
    let rejection = refused(&with(
        resident_report(),
        "/category",
        json!("noise.square_dancing"),
    ));
    assert_refusal(
        &rejection,
        RejectCode::UnknownCategory,
        Some("category"),
        &[
            "`noise.square_dancing`",
            "not in the catalogue",
            "drainage.blocked",
            "utilities.water_outage",
        ],
    );
    assert!(
        !rejection.reason.contains("service.micro_wish"),
        "only the resident_report categories: {rejection:?}"
    );
}

#[test]
fn a_misspelt_category_is_refused_with_a_suggestion() {
    let rejection = refused(&with(
        resident_report(),
        "/category",
        json!("lighting.stairwell_lamp"),
    ));
    assert_refusal(
        &rejection,
        RejectCode::UnknownCategory,
        Some("category"),
        &[],
    );
    assert_eq!(
        rejection.reason,
        "category `lighting.stairwell_lamp` is not in the catalogue; did you mean `lighting.stairwell_light_out`?"
    );
}

#[test]
fn a_service_not_in_the_catalogue_is_refused_as_an_unknown_category_of_the_service_field() {
    let rejection = refused(&with(
        service_request(),
        "/service",
        json!("service.pet_license"),
    ));
    assert_refusal(
        &rejection,
        RejectCode::UnknownCategory,
        Some("service"),
        &["`service.pet_license`", "service.residence_certificate"],
    );
}

#[test]
fn a_category_of_another_kind_is_refused_naming_the_allowed_ones() {
    // Residents may not file a flood-safety patrol item, nor ask for a service by report.
    let rejection = refused(&with(
        resident_report(),
        "/category",
        json!("flood_safety.riverside_path"),
    ));
    assert_refusal(
        &rejection,
        RejectCode::CategoryNotAllowed,
        Some("category"),
        &[
            "`flood_safety.riverside_path`",
            "resident_report",
            "drainage.blocked",
        ],
    );

    let rejection = refused(&with(
        service_request(),
        "/service",
        json!("drainage.blocked"),
    ));
    assert_refusal(
        &rejection,
        RejectCode::CategoryNotAllowed,
        Some("service"),
        &[
            "`drainage.blocked`",
            "service_request",
            "service.micro_wish",
        ],
    );
}

#[test]
fn the_first_problem_from_the_outside_in_is_the_one_reported() {
    // Unknown kind and a missing building: the kind decides how the rest is read.
    let message = without(
        with(resident_report(), "/kind", json!("complaint")),
        "/building",
    );
    assert_eq!(refused(&message).code, RejectCode::UnknownKind);
    // A bad shape comes before the grid is consulted.
    let message = with(
        with(resident_report(), "/building", json!("nowhere")),
        "/title",
        json!(7),
    );
    assert_eq!(refused(&message).code, RejectCode::InvalidType);
    // The location comes before the category.
    let message = with(
        with(resident_report(), "/building", json!("nowhere")),
        "/category",
        json!("nothing"),
    );
    assert_eq!(refused(&message).code, RejectCode::UnknownGridLocation);
}

#[test]
fn rejection_codes_are_the_stable_names_of_the_reply_contract() {
    let codes = [
        (RejectCode::PayloadTooLarge, "payload_too_large"),
        (RejectCode::MalformedJson, "malformed_json"),
        (RejectCode::UnknownKind, "unknown_kind"),
        (RejectCode::KindMismatch, "kind_mismatch"),
        (RejectCode::UnsupportedVersion, "unsupported_version"),
        (RejectCode::MissingField, "missing_field"),
        (RejectCode::InvalidType, "invalid_type"),
        (RejectCode::InvalidValue, "invalid_value"),
        (RejectCode::UnknownField, "unknown_field"),
        (RejectCode::EmptyText, "empty_text"),
        (RejectCode::TextTooLong, "text_too_long"),
        (RejectCode::TooManyItems, "too_many_items"),
        (RejectCode::UnknownGridLocation, "unknown_grid_location"),
        (RejectCode::UnknownCategory, "unknown_category"),
        (RejectCode::CategoryNotAllowed, "category_not_allowed"),
        (RejectCode::UnknownCase, "unknown_case"),
        (RejectCode::NotReporter, "not_reporter"),
        (RejectCode::CaseNotClosed, "case_not_closed"),
        (RejectCode::AlreadyEvaluated, "already_evaluated"),
        (RejectCode::MessageIdReused, "message_id_reused"),
        (RejectCode::ControlCharacter, "control_character"),
    ];
    for (code, name) in codes {
        assert_eq!(code.as_str(), name);
    }
}

// ---------------------------------------------------------------------------------------
// The published examples are messages this engine accepts
// ---------------------------------------------------------------------------------------

#[test]
fn every_published_intake_example_is_accepted_by_the_sample_city() {
    let examples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples/intake");
    for kind in ["resident_report", "patrol_finding", "service_request"] {
        let path = examples.join(format!("{kind}.json"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let valid = validate_intake(Some(kind), &bytes, reference())
            .unwrap_or_else(|rejection| panic!("{} was refused: {rejection:?}", path.display()));
        assert_eq!(valid.message.kind().as_str(), kind);
    }
}

#[test]
fn a_typo_in_a_nested_field_name_is_refused_not_dropped() {
    let mut message: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../schemas/examples/intake/resident_report.json"),
        )
        .expect("example exists"),
    )
    .expect("example is json");
    message["resident"]["phnoe"] = json!("13800000000");
    let rejection = validate_intake(
        Some("resident_report"),
        message.to_string().as_bytes(),
        reference(),
    )
    .expect_err("an unknown nested field is refused");
    assert_eq!(rejection.code, RejectCode::UnknownField);
    assert_eq!(rejection.field.as_deref(), Some("resident.phnoe"));
}

//! The SLA reference data on the read side: `GET /api/v1/sla/status` says how far ahead each
//! business calendar is published and flags it 45 days before it runs out (not 46);
//! `/metrics` carries the same as per-calendar gauges; the dashboard has the banner that
//! shows it. All read from the SLA data the API is given, so a publish shows at once.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use wangge_engine::app::ManualClock;
use wangge_engine::domain::sla::{read_calendar_file, BUNDLED_CALENDARS_JSON};
use wangge_engine::grid::GridState;
use wangge_engine::log::MemoryLog;
use wangge_engine::sla::{SharedSla, SlaReference};
use wangge_projections::http::{serve_http, ApiState};
use wangge_projections::{FoldContext, MemoryReadModels};

use crate::{get, get_ok};

/// 10:00 in Beijing on a day of 2026.
fn beijing(month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, 2, 0, 0).unwrap()
}

/// The bundled data with its `cn` calendar replaced by a test calendar published through
/// 2027 (not the official 2027 schedule).
fn with_test_calendar_2027() -> SharedSla {
    let mut file: Value = serde_json::from_str(BUNDLED_CALENDARS_JSON).expect("json");
    file["calendars"][0]["name"] = json!("TEST calendar for 2027 — not the official schedule");
    file["calendars"][0]["holidays_published_through"] = json!("2027-12-31");
    let calendars = read_calendar_file(&file.to_string()).expect("valid");
    let (policies, _) = SlaReference::bundled().into_parts();
    SharedSla::new(SlaReference::new(policies, calendars))
}

/// The API alone (no cases needed) at `now`, on `sla` when given.
async fn serve(now: DateTime<Utc>, sla: Option<SharedSla>) -> String {
    let mut state = ApiState::new(
        MemoryReadModels::new(FoldContext::bundled()),
        GridState::sample_city(),
        Arc::new(ManualClock::starting_at(now)),
        Arc::new(MemoryLog::new()),
    );
    if let Some(sla) = sla {
        state = state.with_sla(sla);
    }
    state = state.with_authenticator(wangge_projections::http::Authenticator::new(
        Some(crate::support::verifier()),
        None,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(serve_http(listener, state, std::future::pending()));
    format!("http://{address}")
}

fn cn(status: &Value) -> &Value {
    status["calendars"]
        .as_array()
        .expect("a calendar list")
        .iter()
        .find(|calendar| calendar["id"] == "cn")
        .expect("the cn calendar")
}

#[tokio::test]
async fn the_status_flags_a_calendar_45_days_before_it_runs_out_and_not_46() {
    let base = serve(beijing(11, 15), None).await;
    let status = get_ok(&format!("{base}/api/v1/sla/status")).await;
    assert_eq!(status["warning_days"], 45);
    assert_eq!(status["position"], 0);
    assert_eq!(
        cn(&status),
        &json!({
            "id": "cn",
            "name": "全国 2026 national working calendar (国务院办公厅 2025-11-04)",
            "default": true,
            "published_through": "2026-12-31",
            "days_left": 46,
            "expiring": false,
        })
    );

    let status = get_ok(&format!("{base}/api/v1/sla/status?today=2026-11-16")).await;
    assert_eq!(
        (&cn(&status)["days_left"], &cn(&status)["expiring"]),
        (&json!(45), &json!(true))
    );
    let status = get_ok(&format!("{base}/api/v1/sla/status?today=2027-01-10")).await;
    assert_eq!(
        (&cn(&status)["days_left"], &cn(&status)["expiring"]),
        (&json!(-10), &json!(true))
    );
}

#[tokio::test]
async fn a_bad_parameter_of_the_status_is_refused_naming_it() {
    let base = serve(beijing(11, 15), None).await;
    let (status, body) = get(&format!("{base}/api/v1/sla/status?today=2026-13-01")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (&body["status"], &body["code"], &body["field"]),
        (
            &json!("rejected"),
            &json!("invalid_parameter"),
            &json!("today")
        )
    );
    let (status, body) = get(&format!("{base}/api/v1/sla/status?calendar=cn")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (&body["code"], &body["field"]),
        (&json!("unknown_parameter"), &json!("calendar"))
    );
}

#[tokio::test]
async fn the_status_and_the_gauges_follow_the_sla_data_they_are_given() {
    let today = beijing(12, 3);
    let bundled = serve(today, None).await;
    let published = serve(today, Some(with_test_calendar_2027())).await;

    let status = get_ok(&format!("{published}/api/v1/sla/status")).await;
    assert_eq!(cn(&status)["published_through"], "2027-12-31");
    assert_eq!(cn(&status)["expiring"], false);

    let metrics = |base: String| async move {
        let text = crate::support::authorized_get(format!("{base}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let sample = |series: &str| {
            text.lines()
                .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
                .and_then(|line| line.rsplit(' ').next())
                .and_then(|value| value.parse::<f64>().ok())
        };
        (
            sample("wangge_sla_calendar_days_left{calendar=\"cn\"}"),
            sample("wangge_sla_calendar_expiring{calendar=\"cn\"}"),
        )
    };
    assert_eq!(metrics(bundled).await, (Some(28.0), Some(1.0)));
    assert_eq!(metrics(published).await, (Some(393.0), Some(0.0)));
}

#[tokio::test]
async fn the_dashboard_has_a_banner_for_an_expiring_calendar() {
    let base = serve(beijing(12, 3), None).await;
    let page = crate::support::authorized_get(format!("{base}/"))
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(page.contains(r#"id="sla-banner""#), "{page}");
    let script = crate::support::authorized_get(format!("{base}/dashboard.js"))
        .await
        .expect("script")
        .text()
        .await
        .expect("text");
    assert!(script.contains("/api/v1/sla/status"));
    assert!(script.contains("published_through"));
}

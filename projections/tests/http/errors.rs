//! Every kind of bad request gets a 4xx JSON body naming the parameter and the reason.

use crate::get;
use crate::support::Week;

/// What a refusal must say.
struct Refusal {
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
    /// Words the reason must contain.
    reason: &'static str,
}

const fn refused(
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
    reason: &'static str,
) -> Refusal {
    Refusal {
        status,
        code,
        field,
        reason,
    }
}

#[tokio::test]
async fn every_bad_request_is_refused_naming_the_parameter_and_the_reason() {
    let week = Week::new();
    let served = week.serve().await;
    let cases: [(&str, Refusal); 28] = [
        // A control character in a value (PostgreSQL could not even compare with U+0000).
        (
            "/api/v1/cases?assignee=w%00x",
            refused(
                400,
                "invalid_parameter",
                Some("assignee"),
                "control characters",
            ),
        ),
        (
            "/api/v1/cases?district=330106001%1B",
            refused(
                400,
                "invalid_parameter",
                Some("district"),
                "control characters",
            ),
        ),
        // A parameter the endpoint does not take (a typo).
        (
            "/api/v1/cases?colour=red",
            refused(
                400,
                "unknown_parameter",
                Some("colour"),
                "this endpoint takes district",
            ),
        ),
        (
            "/api/v1/board?group=cell&tiers=building",
            refused(400, "unknown_parameter", Some("tiers"), "tier"),
        ),
        (
            "/api/v1/grid?x=1",
            refused(400, "unknown_parameter", Some("x"), "takes no parameters"),
        ),
        // Wrong type.
        (
            "/api/v1/cases?limit=ten",
            refused(
                400,
                "invalid_parameter",
                Some("limit"),
                "`ten` is not valid",
            ),
        ),
        (
            "/api/v1/cases?open=perhaps",
            refused(400, "invalid_parameter", Some("open"), "true or false"),
        ),
        (
            "/api/v1/cases?tier=city",
            refused(
                400,
                "invalid_parameter",
                Some("tier"),
                "unknown variant `city`",
            ),
        ),
        (
            "/api/v1/board?group=street",
            refused(400, "invalid_parameter", Some("group"), "expected one of"),
        ),
        (
            "/api/v1/ranking?from=2026-11-01&to=2026-11-24&min_due=-",
            refused(400, "invalid_parameter", Some("min_due"), "whole number"),
        ),
        // The ranking's minimum counts due cases now; the old name is refused, not ignored.
        (
            "/api/v1/ranking?from=2026-11-01&to=2026-11-24&min_cases=1",
            refused(400, "unknown_parameter", Some("min_cases"), "min_due"),
        ),
        // Bad dates and times.
        (
            "/api/v1/indicators?from=2026-13-01&to=2026-11-24",
            refused(400, "invalid_parameter", Some("from"), "YYYY-MM-DD"),
        ),
        (
            "/api/v1/indicators?from=2026-11-01&to=24.11.2026",
            refused(
                400,
                "invalid_parameter",
                Some("to"),
                "`24.11.2026` is not valid",
            ),
        ),
        (
            "/api/v1/cases?reported_from=yesterday",
            refused(400, "invalid_parameter", Some("reported_from"), "RFC 3339"),
        ),
        // A required parameter missing.
        (
            "/api/v1/indicators?to=2026-11-24",
            refused(400, "missing_parameter", Some("from"), "required"),
        ),
        (
            "/api/v1/patrols?from=&to=2026-11-24",
            refused(400, "missing_parameter", Some("from"), "required"),
        ),
        // Out of range.
        (
            "/api/v1/cases?limit=0",
            refused(400, "invalid_parameter", Some("limit"), "at least 1"),
        ),
        (
            "/api/v1/overdue?limit=501",
            refused(400, "invalid_parameter", Some("limit"), "at most 500"),
        ),
        (
            "/api/v1/ranking?from=2026-11-01&to=2026-11-24&limit=101",
            refused(400, "invalid_parameter", Some("limit"), "1 to 100"),
        ),
        (
            "/api/v1/ranking?from=2026-11-01&to=2026-11-24&min_due=0",
            refused(
                400,
                "invalid_parameter",
                Some("min_due"),
                "at least 1, got 0",
            ),
        ),
        (
            "/api/v1/indicators?from=2026-11-24&to=2026-11-01",
            refused(400, "invalid_parameter", Some("to"), "before `from`"),
        ),
        (
            "/api/v1/indicators?from=2024-01-01&to=2026-11-24",
            refused(400, "invalid_parameter", Some("to"), "at most 400 days"),
        ),
        (
            "/api/v1/cases?cursor=yesterday",
            refused(400, "invalid_parameter", Some("cursor"), "not a cursor"),
        ),
        (
            "/api/v1/cases?limit=5&limit=6",
            refused(400, "invalid_parameter", Some("limit"), "more than once"),
        ),
        // Cells the grid does not have.
        (
            "/api/v1/board?district=999",
            refused(
                400,
                "invalid_parameter",
                Some("district"),
                "no district `999` in the grid",
            ),
        ),
        (
            "/api/v1/overdue?district=330106001&community=330106002001",
            refused(
                400,
                "invalid_parameter",
                Some("community"),
                "not in district",
            ),
        ),
        (
            "/api/v1/cases?building=330106001001",
            refused(
                400,
                "invalid_parameter",
                Some("building"),
                "is a community cell, not a building",
            ),
        ),
        // A malformed id in the path.
        (
            "/api/v1/cases/01936b2e-9c1d-7c3f/audit",
            refused(
                400,
                "invalid_parameter",
                Some("case_id"),
                "is not a case id",
            ),
        ),
    ];
    for (path, expected) in cases {
        check(&served.url(path), &expected).await;
    }
}

#[tokio::test]
async fn what_does_not_exist_is_a_404_and_a_write_is_not_allowed() {
    let week = Week::new();
    let served = week.serve().await;
    let case = "01936b2e-9c1d-7c3f-8a55-5c3f00000001";
    let cases = [
        (
            format!("/api/v1/cases/{case}"),
            refused(404, "not_found", Some("case_id"), "no case 01936b2e"),
        ),
        (
            format!("/api/v1/cases/{case}/history"),
            refused(404, "not_found", Some("case_id"), "no case"),
        ),
        (
            format!("/api/v1/cases/{case}/audit"),
            refused(404, "not_found", Some("case_id"), "no case"),
        ),
        (
            "/api/v1/workers/w-nobody/inbox".to_owned(),
            refused(404, "not_found", Some("worker_id"), "no worker `w-nobody`"),
        ),
        (
            "/api/v1/nothing".to_owned(),
            refused(404, "unknown_route", None, "/api/v1/nothing"),
        ),
        (
            "/favicon.ico".to_owned(),
            refused(404, "unknown_route", None, "see /api/openapi.json"),
        ),
    ];
    for (path, expected) in cases {
        check(&served.url(&path), &expected).await;
    }
    let response = reqwest::Client::new()
        .post(served.url("/api/v1/cases"))
        .bearer_auth(crate::support::auditor_token())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["code"], "method_not_allowed");
}

async fn check(url: &str, expected: &Refusal) {
    let (status, body) = get(url).await;
    assert_eq!(status, expected.status, "{url}: {body}");
    assert_eq!(body["status"], "rejected", "{url}: {body}");
    assert_eq!(body["code"], expected.code, "{url}: {body}");
    assert_eq!(body["field"].as_str(), expected.field, "{url}: {body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(expected.reason),
        "{url}: reason `{reason}` should say `{}`",
        expected.reason
    );
}

//! `/metrics`: request counts and durations per route, and each projection's lag.

use crate::support::Week;

async fn scrape(url: &str) -> String {
    let response = crate::support::authorized_get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    response.text().await.unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn requests_are_counted_and_timed_per_route_and_status() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    for _ in 0..3 {
        crate::support::authorized_get(served.url("/api/v1/board"))
            .await
            .unwrap();
    }
    let case = "01936b2e-9c1d-7c3f-8a55-5c3f00000001";
    crate::support::authorized_get(served.url(&format!("/api/v1/cases/{case}")))
        .await
        .unwrap();
    crate::support::authorized_get(served.url("/api/v1/cases?limit=0"))
        .await
        .unwrap();
    crate::support::authorized_get(served.url("/no/such/page"))
        .await
        .unwrap();
    let text = scrape(&served.url("/metrics")).await;
    let requests = |route: &str, status: u16| {
        sample(
            &text,
            &format!("wangge_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"{status}\"}}"),
        )
    };
    assert_eq!(requests("/api/v1/board", 200), Some(3.0), "{text}");
    // The route is the pattern, not the case id.
    assert_eq!(
        requests("/api/v1/cases/{case_id}", 404),
        Some(1.0),
        "{text}"
    );
    assert_eq!(requests("/api/v1/cases", 400), Some(1.0), "{text}");
    assert_eq!(requests("unmatched", 404), Some(1.0), "{text}");
    assert!(!text.contains(case));
    assert_eq!(
        sample(
            &text,
            "wangge_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/board\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert!(text.contains("# TYPE wangge_http_request_duration_seconds histogram"));
    assert!(text.contains("wangge_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/board\",le=\"0.005\"}"));
}

#[tokio::test]
async fn each_projections_checkpoint_and_lag_behind_the_log_head_is_exported() {
    let week = Week::realistic().await;
    let served = week.serve().await;
    let head = week.head().await as f64;
    let text = scrape(&served.url("/metrics")).await;
    assert_eq!(sample(&text, "wangge_log_head"), Some(head), "{text}");
    for projection in wangge_projections::PROJECTION_NAMES {
        let labels = format!("{{projection=\"{projection}\"}}");
        assert_eq!(
            sample(&text, &format!("wangge_projection_checkpoint{labels}")),
            Some(head),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("wangge_projection_behind{labels}")),
            Some(0.0),
            "{text}"
        );
    }
}

#[tokio::test]
async fn two_servers_in_one_process_keep_their_figures_apart() {
    let week = Week::new();
    let first = week.serve().await;
    let second = week.serve().await;
    crate::support::authorized_get(first.url("/api/v1/grid"))
        .await
        .unwrap();
    let text = scrape(&second.url("/metrics")).await;
    assert_eq!(
        sample(
            &text,
            "wangge_http_requests_total{method=\"GET\",route=\"/api/v1/grid\",status=\"200\"}"
        ),
        None,
        "{text}"
    );
}

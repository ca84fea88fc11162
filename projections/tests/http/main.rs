//! The HTTP API against a realistic week of the engine: every endpoint, every kind of bad
//! parameter, the OpenAPI document, the metrics and the live stream, over real TCP.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod auth;
mod errors;
mod live;
mod metrics;
mod openapi;
mod sla;

use serde_json::Value;

/// GETs a path and returns its status and JSON body.
pub async fn get(url: &str) -> (u16, Value) {
    let response = crate::support::authorized_get(url)
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{url} answered {status} with non-JSON ({error}): {text}"));
    (status, body)
}

/// GETs a path that must answer 200, and returns its JSON body.
pub async fn get_ok(url: &str) -> Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    body
}

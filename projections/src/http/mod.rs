//! The HTTP API, its OpenAPI document, `/metrics`, the live stream and the dashboard.
//!
//! One axum router over the one query interface ([`ReadModels`](crate::ReadModels)), so it
//! serves the memory read models and PostgreSQL alike. Handlers are thin: parse the request
//! (naming the parameter at fault, [`extract`]), check the grid cells it names, ask the read
//! models, map errors ([`error`]). Routes:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the dashboard ([`dashboard`]) |
//! | `GET /api/v1/…` | the JSON API ([`cases`], [`board`], [`reports`], [`workers`], [`progress`], [`grid`], [`sla`], [`live`]) |
//! | `GET /api/openapi.json` | the OpenAPI document, generated from the handlers ([`openapi`]) |
//! | `GET /metrics` | Prometheus text ([`metrics`]) |
//!
//! Every `/api/v1/…` route and `/metrics` need `Authorization: Bearer <JWT or API key>`
//! ([`auth`], [`api_keys`]); the OpenAPI document and the dashboard's page, style sheet and
//! script are public (they hold no data).
//!
//! Every refusal is JSON: `{"status":"rejected","code","field","reason"}` (4xx) or
//! `{"status":"error",…}` (5xx), unknown routes included.

pub mod api_keys;
pub mod auth;
pub mod board;
pub mod cases;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod grid;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod progress;
pub mod reports;
pub mod reveal;
pub mod sla;
pub mod state;
pub mod workers;

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

pub use api_keys::{ApiKeyFile, ApiKeyRecord, ApiKeyStore};
pub use auth::{Authenticator, Caller, TokenVerifier};
pub use error::{ApiError, ApiErrorBody};
pub use openapi::openapi;
pub use state::{ApiState, LiveSettings, LogHead};

/// The whole HTTP surface over `state`.
pub fn router(state: ApiState) -> Router {
    let routes = openapi::api_routes();
    let document = Arc::new(openapi::render(&openapi::document_of(&routes)));
    let api: Router<ApiState> = routes.into();
    // Every API route and /metrics behind authentication (a route layer: unknown routes
    // still answer 404); the document and the dashboard's static files are public, the
    // data they show is not.
    api.route("/metrics", get(metrics::scrape))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route(
            "/api/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        (*document).clone(),
                    )
                }
            }),
        )
        .merge(dashboard::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

async fn unknown_route(request: Request) -> impl IntoResponse {
    ApiError::UnknownRoute {
        path: request.uri().path().to_owned(),
    }
}

async fn method_not_allowed(request: Request) -> impl IntoResponse {
    ApiError::MethodNotAllowed {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
}

/// Serves the API, the dashboard and the metrics on `listener` until `shutdown` resolves;
/// then ends the live streams and finishes the requests in hand.
pub async fn serve_http(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "http api and dashboard listening");
    let app = router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            state.stop_live_streams();
        })
        .await
}

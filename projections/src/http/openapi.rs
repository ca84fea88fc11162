//! The OpenAPI document, generated from the handlers as they are routed (utoipa-axum): a
//! route is in the document exactly when it is served. Committed as
//! `projections/openapi.json`; a test fails when the committed copy drifts, and
//! `cargo run -p wangge-projections --bin generate-openapi` rewrites it.

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::ApiState;
use super::{board, cases, grid, live, progress, reports, sla, workers};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wangge read API",
        description = "Cases, SLA board, overdue list, indicators, 红黑榜, patrol coverage, worker inboxes, \
                       audit trails and projection lag of the Wangge grid-governance engine. Read only. \
                       Every refusal is JSON: {\"status\":\"rejected\",\"code\",\"field\",\"reason\"}.",
        license(name = "Apache-2.0")
    ),
    // Query enums the parameters refer to by name: defined here so every `$ref` resolves.
    components(schemas(crate::query::BoardGroup, crate::query::IndicatorGroup)),
    tags(
        (name = "cases", description = "Cases: list, one case, history, audit trail"),
        (name = "sla", description = "SLA board, overdue list, and how far ahead the business calendars are published"),
        (name = "indicators", description = "Indicators, red-and-black board, patrol coverage"),
        (name = "workers", description = "Grid workers' task inboxes"),
        (name = "projections", description = "Read-model progress and lag"),
        (name = "grid", description = "The grid the dashboard draws"),
        (name = "live", description = "Server-sent events when the read models move"),
    )
)]
struct ApiDoc;

/// The JSON API's routes, each with its part of the document.
pub fn api_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(cases::list_cases))
        .routes(routes!(cases::get_case))
        .routes(routes!(cases::case_history))
        .routes(routes!(cases::case_audit))
        .routes(routes!(board::sla_board))
        .routes(routes!(board::overdue))
        .routes(routes!(reports::indicators))
        .routes(routes!(reports::ranking))
        .routes(routes!(reports::patrol_coverage))
        .routes(routes!(workers::inbox))
        .routes(routes!(progress::projections))
        .routes(routes!(grid::grid_tree))
        .routes(routes!(sla::sla_status))
        .routes(routes!(live::live))
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// The document as committed: pretty JSON with a final newline.
pub fn render(document: &utoipa::openapi::OpenApi) -> String {
    let mut text = document
        .to_pretty_json()
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    text.push('\n');
    text
}

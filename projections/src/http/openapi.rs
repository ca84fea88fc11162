//! The OpenAPI document, generated from the handlers as they are routed (utoipa-axum): a
//! route is in the document exactly when it is served. Committed as
//! `projections/openapi.json`; a test fails when the committed copy drifts, and
//! `cargo run -p wangge-projections --bin generate-openapi` rewrites it.

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::ApiState;
use super::{auth, board, cases, grid, live, progress, reports, reveal, sla, workers};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wangge read API",
        description = "Cases, SLA board, overdue list, indicators, 红黑榜, patrol coverage, worker inboxes, \
                       audit trails and projection lag of the Wangge grid-governance engine. Read only. \
                       Every refusal is JSON: {\"status\":\"rejected\",\"code\",\"field\",\"reason\"}.\n\n\
                       **Authentication.** Every operation needs `Authorization: Bearer <credential>`: a JWT \
                       (`bearerAuth`: EdDSA, ES256 or a JWKS key; `exp`, `iss`, `aud` checked; `sub` a grid id, \
                       `role` optional) or an API key (`apiKey`: `wk_…`, also as a bearer credential). Without \
                       one: 401 with `WWW-Authenticate: Bearer`. Only this document and the dashboard's static \
                       files are public.\n\n\
                       **Scope, from the grid, never from the token.** `grid_worker`: the cases they hold and \
                       their own inbox. `supervisor`: the cells they supervise and everything below. `district` \
                       (the district's supervisor or supervision leaders): their district. `auditor`, `admin`: \
                       everything, read only (the API writes nothing). A list without a cell filter is limited to \
                       the caller's scope; a filter naming a cell outside it is refused with 403 naming the \
                       parameter and the cell. `/metrics` needs `admin`, `auditor` or a `metrics` API key.",
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
        (name = "auth", description = "The caller's identity, role and scope"),
    )
)]
struct ApiDoc;

/// The two credentials every operation accepts, and the 401 every operation can answer.
fn secure(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{Content, RefOr, ResponseBuilder};
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearerAuth",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A JWT signed with the configured key (EdDSA, ES256, or a JWKS key); `sub` is a grid id, `role` optional (else the grid's role for `sub`). `wangge auth token --as <grid id>` issues one.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        "apiKey",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("wk_…")
                .description(Some(
                    "An API key for another system (`wangge auth key create`), sent as `Authorization: Bearer wk_…`: read only, role auditor, district (one district) or metrics.",
                ))
                .build(),
        ),
    );
    let requirements = vec![
        SecurityRequirement::new("bearerAuth", Vec::<String>::new()),
        SecurityRequirement::new("apiKey", Vec::<String>::new()),
    ];
    let unauthorized = ResponseBuilder::new()
        .description("No valid token or API key (missing, malformed, expired, wrongly signed, wrong issuer or audience, revoked); `WWW-Authenticate: Bearer` says why")
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ApiErrorBody")))),
        )
        .build();
    let forbidden = ResponseBuilder::new()
        .description("Valid credentials that do not read this route (a `metrics` API key reads /metrics only)")
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "ApiErrorBody",
            )))),
        )
        .build();
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation.security = Some(requirements.clone());
            operation
                .responses
                .responses
                .entry("401".to_owned())
                .or_insert_with(|| RefOr::T(unauthorized.clone()));
            operation
                .responses
                .responses
                .entry("403".to_owned())
                .or_insert_with(|| RefOr::T(forbidden.clone()));
        }
    }
}

/// The document as served and committed: the routes' parts, secured.
pub fn document_of(routes: &OpenApiRouter<ApiState>) -> utoipa::openapi::OpenApi {
    let mut document = routes.get_openapi().clone();
    secure(&mut document);
    document
}

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
        .routes(routes!(auth::me))
        .routes(routes!(reveal::reveal_reporter))
        .routes(routes!(reveal::reveal_records))
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    document_of(&api_routes())
}

/// The document as committed: pretty JSON with a final newline.
pub fn render(document: &utoipa::openapi::OpenApi) -> String {
    let mut text = document
        .to_pretty_json()
        .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"));
    text.push('\n');
    text
}

//! The SLA board (open cases per group by traffic light) and the overdue list.

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, ApiErrorBody};
use super::extract::ApiQuery;
use super::state::ApiState;
use crate::query::{BoardQuery, BoardRow, OverdueCase, OverdueQuery, Page};

/// Open cases per district, community or holding cell, green / yellow / red, with the worst
/// light of each group. Groups without open cases are left out.
#[utoipa::path(
    get,
    path = "/api/v1/board",
    tag = "sla",
    params(BoardQuery),
    responses(
        (status = 200, description = "Board rows in code (and tier) order", body = Vec<BoardRow>),
        (status = 400, description = "A parameter is unknown or malformed, or names a cell the grid lacks", body = ApiErrorBody),
    )
)]
pub async fn sla_board(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<BoardQuery>,
) -> Result<Json<Vec<BoardRow>>, ApiError> {
    query.scope().check(&state.grid())?;
    Ok(Json(state.read_models().sla_board(&query).await?))
}

/// Open cases past the limit of their running step, the longest overdue first: how late
/// each is (at the API's clock) and who holds it.
#[utoipa::path(
    get,
    path = "/api/v1/overdue",
    tag = "sla",
    params(OverdueQuery),
    responses(
        (status = 200, description = "One page of overdue cases", body = Page<OverdueCase>),
        (status = 400, description = "A parameter is unknown, malformed or out of range", body = ApiErrorBody),
    )
)]
pub async fn overdue(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<OverdueQuery>,
) -> Result<Json<Page<OverdueCase>>, ApiError> {
    query.scope().check(&state.grid())?;
    let now = state.now();
    Ok(Json(state.read_models().overdue(&query, now).await?))
}

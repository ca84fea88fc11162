//! The SLA board (open cases per group by traffic light) and the overdue list.

use axum::extract::State;
use axum::Json;

use super::auth::{Caller, Narrowed, QueryCells};
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
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "A cell outside the caller's scope, or a role that does not read this", body = ApiErrorBody),
    )
)]
pub async fn sla_board(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(mut query): ApiQuery<BoardQuery>,
) -> Result<Json<Vec<BoardRow>>, ApiError> {
    caller.require_reports("the SLA board")?;
    let grid = state.grid();
    let narrowed = caller.narrow(
        &grid,
        QueryCells::district_and_community(&mut query.district, &mut query.community),
    )?;
    query.scope().check(&grid)?;
    let mut rows = state.read_models().sla_board(&query).await?;
    if narrowed == Narrowed::FilterRows {
        rows.retain(|row| caller.sees_cell(&grid, &row.code));
    }
    Ok(Json(rows))
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
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "A cell outside the caller's scope, or a role that does not read this", body = ApiErrorBody),
    )
)]
pub async fn overdue(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(mut query): ApiQuery<OverdueQuery>,
) -> Result<Json<Page<OverdueCase>>, ApiError> {
    caller.require_reports("the overdue list")?;
    let grid = state.grid();
    let narrowed = caller.narrow(
        &grid,
        QueryCells {
            district: Some(&mut query.district),
            community: Some(&mut query.community),
            cell: Some(&mut query.cell),
            ..QueryCells::default()
        },
    )?;
    query.scope().check(&grid)?;
    let now = state.now();
    let mut page = state.read_models().overdue(&query, now).await?;
    if narrowed == Narrowed::FilterRows {
        page.items
            .retain(|case| caller.sees_cell(&grid, &case.building));
    }
    Ok(Json(page))
}

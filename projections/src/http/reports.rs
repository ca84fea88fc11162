//! Figures over days: the indicators, the red-and-black board (红黑榜) and patrol coverage.

use axum::extract::State;
use axum::Json;

use super::auth::{Caller, Narrowed, QueryCells};
use super::error::{ApiError, ApiErrorBody};
use super::extract::ApiQuery;
use super::state::ApiState;
use crate::query::{
    IndicatorQuery, IndicatorRow, PatrolQuery, PatrolReport, Ranking, RankingQuery,
};

/// 结案率, 按期结案率, 返工率, 响应率, 解决率, 满意率, time to acknowledge and to close (p50,
/// p90), per day, district, community, cell or category.
///
/// Definitions (numerator ÷ denominator; cohort; what is left out):
///
/// - **应结案 `due`** counts rounds of handling that should have been closed: a round (from
///   the report, or from a reopening, to the closing) falls due at its closing, or earlier at
///   the deadline of the first breach of its resolve or verify step the SLA timers recorded.
///   Cohort: the local day it fell due, charged to the cell that held the case then (at the
///   breach; for a round closed within its limit, at the closing) — a building, community or
///   district cell (community `''` for a district). Not due: rounds open within their limit,
///   and rounds suspended (waiting for the resident or parts, 挂账 parked) before it — the
///   clock stands while suspended. A reopened case is due again at its next closing or
///   breach. Self-handled (自处理) cases are due, closed and closed on time on their closing
///   day, in the building cell they were found in.
/// - **结案率** `closed ÷ due`; **按期结案率** `closed_on_time ÷ due` (closed with no
///   breach of the resolve or verify step in the round); same cohort as `due`.
/// - **返工率** `reworked ÷ handled`; **响应率** `responded_on_time ÷ dispatched`
///   (self-handled cases are never dispatched); **解决率** `resolved_for_resident ÷
///   evaluated`; **满意率** `satisfied ÷ evaluated`. Cohort: the local day the case was
///   reported, in the building cell it was reported in.
/// - Registered (立案) cases only: rejected, merged and voided cases count nowhere.
/// - Time to acknowledge: first dispatch → first acknowledgement (report day); time to close:
///   a round's start → its closing (due day); plain clock.
#[utoipa::path(
    get,
    path = "/api/v1/indicators",
    tag = "indicators",
    params(IndicatorQuery),
    responses(
        (status = 200, description = "One row per group, in key order; each counter summed over its own cohort's days in the range", body = Vec<IndicatorRow>),
        (status = 400, description = "A parameter is unknown, missing or malformed, `to` is before `from`, or the range is too long", body = ApiErrorBody),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "A cell outside the caller's scope, or a role that does not read this", body = ApiErrorBody),
    )
)]
pub async fn indicators(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(mut query): ApiQuery<IndicatorQuery>,
) -> Result<Json<Vec<IndicatorRow>>, ApiError> {
    caller.require_reports("indicators")?;
    let grid = state.grid();
    // A building supervisor's figures are their building cell's (`cell`).
    let narrowed = caller.narrow(
        &grid,
        QueryCells {
            district: Some(&mut query.district),
            community: Some(&mut query.community),
            building: Some(&mut query.cell),
            ..QueryCells::default()
        },
    )?;
    sums_only(narrowed)?;
    query.scope().check(&grid)?;
    Ok(Json(state.read_models().indicators(&query).await?))
}

/// 红黑榜: the cells of one tier (building cells by default) ranked by 按期结案率 over the
/// days.
///
/// A cell's figures are the rounds of handling that fell due in the days (应结案, as in
/// `/api/v1/indicators`) while it held the case: `closed_on_time ÷ due`. Only cells with at
/// least `min_due` due rounds (default 10) are ranked. The red list takes the best and the
/// black list the worst, each at most `limit` and at most half of the ranked cells, and the
/// black list names only cells below every red cell's rate: no cell is on both.
#[utoipa::path(
    get,
    path = "/api/v1/ranking",
    tag = "indicators",
    params(RankingQuery),
    responses(
        (status = 200, body = Ranking),
        (status = 400, description = "A parameter is unknown, missing, malformed or out of range", body = ApiErrorBody),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "A cell outside the caller's scope, or a role that does not read this", body = ApiErrorBody),
    )
)]
pub async fn ranking(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(mut query): ApiQuery<RankingQuery>,
) -> Result<Json<Ranking>, ApiError> {
    caller.require_reports("the red-and-black board")?;
    let grid = state.grid();
    let narrowed = caller.narrow(
        &grid,
        QueryCells::district_and_community(&mut query.district, &mut query.community),
    )?;
    sums_only(narrowed)?;
    query.scope().check(&grid)?;
    Ok(Json(state.read_models().ranking(&query).await?))
}

/// Patrol coverage: every building cell in scope, when it was patrolled and by whom, and
/// which were not.
#[utoipa::path(
    get,
    path = "/api/v1/patrols",
    tag = "indicators",
    params(PatrolQuery),
    responses(
        (status = 200, body = PatrolReport),
        (status = 400, description = "A parameter is unknown, missing or malformed", body = ApiErrorBody),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "A cell outside the caller's scope, or a role that does not read this", body = ApiErrorBody),
    )
)]
pub async fn patrol_coverage(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(mut query): ApiQuery<PatrolQuery>,
) -> Result<Json<PatrolReport>, ApiError> {
    caller.require_reports("patrol coverage")?;
    let grid = state.grid();
    let narrowed = caller.narrow(
        &grid,
        QueryCells::district_and_community(&mut query.district, &mut query.community),
    )?;
    query.scope().check(&grid)?;
    let mut report = state.read_models().patrol_coverage(&query).await?;
    if narrowed == Narrowed::FilterRows {
        report
            .cells
            .retain(|cell| caller.sees_cell(&grid, &cell.cell));
        report.patrolled = report.cells.iter().filter(|c| c.days_patrolled > 0).count();
        report.not_patrolled = report.cells.len() - report.patrolled;
    }
    Ok(Json(report))
}

/// A report of sums cannot drop the rows outside a scope after the fact: refuse when the
/// query could not be limited to the caller's cell exactly.
fn sums_only(narrowed: Narrowed) -> Result<(), ApiError> {
    match narrowed {
        Narrowed::Exactly => Ok(()),
        Narrowed::FilterRows => Err(ApiError::forbidden(
            None,
            "this report is kept per community and above; a building's supervisor reads it through their community's supervisor",
        )),
    }
}

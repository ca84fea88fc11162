//! Figures over days: the indicators, the red-and-black board (红黑榜) and patrol coverage.

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, ApiErrorBody};
use super::extract::ApiQuery;
use super::state::ApiState;
use crate::query::{
    IndicatorQuery, IndicatorRow, PatrolQuery, PatrolReport, Ranking, RankingQuery,
};

/// 结案率, 按期结案率, 返工率, response, resolution and satisfaction rates, time to
/// acknowledge and to close (p50, p90), per day, district, community, cell or category.
#[utoipa::path(
    get,
    path = "/api/v1/indicators",
    tag = "indicators",
    params(IndicatorQuery),
    responses(
        (status = 200, description = "One row per group, in key order", body = Vec<IndicatorRow>),
        (status = 400, description = "A parameter is unknown, missing or malformed, `to` is before `from`, or the range is too long", body = ApiErrorBody),
    )
)]
pub async fn indicators(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<IndicatorQuery>,
) -> Result<Json<Vec<IndicatorRow>>, ApiError> {
    query.scope().check(&state.grid())?;
    Ok(Json(state.read_models().indicators(&query).await?))
}

/// 红黑榜: building cells ranked by on-time closure over the days.
#[utoipa::path(
    get,
    path = "/api/v1/ranking",
    tag = "indicators",
    params(RankingQuery),
    responses(
        (status = 200, body = Ranking),
        (status = 400, description = "A parameter is unknown, missing, malformed or out of range", body = ApiErrorBody),
    )
)]
pub async fn ranking(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<RankingQuery>,
) -> Result<Json<Ranking>, ApiError> {
    query.scope().check(&state.grid())?;
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
    )
)]
pub async fn patrol_coverage(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<PatrolQuery>,
) -> Result<Json<PatrolReport>, ApiError> {
    query.scope().check(&state.grid())?;
    Ok(Json(state.read_models().patrol_coverage(&query).await?))
}

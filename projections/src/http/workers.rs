//! A grid worker's task inbox.

use axum::extract::State;
use axum::Json;

use super::auth::Caller;
use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiQuery, WorkerIdPath};
use super::grid::NoParameters;
use super::state::ApiState;
use crate::query::InboxTask;
use wangge_engine::domain::grid::AccessScope;

/// The open cases a worker holds, the most urgent (earliest deadline) first.
#[utoipa::path(
    get,
    path = "/api/v1/workers/{worker_id}/inbox",
    tag = "workers",
    params(("worker_id" = String, Path, description = "The worker's id in the grid")),
    responses(
        (status = 200, body = Vec<InboxTask>),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "Another worker's inbox (a grid worker reads their own), or a worker outside the caller's cells", body = ApiErrorBody),
        (status = 404, description = "The grid has no such worker", body = ApiErrorBody),
    )
)]
pub async fn inbox(
    State(state): State<ApiState>,
    caller: Caller,
    WorkerIdPath(worker_id): WorkerIdPath,
    _: ApiQuery<NoParameters>,
) -> Result<Json<Vec<InboxTask>>, ApiError> {
    let grid = state.grid();
    let Some(worker) = grid.worker(&worker_id) else {
        return Err(ApiError::not_found(
            "worker_id",
            format!("no worker `{worker_id}` in the grid"),
        ));
    };
    let allowed = match &caller.scope {
        AccessScope::Everything => true,
        AccessScope::OwnCases { worker } => *worker == worker_id,
        AccessScope::Cells(_) => worker
            .cells
            .iter()
            .any(|cell| caller.sees_cell(&grid, cell)),
        AccessScope::MetricsOnly => false,
    };
    if !allowed {
        return Err(ApiError::forbidden(
            Some("worker_id"),
            format!("worker `{worker_id}` works outside your scope"),
        ));
    }
    Ok(Json(state.read_models().inbox(&worker_id).await?))
}

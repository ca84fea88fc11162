//! A grid worker's task inbox.

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiQuery, WorkerIdPath};
use super::grid::NoParameters;
use super::state::ApiState;
use crate::query::InboxTask;

/// The open cases a worker holds, the most urgent (earliest deadline) first.
#[utoipa::path(
    get,
    path = "/api/v1/workers/{worker_id}/inbox",
    tag = "workers",
    params(("worker_id" = String, Path, description = "The worker's id in the grid")),
    responses(
        (status = 200, body = Vec<InboxTask>),
        (status = 404, description = "The grid has no such worker", body = ApiErrorBody),
    )
)]
pub async fn inbox(
    State(state): State<ApiState>,
    WorkerIdPath(worker_id): WorkerIdPath,
    _: ApiQuery<NoParameters>,
) -> Result<Json<Vec<InboxTask>>, ApiError> {
    if state.grid().worker(&worker_id).is_none() {
        return Err(ApiError::not_found(
            "worker_id",
            format!("no worker `{worker_id}` in the grid"),
        ));
    }
    Ok(Json(state.read_models().inbox(&worker_id).await?))
}

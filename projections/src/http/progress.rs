//! `GET /api/v1/projections`: where each projection's checkpoint stands against the log's
//! head, and the API's clock.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;
use utoipa::ToSchema;

use super::error::{ApiError, ApiErrorBody};
use super::extract::ApiQuery;
use super::grid::NoParameters;
use super::state::ApiState;

/// The read side's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectionStatus {
    /// The API's "now" (the demo's simulated clock, or the wall clock).
    pub now: DateTime<Utc>,
    /// The position of the newest commit in the log; `None` when the log cannot be reached.
    pub head: Option<u64>,
    pub projections: Vec<ProjectionLag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectionLag {
    pub projection: String,
    /// The log position of the last commit folded.
    pub position: u64,
    /// When that commit's last event was recorded.
    pub recorded_at: Option<DateTime<Utc>>,
    /// Log positions between the checkpoint and the head (0: caught up).
    pub behind: Option<u64>,
}

impl ApiState {
    /// The checkpoints against the head: what `/api/v1/projections` and `/metrics` show.
    pub async fn projection_status(&self) -> Result<ProjectionStatus, ApiError> {
        let checkpoints = self.read_models().checkpoints().await?;
        let head = match self.log_head().await {
            Ok(head) => Some(head),
            Err(error) => {
                warn!(%error, "log head unavailable; projection lag unknown");
                None
            }
        };
        Ok(ProjectionStatus {
            now: self.now(),
            head,
            projections: checkpoints
                .into_iter()
                .map(|checkpoint| ProjectionLag {
                    behind: head.map(|head| head.saturating_sub(checkpoint.position)),
                    projection: checkpoint.projection,
                    position: checkpoint.position,
                    recorded_at: checkpoint.recorded_at,
                })
                .collect(),
        })
    }
}

/// Each projection's checkpoint, the log's head and how far behind each projection is.
#[utoipa::path(
    get,
    path = "/api/v1/projections",
    tag = "projections",
    responses(
        (status = 200, body = ProjectionStatus),
        (status = 503, description = "The read models cannot be read", body = ApiErrorBody),
    )
)]
pub async fn projections(
    State(state): State<ApiState>,
    _: ApiQuery<NoParameters>,
) -> Result<Json<ProjectionStatus>, ApiError> {
    Ok(Json(state.projection_status().await?))
}

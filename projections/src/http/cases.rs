//! Cases: the searchable list, one case, its history and its audit trail.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wangge_schemas::CaseId;

use super::auth::{Caller, QueryCells};
use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiQuery, CaseIdPath};
use super::grid::NoParameters;
use super::state::ApiState;
use crate::fold::audit::{AuditEntry, AuditProblem};
use crate::query::{AuditTrail, AuditTrailEntry, CaseQuery, CaseView, Page};

/// A case's events, oldest first, as the audit trail holds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseHistory {
    pub case_id: CaseId,
    pub events: Vec<AuditEntry>,
}

/// A case's audit trail with the result of verifying its hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseAudit {
    pub case_id: CaseId,
    /// Every entry is in the chain, unaltered, none removed or inserted; and every entry's
    /// commit sealed by the engine (checked against its keyring, as `wangge serve` is given).
    pub intact: bool,
    pub entries: Vec<AuditTrailEntry>,
    /// What verification found; empty when intact.
    pub problems: Vec<AuditProblem>,
}

impl From<AuditTrail> for CaseAudit {
    fn from(trail: AuditTrail) -> Self {
        Self {
            case_id: trail.case_id,
            intact: trail.problems.is_empty(),
            entries: trail.entries,
            problems: trail.problems,
        }
    }
}

fn unknown_case(case_id: CaseId) -> ApiError {
    ApiError::not_found("case_id", format!("no case {case_id}"))
}

/// The case, if it exists and the caller may see it (403 naming where it is otherwise).
async fn visible_case(
    state: &ApiState,
    caller: &Caller,
    case_id: CaseId,
) -> Result<CaseView, ApiError> {
    let case = state
        .read_models()
        .case(case_id)
        .await?
        .ok_or_else(|| unknown_case(case_id))?;
    if !caller.sees_case(&case) {
        return Err(caller.case_forbidden(&case));
    }
    Ok(case)
}

/// Cases, newest report first, filtered; one page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/cases",
    tag = "cases",
    params(CaseQuery),
    responses(
        (status = 200, description = "One page of cases; pass `next_cursor` as `cursor` for the next", body = Page<CaseView>),
        (status = 400, description = "A parameter is unknown, malformed or out of range", body = ApiErrorBody),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "A cell or assignee outside the caller's scope", body = ApiErrorBody),
    )
)]
pub async fn list_cases(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(mut query): ApiQuery<CaseQuery>,
) -> Result<Json<Page<CaseView>>, ApiError> {
    let grid = state.grid();
    caller.narrow(
        &grid,
        QueryCells {
            district: Some(&mut query.district),
            community: Some(&mut query.community),
            building: Some(&mut query.building),
            cell: Some(&mut query.cell),
            assignee: Some(&mut query.assignee),
        },
    )?;
    query.scope().check(&grid)?;
    Ok(Json(state.read_models().cases(&query).await?))
}

/// One case: where it stands, who holds it, and its running SLA clock.
#[utoipa::path(
    get,
    path = "/api/v1/cases/{case_id}",
    tag = "cases",
    params(("case_id" = String, Path, description = "The case id (a UUID)")),
    responses(
        (status = 200, body = CaseView),
        (status = 400, description = "The case id is malformed", body = ApiErrorBody),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "The case lies outside the caller's scope", body = ApiErrorBody),
        (status = 404, description = "No such case", body = ApiErrorBody),
    )
)]
pub async fn get_case(
    State(state): State<ApiState>,
    caller: Caller,
    CaseIdPath(case_id): CaseIdPath,
    _: ApiQuery<NoParameters>,
) -> Result<Json<CaseView>, ApiError> {
    visible_case(&state, &caller, case_id).await.map(Json)
}

/// A case's history: every event with actor, time and what changed, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/cases/{case_id}/history",
    tag = "cases",
    params(("case_id" = String, Path, description = "The case id (a UUID)")),
    responses(
        (status = 200, body = CaseHistory),
        (status = 400, description = "The case id is malformed", body = ApiErrorBody),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "The case lies outside the caller's scope", body = ApiErrorBody),
        (status = 404, description = "No such case", body = ApiErrorBody),
    )
)]
pub async fn case_history(
    State(state): State<ApiState>,
    caller: Caller,
    CaseIdPath(case_id): CaseIdPath,
    _: ApiQuery<NoParameters>,
) -> Result<Json<CaseHistory>, ApiError> {
    visible_case(&state, &caller, case_id).await?;
    let trail = state
        .read_models()
        .audit_trail(case_id)
        .await?
        .ok_or_else(|| unknown_case(case_id))?;
    Ok(Json(CaseHistory {
        case_id,
        events: trail.entries.into_iter().map(|e| e.entry).collect(),
    }))
}

/// A case's audit trail: the hash-chained entries and whether the chain is intact.
#[utoipa::path(
    get,
    path = "/api/v1/cases/{case_id}/audit",
    tag = "cases",
    params(("case_id" = String, Path, description = "The case id (a UUID)")),
    responses(
        (status = 200, body = CaseAudit),
        (status = 400, description = "The case id is malformed", body = ApiErrorBody),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "The case lies outside the caller's scope", body = ApiErrorBody),
        (status = 404, description = "No such case", body = ApiErrorBody),
    )
)]
pub async fn case_audit(
    State(state): State<ApiState>,
    caller: Caller,
    CaseIdPath(case_id): CaseIdPath,
    _: ApiQuery<NoParameters>,
) -> Result<Json<CaseAudit>, ApiError> {
    visible_case(&state, &caller, case_id).await?;
    let trail = state
        .read_models()
        .audit_trail(case_id)
        .await?
        .ok_or_else(|| unknown_case(case_id))?;
    Ok(Json(trail.into()))
}

//! A case's reporter contact in full, for those allowed to see it, and the record of who
//! asked.
//!
//! Everything else the API serves shows contacts masked (`138****1234`). Revealing one is a
//! read like any other, and it is recorded — who, whose, when, why, allowed or refused — in
//! the read models' `contact_reveals` (PostgreSQL only), as an access log: it changes no
//! case. The policy is
//! [`may_reveal`](crate::residents::may_reveal): the assigned worker while the case is open,
//! a supervisor of the case's cell or above, an auditor. The requester and their role come
//! from the caller's token, never from the body.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wangge_engine::domain::grid::AccessRole;
use wangge_schemas::CaseId;

use super::auth::Caller;
use super::error::{ApiError, ApiErrorBody};
use super::extract::{ApiQuery, CaseIdPath};
use super::state::ApiState;
use crate::residents::{RequesterRole, RevealAnswer, RevealError, RevealQuery, RevealRequest};

/// Why the caller needs the contact (kept with the record).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevealReason {
    /// Why the contact is needed, at least 4 characters, e.g. `回访居民确认整改` (required).
    pub reason: Option<String>,
}

/// What a reveal gave.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevealedContact {
    /// `revealed`; `legacy` (written before contacts were sealed); `erased` (the resident's
    /// key was destroyed: nothing can be revealed, ever); `no_contact` (the report has none).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_number: Option<String>,
}

/// The role a reveal is asked in, from the caller's proven role.
fn requester_role(role: AccessRole) -> RequesterRole {
    match role {
        AccessRole::GridWorker => RequesterRole::GridWorker,
        AccessRole::Supervisor | AccessRole::District => RequesterRole::Supervisor,
        AccessRole::Auditor => RequesterRole::Auditor,
        // Operators run the system; they have no call to read residents' contacts.
        AccessRole::Admin | AccessRole::Metrics => RequesterRole::Other,
    }
}

/// Reveals the reporter contact of a case, if the caller may see it; recorded either way.
#[utoipa::path(
    get,
    path = "/api/v1/cases/{case_id}/reporter",
    tag = "cases",
    params(("case_id" = String, Path, description = "The case's id"), RevealReason),
    responses(
        (status = 200, body = RevealedContact),
        (status = 400, description = "No reason given, or too short", body = ApiErrorBody),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "Not the assigned worker of an open case, a supervisor of its cell or above, or an auditor (the refusal is recorded)", body = ApiErrorBody),
        (status = 404, description = "No such case", body = ApiErrorBody),
        (status = 503, description = "This server keeps no reveal records (memory read models) or has no key store", body = ApiErrorBody),
    )
)]
pub async fn reveal_reporter(
    State(state): State<ApiState>,
    caller: Caller,
    CaseIdPath(case_id): CaseIdPath,
    ApiQuery(query): ApiQuery<RevealReason>,
) -> Result<Json<RevealedContact>, ApiError> {
    if state.read_models().case(case_id).await?.is_none() {
        return Err(ApiError::not_found("case_id", format!("no case {case_id}")));
    }
    let Some(reason) = query.reason else {
        return Err(ApiError::invalid(
            "reason",
            "say why the contact is needed (at least 4 characters); it is kept with the record",
        ));
    };
    let Some(reveals) = state.reveals() else {
        return Err(ApiError::Unavailable(
            "reporter contacts are revealed only by servers with PostgreSQL read models (reveals are recorded there)".to_owned(),
        ));
    };
    let request = RevealRequest {
        case_id,
        requester: caller.grid_id.clone(),
        role: requester_role(caller.role),
        reason,
    };
    let answer = reveals
        .reveal(&request, state.now())
        .await
        .map_err(|error| match error {
            RevealError::UnknownCase(case_id) => {
                ApiError::not_found("case_id", format!("no case {case_id}"))
            }
            RevealError::Read(error) => error.into(),
        })?;
    let contact = |outcome: &str, contact: Option<wangge_schemas::ResidentContact>| {
        let contact = contact.unwrap_or_default();
        RevealedContact {
            outcome: outcome.to_owned(),
            name: contact.name,
            phone: contact.phone,
            id_number: contact.id_number,
        }
    };
    Ok(Json(match answer {
        RevealAnswer::Revealed(found) => contact("revealed", Some(found)),
        RevealAnswer::Legacy(found) => contact("legacy", Some(found)),
        RevealAnswer::Erased => contact("erased", None),
        RevealAnswer::NoContact => contact("no_contact", None),
        RevealAnswer::Refused(why) => return Err(ApiError::forbidden(None, why)),
        RevealAnswer::NoKeyStore => {
            return Err(ApiError::Unavailable(
                "this server has no key-encryption key to open contacts with".to_owned(),
            ))
        }
    }))
}

/// Filters of the reveal records.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RevealFilter {
    /// Only reveals of this case.
    pub case_id: Option<CaseId>,
    /// Only reveals asked by this grid id.
    pub by: Option<String>,
    /// Most records, newest first (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// Who asked to see which reporter's contact, when and why: auditors only.
#[utoipa::path(
    get,
    path = "/api/v1/reveals",
    tag = "cases",
    params(RevealFilter),
    responses(
        (status = 200, body = Vec<Object>, description = "Reveal records, newest first: reveal_id, requested_at, requester, role, case_id, resident_key (a keyed hash), reason, allowed, outcome, refusal"),
        (status = 401, description = "No valid token or API key", body = ApiErrorBody),
        (status = 403, description = "Not an auditor", body = ApiErrorBody),
    )
)]
pub async fn reveal_records(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<RevealFilter>,
) -> Result<Json<Vec<crate::residents::RevealRecord>>, ApiError> {
    if caller.role != AccessRole::Auditor {
        return Err(ApiError::forbidden(
            None,
            "only auditors read who saw which resident's contact",
        ));
    }
    // Without PostgreSQL read models this server reveals nothing, so it has nothing on record.
    let Some(reveals) = state.reveals() else {
        return Ok(Json(Vec::new()));
    };
    let limit = filter.limit.unwrap_or(100);
    if limit == 0 || limit > 1_000 {
        return Err(ApiError::invalid("limit", "between 1 and 1000"));
    }
    let records = reveals
        .reveals(&RevealQuery {
            case_id: filter.case_id,
            requester: filter.by,
            limit: Some(limit),
        })
        .await?;
    Ok(Json(records))
}

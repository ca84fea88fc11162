//! What the API answers when it cannot answer: one JSON shape for every refusal, naming the
//! parameter and the reason, so a caller (or a supervisor reading the browser's network tab)
//! knows what to fix.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tracing::warn;
use utoipa::ToSchema;

use crate::query::ReadError;

/// The body of every 4xx and 5xx answer.
///
/// `{"status":"rejected","code":"invalid_parameter","field":"limit","reason":"must be at most 500, got 900"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorBody {
    /// `rejected` when the request is at fault (4xx), `error` when the server is (5xx).
    pub status: String,
    /// `invalid_parameter`, `unknown_parameter`, `missing_parameter`, `not_found`,
    /// `unauthorized` (401: no valid token or key), `forbidden` (403: outside the caller's
    /// scope), `unknown_route`, `method_not_allowed` or `unavailable`.
    pub code: String,
    /// The parameter at fault, as the request named it.
    pub field: Option<String>,
    pub reason: String,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter has a value the endpoint cannot take.
    #[error("invalid `{field}`: {reason}")]
    InvalidParameter { field: String, reason: String },
    /// A query parameter the endpoint does not know (a typo, most likely).
    #[error("unknown parameter `{field}`: {reason}")]
    UnknownParameter { field: String, reason: String },
    /// A required parameter is absent.
    #[error("missing `{field}`: {reason}")]
    MissingParameter { field: String, reason: String },
    /// The case, worker or other thing the path names does not exist.
    #[error("not found: {reason}")]
    NotFound {
        field: Option<String>,
        reason: String,
    },
    /// No valid credentials: missing, malformed, expired, wrongly signed, revoked (401,
    /// with `WWW-Authenticate: Bearer`).
    #[error("unauthorized: {reason}")]
    Unauthorized { reason: String },
    /// The caller is known but may not see this: a cell outside their scope, another
    /// worker's case (403).
    #[error("forbidden: {reason}")]
    Forbidden {
        field: Option<String>,
        reason: String,
    },
    #[error("no route {path}")]
    UnknownRoute { path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// The read models could not be read; worth retrying.
    #[error("read models unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(field: &str, reason: impl Into<String>) -> Self {
        Self::NotFound {
            field: Some(field.to_owned()),
            reason: reason.into(),
        }
    }

    pub fn forbidden(field: Option<&str>, reason: impl Into<String>) -> Self {
        Self::Forbidden {
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidParameter { .. }
            | Self::UnknownParameter { .. }
            | Self::MissingParameter { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } | Self::UnknownRoute { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn body(&self) -> ApiErrorBody {
        let (code, field, reason) = match self {
            Self::InvalidParameter { field, reason } => {
                ("invalid_parameter", Some(field.clone()), reason.clone())
            }
            Self::UnknownParameter { field, reason } => {
                ("unknown_parameter", Some(field.clone()), reason.clone())
            }
            Self::MissingParameter { field, reason } => {
                ("missing_parameter", Some(field.clone()), reason.clone())
            }
            Self::NotFound { field, reason } => ("not_found", field.clone(), reason.clone()),
            Self::Unauthorized { reason } => ("unauthorized", None, reason.clone()),
            Self::Forbidden { field, reason } => ("forbidden", field.clone(), reason.clone()),
            Self::UnknownRoute { path } => (
                "unknown_route",
                None,
                format!("no route {path}; the API is under /api/v1/ (see /api/openapi.json)"),
            ),
            Self::MethodNotAllowed { method, path } => (
                "method_not_allowed",
                None,
                format!("{method} is not allowed on {path}; the API only reads (GET)"),
            ),
            Self::Unavailable(reason) => ("unavailable", None, reason.clone()),
        };
        let status = if self.status_code().is_server_error() {
            "error"
        } else {
            "rejected"
        };
        ApiErrorBody {
            status: status.to_owned(),
            code: code.to_owned(),
            field,
            reason,
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::InvalidQuery { field, reason } => Self::invalid(field, reason),
            ReadError::Unavailable(reason) => Self::Unavailable(reason),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        if status.is_server_error() {
            warn!(error = %self, "api request failed");
        }
        if let Self::Unauthorized { reason } = &self {
            // RFC 6750: say which scheme is wanted, and (quoted, ASCII-safe) why.
            let description: String = reason
                .chars()
                .map(|c| {
                    if c == '"' || c == '\\' || !c.is_ascii() || c.is_ascii_control() {
                        '\''
                    } else {
                        c
                    }
                })
                .collect();
            let challenge =
                format!("Bearer realm=\"wangge\", error=\"invalid_token\", error_description=\"{description}\"");
            return (
                status,
                [(axum::http::header::WWW_AUTHENTICATE, challenge)],
                Json(self.body()),
            )
                .into_response();
        }
        (status, Json(self.body())).into_response()
    }
}

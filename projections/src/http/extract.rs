//! Request parsing that names the parameter at fault: query strings checked against the
//! parameters the endpoint documents, and path segments parsed into ids.
//!
//! axum's own `Query` and `Path` extractors answer a bad parameter with a plain-text 400
//! that names neither the parameter nor, always, the reason; these answer with an
//! [`ApiError`] instead. The list of parameters an endpoint takes is the one its OpenAPI
//! document publishes (the query type's [`IntoParams`]), so the document and the check
//! cannot disagree.

use std::collections::BTreeSet;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{RefOr, Required, Schema};
use utoipa::IntoParams;
use uuid::Uuid;
use wangge_schemas::CaseId;

use super::error::ApiError;

/// A query string parsed into `T`, or an [`ApiError`] naming the parameter.
///
/// An empty value (`?district=`) is the same as leaving the parameter out, as an HTML form
/// sends it. A parameter the endpoint does not document, given twice, missing while
/// required, or of the wrong type is refused.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + IntoParams,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Parses a query string into `T` (see [`ApiQuery`]).
pub fn parse_query<T: DeserializeOwned + IntoParams>(query: &str) -> Result<T, ApiError> {
    let documented = T::into_params(|| Some(ParameterIn::Query));
    let known: Vec<&str> = documented.iter().map(|p| p.name.as_str()).collect();
    let mut given = BTreeSet::new();
    let mut pairs = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if !known.contains(&key.as_ref()) {
            return Err(ApiError::UnknownParameter {
                reason: if known.is_empty() {
                    "this endpoint takes no parameters".to_owned()
                } else {
                    format!("this endpoint takes {}", known.join(", "))
                },
                field: key.into_owned(),
            });
        }
        if !given.insert(key.clone().into_owned()) {
            return Err(ApiError::invalid(key, "given more than once"));
        }
        // No parameter names a cell, worker or category with a control character in it;
        // PostgreSQL could not even compare with a U+0000.
        if value.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                key,
                "must not contain control characters (U+0000 to U+001F, U+007F to U+009F)",
            ));
        }
        if !value.is_empty() {
            pairs.push((key.into_owned(), value.into_owned()));
        }
    }
    for parameter in &documented {
        let required = matches!(parameter.required, Required::True);
        if required && !pairs.iter().any(|(key, _)| *key == parameter.name) {
            return Err(ApiError::MissingParameter {
                field: parameter.name.clone(),
                reason: format!("required: {}", expected(parameter).unwrap_or("a value")),
            });
        }
    }
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let field = error.path().to_string();
        let value = pairs
            .iter()
            .find(|(key, _)| *key == field)
            .map(|(_, value)| value.as_str());
        let parameter = documented.iter().find(|p| p.name == field);
        let mut reason = match value {
            Some(value) => format!("`{value}` is not valid: {}", error.inner()),
            None => error.inner().to_string(),
        };
        if let Some(expected) = parameter.and_then(expected) {
            reason.push_str(&format!(" (expected {expected})"));
        }
        ApiError::invalid(field, reason)
    })
}

/// What a parameter's documented schema expects, in words.
fn expected(parameter: &Parameter) -> Option<&'static str> {
    let Some(RefOr::T(Schema::Object(object))) = &parameter.schema else {
        return None;
    };
    match &object.format {
        Some(SchemaFormat::KnownFormat(KnownFormat::Date)) => {
            return Some("a date as YYYY-MM-DD, e.g. 2026-11-24")
        }
        Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)) => {
            return Some("a time in RFC 3339, e.g. 2026-11-24T08:00:00Z")
        }
        _ => {}
    }
    let is = |wanted: Type| match &object.schema_type {
        SchemaType::Type(t) => *t == wanted,
        SchemaType::Array(types) => types.contains(&wanted),
        SchemaType::AnyValue => false,
    };
    if is(Type::Integer) {
        Some("a whole number")
    } else if is(Type::Boolean) {
        Some("true or false")
    } else {
        None
    }
}

/// The case id in a path such as `/api/v1/cases/{case_id}`.
#[derive(Debug, Clone, Copy)]
pub struct CaseIdPath(pub CaseId);

impl<S: Send + Sync> FromRequestParts<S> for CaseIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid("case_id", rejection.body_text()))?;
        Uuid::parse_str(&text)
            .map(|id| CaseIdPath(CaseId(id)))
            .map_err(|_| {
                ApiError::invalid(
                    "case_id",
                    format!(
                        "`{text}` is not a case id (a UUID such as 01936b2e-9c1d-7c3f-8a55-5c3f00000001)"
                    ),
                )
            })
    }
}

/// The worker id in a path such as `/api/v1/workers/{worker_id}/inbox`.
#[derive(Debug, Clone)]
pub struct WorkerIdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for WorkerIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid("worker_id", rejection.body_text()))?;
        if text.trim().is_empty() {
            return Err(ApiError::invalid("worker_id", "must not be blank"));
        }
        Ok(WorkerIdPath(text))
    }
}

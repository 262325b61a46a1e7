//! The one place where errors become HTTP statuses and JSON bodies.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// Body of every error response.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable machine-readable code: `not_found`, `conflict`, `invalid_input`,
    /// `pool_exhausted`, `unavailable`, `unauthorized`, `backend_failure`, ...
    pub code: String,
    /// What was wrong, with the offending value.
    pub message: String,
}

/// Seconds a client is asked to wait before applying again when the pool is empty.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// Every error an operation can answer with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The input is not acceptable; nothing was changed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or wrong bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The token is valid but not for this endpoint.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such object.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request clashes with the current state.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// A Docker engine or the database failed.
    #[oai(status = 502)]
    BadGateway(Json<ErrorBody>),
    /// Nothing ready matches (code `pool_exhausted`), or a host is unreachable;
    /// try again after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.to_owned(),
        message: message.into(),
    })
}

impl ApiError {
    /// 400 with code `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::BadRequest(body("invalid_input", message))
    }
}

impl From<poolcore::Error> for ApiError {
    fn from(err: poolcore::Error) -> Self {
        use poolcore::Error as E;
        let b = body(err.code(), err.to_string());
        match err {
            E::NotFound { .. } => ApiError::NotFound(b),
            E::Conflict { .. } | E::Stale { .. } => ApiError::Conflict(b),
            E::Forbidden { .. } => ApiError::Forbidden(b),
            E::Invalid { .. } => ApiError::BadRequest(b),
            E::PoolExhausted { .. } | E::Unavailable { .. } => ApiError::Unavailable(b, RETRY_AFTER_SECONDS),
            E::Backend { .. } => {
                tracing::error!(error = %err, "backend failure");
                ApiError::BadGateway(b)
            }
            _ => ApiError::BadGateway(b),
        }
    }
}

/// Result of every operation.
pub type ApiResult<T> = Result<T, ApiError>;

/// Turns errors raised outside the operations (bad JSON, a missing parameter, a
/// missing token, an unknown path) into the same JSON body; error responses the
/// operations built themselves pass through.
pub async fn json_errors(err: poem::Error) -> Response {
    let status = err.status();
    let message = err.to_string();
    let response = err.into_response();
    let is_json = response
        .content_type()
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid_input",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        s if s.is_client_error() => "bad_request",
        _ => "internal_error",
    };
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        message
    };
    poem::web::Json(serde_json::json!({ "code": code, "message": message }))
        .with_status(status)
        .into_response()
}

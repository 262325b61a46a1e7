//! The one place where errors become HTTP statuses and JSON bodies, and where each
//! operation states which of them it can answer.
//!
//! Handlers fail with an [`ApiError`] (or a `poolcore::Error`, which maps to one); an
//! operation returns `Result<_, Errors<{ ... }>>`, whose constant names the statuses it
//! documents ([`ADMIN`], [`NOT_FOUND`], [`BODY`], ...). The spec lists exactly those; an
//! error outside the set (a failing store) is answered as 500 `internal_error` and
//! logged, so no documented operation ever answers a status its spec does not list,
//! other than 500.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object};

/// Seconds a client is asked to wait before trying again after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// Longest error message sent: a refusal never echoes its input in bulk.
const MESSAGE_MAX: usize = 300;

/// What went wrong, as a stable machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "ErrorCode", rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: bad JSON, a missing or unknown field, a value breaking a rule.
    InvalidInput,
    /// 401: no bearer token, or a wrong one.
    Unauthorized,
    /// 403: the user token on an admin operation, or on a cluster not applied to the
    /// `user_id` given.
    Forbidden,
    /// 404: no such host, blueprint, cluster, node or operation (or path).
    NotFound,
    /// 405: the path does not take this method; `Allow` lists those it takes.
    MethodNotAllowed,
    /// 409: the request clashes with the current state.
    Conflict,
    /// 409: the object changed meanwhile; read it again and decide anew.
    Stale,
    /// 413: the body is larger than 1 MiB.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 429: an apply beyond a quota: the user holds as many clusters as one may, or
    /// the blueprint has as many applied as it allows; releasing one makes room.
    QuotaExceeded,
    /// 500: the server failed (its store, or a bug); see its log.
    InternalError,
    /// 502: a Docker engine failed.
    BackendFailure,
    /// 503: nothing ready matches an apply; try again after `Retry-After` seconds.
    PoolExhausted,
    /// 503: a Docker engine does not answer; try again after `Retry-After` seconds.
    Unavailable,
}

impl ErrorCode {
    /// The code of a pool error; every `poolcore::Error::CODES` entry has its own.
    fn of(err: &poolcore::Error) -> Self {
        match err.code() {
            "not_found" => ErrorCode::NotFound,
            "conflict" => ErrorCode::Conflict,
            "stale" => ErrorCode::Stale,
            "forbidden" => ErrorCode::Forbidden,
            "invalid_input" => ErrorCode::InvalidInput,
            "pool_exhausted" => ErrorCode::PoolExhausted,
            "quota_exceeded" => ErrorCode::QuotaExceeded,
            "unavailable" => ErrorCode::Unavailable,
            "backend_failure" => ErrorCode::BackendFailure,
            _ => ErrorCode::InternalError,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict | ErrorCode::Stale => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::BackendFailure => StatusCode::BAD_GATEWAY,
            ErrorCode::PoolExhausted | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Body of every error response. `code` is an `ErrorCode`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Error")]
pub struct ErrorBody {
    // No doc comment: a description beside a `$ref` would wrap it in a copy.
    pub code: ErrorCode,
    /// What was wrong, with the offending value cut short.
    pub message: String,
}

/// An error on its way to the client: a code (which gives the status) and a message.
#[derive(Debug, Clone)]
pub struct ApiError(ErrorBody);

impl ApiError {
    /// An error with `code` and `message` (cut to a few hundred characters).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some((cut, _)) = message.char_indices().nth(MESSAGE_MAX) {
            let total = message.chars().count();
            message.truncate(cut);
            message.push_str(&format!("… ({total} characters)"));
        }
        ApiError(ErrorBody { code, message })
    }

    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.code.status()
    }
}

impl From<poolcore::Error> for ApiError {
    fn from(err: poolcore::Error) -> Self {
        let code = ErrorCode::of(&err);
        if matches!(code, ErrorCode::BackendFailure | ErrorCode::InternalError) {
            tracing::error!(error = %err, "backend failure");
        }
        ApiError::new(code, err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = poem::web::Json(self.0.to_json())
            .with_status(status)
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

impl From<ApiError> for poem::Error {
    fn from(err: ApiError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}

/// 400 `invalid_input`.
pub const BAD_REQUEST: u16 = 1;
/// 401 `unauthorized`.
pub const UNAUTHORIZED: u16 = 1 << 1;
/// 403 `forbidden`.
pub const FORBIDDEN: u16 = 1 << 2;
/// 404 `not_found`.
pub const NOT_FOUND: u16 = 1 << 3;
/// 409 `conflict` or `stale`.
pub const CONFLICT: u16 = 1 << 4;
/// 413 `payload_too_large`.
pub const PAYLOAD_TOO_LARGE: u16 = 1 << 5;
/// 415 `unsupported_media_type`.
pub const UNSUPPORTED_MEDIA_TYPE: u16 = 1 << 6;
/// 502 `backend_failure`.
pub const BAD_GATEWAY: u16 = 1 << 7;
/// 503 `pool_exhausted` or `unavailable`, with `Retry-After`.
pub const UNAVAILABLE: u16 = 1 << 8;
/// 429 `quota_exceeded`.
pub const QUOTA: u16 = 1 << 9;

/// Operations that take the admin token: 401 without a valid token, 403 with the user
/// token.
pub const ADMIN: u16 = UNAUTHORIZED | FORBIDDEN;
/// Operations that take the user (or admin) token: 401 without a valid token.
pub const USER: u16 = UNAUTHORIZED;
/// Operations with a JSON body: 400 for a bad one, 413 for a large one, 415 for one
/// that is not JSON.
pub const BODY: u16 = BAD_REQUEST | PAYLOAD_TOO_LARGE | UNSUPPORTED_MEDIA_TYPE;
/// Operations that call a Docker engine while the client waits: 502 when it fails, 503
/// when it does not answer.
pub const ENGINE: u16 = BAD_GATEWAY | UNAVAILABLE;

/// Every status an operation may document: its bit, status and description.
const STATUSES: &[(u16, u16, &str)] = &[
    (
        BAD_REQUEST,
        400,
        "The input is not acceptable (`invalid_input`); nothing was changed.",
    ),
    (
        UNAUTHORIZED,
        401,
        "No bearer token, or a wrong one (`unauthorized`).",
    ),
    (
        FORBIDDEN,
        403,
        "The token does not allow this (`forbidden`): the user token on an admin \
         operation, or on a cluster that is not applied to the `user_id` given.",
    ),
    (NOT_FOUND, 404, "No such object (`not_found`)."),
    (
        CONFLICT,
        409,
        "The request clashes with the current state (`conflict`), or the object changed \
         meanwhile (`stale`).",
    ),
    (
        PAYLOAD_TOO_LARGE,
        413,
        "The body is larger than 1 MiB (`payload_too_large`).",
    ),
    (
        UNSUPPORTED_MEDIA_TYPE,
        415,
        "The body is not `application/json` (`unsupported_media_type`).",
    ),
    (
        QUOTA,
        429,
        "Refused for a quota (`quota_exceeded`): the user holds as many clusters as one \
         may, or the blueprint has as many applied as it allows; the message names which. \
         Releasing a cluster makes room.",
    ),
    (BAD_GATEWAY, 502, "The Docker engine failed (`backend_failure`)."),
    (
        UNAVAILABLE,
        503,
        "Nothing ready matches an apply (`pool_exhausted`), or the Docker engine does not \
         answer (`unavailable`); try again after `Retry-After` seconds.",
    ),
];

fn bit_of(status: StatusCode) -> u16 {
    STATUSES
        .iter()
        .find(|(_, s, _)| *s == status.as_u16())
        .map_or(0, |(bit, _, _)| *bit)
}

/// The errors of an operation that documents the statuses in `CAN` (an `|` of the
/// constants above).
#[derive(Debug)]
pub struct Errors<const CAN: u16>(ApiError);

impl<const CAN: u16> From<ApiError> for Errors<CAN> {
    fn from(err: ApiError) -> Self {
        if CAN & bit_of(err.status()) != 0 {
            return Errors(err);
        }
        tracing::error!(code = ?err.code(), message = %err.0.message, "an error this operation does not document");
        Errors(ApiError::new(
            ErrorCode::InternalError,
            "the server failed; its log says why",
        ))
    }
}

impl<const CAN: u16> From<poolcore::Error> for Errors<CAN> {
    fn from(err: poolcore::Error) -> Self {
        ApiError::from(err).into()
    }
}

impl<const CAN: u16> ApiResponse for Errors<CAN> {
    fn meta() -> MetaResponses {
        let responses = STATUSES
            .iter()
            .filter(|(bit, _, _)| CAN & bit != 0)
            .map(|&(_, status, description)| MetaResponse {
                description,
                status: Some(status),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: ErrorBody::schema_ref(),
                }],
                headers: match status {
                    503 => vec![MetaHeader {
                        name: "Retry-After".into(),
                        description: Some("Seconds to wait before trying again.".into()),
                        required: true,
                        deprecated: false,
                        schema: u32::schema_ref(),
                    }],
                    _ => vec![],
                },
            })
            .collect();
        MetaResponses { responses }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

impl<const CAN: u16> IntoResponse for Errors<CAN> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<const CAN: u16> From<Errors<CAN>> for poem::Error {
    fn from(err: Errors<CAN>) -> Self {
        err.0.into()
    }
}

/// Turns errors raised outside the operations (a bad body or parameter, a missing
/// token, an unknown path or method) into the same JSON body; error responses the
/// operations built themselves pass through.
pub async fn json_errors(err: poem::Error) -> Response {
    use poem_openapi::error::ContentTypeError;
    let status = err.status();
    let message = err.to_string();
    let expected_json = matches!(
        err.downcast_ref::<ContentTypeError>(),
        Some(ContentTypeError::ExpectContentType)
    );
    let response = err.into_response();
    let is_json = response
        .content_type()
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return response;
    }
    let error = match status {
        // A body-taking operation called without one: the body is what is missing.
        _ if expected_json => ApiError::invalid(
            "this operation takes a JSON body: send one with Content-Type: application/json",
        ),
        StatusCode::UNAUTHORIZED => {
            ApiError::unauthorized("a bearer token is required: Authorization: Bearer TOKEN")
        }
        StatusCode::NOT_FOUND => ApiError::new(ErrorCode::NotFound, "no such path"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            ErrorCode::MethodNotAllowed,
            "this path does not take this method; Allow lists those it takes",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(ErrorCode::UnsupportedMediaType, message),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the body is larger than 1 MiB")
        }
        s if s.is_client_error() => ApiError::invalid(message),
        _ => {
            tracing::error!(%status, %message, "request failed");
            ApiError::new(ErrorCode::InternalError, "the server failed; its log says why")
        }
    };
    let mut out = error.into_response();
    // Keep what the answer carried besides its body (`Allow` on a 405, ...).
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pool_error_code_has_its_own() {
        for code in poolcore::Error::CODES {
            let ours = <ErrorCode as poem_openapi::types::ParseFromJSON>::parse_from_json(Some(
                serde_json::Value::from(*code),
            ));
            assert!(ours.is_ok(), "ErrorCode lacks {code}");
        }
    }

    #[test]
    fn messages_are_cut_short() {
        let err = ApiError::invalid("x".repeat(100_000));
        assert!(err.0.message.len() < 400, "{}", err.0.message.len());
        assert!(err.0.message.ends_with("(100000 characters)"));
    }

    #[test]
    fn an_undocumented_error_is_a_500() {
        let err: Errors<NOT_FOUND> = ApiError::invalid("nope").into();
        assert_eq!(err.0.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let err: Errors<{ NOT_FOUND | BAD_REQUEST }> = ApiError::invalid("nope").into();
        assert_eq!(err.0.status(), StatusCode::BAD_REQUEST);
    }
}

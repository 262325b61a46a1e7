//! Where a request enters the API: the body size limit, optional JSON bodies, and the
//! `Allow` header of a 405.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use poem::http::{header, HeaderValue, StatusCode};
use poem::{Body, Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use super::error::{ApiError, ErrorCode};

/// Largest request body: 1 MiB.
pub const MAX_BODY: usize = 1 << 20;

/// A JSON request body for `T`. Without a body it is 400; a body that is not JSON is
/// 415. `null` is refused wherever it stands: the spec has no nullable field, and a
/// field is left out to leave it unset.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// An optional JSON request body: `None` when the request has none (no body, or an
/// empty one), else as [`JsonBody`]. The spec marks the body not required.
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T> OptionalJson<T> {
    /// The body, or `T::default()` when there is none.
    pub fn or_default(self) -> T
    where
        T: Default,
    {
        self.0.unwrap_or_default()
    }
}

/// `application/json` or `application/*+json`, with any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || sub.ends_with("+json"))
}

/// Where the first `null` in `value` is (`$.labels.zone`), if any.
fn first_null(value: &serde_json::Value, at: String) -> Option<String> {
    match value {
        serde_json::Value::Null => Some(at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_null(v, format!("{at}[{i}]"))),
        serde_json::Value::Object(fields) => fields
            .iter()
            .find_map(|(k, v)| first_null(v, format!("{at}.{}", poolcore::limits::quoted(k)))),
        _ => None,
    }
}

/// Reads the body of `request` as JSON for `T`; `None` when there is none.
async fn read_json<T: ParseFromJSON>(request: &Request, body: &mut RequestBody) -> poem::Result<Option<T>> {
    if let Some(content_type) = request.content_type() {
        if !is_json(content_type) {
            return Err(ContentTypeError::NotSupported {
                content_type: content_type.to_owned(),
            }
            .into());
        }
    }
    let bytes = <Vec<u8> as FromRequest>::from_request(request, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if request.content_type().is_none() {
        return Err(ContentTypeError::ExpectContentType.into());
    }
    let invalid = |reason: String| ParseRequestPayloadError { reason };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if let Some(at) = first_null(&value, "$".into()) {
        return Err(invalid(format!("{at} is null: leave a field out to leave it unset")).into());
    }
    let parsed = T::parse_from_json(Some(value)).map_err(|e| invalid(e.into_message()))?;
    Ok(Some(parsed))
}

fn request_meta<T: ParseFromJSON>(required: bool) -> Option<MetaRequest> {
    Some(MetaRequest {
        description: None,
        content: vec![MetaMediaType {
            content_type: "application/json; charset=utf-8",
            schema: T::schema_ref(),
        }],
        required,
    })
}

/// Implements `ApiExtractor` for a JSON body type: `$required` in the spec, made from
/// what [`read_json`] read by `$make`.
macro_rules! json_body {
    ($body:ident, required: $required:literal, $make:expr) => {
        impl<'a, T: ParseFromJSON> ApiExtractor<'a> for $body<T> {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                T::register(registry);
            }

            fn request_meta() -> Option<MetaRequest> {
                request_meta::<T>($required)
            }

            async fn from_request(
                request: &'a Request,
                body: &mut RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                read_json(request, body).await.and_then($make)
            }
        }
    };
}

json_body!(JsonBody, required: true, |parsed: Option<T>| match parsed {
    Some(parsed) => Ok(JsonBody(parsed)),
    None => Err(ContentTypeError::ExpectContentType.into()),
});
json_body!(OptionalJson, required: false, |parsed| Ok(OptionalJson(parsed)));

/// Refuses request bodies larger than [`MAX_BODY`] with 413, whether they declare
/// their length or come in chunks: the body is read through a counter, and a request
/// whose body went over is answered 413 whatever the operation made of the cut body.
/// An operation that reads no body is not affected.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit;

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint { inner: ep }
    }
}

/// The endpoint [`BodyLimit`] makes.
#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
}

fn too_large() -> Response {
    ApiError::new(ErrorCode::PayloadTooLarge, "the body is larger than 1 MiB").into_response()
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let over = Arc::new(AtomicBool::new(false));
        let declared_over = declared.is_some_and(|n| n > MAX_BODY as u64);
        let mut seen = 0usize;
        let flag = Arc::clone(&over);
        let limited = req.take_body().into_bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len();
            if declared_over || seen > MAX_BODY {
                flag.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other("the body is larger than 1 MiB"));
            }
            Ok(chunk)
        });
        req.set_body(Body::from_bytes_stream(limited.into_stream()));
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        if over.load(Ordering::Relaxed) {
            return Ok(too_large());
        }
        result
    }
}

/// Adds `Allow` to a 405: the methods the path takes, as the spec lists them.
#[derive(Debug, Clone)]
pub struct AllowMethods {
    paths: Arc<Vec<(Vec<String>, String)>>,
}

impl AllowMethods {
    /// From the spec's `paths`: each path template (`/hosts/{id}`) and its methods.
    pub fn from_spec(spec: &serde_json::Value) -> Self {
        let mut paths = Vec::new();
        for (template, item) in spec["paths"].as_object().into_iter().flatten() {
            let mut methods: Vec<String> = item
                .as_object()
                .into_iter()
                .flatten()
                .map(|(method, _)| method.to_ascii_uppercase())
                .collect();
            if methods.iter().any(|m| m == "GET") {
                methods.push("HEAD".into());
            }
            let segments = template.split('/').map(str::to_owned).collect();
            paths.push((segments, methods.join(", ")));
        }
        AllowMethods {
            paths: Arc::new(paths),
        }
    }

    fn allowed(&self, path: &str) -> Option<&str> {
        let parts: Vec<&str> = path.split('/').collect();
        self.paths
            .iter()
            .find(|(segments, _)| {
                segments.len() == parts.len()
                    && segments
                        .iter()
                        .zip(&parts)
                        .all(|(s, p)| s == p || (s.starts_with('{') && !p.is_empty()))
            })
            .map(|(_, methods)| methods.as_str())
    }
}

impl<E: Endpoint> Middleware<E> for AllowMethods {
    type Output = AllowMethodsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AllowMethodsEndpoint {
            inner: ep,
            allow: self.clone(),
        }
    }
}

/// The endpoint [`AllowMethods`] makes.
#[derive(Debug)]
pub struct AllowMethodsEndpoint<E> {
    inner: E,
    allow: AllowMethods,
}

impl<E: Endpoint> Endpoint for AllowMethodsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        let status = match &result {
            Ok(resp) => resp.status(),
            Err(err) => err.status(),
        };
        if status != StatusCode::METHOD_NOT_ALLOWED {
            return result;
        }
        let Some(allow) = self
            .allow
            .allowed(&path)
            .and_then(|a| HeaderValue::from_str(a).ok())
        else {
            return result;
        };
        let mut resp = match result {
            Ok(resp) => resp,
            Err(err) => super::error::json_errors(err).await,
        };
        resp.headers_mut().insert(header::ALLOW, allow);
        Ok(resp)
    }
}

//! The access log: one line per request with method, path, status and duration, and
//! never a secret.
//!
//! poem's `Tracing` middleware logs the full URI, so a token a client puts in the
//! query string (`?token=...`) would be written to the log even though the server
//! refuses it. This one logs the query with the values of parameters whose names say
//! they hold a secret replaced, and parameters without a name dropped.

use std::time::Instant;

use poem::http::Uri;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tracing::{info, info_span, Instrument};

/// Words in a query parameter name that mark its value as secret.
const SECRET_WORDS: [&str; 7] = [
    "token",
    "secret",
    "password",
    "passwd",
    "key",
    "auth",
    "signature",
];

/// What replaces a secret.
const REDACTED: &str = "<redacted>";

/// Middleware writing the access log.
#[derive(Debug, Default, Clone, Copy)]
pub struct AccessLog;

impl<E: Endpoint> Middleware<E> for AccessLog {
    type Output = AccessLogEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AccessLogEndpoint { inner }
    }
}

/// An endpoint whose requests are logged.
pub struct AccessLogEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for AccessLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let span = info_span!(
            "request",
            method = %req.method(),
            path = %loggable(req.original_uri()),
            remote_addr = %req.remote_addr(),
        );
        async move {
            let started = Instant::now();
            let result = self.inner.call(req).await.map(IntoResponse::into_response);
            let status = match &result {
                Ok(resp) => resp.status(),
                // The error's text may quote the input: its status is enough here.
                Err(err) => err.status(),
            };
            info!(
                status = status.as_u16(),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "response"
            );
            result
        }
        .instrument(span)
        .await
    }
}

/// `uri`'s path and query, safe to log.
fn loggable(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query().filter(|q| !q.is_empty()) else {
        return path.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .filter(|param| !param.is_empty())
        .map(|param| match param.split_once('=') {
            Some((name, _)) if is_secret(name) => format!("{name}={REDACTED}"),
            Some(_) => param.to_owned(),
            // A bare value may be a token pasted on its own.
            None => REDACTED.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

/// Whether a parameter of this (still URL-encoded) name holds a secret.
fn is_secret(name: &str) -> bool {
    let name = percent_decoded(name).to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// `text` with `%XX` escapes decoded (bytes that are not UTF-8 kept as U+FFFD).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_the_query_are_redacted() {
        let table = [
            ("/api/v1/health", "/api/v1/health"),
            ("/api/v1/health?", "/api/v1/health"),
            (
                "/api/v1/clusters?status=ready&limit=5",
                "/api/v1/clusters?status=ready&limit=5",
            ),
            ("/x?token=abc", "/x?token=<redacted>"),
            (
                "/x?access_token=abc&status=ready",
                "/x?access_token=<redacted>&status=ready",
            ),
            ("/x?API_KEY=abc", "/x?API_KEY=<redacted>"),
            ("/x?%74oken=abc", "/x?%74oken=<redacted>"),
            ("/x?abc123", "/x?<redacted>"),
            ("/x?a=1&&token=", "/x?a=1&token=<redacted>"),
        ];
        for (uri, logged) in table {
            let uri: Uri = uri.parse().expect("uri");
            assert_eq!(loggable(&uri), logged);
        }
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decoded("a%20b"), "a b");
        assert_eq!(percent_decoded("100%"), "100%");
        assert_eq!(percent_decoded("%zz%4"), "%zz%4");
    }
}

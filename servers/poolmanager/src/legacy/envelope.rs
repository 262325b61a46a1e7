//! The original PoolManager's answer, `{"code", "data", "error", "status"}`: HTTP 200
//! with `code` 200 and `status` `OK` when done; HTTP 400 with `status` `FAIL`, the
//! reason in `error` and `code` 400, 403 or 404 when not; HTTP 401 (`code` 401) for a
//! missing or wrong token, which the original did not have.

use std::collections::BTreeMap;

use poem::IntoResponse;
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Enum, Object, Union};

use super::cluster::LegacyCluster;

/// `OK` when done, `FAIL` when not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "LegacyStatus", rename_all = "UPPERCASE")]
pub enum Status {
    /// Done.
    Ok,
    /// Not done; `error` says why.
    Fail,
}

/// The `data` of an answer that carries nothing: `{}`, as the original sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Object)]
#[oai(rename = "LegacyNothing")]
pub struct Nothing {}

/// The `data` of `/v2/cluster_op`: the cluster for `apply`, `{}` for the other actions.
#[derive(Debug, Clone, Union)]
#[oai(rename = "LegacyOpData")]
pub enum OpData {
    /// `apply`: the cluster handed out.
    Cluster(Box<LegacyCluster>),
    /// `release`, `start`, `stop`, `restart`: `{}`.
    Nothing(Nothing),
}

/// An answer type of a successful call: the envelope around its `data`.
pub trait Answer: ToJSON + Send + Sync {
    /// What `data` holds.
    type Data;
    /// The envelope of `data`: `code` 200, `status` `OK`, `error` empty.
    fn done(data: Self::Data) -> Self;
}

/// Declares one envelope type around `data` of type `$data`, named `$schema` in the spec.
macro_rules! answer {
    ($(#[doc = $doc:literal])* $name:ident = $schema:literal, $data:ty) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Object)]
        #[oai(rename = $schema)]
        pub struct $name {
            /// 200 when done; 400, 401, 403 or 404 when not.
            pub code: u16,
            /// The result.
            pub data: $data,
            /// Why it failed; empty when done.
            pub error: String,
            /// `OK` or `FAIL`.
            pub status: Status,
        }

        impl Answer for $name {
            type Data = $data;
            fn done(data: $data) -> Self {
                $name {
                    code: 200,
                    data,
                    error: String::new(),
                    status: Status::Ok,
                }
            }
        }
    };
}

answer!(
    /// One cluster.
    ClusterAnswer = "LegacyClusterAnswer",
    LegacyCluster
);
answer!(
    /// A list of clusters.
    ClusterListAnswer = "LegacyClusterListAnswer",
    Vec<LegacyCluster>
);
answer!(
    /// Done, nothing to tell: `data` is `{}`.
    DoneAnswer = "LegacyDoneAnswer",
    Nothing
);
answer!(
    /// The answer of `/v2/cluster_op`.
    OpAnswer = "LegacyOpAnswer",
    OpData
);
answer!(
    /// Not done: `status` `FAIL`, `error` says why; `data` is `{}` or names what was
    /// asked for (`user_id`, `cluster_id`).
    FailAnswer = "LegacyFailure",
    BTreeMap<String, String>
);

/// The answers of a legacy operation whose success is `A`.
#[derive(Debug, ApiResponse)]
pub enum Reply<A: ToJSON + Send + Sync> {
    /// Done: `status` `OK`, `code` 200, `error` empty.
    #[oai(status = 200)]
    Done(Json<A>),
    /// Not done: `status` `FAIL`, `error` says why; `code` 404 for an unknown cluster,
    /// 403 for a cluster the caller may not act on, else 400.
    #[oai(status = 400)]
    Failed(Json<FailAnswer>),
    /// No token, or a wrong one, from a caller outside the networks opened to this
    /// API (`legacy_open_to`): `code` 401.
    #[oai(status = 401)]
    Unauthorized(Json<FailAnswer>, #[oai(header = "WWW-Authenticate")] String),
}

/// Why a legacy call was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The envelope's `code`: 400, 401, 403 or 404.
    pub code: u16,
    /// The envelope's `error`.
    pub error: String,
    /// The envelope's `data`: empty, or what was asked for.
    pub data: BTreeMap<String, String>,
}

impl Failure {
    fn new(code: u16, error: impl Into<String>) -> Self {
        Failure {
            code,
            error: error.into(),
            data: BTreeMap::new(),
        }
    }

    /// `code` 400: the request cannot be done.
    pub fn invalid(error: impl Into<String>) -> Self {
        Failure::new(400, error)
    }

    /// `code` 404: no such cluster.
    pub fn not_found(error: impl Into<String>) -> Self {
        Failure::new(404, error)
    }

    /// `code` 403: the caller may not act on this cluster.
    pub fn forbidden(error: impl Into<String>) -> Self {
        Failure::new(403, error)
    }

    /// `code` 401 (HTTP 401): no token, or a wrong one.
    pub fn unauthorized(error: impl Into<String>) -> Self {
        Failure::new(401, error)
    }

    /// The same failure with `key` in its `data`, when there is a value.
    pub fn with_data(mut self, key: &str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            self.data.insert(key.to_owned(), value.to_owned());
        }
        self
    }

    fn answer(self) -> FailAnswer {
        FailAnswer {
            code: self.code,
            data: self.data,
            error: self.error,
            status: Status::Fail,
        }
    }
}

impl From<poolcore::Error> for Failure {
    /// An unknown cluster or node is `code` 404, acting on another user's cluster 403,
    /// everything else 400, as the original answered every failure.
    fn from(err: poolcore::Error) -> Self {
        use poolcore::Error as E;
        if matches!(err, E::Backend { .. }) {
            tracing::error!(error = %err, "backend failure");
        }
        match err {
            E::NotFound { .. } => Failure::not_found(err.to_string()),
            E::Forbidden { .. } => Failure::forbidden(err.to_string()),
            _ => Failure::invalid(err.to_string()),
        }
    }
}

impl<A: Answer> From<Result<A::Data, Failure>> for Reply<A> {
    fn from(result: Result<A::Data, Failure>) -> Self {
        match result {
            Ok(data) => Reply::Done(Json(A::done(data))),
            Err(failure) if failure.code == 401 => {
                Reply::Unauthorized(Json(failure.answer()), "Bearer".to_owned())
            }
            Err(failure) => Reply::Failed(Json(failure.answer())),
        }
    }
}

impl From<Failure> for poem::Error {
    /// The failure envelope as an error, for extractors that fail before an operation
    /// runs; the server's error handler passes JSON errors through unchanged.
    fn from(failure: Failure) -> Self {
        let reply = Reply::<DoneAnswer>::from(Err(failure));
        poem::Error::from_response(reply.into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(reply: Reply<DoneAnswer>) -> (u16, serde_json::Value) {
        let response = reply.into_response();
        let status = response.status().as_u16();
        let bytes = response.into_body().into_bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test]
    async fn done_and_failed_answers_have_the_four_keys() {
        let (status, done) = body_of(Reply::from(Ok(Nothing {}))).await;
        assert_eq!(status, 200);
        assert_eq!(
            done,
            serde_json::json!({"code": 200, "data": {}, "error": "", "status": "OK"})
        );

        let failure = Failure::not_found("cluster not found with id=x").with_data("cluster_id", Some("x"));
        let (status, failed) = body_of(Reply::from(Err(failure))).await;
        assert_eq!(status, 400, "the original answered every failure with HTTP 400");
        assert_eq!(
            failed,
            serde_json::json!({
                "code": 404,
                "data": {"cluster_id": "x"},
                "error": "cluster not found with id=x",
                "status": "FAIL",
            })
        );

        let (status, refused) = body_of(Reply::from(Err(Failure::unauthorized("no token")))).await;
        assert_eq!(
            (status, &refused["code"], &refused["status"]),
            (401, &serde_json::json!(401), &serde_json::json!("FAIL"))
        );
    }

    #[test]
    fn pool_errors_keep_their_meaning_in_the_code() {
        let code = |e: poolcore::Error| Failure::from(e).code;
        assert_eq!(code(poolcore::Error::not_found("cluster", "c1")), 404);
        assert_eq!(code(poolcore::Error::forbidden("not yours")), 403);
        assert_eq!(code(poolcore::Error::conflict("not applied")), 400);
        assert_eq!(
            code(poolcore::Error::PoolExhausted {
                wanted: "anything".into()
            }),
            400
        );
    }
}

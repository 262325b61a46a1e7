//! The original PoolManager's REST API (2016, later Hyperledger Cello), served beside
//! `/api/v1` on the same [`Pool`], so that its front-end services switch by changing a
//! base URL: `/v2/cluster_op`, `/v2/clusters`, `/v2/cluster/{id}` and the deprecated
//! `/v1/cluster_apply`, `/v1/cluster_release`, `/v2/cluster_apply`,
//! `/v2/cluster_release`.
//!
//! Every call is a `Pool` operation under the same rules as `/api/v1` (one atomic
//! claim); only the words differ: keys from the query, a form or a JSON body
//! (`params`), answers in the original's envelope (`envelope`), clusters in its
//! shape (`cluster`). The routes have their own OpenAPI spec, at
//! `/legacy/openapi.json`, because `/api/v1`'s spec has `/api/v1` as its server. See
//! `docs/legacy-api.md`.

mod access;
mod cluster;
mod cluster_op;
mod envelope;
mod keys;
mod params;

use std::sync::Arc;

use poem::{IntoEndpoint, Route};
use poem_openapi::param::Path;
use poem_openapi::{OpenApi, OpenApiService, Tags};
use poolcore::Pool;

pub use access::{Caller, OpenNetworks};
pub use cluster::LegacyCluster;
pub use envelope::{Failure, Reply};

use envelope::{ClusterAnswer, ClusterListAnswer, DoneAnswer, OpAnswer};
use keys::{ApplyKeys, ClusterOpKeys, FilterKeys, ReleaseKeys};
use params::{QueryKeys, QueryOrBodyKeys};

/// Where the legacy routes' spec is served.
pub const SPEC_PATH: &str = "/legacy/openapi.json";

#[derive(Tags)]
enum LegacyTag {
    /// The original PoolManager API: keys in the query string, a form or a JSON body;
    /// answers `{"code", "data", "error", "status"}`.
    #[oai(rename = "legacy")]
    Legacy,
}

/// The original PoolManager's routes.
pub struct LegacyApi {
    pool: Pool,
}

#[OpenApi(tag = "LegacyTag::Legacy")]
impl LegacyApi {
    /// Apply, release, start, stop or restart a cluster (`action`), keys in the query
    /// string. `data` is the cluster for `apply`, `{}` otherwise.
    #[oai(
        path = "/v2/cluster_op",
        method = "get",
        operation_id = "legacy_cluster_op_get"
    )]
    async fn cluster_op_get(&self, caller: Caller, keys: QueryKeys<ClusterOpKeys>) -> Reply<OpAnswer> {
        async { cluster_op::cluster_op(&self.pool, caller, keys.read()?).await }
            .await
            .into()
    }

    /// Apply, release, start, stop or restart a cluster (`action`), keys in the query
    /// string, a form or a JSON body. `data` is the cluster for `apply`, `{}` otherwise.
    #[oai(path = "/v2/cluster_op", method = "post", operation_id = "legacy_cluster_op")]
    async fn cluster_op_post(&self, caller: Caller, keys: QueryOrBodyKeys<ClusterOpKeys>) -> Reply<OpAnswer> {
        async { cluster_op::cluster_op(&self.pool, caller, keys.read()?).await }
            .await
            .into()
    }

    /// Clusters matching the filters in the query string: `user_id=` (empty) for the
    /// free ones, a user's id for theirs; blueprint labels.
    #[oai(
        path = "/v2/clusters",
        method = "get",
        operation_id = "legacy_list_clusters_get"
    )]
    async fn clusters_get(&self, _caller: Caller, keys: QueryKeys<FilterKeys>) -> Reply<ClusterListAnswer> {
        async { cluster_op::list(&self.pool, keys.read()?).await }
            .await
            .into()
    }

    /// Clusters matching the filters in the query string, a form or a JSON body
    /// (`{"user_id": ""}` for the free ones).
    #[oai(path = "/v2/clusters", method = "post", operation_id = "legacy_list_clusters")]
    async fn clusters_post(
        &self,
        _caller: Caller,
        keys: QueryOrBodyKeys<FilterKeys>,
    ) -> Reply<ClusterListAnswer> {
        async { cluster_op::list(&self.pool, keys.read()?).await }
            .await
            .into()
    }

    /// One cluster; `code` 404 when there is none with this id.
    #[oai(path = "/v2/cluster/:id", method = "get", operation_id = "legacy_get_cluster")]
    async fn cluster(&self, _caller: Caller, id: Path<String>) -> Reply<ClusterAnswer> {
        cluster_op::get(&self.pool, &id).await.into()
    }

    /// Apply (deprecated form): `user_id`, filters, `new=1` for another cluster.
    #[oai(
        path = "/v1/cluster_apply",
        method = "get",
        operation_id = "legacy_v1_cluster_apply",
        deprecated
    )]
    async fn v1_apply(&self, _caller: Caller, keys: QueryKeys<ApplyKeys>) -> Reply<ClusterAnswer> {
        async { cluster_op::apply(&self.pool, keys.read()?).await }
            .await
            .into()
    }

    /// Release one cluster (`cluster_id`) or every cluster of a user (`user_id`)
    /// (deprecated form).
    #[oai(
        path = "/v1/cluster_release",
        method = "get",
        operation_id = "legacy_v1_cluster_release",
        deprecated
    )]
    async fn v1_release(&self, caller: Caller, keys: QueryKeys<ReleaseKeys>) -> Reply<DoneAnswer> {
        async { cluster_op::release(&self.pool, caller, keys.read()?).await }
            .await
            .into()
    }

    /// Apply (deprecated form of `action=apply`), keys in the query string.
    #[oai(
        path = "/v2/cluster_apply",
        method = "get",
        operation_id = "legacy_cluster_apply_get",
        deprecated
    )]
    async fn v2_apply_get(&self, _caller: Caller, keys: QueryKeys<ApplyKeys>) -> Reply<ClusterAnswer> {
        async { cluster_op::apply(&self.pool, keys.read()?).await }
            .await
            .into()
    }

    /// Apply (deprecated form of `action=apply`), keys in the query string, a form or
    /// a JSON body.
    #[oai(
        path = "/v2/cluster_apply",
        method = "post",
        operation_id = "legacy_cluster_apply",
        deprecated
    )]
    async fn v2_apply_post(&self, _caller: Caller, keys: QueryOrBodyKeys<ApplyKeys>) -> Reply<ClusterAnswer> {
        async { cluster_op::apply(&self.pool, keys.read()?).await }
            .await
            .into()
    }

    /// Release (deprecated form of `action=release`), keys in the query string.
    #[oai(
        path = "/v2/cluster_release",
        method = "get",
        operation_id = "legacy_cluster_release_get",
        deprecated
    )]
    async fn v2_release_get(&self, caller: Caller, keys: QueryKeys<ReleaseKeys>) -> Reply<DoneAnswer> {
        async { cluster_op::release(&self.pool, caller, keys.read()?).await }
            .await
            .into()
    }

    /// Release (deprecated form of `action=release`), keys in the query string, a
    /// form or a JSON body.
    #[oai(
        path = "/v2/cluster_release",
        method = "post",
        operation_id = "legacy_cluster_release",
        deprecated
    )]
    async fn v2_release_post(&self, caller: Caller, keys: QueryOrBodyKeys<ReleaseKeys>) -> Reply<DoneAnswer> {
        async { cluster_op::release(&self.pool, caller, keys.read()?).await }
            .await
            .into()
    }
}

/// The legacy routes' OpenAPI service.
pub fn service(pool: Pool) -> OpenApiService<LegacyApi, ()> {
    OpenApiService::new(
        LegacyApi { pool },
        "PoolManager: the original PoolManager API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "The REST API of the original PoolManager (Hyperledger Cello), on the same pool as \
         /api/v1 (spec at /api/v1/openapi.json). Keys may be in the query string, a form or a \
         JSON body; every answer is {\"code\", \"data\", \"error\", \"status\"}, HTTP 200 when \
         done and 400 when not.",
    )
    .server("/")
}

/// `route` with the legacy routes under `/v1` and `/v2`, their spec at
/// [`SPEC_PATH`] and their Swagger UI at `/legacy/docs`.
pub fn mount(route: Route, pool: Pool) -> Route {
    let service = service(pool);
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let api = Arc::new(service.into_endpoint());
    route
        .at(SPEC_PATH, spec)
        .nest("/legacy/docs", docs)
        .nest_no_strip("/v1", Arc::clone(&api))
        .nest_no_strip("/v2", api)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    fn spec() -> Value {
        let pool = poolcore::Pool::builder(Arc::new(poolcore::MemStore::new())).build();
        serde_json::from_str(&super::service(pool).spec()).expect("the spec is JSON")
    }

    #[test]
    fn the_spec_documents_every_route_with_its_keys() {
        let spec = spec();
        let mut seen = Vec::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("operations") {
                seen.push(format!("{} {path}", method.to_uppercase()));
                let id = op["operationId"].as_str().expect("an operation id");
                assert!(id.starts_with("legacy_"), "{id}");
                assert_eq!(op["tags"], serde_json::json!(["legacy"]), "{id}");
                assert_eq!(
                    op["deprecated"].as_bool().unwrap_or(false),
                    path.starts_with("/v1/") || path.ends_with("_apply") || path.ends_with("_release"),
                    "{id}"
                );
                let statuses: Vec<&String> = op["responses"].as_object().expect("responses").keys().collect();
                assert_eq!(statuses, ["200", "400", "401"], "{id}");
                let param = &op["parameters"][0];
                if path.ends_with("{id}") {
                    assert_eq!(param["in"], "path", "{id}");
                    continue;
                }
                assert_eq!(
                    (&param["in"], &param["explode"]),
                    (&Value::from("query"), &Value::from(true)),
                    "{id}"
                );
                let body = &op["requestBody"]["content"];
                if method == "post" {
                    assert!(body["application/json"].is_object(), "{id}");
                    assert!(body["application/x-www-form-urlencoded"].is_object(), "{id}");
                } else {
                    assert!(body.is_null(), "{id}: no body documented on GET");
                }
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            [
                "GET /v1/cluster_apply",
                "GET /v1/cluster_release",
                "GET /v2/cluster/{id}",
                "GET /v2/cluster_apply",
                "GET /v2/cluster_op",
                "GET /v2/cluster_release",
                "GET /v2/clusters",
                "POST /v2/cluster_apply",
                "POST /v2/cluster_op",
                "POST /v2/cluster_release",
                "POST /v2/clusters",
            ]
        );
        let op = &spec["components"]["schemas"]["LegacyClusterOp"]["properties"];
        for key in [
            "action",
            "user_id",
            "cluster_id",
            "node_id",
            "allow_multiple",
            "consensus_plugin",
            "consensus_mode",
            "size",
        ] {
            assert!(op[key].is_object(), "cluster_op documents {key}");
        }
    }
}

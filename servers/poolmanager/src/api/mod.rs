//! The REST API: one `Api` struct per resource, merged into one OpenAPI service.

pub mod auth;
pub mod dto;
pub mod error;
pub mod http;

mod apply;
mod blueprints;
mod clusters;
mod hosts;
mod ops;

use std::collections::BTreeSet;
use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{ApiResponse, OpenApiService, Tags};
use serde_json::Value;

use self::auth::Tokens;
use poolcore::Pool;

/// API groups in the Swagger UI.
#[derive(Tags)]
pub enum Tag {
    /// Docker engines and Swarm managers that run clusters.
    Hosts,
    /// Kinds of cluster.
    Blueprints,
    /// Cluster instances.
    Clusters,
    /// Handing clusters to users and taking them back.
    Apply,
    /// Health, stats, lease history, operations and events.
    Pool,
}

/// Every API of the service.
pub type Apis = (
    hosts::HostsApi,
    blueprints::BlueprintsApi,
    clusters::ClustersApi,
    apply::ApplyApi,
    ops::PoolApi,
);

const DESCRIPTION: &str = "A pool of ready, running multi-container clusters. Apply to get a \
     dedicated cluster at once; release it to have it recreated fresh.\n\n\
     Absent values are left out of responses, never sent as `null`. Request bodies refuse \
     unknown fields and `null`, and are at most 1 MiB. Errors are an `Error` body whose `code` is an \
     `ErrorCode`; each operation lists the statuses it can answer, and any may answer 500 \
     `internal_error` when the server's own store fails.\n\n\
     The admin token opens every operation; the user token (for the service that calls on \
     behalf of users) opens `list_blueprints`, `get_blueprint`, `list_clusters`, \
     `get_cluster`, `apply`, `release`, `renew_lease` and `start_cluster`, \
     `stop_cluster`, `restart_cluster`. With the user token, an operation on one cluster \
     needs `user_id`, the user the cluster is applied to (400 without it, 403 for another \
     user).\n\n\
     The same server also speaks the original PoolManager API (`/v2/cluster_op`, \
     `/v1/cluster_apply`, …), described apart at `/legacy/openapi.json`, and serves \
     Prometheus metrics at `/metrics`.";

/// The OpenAPI service on `pool`: every operation, served under `/api/v1`.
pub fn service(pool: Pool) -> OpenApiService<Apis, ()> {
    let apis = (
        hosts::HostsApi::new(pool.clone()),
        blueprints::BlueprintsApi::new(pool.clone()),
        clusters::ClustersApi::new(pool.clone()),
        apply::ApplyApi::new(pool.clone()),
        ops::PoolApi::new(pool),
    );
    OpenApiService::new(apis, "PoolManager", env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
        .server("/api/v1")
}

/// The OpenAPI spec, as served at `/api/v1/openapi.json` (`poolmanager openapi`).
pub fn spec() -> String {
    let pool = Pool::builder(Arc::new(poolcore::MemStore::new())).build();
    finish(&service(pool))
}

/// The spec of `service`: poem-openapi's, with every object a request body takes
/// closed (`additionalProperties: false`). They all refuse unknown fields
/// (`deny_unknown_fields`), which poem-openapi does not state.
fn finish(service: &OpenApiService<Apis, ()>) -> String {
    let mut spec: Value = serde_json::from_str(&service.spec()).unwrap_or_default();
    let mut todo = Vec::new();
    for item in spec["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, item)| item)
    {
        for op in item.as_object().into_iter().flatten().map(|(_, op)| op) {
            refs(&op["requestBody"], &mut todo);
        }
    }
    let mut request_objects = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if request_objects.insert(name.clone()) {
            refs(&spec["components"]["schemas"][&name], &mut todo);
        }
    }
    for name in request_objects {
        let schema = &mut spec["components"]["schemas"][&name];
        if schema.get("properties").is_some() {
            schema["additionalProperties"] = Value::Bool(false);
        }
    }
    serde_json::to_string_pretty(&spec).unwrap_or_default()
}

/// Adds the names of the schemas `value` refers to.
fn refs(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            if let Some(name) = fields
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                names.push(name.to_owned());
            }
            fields.values().for_each(|v| refs(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, names)),
        _ => {}
    }
}

/// The whole HTTP app: the API under `/api/v1`, its spec at `/api/v1/openapi.json`
/// and Swagger UI at `/docs`, with the access log (no secrets in it) and the cap on
/// event subscribers that the server gives as request data
/// ([`crate::serve::EventSlots`]).
pub fn app(pool: Pool, tokens: Tokens) -> impl Endpoint {
    let service = service(pool.clone());
    let spec = finish(&service);
    let paths = serde_json::from_str(&spec).unwrap_or_default();
    let docs = service.swagger_ui();
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(spec.clone())
    });
    crate::legacy::mount(Route::new(), pool)
        .at("/api/v1/openapi.json", spec)
        .nest(
            "/api/v1",
            service
                .with(http::BodyLimit)
                .with(http::AllowMethods::from_spec(&paths)),
        )
        .nest("/docs", docs)
        .data(tokens)
        .catch_all_error(error::json_errors)
        .with(crate::serve::LimitEventSubscribers)
        .with(crate::serve::AccessLog)
}

/// Answer of every delete.
#[derive(ApiResponse)]
pub enum Deleted {
    /// Removed.
    #[oai(status = 204)]
    NoContent,
}

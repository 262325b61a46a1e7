//! The REST API: one `Api` struct per resource, merged into one OpenAPI service.

pub mod auth;
pub mod dto;
pub mod error;

mod apply;
mod blueprints;
mod clusters;
mod hosts;
mod ops;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};
use serde::de::DeserializeOwned;

use self::auth::Tokens;
use self::error::ApiError;
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
    /// Health, stats, lease history and long-running operations.
    Pool,
}

/// The whole HTTP app: the API under `/api/v1`, its spec at `/api/v1/openapi.json`
/// and Swagger UI at `/docs`, with the access log (no secrets in it) and the cap on
/// event subscribers that the server gives as request data
/// ([`crate::serve::EventSlots`]).
pub fn app(pool: Pool, tokens: Tokens) -> impl Endpoint {
    let api = (
        hosts::HostsApi::new(pool.clone()),
        blueprints::BlueprintsApi::new(pool.clone()),
        clusters::ClustersApi::new(pool.clone()),
        apply::ApplyApi::new(pool.clone()),
        ops::PoolApi::new(pool.clone()),
    );
    let service = OpenApiService::new(api, "PoolManager", env!("CARGO_PKG_VERSION"))
        .description(
            "A pool of ready, running multi-container clusters. Apply to get a dedicated \
             cluster at once; release it to have it recreated fresh.",
        )
        .server("/api/v1");
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    crate::legacy::mount(Route::new(), pool)
        .at("/api/v1/openapi.json", spec)
        .nest("/api/v1", service)
        .nest("/docs", docs)
        .data(tokens)
        .catch_all_error(error::json_errors)
        .with(crate::serve::LimitEventSubscribers)
        .with(crate::serve::AccessLog)
}

/// Answer of every delete.
#[derive(poem_openapi::ApiResponse)]
pub enum Deleted {
    /// Removed.
    #[oai(status = 204)]
    NoContent,
}

/// Parses an optional JSON body: empty means `None`.
async fn optional_json<T: DeserializeOwned>(body: poem::Body) -> Result<Option<T>, ApiError> {
    let bytes = body
        .into_bytes()
        .await
        .map_err(|e| ApiError::invalid(format!("could not read the body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::invalid(format!("the body is not valid JSON for this request: {e}")))
}

//! `/clusters`: create on a host, list, get, delete, start/stop/restart.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::{AdminAuth, Role, UserAuth};
use super::dto::{ClusterDto, ClusterListDto, NewClusterDto, NodeTargetDto, RenewDto};
use super::error::{ApiError, ApiResult};
use super::Deleted;
use super::{optional_json, Tag};
use poolcore::{ClusterFilter, NodeAction, Page, Pool};

/// Most clusters one page may hold.
pub const MAX_PAGE: u64 = 1000;

/// Clusters.
pub struct ClustersApi {
    pool: Pool,
}

impl ClustersApi {
    pub fn new(pool: Pool) -> Self {
        ClustersApi { pool }
    }

    async fn control(
        &self,
        role: Role,
        id: &str,
        action: NodeAction,
        body: poem::Body,
    ) -> ApiResult<Json<ClusterDto>> {
        let target: NodeTargetDto = optional_json(body).await?.unwrap_or_default();
        let actor = role.actor(target.user_id.as_deref())?;
        let cluster = self
            .pool
            .control_cluster(id, action, target.node.as_deref(), actor)
            .await?;
        Ok(Json(cluster.into()))
    }
}

#[derive(ApiResponse)]
enum ClusterAccepted {
    /// The record exists (`creating`); the engine work runs behind.
    #[oai(status = 202)]
    Accepted(Json<ClusterDto>),
}

/// Checks `limit`/`offset` query values.
pub fn page(limit: Option<u64>, offset: Option<u64>) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(format!(
            "limit {limit} is not between 1 and {MAX_PAGE}"
        )));
    }
    Ok(Page {
        offset: offset.unwrap_or(0),
        limit,
    })
}

#[OpenApi(tag = "Tag::Clusters")]
impl ClustersApi {
    /// Create a cluster of a blueprint on a chosen host.
    #[oai(path = "/clusters", method = "post")]
    async fn create(&self, _auth: AdminAuth, body: Json<NewClusterDto>) -> ApiResult<ClusterAccepted> {
        let b = body.0;
        let cluster = self
            .pool
            .create_cluster(&b.host_id, &b.blueprint, b.name.as_deref())
            .await?;
        Ok(ClusterAccepted::Accepted(Json(cluster.into())))
    }

    /// List clusters, by name, filtered and paged (`limit` 1-1000, default 100).
    #[oai(path = "/clusters", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: UserAuth,
        status: Query<Option<String>>,
        host_id: Query<Option<String>>,
        user_id: Query<Option<String>>,
        blueprint: Query<Option<String>>,
        limit: Query<Option<u64>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<Json<ClusterListDto>> {
        let filter = ClusterFilter {
            status: status.0.as_deref().map(str::parse).transpose()?,
            host_id: host_id.0,
            user_id: user_id.0,
            blueprints: blueprint.0.map(|b| vec![b]),
        };
        let listing = self.pool.clusters(&filter, page(limit.0, offset.0)?).await?;
        Ok(Json(ClusterListDto {
            items: listing.items.into_iter().map(Into::into).collect(),
            total: listing.total,
        }))
    }

    /// One cluster, with its service URLs.
    #[oai(path = "/clusters/:id", method = "get")]
    async fn get(&self, _auth: UserAuth, id: Path<String>) -> ApiResult<Json<ClusterDto>> {
        Ok(Json(self.pool.cluster(&id).await?.into()))
    }

    /// Delete a cluster. Refused while it is applied unless `force=true`.
    #[oai(path = "/clusters/:id", method = "delete")]
    async fn delete(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
        force: Query<Option<bool>>,
    ) -> ApiResult<Deleted> {
        self.pool.delete_cluster(&id, force.0.unwrap_or(false)).await?;
        Ok(Deleted::NoContent)
    }

    /// Start the cluster, or one node with body `{"node": name}`.
    #[oai(path = "/clusters/:id/start", method = "post")]
    async fn start(&self, auth: UserAuth, id: Path<String>, body: poem::Body) -> ApiResult<Json<ClusterDto>> {
        self.control(auth.0, &id, NodeAction::Start, body).await
    }

    /// Stop the cluster, or one node with body `{"node": name}`.
    #[oai(path = "/clusters/:id/stop", method = "post")]
    async fn stop(&self, auth: UserAuth, id: Path<String>, body: poem::Body) -> ApiResult<Json<ClusterDto>> {
        self.control(auth.0, &id, NodeAction::Stop, body).await
    }

    /// Extend the lease of an applied cluster to `ttl_seconds` from now (the server's
    /// default when left out, at most its maximum). With `user_id`, only if the
    /// cluster is applied to that user (else 409).
    #[oai(path = "/clusters/:id/renew", method = "post")]
    async fn renew(&self, auth: UserAuth, id: Path<String>, body: poem::Body) -> ApiResult<Json<ClusterDto>> {
        let renew: RenewDto = optional_json(body).await?.unwrap_or_default();
        let ttl = renew.ttl_seconds.map(std::time::Duration::from_secs);
        let cluster = self
            .pool
            .renew(&id, auth.0.actor(renew.user_id.as_deref())?, ttl)
            .await?;
        Ok(Json(cluster.into()))
    }

    /// Restart the cluster, or one node with body `{"node": name}`.
    #[oai(path = "/clusters/:id/restart", method = "post")]
    async fn restart(
        &self,
        auth: UserAuth,
        id: Path<String>,
        body: poem::Body,
    ) -> ApiResult<Json<ClusterDto>> {
        self.control(auth.0, &id, NodeAction::Restart, body).await
    }
}

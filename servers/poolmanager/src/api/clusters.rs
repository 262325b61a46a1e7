//! `/clusters`: create on a host, list, get, delete, start/stop/restart, renew.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::{AdminAuth, Role, UserAuth};
use super::dto::clusters::{
    Cluster, ClusterPage, ClusterSortKey, ClusterStatus, Health, NewCluster, NodeTarget, Renewal, SortOrder,
};
use super::dto::rules::{Name, Text};
use super::dto::{default_limit, no_offset, page, Limit, Offset};
use super::error::{Errors, ADMIN, BAD_REQUEST, BODY, CONFLICT, ENGINE, FORBIDDEN, NOT_FOUND, USER};
use super::http::{JsonBody, OptionalJson};
use super::{Deleted, Tag};
use poolcore::{ClusterFilter, ClusterSort, NodeAction, Pool};

/// What starting, stopping or restarting a cluster can answer.
type ControlErrors = Errors<{ USER | FORBIDDEN | BODY | NOT_FOUND | CONFLICT | ENGINE }>;

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
        target: OptionalJson<NodeTarget>,
    ) -> Result<Json<Cluster>, ControlErrors> {
        let target = target.or_default();
        let user = target.user_id.as_ref().map(Text::as_str);
        let node = target.node.as_ref().map(Name::as_str);
        let cluster = self
            .pool
            .control_cluster(id, action, node, role.actor(user)?)
            .await?;
        Ok(Json(cluster.into()))
    }
}

#[derive(ApiResponse)]
enum ClusterAccepted {
    /// The record exists (`creating`); the engine work runs behind.
    #[oai(status = 202)]
    Accepted(Json<Cluster>),
}

#[OpenApi(tag = "Tag::Clusters")]
impl ClustersApi {
    /// Create a cluster of a blueprint on a chosen host. A full host or a taken name is
    /// 409.
    #[oai(path = "/clusters", method = "post", operation_id = "create_cluster")]
    async fn create(
        &self,
        _auth: AdminAuth,
        body: JsonBody<NewCluster>,
    ) -> Result<ClusterAccepted, Errors<{ ADMIN | BODY | NOT_FOUND | CONFLICT }>> {
        let b = body.0;
        let name = b.name.as_ref().map(Name::as_str);
        let cluster = self
            .pool
            .create_cluster(&b.host_id, b.blueprint.as_str(), name)
            .await?;
        Ok(ClusterAccepted::Accepted(Json(cluster.into())))
    }

    /// List clusters, filtered and sorted (by name unless `sort` says otherwise), a
    /// page at a time. User token.
    #[oai(path = "/clusters", method = "get", operation_id = "list_clusters")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: UserAuth,
        /// Only in this status.
        status: Query<Option<ClusterStatus>>,
        /// Only on this host.
        host_id: Query<Option<String>>,
        /// Only applied to this user.
        user_id: Query<Option<String>>,
        /// Only of this blueprint.
        blueprint: Query<Option<String>>,
        /// Only in this health: with `status=ready`, `health=failing` gives the free
        /// clusters that run but are broken.
        health: Query<Option<Health>>,
        /// What to order by (by name unless given); pages follow this order.
        sort: Query<Option<ClusterSortKey>>,
        /// `asc` (when not given) or `desc`.
        order: Query<Option<SortOrder>>,
        /// Most clusters to return (1-1000).
        #[oai(default = "default_limit")]
        limit: Query<Limit>,
        /// Clusters to skip.
        #[oai(default = "no_offset")]
        offset: Query<Offset>,
    ) -> Result<Json<ClusterPage>, Errors<{ USER | BAD_REQUEST }>> {
        let filter = ClusterFilter {
            status: status.0.map(Into::into),
            host_id: host_id.0,
            user_id: user_id.0,
            blueprints: blueprint.0.map(|b| vec![b]),
            health: health.0.map(Into::into),
            sort: ClusterSort {
                key: sort.0.map(Into::into).unwrap_or_default(),
                descending: order.0 == Some(SortOrder::Desc),
            },
        };
        let page = page(limit.0, offset.0);
        Ok(Json(ClusterPage::of(
            self.pool.clusters(&filter, page).await?,
            page,
        )))
    }

    /// One cluster, with its service URLs. User token.
    #[oai(path = "/clusters/:id", method = "get", operation_id = "get_cluster")]
    async fn get(
        &self,
        _auth: UserAuth,
        id: Path<String>,
    ) -> Result<Json<Cluster>, Errors<{ USER | NOT_FOUND }>> {
        Ok(Json(self.pool.cluster(&id).await?.into()))
    }

    /// Delete a cluster from its engine and the pool. Refused with 409 while it is
    /// applied, unless `force` (its lease is then closed).
    #[oai(path = "/clusters/:id", method = "delete", operation_id = "delete_cluster")]
    async fn delete(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
        /// Delete even while applied.
        #[oai(default)]
        force: Query<bool>,
    ) -> Result<Deleted, Errors<{ ADMIN | BAD_REQUEST | NOT_FOUND | CONFLICT | ENGINE }>> {
        self.pool.delete_cluster(&id, force.0).await?;
        Ok(Deleted::NoContent)
    }

    /// Start the cluster, or one node. A stopped free cluster becomes `ready`. User
    /// token: with `user_id`, the user the cluster is applied to (403 otherwise). 409
    /// unless the cluster is ready, applied or stopped.
    #[oai(path = "/clusters/:id/start", method = "post", operation_id = "start_cluster")]
    async fn start(
        &self,
        auth: UserAuth,
        id: Path<String>,
        body: OptionalJson<NodeTarget>,
    ) -> Result<Json<Cluster>, ControlErrors> {
        self.control(auth.0, &id, NodeAction::Start, body).await
    }

    /// Stop the cluster, or one node; nodes stopped on purpose stay stopped. A free
    /// cluster stopped whole becomes `stopped`. User token as for `start_cluster`.
    #[oai(path = "/clusters/:id/stop", method = "post", operation_id = "stop_cluster")]
    async fn stop(
        &self,
        auth: UserAuth,
        id: Path<String>,
        body: OptionalJson<NodeTarget>,
    ) -> Result<Json<Cluster>, ControlErrors> {
        self.control(auth.0, &id, NodeAction::Stop, body).await
    }

    /// Restart the cluster, or one node; endpoints are read back. User token as for
    /// `start_cluster`.
    #[oai(
        path = "/clusters/:id/restart",
        method = "post",
        operation_id = "restart_cluster"
    )]
    async fn restart(
        &self,
        auth: UserAuth,
        id: Path<String>,
        body: OptionalJson<NodeTarget>,
    ) -> Result<Json<Cluster>, ControlErrors> {
        self.control(auth.0, &id, NodeAction::Restart, body).await
    }

    /// Extend the lease of an applied cluster to `ttl_seconds` from now (the server's
    /// default when left out, at most its maximum; 400 when the server has neither).
    /// 409 when the cluster is not applied. User token: with `user_id`, the user the
    /// cluster is applied to (403 otherwise).
    #[oai(path = "/clusters/:id/renew", method = "post", operation_id = "renew_lease")]
    async fn renew(
        &self,
        auth: UserAuth,
        id: Path<String>,
        body: OptionalJson<Renewal>,
    ) -> Result<Json<Cluster>, Errors<{ USER | FORBIDDEN | BODY | NOT_FOUND | CONFLICT }>> {
        let renewal = body.or_default();
        let actor = auth.0.actor(renewal.user_id.as_ref().map(Text::as_str))?;
        Ok(Json(self.pool.renew(&id, actor, renewal.ttl()).await?.into()))
    }
}

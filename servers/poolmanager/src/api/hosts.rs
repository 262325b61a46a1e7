//! `/hosts`: add, list, get, change, delete, fill, clean, reset.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::AdminAuth;
use super::dto::{FillDto, HostDto, HostPatchDto, NewHostDto, OperationRefDto};
use super::error::ApiResult;
use super::Deleted;
use super::{optional_json, Tag};
use poolcore::Pool;

/// Hosts.
pub struct HostsApi {
    pool: Pool,
}

impl HostsApi {
    pub fn new(pool: Pool) -> Self {
        HostsApi { pool }
    }
}

#[derive(ApiResponse)]
enum HostCreated {
    /// The host was probed and added; an autofill host starts filling.
    #[oai(status = 201)]
    Created(Json<HostDto>),
}

#[derive(ApiResponse)]
enum Started {
    /// The operation runs; poll `/operations/{operation_id}`.
    #[oai(status = 202)]
    Accepted(Json<OperationRefDto>),
}

fn started(op: poolcore::Operation) -> Started {
    Started::Accepted(Json(OperationRefDto { operation_id: op.id }))
}

#[OpenApi(tag = "Tag::Hosts")]
impl HostsApi {
    /// Add a host. Its engine is probed first; an unreachable engine is refused.
    #[oai(path = "/hosts", method = "post")]
    async fn add(&self, _auth: AdminAuth, body: Json<NewHostDto>) -> ApiResult<HostCreated> {
        let host = self.pool.add_host(body.0.try_into()?).await?;
        Ok(HostCreated::Created(Json(host.into())))
    }

    /// List hosts by name.
    #[oai(path = "/hosts", method = "get")]
    async fn list(&self, _auth: AdminAuth) -> ApiResult<Json<Vec<HostDto>>> {
        let hosts = self.pool.hosts().await?;
        Ok(Json(hosts.into_iter().map(Into::into).collect()))
    }

    /// One host.
    #[oai(path = "/hosts/:id", method = "get")]
    async fn get(&self, _auth: AdminAuth, id: Path<String>) -> ApiResult<Json<HostDto>> {
        Ok(Json(self.pool.host(&id).await?.into()))
    }

    /// Change a host's settings.
    #[oai(path = "/hosts/:id", method = "patch")]
    async fn update(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
        body: Json<HostPatchDto>,
    ) -> ApiResult<Json<HostDto>> {
        Ok(Json(self.pool.update_host(&id, body.0.into()).await?.into()))
    }

    /// Delete a host, its clusters and what PoolManager made on its engine. Refused
    /// while clusters are applied unless `force=true`.
    #[oai(path = "/hosts/:id", method = "delete")]
    async fn delete(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
        force: Query<Option<bool>>,
    ) -> ApiResult<Deleted> {
        self.pool.delete_host(&id, force.0.unwrap_or(false)).await?;
        Ok(Deleted::NoContent)
    }

    /// Fill the host up to its capacity. Optional body `{"blueprint": name}`; without
    /// it every blueprint gets an even share.
    #[oai(path = "/hosts/:id/fill", method = "post")]
    async fn fill(&self, _auth: AdminAuth, id: Path<String>, body: poem::Body) -> ApiResult<Started> {
        let fill: FillDto = optional_json(body).await?.unwrap_or_default();
        Ok(started(
            self.pool.fill_host(&id, fill.blueprint.as_deref()).await?,
        ))
    }

    /// Remove the host's free clusters (ready, stopped, failed).
    #[oai(path = "/hosts/:id/clean", method = "post")]
    async fn clean(&self, _auth: AdminAuth, id: Path<String>) -> ApiResult<Started> {
        Ok(started(self.pool.clean_host(&id).await?))
    }

    /// Remove everything PoolManager made on the host and fill it again. Refused
    /// while clusters are applied.
    #[oai(path = "/hosts/:id/reset", method = "post")]
    async fn reset(&self, _auth: AdminAuth, id: Path<String>) -> ApiResult<Started> {
        Ok(started(self.pool.reset_host(&id).await?))
    }
}

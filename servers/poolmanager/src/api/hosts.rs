//! `/hosts`: add, list, get, change, delete, fill, clean, reset.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::AdminAuth;
use super::dto::hosts::{Fill, Host, HostPage, HostPatch, NewHost};
use super::dto::pool::OperationRef;
use super::dto::rules::Name;
use super::dto::{default_limit, no_offset, page, Limit, Offset};
use super::error::{Errors, ADMIN, BAD_REQUEST, BODY, CONFLICT, ENGINE, NOT_FOUND, UNAVAILABLE};
use super::http::{JsonBody, OptionalJson};
use super::{Deleted, Tag};
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
    Created(Json<Host>),
}

#[derive(ApiResponse)]
enum Started {
    /// The operation runs; follow it with `get_operation`.
    #[oai(status = 202)]
    Accepted(Json<OperationRef>),
}

fn started(op: poolcore::Operation) -> Started {
    Started::Accepted(Json(OperationRef { operation_id: op.id }))
}

#[OpenApi(tag = "Tag::Hosts")]
impl HostsApi {
    /// Add a host. Its engine is probed first: an engine that does not answer is
    /// refused with 503 `unavailable`; a `swarm` host whose engine is no swarm manager,
    /// or a kind the server has no driver for, with 400; a taken name with 409.
    #[oai(path = "/hosts", method = "post", operation_id = "create_host")]
    async fn create(
        &self,
        _auth: AdminAuth,
        body: JsonBody<NewHost>,
    ) -> Result<HostCreated, Errors<{ ADMIN | BODY | CONFLICT | UNAVAILABLE }>> {
        let host = self.pool.add_host(body.0.into()).await?;
        Ok(HostCreated::Created(Json(host.into())))
    }

    /// List hosts by name, a page at a time.
    #[oai(path = "/hosts", method = "get", operation_id = "list_hosts")]
    async fn list(
        &self,
        _auth: AdminAuth,
        /// Most hosts to return (1-1000).
        #[oai(default = "default_limit")]
        limit: Query<Limit>,
        /// Hosts to skip.
        #[oai(default = "no_offset")]
        offset: Query<Offset>,
    ) -> Result<Json<HostPage>, Errors<{ ADMIN | BAD_REQUEST }>> {
        let page = page(limit.0, offset.0);
        Ok(Json(HostPage::of(self.pool.hosts_page(page).await?, page)))
    }

    /// One host.
    #[oai(path = "/hosts/:id", method = "get", operation_id = "get_host")]
    async fn get(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> Result<Json<Host>, Errors<{ ADMIN | NOT_FOUND }>> {
        Ok(Json(self.pool.host(&id).await?.into()))
    }

    /// Change a host's settings; what the body leaves out stays. A taken name is 409.
    #[oai(path = "/hosts/:id", method = "patch", operation_id = "update_host")]
    async fn update(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
        body: JsonBody<HostPatch>,
    ) -> Result<Json<Host>, Errors<{ ADMIN | BODY | NOT_FOUND | CONFLICT }>> {
        Ok(Json(self.pool.update_host(&id, body.0.into()).await?.into()))
    }

    /// Delete a host, its clusters and everything PoolManager made on its engine.
    /// Refused with 409 while clusters are applied, unless `force`; without `force`, an
    /// engine that fails or does not answer is 502 or 503 and the host stays.
    #[oai(path = "/hosts/:id", method = "delete", operation_id = "delete_host")]
    async fn delete(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
        /// Delete even with applied clusters (their leases are closed) or an engine
        /// that cannot be cleaned.
        #[oai(default)]
        force: Query<bool>,
    ) -> Result<Deleted, Errors<{ ADMIN | BAD_REQUEST | NOT_FOUND | CONFLICT | ENGINE }>> {
        self.pool.delete_host(&id, force.0).await?;
        Ok(Deleted::NoContent)
    }

    /// Fill the host up to its capacity, with one blueprint or (without a body) an
    /// even share of every blueprint. 400 when there is no blueprint at all or the
    /// body names one that does not exist; 404 is for the host alone.
    #[oai(path = "/hosts/:id/fill", method = "post", operation_id = "fill_host")]
    async fn fill(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
        body: OptionalJson<Fill>,
    ) -> Result<Started, Errors<{ ADMIN | BODY | NOT_FOUND }>> {
        let fill = body.or_default();
        let blueprint = fill.blueprint.as_ref().map(Name::as_str);
        Ok(started(self.pool.fill_host(&id, blueprint).await?))
    }

    /// Remove the host's free clusters (ready, stopped, failed).
    #[oai(path = "/hosts/:id/clean", method = "post", operation_id = "clean_host")]
    async fn clean(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> Result<Started, Errors<{ ADMIN | NOT_FOUND }>> {
        Ok(started(self.pool.clean_host(&id).await?))
    }

    /// Remove everything PoolManager made on the host and fill it again. Refused with
    /// 409 while clusters are applied.
    #[oai(path = "/hosts/:id/reset", method = "post", operation_id = "reset_host")]
    async fn reset(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> Result<Started, Errors<{ ADMIN | NOT_FOUND | CONFLICT }>> {
        Ok(started(self.pool.reset_host(&id).await?))
    }
}

//! `/blueprints`: create, list, get, change policies, delete.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::{AdminAuth, UserAuth};
use super::dto::blueprints::{
    Blueprint, BlueprintPage, BlueprintPatch, NewBlueprint, NewBlueprintVersion, RolloutStatus,
};
use super::dto::{default_limit, no_offset, page, Limit, Offset};
use super::error::{Errors, ADMIN, BAD_REQUEST, BODY, CONFLICT, NOT_FOUND, USER};
use super::http::JsonBody;
use super::{Deleted, Tag};
use poolcore::Pool;

/// Blueprints.
pub struct BlueprintsApi {
    pool: Pool,
}

impl BlueprintsApi {
    pub fn new(pool: Pool) -> Self {
        BlueprintsApi { pool }
    }
}

#[derive(ApiResponse)]
enum BlueprintCreated {
    /// Added; autofill hosts with room start filling.
    #[oai(status = 201)]
    Created(Json<Blueprint>),
}

#[derive(ApiResponse)]
enum VersionCreated {
    /// The blueprint at its new version.
    #[oai(status = 201)]
    Created(Json<Blueprint>),
}

#[OpenApi(tag = "Tag::Blueprints")]
impl BlueprintsApi {
    /// Add a blueprint. Node names must be unique and `api_port` must name a port of a
    /// node (else 400); a taken name is 409.
    #[oai(path = "/blueprints", method = "post", operation_id = "create_blueprint")]
    async fn create(
        &self,
        _auth: AdminAuth,
        body: JsonBody<NewBlueprint>,
    ) -> Result<BlueprintCreated, Errors<{ ADMIN | BODY | CONFLICT }>> {
        let blueprint = self.pool.create_blueprint(body.0.try_into()?).await?;
        Ok(BlueprintCreated::Created(Json(blueprint.into())))
    }

    /// List blueprints by name, a page at a time. User token.
    #[oai(path = "/blueprints", method = "get", operation_id = "list_blueprints")]
    async fn list(
        &self,
        _auth: UserAuth,
        /// Most blueprints to return (1-1000).
        #[oai(default = "default_limit")]
        limit: Query<Limit>,
        /// Blueprints to skip.
        #[oai(default = "no_offset")]
        offset: Query<Offset>,
    ) -> Result<Json<BlueprintPage>, Errors<{ USER | BAD_REQUEST }>> {
        let page = page(limit.0, offset.0);
        Ok(Json(BlueprintPage::of(
            self.pool.blueprints_page(page).await?,
            page,
        )))
    }

    /// One blueprint. User token.
    #[oai(path = "/blueprints/:name", method = "get", operation_id = "get_blueprint")]
    async fn get(
        &self,
        _auth: UserAuth,
        name: Path<String>,
    ) -> Result<Json<Blueprint>, Errors<{ USER | NOT_FOUND }>> {
        Ok(Json(self.pool.blueprint(&name).await?.into()))
    }

    /// Change a blueprint's policies (quota, ready buffer, placement, release mode,
    /// rollout); `unset` removes a limit. The pool makes
    /// or removes free clusters to match at once (and on every reconcile pass). A
    /// value out of range, or `min_ready` above `max_total`, is 400.
    #[oai(
        path = "/blueprints/:name",
        method = "patch",
        operation_id = "update_blueprint"
    )]
    async fn update(
        &self,
        _auth: AdminAuth,
        name: Path<String>,
        body: JsonBody<BlueprintPatch>,
    ) -> Result<Json<Blueprint>, Errors<{ ADMIN | BODY | NOT_FOUND }>> {
        Ok(Json(
            self.pool
                .update_blueprint(&name, body.0.try_into()?)
                .await?
                .into(),
        ))
    }

    /// Make a new version of a blueprint with other nodes (and API port); returns the
    /// blueprint at it. Every cluster made from then on is of the new version; free
    /// clusters of earlier versions are made anew as its `rollout` says (`recreate`:
    /// now, at most `rollout_per_minute` a minute; `on_release`: after their next
    /// release); applied clusters keep their version until released. Bad nodes are 400;
    /// another version made at the same moment is 409.
    #[oai(
        path = "/blueprints/:name/versions",
        method = "post",
        operation_id = "create_blueprint_version"
    )]
    async fn create_version(
        &self,
        _auth: AdminAuth,
        name: Path<String>,
        body: JsonBody<NewBlueprintVersion>,
    ) -> Result<VersionCreated, Errors<{ ADMIN | BODY | NOT_FOUND | CONFLICT }>> {
        let blueprint = self
            .pool
            .update_blueprint_nodes(&name, body.0.try_into()?)
            .await?;
        Ok(VersionCreated::Created(Json(blueprint.into())))
    }

    /// Where the blueprint's rollout stands: its clusters per version, by status.
    /// User token.
    #[oai(
        path = "/blueprints/:name/rollout",
        method = "get",
        operation_id = "get_blueprint_rollout"
    )]
    async fn rollout(
        &self,
        _auth: UserAuth,
        name: Path<String>,
    ) -> Result<Json<RolloutStatus>, Errors<{ USER | NOT_FOUND }>> {
        Ok(Json(self.pool.rollout_status(&name).await?.into()))
    }

    /// Delete a blueprint; refused with 409 while clusters use it.
    #[oai(
        path = "/blueprints/:name",
        method = "delete",
        operation_id = "delete_blueprint"
    )]
    async fn delete(
        &self,
        _auth: AdminAuth,
        name: Path<String>,
    ) -> Result<Deleted, Errors<{ ADMIN | NOT_FOUND | CONFLICT }>> {
        self.pool.delete_blueprint(&name).await?;
        Ok(Deleted::NoContent)
    }
}

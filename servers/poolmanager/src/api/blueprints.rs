//! `/blueprints`: create, list, get, delete.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::{AdminAuth, UserAuth};
use super::dto::{BlueprintDto, NewBlueprintDto};
use super::error::ApiResult;
use super::Deleted;
use super::Tag;
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
    /// Added.
    #[oai(status = 201)]
    Created(Json<BlueprintDto>),
}

#[OpenApi(tag = "Tag::Blueprints")]
impl BlueprintsApi {
    /// Add a blueprint.
    #[oai(path = "/blueprints", method = "post")]
    async fn create(&self, _auth: AdminAuth, body: Json<NewBlueprintDto>) -> ApiResult<BlueprintCreated> {
        let blueprint = self.pool.create_blueprint(body.0.try_into()?).await?;
        Ok(BlueprintCreated::Created(Json(blueprint.into())))
    }

    /// List blueprints by name.
    #[oai(path = "/blueprints", method = "get")]
    async fn list(&self, _auth: UserAuth) -> ApiResult<Json<Vec<BlueprintDto>>> {
        let blueprints = self.pool.blueprints().await?;
        Ok(Json(blueprints.into_iter().map(Into::into).collect()))
    }

    /// One blueprint.
    #[oai(path = "/blueprints/:name", method = "get")]
    async fn get(&self, _auth: UserAuth, name: Path<String>) -> ApiResult<Json<BlueprintDto>> {
        Ok(Json(self.pool.blueprint(&name).await?.into()))
    }

    /// Delete a blueprint; refused while clusters use it.
    #[oai(path = "/blueprints/:name", method = "delete")]
    async fn delete(&self, _auth: AdminAuth, name: Path<String>) -> ApiResult<Deleted> {
        self.pool.delete_blueprint(&name).await?;
        Ok(Deleted::NoContent)
    }
}

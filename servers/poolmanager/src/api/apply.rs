//! `/apply` and `/release`: handing clusters to users and taking them back.

use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::auth::UserAuth;
use super::dto::{ApplyDto, ClusterDto, ReleaseDto, ReleasedDto};
use super::error::ApiResult;
use super::Tag;
use poolcore::Pool;

/// Apply and release.
pub struct ApplyApi {
    pool: Pool,
}

impl ApplyApi {
    pub fn new(pool: Pool) -> Self {
        ApplyApi { pool }
    }
}

#[OpenApi(tag = "Tag::Apply")]
impl ApplyApi {
    /// Get a dedicated, running cluster at once. When nothing matching is ready the
    /// answer is 503 with code `pool_exhausted` and a `Retry-After` header.
    #[oai(path = "/apply", method = "post")]
    async fn apply(&self, _auth: UserAuth, body: Json<ApplyDto>) -> ApiResult<Json<ClusterDto>> {
        let cluster = self.pool.apply(body.0.into()).await?;
        Ok(Json(cluster.into()))
    }

    /// Give back one cluster (`cluster_id`) or all of a user's (`user_id`). Answers at
    /// once; each cluster is destroyed and recreated fresh behind the answer.
    #[oai(path = "/release", method = "post")]
    async fn release(&self, auth: UserAuth, body: Json<ReleaseDto>) -> ApiResult<Json<ReleasedDto>> {
        let target: poolcore::ReleaseTarget = body.0.clone().try_into()?;
        // A release of all of a user's clusters acts for that user.
        let owner = body.0.user_id.as_deref();
        let released = self.pool.release(target, auth.0.actor(owner)?).await?;
        Ok(Json(ReleasedDto { released }))
    }
}

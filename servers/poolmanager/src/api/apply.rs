//! `/apply` and `/release`: handing clusters to users and taking them back.

use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::auth::UserAuth;
use super::dto::clusters::{Apply, Cluster, Release, Released};
use super::error::{
    ApiError, ErrorCode, Errors, BODY, CONFLICT, FORBIDDEN, NOT_FOUND, QUOTA, UNAVAILABLE, USER,
};
use super::http::JsonBody;
use super::Tag;
use crate::serve::Departures;
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
    /// Get a dedicated, running cluster at once. Without `allow_multiple`, a user who
    /// holds a matching cluster gets it back, and one who holds a cluster of another
    /// blueprint from such an apply is refused with 409. An unknown blueprint (or no
    /// blueprint with the labels) is 404. When nothing matching is ready the answer is
    /// 503 `pool_exhausted` with `Retry-After`. Beyond a quota (the clusters one user
    /// may hold, a blueprint's `max_applied`) it is 429 `quota_exceeded`, naming the
    /// quota. A TTL above the server's maximum is 400. With `wait_seconds`, an apply
    /// that finds nothing ready waits up to that long, in line (first come, first
    /// served) with the others wanting the same, and is answered as soon as a cluster
    /// becomes ready; 503 only when the wait runs out. A client that closes its
    /// connection leaves the line.
    /// User token.
    #[oai(path = "/apply", method = "post", operation_id = "apply")]
    async fn apply(
        &self,
        _auth: UserAuth,
        body: JsonBody<Apply>,
        req: &poem::Request,
    ) -> Result<Json<Cluster>, Errors<{ USER | BODY | NOT_FOUND | CONFLICT | QUOTA | UNAVAILABLE }>> {
        let waits = body.0.wait_seconds.is_some_and(|w| w.get() > 0);
        let apply = self.pool.apply(body.0.into());
        let gone = waits.then(|| Departures::of(req)).flatten();
        let Some(gone) = gone else {
            return Ok(Json(apply.await?.into()));
        };
        // Dropping the apply leaves the line; nobody reads this answer.
        tokio::select! {
            biased;
            applied = apply => Ok(Json(applied?.into())),
            () = gone.cancelled() => Err(ApiError::new(
                ErrorCode::PoolExhausted,
                "the client went away while waiting",
            )
            .into()),
        }
    }

    /// Give back one cluster (`cluster_id`) or every cluster of a user (`user_id`).
    /// Answers at once; each cluster is destroyed and recreated fresh behind the
    /// answer. A cluster that is not applied is 409. User token: with `cluster_id`,
    /// `user_id` is required and must be the user it is applied to (403 otherwise).
    #[oai(path = "/release", method = "post", operation_id = "release")]
    async fn release(
        &self,
        auth: UserAuth,
        body: JsonBody<Release>,
    ) -> Result<Json<Released>, Errors<{ USER | FORBIDDEN | BODY | NOT_FOUND | CONFLICT }>> {
        let (target, owner) = body.0.target()?;
        let released = self.pool.release(target, auth.0.actor(owner.as_deref())?).await?;
        Ok(Json(Released { released }))
    }
}

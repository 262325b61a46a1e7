//! Health, stats, lease history and operations.

use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use poem::web::sse::Event;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON;
use poem_openapi::OpenApi;
use tokio::sync::broadcast::error::RecvError;

use super::auth::AdminAuth;
use super::clusters::page;
use super::dto::{EventDto, HealthDto, LeaseListDto, OperationDto, StatsDto};
use super::error::ApiResult;
use super::Tag;
use poolcore::Pool;

/// Pool-wide endpoints.
pub struct PoolApi {
    pool: Pool,
}

impl PoolApi {
    pub fn new(pool: Pool) -> Self {
        PoolApi { pool }
    }
}

#[OpenApi(tag = "Tag::Pool")]
impl PoolApi {
    /// Liveness; no token needed.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> Json<HealthDto> {
        Json(HealthDto {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Clusters by status, per host and per blueprint; hosts by status.
    #[oai(path = "/stats", method = "get")]
    async fn stats(&self, _auth: AdminAuth) -> ApiResult<Json<StatsDto>> {
        Ok(Json(self.pool.stats().await?.into()))
    }

    /// Lease history, newest first (`limit` 1-1000, default 100).
    #[oai(path = "/leases", method = "get")]
    async fn leases(
        &self,
        _auth: AdminAuth,
        user_id: Query<Option<String>>,
        limit: Query<Option<u64>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<Json<LeaseListDto>> {
        let listing = self
            .pool
            .leases(user_id.0.as_deref(), page(limit.0, offset.0)?)
            .await?;
        Ok(Json(LeaseListDto {
            items: listing.items.into_iter().map(Into::into).collect(),
            total: listing.total,
        }))
    }

    /// Every change of the pool's state made by this server, as Server-Sent Events:
    /// host status, cluster status and health, applies, releases and operation
    /// progress. The `event:` field is the event's `kind`; a comment is sent every 15 s
    /// to keep idle connections open.
    #[oai(path = "/events", method = "get")]
    async fn events(&self, _auth: AdminAuth) -> EventStream<BoxStream<'static, EventDto>> {
        let events = futures::stream::unfold(self.pool.events(), |mut rx| async move {
            let event = match rx.recv().await {
                Ok(event) => EventDto::from(event),
                Err(RecvError::Lagged(missed)) => EventDto::lagged(missed),
                Err(RecvError::Closed) => return None,
            };
            Some((event, rx))
        });
        EventStream::new(events.boxed())
            .keep_alive(Duration::from_secs(15))
            .to_event(|event| Event::message(event.to_json_string()).event_type(event.kind))
    }

    /// Progress of a fill, clean or reset.
    #[oai(path = "/operations/:id", method = "get")]
    async fn operation(&self, _auth: AdminAuth, id: Path<String>) -> ApiResult<Json<OperationDto>> {
        Ok(Json(self.pool.operation(&id).await?.into()))
    }
}

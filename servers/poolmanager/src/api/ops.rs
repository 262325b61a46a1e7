//! Health, stats, lease history, operations and the event stream.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use poem::web::sse::{Event as Sse, SSE};
use poem::{IntoResponse, Response};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, OpenApi};
use tokio::sync::broadcast::error::RecvError;

use super::auth::AdminAuth;
use super::dto::events::Event;
use super::dto::pool::{
    LeaseActivity, LeasePage, Operation, OperationKind, OperationPage, OperationStatus, ServerHealth,
    ServerStatus, Stats, StatsHistory,
};
use super::dto::rules::Bounded;
use super::dto::{default_limit, no_offset, page, Limit, Offset};
use super::error::{Errors, ADMIN, BAD_REQUEST, NOT_FOUND};
use super::Tag;
use poolcore::{OperationFilter, Pool};

/// Most buckets one `get_stats_history` answer holds.
pub const HISTORY_BUCKETS_MAX: i64 = 1000;

/// Width of a history bucket in seconds: one second to a year.
type BucketSeconds = Bounded<1, { 366 * 24 * 3600 }>;

fn hourly() -> BucketSeconds {
    BucketSeconds::new(3600)
}

/// Pool-wide endpoints.
pub struct PoolApi {
    pool: Pool,
}

impl PoolApi {
    pub fn new(pool: Pool) -> Self {
        PoolApi { pool }
    }
}

/// The answer of `stream_events`: Server-Sent Events, each `data:` an `Event`.
pub struct EventStream(BoxStream<'static, Event>);

impl IntoResponse for EventStream {
    fn into_response(self) -> Response {
        SSE::new(
            self.0
                .map(|event| Sse::message(event.to_json_string()).event_type(event.name())),
        )
        .keep_alive(Duration::from_secs(15))
        .into_response()
    }
}

impl ApiResponse for EventStream {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "Server-Sent Events (`text/event-stream`), without end: each \
                    event's `event:` field is its `kind` and its `data:` one `Event` as JSON. \
                    A comment line (`:`) comes every 15 s to keep the connection open.",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "text/event-stream",
                    schema: Event::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        Event::register(registry);
    }
}

#[OpenApi(tag = "Tag::Pool")]
impl PoolApi {
    /// Liveness; no token needed.
    #[oai(path = "/health", method = "get", operation_id = "get_health")]
    async fn health(&self) -> Json<ServerHealth> {
        Json(ServerHealth {
            status: ServerStatus::Ok,
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Clusters by status, per host and per blueprint; hosts by status.
    #[oai(path = "/stats", method = "get", operation_id = "get_stats")]
    async fn stats(&self, _auth: AdminAuth) -> Result<Json<Stats>, Errors<ADMIN>> {
        Ok(Json(self.pool.stats().await?.into()))
    }

    /// Applies and releases per time bucket since `since`, for charts. One answer holds
    /// at most 1000 buckets: an older `since` is moved forward to 1000 buckets ago, and
    /// the answer's `since` says so.
    #[oai(path = "/stats/history", method = "get", operation_id = "get_stats_history")]
    async fn stats_history(
        &self,
        _auth: AdminAuth,
        /// Start of the first bucket (RFC 3339); 24 hours ago when missing.
        since: Query<Option<DateTime<Utc>>>,
        /// Width of each bucket in seconds (default 3600).
        #[oai(default = "hourly")]
        bucket: Query<BucketSeconds>,
    ) -> Result<Json<StatsHistory>, Errors<{ ADMIN | BAD_REQUEST }>> {
        let width = chrono::Duration::seconds(bucket.0.get() as i64);
        let now = Utc::now();
        let earliest = now - width * HISTORY_BUCKETS_MAX as i32;
        let since = since.0.unwrap_or(now - chrono::Duration::hours(24)).max(earliest);
        let buckets = self
            .pool
            .lease_activity(since, Duration::from_secs(bucket.0.get()))
            .await?;
        Ok(Json(StatsHistory {
            since,
            bucket_seconds: bucket.0.get(),
            buckets: buckets.into_iter().map(LeaseActivity::from).collect(),
        }))
    }

    /// Lease history, newest first, a page at a time.
    #[oai(path = "/leases", method = "get", operation_id = "list_leases")]
    async fn leases(
        &self,
        _auth: AdminAuth,
        /// Only this user's.
        user_id: Query<Option<String>>,
        /// Most leases to return (1-1000).
        #[oai(default = "default_limit")]
        limit: Query<Limit>,
        /// Leases to skip.
        #[oai(default = "no_offset")]
        offset: Query<Offset>,
    ) -> Result<Json<LeasePage>, Errors<{ ADMIN | BAD_REQUEST }>> {
        let page = page(limit.0, offset.0);
        let listing = self.pool.leases(user_id.0.as_deref(), page).await?;
        Ok(Json(LeasePage::of(listing, page)))
    }

    /// Fills, cleans and resets, newest first, filtered, a page at a time.
    #[oai(path = "/operations", method = "get", operation_id = "list_operations")]
    async fn operations(
        &self,
        _auth: AdminAuth,
        /// Only on this host.
        host_id: Query<Option<String>>,
        /// Only of this kind.
        kind: Query<Option<OperationKind>>,
        /// Only in this status.
        status: Query<Option<OperationStatus>>,
        /// Most operations to return (1-1000).
        #[oai(default = "default_limit")]
        limit: Query<Limit>,
        /// Operations to skip.
        #[oai(default = "no_offset")]
        offset: Query<Offset>,
    ) -> Result<Json<OperationPage>, Errors<{ ADMIN | BAD_REQUEST }>> {
        let filter = OperationFilter {
            host_id: host_id.0,
            kind: kind.0.map(Into::into),
            status: status.0.map(Into::into),
        };
        let page = page(limit.0, offset.0);
        Ok(Json(OperationPage::of(
            self.pool.operations(&filter, page).await?,
            page,
        )))
    }

    /// One fill, clean or reset, with its progress.
    #[oai(path = "/operations/:id", method = "get", operation_id = "get_operation")]
    async fn operation(
        &self,
        _auth: AdminAuth,
        id: Path<String>,
    ) -> Result<Json<Operation>, Errors<{ ADMIN | NOT_FOUND }>> {
        Ok(Json(self.pool.operation(&id).await?.into()))
    }

    /// Every change of the pool's state made by this server, as Server-Sent Events:
    /// host status, cluster status and health, applies, releases and operation
    /// progress. A subscriber that falls behind gets a `lagged` event.
    #[oai(path = "/events", method = "get", operation_id = "stream_events")]
    async fn events(&self, _auth: AdminAuth) -> Result<EventStream, Errors<ADMIN>> {
        let events = futures::stream::unfold(self.pool.events(), |mut rx| async move {
            loop {
                let event = match rx.recv().await {
                    Ok(event) => Event::of(event),
                    Err(RecvError::Lagged(missed)) => Some(Event::lagged(missed)),
                    Err(RecvError::Closed) => return None,
                };
                if let Some(event) = event {
                    return Some((event, rx));
                }
            }
        });
        Ok(EventStream(events.boxed()))
    }
}

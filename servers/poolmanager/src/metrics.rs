//! `GET /metrics`: the pool's and the server's metrics in Prometheus text format.
//!
//! `poolcore` records through the `metrics` facade (see [`poolcore::metrics`]); this
//! module installs the Prometheus recorder, counts HTTP requests by operation and
//! status, and at each scrape sets the gauges of what the pool holds from the store's
//! counts. The endpoint takes the admin token or the metrics token.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::OperationId;
use poolcore::Pool;

/// HTTP requests answered, by operation (its `operationId`, `other` outside the API)
/// and status.
pub const HTTP_REQUESTS: &str = "poolmanager_http_requests_total";
/// Time to answer an HTTP request, by operation.
pub const HTTP_DURATION: &str = "poolmanager_http_request_duration_seconds";
/// Clusters by status, blueprint and host name, as the store counts them at the scrape.
pub const CLUSTERS: &str = "poolmanager_clusters";
/// Hosts by status, at the scrape.
pub const HOSTS: &str = "poolmanager_hosts";

/// Bucket bounds, in seconds, of every `_duration_seconds` histogram: from a fast
/// apply to a slow image pull.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    300.0,
];

/// The process's Prometheus recorder, installed on first use; `None` when the program
/// installed another recorder itself.
pub fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics are not exported: another recorder is installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Counts every request by operation and status, and times it.
#[derive(Debug, Default, Clone, Copy)]
pub struct HttpMetrics;

impl<E: Endpoint> Middleware<E> for HttpMetrics {
    type Output = HttpMetricsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        HttpMetricsEndpoint { inner: ep }
    }
}

/// The endpoint [`HttpMetrics`] wraps.
pub struct HttpMetricsEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for HttpMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let outcome = self.inner.call(req).await.map(IntoResponse::into_response);
        let (operation, status) = match &outcome {
            Ok(resp) => (resp.data::<OperationId>().map(|id| id.0), resp.status()),
            Err(err) => (err.data::<OperationId>().map(|id| id.0), err.status()),
        };
        let operation = operation.unwrap_or("other");
        metrics::counter!(HTTP_REQUESTS, "operation" => operation, "status" => status.as_str().to_owned())
            .increment(1);
        metrics::histogram!(HTTP_DURATION, "operation" => operation).record(started.elapsed());
        outcome
    }
}

/// Label sets of the cluster gauges set at the last scrape, so that a group that
/// emptied since is set to 0 rather than left at its old count.
type GaugeLabels = BTreeSet<(String, String, String)>;

/// `GET /metrics`.
pub struct MetricsEndpoint {
    pool: Pool,
    /// Tokens that may scrape: the admin token, and the metrics token if there is one.
    tokens: Vec<String>,
    seen: Mutex<GaugeLabels>,
}

impl MetricsEndpoint {
    /// The endpoint for `pool`, taking the `admin` token or the `metrics` token.
    pub fn new(pool: Pool, admin: &str, metrics: Option<&str>) -> Self {
        MetricsEndpoint {
            pool,
            tokens: std::iter::once(admin).chain(metrics).map(str::to_owned).collect(),
            seen: Mutex::default(),
        }
    }

    fn allows(&self, req: &Request) -> bool {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        bearer.is_some_and(|given| self.tokens.iter().any(|t| crate::api::auth::same(given, t)))
    }

    async fn refresh_gauges(&self) -> poolcore::Result<()> {
        let hosts = self.pool.hosts().await?;
        let name_of = |id: &str| {
            hosts
                .iter()
                .find(|h| h.id == id)
                .map_or_else(|| id.to_owned(), |h| h.name.clone())
        };
        let mut now = GaugeLabels::new();
        for count in self.pool.store().count_clusters().await? {
            let labels = (count.status.to_string(), count.blueprint, name_of(&count.host_id));
            metrics::gauge!(CLUSTERS, "status" => labels.0.clone(), "blueprint" => labels.1.clone(), "host" => labels.2.clone())
                .set(count.count as f64);
            now.insert(labels);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (status, blueprint, host) in seen.difference(&now) {
            metrics::gauge!(CLUSTERS, "status" => status.clone(), "blueprint" => blueprint.clone(), "host" => host.clone())
                .set(0.0);
        }
        *seen = now;
        for status in poolcore::HostStatus::ALL {
            let n = hosts.iter().filter(|h| h.status == *status).count();
            metrics::gauge!(HOSTS, "status" => status.as_str()).set(n as f64);
        }
        Ok(())
    }
}

impl Endpoint for MetricsEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        if !self.allows(&req) {
            return Ok(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "GET /metrics needs the admin token or the metrics token as a bearer token",
            ));
        }
        let Some(handle) = recorder() else {
            return Ok(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "metrics are not exported by this process",
            ));
        };
        if let Err(e) = self.refresh_gauges().await {
            tracing::warn!(error = %e, "could not count the pool for /metrics");
        }
        Ok(Response::builder()
            .header(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
            .body(handle.render()))
    }
}

/// The JSON error body every endpoint answers with.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    poem::web::Json(serde_json::json!({ "code": code, "message": message }))
        .with_status(status)
        .into_response()
}

//! The PoolManager server: reads config, composes a [`Pool`] from a store and the
//! host drivers, and serves the REST API.
//!
//! The binary is a thin `main` over [`run`]; tests use [`build_pool`] and
//! [`api::app`] to run the same server in-process.

pub mod api;
pub mod config;
pub mod legacy;
pub mod metrics;
pub mod serve;
pub mod ui;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use poem::EndpointExt;
use tracing::info;

use api::auth::Tokens;
use config::Config;
use poolcore::{Pool, PoolConfig, ReconcileConfig, ReconcileReport, Store};
use poolcore_docker::DockerConnector;
use poolcore_mongo::MongoStore;
use poolcore_sim::SimConnector;
use poolcore_sqlite::SqliteStore;
use poolcore_swarm::SwarmConnector;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The store could not be opened.
    #[error("store {url}: {source}")]
    Store {
        /// The store URL.
        url: String,
        /// Why.
        source: poolcore::Error,
    },
    /// A file or socket could not be used.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Which file or address.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] serve::TlsError),
}

/// Opens the store named by `url`: a SQLite database (`sqlite://PATH`,
/// `sqlite::memory:`) or a MongoDB one (`mongodb://HOST[:PORT]/DATABASE`,
/// `mongodb+srv://...`), which several servers may share.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StartError> {
    let failed = |source| StartError::Store {
        url: config::redact_database(url),
        source,
    };
    match config::StoreKind::of(url) {
        Some(config::StoreKind::Sqlite) => Ok(Arc::new(SqliteStore::from_url(url).await.map_err(failed)?)),
        Some(config::StoreKind::Mongo) => Ok(Arc::new(MongoStore::from_url(url).await.map_err(failed)?)),
        None => Err(StartError::Config(format!(
            "database {:?} is not supported: use sqlite://PATH, sqlite::memory: or mongodb://HOST/DATABASE",
            config::redact_database(url)
        ))),
    }
}

/// The pool the config describes: its store and a connector per host kind (Docker
/// engines, Swarm managers, and simulated engines for trying the API).
pub async fn build_pool(config: &Config) -> Result<Pool, StartError> {
    let store = open_store(&config.database).await?;
    let pool_config = PoolConfig::default()
        .with_endpoint_policy(config.endpoint_policy())
        .with_host_parallelism(config.host_parallelism)
        .with_shared_host_parallelism(config.host_parallelism_shared)
        .with_creation_limit((config.creation_parallelism > 0).then_some(config.creation_parallelism))
        .with_default_ttl(config.default_ttl_seconds.map(Duration::from_secs))
        .with_max_ttl(config.max_ttl_seconds.map(Duration::from_secs))
        .with_max_clusters_per_user(config.max_clusters_per_user)
        .with_max_apply_wait(Duration::from_secs(config.max_apply_wait_seconds))
        .with_creation_backoff(
            Duration::from_secs(config.creation_backoff_seconds),
            Duration::from_secs(config.creation_backoff_max_seconds),
        )
        .with_reconcile(
            ReconcileConfig::default()
                // 0 turns the loop off in `serve`; a dedicated `reconcile` uses 1 s then.
                .with_interval(Duration::from_secs(config.reconcile_interval.max(1)))
                .with_failed_probes(config.reconcile_failed_probes)
                .with_transition_timeout(Duration::from_secs(config.reconcile_transition_timeout))
                .with_operation_timeout(Duration::from_secs(config.reconcile_operation_timeout))
                .with_host_concurrency(config.reconcile_host_concurrency),
        );
    Ok(Pool::builder(store)
        .with_connector(DockerConnector::from_config(config.docker.clone()))
        .with_connector(SwarmConnector::from_config(config.swarm.clone()))
        .with_connector(SimConnector::from_config(config.sim.clone()))
        .with_config(pool_config)
        .build())
}

/// The tokens from the config; without an admin token, the one kept in the token
/// file, made (0600) on first start.
///
/// A MongoDB store is shared by several servers, each with its own disk, so a token
/// generated beside one of them would not open the others: there the admin token
/// must be given (`admin_token`), or the token file named (`admin_token_file`, on
/// storage the servers share).
pub fn tokens(config: &Config) -> Result<Tokens, StartError> {
    let admin = match &config.admin_token {
        Some(token) if token.trim().is_empty() => {
            return Err(StartError::Config("admin_token must not be empty".into()))
        }
        Some(token) => token.clone(),
        None => {
            let path = config.admin_token_path().ok_or_else(|| {
                StartError::Config(
                    "a MongoDB database is shared by several servers: set admin_token \
                     (POOLMANAGER_ADMIN_TOKEN) to the token they all accept, or admin_token_file \
                     (POOLMANAGER_ADMIN_TOKEN_FILE) to keep a generated one on storage they share"
                        .into(),
                )
            })?;
            load_or_make_token(&path)?
        }
    };
    let user = config.user_token.clone().filter(|t| !t.trim().is_empty());
    Ok(Tokens { admin, user })
}

fn load_or_make_token(path: &Path) -> Result<String, StartError> {
    let io = |what, source| StartError::Io {
        what,
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(token) if !token.trim().is_empty() => {
            info!(path = %path.display(), "admin token read from file");
            return Ok(token.trim().to_owned());
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("reading the admin token file", e)),
    }
    let token: String = {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let mut file = open_private(path).map_err(|e| io("creating the admin token file", e))?;
    writeln!(file, "{token}").map_err(|e| io("writing the admin token file", e))?;
    info!(path = %path.display(), "generated an admin token; it is kept in this file");
    Ok(token)
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// Serves the API, and runs the reconciler unless its interval is 0, until `shutdown`
/// completes; then waits (bounded) for background work to end.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let pool = build_pool(&config).await?;
    let tokens = tokens(&config)?;
    let legacy_open = legacy::OpenNetworks::parse(&config.legacy_open_to).map_err(StartError::Config)?;
    let listening = serve::Listening::bind(&config).await?;
    if let Some(addr) = listening.local_addr() {
        let database = config::redact_database(&config.database);
        let scheme = listening.scheme();
        info!(%addr, %database, scheme, "PoolManager listening; dashboard at {scheme}://{addr}/ui/, Swagger UI at {scheme}://{addr}/docs");
    }
    let reconciler = (config.reconcile_interval > 0).then(|| pool.spawn_reconciler());
    listening
        .serve(served(&pool, tokens, &config).data(legacy_open), shutdown)
        .await
        .map_err(|source| StartError::Io {
            what: "serving on",
            path: config.listen.clone(),
            source,
        })?;
    match reconciler {
        Some(reconciler) => reconciler.shutdown(SHUTDOWN_GRACE).await,
        None => pool.shutdown(SHUTDOWN_GRACE).await,
    };
    Ok(())
}

/// What `serve` answers: the app, with `GET /metrics` and the dashboard (`/ui/`, where
/// `/` leads) beside it, every request counted.
fn served(pool: &Pool, tokens: Tokens, config: &Config) -> impl poem::Endpoint {
    metrics::recorder();
    let scrape = metrics::MetricsEndpoint::new(pool.clone(), &tokens.admin, config.metrics_token.as_deref());
    poem::Route::new()
        .at("/metrics", poem::get(scrape))
        .nest_no_strip(ui::PREFIX, ui::Dashboard)
        .nest("/", api::app(pool.clone(), tokens).with(ui::Home))
        .with(metrics::HttpMetrics)
}

/// How long a stopping server waits for its background work to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why `poolmanager reconcile --once` did not reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The server could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Another process holds the reconciler lock.
    #[error("another PoolManager process is reconciling this store; try again in a moment")]
    Busy,
    /// The pass failed before it looked at any host.
    #[error("reconcile pass: {0}")]
    Pass(#[from] poolcore::Error),
}

/// Runs one reconcile pass under the store lock and waits for the work it started
/// (repairs, replacements, fills) to end.
pub async fn reconcile_once(config: &Config) -> Result<ReconcileReport, ReconcileError> {
    let pool = build_pool(config).await?;
    let report = pool.reconcile_once_locked().await?.ok_or(ReconcileError::Busy)?;
    pool.wait_idle().await;
    Ok(report)
}

/// Runs the reconciler alone, without the API, until `shutdown` completes.
pub async fn reconcile_forever(
    config: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let pool = build_pool(config).await?;
    let reconciler = pool.spawn_reconciler();
    shutdown.await;
    reconciler.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_database_needs_a_given_admin_token() {
        let mut config = Config {
            database: "mongodb://db1/pool".into(),
            ..Config::default()
        };
        let err = tokens(&config).expect_err("no token, no token file");
        assert!(err.to_string().contains("POOLMANAGER_ADMIN_TOKEN"), "{err}");
        config.admin_token = Some("shared-secret".into());
        assert_eq!(tokens(&config).expect("given token").admin, "shared-secret");
    }

    #[tokio::test]
    async fn unknown_databases_are_refused_without_their_password() {
        let err = open_store("postgres://pm:s3cret@db/pool")
            .await
            .expect_err("not supported");
        assert!(matches!(err, StartError::Config(_)), "{err}");
        let err = open_store("mongodb://pm:s3cret@127.0.0.1:9/pool?serverSelectionTimeoutMS=200")
            .await
            .expect_err("nothing listens on port 9");
        let text = err.to_string();
        assert!(text.contains("unavailable") && !text.contains("s3cret"), "{text}");
    }
}

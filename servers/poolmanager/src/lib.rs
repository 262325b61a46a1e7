//! The PoolManager server: reads config, composes a [`Pool`] from a store and the
//! host drivers, and serves the REST API.
//!
//! The binary is a thin `main` over [`run`]; tests use [`build_pool`] and
//! [`api::app`] to run the same server in-process.

pub mod api;
pub mod config;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::Server;
use tracing::{info, warn};

use api::auth::Tokens;
use config::Config;
use poolcore::{Pool, PoolConfig, ReconcileConfig, ReconcileReport, Store};
use poolcore_docker::DockerConnector;
use poolcore_sqlite::SqliteStore;
use poolcore_swarm::SwarmConnector;
use tokio_util::sync::CancellationToken;

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
}

/// Opens the store named by `url`.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, StartError> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::from_url(url)
            .await
            .map_err(|source| StartError::Store {
                url: url.to_owned(),
                source,
            })?;
        return Ok(Arc::new(store));
    }
    Err(StartError::Config(format!(
        "database {url:?} is not supported: use sqlite://PATH or sqlite::memory:"
    )))
}

/// The pool the config describes: its store and a connector per host kind (Docker
/// engines and Swarm managers).
pub async fn build_pool(config: &Config) -> Result<Pool, StartError> {
    let store = open_store(&config.database).await?;
    let pool_config = PoolConfig::default()
        .with_host_parallelism(config.host_parallelism)
        .with_default_ttl(config.default_ttl_seconds.map(Duration::from_secs))
        .with_max_ttl(config.max_ttl_seconds.map(Duration::from_secs))
        .with_reconcile(
            ReconcileConfig::default()
                // 0 turns the loop off in `serve`; a dedicated `reconcile` uses 1 s then.
                .with_interval(Duration::from_secs(config.reconcile_interval.max(1)))
                .with_failed_probes(config.reconcile_failed_probes)
                .with_transition_timeout(Duration::from_secs(config.reconcile_transition_timeout))
                .with_host_concurrency(config.reconcile_host_concurrency),
        );
    Ok(Pool::builder(store)
        .with_connector(DockerConnector::new())
        .with_connector(SwarmConnector::from_config(config.swarm.clone()))
        .with_config(pool_config)
        .build())
}

/// The tokens from the config; without an admin token, the one kept in the token
/// file, made (0600) on first start.
pub fn tokens(config: &Config) -> Result<Tokens, StartError> {
    let admin = match &config.admin_token {
        Some(token) if token.trim().is_empty() => {
            return Err(StartError::Config("admin_token must not be empty".into()))
        }
        Some(token) => token.clone(),
        None => load_or_make_token(&config.admin_token_path())?,
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
    let stop_reconciler = CancellationToken::new();
    let reconciler = (config.reconcile_interval > 0).then(|| {
        let (pool, stop) = (pool.clone(), stop_reconciler.clone());
        tokio::spawn(async move { pool.run_reconciler(stop).await })
    });
    let acceptor = TcpListener::bind(config.listen.clone())
        .into_acceptor()
        .await
        .map_err(|source| StartError::Io {
            what: "listening on",
            path: config.listen.clone(),
            source,
        })?;
    if let Some(addr) = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
    {
        info!(%addr, database = %config.database, "PoolManager listening; Swagger UI at http://{addr}/docs");
    }
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            api::app(pool.clone(), tokens),
            shutdown,
            Some(Duration::from_secs(10)),
        )
        .await
        .map_err(|source| StartError::Io {
            what: "serving on",
            path: config.listen.clone(),
            source,
        })?;
    stop_reconciler.cancel();
    if let Some(reconciler) = reconciler {
        if let Err(e) = reconciler.await {
            warn!(error = %e, "the reconciler ended abnormally");
        }
    }
    finish_background_work(&pool).await;
    Ok(())
}

async fn finish_background_work(pool: &Pool) {
    if tokio::time::timeout(Duration::from_secs(30), pool.wait_idle())
        .await
        .is_err()
    {
        warn!("background work still running at exit; it is finished on the next start");
    }
}

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
    let stop = CancellationToken::new();
    let reconciler = tokio::spawn({
        let (pool, stop) = (pool.clone(), stop.clone());
        async move { pool.run_reconciler(stop).await }
    });
    shutdown.await;
    stop.cancel();
    if let Err(e) = reconciler.await {
        warn!(error = %e, "the reconciler ended abnormally");
    }
    finish_background_work(&pool).await;
    Ok(())
}

//! [`Pool`]: the operations users and operators call.
//!
//! Apply and release only touch the store; everything that talks to an engine
//! (creating, recycling, filling) runs behind them on tokio tasks that the pool
//! tracks, bounded per host.

mod apply;
mod backoff;
mod blueprints;
mod buffer;
mod catalog;
mod clusters;
mod hosts;
mod lifecycle;
mod operations;
mod placement;
mod readiness;
pub mod reconcile;
mod rollout;
mod slots;
mod wait;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::driver::{Connector, HostDriver};
use crate::error::{Error, Result};
use crate::events::{Event, EVENT_BUFFER};
use crate::model::{Cluster, EngineTls, Host, HostKind, LogConfig};
use crate::store::Store;

pub use apply::{ApplyRequest, BlueprintStats, HostStats, ReleaseTarget, Stats};
pub use backoff::{Backoff, BACKOFF_AFTER};
pub use blueprints::{BlueprintNodes, BlueprintPatch, NewBlueprint};
pub use clusters::{Actor, NodeAction};
pub use hosts::{HostPatch, NewHost};
pub use lifecycle::ReconcilerHandle;
pub use operations::{fill_plan, fill_plan_within};
pub use placement::{lay_out, HostLoad};
pub use reconcile::{decide, ClusterAction, ReconcileConfig, ReconcileReport, RECONCILER_LOCK};
pub use rollout::{RolloutStatus, VersionClusters};
pub use slots::SLOT_POLL;
pub use wait::WAIT_POLL;

/// Tunables of a [`Pool`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Clusters created (or recycled) at once on one host, by this server.
    pub host_parallelism: usize,
    /// Hold `host_parallelism` across every server sharing the store (slots kept as
    /// store locks), not per server. Off by default: one server needs no store round
    /// trip per creation.
    pub shared_host_parallelism: bool,
    /// Most clusters created (or recycled) at once in the whole pool, across every
    /// server sharing the store; `None` for no limit beyond the hosts'.
    pub creation_limit: Option<usize>,
    /// Lease length when an apply gives none; `None` for no expiry.
    pub default_ttl: Option<Duration>,
    /// Longest lease an apply may ask for.
    pub max_ttl: Option<Duration>,
    /// How the reconciler runs.
    pub reconcile: ReconcileConfig,
    /// How long apply trusts its cached list of blueprints and schedulable hosts.
    /// Changes made through this pool are seen at once; changes made by another server
    /// sharing the store are seen within this time.
    pub catalog_ttl: Duration,
    /// Which engine endpoints hosts may be added with.
    pub endpoint_policy: crate::EndpointPolicy,
    /// Most clusters one user may hold at once, over every blueprint; `None` for no
    /// limit. An apply beyond it is refused with
    /// [`Error::QuotaExceeded`].
    pub max_clusters_per_user: Option<u32>,
    /// Longest an apply may wait for a cluster when none is ready
    /// ([`ApplyRequest::wait`]); zero lets no apply wait.
    pub max_apply_wait: Duration,
    /// How long a blueprint whose creations failed [`BACKOFF_AFTER`] times in a row
    /// is not tried again; doubled with every further failure.
    pub creation_backoff: Duration,
    /// The longest [`PoolConfig::creation_backoff`] grows to.
    pub creation_backoff_max: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            host_parallelism: 4,
            shared_host_parallelism: false,
            creation_limit: None,
            default_ttl: None,
            max_ttl: None,
            reconcile: ReconcileConfig::default(),
            catalog_ttl: Duration::from_secs(1),
            endpoint_policy: crate::EndpointPolicy::default(),
            max_clusters_per_user: None,
            max_apply_wait: Duration::from_secs(30),
            creation_backoff: Duration::from_secs(10),
            creation_backoff_max: Duration::from_secs(600),
        }
    }
}

impl PoolConfig {
    /// With [`PoolConfig::host_parallelism`] (at least 1).
    pub fn with_host_parallelism(mut self, n: usize) -> Self {
        self.host_parallelism = n.max(1);
        self
    }

    /// With [`PoolConfig::shared_host_parallelism`].
    pub fn with_shared_host_parallelism(mut self, on: bool) -> Self {
        self.shared_host_parallelism = on;
        self
    }

    /// With [`PoolConfig::creation_limit`] (at least 1 when set).
    pub fn with_creation_limit(mut self, limit: Option<usize>) -> Self {
        self.creation_limit = limit.map(|n| n.max(1));
        self
    }

    /// With [`PoolConfig::max_clusters_per_user`].
    pub fn with_max_clusters_per_user(mut self, limit: Option<u32>) -> Self {
        self.max_clusters_per_user = limit;
        self
    }

    /// With [`PoolConfig::creation_backoff`] and [`PoolConfig::creation_backoff_max`]
    /// (at least the first).
    pub fn with_creation_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.creation_backoff = first;
        self.creation_backoff_max = max.max(first);
        self
    }

    /// With [`PoolConfig::max_apply_wait`].
    pub fn with_max_apply_wait(mut self, wait: Duration) -> Self {
        self.max_apply_wait = wait;
        self
    }

    /// With [`PoolConfig::default_ttl`].
    pub fn with_default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// With [`PoolConfig::max_ttl`].
    pub fn with_max_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// With [`PoolConfig::reconcile`].
    pub fn with_reconcile(mut self, reconcile: ReconcileConfig) -> Self {
        self.reconcile = reconcile;
        self
    }

    /// With [`PoolConfig::endpoint_policy`].
    pub fn with_endpoint_policy(mut self, policy: crate::EndpointPolicy) -> Self {
        self.endpoint_policy = policy;
        self
    }

    /// With [`PoolConfig::catalog_ttl`].
    pub fn with_catalog_ttl(mut self, ttl: Duration) -> Self {
        self.catalog_ttl = ttl;
        self
    }
}

/// Builds a [`Pool`] from a store and one connector per host kind.
#[derive(Debug)]
pub struct PoolBuilder {
    store: Arc<dyn Store>,
    connectors: HashMap<HostKind, Arc<dyn Connector>>,
    config: PoolConfig,
}

impl PoolBuilder {
    /// Serves hosts of `connector.kind()` with `connector`.
    pub fn with_connector(mut self, connector: impl Connector) -> Self {
        self.connectors.insert(connector.kind(), Arc::new(connector));
        self
    }

    /// Uses `config`.
    pub fn with_config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// The pool.
    pub fn build(self) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                store: self.store,
                connectors: self.connectors,
                drivers: Mutex::default(),
                host_slots: Mutex::default(),
                tasks: TaskTracker::new(),
                events: broadcast::channel(EVENT_BUFFER).0,
                busy: Mutex::default(),
                operations: Mutex::default(),
                probe_failures: Mutex::default(),
                readiness_failures: Mutex::default(),
                catalog: catalog::CatalogCache::default(),
                waiters: wait::Waiters::default(),
                planning: tokio::sync::Mutex::default(),
                top_up: buffer::TopUp::default(),
                backoffs: backoff::Backoffs::default(),
                rollouts: rollout::Limiters::default(),
                config: self.config,
            }),
        }
    }
}

/// What a cached driver was made from; a host update that changes it makes a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DriverKey {
    endpoint: String,
    public_address: String,
    log: Option<LogConfig>,
    tls: Option<EngineTls>,
}

impl DriverKey {
    fn of(host: &Host) -> Self {
        DriverKey {
            endpoint: host.endpoint.clone(),
            public_address: host.public_address.clone(),
            log: host.log.clone(),
            tls: host.tls.clone(),
        }
    }
}

/// Drivers made so far, per host id, with what each was made from.
type DriverCache = HashMap<String, (DriverKey, Arc<dyn HostDriver>)>;

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    connectors: HashMap<HostKind, Arc<dyn Connector>>,
    drivers: Mutex<DriverCache>,
    host_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    tasks: TaskTracker,
    events: broadcast::Sender<Event>,
    /// Clusters this process is doing engine work on; the reconciler leaves them be.
    busy: Mutex<HashSet<String>>,
    /// Operations this process is running; the reconciler never takes them for abandoned.
    operations: Mutex<HashSet<String>>,
    /// Probes failed in a row, per host id.
    probe_failures: Mutex<HashMap<String, u32>>,
    /// Readiness probes failed in a row by made clusters, per (cluster id, node).
    readiness_failures: Mutex<HashMap<(String, String), u32>>,
    /// What apply reads of blueprints and hosts, cached.
    catalog: catalog::CatalogCache,
    /// Applies waiting for a cluster.
    waiters: wait::Waiters,
    /// Fills plan one at a time, so that two never take the same room of a buffer.
    planning: tokio::sync::Mutex<()>,
    /// The ready buffers' top-up after applies.
    top_up: buffer::TopUp,
    /// The blueprints whose creations keep failing.
    backoffs: backoff::Backoffs,
    /// The rate of each rollout.
    rollouts: rollout::Limiters,
    config: PoolConfig,
}

/// The pool of clusters: a cheap handle, clone it freely.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Starts building a pool on `store`.
    pub fn builder(store: Arc<dyn Store>) -> PoolBuilder {
        PoolBuilder {
            store,
            connectors: HashMap::new(),
            config: PoolConfig::default(),
        }
    }

    /// The store the pool keeps its state in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The pool's tunables.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Waits until every background task (creating, recycling, filling) has ended.
    /// New tasks may still be started afterwards.
    pub async fn wait_idle(&self) {
        let tasks = &self.inner.tasks;
        tasks.close();
        tasks.wait().await;
        tasks.reopen();
    }

    /// The driver for `host`, made by its kind's connector and cached per host.
    pub fn driver(&self, host: &Host) -> Result<Arc<dyn HostDriver>> {
        let key = DriverKey::of(host);
        let mut drivers = lock(&self.inner.drivers);
        if let Some((cached, driver)) = drivers.get(&host.id) {
            if *cached == key {
                return Ok(driver.clone());
            }
        }
        let connector = self.connector(host.kind)?;
        let driver = connector.connect(host)?;
        drivers.insert(host.id.clone(), (key, driver.clone()));
        Ok(driver)
    }

    fn connector(&self, kind: HostKind) -> Result<&Arc<dyn Connector>> {
        self.inner
            .connectors
            .get(&kind)
            .ok_or_else(|| Error::invalid("kind", format!("no driver for {kind} hosts is configured")))
    }

    fn forget_driver(&self, host_id: &str) {
        lock(&self.inner.drivers).remove(host_id);
        lock(&self.inner.host_slots).remove(host_id);
    }

    /// Waits for one of the host's [`PoolConfig::host_parallelism`] slots for engine
    /// work; the slot is free again when the permit drops.
    async fn host_slot(&self, host_id: &str) -> Result<OwnedSemaphorePermit> {
        let slots = lock(&self.inner.host_slots)
            .entry(host_id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.inner.config.host_parallelism)))
            .clone();
        slots
            .acquire_owned()
            .await
            .map_err(|e| Error::unavailable("host work queue", e))
    }

    /// Every change of the pool's state from now on. See [`Event`].
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Applies waiting for a cluster in this process now.
    pub fn waiting(&self) -> usize {
        self.inner.waiters.waiting()
    }

    fn emit(&self, event: Event) {
        // A cluster that became ready, or a host or blueprint that changed, may serve a
        // waiting apply.
        if matches!(&event, Event::Cluster(c) if c.status == crate::model::ClusterStatus::Ready)
            || matches!(&event, Event::Host(_))
        {
            self.inner.waiters.wake();
        }
        // No subscriber is fine: nobody is listening.
        let _ = self.inner.events.send(event);
    }

    /// Writes `cluster` (conditional on its version) and tells the subscribers.
    async fn save_cluster(&self, cluster: &Cluster) -> Result<Cluster> {
        let saved = self.store().update_cluster(cluster).await?;
        self.emit(Event::Cluster(saved.clone()));
        Ok(saved)
    }

    /// Reads cluster `id`, lets `change` decide on it and change it, and writes it;
    /// when another write came in between, reads again and lets `change` decide anew.
    async fn change_cluster<F>(&self, id: &str, mut change: F) -> Result<Cluster>
    where
        F: FnMut(&mut Cluster) -> Result<()> + Send,
    {
        loop {
            let mut cluster = self.cluster(id).await?;
            change(&mut cluster)?;
            match self.save_cluster(&cluster).await {
                Err(e) if e.is_stale() => continue,
                outcome => return outcome,
            }
        }
    }

    /// Reads host `id`, lets `change` change it, and writes it, reading again when
    /// another write came in between; tells the subscribers.
    async fn change_host<F>(&self, id: &str, mut change: F) -> Result<Host>
    where
        F: FnMut(&mut Host) -> Result<()> + Send,
    {
        loop {
            let mut host = self.host(id).await?;
            change(&mut host)?;
            match self.store().update_host(&host).await {
                Err(e) if e.is_stale() => continue,
                Err(e) => return Err(e),
                Ok(saved) => {
                    self.inner.catalog.invalidate();
                    self.emit(Event::Host(saved.clone()));
                    return Ok(saved);
                }
            }
        }
    }

    /// Marks `cluster_id` as worked on by this process until the guard drops; `None`
    /// when it already is.
    fn mark_busy(&self, cluster_id: &str) -> Option<BusyGuard> {
        lock(&self.inner.busy)
            .insert(cluster_id.to_owned())
            .then(|| BusyGuard {
                pool: self.clone(),
                cluster_id: cluster_id.to_owned(),
            })
    }

    fn is_busy(&self, cluster_id: &str) -> bool {
        lock(&self.inner.busy).contains(cluster_id)
    }

    /// Runs `work` on `cluster` in the background, marked busy while it runs; does
    /// nothing when this process already works on the cluster. A failure is logged.
    fn spawn_cluster_work<F, Fut, T>(&self, what: &'static str, cluster: Cluster, work: F)
    where
        F: FnOnce(Pool, Cluster) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let Some(busy) = self.mark_busy(&cluster.id) else {
            return;
        };
        let span = tracing::info_span!("cluster_work", work = what, cluster_id = %cluster.id);
        let pool = self.clone();
        self.spawn(
            async move {
                let _busy = busy;
                if let Err(e) = work(pool, cluster).await {
                    tracing::warn!(error = %e, "{what} failed");
                }
            }
            .instrument(span),
        );
    }

    /// Runs `task` in the background, tracked by [`Pool::wait_idle`].
    fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(task);
    }
}

/// Holds a cluster as busy; see [`Pool::mark_busy`].
struct BusyGuard {
    pool: Pool,
    cluster_id: String,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        lock(&self.pool.inner.busy).remove(&self.cluster_id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

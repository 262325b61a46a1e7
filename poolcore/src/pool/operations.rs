//! Long-running host operations (fill, clean, reset) with progress in the store.
//!
//! While an operation runs, its server writes it at every step and at least every
//! [`ReconcileConfig::heartbeat`](super::ReconcileConfig::heartbeat), so that any server
//! sharing the store can report it, and so that one whose server stopped is found and
//! closed as `interrupted` by the reconciler.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use futures::stream::{self, StreamExt};
use tokio::sync::Mutex;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, instrument, warn, Instrument};

use super::{buffer, lock, placement, Pool};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::limits;
use crate::model::{
    new_id, Blueprint, Cluster, ClusterStatus, Host, Listing, Operation, OperationFilter, OperationKind,
    OperationStatus, Page,
};

/// Progress of one operation, written to the store after every step and on every
/// heartbeat.
#[derive(Debug, Clone)]
struct Progress {
    pool: Pool,
    op: Arc<Mutex<Operation>>,
    /// Stops the heartbeat when the last clone drops.
    _heartbeat: Arc<DropGuard>,
}

impl Progress {
    async fn start(pool: &Pool, kind: OperationKind, host_id: &str, total: u32) -> Result<Self> {
        let now = Utc::now();
        let op = Operation {
            id: new_id(),
            kind,
            host_id: host_id.to_owned(),
            status: OperationStatus::Running,
            done: 0,
            total,
            error: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        lock(&pool.inner.operations).insert(op.id.clone());
        if let Err(e) = pool.store().put_operation(&op).await {
            lock(&pool.inner.operations).remove(&op.id);
            return Err(e);
        }
        pool.emit(Event::Operation(op.clone()));
        let stop = CancellationToken::new();
        let progress = Progress {
            pool: pool.clone(),
            op: Arc::new(Mutex::new(op)),
            _heartbeat: Arc::new(stop.clone().drop_guard()),
        };
        progress.beat(stop);
        Ok(progress)
    }

    /// Writes the operation every heartbeat until `stop`, so that other servers see its
    /// server is alive.
    fn beat(&self, stop: CancellationToken) {
        let (op, pool) = (Arc::clone(&self.op), self.pool.clone());
        let every = pool.config().reconcile.heartbeat();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let mut op = op.lock().await;
                if op.status.is_finished() {
                    return;
                }
                op.updated_at = Utc::now();
                if let Err(e) = pool.store().put_operation(&op).await {
                    warn!(operation_id = %op.id, error = %e, "could not record the operation's heartbeat");
                }
            }
        });
    }

    async fn snapshot(&self) -> Operation {
        self.op.lock().await.clone()
    }

    async fn add_total(&self, more: u32) {
        self.op.lock().await.total += more;
        self.save().await;
    }

    /// One step ended, with its error if it failed.
    async fn step(&self, outcome: Result<()>) {
        {
            let mut op = self.op.lock().await;
            op.done += 1;
            if let Err(e) = outcome {
                warn!(operation_id = %op.id, error = %e, "operation step failed");
                op.error.get_or_insert_with(|| e.to_string());
            }
        }
        self.save().await;
    }

    async fn finish(&self, outcome: Result<()>) {
        {
            let mut op = self.op.lock().await;
            if let Err(e) = outcome {
                op.error.get_or_insert_with(|| e.to_string());
            }
            op.status = match op.error {
                Some(_) => OperationStatus::Failed,
                None => OperationStatus::Succeeded,
            };
            op.finished_at = Some(Utc::now());
            info!(operation_id = %op.id, status = %op.status, done = op.done, total = op.total, "operation ended");
            let took = (Utc::now() - op.created_at).to_std().unwrap_or_default();
            crate::metrics::operation(op.kind, op.status, took);
        }
        self.save().await;
        let id = self.snapshot().await.id;
        lock(&self.pool.inner.operations).remove(&id);
    }

    async fn save(&self) {
        // Held while writing, so that a heartbeat never writes an older state over it.
        let mut op = self.op.lock().await;
        op.updated_at = Utc::now();
        match self.pool.store().put_operation(&op).await {
            Ok(()) => self.pool.emit(Event::Operation(op.clone())),
            Err(e) => warn!(operation_id = %op.id, error = %e, "could not save operation progress"),
        }
    }
}

impl Pool {
    /// The operation with `id`.
    pub async fn operation(&self, id: &str) -> Result<Operation> {
        self.store()
            .get_operation(id)
            .await?
            .ok_or_else(|| Error::not_found("operation", limits::quoted(id)))
    }

    /// Operations matching `filter`, newest first, one page of them.
    pub async fn operations(&self, filter: &OperationFilter, page: Page) -> Result<Listing<Operation>> {
        self.store().list_operations(filter, page).await
    }

    /// Whether this process runs operation `id`.
    pub(super) fn runs_operation(&self, id: &str) -> bool {
        lock(&self.inner.operations).contains(id)
    }

    /// Fills a host up to its capacity, with `blueprint` or, when `None`, spreading
    /// evenly over every blueprint. Returns the running operation at once.
    ///
    /// With no blueprint at all, or an unknown `blueprint`, it is [`Error::Invalid`]:
    /// there is nothing to fill with. An unknown host is [`Error::NotFound`].
    #[instrument(skip(self))]
    pub async fn fill_host(&self, host_id: &str, blueprint: Option<&str>) -> Result<Operation> {
        let host = self.host(host_id).await?;
        let (blueprints, laid_out) = match blueprint {
            // The host is the resource here: an unknown blueprint in the request is
            // bad input, not a missing host.
            Some(name) => match self.store().get_blueprint(name).await? {
                Some(blueprint) => {
                    placement::check_admits(&blueprint, &host)?;
                    (vec![blueprint], false)
                }
                None => {
                    return Err(Error::invalid(
                        "blueprint",
                        format!("there is no blueprint {}", limits::quoted(name)),
                    ))
                }
            },
            None => {
                let mut all = self.blueprints().await?;
                all.retain(|b| b.placement.admits(&host));
                (all, true)
            }
        };
        if blueprints.is_empty() {
            return Err(Error::invalid(
                "blueprint",
                "there is no blueprint to fill the host with (or none whose host_selector admits it)",
            ));
        }
        let clusters = self.plan_fill(&host, &blueprints, laid_out).await?;
        self.run_fill(&host, clusters).await
    }

    /// Starts filling an autofill host that has room, when there are blueprints to
    /// fill it with. What goes wrong is logged: the reconciler tries again.
    pub(super) async fn autofill(&self, host: &Host) {
        match self.try_autofill(host).await {
            Ok(Some(op)) => info!(host_id = %host.id, operation_id = %op.id, "filling an autofill host"),
            Ok(None) => {}
            Err(e) => warn!(host_id = %host.id, error = %e, "could not start filling an autofill host"),
        }
    }

    /// Starts filling `host` with every blueprint, within their room; `None` when there
    /// is nothing to make (no room on the host, or none for any blueprint).
    pub(super) async fn try_autofill(&self, host: &Host) -> Result<Option<Operation>> {
        let blueprints = self.blueprints().await?;
        if blueprints.is_empty() {
            return Ok(None);
        }
        let clusters = self.plan_fill(host, &blueprints, true).await?;
        if clusters.is_empty() {
            return Ok(None);
        }
        self.run_fill(host, clusters).await.map(Some)
    }

    /// Inserts the records of the clusters a fill of `host` makes: up to its
    /// capacity, within each blueprint's room (its ready buffer and `max_total`) and,
    /// when `laid_out`, within the part of that room its placement lays on `host`.
    /// Blueprints whose host selector does not admit `host` get nothing.
    async fn plan_fill(&self, host: &Host, blueprints: &[Blueprint], laid_out: bool) -> Result<Vec<Cluster>> {
        let _planning = self.inner.planning.lock().await;
        // Read again under the lock: a host deleted meanwhile gets nothing (its
        // deletion sweeps under the same lock), and a capacity changed meanwhile counts.
        let host = &self.host(&host.id).await?;
        let on_host = self.host_clusters(&host.id).await?;
        if on_host.len() >= host.capacity as usize {
            return Ok(Vec::new());
        }
        // Read once for the buffers' room and its layout over the hosts.
        let counts = if blueprints.iter().any(Blueprint::may_limit) {
            self.store().count_clusters().await?
        } else {
            Vec::new()
        };
        let mut room = buffer::buffer_room(blueprints, &counts);
        // No room for a blueprint whose creations keep failing.
        for name in self.creation_backoffs().into_keys() {
            room.insert(name, 0);
        }
        if laid_out {
            self.share_of_room(host, blueprints, &counts, &mut room).await?;
        }
        let names: Vec<String> = blueprints
            .iter()
            .filter(|b| b.placement.admits(host))
            .map(|b| b.name.clone())
            .collect();
        let plan = fill_plan_within(&on_host, &names, host.capacity, &mut room);
        self.insert_planned(host, &plan, blueprints).await
    }

    /// Provisions `clusters`, inserted by [`Pool::plan_fill`], as an operation on `host`.
    async fn run_fill(&self, host: &Host, clusters: Vec<Cluster>) -> Result<Operation> {
        let progress = Progress::start(self, OperationKind::Fill, &host.id, len_u32(&clusters)).await?;
        let op = progress.snapshot().await;
        let pool = self.clone();
        let span = tracing::info_span!("fill", host_id = %host.id, operation_id = %op.id);
        self.spawn(
            async move {
                pool.provision_all(clusters, &progress).await;
                progress.finish(Ok(())).await;
            }
            .instrument(span),
        );
        Ok(op)
    }

    /// Inserts the planned clusters, stopping where the host is full (another server
    /// may fill it at the same time).
    async fn insert_planned(
        &self,
        host: &Host,
        plan: &[String],
        blueprints: &[Blueprint],
    ) -> Result<Vec<Cluster>> {
        let mut clusters = Vec::with_capacity(plan.len());
        for name in plan {
            let Some(blueprint) = blueprints.iter().find(|b| &b.name == name) else {
                continue;
            };
            match self.insert_cluster(host, blueprint, None).await? {
                Some(cluster) => clusters.push(cluster),
                None => break,
            }
        }
        Ok(clusters)
    }

    async fn provision_all(&self, clusters: Vec<Cluster>, progress: &Progress) {
        let parallelism = self.config().host_parallelism;
        // Queued clusters wait for a slot; the reconciler must not take them for abandoned.
        let _busy: Vec<_> = clusters.iter().filter_map(|c| self.mark_busy(&c.id)).collect();
        stream::iter(clusters)
            .for_each_concurrent(parallelism, |cluster| async move {
                let outcome = match self.provision(&cluster).await {
                    Ok(c) if c.status == ClusterStatus::Failed => Err(Error::unavailable(
                        format!("cluster {}", c.name),
                        c.status_reason.unwrap_or_default(),
                    )),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
                progress.step(outcome).await;
            })
            .await;
    }

    pub(super) async fn host_clusters(&self, host_id: &str) -> Result<Vec<Cluster>> {
        let filter = crate::model::ClusterFilter {
            host_id: Some(host_id.to_owned()),
            ..Default::default()
        };
        Ok(self.store().list_clusters(&filter, Page::ALL).await?.items)
    }

    /// Removes a host's free clusters (ready, stopped, failed). Returns the running
    /// operation at once.
    #[instrument(skip(self))]
    pub async fn clean_host(&self, host_id: &str) -> Result<Operation> {
        let host = self.host(host_id).await?;
        let free: Vec<Cluster> = self
            .host_clusters(&host.id)
            .await?
            .into_iter()
            .filter(|c| {
                matches!(
                    c.status,
                    ClusterStatus::Ready | ClusterStatus::Stopped | ClusterStatus::Failed
                )
            })
            .collect();
        let progress = Progress::start(self, OperationKind::Clean, &host.id, len_u32(&free)).await?;
        let op = progress.snapshot().await;
        let pool = self.clone();
        let span = tracing::info_span!("clean", host_id = %host.id, operation_id = %op.id);
        self.spawn(
            async move {
                for cluster in free {
                    let outcome = pool.delete_free_cluster(cluster).await;
                    progress.step(outcome).await;
                }
                progress.finish(Ok(())).await;
            }
            .instrument(span),
        );
        Ok(op)
    }

    async fn delete_free_cluster(&self, mut cluster: Cluster) -> Result<()> {
        cluster.status = ClusterStatus::Deleting;
        let cluster = self.save_cluster(&cluster).await?;
        self.remove_cluster(&cluster).await
    }

    /// Removes every cluster and everything PoolManager made on a host's engine, then
    /// fills it again. Refused with [`Error::Conflict`] while a cluster is applied.
    #[instrument(skip(self))]
    pub async fn reset_host(&self, host_id: &str) -> Result<Operation> {
        let host = self.host(host_id).await?;
        let clusters = self.host_clusters(&host.id).await?;
        let held = clusters.iter().filter(|c| !c.is_free()).count();
        if held > 0 {
            return Err(Error::conflict(format!(
                "host {:?} holds {held} applied cluster(s); release them before a reset",
                host.name
            )));
        }
        let progress = Progress::start(self, OperationKind::Reset, &host.id, len_u32(&clusters) + 1).await?;
        let op = progress.snapshot().await;
        let pool = self.clone();
        let span = tracing::info_span!("reset", host_id = %host.id, operation_id = %op.id);
        self.spawn(
            async move {
                let outcome = pool.reset_steps(&host, clusters, &progress).await;
                progress.finish(outcome).await;
            }
            .instrument(span),
        );
        Ok(op)
    }

    async fn reset_steps(&self, host: &Host, clusters: Vec<Cluster>, progress: &Progress) -> Result<()> {
        for cluster in clusters {
            let outcome = self.store().delete_cluster(&cluster.id, cluster.version).await;
            if let Ok(true) = outcome {
                self.emit(Event::ClusterDeleted { id: cluster.id });
            }
            progress.step(outcome.map(drop)).await;
        }
        let removed = self.driver(host)?.remove_all().await;
        progress.step(removed.map(drop)).await;
        let blueprints = self.blueprints().await?;
        if blueprints.is_empty() {
            return Ok(());
        }
        let fresh = self.plan_fill(host, &blueprints, true).await?;
        progress.add_total(len_u32(&fresh)).await;
        self.provision_all(fresh, progress).await;
        Ok(())
    }
}

/// Which blueprint each missing cluster of a host gets, so that the host holds
/// `capacity` clusters: each goes to the wanted blueprint with the fewest clusters on
/// the host so far (ties by name). Clusters of other blueprints count toward the
/// capacity too.
pub fn fill_plan(on_host: &[Cluster], blueprints: &[String], capacity: u32) -> Vec<String> {
    fill_plan_within(on_host, blueprints, capacity, &mut BTreeMap::new())
}

/// [`fill_plan`] within `room`: how many more clusters each blueprint it names may get
/// (a blueprint it does not name may get any), taken from as the plan is made.
pub fn fill_plan_within(
    on_host: &[Cluster],
    blueprints: &[String],
    capacity: u32,
    room: &mut BTreeMap<String, u64>,
) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = blueprints
        .iter()
        .filter(|n| room.get(n.as_str()) != Some(&0))
        .map(|n| (n.as_str(), 0))
        .collect();
    for c in on_host {
        if let Some(n) = counts.get_mut(c.blueprint.as_str()) {
            *n += 1;
        }
    }
    let missing = (capacity as usize).saturating_sub(on_host.len());
    let mut plan = Vec::with_capacity(missing);
    for _ in 0..missing {
        let Some((&name, n)) = counts.iter_mut().min_by_key(|(_, n)| **n) else {
            break;
        };
        *n += 1;
        plan.push(name.to_owned());
        if let Some(left) = room.get_mut(name) {
            *left -= 1;
            if *left == 0 {
                counts.remove(name);
            }
        }
    }
    plan
}

fn len_u32<T>(items: &[T]) -> u32 {
    u32::try_from(items.len()).unwrap_or(u32::MAX)
}

//! The reconciler: one pass brings the store and the engines back into agreement,
//! whatever happened to the engines, the containers or the server process.
//!
//! A pass, per host and several hosts at once:
//! 1. releases leases whose `expires_at` has passed (store only, first of all);
//! 2. probes the host: after [`ReconcileConfig::failed_probes`] failures in a row it
//!    becomes `inactive` (apply skips it); it is `active` again once it answers;
//! 3. inspects the host's labelled objects in one listing and compares them with the
//!    records: a broken free cluster is replaced, a broken applied cluster is repaired
//!    in place (same id, owner and URLs) and its health shown to its user, objects no
//!    record owns are removed;
//! 4. drives transitions (`creating`, `releasing`, `deleting`, and `failed`) older than
//!    [`ReconcileConfig::transition_timeout`] to their end, as a crashed server left them;
//! 5. fills `autofill` hosts up to their capacity, within each blueprint's ready
//!    buffer and `max_total` (see [`ReadyBuffer`](crate::ReadyBuffer)).
//!
//! Before the hosts it also removes the free clusters beyond a blueprint's buffer, and
//! replaces free clusters of a blueprint's earlier versions (see [`Rollout`](crate::Rollout)).
//!
//! Before the hosts, a pass also closes operations whose server stopped: a running
//! operation that no server has written for [`ReconcileConfig::operation_timeout`]
//! becomes `interrupted`; the steps above then bring its host where it should be.
//!
//! What to do with each cluster is decided by [`decide`], a pure function of the
//! record, its blueprint and what the engine shows; the pass only carries it out.
//!
//! [`Pool::run_reconciler`] repeats passes every [`ReconcileConfig::interval`] under the
//! store lock [`RECONCILER_LOCK`], so that of several servers sharing a store, one
//! reconciles at a time.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn, Instrument};

use super::{lock, Pool};
use crate::driver::{HostDriver, NodeState, ObservedCluster};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{
    new_id, Blueprint, Cluster, ClusterFilter, ClusterStatus, Health, Host, HostStatus, OperationFilter,
    OperationStatus, Page, ReleaseReason,
};

/// Name of the store lock the reconciler runs under.
pub const RECONCILER_LOCK: &str = "reconciler";

/// Clusters of one host whose readiness probes a pass runs at once.
const PROBES_AT_ONCE: usize = 16;

/// How the reconciler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileConfig {
    /// Time between two passes.
    pub interval: Duration,
    /// Hosts probed and inspected at once.
    pub host_concurrency: usize,
    /// Failed probes in a row before a host is marked `inactive`.
    pub failed_probes: u32,
    /// Age after which a cluster still `creating`, `releasing` or `deleting` is taken
    /// for abandoned (its server died) and driven on; also the wait before a `failed`
    /// cluster is tried again.
    pub transition_timeout: Duration,
    /// Age after which a running operation that no server wrote (its server writes it
    /// every [`ReconcileConfig::heartbeat`]) is taken for interrupted.
    pub operation_timeout: Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            interval: Duration::from_secs(15),
            host_concurrency: 8,
            failed_probes: 3,
            transition_timeout: Duration::from_secs(300),
            operation_timeout: Duration::from_secs(60),
        }
    }
}

impl ReconcileConfig {
    /// With [`ReconcileConfig::interval`] (at least 100 ms).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(100));
        self
    }

    /// With [`ReconcileConfig::host_concurrency`] (at least 1).
    pub fn with_host_concurrency(mut self, n: usize) -> Self {
        self.host_concurrency = n.max(1);
        self
    }

    /// With [`ReconcileConfig::failed_probes`] (at least 1).
    pub fn with_failed_probes(mut self, n: u32) -> Self {
        self.failed_probes = n.max(1);
        self
    }

    /// With [`ReconcileConfig::transition_timeout`].
    pub fn with_transition_timeout(mut self, timeout: Duration) -> Self {
        self.transition_timeout = timeout;
        self
    }

    /// With [`ReconcileConfig::operation_timeout`] (at least 400 ms).
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout.max(Duration::from_millis(400));
        self
    }

    /// How often a server writes the operations it runs: a quarter of
    /// [`ReconcileConfig::operation_timeout`], so that a few missed writes are no alarm.
    pub fn heartbeat(&self) -> Duration {
        self.operation_timeout / 4
    }

    /// How long the reconciler lock holds without renewal: three intervals, so a
    /// server that died is taken over after at most that long.
    pub fn lock_ttl(&self) -> Duration {
        self.interval * 3
    }
}

/// What one pass found and did. Repairs, replacements and fills it starts run on in
/// the background; [`Pool::wait_idle`] waits for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Hosts probed.
    pub hosts_probed: u32,
    /// Hosts that did not answer.
    pub hosts_unreachable: u32,
    /// Leases released because they expired.
    pub leases_expired: u32,
    /// Broken or failed free clusters being recreated.
    pub replaced: u32,
    /// Broken applied clusters being repaired in place.
    pub repaired: u32,
    /// Abandoned transitions driven on.
    pub resumed: u32,
    /// Clusters found on an engine with no record, removed.
    pub orphans_removed: u32,
    /// Free clusters beyond a blueprint's ready buffer or `max_total`, or on a host its
    /// host selector no longer admits, being removed.
    pub trimmed: u32,
    /// Clusters added to fill hosts.
    pub created: u32,
    /// Free clusters of earlier blueprint versions being made anew at the current one.
    pub rolled_out: u32,
    /// Operations whose server stopped, closed as `interrupted`.
    pub operations_interrupted: u32,
    /// What went wrong, one line each; the pass goes on past errors.
    pub errors: Vec<String>,
}

impl ReconcileReport {
    fn add(&mut self, other: ReconcileReport) {
        self.hosts_probed += other.hosts_probed;
        self.hosts_unreachable += other.hosts_unreachable;
        self.leases_expired += other.leases_expired;
        self.replaced += other.replaced;
        self.repaired += other.repaired;
        self.resumed += other.resumed;
        self.orphans_removed += other.orphans_removed;
        self.created += other.created;
        self.rolled_out += other.rolled_out;
        self.trimmed += other.trimmed;
        self.operations_interrupted += other.operations_interrupted;
        self.errors.extend(other.errors);
    }

    /// Whether the pass changed anything or met an error.
    pub fn acted(&self) -> bool {
        self.leases_expired
            + self.replaced
            + self.repaired
            + self.resumed
            + self.orphans_removed
            + self.created
            + self.rolled_out
            + self.trimmed
            + self.operations_interrupted
            > 0
            || !self.errors.is_empty()
    }

    fn error(&mut self, what: impl std::fmt::Display, e: impl std::fmt::Display) {
        warn!(error = %e, "reconcile: {what}");
        self.errors.push(format!("{what}: {e}"));
    }
}

impl Pool {
    /// Runs reconcile passes every [`ReconcileConfig::interval`] until `shutdown`, each
    /// under the store lock [`RECONCILER_LOCK`]: while another server holds it, this
    /// one only waits.
    pub async fn run_reconciler(&self, shutdown: CancellationToken) {
        let holder = new_id();
        let interval = self.config().reconcile.interval;
        info!(
            holder,
            interval_secs = interval.as_secs_f64(),
            "reconciler started"
        );
        loop {
            match self.reconcile_locked(&holder).await {
                Ok(Some(report)) if report.acted() => info!(?report, "reconcile pass"),
                Ok(Some(report)) => debug!(?report, "reconcile pass"),
                Ok(None) => debug!("another server holds the reconciler lock"),
                Err(e) => warn!(error = %e, "reconcile pass failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
        if let Err(e) = self.store().release_lock(RECONCILER_LOCK, &holder).await {
            warn!(error = %e, "could not release the reconciler lock");
        }
        info!("reconciler stopped");
    }

    /// One pass under the reconciler lock, taken and given back: for a single pass
    /// while servers may be running. `None` when another server holds the lock.
    pub async fn reconcile_once_locked(&self) -> Result<Option<ReconcileReport>> {
        let holder = new_id();
        let outcome = self.reconcile_locked(&holder).await;
        self.store().release_lock(RECONCILER_LOCK, &holder).await?;
        outcome
    }

    async fn reconcile_locked(&self, holder: &str) -> Result<Option<ReconcileReport>> {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.config().reconcile.lock_ttl())
            .map_err(|_| Error::invalid("reconcile interval", "is too large"))?;
        if !self
            .store()
            .acquire_lock(RECONCILER_LOCK, holder, now, now + ttl)
            .await?
        {
            return Ok(None);
        }
        self.reconcile_once().await.map(Some)
    }

    /// One reconcile pass, without the lock (see the module docs for what it does).
    /// Returns once every host is looked at; the work it starts runs on in the
    /// background.
    #[instrument(skip(self))]
    pub async fn reconcile_once(&self) -> Result<ReconcileReport> {
        let started = std::time::Instant::now();
        let report = self.reconcile_pass().await?;
        crate::metrics::reconcile_pass(&report, started.elapsed());
        Ok(report)
    }

    async fn reconcile_pass(&self) -> Result<ReconcileReport> {
        let mut report = self.expire_leases().await?;
        report.add(self.close_interrupted_operations().await?);
        let listed = self.blueprints().await?;
        let hosts = self.hosts().await?;
        match self.trim_buffers(&listed).await {
            Ok(trimmed) => report.trimmed += trimmed,
            Err(e) => report.error("removing the clusters beyond the ready buffers", e),
        }
        match self.remove_misplaced(&listed, &hosts).await {
            Ok(removed) => report.trimmed += removed,
            Err(e) => report.error(
                "removing the clusters on hosts their blueprint no longer admits",
                e,
            ),
        }
        match self.roll_out(&listed).await {
            Ok(replaced) => report.rolled_out += replaced,
            Err(e) => report.error("replacing the free clusters of earlier blueprint versions", e),
        }
        let blueprints: HashMap<String, Blueprint> =
            listed.into_iter().map(|b| (b.name.clone(), b)).collect();
        let concurrency = self.config().reconcile.host_concurrency;
        let per_host: Vec<ReconcileReport> = stream::iter(hosts)
            .map(|host| {
                let span = tracing::info_span!("reconcile_host", host_id = %host.id);
                self.reconcile_host(host, &blueprints).instrument(span)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for r in per_host {
            report.add(r);
        }
        Ok(report)
    }

    /// Releases every applied cluster whose lease has run out, and recycles it.
    async fn expire_leases(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let now = Utc::now();
        let applied = ClusterFilter {
            status: Some(ClusterStatus::Applied),
            ..Default::default()
        };
        let clusters = self.clusters(&applied, Page::ALL).await?.items;
        for cluster in clusters.iter().filter(|c| c.expires_at.is_some_and(|t| t <= now)) {
            match self.release_one(cluster, ReleaseReason::Expired).await {
                Ok(Some(released)) => {
                    report.leases_expired += 1;
                    self.spawn_recycle(released);
                }
                Ok(None) => {}
                Err(e) => report.error(format!("expiring the lease of {}", cluster.name), e),
            }
        }
        Ok(report)
    }

    /// Closes, as `interrupted`, the running operations that no server has written for
    /// [`ReconcileConfig::operation_timeout`] and that this process does not run.
    async fn close_interrupted_operations(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let running = OperationFilter {
            status: Some(OperationStatus::Running),
            ..OperationFilter::default()
        };
        let timeout = self.config().reconcile.operation_timeout;
        let now = Utc::now();
        for mut op in self.operations(&running, Page::ALL).await?.items {
            let silent = (now - op.updated_at).to_std().unwrap_or_default();
            if silent < timeout || self.runs_operation(&op.id) {
                continue;
            }
            op.status = OperationStatus::Interrupted;
            op.error = Some(format!(
                "its server stopped before it finished ({} of {} steps done; no sign of life for {}s); \
                 the reconciler brings the host to its desired state",
                op.done,
                op.total,
                silent.as_secs()
            ));
            op.updated_at = now;
            op.finished_at = Some(now);
            match self.store().put_operation(&op).await {
                Ok(()) => {
                    info!(operation_id = %op.id, host_id = %op.host_id, "closed an interrupted operation");
                    report.operations_interrupted += 1;
                    self.emit(Event::Operation(op));
                }
                Err(e) => report.error(format!("closing operation {}", op.id), e),
            }
        }
        Ok(report)
    }

    async fn reconcile_host(&self, host: Host, blueprints: &HashMap<String, Blueprint>) -> ReconcileReport {
        let mut report = ReconcileReport {
            hosts_probed: 1,
            ..Default::default()
        };
        let driver = match self.driver(&host) {
            Ok(driver) => driver,
            Err(e) => {
                report.error(format!("host {}", host.name), e);
                return report;
            }
        };
        let host = match self.probe_host(host, driver.as_ref()).await {
            Ok(Some(host)) => host,
            Ok(None) => {
                report.hosts_unreachable = 1;
                return report;
            }
            Err(e) => {
                report.error("recording a probe", e);
                return report;
            }
        };
        // Records first, then the engine: a cluster made between the two is seen with
        // its record, so it is never taken for an orphan.
        let records = match self.host_clusters(&host.id).await {
            Ok(records) => records,
            Err(e) => {
                report.error(format!("listing the clusters of {}", host.name), e);
                return report;
            }
        };
        let observed = match driver.inspect().await {
            Ok(observed) => observed,
            Err(e) => {
                report.error(format!("inspecting {}", host.name), e);
                return report;
            }
        };
        let by_id: HashMap<&str, &ObservedCluster> =
            observed.iter().map(|o| (o.cluster_id.as_str(), o)).collect();
        let known: BTreeSet<&str> = records.iter().map(|c| c.id.as_str()).collect();
        for orphan in observed.iter().filter(|o| !known.contains(o.cluster_id.as_str())) {
            self.remove_orphan(driver.as_ref(), &orphan.cluster_id, &mut report)
                .await;
        }
        // Each cluster with its blueprint as of the version it runs.
        let runs: Vec<Option<Cow<'_, Blueprint>>> = records
            .iter()
            .map(|c| blueprints.get(&c.blueprint)?.at_version(c.blueprint_version))
            .collect();
        let probed = self
            .probe_clusters(driver.as_ref(), &records, &runs, &by_id)
            .await;
        let now = Utc::now();
        for (cluster, blueprint) in records.iter().zip(&runs) {
            if self.is_busy(&cluster.id) {
                continue;
            }
            let blueprint = blueprint.as_deref();
            let observed = probed
                .get(cluster.id.as_str())
                .or_else(|| by_id.get(cluster.id.as_str()).copied());
            if let Err(e) = self
                .reconcile_cluster(cluster, blueprint, observed, now, &mut report)
                .await
            {
                report.error(format!("cluster {}", cluster.name), e);
            }
        }
        if host.autofill && (records.len() as u64) < u64::from(host.capacity) && !blueprints.is_empty() {
            match self.try_autofill(&host).await {
                Ok(Some(op)) => report.created += op.total,
                Ok(None) => {}
                Err(e) => report.error(format!("filling {}", host.name), e),
            }
        }
        report
    }

    /// Runs the readiness probes of the made clusters among `records` whose blueprint
    /// has them, a few at a time; returns what was observed of each, with the nodes
    /// whose probe keeps failing marked unhealthy.
    async fn probe_clusters(
        &self,
        driver: &dyn HostDriver,
        records: &[Cluster],
        runs: &[Option<Cow<'_, Blueprint>>],
        observed: &HashMap<&str, &ObservedCluster>,
    ) -> HashMap<String, ObservedCluster> {
        let made = records.iter().zip(runs).filter_map(|(cluster, blueprint)| {
            let blueprint = blueprint.as_deref()?;
            let seen = observed.get(cluster.id.as_str())?;
            let made = matches!(cluster.status, ClusterStatus::Ready | ClusterStatus::Applied);
            let probes = super::readiness::probed(blueprint).next().is_some();
            (made && probes && !self.is_busy(&cluster.id)).then_some((cluster, blueprint, *seen))
        });
        // Boxed, so that the stream's future is `Send` for any lifetime the spawned
        // reconciler needs.
        let probes: Vec<futures::future::BoxFuture<'_, (String, ObservedCluster)>> = made
            .map(|(cluster, blueprint, seen)| {
                let probe = async move {
                    let mut seen = seen.clone();
                    self.probe_made(driver, cluster, blueprint, &mut seen).await;
                    (cluster.id.clone(), seen)
                };
                Box::pin(probe) as futures::future::BoxFuture<'_, _>
            })
            .collect();
        stream::iter(probes)
            .buffer_unordered(PROBES_AT_ONCE)
            .collect()
            .await
    }

    /// Probes `host` and records the outcome on the host as stored, so that an
    /// operator's change made meanwhile is kept. Returns the host as written when it
    /// answered, `None` when it did not.
    async fn probe_host(&self, host: Host, driver: &dyn HostDriver) -> Result<Option<Host>> {
        let probed = driver.probe().await;
        let threshold = self.config().reconcile.failed_probes;
        let failures = {
            let mut failures = lock(&self.inner.probe_failures);
            match &probed {
                Ok(_) => {
                    failures.remove(&host.id);
                    0
                }
                Err(_) => {
                    let failed = failures.entry(host.id.clone()).or_insert(0);
                    *failed += 1;
                    *failed
                }
            }
        };
        let now = Utc::now();
        loop {
            // Gone meanwhile (deleted by an operator): nothing to record.
            let Some(mut current) = self.store().get_host(&host.id).await? else {
                return Ok(None);
            };
            let before = (current.status, current.last_error.clone());
            match &probed {
                Ok(facts) => {
                    current.facts = facts.clone();
                    current.last_seen = Some(now);
                    current.last_error = None;
                    current.status = HostStatus::Active;
                }
                Err(e) => {
                    current.last_error = Some(e.to_string());
                    if failures >= threshold {
                        current.status = HostStatus::Inactive;
                    }
                }
            }
            let saved = match self.store().update_host(&current).await {
                Err(e) if e.is_stale() => continue,
                outcome => outcome?,
            };
            if before != (saved.status, saved.last_error.clone()) {
                if before.0 != saved.status {
                    info!(status = %saved.status, error = saved.last_error, "host status changed");
                    self.inner.catalog.invalidate();
                }
                self.emit(Event::Host(saved.clone()));
            }
            return Ok(probed.is_ok().then_some(saved));
        }
    }

    async fn remove_orphan(&self, driver: &dyn HostDriver, cluster_id: &str, report: &mut ReconcileReport) {
        // The listing is older than the inspection; ask again before removing.
        match self.store().get_cluster(cluster_id).await {
            Ok(None) => match driver.delete_cluster(cluster_id).await {
                Ok(()) => {
                    info!(cluster_id, "removed objects no record owns");
                    report.orphans_removed += 1;
                }
                Err(e) => report.error(format!("removing orphan {cluster_id}"), e),
            },
            Ok(Some(_)) => {}
            Err(e) => report.error(format!("looking up {cluster_id}"), e),
        }
    }

    async fn reconcile_cluster(
        &self,
        cluster: &Cluster,
        blueprint: Option<&Blueprint>,
        observed: Option<&ObservedCluster>,
        now: DateTime<Utc>,
        report: &mut ReconcileReport,
    ) -> Result<()> {
        let action = decide(cluster, blueprint, observed, now, &self.config().reconcile);
        match action {
            ClusterAction::Leave => {}
            ClusterAction::MarkHealthy => {
                let mut healed = cluster.clone();
                healed.health = Health::Ok;
                healed.health_reason = None;
                self.save_cluster(&healed).await?;
            }
            ClusterAction::Replace { reason } => {
                info!(cluster_id = %cluster.id, reason, "replacing a broken free cluster");
                let mut broken = cluster.clone();
                broken.status = ClusterStatus::Releasing;
                broken.health = Health::Failing;
                broken.health_reason = Some(reason);
                // Conditional: if it was applied meanwhile, leave it to the next pass.
                let broken = self.save_cluster(&broken).await?;
                report.replaced += 1;
                self.spawn_recycle(broken);
            }
            ClusterAction::Repair { reason } => {
                info!(cluster_id = %cluster.id, reason, "repairing a broken applied cluster");
                let Some(blueprint) = blueprint else { return Ok(()) };
                let mut broken = cluster.clone();
                broken.health = Health::Failing;
                broken.health_reason = Some(reason);
                let broken = self.save_cluster(&broken).await?;
                report.repaired += 1;
                self.spawn_repair(broken, blueprint.clone());
            }
            ClusterAction::ResumeCreate => {
                report.resumed += 1;
                self.spawn_provision(cluster.clone());
            }
            ClusterAction::ResumeRecycle => {
                report.resumed += 1;
                self.spawn_recycle(cluster.clone());
            }
            ClusterAction::RetryFailed if self.backing_off(&cluster.blueprint) => {
                debug!(cluster_id = %cluster.id, "not retried: its blueprint's creations back off");
            }
            ClusterAction::RetryFailed => {
                let mut retry = cluster.clone();
                retry.status = ClusterStatus::Releasing;
                let retry = self.save_cluster(&retry).await?;
                report.replaced += 1;
                self.spawn_recycle(retry);
            }
            ClusterAction::ResumeDelete => {
                report.resumed += 1;
                self.spawn_remove(cluster.clone());
            }
        }
        Ok(())
    }

    /// Repairs an applied cluster in place in the background, keeping its endpoints.
    fn spawn_repair(&self, cluster: Cluster, blueprint: Blueprint) {
        self.spawn_cluster_work("repair", cluster, |pool, cluster| async move {
            pool.repair(&cluster, &blueprint).await
        });
    }

    async fn repair(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Cluster> {
        let _slot = self.work_slot(&cluster.host_id).await?;
        let host = self.host(&cluster.host_id).await?;
        let repaired = self.driver(&host)?.repair_cluster(cluster, blueprint).await;
        let mut current = self.cluster(&cluster.id).await?;
        if current.status != ClusterStatus::Applied || current.lease_id != cluster.lease_id {
            // Released meanwhile: recycling makes it anew anyway.
            return Ok(current);
        }
        match repaired {
            Ok(deployment) => {
                if deployment.service_urls() != current.deployment.service_urls() {
                    warn!("the repaired cluster's endpoints changed");
                }
                current.deployment = deployment;
                current.health = Health::Ok;
                current.health_reason = None;
                info!("cluster repaired");
            }
            Err(e) => current.health_reason = Some(format!("repair failed: {e}")),
        }
        self.save_cluster(&current).await
    }

    /// Finishes deleting a cluster in the background.
    fn spawn_remove(&self, cluster: Cluster) {
        self.spawn_cluster_work("remove", cluster, |pool, cluster| async move {
            pool.remove_cluster(&cluster).await
        });
    }
}

/// What the reconciler does with one cluster record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAction {
    /// Nothing: it is as it should be, or someone is working on it.
    Leave,
    /// Its nodes run again: record it healthy.
    MarkHealthy,
    /// A free cluster is broken: destroy it and make it anew (same id and name).
    Replace {
        /// What is wrong.
        reason: String,
    },
    /// An applied cluster is broken: repair it in place, keeping its owner and URLs.
    Repair {
        /// What is wrong.
        reason: String,
    },
    /// A create was left unfinished: finish it.
    ResumeCreate,
    /// A release was left unfinished: destroy and make the cluster anew.
    ResumeRecycle,
    /// A failed cluster has waited long enough: try making it again.
    RetryFailed,
    /// A delete was left unfinished: finish it.
    ResumeDelete,
}

/// What to do with `cluster` (of `blueprint`, observed on its engine as `observed`)
/// at `now`. Pure: the reconciler carries out what it returns.
///
/// - `ready` and `applied` clusters are compared with what the engine shows: nodes
///   stopped on purpose (`stopped_nodes`) are expected to be stopped, every other node
///   of the blueprint to run. A broken free cluster is replaced, a broken applied one
///   repaired; one found healthy again is marked so (unless nodes are stopped on
///   purpose). A cluster whose blueprint is gone is left alone.
/// - `creating`, `releasing` and `deleting` clusters not written for
///   [`ReconcileConfig::transition_timeout`] are taken for abandoned and driven on;
///   `failed` ones are tried again after the same wait.
/// - `stopped` clusters are left as they are.
pub fn decide(
    cluster: &Cluster,
    blueprint: Option<&Blueprint>,
    observed: Option<&ObservedCluster>,
    now: DateTime<Utc>,
    config: &ReconcileConfig,
) -> ClusterAction {
    let stale = (now - cluster.updated_at)
        .to_std()
        .is_ok_and(|age| age >= config.transition_timeout);
    match cluster.status {
        ClusterStatus::Ready | ClusterStatus::Applied => {
            let Some(blueprint) = blueprint else {
                return ClusterAction::Leave;
            };
            match diagnose(blueprint, &cluster.stopped_nodes, observed) {
                None if cluster.health != Health::Ok && cluster.stopped_nodes.is_empty() => {
                    ClusterAction::MarkHealthy
                }
                None => ClusterAction::Leave,
                Some(reason) if cluster.status == ClusterStatus::Ready => ClusterAction::Replace { reason },
                Some(reason) => ClusterAction::Repair { reason },
            }
        }
        ClusterStatus::Creating if stale => ClusterAction::ResumeCreate,
        ClusterStatus::Releasing if stale => ClusterAction::ResumeRecycle,
        ClusterStatus::Failed if stale => ClusterAction::RetryFailed,
        ClusterStatus::Deleting if stale => ClusterAction::ResumeDelete,
        _ => ClusterAction::Leave,
    }
}

/// What is wrong with a made cluster as observed, or `None` when every node of its
/// blueprint that is not in `stopped` runs (or is starting).
fn diagnose(
    blueprint: &Blueprint,
    stopped: &std::collections::BTreeSet<String>,
    observed: Option<&ObservedCluster>,
) -> Option<String> {
    let Some(observed) = observed else {
        return Some("its network and containers are gone".to_owned());
    };
    let mut problems = Vec::new();
    if !observed.network {
        problems.push("its network is gone".to_owned());
    }
    for node in &blueprint.nodes {
        match observed.nodes.get(&node.name) {
            None => problems.push(format!("node {} is gone", node.name)),
            Some(NodeState::Exited(_)) if stopped.contains(&node.name) => {}
            Some(NodeState::Exited(how)) => problems.push(format!("node {} exited: {how}", node.name)),
            Some(NodeState::Unhealthy(why)) => {
                problems.push(format!("node {} is unhealthy: {why}", node.name))
            }
            Some(NodeState::Running | NodeState::Starting) => {}
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::NodeSpec;

    fn blueprint(nodes: &[&str]) -> Blueprint {
        Blueprint {
            name: "bp".into(),
            labels: BTreeMap::new(),
            nodes: nodes
                .iter()
                .map(|n| NodeSpec {
                    name: (*n).into(),
                    image: "img".into(),
                    command: vec![],
                    env: BTreeMap::new(),
                    ports: BTreeMap::new(),
                    health: None,
                    readiness: None,
                })
                .collect(),
            api_port: None,
            max_applied: None,
            buffer: Default::default(),
            buffer_windows: Default::default(),
            placement: Default::default(),
            release_mode: Default::default(),
            rollout: Default::default(),
            version: 1,
            version_created_at: Utc::now(),
            earlier_versions: Vec::new(),
            created_at: Utc::now(),
        }
    }

    fn seen(nodes: &[(&str, NodeState)]) -> ObservedCluster {
        ObservedCluster {
            cluster_id: "c".into(),
            network: true,
            nodes: nodes.iter().map(|(n, s)| ((*n).to_owned(), s.clone())).collect(),
        }
    }

    fn cluster(status: ClusterStatus, health: Health, age_secs: i64, stopped: &[&str]) -> Cluster {
        let mut c = Cluster::new("c", "bp", "h");
        c.status = status;
        c.health = health;
        c.updated_at = Utc::now() - chrono::Duration::seconds(age_secs);
        c.stopped_nodes = stopped.iter().map(|s| (*s).to_owned()).collect();
        c
    }

    #[test]
    fn diagnosis_names_every_broken_node() {
        let bp = blueprint(&["vp0", "vp1", "vp2"]);
        let none = Default::default();
        assert_eq!(
            diagnose(&bp, &none, None).as_deref(),
            Some("its network and containers are gone")
        );
        let mut observed = seen(&[
            ("vp0", NodeState::Running),
            ("vp1", NodeState::Starting),
            ("vp2", NodeState::Running),
        ]);
        assert_eq!(
            diagnose(&bp, &none, Some(&observed)),
            None,
            "running and starting nodes are fine"
        );
        observed
            .nodes
            .insert("vp1".into(), NodeState::Exited("exit code 137".into()));
        observed.nodes.remove("vp2");
        assert_eq!(
            diagnose(&bp, &none, Some(&observed)).as_deref(),
            Some("node vp1 exited: exit code 137; node vp2 is gone")
        );
        let stopped = ["vp1".to_owned()].into();
        assert_eq!(
            diagnose(&bp, &stopped, Some(&observed)).as_deref(),
            Some("node vp2 is gone"),
            "a node stopped on purpose is expected to have exited"
        );
        observed.network = false;
        assert!(diagnose(&bp, &none, Some(&observed)).is_some_and(|d| d.starts_with("its network is gone")));
    }

    #[test]
    fn decisions_as_a_table() {
        use ClusterAction as A;
        use ClusterStatus as S;
        let config = ReconcileConfig::default().with_transition_timeout(Duration::from_secs(300));
        let bp = blueprint(&["vp0", "vp1"]);
        let running = seen(&[("vp0", NodeState::Running), ("vp1", NodeState::Running)]);
        let vp1_exited = seen(&[
            ("vp0", NodeState::Running),
            ("vp1", NodeState::Exited("137".into())),
        ]);
        let vp1_unhealthy = seen(&[
            ("vp0", NodeState::Running),
            ("vp1", NodeState::Unhealthy("no".into())),
        ]);
        let broken = |reason: &str| reason.to_owned();
        #[rustfmt::skip]
        let table: Vec<(&str, Cluster, Option<&ObservedCluster>, ClusterAction)> = vec![
            ("healthy ready", cluster(S::Ready, Health::Ok, 0, &[]), Some(&running), A::Leave),
            ("ready found healthy again", cluster(S::Ready, Health::Failing, 0, &[]), Some(&running), A::MarkHealthy),
            ("ready with a dead node", cluster(S::Ready, Health::Ok, 0, &[]), Some(&vp1_exited),
                A::Replace { reason: broken("node vp1 exited: 137") }),
            ("ready, gone from the engine", cluster(S::Ready, Health::Ok, 0, &[]), None,
                A::Replace { reason: broken("its network and containers are gone") }),
            ("applied with a dead node", cluster(S::Applied, Health::Ok, 0, &[]), Some(&vp1_exited),
                A::Repair { reason: broken("node vp1 exited: 137") }),
            ("applied, unhealthy node", cluster(S::Applied, Health::Ok, 0, &[]), Some(&vp1_unhealthy),
                A::Repair { reason: broken("node vp1 is unhealthy: no") }),
            ("applied, node stopped on purpose", cluster(S::Applied, Health::Failing, 0, &["vp1"]), Some(&vp1_exited),
                A::Leave),
            ("applied, stopped node and another dead", cluster(S::Applied, Health::Failing, 0, &["vp0"]),
                Some(&vp1_exited), A::Repair { reason: broken("node vp1 exited: 137") }),
            ("stopped cluster", cluster(S::Stopped, Health::Failing, 9999, &["vp0", "vp1"]), None, A::Leave),
            ("fresh create", cluster(S::Creating, Health::Unknown, 10, &[]), None, A::Leave),
            ("abandoned create", cluster(S::Creating, Health::Unknown, 301, &[]), None, A::ResumeCreate),
            ("fresh release", cluster(S::Releasing, Health::Ok, 10, &[]), Some(&running), A::Leave),
            ("abandoned release", cluster(S::Releasing, Health::Ok, 301, &[]), Some(&running), A::ResumeRecycle),
            ("failed, waiting", cluster(S::Failed, Health::Failing, 10, &[]), None, A::Leave),
            ("failed long ago", cluster(S::Failed, Health::Failing, 301, &[]), None, A::RetryFailed),
            ("abandoned delete", cluster(S::Deleting, Health::Ok, 301, &[]), None, A::ResumeDelete),
        ];
        for (case, c, observed, expected) in table {
            assert_eq!(
                decide(&c, Some(&bp), observed, Utc::now(), &config),
                expected,
                "{case}"
            );
        }
        let orphaned = cluster(S::Ready, Health::Ok, 0, &[]);
        assert_eq!(
            decide(&orphaned, None, None, Utc::now(), &config),
            A::Leave,
            "a cluster whose blueprint is gone is left alone"
        );
    }
}

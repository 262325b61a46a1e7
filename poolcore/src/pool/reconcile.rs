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
//! 5. fills `autofill` hosts up to their capacity.
//!
//! [`Pool::run_reconciler`] repeats passes every [`ReconcileConfig::interval`] under the
//! store lock [`RECONCILER_LOCK`], so that of several servers sharing a store, one
//! reconciles at a time.

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
    new_id, Blueprint, Cluster, ClusterFilter, ClusterStatus, Health, Host, HostStatus, Page,
};

/// Name of the store lock the reconciler runs under.
pub const RECONCILER_LOCK: &str = "reconciler";

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
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            interval: Duration::from_secs(15),
            host_concurrency: 8,
            failed_probes: 3,
            transition_timeout: Duration::from_secs(300),
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
    /// Clusters added to fill hosts.
    pub created: u32,
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
        let mut report = self.expire_leases().await?;
        let blueprints: HashMap<String, Blueprint> = self
            .blueprints()
            .await?
            .into_iter()
            .map(|b| (b.name.clone(), b))
            .collect();
        let hosts = self.hosts().await?;
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
            match self.release_one(cluster, "expired").await {
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
        let now = Utc::now();
        for cluster in &records {
            if self.is_busy(&cluster.id) {
                continue;
            }
            let blueprint = blueprints.get(&cluster.blueprint);
            let observed = by_id.get(cluster.id.as_str()).copied();
            if let Err(e) = self
                .reconcile_cluster(cluster, blueprint, observed, now, &mut report)
                .await
            {
                report.error(format!("cluster {}", cluster.name), e);
            }
        }
        if host.autofill && (records.len() as u64) < u64::from(host.capacity) && !blueprints.is_empty() {
            match self.fill_host(&host.id, None).await {
                Ok(op) => report.created += op.total,
                Err(e) => report.error(format!("filling {}", host.name), e),
            }
        }
        report
    }

    /// Probes `host` and records the outcome. Returns the host as written when it
    /// answered, `None` when it did not.
    async fn probe_host(&self, host: Host, driver: &dyn HostDriver) -> Result<Option<Host>> {
        let probed = driver.probe().await;
        // Write onto a fresh copy: an operator may have changed the host meanwhile.
        let Some(mut current) = self.store().get_host(&host.id).await? else {
            return Ok(None);
        };
        let before = (current.status, current.last_error.clone());
        let threshold = self.config().reconcile.failed_probes;
        let answered = {
            let mut failures = lock(&self.inner.probe_failures);
            match probed {
                Ok(facts) => {
                    failures.remove(&host.id);
                    current.facts = facts;
                    current.last_seen = Some(Utc::now());
                    current.last_error = None;
                    current.status = HostStatus::Active;
                    true
                }
                Err(e) => {
                    let failed = failures.entry(host.id.clone()).or_insert(0);
                    *failed += 1;
                    current.last_error = Some(e.to_string());
                    if *failed >= threshold {
                        current.status = HostStatus::Inactive;
                    }
                    false
                }
            }
        };
        self.store().update_host(&current).await?;
        if before != (current.status, current.last_error.clone()) {
            if before.0 != current.status {
                info!(status = %current.status, error = current.last_error, "host status changed");
            }
            self.emit(Event::Host(current.clone()));
        }
        Ok(answered.then_some(current))
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
        let stale = (now - cluster.updated_at)
            .to_std()
            .is_ok_and(|age| age >= self.config().reconcile.transition_timeout);
        match cluster.status {
            ClusterStatus::Ready | ClusterStatus::Applied if !cluster.stopped_by_request() => {
                let Some(blueprint) = blueprint else {
                    return Ok(());
                };
                match (diagnose(blueprint, observed), cluster.status) {
                    (None, _) => {
                        if cluster.health != Health::Ok {
                            let mut healed = cluster.clone();
                            healed.health = Health::Ok;
                            healed.health_reason = None;
                            self.save_cluster(&healed).await?;
                        }
                    }
                    (Some(reason), ClusterStatus::Ready) => {
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
                    (Some(reason), _) => {
                        info!(cluster_id = %cluster.id, reason, "repairing a broken applied cluster");
                        let mut broken = cluster.clone();
                        broken.health = Health::Failing;
                        broken.health_reason = Some(reason);
                        let broken = self.save_cluster(&broken).await?;
                        report.repaired += 1;
                        self.spawn_repair(broken, blueprint.clone());
                    }
                }
            }
            ClusterStatus::Creating if stale => {
                report.resumed += 1;
                self.spawn_provision(cluster.clone());
            }
            ClusterStatus::Releasing if stale => {
                report.resumed += 1;
                self.spawn_recycle(cluster.clone());
            }
            ClusterStatus::Failed if stale => {
                let mut retry = cluster.clone();
                retry.status = ClusterStatus::Releasing;
                let retry = self.save_cluster(&retry).await?;
                report.replaced += 1;
                self.spawn_recycle(retry);
            }
            ClusterStatus::Deleting if stale => {
                report.resumed += 1;
                self.spawn_remove(cluster.clone());
            }
            _ => {}
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
        let _slot = self.host_slot(&cluster.host_id).await?;
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

/// What is wrong with a made cluster as observed, or `None` when every node of its
/// blueprint runs (or is starting).
fn diagnose(blueprint: &Blueprint, observed: Option<&ObservedCluster>) -> Option<String> {
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
                })
                .collect(),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn diagnosis_names_every_broken_node() {
        let bp = blueprint(&["vp0", "vp1", "vp2"]);
        assert_eq!(
            diagnose(&bp, None).as_deref(),
            Some("its network and containers are gone")
        );
        let mut seen = ObservedCluster {
            cluster_id: "c".into(),
            network: true,
            nodes: BTreeMap::from([
                ("vp0".into(), NodeState::Running),
                ("vp1".into(), NodeState::Starting),
                ("vp2".into(), NodeState::Running),
            ]),
        };
        assert_eq!(
            diagnose(&bp, Some(&seen)),
            None,
            "running and starting nodes are fine"
        );
        seen.nodes
            .insert("vp1".into(), NodeState::Exited("exit code 137".into()));
        seen.nodes.remove("vp2");
        assert_eq!(
            diagnose(&bp, Some(&seen)).as_deref(),
            Some("node vp1 exited: exit code 137; node vp2 is gone")
        );
        seen.network = false;
        assert!(diagnose(&bp, Some(&seen)).is_some_and(|d| d.starts_with("its network is gone")));
    }
}

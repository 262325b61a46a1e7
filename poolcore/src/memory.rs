//! [`MemStore`]: a real, correct in-memory [`Store`], for tests, benchmarks and
//! embedding where nothing must survive the process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::model::{
    Blueprint, Claim, ClaimOutcome, Cluster, ClusterCount, ClusterFilter, ClusterStatus, Health, Host,
    LeaseActivity, LeaseRecord, Listing, MinuteSummary, Operation, OperationFilter, Page, ReleaseReason,
};
use crate::store::Store;

#[derive(Debug, Default)]
struct State {
    hosts: BTreeMap<String, Host>,
    blueprints: BTreeMap<String, Blueprint>,
    clusters: BTreeMap<String, Cluster>,
    /// Host id → ids of its clusters, so per-host reads do not scan every cluster.
    by_host: HashMap<String, BTreeSet<String>>,
    leases: BTreeMap<String, LeaseRecord>,
    /// Minute → (leases applied, leases released) in it: the lease summary.
    activity: BTreeMap<DateTime<Utc>, (u64, u64)>,
    operations: BTreeMap<String, Operation>,
    /// Lock name → (holder, held until).
    locks: BTreeMap<String, (String, DateTime<Utc>)>,
}

impl State {
    fn host_clusters(&self, host_id: &str) -> impl Iterator<Item = &Cluster> {
        self.by_host
            .get(host_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.clusters.get(id))
    }

    fn put_cluster(&mut self, cluster: Cluster) {
        if let Some(old) = self.clusters.get(&cluster.id) {
            if old.host_id != cluster.host_id {
                let (id, host) = (old.id.clone(), old.host_id.clone());
                self.unindex(&host, &id);
            }
        }
        self.by_host
            .entry(cluster.host_id.clone())
            .or_default()
            .insert(cluster.id.clone());
        self.clusters.insert(cluster.id.clone(), cluster);
    }

    fn remove_cluster(&mut self, id: &str) -> Option<Cluster> {
        let cluster = self.clusters.remove(id)?;
        self.unindex(&cluster.host_id, id);
        Some(cluster)
    }

    /// Counts an apply (`released == false`) or a release at `at` in the summary.
    fn tally(&mut self, at: DateTime<Utc>, released: bool) {
        let minute = self.activity.entry(MinuteSummary::minute_of(at)).or_default();
        if released {
            minute.1 += 1;
        } else {
            minute.0 += 1;
        }
    }

    /// Buckets of `summary` from the per-minute counts, the heads counted over the leases.
    fn summarised(&self, summary: &MinuteSummary) -> Vec<LeaseActivity> {
        let minutes = self
            .activity
            .range(summary.first_minute()..)
            .map(|(start, (applied, released))| LeaseActivity {
                start: *start,
                applied: *applied,
                released: *released,
            });
        let mut heads: BTreeMap<DateTime<Utc>, LeaseActivity> = BTreeMap::new();
        let times = self.leases.values().flat_map(|l| {
            [(l.applied_at, false)]
                .into_iter()
                .chain(l.released_at.map(|at| (at, true)))
        });
        for (at, released) in times {
            let Some(start) = summary.head_of(at) else {
                continue;
            };
            let head = heads.entry(start).or_insert(LeaseActivity {
                start,
                applied: 0,
                released: 0,
            });
            if released {
                head.released += 1;
            } else {
                head.applied += 1;
            }
        }
        summary.buckets(minutes, &heads.into_values().collect::<Vec<_>>())
    }

    fn unindex(&mut self, host_id: &str, id: &str) {
        if let Some(ids) = self.by_host.get_mut(host_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_host.remove(host_id);
            }
        }
    }
}

/// A [`Store`] in memory. One mutex guards everything, which makes every operation
/// atomic.
#[derive(Debug, Default)]
pub struct MemStore {
    state: Mutex<State>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn page_of<T: Clone>(items: Vec<&T>, page: Page) -> Listing<T> {
    let total = items.len() as u64;
    let items = items
        .into_iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
        .cloned()
        .collect();
    Listing { items, total }
}

#[async_trait]
impl Store for MemStore {
    async fn insert_host(&self, host: &Host) -> Result<()> {
        let mut s = self.state();
        if s.hosts.contains_key(&host.id) || s.hosts.values().any(|h| h.name == host.name) {
            return Err(Error::conflict(format!("host {:?} exists", host.name)));
        }
        s.hosts.insert(host.id.clone(), host.clone());
        Ok(())
    }

    async fn get_host(&self, id: &str) -> Result<Option<Host>> {
        Ok(self.state().hosts.get(id).cloned())
    }

    async fn list_hosts(&self, page: Page) -> Result<Listing<Host>> {
        let s = self.state();
        let mut hosts: Vec<&Host> = s.hosts.values().collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(page_of(hosts, page))
    }

    async fn update_host(&self, host: &Host) -> Result<Host> {
        let mut s = self.state();
        let stored = s
            .hosts
            .get(&host.id)
            .ok_or_else(|| Error::not_found("host", &host.id))?;
        if stored.version != host.version {
            return Err(Error::stale("host", &host.id, host.version, stored.version));
        }
        if s.hosts.values().any(|h| h.name == host.name && h.id != host.id) {
            return Err(Error::conflict(format!("host {:?} exists", host.name)));
        }
        let written = Host {
            version: host.version + 1,
            ..host.clone()
        };
        s.hosts.insert(host.id.clone(), written.clone());
        Ok(written)
    }

    async fn delete_host(&self, id: &str) -> Result<bool> {
        Ok(self.state().hosts.remove(id).is_some())
    }

    async fn insert_blueprint(&self, blueprint: &Blueprint) -> Result<()> {
        let mut s = self.state();
        if s.blueprints.contains_key(&blueprint.name) {
            return Err(Error::conflict(format!("blueprint {:?} exists", blueprint.name)));
        }
        s.blueprints.insert(blueprint.name.clone(), blueprint.clone());
        Ok(())
    }

    async fn get_blueprint(&self, name: &str) -> Result<Option<Blueprint>> {
        Ok(self.state().blueprints.get(name).cloned())
    }

    async fn list_blueprints(&self, page: Page) -> Result<Listing<Blueprint>> {
        let s = self.state();
        Ok(page_of(s.blueprints.values().collect(), page))
    }

    async fn update_blueprint_policies(&self, blueprint: &Blueprint) -> Result<bool> {
        let mut s = self.state();
        let Some(stored) = s.blueprints.get_mut(&blueprint.name) else {
            return Ok(false);
        };
        stored.max_applied = blueprint.max_applied;
        stored.buffer = blueprint.buffer;
        stored.buffer_windows = blueprint.buffer_windows.clone();
        stored.placement = blueprint.placement.clone();
        stored.release_mode = blueprint.release_mode;
        stored.rollout = blueprint.rollout;
        Ok(true)
    }

    async fn update_blueprint_version(&self, blueprint: &Blueprint, previous: u32) -> Result<bool> {
        let mut s = self.state();
        let Some(stored) = s.blueprints.get_mut(&blueprint.name) else {
            return Ok(false);
        };
        if stored.version != previous {
            return Err(Error::stale(
                "blueprint",
                &blueprint.name,
                previous.into(),
                stored.version.into(),
            ));
        }
        stored.nodes = blueprint.nodes.clone();
        stored.api_port = blueprint.api_port.clone();
        stored.version = blueprint.version;
        stored.version_created_at = blueprint.version_created_at;
        stored.earlier_versions = blueprint.earlier_versions.clone();
        Ok(true)
    }

    async fn delete_blueprint(&self, name: &str) -> Result<bool> {
        Ok(self.state().blueprints.remove(name).is_some())
    }

    async fn insert_cluster(&self, cluster: &Cluster, capacity: u32) -> Result<bool> {
        let mut s = self.state();
        if s.clusters.contains_key(&cluster.id) || s.clusters.values().any(|c| c.name == cluster.name) {
            return Err(Error::conflict(format!("cluster {:?} exists", cluster.name)));
        }
        if s.host_clusters(&cluster.host_id).count() >= capacity as usize {
            return Ok(false);
        }
        s.put_cluster(cluster.clone());
        Ok(true)
    }

    async fn get_cluster(&self, id: &str) -> Result<Option<Cluster>> {
        Ok(self.state().clusters.get(id).cloned())
    }

    async fn list_clusters(&self, filter: &ClusterFilter, page: Page) -> Result<Listing<Cluster>> {
        let s = self.state();
        let candidates: Box<dyn Iterator<Item = &Cluster>> = match &filter.host_id {
            Some(host_id) => Box::new(s.host_clusters(host_id)),
            None => Box::new(s.clusters.values()),
        };
        let mut items: Vec<&Cluster> = candidates.filter(|c| filter.matches(c)).collect();
        items.sort_by(|a, b| filter.sort.compare(a, b));
        Ok(page_of(items, page))
    }

    async fn count_clusters(&self) -> Result<Vec<ClusterCount>> {
        let s = self.state();
        let mut counts: BTreeMap<(&str, &str, u32, ClusterStatus), u64> = BTreeMap::new();
        for c in s.clusters.values() {
            *counts
                .entry((&c.host_id, &c.blueprint, c.blueprint_version, c.status))
                .or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(
                |((host_id, blueprint, blueprint_version, status), count)| ClusterCount {
                    host_id: host_id.to_owned(),
                    blueprint: blueprint.to_owned(),
                    blueprint_version,
                    status,
                    count,
                },
            )
            .collect())
    }

    async fn update_cluster(&self, cluster: &Cluster) -> Result<Cluster> {
        let mut s = self.state();
        let stored = s
            .clusters
            .get(&cluster.id)
            .ok_or_else(|| Error::not_found("cluster", &cluster.id))?;
        if stored.version != cluster.version {
            return Err(Error::stale(
                "cluster",
                &cluster.id,
                cluster.version,
                stored.version,
            ));
        }
        let written = Cluster {
            version: cluster.version + 1,
            updated_at: Utc::now(),
            ..cluster.clone()
        };
        s.put_cluster(written.clone());
        Ok(written)
    }

    async fn delete_cluster(&self, id: &str, version: u64) -> Result<bool> {
        let mut s = self.state();
        match s.clusters.get(id) {
            None => Ok(false),
            Some(c) if c.version != version => Err(Error::stale("cluster", id, version, c.version)),
            Some(_) => Ok(s.remove_cluster(id).is_some()),
        }
    }

    async fn claim_cluster(&self, claim: &Claim) -> Result<ClaimOutcome> {
        let mut s = self.state();
        if !claim.allow_multiple {
            let mut held = s
                .clusters
                .values()
                .filter(|c| c.is_applied() && c.user_id.as_deref() == Some(claim.user_id.as_str()));
            if let Some(c) = held
                .clone()
                .find(|c| c.held_by(&claim.user_id, &claim.blueprints))
            {
                return Ok(ClaimOutcome::Held(c.clone()));
            }
            if let Some(c) = held.find(|c| c.single_apply) {
                return Ok(ClaimOutcome::HoldsOther(c.clone()));
            }
        }
        let applied = |keep: &dyn Fn(&Cluster) -> bool| {
            s.clusters.values().filter(|c| c.is_applied() && keep(c)).count() as u64
        };
        if claim.max_held.is_some() {
            let held = applied(&|c| c.user_id.as_deref() == Some(claim.user_id.as_str()));
            if let Some(quota) = claim.user_quota(held) {
                return Ok(ClaimOutcome::QuotaExceeded(quota));
            }
        }
        let blueprints = match claim.blueprints_below_quota(|name| applied(&|c| c.blueprint == name)) {
            Ok(blueprints) => blueprints,
            Err(quota) => return Ok(ClaimOutcome::QuotaExceeded(quota)),
        };
        let Some(mut cluster) = s
            .clusters
            .values()
            .find(|c| {
                c.status == ClusterStatus::Ready
                    && c.health == Health::Ok
                    && blueprints.contains(&c.blueprint)
                    && claim.hosts.contains(&c.host_id)
            })
            .cloned()
        else {
            return Ok(ClaimOutcome::Exhausted);
        };
        cluster.claim(claim);
        let lease = LeaseRecord::opened(&cluster, claim);
        s.tally(lease.applied_at, false);
        s.leases.insert(claim.lease_id.clone(), lease);
        s.put_cluster(cluster.clone());
        Ok(ClaimOutcome::Claimed(cluster))
    }

    async fn release_cluster(
        &self,
        id: &str,
        now: DateTime<Utc>,
        reason: ReleaseReason,
    ) -> Result<Option<Cluster>> {
        let mut s = self.state();
        let Some(mut cluster) = s.clusters.get(id).filter(|c| c.is_applied()).cloned() else {
            return Ok(None);
        };
        if let Some(lease) = cluster.lease_id.as_ref().and_then(|l| s.leases.get_mut(l)) {
            lease.close(now, reason);
            s.tally(now, true);
        }
        cluster.release(now);
        s.put_cluster(cluster.clone());
        Ok(Some(cluster))
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>> {
        Ok(self.state().leases.get(id).cloned())
    }

    async fn list_leases(&self, user_id: Option<&str>, page: Page) -> Result<Listing<LeaseRecord>> {
        let s = self.state();
        let mut items: Vec<&LeaseRecord> = s
            .leases
            .values()
            .filter(|l| user_id.is_none_or(|u| l.user_id == u))
            .collect();
        items.sort_by(|a, b| b.applied_at.cmp(&a.applied_at).then_with(|| a.id.cmp(&b.id)));
        Ok(page_of(items, page))
    }

    async fn lease_activity(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
    ) -> Result<Vec<LeaseActivity>> {
        let s = self.state();
        Ok(match MinuteSummary::new(since, bucket) {
            Some(summary) => s.summarised(&summary),
            None => LeaseActivity::tally(s.leases.values(), since, bucket),
        })
    }

    async fn put_operation(&self, op: &Operation) -> Result<()> {
        self.state().operations.insert(op.id.clone(), op.clone());
        Ok(())
    }

    async fn get_operation(&self, id: &str) -> Result<Option<Operation>> {
        Ok(self.state().operations.get(id).cloned())
    }

    async fn list_operations(&self, filter: &OperationFilter, page: Page) -> Result<Listing<Operation>> {
        let s = self.state();
        let mut items: Vec<&Operation> = s.operations.values().filter(|op| filter.matches(op)).collect();
        items.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(page_of(items, page))
    }

    async fn acquire_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let mut s = self.state();
        let takeable = s
            .locks
            .get(name)
            .is_none_or(|(held_by, held_until)| held_by == holder || *held_until < now);
        if takeable {
            s.locks.insert(name.to_owned(), (holder.to_owned(), until));
        }
        Ok(takeable)
    }

    async fn release_lock(&self, name: &str, holder: &str) -> Result<()> {
        let mut s = self.state();
        if s.locks.get(name).is_some_and(|(held_by, _)| held_by == holder) {
            s.locks.remove(name);
        }
        Ok(())
    }
}

//! [`MemStore`]: a real, correct in-memory [`Store`], for tests, benchmarks and
//! embedding where nothing must survive the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::model::{
    Blueprint, Claim, Cluster, ClusterFilter, ClusterStatus, Health, Host, LeaseRecord, Listing, Operation,
    Page,
};
use crate::store::Store;

#[derive(Debug, Default)]
struct State {
    hosts: BTreeMap<String, Host>,
    blueprints: BTreeMap<String, Blueprint>,
    clusters: BTreeMap<String, Cluster>,
    leases: BTreeMap<String, LeaseRecord>,
    operations: BTreeMap<String, Operation>,
    /// Lock name → (holder, held until).
    locks: BTreeMap<String, (String, DateTime<Utc>)>,
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

fn cluster_matches(c: &Cluster, f: &ClusterFilter) -> bool {
    f.status.is_none_or(|s| c.status == s)
        && f.host_id.as_ref().is_none_or(|h| &c.host_id == h)
        && f.user_id.as_ref().is_none_or(|u| c.user_id.as_ref() == Some(u))
        && f.blueprints.as_ref().is_none_or(|b| b.contains(&c.blueprint))
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

    async fn list_hosts(&self) -> Result<Vec<Host>> {
        let mut hosts: Vec<Host> = self.state().hosts.values().cloned().collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(hosts)
    }

    async fn update_host(&self, host: &Host) -> Result<()> {
        let mut s = self.state();
        if !s.hosts.contains_key(&host.id) {
            return Err(Error::not_found("host", &host.id));
        }
        if s.hosts.values().any(|h| h.name == host.name && h.id != host.id) {
            return Err(Error::conflict(format!("host {:?} exists", host.name)));
        }
        s.hosts.insert(host.id.clone(), host.clone());
        Ok(())
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

    async fn list_blueprints(&self) -> Result<Vec<Blueprint>> {
        Ok(self.state().blueprints.values().cloned().collect())
    }

    async fn delete_blueprint(&self, name: &str) -> Result<bool> {
        Ok(self.state().blueprints.remove(name).is_some())
    }

    async fn insert_cluster(&self, cluster: &Cluster) -> Result<()> {
        let mut s = self.state();
        if s.clusters.contains_key(&cluster.id) || s.clusters.values().any(|c| c.name == cluster.name) {
            return Err(Error::conflict(format!("cluster {:?} exists", cluster.name)));
        }
        s.clusters.insert(cluster.id.clone(), cluster.clone());
        Ok(())
    }

    async fn get_cluster(&self, id: &str) -> Result<Option<Cluster>> {
        Ok(self.state().clusters.get(id).cloned())
    }

    async fn list_clusters(&self, filter: &ClusterFilter, page: Page) -> Result<Listing<Cluster>> {
        let s = self.state();
        let mut items: Vec<&Cluster> = s
            .clusters
            .values()
            .filter(|c| cluster_matches(c, filter))
            .collect();
        items.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(page_of(items, page))
    }

    async fn update_cluster(&self, cluster: &Cluster) -> Result<Cluster> {
        let mut s = self.state();
        let stored = s
            .clusters
            .get_mut(&cluster.id)
            .ok_or_else(|| Error::not_found("cluster", &cluster.id))?;
        if stored.version != cluster.version {
            return Err(Error::conflict(format!(
                "cluster {} changed meanwhile (version {} is now {})",
                cluster.id, cluster.version, stored.version
            )));
        }
        *stored = Cluster {
            version: cluster.version + 1,
            updated_at: Utc::now(),
            ..cluster.clone()
        };
        Ok(stored.clone())
    }

    async fn delete_cluster(&self, id: &str, version: u64) -> Result<bool> {
        let mut s = self.state();
        match s.clusters.get(id) {
            None => Ok(false),
            Some(c) if c.version != version => Err(Error::conflict(format!(
                "cluster {id} changed meanwhile (version {version} is now {})",
                c.version
            ))),
            Some(_) => Ok(s.clusters.remove(id).is_some()),
        }
    }

    async fn claim_cluster(&self, claim: &Claim) -> Result<Option<Cluster>> {
        let mut s = self.state();
        let Some(c) = s.clusters.values_mut().find(|c| {
            c.status == ClusterStatus::Ready
                && c.health == Health::Ok
                && claim.blueprints.contains(&c.blueprint)
                && claim.hosts.contains(&c.host_id)
        }) else {
            return Ok(None);
        };
        c.status = ClusterStatus::Applied;
        c.user_id = Some(claim.user_id.clone());
        c.applied_at = Some(claim.now);
        c.expires_at = claim.expires_at;
        c.metadata = claim.metadata.clone();
        c.lease_id = Some(claim.lease_id.clone());
        c.updated_at = claim.now;
        c.version += 1;
        let claimed = c.clone();
        s.leases
            .insert(claim.lease_id.clone(), LeaseRecord::opened(&claimed, claim));
        Ok(Some(claimed))
    }

    async fn release_cluster(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Cluster>> {
        let mut s = self.state();
        let Some(c) = s
            .clusters
            .get_mut(id)
            .filter(|c| c.status == ClusterStatus::Applied)
        else {
            return Ok(None);
        };
        let lease_id = c.lease_id.take();
        c.release(now);
        let released = c.clone();
        if let Some(lease) = lease_id.and_then(|l| s.leases.get_mut(&l)) {
            lease.released_at = Some(now);
        }
        Ok(Some(released))
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

    async fn put_operation(&self, op: &Operation) -> Result<()> {
        self.state().operations.insert(op.id.clone(), op.clone());
        Ok(())
    }

    async fn get_operation(&self, id: &str) -> Result<Option<Operation>> {
        Ok(self.state().operations.get(id).cloned())
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

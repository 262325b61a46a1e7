//! What apply needs to know of blueprints and hosts, cached, so that an apply is one
//! store operation in the common case.
//!
//! The cache is dropped by every change this pool makes to a blueprint or a host, and
//! trusted for at most [`PoolConfig::catalog_ttl`](super::PoolConfig::catalog_ttl)
//! otherwise, which bounds how long a change made by another server sharing the store
//! takes to be seen. Loads are single-flight: of many applies that find it stale, one
//! reads the store and the others wait for that read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::Pool;
use crate::error::Result;
use crate::model::{HostStatus, Labels, Page};

/// Blueprint names and labels, and the hosts whose clusters may be handed out.
#[derive(Debug, Default)]
pub(super) struct Catalog {
    /// Every blueprint's name and labels, by name.
    pub blueprints: Vec<(String, Labels)>,
    /// Ids of the active, schedulable hosts.
    pub schedulable_hosts: Vec<String>,
    /// [`Blueprint::max_applied`](crate::Blueprint::max_applied) of the blueprints
    /// that have one.
    pub quotas: BTreeMap<String, u32>,
    /// The blueprints whose [`ReadyBuffer`](crate::ReadyBuffer) limits what is made.
    pub limited: BTreeSet<String>,
    /// Those of them with a target of free clusters, which an apply tops up.
    pub buffered: BTreeSet<String>,
}

impl Catalog {
    /// Whether a blueprint of that name is known.
    pub fn has_blueprint(&self, name: &str) -> bool {
        self.blueprints
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .is_ok()
    }

    /// Labels of the blueprint called `name`.
    pub fn labels_of(&self, name: &str) -> Option<&Labels> {
        self.blueprints
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| &self.blueprints[i].1)
    }
}

#[derive(Debug, Default)]
pub(super) struct CatalogCache {
    current: RwLock<Option<(Instant, Arc<Catalog>)>>,
    /// Bumped by every invalidation, so that a load that began before one is not kept.
    generation: AtomicU64,
    loading: tokio::sync::Mutex<()>,
}

impl CatalogCache {
    /// Forgets the cached catalog: the next apply reads the store.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn fresh(&self, ttl: std::time::Duration) -> Option<Arc<Catalog>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current
            .as_ref()
            .filter(|(loaded, _)| loaded.elapsed() < ttl)
            .map(|(_, catalog)| Arc::clone(catalog))
    }

    fn keep(&self, catalog: &Arc<Catalog>, generation: u64, loaded: Instant) {
        if self.generation.load(Ordering::SeqCst) == generation {
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some((loaded, Arc::clone(catalog)));
        }
    }
}

impl Pool {
    /// The catalog, from the cache while it is fresh.
    pub(super) async fn catalog(&self) -> Result<Arc<Catalog>> {
        let cache = &self.inner.catalog;
        let ttl = self.config().catalog_ttl;
        if let Some(catalog) = cache.fresh(ttl) {
            return Ok(catalog);
        }
        let _loading = cache.loading.lock().await;
        // Another apply may have loaded it while this one waited.
        if let Some(catalog) = cache.fresh(ttl) {
            return Ok(catalog);
        }
        self.load_catalog().await
    }

    /// The catalog read from the store now, whatever the cache holds.
    pub(super) async fn reload_catalog(&self) -> Result<Arc<Catalog>> {
        let _loading = self.inner.catalog.loading.lock().await;
        self.load_catalog().await
    }

    async fn load_catalog(&self) -> Result<Arc<Catalog>> {
        let cache = &self.inner.catalog;
        let generation = cache.generation.load(Ordering::SeqCst);
        let loaded = Instant::now();
        let listed = self.store().list_blueprints(Page::ALL).await?.items;
        let quotas = listed
            .iter()
            .filter_map(|b| Some((b.name.clone(), b.max_applied?)))
            .collect();
        let limited = listed
            .iter()
            .filter(|b| b.may_limit())
            .map(|b| b.name.clone())
            .collect();
        let buffered = listed
            .iter()
            .filter(|b| b.may_keep_ready())
            .map(|b| b.name.clone())
            .collect();
        let mut blueprints: Vec<(String, Labels)> = listed.into_iter().map(|b| (b.name, b.labels)).collect();
        blueprints.sort_by(|a, b| a.0.cmp(&b.0));
        let schedulable_hosts = self
            .store()
            .list_hosts(Page::ALL)
            .await?
            .items
            .into_iter()
            .filter(|h| h.status == HostStatus::Active && h.schedulable)
            .map(|h| h.id)
            .collect();
        let catalog = Arc::new(Catalog {
            blueprints,
            schedulable_hosts,
            quotas,
            limited,
            buffered,
        });
        cache.keep(&catalog, generation, loaded);
        Ok(catalog)
    }
}

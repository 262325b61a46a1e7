//! Ready buffers: each blueprint with a target keeps that many free clusters, within
//! the capacity of the autofill hosts, and no blueprint goes beyond its `max_total`.
//!
//! Fills (the reconciler's, an operator's, the one a new blueprint starts) plan within
//! each blueprint's room ([`ReadyBuffer::room`]), one plan at a time in a process so
//! that hosts filled side by side never both take the same room. An apply that takes
//! a buffered blueprint's cluster asks for a top-up, run in the background and
//! coalesced with the others asked meanwhile. A release whose blueprint holds more free
//! clusters than it wants removes the cluster instead of making it afresh, and the
//! reconciler removes what is still beyond ([`ReadyBuffer::surplus`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;

use tracing::{info, warn};

use super::Pool;
use crate::error::{Error, Result};
use crate::model::{
    Blueprint, BufferCounts, Cluster, ClusterCount, ClusterFilter, ClusterStatus, Health, HostStatus, Page,
};

/// Each blueprint's clusters in `counts`, counted for its buffer.
fn buffer_counts_of(counts: &[ClusterCount]) -> BTreeMap<String, BufferCounts> {
    let mut by_blueprint: BTreeMap<String, BufferCounts> = BTreeMap::new();
    for c in counts {
        by_blueprint
            .entry(c.blueprint.clone())
            .or_default()
            .add(c.status, c.count);
    }
    by_blueprint
}

/// Those of `blueprints` whose buffer limits what is made, each with its clusters
/// in `counts`.
fn limited<'a>(
    blueprints: &'a [Blueprint],
    counts: &BTreeMap<String, BufferCounts>,
) -> Vec<(&'a Blueprint, BufferCounts)> {
    blueprints
        .iter()
        .filter(|b| b.may_limit())
        .map(|b| (b, counts.get(&b.name).copied().unwrap_or_default()))
        .collect()
}

/// How many more clusters of each of `blueprints` that is limited may be made now,
/// given the store's cluster `counts` (those absent may take any room).
pub(super) fn buffer_room(blueprints: &[Blueprint], counts: &[ClusterCount]) -> BTreeMap<String, u64> {
    let now = Utc::now();
    limited(blueprints, &buffer_counts_of(counts))
        .into_iter()
        .filter_map(|(b, counted)| Some((b.name.clone(), b.buffer_at(now).room(counted)?)))
        .collect()
}

/// Whether a top-up runs, and whether another was asked for since it began.
#[derive(Debug, Default)]
pub(super) struct TopUp {
    running: AtomicBool,
    wanted: AtomicBool,
}

impl Pool {
    /// Each blueprint's clusters, counted for its buffer.
    pub(super) async fn buffer_counts(&self) -> Result<BTreeMap<String, BufferCounts>> {
        Ok(buffer_counts_of(&self.store().count_clusters().await?))
    }
    /// Marks `released` (a cluster being released, its engine objects gone)
    /// `deleting` when its blueprint holds more free clusters than its buffer wants;
    /// `None`, leaving it as it is, otherwise. Decided one at a time with the fills'
    /// plans, so that releases at once never remove more than the surplus.
    pub(super) async fn retire_beyond_buffer(&self, released: &Cluster) -> Result<Option<Cluster>> {
        let name = &released.blueprint;
        if !self.catalog().await?.limited.contains(name) {
            return Ok(None);
        }
        let _planning = self.inner.planning.lock().await;
        let Some(blueprint) = self.store().get_blueprint(name).await? else {
            return Ok(None);
        };
        let counts = self.buffer_counts().await?;
        if blueprint
            .buffer_at(Utc::now())
            .surplus(counts.get(name).copied().unwrap_or_default())
            == 0
        {
            return Ok(None);
        }
        let mut gone = released.clone();
        gone.status = ClusterStatus::Deleting;
        self.save_cluster(&gone).await.map(Some)
    }

    /// Asks for a top-up of the ready buffers, in the background; one runs at a time,
    /// and one asked for while it runs runs after it.
    pub(super) fn request_top_up(&self) {
        let top_up = &self.inner.top_up;
        top_up.wanted.store(true, Ordering::SeqCst);
        if top_up.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let pool = self.clone();
        self.spawn(async move {
            let top_up = &pool.inner.top_up;
            loop {
                while top_up.wanted.swap(false, Ordering::SeqCst) {
                    pool.top_up().await;
                }
                top_up.running.store(false, Ordering::SeqCst);
                // Asked for after the last look, while this still showed as running.
                if !top_up.wanted.load(Ordering::SeqCst) || top_up.running.swap(true, Ordering::SeqCst) {
                    break;
                }
            }
        });
    }

    /// Fills the active autofill hosts with room, each within its part of every
    /// blueprint's room (see [`Pool::share_of_room`]).
    async fn top_up(&self) {
        let hosts = match self.hosts().await {
            Ok(hosts) => hosts,
            Err(e) => {
                warn!(error = %e, "could not list the hosts to top up the ready buffers");
                return;
            }
        };
        for host in hosts
            .iter()
            .filter(|h| h.autofill && h.status == HostStatus::Active)
        {
            self.autofill(host).await;
        }
    }

    /// Marks the free `cluster` `deleting` and removes it in the background, as `work`;
    /// false when it was applied meanwhile (it stays).
    pub(super) async fn start_removing_free(&self, mut cluster: Cluster, work: &'static str) -> Result<bool> {
        cluster.status = ClusterStatus::Deleting;
        let cluster = match self.save_cluster(&cluster).await {
            Ok(cluster) => cluster,
            Err(Error::Stale { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        info!(cluster_id = %cluster.id, work, "removing a free cluster");
        self.spawn_cluster_work(work, cluster, |pool, cluster| async move {
            pool.remove_cluster(&cluster).await
        });
        Ok(true)
    }

    /// Holds every buffer now: removes the surplus, then tops up.
    pub(super) async fn hold_buffers(&self) {
        let trimmed = match self.blueprints().await {
            Ok(blueprints) => self.trim_buffers(&blueprints).await,
            Err(e) => Err(e),
        };
        if let Err(e) = trimmed {
            warn!(error = %e, "could not remove the clusters beyond the ready buffers");
        }
        self.top_up().await;
    }

    /// Starts removing the free clusters beyond each blueprint's buffer or
    /// `max_total`, those failing first; returns how many. Decided one at a time with
    /// the fills' plans: each is marked `deleting` before the next is counted.
    pub(super) async fn trim_buffers(&self, blueprints: &[Blueprint]) -> Result<u32> {
        if !blueprints.iter().any(Blueprint::may_limit) {
            return Ok(0);
        }
        let _planning = self.inner.planning.lock().await;
        let mut trimmed = 0;
        let counts = self.buffer_counts().await?;
        for (blueprint, counted) in limited(blueprints, &counts) {
            let surplus = blueprint.buffer_at(Utc::now()).surplus(counted);
            if surplus == 0 {
                continue;
            }
            let ready = ClusterFilter {
                status: Some(ClusterStatus::Ready),
                blueprints: Some(vec![blueprint.name.clone()]),
                ..ClusterFilter::default()
            };
            let mut free = self.store().list_clusters(&ready, Page::ALL).await?.items;
            free.retain(|c| !self.is_busy(&c.id));
            // The unhealthy go first, then those of earlier versions.
            free.sort_by_key(|c| (c.health == Health::Ok, c.blueprint_version == blueprint.version));
            let mut left = surplus;
            for cluster in free {
                if left == 0 {
                    break;
                }
                if !self.start_removing_free(cluster, "trim").await? {
                    continue;
                }
                info!(blueprint = %blueprint.name, "removing a free cluster beyond the ready buffer");
                left -= 1;
                trimmed += 1;
            }
        }
        Ok(trimmed)
    }
}

//! Rollouts: the free clusters of a blueprint's earlier versions replaced by clusters
//! of its current one, at a bounded rate, and earlier versions dropped once no cluster
//! runs them.
//!
//! A new version ([`Pool::update_blueprint_nodes`]) changes nothing at once: every
//! cluster made from then on is of it, applied clusters keep theirs until released
//! (a release makes them anew at the current version), and with
//! [`RolloutStrategy::Recreate`] each reconcile pass takes free clusters of earlier
//! versions out of the pool and makes them anew, same id and name, within the
//! blueprint's [`Rollout::max_per_minute`]. The rate is kept by a token bucket per
//! blueprint in the process that runs the reconciler, holding at most one pass's share
//! of a minute's replacements.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;

use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tracing::info;

use super::{lock, Pool};
use crate::error::Result;
use crate::model::{Blueprint, ClusterCount, ClusterFilter, ClusterStatus, Page, Rollout, RolloutStrategy};

/// The clusters of one version of a blueprint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionClusters {
    /// The version.
    pub version: u32,
    /// When it was made, if the blueprint still knows.
    pub created_at: Option<DateTime<Utc>>,
    /// When the next version replaced it; `None` for the current one.
    pub superseded_at: Option<DateTime<Utc>>,
    /// Its clusters by status (statuses with none left out).
    pub clusters: BTreeMap<ClusterStatus, u64>,
    /// Its clusters in all.
    pub total: u64,
}

/// Where a blueprint's rollout stands: how many of its clusters run each version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RolloutStatus {
    /// The blueprint.
    pub blueprint: String,
    /// Its current version.
    pub version: u32,
    /// How its clusters move to a new version.
    pub rollout: Rollout,
    /// Each version that is current or has clusters, newest first.
    pub versions: Vec<VersionClusters>,
    /// Clusters of earlier versions, in all.
    pub outdated: u64,
    /// True when every cluster runs the current version.
    pub complete: bool,
}

/// The token buckets of the blueprints being rolled out, by name, each with the rate
/// it was made for.
#[derive(Debug, Default)]
pub(super) struct Limiters {
    by_blueprint: std::sync::Mutex<HashMap<String, (u32, DefaultDirectRateLimiter)>>,
}

impl Limiters {
    /// How many of `wanted` replacements of `blueprint` its rate allows now; those
    /// allowed are counted as done.
    fn take(&self, blueprint: &Blueprint, burst: u32, wanted: usize) -> usize {
        let rate = NonZeroU32::new(blueprint.rollout.max_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.clamp(1, rate.get())).unwrap_or(NonZeroU32::MIN);
        let bucket = || {
            (
                rate.get(),
                RateLimiter::direct(Quota::per_minute(rate).allow_burst(burst)),
            )
        };
        let mut limiters = lock(&self.by_blueprint);
        let entry = limiters.entry(blueprint.name.clone()).or_insert_with(bucket);
        // A changed rate starts a bucket of its own.
        if entry.0 != rate.get() {
            *entry = bucket();
        }
        (0..wanted).take_while(|_| entry.1.check().is_ok()).count()
    }

    /// Forgets the blueprints not in `rolling`.
    fn keep_only(&self, rolling: &[&Blueprint]) {
        lock(&self.by_blueprint).retain(|name, _| rolling.iter().any(|b| &b.name == name));
    }
}

impl Pool {
    /// Where the rollout of blueprint `name` stands.
    pub async fn rollout_status(&self, name: &str) -> Result<RolloutStatus> {
        let blueprint = self.blueprint(name).await?;
        let counts = self.store().count_clusters().await?;
        Ok(rollout_status(&blueprint, &counts))
    }

    /// One pass of the rollouts: for each blueprint with strategy `recreate`, starts
    /// making anew the free clusters of earlier versions its rate allows, oldest
    /// version first; then drops the earlier versions no cluster runs. Returns how many
    /// replacements it started.
    pub(super) async fn roll_out(&self, blueprints: &[Blueprint]) -> Result<u32> {
        let rolling: Vec<&Blueprint> = blueprints
            .iter()
            .filter(|b| b.rollout.strategy == RolloutStrategy::Recreate && !b.earlier_versions.is_empty())
            .collect();
        self.inner.rollouts.keep_only(&rolling);
        let interval = self.config().reconcile.interval.as_secs_f64();
        let mut replaced = 0;
        for blueprint in rolling {
            let free = ClusterFilter {
                status: Some(ClusterStatus::Ready),
                blueprints: Some(vec![blueprint.name.clone()]),
                ..ClusterFilter::default()
            };
            let mut outdated = self.store().list_clusters(&free, Page::ALL).await?.items;
            outdated.retain(|c| c.blueprint_version != blueprint.version && !self.is_busy(&c.id));
            if outdated.is_empty() {
                continue;
            }
            outdated.sort_by_key(|c| c.blueprint_version);
            // One pass's share of a minute, so that a pass never takes more.
            let per_pass = (f64::from(blueprint.rollout.max_per_minute) * interval / 60.0).ceil() as u32;
            let allowed = self.inner.rollouts.take(blueprint, per_pass, outdated.len());
            for cluster in outdated.into_iter().take(allowed) {
                let from = cluster.blueprint_version;
                let mut outgoing = cluster;
                outgoing.status = ClusterStatus::Releasing;
                // Conditional: one applied meanwhile keeps its version until released.
                match self.save_cluster(&outgoing).await {
                    Ok(saved) => {
                        info!(
                            cluster_id = %saved.id, blueprint = %blueprint.name, from, to = blueprint.version,
                            "replacing a free cluster of an earlier version"
                        );
                        replaced += 1;
                        self.spawn_recycle(saved);
                    }
                    Err(e) if e.is_stale() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.drop_unused_versions(blueprints).await?;
        Ok(replaced)
    }

    /// Drops from each blueprint the earlier versions that no cluster runs.
    async fn drop_unused_versions(&self, blueprints: &[Blueprint]) -> Result<()> {
        if blueprints.iter().all(|b| b.earlier_versions.is_empty()) {
            return Ok(());
        }
        let counts = self.store().count_clusters().await?;
        for blueprint in blueprints.iter().filter(|b| !b.earlier_versions.is_empty()) {
            let used = |version: u32| {
                counts
                    .iter()
                    .any(|c| c.blueprint == blueprint.name && c.blueprint_version == version && c.count > 0)
            };
            let mut kept = blueprint.clone();
            kept.earlier_versions.retain(|v| used(v.version));
            if kept.earlier_versions.len() == blueprint.earlier_versions.len() {
                continue;
            }
            match self
                .store()
                .update_blueprint_version(&kept, blueprint.version)
                .await
            {
                Ok(_) => info!(blueprint = %blueprint.name, "dropped earlier versions no cluster runs"),
                // A new version came meanwhile: the next pass looks again.
                Err(e) if e.is_stale() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The rollout status of `blueprint` from the store's cluster `counts`.
pub(super) fn rollout_status(blueprint: &Blueprint, counts: &[ClusterCount]) -> RolloutStatus {
    let mut by_version: BTreeMap<u32, BTreeMap<ClusterStatus, u64>> = BTreeMap::new();
    by_version.entry(blueprint.version).or_default();
    for c in counts
        .iter()
        .filter(|c| c.blueprint == blueprint.name && c.count > 0)
    {
        *by_version
            .entry(c.blueprint_version)
            .or_default()
            .entry(c.status)
            .or_default() += c.count;
    }
    let versions: Vec<VersionClusters> = by_version
        .into_iter()
        .rev()
        .map(|(version, clusters)| {
            let earlier = blueprint.earlier_versions.iter().find(|v| v.version == version);
            let (created_at, superseded_at) = match earlier {
                _ if version == blueprint.version => (Some(blueprint.version_created_at), None),
                Some(v) => (Some(v.created_at), Some(v.superseded_at)),
                None => (None, None),
            };
            VersionClusters {
                version,
                created_at,
                superseded_at,
                total: clusters.values().sum(),
                clusters,
            }
        })
        .collect();
    let outdated = versions
        .iter()
        .filter(|v| v.version != blueprint.version)
        .map(|v| v.total)
        .sum();
    RolloutStatus {
        blueprint: blueprint.name.clone(),
        version: blueprint.version,
        rollout: blueprint.rollout,
        versions,
        outdated,
        complete: outdated == 0,
    }
}

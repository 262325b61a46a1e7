//! Apply, release, stats and lease history: the user-facing side of the pool.
//! Apply and release never wait for an engine.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use tracing::{info, instrument};

use super::Pool;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{
    new_id, Claim, Cluster, ClusterFilter, ClusterStatus, HostStatus, Labels, LeaseRecord, Listing, Page,
};

/// What a user asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyRequest {
    /// Who asks; required.
    pub user_id: String,
    /// Wanted blueprint; `None` for any blueprint matching `labels`.
    pub blueprint: Option<String>,
    /// Labels the blueprint must carry.
    pub labels: Labels,
    /// Hand out another cluster even if the user holds a matching one.
    pub allow_multiple: bool,
    /// Stored with the cluster and the lease.
    pub metadata: BTreeMap<String, String>,
    /// Lease length; the pool's default when `None`.
    pub ttl: Option<Duration>,
}

/// What to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseTarget {
    /// One cluster.
    Cluster(String),
    /// Every cluster a user holds.
    User(String),
}

/// Cluster counts of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStats {
    /// Host id.
    pub id: String,
    /// Host name.
    pub name: String,
    /// Host status.
    pub status: HostStatus,
    /// Capacity.
    pub capacity: u32,
    /// Cluster count by status.
    pub clusters: BTreeMap<ClusterStatus, u64>,
}

/// Cluster counts of one blueprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlueprintStats {
    /// Blueprint name.
    pub name: String,
    /// Cluster count by status.
    pub clusters: BTreeMap<ClusterStatus, u64>,
}

/// What the pool holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Cluster count by status, over all hosts.
    pub clusters: BTreeMap<ClusterStatus, u64>,
    /// Host count by status.
    pub hosts_by_status: BTreeMap<HostStatus, u64>,
    /// Per host.
    pub hosts: Vec<HostStats>,
    /// Per blueprint.
    pub blueprints: Vec<BlueprintStats>,
}

impl Pool {
    /// Hands `req.user_id` a ready cluster, at once, or [`Error::PoolExhausted`].
    ///
    /// Without `allow_multiple`, a user who holds a matching cluster gets that one
    /// back. The claim is one atomic store operation; no engine is called.
    #[instrument(skip(self, req), fields(user_id = %req.user_id))]
    pub async fn apply(&self, req: ApplyRequest) -> Result<Cluster> {
        validate_user(&req.user_id)?;
        let ttl = self.lease_ttl(req.ttl)?;
        let blueprints = self.wanted_blueprints(&req).await?;
        if !req.allow_multiple {
            let filter = ClusterFilter {
                status: Some(ClusterStatus::Applied),
                user_id: Some(req.user_id.clone()),
                blueprints: Some(blueprints.clone()),
                ..ClusterFilter::default()
            };
            let held = self
                .store()
                .list_clusters(&filter, Page { offset: 0, limit: 1 })
                .await?;
            if let Some(cluster) = held.items.into_iter().next() {
                return Ok(cluster);
            }
        }
        let hosts: Vec<String> = self
            .hosts()
            .await?
            .into_iter()
            .filter(|h| h.status == HostStatus::Active && h.schedulable)
            .map(|h| h.id)
            .collect();
        let wanted = describe_wanted(&req);
        if hosts.is_empty() {
            return Err(Error::PoolExhausted { wanted });
        }
        let now = Utc::now();
        let expires_at = ttl
            .map(|ttl| chrono::Duration::from_std(ttl).map(|d| now + d))
            .transpose()
            .map_err(|_| Error::invalid("ttl_seconds", "is too large"))?;
        let claim = Claim {
            user_id: req.user_id.clone(),
            blueprints,
            hosts,
            metadata: req.metadata,
            lease_id: new_id(),
            now,
            expires_at,
        };
        let cluster = self
            .store()
            .claim_cluster(&claim)
            .await?
            .ok_or(Error::PoolExhausted { wanted })?;
        info!(cluster_id = %cluster.id, "cluster applied");
        self.emit(Event::Applied(cluster.clone()));
        Ok(cluster)
    }

    /// Extends the lease of an applied cluster to `ttl` from now (the pool's default
    /// when `None`, within its maximum). With `user_id`, only that user's lease is
    /// extended.
    ///
    /// A cluster that is not applied, or applied to another user, is
    /// [`Error::Conflict`]; a pool with no TTL at all gives [`Error::Invalid`].
    #[instrument(skip(self))]
    pub async fn renew(
        &self,
        cluster_id: &str,
        user_id: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<Cluster> {
        let ttl = self.lease_ttl(ttl)?.ok_or_else(|| {
            Error::invalid("ttl_seconds", "is required: the pool has no default lease length")
        })?;
        let ttl =
            chrono::Duration::from_std(ttl).map_err(|_| Error::invalid("ttl_seconds", "is too large"))?;
        loop {
            let mut cluster = self.cluster(cluster_id).await?;
            if !cluster.is_applied() {
                return Err(Error::conflict(format!(
                    "cluster {:?} is {}, not applied",
                    cluster.name, cluster.status
                )));
            }
            if let Some(user_id) = user_id.filter(|u| cluster.user_id.as_deref() != Some(*u)) {
                return Err(Error::conflict(format!(
                    "cluster {:?} is not applied to {user_id:?}",
                    cluster.name
                )));
            }
            cluster.expires_at = Some(Utc::now() + ttl);
            match self.save_cluster(&cluster).await {
                // Another write came first (health, a release): read again and decide anew.
                Err(Error::Conflict { .. }) => continue,
                outcome => {
                    if outcome.is_ok() {
                        info!(cluster_id, "lease renewed");
                    }
                    return outcome;
                }
            }
        }
    }

    fn lease_ttl(&self, asked: Option<Duration>) -> Result<Option<Duration>> {
        let ttl = asked.or(self.config().default_ttl);
        match (ttl, self.config().max_ttl) {
            (Some(ttl), _) if ttl.is_zero() => Err(Error::invalid("ttl_seconds", "must be above 0")),
            (Some(ttl), Some(max)) if ttl > max => Err(Error::invalid(
                "ttl_seconds",
                format!("{} is above the maximum of {}", ttl.as_secs(), max.as_secs()),
            )),
            (None, Some(max)) => Ok(Some(max)),
            _ => Ok(ttl),
        }
    }

    /// Names of the blueprints an apply accepts; never empty.
    async fn wanted_blueprints(&self, req: &ApplyRequest) -> Result<Vec<String>> {
        if let Some(name) = &req.blueprint {
            let blueprint = self.blueprint(name).await?;
            if !blueprint.matches(&req.labels) {
                return Err(Error::PoolExhausted {
                    wanted: describe_wanted(req),
                });
            }
            return Ok(vec![blueprint.name]);
        }
        let names: Vec<String> = self
            .blueprints()
            .await?
            .into_iter()
            .filter(|b| b.matches(&req.labels))
            .map(|b| b.name)
            .collect();
        if names.is_empty() {
            return Err(Error::not_found(
                "blueprint with labels",
                format!("{:?}", req.labels),
            ));
        }
        Ok(names)
    }

    /// Gives clusters back. Answers at once with the released ids; destroying and
    /// recreating each cluster (same id, name and host) runs in the background.
    ///
    /// An unknown cluster is [`Error::NotFound`], one that is not applied
    /// [`Error::Conflict`]; a user holding nothing releases nothing.
    #[instrument(skip(self))]
    pub async fn release(&self, target: ReleaseTarget) -> Result<Vec<String>> {
        let held = match target {
            ReleaseTarget::Cluster(id) => {
                let cluster = self.cluster(&id).await?;
                if !cluster.is_applied() {
                    return Err(Error::conflict(format!(
                        "cluster {:?} is {}, not applied",
                        cluster.name, cluster.status
                    )));
                }
                vec![cluster]
            }
            ReleaseTarget::User(user_id) => {
                validate_user(&user_id)?;
                let filter = ClusterFilter {
                    status: Some(ClusterStatus::Applied),
                    user_id: Some(user_id),
                    ..ClusterFilter::default()
                };
                self.store().list_clusters(&filter, Page::ALL).await?.items
            }
        };
        let mut released = Vec::with_capacity(held.len());
        for cluster in held {
            // Another release may win the race; only the winner recycles.
            if let Some(cluster) = self.release_one(&cluster, "release").await? {
                released.push(cluster.id.clone());
                self.spawn_recycle(cluster);
            }
        }
        Ok(released)
    }

    /// Releases `held` (an applied cluster as read) in one atomic store call and
    /// tells the subscribers why. Returns the released cluster, or `None` when
    /// another release won.
    pub(super) async fn release_one(&self, held: &Cluster, reason: &'static str) -> Result<Option<Cluster>> {
        let released = self.store().release_cluster(&held.id, Utc::now()).await?;
        if let Some(cluster) = &released {
            info!(cluster_id = %cluster.id, reason, "cluster released");
            self.emit(Event::Released {
                cluster: cluster.clone(),
                user_id: held.user_id.clone().unwrap_or_default(),
                reason,
            });
        }
        Ok(released)
    }

    /// Counts of clusters by status, per host and per blueprint, and of hosts by status.
    pub async fn stats(&self) -> Result<Stats> {
        let hosts = self.hosts().await?;
        let blueprints = self.blueprints().await?;
        let clusters = self
            .store()
            .list_clusters(&ClusterFilter::default(), Page::ALL)
            .await?
            .items;
        let count = |keep: &dyn Fn(&Cluster) -> bool| {
            let mut by_status = BTreeMap::new();
            for c in clusters.iter().filter(|c| keep(c)) {
                *by_status.entry(c.status).or_insert(0) += 1;
            }
            by_status
        };
        let mut hosts_by_status = BTreeMap::new();
        for h in &hosts {
            *hosts_by_status.entry(h.status).or_insert(0) += 1;
        }
        Ok(Stats {
            clusters: count(&|_| true),
            hosts_by_status,
            hosts: hosts
                .iter()
                .map(|h| HostStats {
                    id: h.id.clone(),
                    name: h.name.clone(),
                    status: h.status,
                    capacity: h.capacity,
                    clusters: count(&|c| c.host_id == h.id),
                })
                .collect(),
            blueprints: blueprints
                .iter()
                .map(|b| BlueprintStats {
                    name: b.name.clone(),
                    clusters: count(&|c| c.blueprint == b.name),
                })
                .collect(),
        })
    }

    /// Lease history, newest first; only `user_id`'s if given.
    pub async fn leases(&self, user_id: Option<&str>, page: Page) -> Result<Listing<LeaseRecord>> {
        self.store().list_leases(user_id, page).await
    }
}

fn validate_user(user_id: &str) -> Result<()> {
    if user_id.trim().is_empty() || user_id.len() > 256 {
        return Err(Error::invalid("user_id", "must be 1-256 characters"));
    }
    Ok(())
}

fn describe_wanted(req: &ApplyRequest) -> String {
    match (&req.blueprint, req.labels.is_empty()) {
        (Some(name), true) => format!("blueprint {name:?}"),
        (Some(name), false) => format!("blueprint {name:?} with labels {:?}", req.labels),
        (None, true) => "any blueprint".to_owned(),
        (None, false) => format!("labels {:?}", req.labels),
    }
}

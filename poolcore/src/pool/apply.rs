//! Apply, release, stats and lease history: the user-facing side of the pool.
//! Apply and release never wait for an engine.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info, instrument};

use super::{Actor, Pool};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::limits;
use crate::metrics::{self, ApplyOutcome};
use crate::model::{
    new_ordered_id, Claim, ClaimOutcome, Cluster, ClusterCount, ClusterFilter, ClusterStatus, HostStatus,
    Labels, LeaseActivity, LeaseRecord, Listing, Page, ReleaseReason,
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
    /// How long to wait, in line, for a cluster when none is ready; `None` (or zero) to
    /// answer at once. At most [`PoolConfig::max_apply_wait`](super::PoolConfig::max_apply_wait).
    pub wait: Option<Duration>,
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
    /// Free clusters its ready buffer wants now ([`ReadyBuffer::target`](crate::ReadyBuffer::target)); `None`
    /// without a target.
    pub ready_target: Option<u64>,
    /// Set while its creations back off on this server ([`Backoff`](super::Backoff)).
    pub backoff: Option<super::Backoff>,
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
    /// Applies waiting for a cluster in this process ([`ApplyRequest::wait`]).
    pub waiting: u64,
}

impl Pool {
    /// Hands `req.user_id` a ready cluster, at once, or [`Error::PoolExhausted`].
    ///
    /// With `req.wait`, an apply that finds nothing ready waits that long, in line with
    /// the other applies waiting for the same blueprint and labels (first come, first
    /// served), and is served as soon as a cluster becomes ready; dropping the future
    /// leaves the line. See [`WAIT_POLL`](super::WAIT_POLL).
    ///
    /// Without `allow_multiple` the apply is single: a user who holds a cluster of a
    /// matching blueprint gets that one back, and a user who holds a cluster from
    /// another single apply is refused with [`Error::Conflict`] (see
    /// [`ClaimOutcome`]). The claim is one atomic store operation; no engine is called.
    #[instrument(skip(self, req), fields(user_id = %req.user_id))]
    pub async fn apply(&self, req: ApplyRequest) -> Result<Cluster> {
        let started = std::time::Instant::now();
        let claimed = match self.apply_wait(&req) {
            Ok(None) => self.claim_for(&req).await,
            Ok(Some(wait)) => self.claim_waiting(&req, wait).await,
            Err(e) => Err(e),
        };
        let (outcome, result) = match claimed {
            Ok((outcome, cluster)) => (outcome, Ok(cluster)),
            Err(e @ Error::PoolExhausted { .. }) => (ApplyOutcome::Exhausted, Err(e)),
            Err(e) => (ApplyOutcome::Refused, Err(e)),
        };
        metrics::apply(outcome, started.elapsed());
        result
    }

    /// How long `req` may wait: `None` to answer at once; above the pool's maximum is
    /// [`Error::Invalid`].
    fn apply_wait(&self, req: &ApplyRequest) -> Result<Option<Duration>> {
        let wait = req.wait.filter(|w| !w.is_zero());
        let max = self.config().max_apply_wait;
        match wait {
            Some(w) if w > max => Err(Error::invalid(
                "wait_seconds",
                format!("{} is above the maximum of {}", w.as_secs(), max.as_secs()),
            )),
            _ => Ok(wait),
        }
    }

    /// Claims for `req` at once, or waits in line until `wait` has passed.
    async fn claim_waiting(&self, req: &ApplyRequest, wait: Duration) -> Result<(ApplyOutcome, Cluster)> {
        match self.claim_for(req).await {
            Err(Error::PoolExhausted { .. }) => {}
            other => return other,
        }
        let deadline = tokio::time::Instant::now() + wait;
        let place = self.inner.waiters.join(req.blueprint.as_deref(), &req.labels);
        debug!(waiting = self.inner.waiters.waiting(), "waiting for a cluster");
        let served = place
            .serve(deadline, || async {
                match self.claim_for(req).await {
                    Err(Error::PoolExhausted { .. }) => None,
                    other => Some(other),
                }
            })
            .await;
        served.unwrap_or_else(|| {
            Err(Error::PoolExhausted {
                wanted: format!(
                    "{} (waited {} s)",
                    describe_wanted(req.blueprint.as_deref(), &req.labels),
                    wait.as_secs_f64()
                ),
            })
        })
    }

    async fn claim_for(&self, req: &ApplyRequest) -> Result<(ApplyOutcome, Cluster)> {
        req.validate()?;
        let ttl = self.lease_ttl(req.ttl)?;
        let now = Utc::now();
        let expires_at = ttl.map(|ttl| lease_end(now, ttl)).transpose()?;
        let (blueprints, hosts, catalog) = self.claim_scope(req).await?;
        let blueprint_quotas = blueprints
            .iter()
            .filter_map(|b| Some((b.clone(), *catalog.quotas.get(b)?)))
            .collect();
        let claim = Claim {
            user_id: req.user_id.clone(),
            blueprints,
            hosts,
            metadata: req.metadata.clone(),
            lease_id: new_ordered_id(),
            now,
            expires_at,
            allow_multiple: req.allow_multiple,
            max_held: self.config().max_clusters_per_user,
            blueprint_quotas,
        };
        match self.store().claim_cluster(&claim).await? {
            ClaimOutcome::Claimed(cluster) => {
                info!(cluster_id = %cluster.id, "cluster applied");
                self.emit(Event::Applied(cluster.clone()));
                if catalog.buffered.contains(&cluster.blueprint) {
                    self.request_top_up();
                }
                Ok((ApplyOutcome::Served, cluster))
            }
            ClaimOutcome::Held(cluster) => {
                debug!(cluster_id = %cluster.id, "the user holds a matching cluster already");
                Ok((ApplyOutcome::Held, cluster))
            }
            ClaimOutcome::HoldsOther(cluster) => Err(Error::conflict(format!(
                "user {:?} holds cluster {:?} of blueprint {:?} from an apply without allow_multiple; \
                 release it first, or apply with allow_multiple",
                claim.user_id, cluster.name, cluster.blueprint
            ))),
            ClaimOutcome::Exhausted => {
                if claim.blueprints.iter().any(|b| catalog.buffered.contains(b)) {
                    self.request_top_up();
                }
                Err(Error::PoolExhausted {
                    wanted: describe_wanted(req.blueprint.as_deref(), &req.labels),
                })
            }
            ClaimOutcome::QuotaExceeded(quota) => Err(Error::QuotaExceeded {
                quota: quota.kind(),
                message: format!("{quota}; release one first"),
            }),
        }
    }

    /// Extends the lease of an applied cluster to `ttl` from now (the pool's default
    /// when `None`, within its maximum).
    ///
    /// A cluster that is not applied is [`Error::Conflict`]; one applied to another user
    /// than an [`Actor::User`] is [`Error::Forbidden`]; a pool with no TTL at all gives
    /// [`Error::Invalid`].
    #[instrument(skip(self))]
    pub async fn renew(&self, cluster_id: &str, actor: Actor<'_>, ttl: Option<Duration>) -> Result<Cluster> {
        let ttl = self.lease_ttl(ttl)?.ok_or_else(|| {
            Error::invalid("ttl_seconds", "is required: the pool has no default lease length")
        })?;
        let cluster = self
            .change_cluster(cluster_id, |cluster| {
                if !cluster.is_applied() {
                    return Err(Error::conflict(format!(
                        "cluster {:?} is {}, not applied",
                        cluster.name, cluster.status
                    )));
                }
                actor.may_act_on(cluster)?;
                cluster.expires_at = Some(lease_end(Utc::now(), ttl)?);
                Ok(())
            })
            .await?;
        info!(cluster_id, expires_at = ?cluster.expires_at, "lease renewed");
        Ok(cluster)
    }

    /// The lease length of an apply or renewal asking for `asked`: checked against
    /// [`limits::TTL_MAX_SECONDS`] and the pool's maximum, the pool's default when
    /// `None`.
    fn lease_ttl(&self, asked: Option<Duration>) -> Result<Option<Duration>> {
        if let Some(ttl) = asked {
            limits::check_ttl("ttl_seconds", ttl)?;
        }
        let ttl = asked.or(self.config().default_ttl);
        match (ttl, self.config().max_ttl) {
            (Some(ttl), Some(max)) if ttl > max => Err(Error::invalid(
                "ttl_seconds",
                format!("{} is above the maximum of {}", ttl.as_secs(), max.as_secs()),
            )),
            (None, Some(max)) => Ok(Some(max)),
            _ => Ok(ttl),
        }
    }

    /// The blueprints and hosts a claim for `req` may take from, and the catalog
    /// holding the blueprints' quotas; the blueprints are never empty.
    async fn claim_scope(
        &self,
        req: &ApplyRequest,
    ) -> Result<(Vec<String>, Vec<String>, std::sync::Arc<super::catalog::Catalog>)> {
        let mut catalog = self.catalog().await?;
        if let Some(name) = &req.blueprint {
            if !catalog.has_blueprint(name) {
                // Made by another server since the cache was filled?
                catalog = self.reload_catalog().await?;
            }
            let labels = catalog
                .labels_of(name)
                .ok_or_else(|| Error::not_found("blueprint", name))?;
            if !req.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                return Err(Error::PoolExhausted {
                    wanted: describe_wanted(req.blueprint.as_deref(), &req.labels),
                });
            }
            let hosts = catalog.schedulable_hosts.clone();
            return Ok((vec![name.clone()], hosts, catalog));
        }
        let names: Vec<String> = catalog
            .blueprints
            .iter()
            .filter(|(_, labels)| req.labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .map(|(name, _)| name.clone())
            .collect();
        if names.is_empty() {
            return Err(Error::not_found(
                "blueprint with labels",
                limits::quoted(&format!("{:?}", req.labels)),
            ));
        }
        let hosts = catalog.schedulable_hosts.clone();
        Ok((names, hosts, catalog))
    }

    /// Gives clusters back. Answers at once with the released ids; destroying and
    /// recreating each cluster (same id, name and host) runs in the background.
    ///
    /// An unknown cluster is [`Error::NotFound`], one that is not applied
    /// [`Error::Conflict`], one applied to another user than an [`Actor::User`]
    /// [`Error::Forbidden`]; a user holding nothing releases nothing.
    #[instrument(skip(self))]
    pub async fn release(&self, target: ReleaseTarget, actor: Actor<'_>) -> Result<Vec<String>> {
        let held = match target {
            ReleaseTarget::Cluster(id) => {
                let cluster = self.cluster(&id).await?;
                if !cluster.is_applied() {
                    return Err(Error::conflict(format!(
                        "cluster {:?} is {}, not applied",
                        cluster.name, cluster.status
                    )));
                }
                actor.may_act_on(&cluster)?;
                vec![cluster]
            }
            ReleaseTarget::User(user_id) => {
                limits::check_user_id("user_id", &user_id)?;
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
            if let Some(cluster) = self.release_one(&cluster, ReleaseReason::Release).await? {
                released.push(cluster.id.clone());
                self.spawn_recycle(cluster);
            }
        }
        Ok(released)
    }

    /// Releases `held` (an applied cluster as read) in one atomic store call and
    /// tells the subscribers why. Returns the released cluster, or `None` when
    /// another release won.
    pub(super) async fn release_one(&self, held: &Cluster, reason: ReleaseReason) -> Result<Option<Cluster>> {
        let released = self.store().release_cluster(&held.id, Utc::now(), reason).await?;
        if let Some(cluster) = &released {
            info!(cluster_id = %cluster.id, %reason, "cluster released");
            metrics::release(reason);
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
        let counts = self.store().count_clusters().await?;
        let backoffs = self.creation_backoffs();
        let count = |keep: &dyn Fn(&ClusterCount) -> bool| {
            let mut by_status = BTreeMap::new();
            for c in counts.iter().filter(|c| keep(c)) {
                *by_status.entry(c.status).or_insert(0) += c.count;
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
                .map(|b| {
                    let clusters = count(&|c| c.blueprint == b.name);
                    let applied = clusters.get(&ClusterStatus::Applied).copied().unwrap_or(0);
                    BlueprintStats {
                        name: b.name.clone(),
                        backoff: backoffs.get(&b.name).cloned(),
                        ready_target: b.buffer_at(Utc::now()).target(applied),
                        clusters,
                    }
                })
                .collect(),
            waiting: self.waiting() as u64,
        })
    }

    /// Lease history, newest first; only `user_id`'s if given.
    pub async fn leases(&self, user_id: Option<&str>, page: Page) -> Result<Listing<LeaseRecord>> {
        self.store().list_leases(user_id, page).await
    }

    /// Applies and releases per `bucket` since `since`, in time order; buckets with
    /// neither are left out.
    pub async fn lease_activity(&self, since: DateTime<Utc>, bucket: Duration) -> Result<Vec<LeaseActivity>> {
        let width = chrono::Duration::from_std(bucket)
            .ok()
            .filter(|w| *w >= chrono::Duration::seconds(1))
            .ok_or_else(|| Error::invalid("bucket", "must be at least one second"))?;
        self.store().lease_activity(since, width).await
    }
}

/// When a lease of `ttl` from `now` ends; a length past what time can hold is
/// [`Error::Invalid`], never an overflow.
fn lease_end(now: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .ok_or_else(|| Error::invalid("ttl_seconds", format!("{} is too large", ttl.as_secs())))
}

impl ApplyRequest {
    /// Checks every field against [`limits`]; nothing is claimed on a bad request.
    pub fn validate(&self) -> Result<()> {
        limits::check_user_id("user_id", &self.user_id)?;
        if let Some(name) = &self.blueprint {
            limits::check_name("blueprint", name)?;
        }
        limits::check_labels("labels", &self.labels)?;
        limits::check_text_map("metadata", &self.metadata, limits::METADATA_MAX)
    }
}

/// What an apply asked for, in words, cut short: errors never echo input in bulk.
fn describe_wanted(blueprint: Option<&str>, labels: &Labels) -> String {
    let quoted = || limits::quoted(&format!("{labels:?}"));
    match (blueprint, labels.is_empty()) {
        (Some(name), true) => format!("blueprint {name:?}"),
        (Some(name), false) => format!("blueprint {name:?} with labels {}", quoted()),
        (None, true) => "any blueprint".to_owned(),
        (None, false) => format!("labels {}", quoted()),
    }
}

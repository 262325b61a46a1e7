//! The storage trait: where hosts, blueprints, clusters, leases and operations live.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::model::{
    Blueprint, Claim, ClaimOutcome, Cluster, ClusterCount, ClusterFilter, Host, LeaseActivity, LeaseRecord,
    Listing, Operation, OperationFilter, Page, ReleaseReason,
};

/// Persistent state of the pool. Only primitive operations; the rules live in
/// [`Pool`](crate::Pool).
///
/// Several server processes may share one store: every change of a host or a cluster
/// is conditional on the version that was read, [`Store::claim_cluster`] and
/// [`Store::release_cluster`] are atomic, and [`Store::insert_cluster`] never puts a
/// host above its capacity. Each `# Behavior` line is asserted by a case of
/// `poolcore::conformance::store` (feature `conformance`).
#[async_trait]
pub trait Store: Debug + Send + Sync + 'static {
    /// Adds a host, with the version it carries.
    ///
    /// # Behavior
    /// - A host with the same name or id exists: [`Error::Conflict`](crate::Error::Conflict).
    async fn insert_host(&self, host: &Host) -> Result<()>;

    /// The host with `id`, or `None`.
    async fn get_host(&self, id: &str) -> Result<Option<Host>>;

    /// Hosts ordered by name, one page of them, and the total.
    async fn list_hosts(&self, page: Page) -> Result<Listing<Host>>;

    /// Writes `host` if the stored one still has `host.version`; returns the stored
    /// host, its version bumped by one.
    ///
    /// # Behavior
    /// - The stored version differs: [`Error::Stale`](crate::Error::Stale), nothing written.
    /// - Unknown id: [`Error::NotFound`](crate::Error::NotFound).
    /// - Renaming to a taken name: [`Error::Conflict`](crate::Error::Conflict).
    async fn update_host(&self, host: &Host) -> Result<Host>;

    /// Removes a host; returns whether it existed.
    async fn delete_host(&self, id: &str) -> Result<bool>;

    /// Adds a blueprint.
    ///
    /// # Behavior
    /// - The name is taken: [`Error::Conflict`](crate::Error::Conflict).
    async fn insert_blueprint(&self, blueprint: &Blueprint) -> Result<()>;

    /// The blueprint called `name`, or `None`.
    async fn get_blueprint(&self, name: &str) -> Result<Option<Blueprint>>;

    /// Blueprints ordered by name, one page of them, and the total.
    async fn list_blueprints(&self, page: Page) -> Result<Listing<Blueprint>>;

    /// Writes the policies of `blueprint` ([`Blueprint::max_applied`],
    /// [`Blueprint::buffer`], [`Blueprint::buffer_windows`], [`Blueprint::placement`],
    /// [`Blueprint::release_mode`] and [`Blueprint::rollout`]) over those of the stored
    /// blueprint of its name, leaving the rest. Returns whether it existed.
    async fn update_blueprint_policies(&self, blueprint: &Blueprint) -> Result<bool>;

    /// Writes the version of `blueprint` ([`Blueprint::nodes`], [`Blueprint::api_port`],
    /// [`Blueprint::version`], [`Blueprint::version_created_at`] and
    /// [`Blueprint::earlier_versions`]) over the stored blueprint of its name if that
    /// still has version `previous`, leaving the rest. Returns whether it existed.
    ///
    /// # Behavior
    /// - The stored version is not `previous`: [`Error::Stale`](crate::Error::Stale),
    ///   nothing written.
    async fn update_blueprint_version(&self, blueprint: &Blueprint, previous: u32) -> Result<bool>;

    /// Removes a blueprint; returns whether it existed.
    async fn delete_blueprint(&self, name: &str) -> Result<bool>;

    /// Adds a cluster, with the version it carries, if its host holds fewer than
    /// `capacity` clusters. Returns `false`, writing nothing, when the host is full.
    ///
    /// # Behavior
    /// - The name or id is taken: [`Error::Conflict`](crate::Error::Conflict).
    /// - Any number of concurrent inserts, from any number of processes, never leave a
    ///   host with more than `capacity` clusters.
    async fn insert_cluster(&self, cluster: &Cluster, capacity: u32) -> Result<bool>;

    /// The cluster with `id`, or `None`.
    async fn get_cluster(&self, id: &str) -> Result<Option<Cluster>>;

    /// Clusters matching `filter`, ordered by name, one page of them, and the total.
    async fn list_clusters(&self, filter: &ClusterFilter, page: Page) -> Result<Listing<Cluster>>;

    /// How many clusters there are per host, blueprint, blueprint version and status
    /// (groups with none are left out).
    async fn count_clusters(&self) -> Result<Vec<ClusterCount>>;

    /// Writes `cluster` if the stored one still has `cluster.version`; returns the
    /// stored cluster, its version bumped by one.
    ///
    /// # Behavior
    /// - The stored version differs: [`Error::Stale`](crate::Error::Stale), nothing written.
    /// - Unknown id: [`Error::NotFound`](crate::Error::NotFound).
    async fn update_cluster(&self, cluster: &Cluster) -> Result<Cluster>;

    /// Removes the cluster if the stored one still has `version`; returns whether it
    /// was removed. A missing cluster returns `false`.
    ///
    /// # Behavior
    /// - The stored version differs: [`Error::Stale`](crate::Error::Stale).
    async fn delete_cluster(&self, id: &str, version: u64) -> Result<bool>;

    /// Hands a cluster to `claim.user_id` in one atomic step: see [`ClaimOutcome`] for
    /// what a claim without `allow_multiple` returns first. A new claim picks one
    /// `ready`, healthy (`ok`) cluster of one of `claim.blueprints` on one of
    /// `claim.hosts`, applies it with [`Cluster::claim`] and opens the lease record
    /// `claim.lease_id` ([`LeaseRecord::opened`]).
    ///
    /// # Behavior
    /// - Two claims, from any number of processes, never take the same cluster.
    /// - A cluster that is not `ready`, not healthy, of another blueprint or on another
    ///   host is never taken.
    /// - Without `allow_multiple`: a cluster the user holds of one of the blueprints is
    ///   returned as `Held`, on any host; a single-applied cluster of another blueprint
    ///   as `HoldsOther`; of concurrent such claims by one user, at most one takes a
    ///   cluster.
    async fn claim_cluster(&self, claim: &Claim) -> Result<ClaimOutcome>;

    /// Atomically moves cluster `id` from `applied` to `releasing` ([`Cluster::release`])
    /// and closes its lease record at `now` for `reason`. Returns the cluster as written,
    /// or `None` when it was not `applied`.
    ///
    /// # Behavior
    /// - Of two concurrent releases of one cluster, exactly one returns it.
    /// - The lease record is closed with `now` and `reason`.
    async fn release_cluster(
        &self,
        id: &str,
        now: DateTime<Utc>,
        reason: ReleaseReason,
    ) -> Result<Option<Cluster>>;

    /// The lease record with `id`, or `None`.
    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>>;

    /// Lease records, newest apply first, one page of them, and the total; only the
    /// given user's if `user_id` is set.
    async fn list_leases(&self, user_id: Option<&str>, page: Page) -> Result<Listing<LeaseRecord>>;

    /// Applies and releases per time bucket: bucket `i` counts the leases applied, and
    /// those released, in `[since + i·bucket, since + (i+1)·bucket)`. Buckets with
    /// neither are left out; the rest come in time order. The stores of this workspace
    /// answer buckets of whole minutes from counts per minute kept as leases are
    /// written ([`MinuteSummary`](crate::MinuteSummary)), so that a dashboard's history
    /// does not read every lease of the period.
    ///
    /// # Behavior
    /// - Leases applied or released before `since` do not count in it.
    /// - A `since` within a minute splits the minutes at the bucket boundaries: what
    ///   falls before a boundary counts in the bucket before.
    async fn lease_activity(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
    ) -> Result<Vec<LeaseActivity>>;

    /// Adds or replaces an operation.
    async fn put_operation(&self, op: &Operation) -> Result<()>;

    /// The operation with `id`, or `None`.
    async fn get_operation(&self, id: &str) -> Result<Option<Operation>>;

    /// Operations matching `filter`, newest first, one page of them, and the total.
    async fn list_operations(&self, filter: &OperationFilter, page: Page) -> Result<Listing<Operation>>;

    /// Takes the lock `name` for `holder` until `until`, or extends it. The lock is
    /// taken when it is free, already held by `holder`, or held by another holder only
    /// until before `now` (that holder is presumed dead). Returns whether `holder`
    /// holds the lock now.
    ///
    /// Several servers sharing one store use it so that only one of them runs the
    /// reconciler.
    ///
    /// # Behavior
    /// - Of several holders asking for a free or expired lock at once, exactly one gets it.
    /// - A lock held by another holder until after `now` is not taken.
    async fn acquire_lock(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;

    /// Frees the lock `name` if `holder` holds it; otherwise does nothing.
    async fn release_lock(&self, name: &str, holder: &str) -> Result<()>;
}

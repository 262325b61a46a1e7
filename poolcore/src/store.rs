//! The storage trait: where hosts, blueprints, clusters, leases and operations live.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::model::{Blueprint, Claim, Cluster, ClusterFilter, Host, LeaseRecord, Listing, Operation, Page};

/// Persistent state of the pool. Only primitive operations; the rules live in
/// [`Pool`](crate::Pool).
///
/// Several server processes may share one store: every change of a cluster is
/// conditional on the version that was read, and [`Store::claim_cluster`] is atomic.
#[async_trait]
pub trait Store: Debug + Send + Sync + 'static {
    /// Adds a host.
    ///
    /// # Behavior
    /// - A host with the same name or id exists: [`Error::Conflict`](crate::Error::Conflict).
    async fn insert_host(&self, host: &Host) -> Result<()>;

    /// The host with `id`, or `None`.
    async fn get_host(&self, id: &str) -> Result<Option<Host>>;

    /// Every host, ordered by name.
    async fn list_hosts(&self) -> Result<Vec<Host>>;

    /// Replaces the host with `host.id`.
    ///
    /// # Behavior
    /// - Unknown id: [`Error::NotFound`](crate::Error::NotFound).
    /// - Renaming to a taken name: [`Error::Conflict`](crate::Error::Conflict).
    async fn update_host(&self, host: &Host) -> Result<()>;

    /// Removes a host; returns whether it existed.
    async fn delete_host(&self, id: &str) -> Result<bool>;

    /// Adds a blueprint.
    ///
    /// # Behavior
    /// - The name is taken: [`Error::Conflict`](crate::Error::Conflict).
    async fn insert_blueprint(&self, blueprint: &Blueprint) -> Result<()>;

    /// The blueprint called `name`, or `None`.
    async fn get_blueprint(&self, name: &str) -> Result<Option<Blueprint>>;

    /// Every blueprint, ordered by name.
    async fn list_blueprints(&self) -> Result<Vec<Blueprint>>;

    /// Removes a blueprint; returns whether it existed.
    async fn delete_blueprint(&self, name: &str) -> Result<bool>;

    /// Adds a cluster, with the version it carries.
    ///
    /// # Behavior
    /// - The name or id is taken: [`Error::Conflict`](crate::Error::Conflict).
    async fn insert_cluster(&self, cluster: &Cluster) -> Result<()>;

    /// The cluster with `id`, or `None`.
    async fn get_cluster(&self, id: &str) -> Result<Option<Cluster>>;

    /// Clusters matching `filter`, ordered by name, one page of them, and the total.
    async fn list_clusters(&self, filter: &ClusterFilter, page: Page) -> Result<Listing<Cluster>>;

    /// Writes `cluster` if the stored one still has `cluster.version`; returns the
    /// stored cluster, its version bumped by one.
    ///
    /// # Behavior
    /// - The stored version differs: [`Error::Conflict`](crate::Error::Conflict), nothing written.
    /// - Unknown id: [`Error::NotFound`](crate::Error::NotFound).
    async fn update_cluster(&self, cluster: &Cluster) -> Result<Cluster>;

    /// Removes the cluster if the stored one still has `version`; returns whether it
    /// was removed. A missing cluster returns `false`.
    ///
    /// # Behavior
    /// - The stored version differs: [`Error::Conflict`](crate::Error::Conflict).
    async fn delete_cluster(&self, id: &str, version: u64) -> Result<bool>;

    /// Atomically picks one `ready`, healthy (`ok`) cluster of one of
    /// `claim.blueprints` on one of `claim.hosts`, marks it `applied` to
    /// `claim.user_id` with the lease fields, bumps its version, and opens the lease
    /// record `claim.lease_id`. Returns the claimed cluster, or `None`.
    ///
    /// # Behavior
    /// - Two claims, from any number of processes, never return the same cluster.
    /// - A cluster that is not `ready`, not healthy, of another blueprint or on another
    ///   host is never returned.
    async fn claim_cluster(&self, claim: &Claim) -> Result<Option<Cluster>>;

    /// Atomically moves cluster `id` from `applied` to `releasing`, clears its owner and
    /// lease fields, bumps its version and closes its lease record at `now`. Returns
    /// the cluster as written, or `None` when it was not `applied`.
    ///
    /// # Behavior
    /// - Of two concurrent releases of one cluster, exactly one returns it.
    async fn release_cluster(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Cluster>>;

    /// The lease record with `id`, or `None`.
    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>>;

    /// Lease records, newest apply first, one page of them, and the total; only the
    /// given user's if `user_id` is set.
    async fn list_leases(&self, user_id: Option<&str>, page: Page) -> Result<Listing<LeaseRecord>>;

    /// Adds or replaces an operation.
    async fn put_operation(&self, op: &Operation) -> Result<()>;

    /// The operation with `id`, or `None`.
    async fn get_operation(&self, id: &str) -> Result<Option<Operation>>;

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

//! Clusters, applies, releases and lease renewals.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use poolcore::limits;

use super::rules::{Bounded, Labels, Map, Metadata, Name, Text, UserId};
use crate::api::error::ApiError;

/// Where a cluster is in its life: `creating → ready → applied → releasing →
/// creating → …`, or `stopped`, `failed`, `deleting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "ClusterStatus",
    rename_all = "snake_case",
    remote = "poolcore::ClusterStatus"
)]
pub enum ClusterStatus {
    /// Its network and containers are being made.
    Creating,
    /// Running and free: the only status apply hands out.
    Ready,
    /// Handed to a user.
    Applied,
    /// Given back; being destroyed before it is made anew.
    Releasing,
    /// Stopped by an operator.
    Stopped,
    /// Could not be made; `status_reason` says why.
    Failed,
    /// Being removed for good.
    Deleting,
}

/// A cluster's health, from the engine's inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "Health", rename_all = "snake_case", remote = "poolcore::Health")]
pub enum Health {
    /// Every node runs.
    Ok,
    /// A node is missing, exited, stopped or unhealthy; `health_reason` says which.
    Failing,
    /// Not inspected yet.
    Unknown,
}

/// What a listing of clusters is ordered by; ties are broken by name, then id, and
/// an unset field (no user, never applied) comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "ClusterSortKey",
    rename_all = "snake_case",
    remote = "poolcore::ClusterSortKey"
)]
pub enum ClusterSortKey {
    /// The cluster's name (the default).
    Name,
    /// The blueprint's name.
    Blueprint,
    /// The host's id.
    #[oai(rename = "host_id")]
    Host,
    /// The status's name.
    Status,
    /// The health's name.
    Health,
    /// The user holding it.
    #[oai(rename = "user_id")]
    User,
    /// When it was applied.
    AppliedAt,
    /// When its lease ends.
    ExpiresAt,
    /// When it was made.
    CreatedAt,
}

/// The direction of a sorted listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "SortOrder", rename_all = "snake_case")]
pub enum SortOrder {
    /// Smallest first (the default).
    Asc,
    /// Largest first; the whole order is reversed, ties included.
    Desc,
}

/// One cluster: one instance of a blueprint on a host. `status` is a
/// `ClusterStatus`, `health` a `Health`, `metadata` the `Metadata` given at apply
/// (`{}` when free).
#[derive(Debug, Clone, Object)]
#[oai(rename = "Cluster", skip_serializing_if_is_none)]
pub struct Cluster {
    /// Cluster id; kept across release and re-creation.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Blueprint it was made from.
    pub blueprint: String,
    /// The version of the blueprint it runs.
    pub blueprint_version: u32,
    /// Host it runs on.
    pub host_id: String,
    // Where it is in its life.
    pub status: ClusterStatus,
    /// Why it is `failed`.
    pub status_reason: Option<String>,
    // Health.
    pub health: Health,
    /// Why it is `failing`.
    pub health_reason: Option<String>,
    /// Who holds it, while `applied`.
    pub user_id: Option<String>,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// When its lease ends, if it has one.
    pub expires_at: Option<DateTime<Utc>>,
    // Metadata given at apply.
    pub metadata: Metadata,
    /// Nodes stopped on purpose; they stay stopped until started.
    pub stopped_nodes: Vec<String>,
    /// Node → port name → URL, e.g. `{"vp0": {"rest": "http://10.0.0.1:32768"}}`.
    pub service_urls: BTreeMap<String, BTreeMap<String, String>>,
    /// Node → container (or Swarm service) id on the engine.
    pub containers: BTreeMap<String, String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Bumped by every change.
    #[oai(validator(minimum(value = "0")))]
    pub version: u64,
}

impl From<poolcore::Cluster> for Cluster {
    fn from(c: poolcore::Cluster) -> Self {
        let service_urls = c.service_urls();
        let containers = c
            .deployment
            .nodes
            .iter()
            .map(|(n, d)| (n.clone(), d.id.clone()))
            .collect();
        Cluster {
            id: c.id,
            name: c.name,
            blueprint: c.blueprint,
            blueprint_version: c.blueprint_version,
            host_id: c.host_id,
            status: c.status.into(),
            status_reason: c.status_reason,
            health: c.health.into(),
            health_reason: c.health_reason,
            user_id: c.user_id,
            applied_at: c.applied_at,
            expires_at: c.expires_at,
            metadata: Map::from_pool(c.metadata),
            stopped_nodes: c.stopped_nodes.into_iter().collect(),
            service_urls,
            containers,
            created_at: c.created_at,
            updated_at: c.updated_at,
            version: c.version,
        }
    }
}

super::page_of!(
    /// A page of clusters, by name.
    ClusterPage("ClusterPage") of Cluster
);

/// A cluster to create on a chosen host.
#[derive(Debug, Clone, Object)]
#[oai(rename = "NewCluster", deny_unknown_fields)]
pub struct NewCluster {
    /// Host id.
    pub host_id: String,
    /// Blueprint name.
    pub blueprint: Name,
    /// Unique name; `<blueprint>-<8 hex>` when missing.
    pub name: Option<Name>,
}

/// The node to start, stop or restart (the whole cluster when missing), and, with the
/// user token, the user the cluster is applied to.
#[derive(Debug, Clone, Default, Object)]
#[oai(rename = "NodeTarget", deny_unknown_fields)]
pub struct NodeTarget {
    /// Node name.
    pub node: Option<Name>,
    /// The user the cluster is applied to; required with the user token.
    pub user_id: Option<UserId>,
}

/// Lease length in seconds.
pub type Ttl = Bounded<1, { limits::TTL_MAX_SECONDS }>;

/// Seconds an apply may wait for a cluster.
pub type WaitSeconds = Bounded<0, { limits::APPLY_WAIT_MAX_SECONDS }>;

/// A lease renewal.
#[derive(Debug, Clone, Default, Object)]
#[oai(rename = "Renewal", deny_unknown_fields)]
pub struct Renewal {
    /// New lease length in seconds, from now; the server's default when missing. At
    /// most the server's maximum.
    pub ttl_seconds: Option<Ttl>,
    /// The user the cluster is applied to; required with the user token.
    pub user_id: Option<UserId>,
}

impl Renewal {
    /// The lease length asked for.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl_seconds.map(|t| Duration::from_secs(t.get()))
    }
}

fn no() -> bool {
    false
}

/// An apply: a cluster of `blueprint`, or of any blueprint carrying `labels` (a
/// `Labels` filter); `metadata` (a `Metadata`) is kept with the cluster and the lease.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Apply", deny_unknown_fields)]
pub struct Apply {
    /// Who asks.
    pub user_id: UserId,
    /// Wanted blueprint; any blueprint matching `labels` when missing.
    pub blueprint: Option<Name>,
    // Labels the blueprint must carry.
    pub labels: Option<Labels>,
    /// Hand out another cluster even if the user holds a matching one (default false).
    #[oai(default = "no")]
    pub allow_multiple: bool,
    // Kept with the cluster and the lease.
    pub metadata: Option<Metadata>,
    /// Lease length in seconds; the server's default when missing. At most the
    /// server's maximum.
    pub ttl_seconds: Option<Ttl>,
    /// When nothing matching is ready, wait up to this many seconds, in line with the
    /// other applies waiting for the same (first come, first served), instead of
    /// answering 503 at once; 0 or missing answers at once. At most the server's
    /// `max_apply_wait_seconds` (400 above it).
    pub wait_seconds: Option<WaitSeconds>,
}

impl From<Apply> for poolcore::ApplyRequest {
    fn from(d: Apply) -> Self {
        poolcore::ApplyRequest {
            user_id: d.user_id.into_inner(),
            blueprint: d.blueprint.map(Text::into_inner),
            labels: d.labels.map(Map::into_inner).unwrap_or_default(),
            allow_multiple: d.allow_multiple,
            metadata: d.metadata.map(Map::into_inner).unwrap_or_default(),
            ttl: d.ttl_seconds.map(|t| Duration::from_secs(t.get())),
            wait: d.wait_seconds.map(|w| Duration::from_secs(w.get())),
        }
    }
}

/// A release: one cluster (`cluster_id`, with the `user_id` it is applied to when the
/// user token is used), or every cluster of a user (`user_id` alone). At least one of
/// the two.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Release", deny_unknown_fields)]
pub struct Release {
    /// Release this cluster.
    pub cluster_id: Option<String>,
    /// The cluster's user; alone, release every cluster of this user.
    pub user_id: Option<UserId>,
}

impl Release {
    /// What to release, and the user it is released for: `user_id`, which the user
    /// token must name.
    pub fn target(self) -> Result<(poolcore::ReleaseTarget, Option<String>), ApiError> {
        let user = self.user_id.map(Text::into_inner);
        match (self.cluster_id, user) {
            (Some(id), owner) => Ok((poolcore::ReleaseTarget::Cluster(id), owner)),
            (None, Some(user)) => Ok((poolcore::ReleaseTarget::User(user.clone()), Some(user))),
            (None, None) => Err(ApiError::invalid("give cluster_id, user_id, or both")),
        }
    }
}

/// Clusters released.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Released")]
pub struct Released {
    /// Their ids.
    pub released: Vec<String>,
}

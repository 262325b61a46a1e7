//! Pool-wide reads: operations, leases, stats and health.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};

use super::hosts::HostStatus;
use super::rules::{Map, Metadata};

/// What a long-running operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "OperationKind",
    rename_all = "snake_case",
    remote = "poolcore::OperationKind"
)]
pub enum OperationKind {
    /// Fill a host up to its capacity.
    Fill,
    /// Remove a host's free clusters.
    Clean,
    /// Remove everything on a host and fill it again.
    Reset,
}

/// Where a long-running operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "OperationStatus",
    rename_all = "snake_case",
    remote = "poolcore::OperationStatus"
)]
pub enum OperationStatus {
    /// Still going.
    Running,
    /// Ended without error.
    Succeeded,
    /// Ended with an error; see `error`.
    Failed,
    /// Its server stopped before it ended; the reconciler brings the host where it
    /// should be.
    Interrupted,
}

/// A long-running operation (fill, clean, reset) and its progress: `kind` is an
/// `OperationKind`, `status` an `OperationStatus`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Operation", skip_serializing_if_is_none)]
pub struct Operation {
    /// Operation id.
    pub id: String,
    // What it does.
    pub kind: OperationKind,
    /// Host it works on.
    pub host_id: String,
    // Where it is.
    pub status: OperationStatus,
    /// Steps done.
    #[oai(validator(minimum(value = "0")))]
    pub done: u32,
    /// Steps in all.
    #[oai(validator(minimum(value = "0")))]
    pub total: u32,
    /// First error.
    pub error: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Last progress, or the last sign of life of the server running it.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<poolcore::Operation> for Operation {
    fn from(o: poolcore::Operation) -> Self {
        Operation {
            id: o.id,
            kind: o.kind.into(),
            host_id: o.host_id,
            status: o.status.into(),
            done: o.done,
            total: o.total,
            error: o.error,
            created_at: o.created_at,
            updated_at: o.updated_at,
            finished_at: o.finished_at,
        }
    }
}

super::page_of!(
    /// A page of operations, newest first.
    OperationPage("OperationPage") of Operation
);

/// A started operation.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OperationRef")]
pub struct OperationRef {
    /// Follow it with `get_operation` (`GET /operations/{operation_id}`).
    pub operation_id: String,
}

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "ReleaseReason",
    rename_all = "snake_case",
    remote = "poolcore::ReleaseReason"
)]
pub enum ReleaseReason {
    /// The user (or an operator) gave the cluster back.
    Release,
    /// The lease's time ran out.
    Expired,
    /// The cluster was deleted (with force) while it was applied.
    Deleted,
}

/// One apply → release. `metadata` is the `Metadata` given at apply;
/// `release_reason` a `ReleaseReason`, left out with `released_at` while it is held.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Lease", skip_serializing_if_is_none)]
pub struct Lease {
    /// Lease id.
    pub id: String,
    /// Cluster handed out.
    pub cluster_id: String,
    /// Its name then.
    pub cluster_name: String,
    /// Its blueprint.
    pub blueprint: String,
    /// Its host.
    pub host_id: String,
    /// Who held it.
    pub user_id: String,
    // Metadata given at apply.
    pub metadata: Metadata,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
    /// When it was released; missing while held.
    pub released_at: Option<DateTime<Utc>>,
    // Why it ended.
    pub release_reason: Option<ReleaseReason>,
    /// Seconds held (so far).
    #[oai(validator(minimum(value = "0")))]
    pub duration_seconds: i64,
}

impl From<poolcore::LeaseRecord> for Lease {
    fn from(l: poolcore::LeaseRecord) -> Self {
        let duration_seconds = l.duration(Utc::now()).num_seconds().max(0);
        Lease {
            id: l.id,
            cluster_id: l.cluster_id,
            cluster_name: l.cluster_name,
            blueprint: l.blueprint,
            host_id: l.host_id,
            user_id: l.user_id,
            metadata: Map::from_pool(l.metadata),
            applied_at: l.applied_at,
            released_at: l.released_at,
            release_reason: l.release_reason.map(Into::into),
            duration_seconds,
        }
    }
}

super::page_of!(
    /// A page of lease records, newest first.
    LeasePage("LeasePage") of Lease
);

/// Declares an object with one count per value of a closed set.
macro_rules! counts {
    ($(#[$doc:meta])* $name:ident($schema:literal) of $key:ty { $($field:ident: $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, Object)]
        #[oai(rename = $schema)]
        pub struct $name {
            $(
                #[doc = concat!("How many are `", stringify!($field), "`.")]
                #[oai(validator(minimum(value = "0")))]
                pub $field: u64,
            )+
        }

        impl From<BTreeMap<$key, u64>> for $name {
            fn from(counts: BTreeMap<$key, u64>) -> Self {
                $name { $($field: counts.get(&<$key>::$variant).copied().unwrap_or(0)),+ }
            }
        }
    };
}

counts!(
    /// Clusters by status; every status is there, 0 when none.
    ClusterCounts("ClusterCounts") of poolcore::ClusterStatus {
        creating: Creating, ready: Ready, applied: Applied, releasing: Releasing,
        stopped: Stopped, failed: Failed, deleting: Deleting,
    }
);

counts!(
    /// Hosts by status; every status is there, 0 when none.
    HostCounts("HostCounts") of poolcore::HostStatus { active: Active, inactive: Inactive }
);

/// Cluster counts of one host: its `HostStatus` and `ClusterCounts`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "HostStats")]
pub struct HostStats {
    /// Host id.
    pub id: String,
    /// Host name.
    pub name: String,
    // Host status.
    pub status: HostStatus,
    /// Capacity.
    #[oai(validator(minimum(value = "0")))]
    pub capacity: u32,
    // Its clusters by status.
    pub clusters: ClusterCounts,
}

/// Cluster counts of one blueprint.
#[derive(Debug, Clone, Object)]
#[oai(rename = "BlueprintStats", skip_serializing_if_is_none)]
pub struct BlueprintStats {
    /// Blueprint name.
    pub name: String,
    // Its clusters by status.
    pub clusters: ClusterCounts,
    /// Free clusters its ready buffer wants now (from `min_ready`, `min_ready_percent`
    /// and `max_total`); missing when it has none.
    pub ready_target: Option<u64>,
    // Set while its creations back off on this server.
    pub backoff: Option<CreationBackoff>,
}

/// A blueprint whose creations failed `failures` times in a row: this server makes
/// none of it until `until`, then tries one; each further failure doubles the wait.
#[derive(Debug, Clone, Object)]
#[oai(rename = "CreationBackoff")]
pub struct CreationBackoff {
    /// Failed creations in a row.
    pub failures: u32,
    /// When a creation is tried again.
    pub until: DateTime<Utc>,
    /// Why the last one failed.
    pub reason: String,
}

impl From<poolcore::Backoff> for CreationBackoff {
    fn from(b: poolcore::Backoff) -> Self {
        CreationBackoff {
            failures: b.failures,
            until: b.until,
            reason: b.reason,
        }
    }
}

/// What the pool holds: `clusters` by status (`ClusterCounts`), `hosts_by_status`
/// (`HostCounts`), and the counts per host and per blueprint.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Stats")]
pub struct Stats {
    // Clusters by status.
    pub clusters: ClusterCounts,
    // Hosts by status.
    pub hosts_by_status: HostCounts,
    /// Per host, by name.
    pub hosts: Vec<HostStats>,
    /// Per blueprint, by name.
    pub blueprints: Vec<BlueprintStats>,
    /// Applies waiting for a cluster (`wait_seconds`) on this server now.
    pub waiting: u64,
}

impl From<poolcore::Stats> for Stats {
    fn from(s: poolcore::Stats) -> Self {
        Stats {
            clusters: s.clusters.into(),
            hosts_by_status: s.hosts_by_status.into(),
            hosts: s
                .hosts
                .into_iter()
                .map(|h| HostStats {
                    id: h.id,
                    name: h.name,
                    status: h.status.into(),
                    capacity: h.capacity,
                    clusters: h.clusters.into(),
                })
                .collect(),
            blueprints: s
                .blueprints
                .into_iter()
                .map(|b| BlueprintStats {
                    name: b.name,
                    clusters: b.clusters.into(),
                    ready_target: b.ready_target,
                    backoff: b.backoff.map(Into::into),
                })
                .collect(),
            waiting: s.waiting,
        }
    }
}

/// Applies and releases in one time bucket.
#[derive(Debug, Clone, Object)]
#[oai(rename = "LeaseActivity")]
pub struct LeaseActivity {
    /// Start of the bucket.
    pub start: DateTime<Utc>,
    /// Leases applied in it.
    #[oai(validator(minimum(value = "0")))]
    pub applied: u64,
    /// Leases released in it.
    #[oai(validator(minimum(value = "0")))]
    pub released: u64,
}

impl From<poolcore::LeaseActivity> for LeaseActivity {
    fn from(a: poolcore::LeaseActivity) -> Self {
        LeaseActivity {
            start: a.start,
            applied: a.applied,
            released: a.released,
        }
    }
}

/// Applies and releases per time bucket, for charts.
#[derive(Debug, Clone, Object)]
#[oai(rename = "StatsHistory")]
pub struct StatsHistory {
    /// Start of the first bucket: the `since` asked for, moved forward when it was
    /// more buckets back than the most one answer holds.
    pub since: DateTime<Utc>,
    /// Width of each bucket, in seconds.
    #[oai(validator(minimum(value = "1")))]
    pub bucket_seconds: u64,
    /// The buckets that saw an apply or a release, in time order; the others are left
    /// out.
    pub buckets: Vec<LeaseActivity>,
}

/// Whether the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "ServerStatus", rename_all = "snake_case")]
pub enum ServerStatus {
    /// It answers.
    Ok,
}

/// Server health: `status` is a `ServerStatus`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ServerHealth")]
pub struct ServerHealth {
    // Always ok when it answers.
    pub status: ServerStatus,
    /// Server version.
    pub version: String,
}

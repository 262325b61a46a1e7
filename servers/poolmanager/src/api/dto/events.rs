//! The events of `GET /events`.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};

use super::clusters::Cluster;
use super::hosts::Host;
use super::pool::{Operation, ReleaseReason};

/// What an event tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "EventKind", rename_all = "snake_case")]
pub enum EventKind {
    /// A host was added or changed (`host`).
    Host,
    /// A host was removed (`id`).
    HostDeleted,
    /// A cluster changed: status, health or endpoints (`cluster`).
    Cluster,
    /// A cluster was removed for good (`id`).
    ClusterDeleted,
    /// A cluster was handed to a user (`cluster`).
    Applied,
    /// A cluster was given back, or its lease expired (`cluster`, `user_id`, `reason`).
    Released,
    /// An operation started, progressed or ended (`operation`).
    Operation,
    /// This subscriber fell behind and missed `missed` events; read the state again.
    Lagged,
}

/// One change of the pool's state, the `data` of one Server-Sent Event of
/// `stream_events`. `kind` (an `EventKind`, repeated in the SSE `event:` field) says
/// which other fields are there: `host` (a `Host`) for `host`; `id` for `host_deleted`
/// and `cluster_deleted`; `cluster` (a `Cluster`) for `cluster`, `applied` and
/// `released`, with `user_id` and `reason` (a `ReleaseReason`) for `released`;
/// `operation` (an `Operation`) for `operation`; `missed` for `lagged`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Event", skip_serializing_if_is_none)]
pub struct Event {
    // What it tells.
    pub kind: EventKind,
    /// When the server sent it.
    pub at: DateTime<Utc>,
    // The host, for `host`.
    pub host: Option<Host>,
    // The cluster, for `cluster`, `applied` and `released`.
    pub cluster: Option<Cluster>,
    // The operation, for `operation`.
    pub operation: Option<Operation>,
    /// Id of what was removed, for `host_deleted` and `cluster_deleted`.
    pub id: Option<String>,
    /// Who held the cluster, for `released`.
    pub user_id: Option<String>,
    // Why it was released, for `released`.
    pub reason: Option<ReleaseReason>,
    /// Events missed, for `lagged`.
    #[oai(validator(minimum(value = "1")))]
    pub missed: Option<u64>,
}

impl Event {
    fn of_kind(kind: EventKind) -> Self {
        Event {
            kind,
            at: Utc::now(),
            host: None,
            cluster: None,
            operation: None,
            id: None,
            user_id: None,
            reason: None,
            missed: None,
        }
    }

    /// The event telling a subscriber it missed `missed` events.
    pub fn lagged(missed: u64) -> Self {
        Event {
            missed: Some(missed),
            ..Self::of_kind(EventKind::Lagged)
        }
    }

    /// The SSE `event:` name: the kind.
    pub fn name(&self) -> &'static str {
        match self.kind {
            EventKind::Host => "host",
            EventKind::HostDeleted => "host_deleted",
            EventKind::Cluster => "cluster",
            EventKind::ClusterDeleted => "cluster_deleted",
            EventKind::Applied => "applied",
            EventKind::Released => "released",
            EventKind::Operation => "operation",
            EventKind::Lagged => "lagged",
        }
    }
}

impl Event {
    /// The event for a change of the pool; `None` for a kind this server does not
    /// know yet.
    pub fn of(e: poolcore::Event) -> Option<Self> {
        use poolcore::Event as E;
        Some(match e {
            E::Host(host) => Event {
                host: Some(host.into()),
                ..Self::of_kind(EventKind::Host)
            },
            E::HostDeleted { id } => Event {
                id: Some(id),
                ..Self::of_kind(EventKind::HostDeleted)
            },
            E::ClusterDeleted { id } => Event {
                id: Some(id),
                ..Self::of_kind(EventKind::ClusterDeleted)
            },
            E::Cluster(cluster) => Event {
                cluster: Some(cluster.into()),
                ..Self::of_kind(EventKind::Cluster)
            },
            E::Applied(cluster) => Event {
                cluster: Some(cluster.into()),
                ..Self::of_kind(EventKind::Applied)
            },
            E::Released {
                cluster,
                user_id,
                reason,
            } => Event {
                cluster: Some(cluster.into()),
                user_id: Some(user_id),
                reason: Some(reason.into()),
                ..Self::of_kind(EventKind::Released)
            },
            E::Operation(op) => Event {
                operation: Some(op.into()),
                ..Self::of_kind(EventKind::Operation)
            },
            _ => return None,
        })
    }
}

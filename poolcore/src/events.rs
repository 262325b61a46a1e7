//! [`Event`]: every change of the pool's state, as it happens, for dashboards and
//! integrations.
//!
//! Subscribe with [`Pool::events`](crate::Pool::events). Events are delivered to the
//! subscribers of the process that made the change; a subscriber that falls more than
//! [`EVENT_BUFFER`] events behind misses the oldest ones and is told how many
//! (`RecvError::Lagged`), and can re-read the state from the store.

use crate::model::{Cluster, Host, Operation, ReleaseReason};

/// Events a subscriber may fall behind by before it misses some.
pub const EVENT_BUFFER: usize = 1024;

/// One change of the pool's state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A host was added or changed: its status (`active` / `inactive`), last error or
    /// settings.
    Host(Host),
    /// A host was removed.
    HostDeleted {
        /// Its id.
        id: String,
    },
    /// A cluster changed: its status, health or endpoints.
    Cluster(Cluster),
    /// A cluster was removed for good.
    ClusterDeleted {
        /// Its id.
        id: String,
    },
    /// A cluster was handed to a user.
    Applied(Cluster),
    /// A user gave a cluster back (or its lease expired); it is being recreated.
    Released {
        /// The cluster as released: `releasing`, no owner.
        cluster: Cluster,
        /// Who held it.
        user_id: String,
        /// Why the lease ended.
        reason: ReleaseReason,
    },
    /// An operation (fill, clean, reset) started, progressed or ended.
    Operation(Operation),
}

impl Event {
    /// The event's name, as used for the `event:` field of Server-Sent Events.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Host(_) => "host",
            Event::HostDeleted { .. } => "host_deleted",
            Event::Cluster(_) => "cluster",
            Event::ClusterDeleted { .. } => "cluster_deleted",
            Event::Applied(_) => "applied",
            Event::Released { .. } => "released",
            Event::Operation(_) => "operation",
        }
    }
}

//! The types an embedding program uses most, in one `use`:
//!
//! ```
//! use poolcore::prelude::*;
//!
//! let request = ApplyRequest { user_id: "alice".into(), ..Default::default() };
//! assert_eq!(request.user_id, "alice");
//! ```
//!
//! It holds the [`Pool`] and its builder and configuration, what its operations take
//! ([`NewHost`], [`NewBlueprint`], [`NodeSpec`], [`ApplyRequest`], [`ReleaseTarget`],
//! [`Actor`]) and give back ([`Cluster`], [`ClusterStatus`], [`Host`], [`Blueprint`]),
//! the two traits backends implement ([`HostDriver`] with its [`Connector`], and
//! [`Store`]), and [`Error`] with [`Result`].

pub use crate::driver::{Capability, Connector, HostDriver, NodeState, ObservedCluster};
pub use crate::error::{Error, Result};
pub use crate::memory::MemStore;
pub use crate::model::{
    Blueprint, Cluster, ClusterStatus, Deployment, EngineFacts, Health, Host, HostKind, HostStatus, NodeSpec,
    PortSpec,
};
pub use crate::pool::{
    Actor, ApplyRequest, NewBlueprint, NewHost, Pool, PoolBuilder, PoolConfig, ReconcileConfig,
    ReconcilerHandle, ReleaseTarget,
};
pub use crate::store::Store;

//! # poolcore
//!
//! The library behind PoolManager: a pool of ready, running multi-container clusters
//! on Docker hosts and Swarm clusters. A user **applies** and gets a dedicated cluster
//! at once from the warm pool; on **release** it is destroyed and recreated fresh.
//!
//! `poolcore` holds the model ([`Host`], [`Blueprint`], [`Cluster`], [`LeaseRecord`]),
//! the two traits backends implement ([`HostDriver`] with its [`Connector`], and
//! [`Store`]), and the [`Pool`] service that holds the rules. It knows nothing of
//! Docker, SQL or HTTP: backends such as `poolcore-docker` and `poolcore-sqlite` do.
//!
//! ```
//! use std::sync::Arc;
//! use poolcore::{ApplyRequest, MemStore, Pool};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> poolcore::Result<()> {
//! // A real program adds connectors: `.with_connector(DockerConnector::new())`.
//! let pool = Pool::builder(Arc::new(MemStore::new())).build();
//! let err = pool
//!     .apply(ApplyRequest { user_id: "alice".into(), ..Default::default() })
//!     .await
//!     .unwrap_err();
//! // No blueprint exists yet, so nothing can match.
//! assert_eq!(err.code(), "not_found");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod driver;
pub mod endpoint;
pub mod error;
pub mod events;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod pool;
pub mod prelude;
pub mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use driver::{labels_for, object_name, Capability, Connector, HostDriver, NodeState, ObservedCluster};
pub use endpoint::EndpointPolicy;
pub use error::{BoxError, Error, Result};
pub use events::Event;
pub use memory::MemStore;
pub use model::{
    Blueprint, BufferCounts, Claim, ClaimOutcome, Cluster, ClusterCount, ClusterFilter, ClusterSort,
    ClusterSortKey, ClusterStatus, Deployment, EngineFacts, EngineTls, Health, HealthCheck, Host, HostKind,
    HostStatus, Labels, LeaseActivity, LeaseRecord, Listing, LogConfig, NodeDeployment, NodeSpec, Operation,
    OperationFilter, OperationKind, OperationStatus, Page, Pem, Placement, PlacementStrategy, PortRef,
    PortSpec, Probe, ProbeCheck, Protocol, ReadyBuffer, ReleaseMode, ReleaseReason, ServiceUrls,
};
pub use pool::{
    Actor, ApplyRequest, Backoff, BlueprintPatch, BlueprintStats, HostPatch, HostStats, NewBlueprint,
    NewHost, NodeAction, Pool, PoolBuilder, PoolConfig, ReconcileConfig, ReconcileReport, ReconcilerHandle,
    ReleaseTarget, Stats,
};
pub use store::Store;

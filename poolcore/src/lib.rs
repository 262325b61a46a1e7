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
//!
//! ## Guide
//!
//! One `use` brings the types an embedding program needs ([`prelude`]):
//!
//! 1. Pick a [`Store`]: `poolcore-sqlite` for one machine, `poolcore-mongo` for several
//!    servers sharing a pool, or [`MemStore`] for tests.
//! 2. Give the [`PoolBuilder`] one [`Connector`] per [`HostKind`] the pool serves
//!    (`poolcore-docker`, `poolcore-swarm`, `poolcore-sim`, or your own), and a
//!    [`PoolConfig`] if the defaults do not fit.
//! 3. Start the reconciler ([`Pool::spawn_reconciler`]) so the pool heals and fills
//!    itself, and shut it down with [`ReconcilerHandle::shutdown`] when the program ends.
//! 4. Add blueprints and hosts, then [`Pool::apply`] and [`Pool::release`].
//!
//! Blueprints are data, checked when they are added:
//!
//! ```
//! use std::sync::Arc;
//! use poolcore::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> poolcore::Result<()> {
//! let pool = Pool::builder(Arc::new(MemStore::new())).build();
//! let node = NodeSpec {
//!     ports: [("rest".to_owned(), "7050/tcp".parse()?)].into(),
//!     ..NodeSpec::new("vp0", "hyperledger/fabric-peer:1.0")
//! };
//! let blueprint = NewBlueprint {
//!     labels: [("consensus".to_owned(), "pbft".to_owned())].into(),
//!     ..NewBlueprint::new("fabric", vec![node])
//! };
//! pool.create_blueprint(blueprint.clone()).await?;
//! assert_eq!(pool.blueprint("fabric").await?.nodes.len(), 1);
//! // Names are unique.
//! let again = pool.create_blueprint(blueprint).await.unwrap_err();
//! assert_eq!(again.code(), "conflict");
//!
//! // A reconciler with nothing to do shuts down at once.
//! let reconciler = pool.spawn_reconciler();
//! assert!(reconciler.shutdown(std::time::Duration::from_secs(5)).await);
//! # Ok(())
//! # }
//! ```
//!
//! The workspace's `examples/` holds three complete programs: SQLite with Docker, a
//! custom [`HostDriver`] that passes the driver conformance suite, and MongoDB with the
//! reconciler.
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `conformance` | off | `poolcore::conformance`: the shared [`Store`] and [`HostDriver`] suites (`conformance::store::run_all`, `conformance::driver::run_all` with its `DriverHarness`), for a backend's `tests/conformance.rs` |

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
    Blueprint, BlueprintVersion, BufferCounts, BufferWindow, Claim, ClaimOutcome, Cluster, ClusterCount,
    ClusterFilter, ClusterSort, ClusterSortKey, ClusterStatus, Deployment, EngineFacts, EngineTls, Health,
    HealthCheck, Host, HostKind, HostStatus, Labels, LeaseActivity, LeaseRecord, Listing, LogConfig,
    MinuteSummary, NodeDeployment, NodeSpec, Operation, OperationFilter, OperationKind, OperationStatus,
    Page, Pem, Placement, PlacementStrategy, PortRef, PortSpec, Probe, ProbeCheck, Protocol, ReadyBuffer,
    ReleaseMode, ReleaseReason, Rollout, RolloutStrategy, ServiceUrls, TimeOfDay, Weekday,
};
pub use pool::{
    Actor, ApplyRequest, Backoff, BlueprintNodes, BlueprintPatch, BlueprintStats, HostPatch, HostStats,
    NewBlueprint, NewHost, NodeAction, Pool, PoolBuilder, PoolConfig, ReconcileConfig, ReconcileReport,
    ReconcilerHandle, ReleaseTarget, RolloutStatus, Stats, VersionClusters,
};
pub use store::Store;

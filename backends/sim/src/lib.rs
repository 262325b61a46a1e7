//! # poolcore-sim
//!
//! A simulated engine for PoolManager: a [`HostDriver`](poolcore::HostDriver) that
//! plays any number of Docker-like engines in memory. It is for
//!
//! - **fast tests** of the pool's rules (apply, release, fill, reconcile), in seconds
//!   and without Docker, with faults on demand: an engine that goes away, a node that
//!   dies or turns unhealthy, creates that fail, slow calls;
//! - **benchmarks** with a thousand hosts and more;
//! - **trying the API** without an engine: add a host with `kind: "sim"` and endpoint
//!   `sim://demo`.
//!
//! It is never a default and never replaces the real engines: the Docker and Swarm
//! drivers are proven by the conformance suite on a real dockerd, and the sim only
//! passes the same suite so that what is tested on it holds there too.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use poolcore::{ApplyRequest, HostKind, MemStore, NewBlueprint, NewHost, NodeSpec, Pool};
//! use poolcore_sim::{SimConfig, SimConnector};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> poolcore::Result<()> {
//! let sim = SimConnector::from_config(SimConfig::new().with_serve_ports(false));
//! // The pool gets a clone; `sim` keeps a handle on the engines.
//! let pool = Pool::builder(Arc::new(MemStore::new())).with_connector(sim.clone()).build();
//! let node = NodeSpec {
//!     name: "vp0".into(),
//!     image: "hyperledger/fabric-peer:1.0".into(),
//!     command: Vec::new(),
//!     env: BTreeMap::new(),
//!     ports: BTreeMap::from([("rest".into(), "7050/tcp".parse()?)]),
//!     health: None,
//!     readiness: None,
//! };
//! let blueprint = NewBlueprint {
//!     name: "fabric".into(),
//!     labels: Default::default(),
//!     nodes: vec![node],
//!     api_port: None,
//!     max_applied: None,
//!     buffer: Default::default(),
//!     buffer_windows: Default::default(),
//!     placement: Default::default(),
//!     release_mode: Default::default(),
//!     rollout: Default::default(),
//! };
//! pool.create_blueprint(blueprint).await?;
//! let host = NewHost { kind: HostKind::Sim, ..NewHost::docker("demo", "sim://demo", 2) };
//! pool.add_host(host).await?; // autofill: two clusters are made
//! pool.wait_idle().await;
//!
//! let cluster = pool.apply(ApplyRequest { user_id: "alice".into(), ..Default::default() }).await?;
//! assert!(cluster.service_urls()["vp0"]["rest"].starts_with("http://127.0.0.1:"));
//!
//! let engine = sim.engine("sim://demo");
//! assert_eq!(engine.counters().creates, 2);
//! engine.kill_node(&cluster.id, "vp0")?; // the reconciler will repair it
//! # Ok(())
//! # }
//! ```
//!
//! ## How it behaves
//!
//! - **Endpoints** are `sim://NAME`; anything else is refused as invalid. All hosts on
//!   one endpoint share one engine ([`SimConnector::engine`] hands it to tests), as host
//!   records on one dockerd do; each host sees only its own clusters (by the host
//!   label), and the pool's default public address of a sim host is `127.0.0.1`.
//! - **Calls** follow the `# Behavior` docs of [`HostDriver`](poolcore::HostDriver) as
//!   the Docker driver does: creates are idempotent and complete half-done ones, every
//!   object carries [`labels_for`](poolcore::labels_for), deleting what is gone
//!   succeeds, an unknown node is not found, a repair keeps the recorded endpoints. An
//!   image whose name holds `does-not-exist` fails to pull.
//! - **Ports**: each named port of a running node is published on a host port of its
//!   own. With [`SimConfig::serve_ports`] (the default), a TCP port listens on
//!   `127.0.0.1` and answers every HTTP request with `200 ok`, so service URLs work
//!   when the host's public address is loopback (the default for `sim://`); stopping
//!   or killing the node closes it, and a restarted node gets new ports, as on Docker. Without it, ports are numbers from
//!   1024–65535, distinct per engine: one engine runs out after about 64,000 published
//!   ports, so spread larger simulations over several endpoints.
//! - **Processes** are not run: commands, environments and health checks are kept, and
//!   nodes only exit or turn unhealthy when a test says so ([`SimEngine::kill_node`],
//!   [`SimEngine::make_unhealthy`]). The driver's [`Capability`](poolcore::Capability)
//!   says so (`runs_processes` off).
//! - **Time**: latencies ([`Latencies`]) are slept with `tokio::time::sleep`, so tests
//!   with paused time run them at once; injected create failures follow
//!   [`SimConfig::seed`], so they repeat from run to run.
//! - **Scale**: `inspect` and `remove_all` visit only their host's clusters; an engine
//!   holds 100,000 clusters cheaply.

#![warn(missing_docs)]

mod config;
mod core;
mod driver;
mod error;
mod ports;

pub use crate::config::{Latencies, SimConfig};
pub use crate::core::{SimCluster, SimCounters, SimEngine, SimNode};
pub use crate::driver::{SimConnector, SimDriver};

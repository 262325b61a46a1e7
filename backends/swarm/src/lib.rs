//! # poolcore-swarm
//!
//! The [`HostDriver`](poolcore::HostDriver) of PoolManager for a Docker Swarm, over the
//! services API of [bollard](https://docs.rs/bollard). The host's endpoint is a swarm
//! manager. A cluster is one attachable overlay network plus one service of one replica
//! per blueprint node; every object carries the labels of [`poolcore::labels_for`], so
//! the pool finds, adopts and removes them after a crash.
//!
//! ```
//! use std::time::Duration;
//! use poolcore::Connector;
//! use poolcore_swarm::{SwarmConfig, SwarmConnector};
//!
//! let connector = SwarmConnector::from_config(
//!     SwarmConfig::new()
//!         .with_stop_grace(Duration::from_secs(5))
//!         .with_start_timeout(Duration::from_secs(60)),
//! );
//! assert_eq!(connector.kind(), poolcore::HostKind::Swarm);
//! // Hand it to the pool beside the Docker connector:
//! // `Pool::builder(store).with_connector(docker).with_connector(connector)`.
//! ```
//!
//! How a node runs:
//!
//! - **Ports** are published in host mode, on a port the engine picks, and read back
//!   from the running task; a service URL is the address of the swarm node the task
//!   runs on (the host's public address for the manager itself, or when the swarm knows
//!   no usable address) and that port. The routing mesh (ingress, VIP) is not used: it
//!   needs IPVS in the kernel, and a pool's clusters want a fixed address per node.
//! - **Names**: each node's name is a DNS alias on the cluster's network; services use
//!   DNS round robin, so no virtual IP is needed either.
//! - **Health**: a node runs when its task runs; with a health check, once the check
//!   passes (the swarm kills a task whose check fails and starts another, a few times).
//!   Create, start and restart wait for that, and fail naming the reason (`image
//!   missing: …`, `no suitable node …`) when the swarm gives up or the start timeout
//!   passes.
//! - **Control**: stop scales a node's service to 0 replicas, start to 1, restart forces
//!   an update; a delete removes the services, then the network once their containers
//!   are gone.
//!
//! Endpoints: `unix:///var/run/docker.sock`, `tcp://host:2375` and `http://host:2375`,
//! or over TLS with the host's TLS settings, as for the Docker driver: both connect
//! through the engine client of `poolcore-engine`. The driver works with Docker 20.10
//! (API 1.41) and newer.

#![warn(missing_docs)]

mod config;
mod core;
mod driver;
mod error;
mod spec;
mod tasks;

pub use config::SwarmConfig;
pub use driver::{SwarmConnector, SwarmDriver};

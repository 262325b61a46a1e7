//! # poolcore-docker
//!
//! The [`HostDriver`](poolcore::HostDriver) of PoolManager for a single Docker engine,
//! over [bollard](https://docs.rs/bollard). A cluster is one bridge network plus one
//! container per blueprint node; every object carries the labels of
//! [`poolcore::labels_for`], so the pool finds, adopts and removes them after a crash.
//!
//! ```
//! use std::time::Duration;
//! use poolcore::Connector;
//! use poolcore_docker::{DockerConfig, DockerConnector};
//!
//! let connector = DockerConnector::from_config(
//!     DockerConfig::new().with_stop_timeout(Duration::from_secs(5)),
//! );
//! assert_eq!(connector.kind(), poolcore::HostKind::Docker);
//! // Hand it to the pool: `Pool::builder(store).with_connector(connector)`. The pool
//! // calls `connector.connect(&host)` for each Docker host; that does not talk to the
//! // engine yet, the driver's first call does.
//! ```
//!
//! Endpoints: `unix:///var/run/docker.sock`, `tcp://host:2375` and `http://host:2375`;
//! with the host's TLS settings (CA, client certificate and key, as PEM files or
//! inline), `tcp://host:2376` or `https://host:2376` over TLS, the engine's certificate
//! verified unless the settings say otherwise (docs/security.md). The driver connects
//! through the engine client of `poolcore-engine` (shared with the Swarm driver), which
//! agrees on the API version with the engine on first use, so it works with Docker
//! 20.10 (API 1.41) and newer.

#![warn(missing_docs)]

mod config;
mod core;
mod driver;
mod error;

pub use config::DockerConfig;
pub use driver::{DockerConnector, DockerDriver};

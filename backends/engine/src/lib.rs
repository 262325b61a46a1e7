//! # poolcore-engine
//!
//! The pieces of the Docker Engine API client that PoolManager's Docker driver
//! (`poolcore-docker`) and Swarm driver (`poolcore-swarm`) share, over
//! [bollard](https://docs.rs/bollard):
//!
//! - **Connecting** to an endpoint ([`Engine`]): `unix:///path`, `tcp://host:port` or
//!   `http://host:port`, or over TLS with a host's [`EngineTls`](poolcore::EngineTls)
//!   settings (PEM files or inline [`Pem`](poolcore::Pem), the engine's certificate
//!   verified unless turned off), lazily, agreeing on the API version on first use, so
//!   Docker 20.10 (API 1.41) and newer engines answer. Key material is never logged
//!   nor put in an error.
//! - **Error mapping** ([`Engine::fail`], [`Action`]): a 404 is
//!   [`Error::NotFound`](poolcore::Error::NotFound) ("already gone" for a delete), a 409
//!   [`Error::Conflict`](poolcore::Error::Conflict) ("exists, adopt it" for a create), no
//!   answer [`Error::Unavailable`](poolcore::Error::Unavailable); each names its object.
//! - **Label filters** ([`LabelFilter`]) and what labels tell back ([`group_clusters`],
//!   [`is_node_of`], [`ports_from_labels`]): labels are the truth on the host.
//! - **Networks**: a cluster's own bridge or overlay network, made or adopted
//!   ([`Engine::ensure_network`]) and removed ([`Engine::remove_networks`]).
//! - **Node spec pieces** that a container and a service share ([`node_labels`],
//!   [`env_list`], [`health_config`]).
//!
//! It is no driver itself: it implements no [`HostDriver`](poolcore::HostDriver). With
//! the feature `testing`, its module `testing` offers the drivers' tests certificates
//! and a private dockerd that speaks TLS.
//!
//! ```
//! use std::time::Duration;
//! use poolcore::HostKind;
//! use poolcore_engine::{Engine, LabelFilter};
//!
//! // No request is made yet: the first one connects.
//! let engine = Engine::new(HostKind::Docker, "tcp://10.0.0.1:2375", None, Duration::from_secs(30))?;
//! assert_eq!(engine.endpoint(), "tcp://10.0.0.1:2375");
//!
//! // What `engine.networks(&filter).await` would ask the engine for: one node of one cluster.
//! let filter = LabelFilter::cluster("c1").node(Some("vp0"));
//! assert_eq!(filter.to_string(), "poolmanager.cluster=c1,poolmanager.node=vp0");
//!
//! // An endpoint the client cannot use is refused before any request.
//! let refused = Engine::new(HostKind::Docker, "ssh://h", None, Duration::from_secs(30)).unwrap_err();
//! assert_eq!(refused.code(), "invalid_input");
//! # Ok::<(), poolcore::Error>(())
//! ```

#![warn(missing_docs)]

mod config;
mod core;
mod error;
mod labels;
mod spec;
mod tls;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use crate::core::{first_error, nothing_of, ClusterNetwork, Engine};
pub use error::{has_status, Action};
pub use labels::{cluster_of, group_clusters, is_node_of, ports_from_labels, LabelFilter};
pub use spec::{env_list, health_config, label_map, node_labels};

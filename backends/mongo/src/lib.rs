//! # poolcore-mongo
//!
//! [`MongoStore`]: PoolManager's [`Store`](poolcore::Store) on MongoDB, for several
//! PoolManager servers (behind a load balancer, on different machines) sharing one
//! pool. Applies stay atomic across them without multi-document transactions: every
//! change is one conditional single-document write, and unique indexes keep hosts
//! within their capacity and users to one single-claimed cluster (see
//! [`MongoStore`]).
//!
//! ```no_run
//! use chrono::Utc;
//! use poolcore::{Blueprint, Store};
//! use poolcore_mongo::{MongoConfig, MongoStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> poolcore::Result<()> {
//! // The database comes from the URL's path (default `poolmanager`) ...
//! let store = MongoStore::from_url("mongodb://127.0.0.1:27017/poolmanager").await?;
//! // ... or from the config, which wins over the URL.
//! let config = MongoConfig::from_url("mongodb://db1,db2,db3/?replicaSet=rs0")?.with_database("pool");
//! let _replicated = MongoStore::with_config(config).await?;
//!
//! let blueprint = Blueprint {
//!     name: "fabric-pbft-4".into(),
//!     labels: [("consensus_plugin".to_string(), "pbft".to_string())].into(),
//!     nodes: vec![],
//!     api_port: None,
//!     max_applied: None,
//!     buffer: Default::default(),
//!     buffer_windows: Default::default(),
//!     placement: Default::default(),
//!     release_mode: Default::default(),
//!     rollout: Default::default(),
//!     version: 1,
//!     version_created_at: Utc::now(),
//!     earlier_versions: Vec::new(),
//!     created_at: Utc::now(),
//! };
//! store.insert_blueprint(&blueprint).await?;
//! assert!(store.get_blueprint("fabric-pbft-4").await?.is_some());
//! # Ok(())
//! # }
//! ```
//!
//! Collections: `hosts`, `blueprints`, `clusters`, `leases`, `operations` and
//! `locks`; their indexes are created, and documents of an earlier version migrated,
//! when a store connects. Timestamps are BSON dates (millisecond precision).

#![warn(missing_docs)]

pub mod config;
mod core;
mod documents;
mod error;
mod store;
mod summary;

pub use crate::core::{LeaseRepair, MongoStore};
pub use config::{MongoConfig, DEFAULT_DATABASE};

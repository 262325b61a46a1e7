//! # poolcore-sqlite
//!
//! [`SqliteStore`]: PoolManager's [`Store`](poolcore::Store) on SQLite (bundled, no
//! server to run), the embedded default. One database file may be shared by several
//! PoolManager processes on one machine: applies stay atomic across them.
//!
//! ```
//! use chrono::Utc;
//! use poolcore::{Blueprint, Store};
//! use poolcore_sqlite::SqliteStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> poolcore::Result<()> {
//! // A file: `SqliteStore::open("pool.db")` or `SqliteStore::from_url("sqlite://./pool.db")`.
//! let store = SqliteStore::memory().await?;
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
//! assert_eq!(store.get_blueprint("fabric-pbft-4").await?, Some(blueprint));
//! # Ok(())
//! # }
//! ```
//!
//! The database runs in WAL mode with `synchronous = NORMAL`; its schema is migrated
//! forward when a store opens it, and a database written by a newer version is
//! refused.

#![warn(missing_docs)]

pub mod config;
mod core;
mod error;
mod rows;
mod schema;
mod store;
mod writer;

pub use crate::core::SqliteStore;
pub use config::SqliteConfig;

//! Examples of embedding `poolcore` in another Rust program:
//!
//! - `embed.rs`: the SQLite store and the local Docker engine; apply and release.
//! - `custom_driver.rs`: a pool on [`task_driver`], a custom
//!   [`HostDriver`](poolcore::HostDriver) whose nodes are tasks of the program, and which
//!   passes the driver conformance suite (`tests/custom_driver.rs`).
//! - `mongo.rs`: the MongoDB store, with the reconciler started and shut down.

pub mod task_driver;

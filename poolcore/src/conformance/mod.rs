//! The shared test suites every backend runs against the real thing.
//!
//! Each case is a plain `async fn`; a backend's `tests/conformance.rs` calls
//! [`store::run_all`] or [`driver::run_all`] (or single cases) on its own backend.
//! A backend is done when it passes the whole suite.

pub mod driver;
pub mod store;

//! The shared HostDriver conformance suite against a real Docker engine.
//!
//! The engine is read from `POOLMANAGER_TEST_DOCKER`, else `DOCKER_HOST`, else
//! `unix:///var/run/docker.sock`, and must hold the image `poolmanager/testnode:latest`.
//! Without an engine the tests are skipped with a notice, except under `CI=true`, where
//! that is a failure.

use std::sync::Arc;
use std::time::Duration;

use poolcore::conformance::driver::{engine_from_env, run_all, DriverHarness};
use poolcore_docker::{DockerConfig, DockerConnector};

/// A harness for the test engine, or `None` (with a notice) when no engine answers
/// outside CI.
async fn harness() -> Option<DriverHarness> {
    // The test image's httpd ignores SIGTERM as PID 1: a short stop timeout keeps stop
    // and restart cases fast.
    let config = DockerConfig::new().with_stop_timeout(Duration::from_secs(1));
    let connector = Arc::new(DockerConnector::from_config(config));
    DriverHarness::new(connector, engine_from_env()).ready().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_driver_passes_the_conformance_suite() {
    let Some(harness) = harness().await else { return };
    run_all(&harness).await;
}

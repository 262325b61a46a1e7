//! The shared HostDriver conformance suite against a real Docker Swarm, plus what only
//! a swarm does.
//!
//! The engine is read from `POOLMANAGER_TEST_DOCKER`, else `DOCKER_HOST`, else
//! `unix:///var/run/docker.sock`; it must be a swarm manager (`scripts/test-swarm.sh`
//! makes it one) and hold the image `poolmanager/testnode:latest`. Without one the
//! tests are skipped with a notice, except under `CI=true`, where that is a failure.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use poolcore::conformance::driver::{engine_from_env, run_all, DriverHarness, TEST_IMAGE};
use poolcore::{Blueprint, Cluster, Error, HealthCheck, NodeSpec, NodeState};
use poolcore_swarm::{SwarmConfig, SwarmConnector};

/// A harness for the test swarm, or `None` (with a notice) when no swarm manager
/// answers outside CI.
async fn harness() -> Option<DriverHarness> {
    // The test image's httpd ignores SIGTERM as PID 1: a short grace period keeps stop,
    // restart and delete fast. One restart attempt: a node that cannot run fails after
    // two tries.
    let config = SwarmConfig::new()
        .with_stop_grace(Duration::from_secs(1))
        .with_start_timeout(Duration::from_secs(60))
        .with_restart_attempts(1);
    let connector = Arc::new(SwarmConnector::from_config(config));
    // Cases mostly wait for the swarm to act, so more of them run at once than the
    // default.
    DriverHarness::new(connector, engine_from_env())
        .with_parallelism(6)
        .ready()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_driver_passes_the_conformance_suite() {
    let Some(harness) = harness().await else { return };
    run_all(&harness).await;
}

fn node(name: &str, command: &[&str]) -> NodeSpec {
    NodeSpec {
        name: name.to_owned(),
        image: TEST_IMAGE.to_owned(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: BTreeMap::new(),
        ports: BTreeMap::from([("http".to_owned(), "80/tcp".parse().expect("port"))]),
        health: None,
        readiness: None,
    }
}

fn blueprint(nodes: Vec<NodeSpec>) -> Blueprint {
    Blueprint {
        name: format!("swarm-{}", &poolcore::model::new_id()[..8]),
        labels: Default::default(),
        nodes,
        api_port: None,
        max_applied: None,
        buffer: Default::default(),
        buffer_windows: Default::default(),
        placement: Default::default(),
        release_mode: Default::default(),
        rollout: Default::default(),
        version: 1,
        version_created_at: Utc::now(),
        earlier_versions: Vec::new(),
        created_at: Utc::now(),
    }
}

/// A node whose health check never passes publishes no port on a swarm: the create
/// fails, saying so, once the swarm gives up on it (not at the start timeout), instead
/// of handing out a cluster without its URLs; a missing image fails saying which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_gets_healthy_or_has_no_image_fails_the_create_clearly() {
    let Some(harness) = harness().await else { return };
    let outcome = AssertUnwindSafe(never_healthy_and_missing_image(&harness))
        .catch_unwind()
        .await;
    harness.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn never_healthy_and_missing_image(harness: &DriverHarness) {
    let host = harness.host("never-healthy");
    let driver = harness.driver(&host);

    let mut sick = node("sick", &[]);
    sick.health = Some(HealthCheck {
        command: "exit 1".to_owned(),
        interval_seconds: 1,
        retries: 1,
    });
    let bp = blueprint(vec![sick, node("fine", &[])]);
    let cluster = Cluster::new("sick", &bp.name, &host.id);
    let started = Instant::now();
    let err = driver
        .create_cluster(&cluster, &bp)
        .await
        .expect_err("a create whose node never gets healthy");
    let text = err.to_string();
    println!(
        "the swarm gave up on the sick node after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(matches!(err, Error::Backend { backend: "swarm", .. }), "{err:?}");
    assert!(
        text.contains(r#"node "sick" does not run: the swarm gave up"#)
            && text.contains("health check failed"),
        "{text}"
    );
    assert!(
        !text.contains(r#"node "fine""#),
        "the healthy node is blamed: {text}"
    );
    let observed = driver.inspect().await.expect("inspect");
    assert!(
        matches!(observed[0].nodes["sick"], NodeState::Unhealthy(_)),
        "{observed:?}"
    );
    assert_eq!(observed[0].nodes["fine"], NodeState::Running, "{observed:?}");

    let mut missing = node("ghost", &[]);
    missing.image = "poolmanager/does-not-exist:1".to_owned();
    let bp = blueprint(vec![missing]);
    let ghost = Cluster::new("ghost", &bp.name, &host.id);
    let err = driver
        .create_cluster(&ghost, &bp)
        .await
        .expect_err("a create of a missing image");
    assert!(
        err.to_string()
            .contains("image missing: No such image: poolmanager/does-not-exist:1"),
        "{err}"
    );
    assert_eq!(driver.remove_all().await.expect("remove_all"), 2);
    assert!(driver.inspect().await.expect("inspect").is_empty());
}

//! The Docker driver over TLS: a cluster created, inspected and deleted on a private
//! dockerd started with `--tlsverify` (see [`TlsEngine`]), the host's TLS settings
//! given as PEM files.
//!
//! Needs `dockerd` and root. Without them the test is skipped with a notice, except
//! under `CI=true`, where that is a failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use poolcore::conformance::driver::{DriverHarness, TEST_IMAGE};
use poolcore::{Blueprint, Cluster, Connector, Error, NodeSpec, NodeState};
use poolcore::{EngineTls, Pem};
use poolcore_docker::{DockerConfig, DockerConnector};
use poolcore_engine::testing::TlsEngine;

fn connector() -> Arc<DockerConnector> {
    let config = DockerConfig::new().with_stop_timeout(Duration::from_secs(1));
    Arc::new(DockerConnector::from_config(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_are_made_and_removed_over_tls() {
    let started = Instant::now();
    let Some(engine) = TlsEngine::start().await else {
        return;
    };
    let harness = DriverHarness::new(connector(), engine.endpoint.clone());
    let mut host = harness.host("tls");
    host.tls = Some(engine.files());
    let driver = harness.driver(&host);
    driver.probe().await.expect("a probe over TLS");

    // A node without ports: another engine on this machine may hold any host port.
    let node = NodeSpec {
        name: "vp0".to_owned(),
        image: TEST_IMAGE.to_owned(),
        command: vec!["sleep".to_owned(), "300".to_owned()],
        env: BTreeMap::new(),
        ports: BTreeMap::new(),
        health: None,
        readiness: None,
    };
    let blueprint = Blueprint {
        name: "tls".to_owned(),
        labels: Default::default(),
        nodes: vec![node],
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
    };
    let cluster = Cluster::new("tls", &blueprint.name, &host.id);
    let deployment = driver
        .create_cluster(&cluster, &blueprint)
        .await
        .expect("a cluster over TLS");
    assert!(deployment.nodes.contains_key("vp0"), "{deployment:?}");
    let found = driver.inspect().await.expect("an inspection over TLS");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].nodes["vp0"], NodeState::Running);

    driver
        .delete_cluster(&cluster.id)
        .await
        .expect("deleted over TLS");
    assert!(driver.inspect().await.expect("an inspection").is_empty());
    drop(engine);
    eprintln!("TLS cluster test done after {:?}", started.elapsed());
}

#[test]
fn wrong_tls_settings_are_refused_when_the_driver_is_made() {
    let harness = DriverHarness::new(connector(), "tcp://127.0.0.1:2376".to_owned());
    let mut host = harness.host("tls-settings");
    host.tls = Some(EngineTls {
        ca: Some(Pem::Path("/nonexistent/ca.pem".to_owned())),
        cert: None,
        key: None,
        verify: true,
    });
    let err = connector().connect(&host).expect_err("a CA that cannot be read");
    assert!(matches!(err, Error::Invalid { field: "tls.ca", .. }), "{err:?}");
    host.endpoint = "unix:///var/run/docker.sock".to_owned();
    host.tls = Some(EngineTls {
        ca: None,
        cert: None,
        key: None,
        verify: false,
    });
    let err = connector().connect(&host).expect_err("TLS on a unix socket");
    assert!(err.to_string().contains("not to a unix socket"), "{err}");
}

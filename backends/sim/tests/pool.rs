//! The pool on simulated hosts: fill, apply, repair, release and an engine that goes
//! away, end to end in memory; what the sim is for.

use std::collections::BTreeMap;
use std::sync::Arc;

use poolcore::{
    Actor, ApplyRequest, HostKind, HostStatus, MemStore, NewBlueprint, NewHost, NodeSpec, NodeState, Pool,
    PoolConfig, ReconcileConfig, ReleaseTarget,
};
use poolcore_sim::SimConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn node(name: &str) -> NodeSpec {
    NodeSpec {
        name: name.to_owned(),
        image: "hyperledger/fabric-peer:1.0".to_owned(),
        command: Vec::new(),
        env: BTreeMap::new(),
        ports: BTreeMap::from([("rest".to_owned(), "7050/tcp".parse().unwrap())]),
        health: None,
        readiness: None,
    }
}

/// The first line of the answer to a `GET /` on `url` (`http://address:port`).
async fn status_line(url: &str) -> String {
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_fills_hands_out_repairs_and_recycles_sim_clusters() {
    let sim = SimConnector::new();
    let pool = Pool::builder(Arc::new(MemStore::new()))
        .with_connector(sim.clone())
        .with_config(PoolConfig::default().with_reconcile(ReconcileConfig::default().with_failed_probes(1)))
        .build();
    let blueprint = NewBlueprint {
        name: "fabric".to_owned(),
        labels: Default::default(),
        nodes: vec![node("vp0"), node("vp1")],
        api_port: None,
        max_applied: None,
        buffer: Default::default(),
        buffer_windows: Default::default(),
        placement: Default::default(),
        release_mode: Default::default(),
        rollout: Default::default(),
    };
    pool.create_blueprint(blueprint).await.unwrap();
    let new_host = NewHost {
        kind: HostKind::Sim,
        ..NewHost::docker("sim-1", "sim://pool", 3)
    };
    let host = pool.add_host(new_host).await.unwrap();
    pool.wait_idle().await;
    let engine = sim.engine("sim://pool");
    assert_eq!(engine.clusters().len(), 3, "autofill");
    assert!(host.facts.version.starts_with("sim-"), "{:?}", host.facts);

    let apply = ApplyRequest {
        user_id: "alice".to_owned(),
        ..Default::default()
    };
    let cluster = pool.apply(apply.clone()).await.unwrap();
    let urls = cluster.service_urls();
    assert_eq!(status_line(&urls["vp0"]["rest"]).await, "HTTP/1.1 200 OK");

    // A node of the applied cluster dies: the reconciler repairs it on the same URLs.
    engine.kill_node(&cluster.id, "vp0").unwrap();
    let report = pool.reconcile_once().await.unwrap();
    pool.wait_idle().await;
    assert_eq!(report.repaired, 1, "{report:?}");
    let repaired = engine.cluster(&cluster.id).unwrap();
    assert_eq!(repaired.nodes["vp0"].state, NodeState::Running);
    assert_eq!(pool.cluster(&cluster.id).await.unwrap().service_urls(), urls);
    assert_eq!(status_line(&urls["vp0"]["rest"]).await, "HTTP/1.1 200 OK");

    // Released, it is destroyed and made anew.
    let before = engine.counters();
    pool.release(ReleaseTarget::Cluster(cluster.id.clone()), Actor::Operator)
        .await
        .unwrap();
    pool.wait_idle().await;
    let after = engine.counters();
    assert_eq!(after.deletes - before.deletes, 1);
    assert_eq!(after.creates - before.creates, 1);
    assert_eq!(engine.clusters().len(), 3);

    // The engine goes away: the host turns inactive and nothing is handed out.
    engine.set_down(true);
    pool.reconcile_once().await.unwrap();
    assert_eq!(pool.host(&host.id).await.unwrap().status, HostStatus::Inactive);
    let err = pool.apply(apply.clone()).await.unwrap_err();
    assert_eq!(err.code(), "pool_exhausted", "{err}");
    engine.set_down(false);
    pool.reconcile_once().await.unwrap();
    pool.wait_idle().await;
    assert_eq!(pool.host(&host.id).await.unwrap().status, HostStatus::Active);
    assert!(pool.apply(apply).await.is_ok());
}

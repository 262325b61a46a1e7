//! One reconcile pass over many simulated hosts: 1,000 hosts × 100 ready clusters on
//! a SQLite file, every cluster present on its (simulated) engine. The pass probes
//! each host, lists its clusters, inspects its engine and decides per cluster; the
//! work it starts (repairs, replacements) is not part of its time.
//!
//! `cargo bench -p poolmanager-benches --bench reconcile` prints the figures kept in
//! docs/performance.md. Run as a test (`cargo test --all-targets`) it is a smoke run
//! of 20 hosts × 10 clusters.

use std::sync::Arc;
use std::time::Instant;

use poolcore::conformance::store::{ready_cluster, sample_blueprint, sample_host};
use poolcore::{HostKind, Pool, PoolConfig, ReconcileConfig, Store};
use poolcore_sim::{SimConfig, SimConnector};
use poolcore_sqlite::SqliteStore;

fn scale() -> (usize, usize) {
    if std::env::args().any(|arg| arg == "--bench") {
        (1_000, 100)
    } else {
        (20, 10)
    }
}

#[tokio::main]
async fn main() {
    let (hosts, per_host) = scale();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        SqliteStore::open(dir.path().join("bench.db"))
            .await
            .expect("sqlite"),
    );
    let sim = SimConnector::from_config(SimConfig::new().with_serve_ports(false));
    let blueprint = sample_blueprint();
    store.insert_blueprint(&blueprint).await.expect("blueprint");
    let seeding = Instant::now();
    let mut clusters = Vec::with_capacity(hosts * per_host);
    for i in 0..hosts {
        let mut host = sample_host();
        host.name = format!("bench-{i:04}");
        host.kind = HostKind::Sim;
        host.endpoint = format!("sim://bench-{i:04}");
        host.public_address = "127.0.0.1".into();
        host.capacity = per_host as u32;
        host.autofill = false;
        store.insert_host(&host).await.expect("host");
        let driver = poolcore::Connector::connect(&sim, &host).expect("driver");
        for j in 0..per_host {
            let mut cluster = ready_cluster(&blueprint.name, &host.id);
            // Numbered: short random names collide among 100,000.
            cluster.name = format!("bench-{i:04}-{j:03}");
            cluster.deployment = driver
                .create_cluster(&cluster, &blueprint)
                .await
                .expect("made on the sim");
            clusters.push(cluster);
        }
    }
    store.import(clusters, Vec::new()).await.expect("records");
    println!(
        "seeded {hosts} sim hosts × {per_host} clusters in {:.1}s",
        seeding.elapsed().as_secs_f64()
    );

    let config = PoolConfig::default().with_reconcile(ReconcileConfig::default().with_host_concurrency(16));
    let pool = Pool::builder(store.clone() as Arc<dyn Store>)
        .with_connector(sim.clone())
        .with_config(config)
        .build();
    for pass in 1..=3 {
        let started = Instant::now();
        let report = pool.reconcile_once().await.expect("pass");
        let took = started.elapsed();
        assert_eq!(report.hosts_probed as usize, hosts);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(!report.acted(), "a healthy pool needs nothing: {report:?}");
        println!(
            "reconcile pass {pass} over {hosts} hosts × {per_host} clusters, nothing to do: {:.3}s",
            took.as_secs_f64()
        );
    }

    // A node dies on one host in ten: the pass finds each and starts a replacement.
    for i in (0..hosts).step_by(10) {
        let engine = sim.engine(&format!("sim://bench-{i:04}"));
        if let Some(victim) = engine.clusters().first() {
            engine.kill_node(&victim.cluster_id, "vp0").expect("kill");
        }
    }
    let started = Instant::now();
    let report = pool.reconcile_once().await.expect("pass");
    let took = started.elapsed();
    assert_eq!(report.replaced as usize, hosts.div_ceil(10), "{report:?}");
    println!(
        "reconcile pass with {} broken clusters: {:.3}s to decide and start their replacement",
        report.replaced,
        took.as_secs_f64()
    );
    pool.wait_idle().await;
}

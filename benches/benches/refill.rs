//! Refill on the real engine: N one-node clusters made three ways, one after the
//! other, on the engine `POOLMANAGER_TEST_DOCKER` names (image
//! `POOLMANAGER_TEST_IMAGE`, default `poolmanager/testnode:latest`):
//!
//! 1. the pool's fill of a host with room for N (`Pool::fill_host`, the Docker driver,
//!    the pool's host parallelism), until every cluster is ready in the store;
//! 2. the same clusters with the `docker` CLI, one after the other: `network create`,
//!    `run -d -p 80`, `port`, as an operator's script would;
//! 3. a bare bollard loop at the pool's parallelism: create the network, create and
//!    start the container, inspect it for its port; no store, no checks.
//!
//! `cargo bench -p poolmanager-benches --bench refill` makes 16 clusters each way
//! (`POOLMANAGER_BENCH_REFILL=N` for another count). Run as a test (`cargo test
//! --all-targets`) it makes 2, or says it skips when no engine answers. Everything it
//! makes carries the label `poolmanager.bench=refill-<run>` and is removed at the end.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures::{stream, StreamExt, TryStreamExt};
use poolcore::conformance::driver::{engine_from_env, DriverHarness};
use poolcore::conformance::store::sample_blueprint;
use poolcore::model::new_id;
use poolcore::{ClusterFilter, ClusterStatus, MemStore, Page, Pool, PoolConfig, Store};
use poolcore_docker::{DockerConfig, DockerConnector};

fn clusters() -> usize {
    if std::env::args().any(|arg| arg == "--bench") {
        std::env::var("POOLMANAGER_BENCH_REFILL")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(16)
    } else {
        2
    }
}

fn image() -> String {
    std::env::var("POOLMANAGER_TEST_IMAGE").unwrap_or_else(|_| "poolmanager/testnode:latest".into())
}

/// The pool's fill: a host with room for `n`, filled, until every cluster is ready.
async fn by_pool(harness: &DriverHarness, n: usize, parallelism: usize) -> Duration {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let mut blueprint = sample_blueprint();
    blueprint.nodes[0].image = image();
    store.insert_blueprint(&blueprint).await.expect("blueprint");
    let mut host = harness.host("refill");
    host.capacity = u32::try_from(n).expect("a small count");
    store.insert_host(&host).await.expect("host");
    let connector =
        DockerConnector::from_config(DockerConfig::new().with_stop_timeout(Duration::from_secs(1)));
    let pool = Pool::builder(Arc::clone(&store))
        .with_connector(connector)
        .with_config(PoolConfig::default().with_host_parallelism(parallelism))
        .build();

    let started = Instant::now();
    pool.fill_host(&host.id, Some(&blueprint.name))
        .await
        .expect("fill");
    pool.wait_idle().await;
    let took = started.elapsed();

    let filter = ClusterFilter {
        host_id: Some(host.id.clone()),
        ..ClusterFilter::default()
    };
    let made = store
        .list_clusters(&filter, Page::ALL)
        .await
        .expect("clusters")
        .items;
    let ready = made.iter().filter(|c| c.status == ClusterStatus::Ready).count();
    assert_eq!(ready, n, "every cluster ready: {made:#?}");
    let driver = harness.driver(&host);
    for cluster in made {
        driver.delete_cluster(&cluster.id).await.expect("clean up");
    }
    took
}

/// The `docker` CLI, one cluster after the other.
fn by_cli(endpoint: &str, n: usize, run: &str) -> Duration {
    let docker = |args: &[&str]| {
        let out = Command::new("docker")
            .arg("--host")
            .arg(endpoint)
            .args(args)
            .output()
            .expect("the docker CLI");
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let label = format!("poolmanager.bench={run}");
    let image = image();
    let started = Instant::now();
    for i in 0..n {
        let name = format!("{run}-cli-{i}");
        docker(&["network", "create", "--label", &label, &name]);
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &name,
            "--network-alias",
            "vp0",
            "--label",
            &label,
            "-p",
            "80",
            &image,
            "httpd",
            "-f",
        ]);
        let port = docker(&["port", &name, "80/tcp"]);
        assert!(!port.is_empty(), "{name} has a published port");
    }
    let took = started.elapsed();
    for i in 0..n {
        let name = format!("{run}-cli-{i}");
        docker(&["rm", "-f", "-v", &name]);
        docker(&["network", "rm", &name]);
    }
    took
}

/// Bare bollard: network, container, start, inspect; `parallelism` at a time.
async fn by_bollard(docker: &Docker, n: usize, parallelism: usize, run: &str) -> Duration {
    let labels = HashMap::from([("poolmanager.bench".to_owned(), run.to_owned())]);
    let make = |i: usize| {
        let (docker, labels) = (docker.clone(), labels.clone());
        let name = format!("{run}-bollard-{i}");
        async move {
            let network = docker
                .create_network(NetworkCreateRequest {
                    name: name.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(labels.clone()),
                    ..Default::default()
                })
                .await?
                .id;
            let body = ContainerCreateBody {
                image: Some(image()),
                cmd: Some(vec!["httpd".into(), "-f".into()]),
                labels: Some(labels),
                exposed_ports: Some(vec!["80/tcp".into()]),
                host_config: Some(HostConfig {
                    port_bindings: Some(HashMap::from([(
                        "80/tcp".to_owned(),
                        Some(vec![PortBinding {
                            host_ip: Some("0.0.0.0".into()),
                            host_port: Some(String::new()),
                        }]),
                    )])),
                    network_mode: Some(network),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            let id = docker.create_container(Some(options), body).await?.id;
            docker.start_container(&id, None).await?;
            let inspected = docker.inspect_container(&id, None).await?;
            let published = inspected
                .network_settings
                .and_then(|n| n.ports)
                .and_then(|p| p.get("80/tcp").cloned().flatten())
                .is_some_and(|b| !b.is_empty());
            assert!(published, "{name} has a published port");
            Ok::<_, bollard::errors::Error>(name)
        }
    };
    let started = Instant::now();
    let names: Vec<String> = stream::iter(0..n)
        .map(make)
        .buffer_unordered(parallelism)
        .try_collect()
        .await
        .expect("bollard");
    let took = started.elapsed();
    for name in names {
        let force = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        docker
            .remove_container(&name, Some(force))
            .await
            .expect("remove container");
        docker.remove_network(&name).await.expect("remove network");
    }
    took
}

#[tokio::main]
async fn main() {
    let connector = Arc::new(DockerConnector::new());
    let Some(harness) = DriverHarness::new(connector, engine_from_env()).ready().await else {
        return;
    };
    let endpoint = engine_from_env();
    let docker = match endpoint.strip_prefix("unix://") {
        Some(socket) => Docker::connect_with_socket(socket, 120, API_DEFAULT_VERSION),
        None => Docker::connect_with_http(&endpoint, 120, API_DEFAULT_VERSION),
    }
    .expect("a docker client");
    let n = clusters();
    let parallelism = PoolConfig::default().host_parallelism;
    let run = format!("pm-refill-{}", &new_id()[..8]);

    let per_second = |d: Duration| n as f64 / d.as_secs_f64();
    // Each line as its phase ends: a run cut short keeps what it measured.
    let report = |name: &str, took: Duration| {
        println!(
            "  {name:<32} {:>7.2} s  {:>6.1} clusters/s",
            took.as_secs_f64(),
            per_second(took)
        );
    };
    println!("refill of {n} one-node clusters on {endpoint}, parallelism {parallelism}:");
    let pool = by_pool(&harness, n, parallelism).await;
    report("pool fill", pool);
    let cli = tokio::task::block_in_place(|| by_cli(&endpoint, n, &run));
    report("docker CLI, one after the other", cli);
    let bare = by_bollard(&docker, n, parallelism, &run).await;
    report("bare bollard loop", bare);
    println!(
        "pool fill vs docker CLI: {:.2}x; vs bare bollard: {:.2}x",
        cli.as_secs_f64() / pool.as_secs_f64(),
        bare.as_secs_f64() / pool.as_secs_f64()
    );
}

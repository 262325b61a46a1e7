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
//! All three make the same objects: a bridge network per cluster and a container on
//! it with the node's alias, environment and published port.
//!
//! `cargo bench -p poolmanager-benches --bench refill` makes 16 clusters each way
//! (`POOLMANAGER_BENCH_REFILL=N` for another count) in 3 rounds
//! (`POOLMANAGER_BENCH_ROUNDS=N`), after a warm-up cluster; each round runs the ways in
//! another order, so that none always meets the engine first or after the others'
//! removals. Run as a test (`cargo test --all-targets`) it makes 2 in one round, or
//! says it skips when no engine answers. Everything it makes carries the label
//! `poolmanager.bench=refill-<run>` and is removed at the end of its way.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures::{stream, StreamExt, TryStreamExt};
use poolcore::conformance::driver::{engine_from_env, DriverHarness};
use poolcore::conformance::store::sample_blueprint;
use poolcore::model::new_id;
use poolcore::{ClusterFilter, ClusterStatus, MemStore, Page, Pool, PoolConfig, Store};
use poolcore_docker::{DockerConfig, DockerConnector};

/// `var` as a count under `cargo bench`, else `default` there and `smoke` as a test.
fn count(var: &str, default: usize, smoke: usize) -> usize {
    if std::env::args().any(|arg| arg == "--bench") {
        std::env::var(var)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    } else {
        smoke
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
            // The container the pool's Docker driver makes for the sample node.
            let endpoint = EndpointSettings {
                aliases: Some(vec!["vp0".into()]),
                ..Default::default()
            };
            let body = ContainerCreateBody {
                image: Some(image()),
                cmd: Some(vec!["httpd".into(), "-f".into()]),
                env: Some(vec!["CORE_PEER_ID=vp0".into()]),
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
                    network_mode: Some(network.clone()),
                    ..Default::default()
                }),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(network, endpoint)])),
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

/// The three ways a bench round makes the clusters; the order of [`Way::ALL`].
#[derive(Clone, Copy)]
enum Way {
    Pool = 0,
    Cli = 1,
    Bare = 2,
}

impl Way {
    const ALL: [Way; 3] = [Way::Pool, Way::Cli, Way::Bare];

    fn name(self) -> &'static str {
        match self {
            Way::Pool => "pool fill",
            Way::Cli => "docker CLI, one after the other",
            Way::Bare => "bare bollard loop",
        }
    }

    fn order(round: usize) -> [Way; 3] {
        let mut ways = Self::ALL;
        ways.rotate_left(round % 3);
        ways
    }
}

/// Lowest and highest of `values`, as `a–b`.
fn range(values: &[f64]) -> String {
    let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lowest:.2}–{highest:.2}")
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
    let n = count("POOLMANAGER_BENCH_REFILL", 16, 2);
    let rounds = count("POOLMANAGER_BENCH_ROUNDS", 3, 1).max(1);
    let parallelism = PoolConfig::default().host_parallelism;
    let run = format!("pm-refill-{}", &new_id()[..8]);

    println!("refill of {n} one-node clusters on {endpoint}, parallelism {parallelism}, {rounds} round(s):");
    // The engine's first network and port of a run cost more than the rest.
    by_bollard(&docker, 1, 1, &format!("{run}-warm")).await;
    let (mut vs_cli, mut vs_bare) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut took = [Duration::ZERO; 3];
        let tag = format!("{run}-{round}");
        for way in Way::order(round) {
            let spent = match way {
                Way::Pool => by_pool(&harness, n, parallelism).await,
                Way::Cli => tokio::task::block_in_place(|| by_cli(&endpoint, n, &tag)),
                Way::Bare => by_bollard(&docker, n, parallelism, &tag).await,
            };
            // Each line as its way ends: a run cut short keeps what it measured.
            println!(
                "  round {} {:<32} {:>7.2} s  {:>6.1} clusters/s",
                round + 1,
                way.name(),
                spent.as_secs_f64(),
                n as f64 / spent.as_secs_f64()
            );
            took[way as usize] = spent;
        }
        let [pool, cli, bare] = took.map(|d| d.as_secs_f64());
        println!(
            "  round {}: pool fill vs docker CLI {:.2}x, vs bare bollard {:.2}x",
            round + 1,
            cli / pool,
            bare / pool
        );
        vs_cli.push(cli / pool);
        vs_bare.push(bare / pool);
    }
    println!(
        "pool fill vs docker CLI: {}x; vs bare bollard: {}x",
        range(&vs_cli),
        range(&vs_bare)
    );
}

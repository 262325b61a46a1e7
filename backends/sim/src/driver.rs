//! [`SimConnector`] and [`SimDriver`]: hosts on simulated engines, one engine per
//! `sim://NAME` endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use poolcore::{
    Blueprint, Capability, Cluster, Connector, Deployment, EngineFacts, Host, HostDriver, HostKind,
    ObservedCluster, Result,
};
use tracing::instrument;

use crate::config::{check_endpoint, SimConfig};
use crate::core::{Mode, Op, SimEngine};

/// Makes a [`SimDriver`] for each host of kind [`HostKind::Sim`], and holds the engines
/// they run on: one per endpoint, so two hosts on `sim://demo` see one engine, as two
/// host records on one dockerd do.
///
/// Clones share the engines: keep a clone to reach them ([`SimConnector::engine`])
/// after handing the connector to a pool.
#[derive(Debug, Clone, Default)]
pub struct SimConnector {
    config: SimConfig,
    engines: Arc<Mutex<HashMap<String, SimEngine>>>,
}

impl SimConnector {
    /// A connector with the default [`SimConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A connector whose engines start with `config`.
    pub fn from_config(config: SimConfig) -> Self {
        SimConnector {
            config,
            engines: Arc::default(),
        }
    }

    /// The config new engines start with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The engine at `endpoint` (as hosts give it: `sim://demo`), made empty on first
    /// use; for tests to inject faults and read counters.
    pub fn engine(&self, endpoint: &str) -> SimEngine {
        let mut engines = self.engines.lock().unwrap_or_else(PoisonError::into_inner);
        engines
            .entry(endpoint.to_owned())
            .or_insert_with(|| SimEngine::new(endpoint, &self.config))
            .clone()
    }

    /// Every engine made so far, by endpoint.
    pub fn engines(&self) -> Vec<SimEngine> {
        let engines = self.engines.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<SimEngine> = engines.values().cloned().collect();
        all.sort_by(|a, b| a.endpoint().cmp(b.endpoint()));
        all
    }
}

impl Connector for SimConnector {
    fn kind(&self) -> HostKind {
        HostKind::Sim
    }

    fn connect(&self, host: &Host) -> Result<Arc<dyn HostDriver>> {
        check_endpoint(&host.endpoint)?;
        Ok(Arc::new(SimDriver {
            engine: self.engine(&host.endpoint),
            host_id: host.id.clone(),
            public_address: host.public_address.clone(),
        }))
    }
}

/// The [`HostDriver`] of one host on a simulated engine.
///
/// It behaves as the Docker driver's `# Behavior` docs say, without containers: a
/// cluster is a network record and one node record per blueprint node, labelled with
/// [`labels_for`](poolcore::labels_for); each named port is published on a host port
/// of its own and given as `public_address:port`; node commands, environments and
/// health checks are kept but not run (see [`SimEngine`] to make nodes fail).
#[derive(Debug)]
pub struct SimDriver {
    engine: SimEngine,
    host_id: String,
    public_address: String,
}

impl SimDriver {
    /// The engine this host runs on.
    pub fn engine(&self) -> &SimEngine {
        &self.engine
    }
}

#[async_trait]
impl HostDriver for SimDriver {
    fn capability(&self) -> Capability {
        Capability::new().with_node_control(true)
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn probe(&self) -> Result<EngineFacts> {
        self.engine.call(Op::Probe, |state| Ok(state.facts())).await
    }

    #[instrument(skip_all, fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn create_cluster(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Deployment> {
        self.engine
            .call(Op::Create, |state| {
                state.create(cluster, blueprint, &self.public_address, Mode::Create)
            })
            .await
    }

    /// Nodes that exited, are missing or are unhealthy run again, healthy, on the host
    /// ports the deployment records when they are free.
    #[instrument(skip_all, fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn repair_cluster(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Deployment> {
        self.engine
            .call(Op::Create, |state| {
                state.create(cluster, blueprint, &self.public_address, Mode::Repair)
            })
            .await
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn delete_cluster(&self, cluster_id: &str) -> Result<()> {
        self.engine
            .call(Op::Delete, |state| {
                state.delete(cluster_id);
                Ok(())
            })
            .await
    }

    #[instrument(skip(self, cluster), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn start_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment> {
        self.engine
            .call(Op::Start, |state| {
                state.start(&cluster.id, node, &self.public_address)
            })
            .await
    }

    #[instrument(skip(self, cluster), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn stop_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<()> {
        self.engine
            .call(Op::Stop, |state| state.stop(&cluster.id, node))
            .await
    }

    /// A restarted node is published on new host ports and is healthy again.
    #[instrument(skip(self, cluster), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn restart_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment> {
        self.engine
            .call(Op::Restart, |state| {
                state.restart(&cluster.id, node, &self.public_address)
            })
            .await
    }

    #[instrument(skip(self, cluster, _command), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn exec(&self, cluster: &Cluster, node: &str, _command: &[String]) -> Result<i64> {
        self.engine
            .call(Op::Inspect, |state| state.exec(&cluster.id, node))
            .await
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn inspect(&self) -> Result<Vec<ObservedCluster>> {
        self.engine
            .call(Op::Inspect, |state| Ok(state.inspect(&self.host_id)))
            .await
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn remove_all(&self) -> Result<u64> {
        self.engine
            .call(Op::Delete, |state| Ok(state.remove_all(&self.host_id)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chrono::Utc;
    use poolcore::conformance::driver::DriverHarness;
    use poolcore::{Error, NodeSpec, NodeState};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    use super::*;
    use crate::config::Latencies;
    use crate::SimCounters;

    /// A host record `id` on `endpoint`, as the driver suite makes them.
    fn host(id: &str, endpoint: &str) -> Host {
        let harness = DriverHarness::new(Arc::new(quiet()), endpoint);
        Host {
            id: id.to_owned(),
            ..harness.host(id)
        }
    }

    /// A blueprint of nodes `names`, each with an `http` port.
    fn blueprint(names: &[&str]) -> Blueprint {
        let node = |name: &&str| NodeSpec {
            name: (*name).to_owned(),
            image: "poolmanager/testnode:latest".to_owned(),
            command: Vec::new(),
            env: BTreeMap::new(),
            ports: BTreeMap::from([("http".to_owned(), "80/tcp".parse().unwrap())]),
            health: None,
            readiness: None,
        };
        Blueprint {
            name: "bp".to_owned(),
            labels: Default::default(),
            nodes: names.iter().map(node).collect(),
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

    fn quiet() -> SimConnector {
        SimConnector::from_config(SimConfig::new().with_serve_ports(false))
    }

    fn state_of(observed: &[ObservedCluster], cluster: &Cluster, node: &str) -> NodeState {
        let found = observed.iter().find(|c| c.cluster_id == cluster.id).unwrap();
        found.nodes[node].clone()
    }

    #[tokio::test]
    async fn connect_refuses_other_endpoints_naming_them() {
        let err = quiet().connect(&host("h", "tcp://10.0.0.1:2375")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "endpoint",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("tcp://10.0.0.1:2375") && err.to_string().contains("sim://NAME"));
    }

    #[tokio::test]
    async fn hosts_on_one_endpoint_share_an_engine_and_see_their_own_clusters() {
        let sim = quiet();
        let (a, b) = (host("a", "sim://one"), host("b", "sim://one"));
        let (da, db) = (sim.connect(&a).unwrap(), sim.connect(&b).unwrap());
        let other = sim.connect(&host("c", "sim://two")).unwrap();
        let bp = blueprint(&["vp0", "vp1"]);
        let ca = Cluster::new("ca", "bp", "a");
        da.create_cluster(&ca, &bp).await.unwrap();
        db.create_cluster(&Cluster::new("cb", "bp", "b"), &bp)
            .await
            .unwrap();

        let seen: Vec<String> = da
            .inspect()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.cluster_id)
            .collect();
        assert_eq!(seen, vec![ca.id.clone()]);
        assert_eq!(db.inspect().await.unwrap().len(), 1);
        assert_eq!(db.probe().await.unwrap().containers, 4, "one engine holds both");
        assert_eq!(other.probe().await.unwrap().containers, 0);
        let facts = other.probe().await.unwrap();
        assert!(facts.version.starts_with("sim-") && facts.cpus > 0 && facts.memory_bytes > 0);
        assert_eq!((facts.swarm.as_str(), facts.swarm_manager), ("inactive", false));

        let listed = sim.engine("sim://one").cluster(&ca.id).unwrap();
        assert_eq!(listed.labels, poolcore::labels_for(&ca, None));
        assert_eq!(listed.nodes["vp1"].labels, poolcore::labels_for(&ca, Some("vp1")));
        assert_eq!(da.remove_all().await.unwrap(), 1);
        assert_eq!(db.inspect().await.unwrap().len(), 1, "remove_all of a took b's");
    }

    #[tokio::test]
    async fn a_down_engine_is_unavailable_until_it_comes_back() {
        let sim = quiet();
        let driver = sim.connect(&host("h", "sim://flaky")).unwrap();
        let cluster = Cluster::new("c", "bp", "h");
        driver
            .create_cluster(&cluster, &blueprint(&["vp0"]))
            .await
            .unwrap();
        let engine = sim.engine("sim://flaky");

        engine.set_down(true);
        let outcomes = [
            driver.probe().await.map(drop),
            driver.inspect().await.map(drop),
            driver
                .create_cluster(&cluster, &blueprint(&["vp0"]))
                .await
                .map(drop),
            driver.stop_cluster(&cluster, None).await,
            driver.delete_cluster(&cluster.id).await,
            driver.remove_all().await.map(drop),
        ];
        for outcome in outcomes {
            let err = outcome.unwrap_err();
            assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
            assert!(err.to_string().contains("sim://flaky"), "{err}");
        }

        engine.set_down(false);
        let observed = driver.inspect().await.unwrap();
        assert_eq!(
            state_of(&observed, &cluster, "vp0"),
            NodeState::Running,
            "nodes ran on"
        );
    }

    #[tokio::test]
    async fn killed_and_unhealthy_nodes_are_reported_and_repaired_on_their_ports() {
        let sim = quiet();
        let driver = sim.connect(&host("h", "sim://faults")).unwrap();
        let engine = sim.engine("sim://faults");
        let bp = blueprint(&["vp0", "vp1", "vp2"]);
        let mut cluster = Cluster::new("c", "bp", "h");
        cluster.deployment = driver.create_cluster(&cluster, &bp).await.unwrap();

        engine.kill_node(&cluster.id, "vp0").unwrap();
        engine.make_unhealthy(&cluster.id, "vp1", "no quorum").unwrap();
        let observed = driver.inspect().await.unwrap();
        assert_eq!(
            state_of(&observed, &cluster, "vp0"),
            NodeState::Exited("killed".into())
        );
        assert_eq!(
            state_of(&observed, &cluster, "vp1"),
            NodeState::Unhealthy("no quorum".into())
        );
        assert_eq!(state_of(&observed, &cluster, "vp2"), NodeState::Running);
        let err = engine.make_unhealthy(&cluster.id, "vp0", "x").unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        assert!(engine.kill_node(&cluster.id, "vp9").unwrap_err().is_not_found());
        assert!(engine
            .kill_node("no-such-cluster", "vp0")
            .unwrap_err()
            .is_not_found());

        // A create adopts the unhealthy node as it is; a repair heals it.
        let created = driver.create_cluster(&cluster, &bp).await.unwrap();
        let observed = driver.inspect().await.unwrap();
        assert_eq!(state_of(&observed, &cluster, "vp0"), NodeState::Running);
        assert!(matches!(
            state_of(&observed, &cluster, "vp1"),
            NodeState::Unhealthy(_)
        ));
        assert_eq!(created.service_urls(), cluster.deployment.service_urls());

        engine.kill_node(&cluster.id, "vp0").unwrap();
        let repaired = driver.repair_cluster(&cluster, &bp).await.unwrap();
        assert_eq!(repaired, cluster.deployment, "same ids and endpoints");
        let observed = driver.inspect().await.unwrap();
        assert!(
            observed[0].nodes.values().all(|s| *s == NodeState::Running),
            "{observed:?}"
        );
    }

    #[tokio::test]
    async fn counters_count_what_the_engine_did() {
        let sim = quiet();
        let driver = sim.connect(&host("h", "sim://count")).unwrap();
        let engine = sim.engine("sim://count");
        let bp = blueprint(&["vp0", "vp1"]);
        let cluster = Cluster::new("c", "bp", "h");
        driver.create_cluster(&cluster, &bp).await.unwrap();
        driver.create_cluster(&cluster, &bp).await.unwrap();
        driver.stop_cluster(&cluster, Some("vp0")).await.unwrap();
        driver.start_cluster(&cluster, None).await.unwrap();
        driver.restart_cluster(&cluster, Some("vp1")).await.unwrap();
        driver.inspect().await.unwrap();
        driver.delete_cluster(&cluster.id).await.unwrap();
        driver.delete_cluster(&cluster.id).await.unwrap();
        let expected = SimCounters {
            creates: 2,
            nodes_created: 2,
            stops: 1,
            starts: 1,
            restarts: 1,
            inspects: 1,
            deletes: 1,
            most_creates_at_once: 1,
            ..SimCounters::default()
        };
        assert_eq!(engine.counters(), expected);
        engine.reset_counters();
        assert_eq!(engine.counters(), SimCounters::default());
    }

    #[tokio::test]
    async fn create_failures_follow_the_rate_and_repeat_with_the_seed() {
        let outcomes = |seed: u64| async move {
            let config = SimConfig::new()
                .with_serve_ports(false)
                .with_create_failure_rate(0.5)
                .with_seed(seed);
            let driver = SimConnector::from_config(config)
                .connect(&host("h", "sim://dice"))
                .unwrap();
            let mut failed = Vec::new();
            for i in 0..200 {
                let cluster = Cluster::new(format!("c{i}"), "bp", "h");
                failed.push(
                    driver
                        .create_cluster(&cluster, &blueprint(&["vp0"]))
                        .await
                        .is_err(),
                );
            }
            failed
        };
        let first = outcomes(7).await;
        assert_eq!(first, outcomes(7).await, "the same seed fails the same creates");
        assert_ne!(first, outcomes(8).await);
        let failures = first.iter().filter(|f| **f).count();
        assert!(
            (60..=140).contains(&failures),
            "{failures} of 200 failed at rate 0.5"
        );
    }

    #[tokio::test]
    async fn a_failed_create_is_completed_by_the_next() {
        let sim = SimConnector::from_config(
            SimConfig::new()
                .with_serve_ports(false)
                .with_create_failure_rate(1.0),
        );
        let driver = sim.connect(&host("h", "sim://failing")).unwrap();
        let engine = sim.engine("sim://failing");
        let cluster = Cluster::new("c", "bp", "h");
        let bp = blueprint(&["vp0"]);
        let err = driver.create_cluster(&cluster, &bp).await.unwrap_err();
        assert!(matches!(err, Error::Backend { backend: "sim", .. }), "{err:?}");
        let text = format!("{}", std::error::Error::source(&err).unwrap());
        assert!(
            text.contains(&cluster.id) && text.contains("simulated fault"),
            "{text}"
        );
        assert_eq!(engine.counters().create_failures, 1);

        engine.set_create_failure_rate(0.0);
        let made = driver.create_cluster(&cluster, &bp).await.unwrap();
        assert_eq!(made.nodes.len(), 1);
        assert_eq!(engine.clusters().len(), 1, "the half-done cluster was completed");

        let mut ghost = blueprint(&["vp0"]);
        ghost.nodes[0].image = "poolmanager/does-not-exist:1".to_owned();
        let err = driver
            .create_cluster(&Cluster::new("g", "bp", "h"), &ghost)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("poolmanager/does-not-exist:1"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn calls_take_their_latency_on_tokio_time() {
        let config = SimConfig::new()
            .with_serve_ports(false)
            .with_create_latency(Duration::from_secs(3))
            .with_stop_latency(Duration::from_secs(1))
            .with_start_latency(Duration::from_secs(2));
        let sim = SimConnector::from_config(config);
        let driver = sim.connect(&host("h", "sim://slow")).unwrap();
        let cluster = Cluster::new("c", "bp", "h");

        let started = Instant::now();
        driver
            .create_cluster(&cluster, &blueprint(&["vp0"]))
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        let started = Instant::now();
        driver.restart_cluster(&cluster, None).await.unwrap();
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(3),
            "a restart is a stop and a start"
        );
        let started = Instant::now();
        driver.inspect().await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);

        let engine = sim.engine("sim://slow");
        engine.set_latencies(Latencies {
            inspect_ms: 500,
            ..engine.latencies()
        });
        let started = Instant::now();
        driver.inspect().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(500));

        // A call slept on while its engine goes away fails when it wakes.
        let slow = tokio::spawn({
            let cluster = cluster.clone();
            async move { driver.stop_cluster(&cluster, None).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        engine.set_down(true);
        let err = slow.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    }

    /// Status line and body of a `GET /` on `address`.
    async fn get(address: &str) -> std::io::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: sim\r\n\r\n").await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let status = response.lines().next().unwrap_or_default().to_owned();
        let body = response
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_owned();
        Ok(format!("{status} {body}"))
    }

    #[tokio::test]
    async fn served_ports_answer_while_their_node_runs() {
        let sim = SimConnector::new();
        let driver = sim.connect(&host("h", "sim://served")).unwrap();
        let engine = sim.engine("sim://served");
        let bp = blueprint(&["vp0"]);
        let mut cluster = Cluster::new("c", "bp", "h");
        cluster.deployment = driver.create_cluster(&cluster, &bp).await.unwrap();
        let address = cluster.deployment.nodes["vp0"].endpoints["http"].clone();
        assert_eq!(get(&address).await.unwrap(), "HTTP/1.1 200 OK ok");

        driver.stop_cluster(&cluster, None).await.unwrap();
        assert!(
            get(&address).await.is_err(),
            "a stopped node's port still answers"
        );
        let started = driver.start_cluster(&cluster, None).await.unwrap();
        assert_eq!(
            get(&started.nodes["vp0"].endpoints["http"]).await.unwrap(),
            "HTTP/1.1 200 OK ok"
        );

        engine.kill_node(&cluster.id, "vp0").unwrap();
        let repaired = driver.repair_cluster(&cluster, &bp).await.unwrap();
        assert_eq!(
            repaired.nodes["vp0"].endpoints["http"], address,
            "repaired on its recorded port"
        );
        assert_eq!(get(&address).await.unwrap(), "HTTP/1.1 200 OK ok");

        driver.delete_cluster(&cluster.id).await.unwrap();
        assert!(
            get(&address).await.is_err(),
            "a deleted node's port still answers"
        );
    }

    #[tokio::test]
    async fn a_thousand_hosts_of_ten_clusters_stay_cheap() {
        let sim = quiet();
        let bp = blueprint(&["vp0", "vp1"]);
        let started = std::time::Instant::now();
        let mut drivers = Vec::new();
        for h in 0..1000 {
            let host = host(&format!("host-{h}"), "sim://scale");
            let driver = sim.connect(&host).unwrap();
            for c in 0..10 {
                let cluster = Cluster::new(format!("c{c}"), "bp", &host.id);
                driver.create_cluster(&cluster, &bp).await.unwrap();
            }
            drivers.push(driver);
        }
        for driver in &drivers {
            assert_eq!(driver.inspect().await.unwrap().len(), 10);
        }
        let engine = sim.engine("sim://scale");
        let counters = engine.counters();
        assert_eq!((counters.creates, counters.nodes_created), (10_000, 20_000));
        assert_eq!(drivers[0].probe().await.unwrap().containers, 20_000);
        assert_eq!(drivers[0].remove_all().await.unwrap(), 10);
        assert_eq!(drivers[1].inspect().await.unwrap().len(), 10);
        assert_eq!(drivers[2].probe().await.unwrap().containers, 19_980);
        println!(
            "1,000 hosts x 10 clusters: made and inspected in {:.0} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
}

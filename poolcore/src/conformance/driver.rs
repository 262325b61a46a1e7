//! Conformance cases for [`HostDriver`]: every `# Behavior` line of the trait (and of
//! [`Connector::connect`]), asserted against a real engine.
//!
//! A backend's `tests/conformance.rs` builds a [`DriverHarness`] from its connector and
//! the engine's endpoint, then calls [`run_all`] (or single cases):
//!
//! ```no_run
//! # async fn example(connector: std::sync::Arc<dyn poolcore::Connector>) {
//! use poolcore::conformance::driver::{run_all, DriverHarness};
//!
//! let harness = DriverHarness::new(connector, "unix:///var/run/docker.sock");
//! run_all(&harness).await; // panics naming every case that failed
//! # }
//! ```
//!
//! Each case makes its own hosts (unique ids) and clusters (random ids), and removes
//! them by label when it is done, so cases run side by side, on an engine that also runs
//! other things. The engine needs the [`TEST_IMAGE`] (or the one given with
//! [`DriverHarness::with_image`]): busybox with `sh`, `httpd`, `nc`, `echo` and
//! `sleep`, whose default command serves HTTP on port 80.
//!
//! ## Drivers that run no processes
//!
//! A driver without [`Capability::runs_processes`](crate::Capability::runs_processes)
//! (the simulated engine) plays the nodes' states but runs no command: its published
//! ports answer every request alike, and no script exits or fails a health check. Four
//! cases adapt to it, and the real-engine path of each is unchanged:
//!
//! - [`create_runs_every_node_and_publishes_ports`] checks that every published port
//!   answers, not the page each node's command serves.
//! - [`nodes_reach_each_other_by_name`] checks that both nodes are on the cluster's
//!   network and that the client's port answers, not that the client fetched the
//!   server's page.
//! - [`inspect_finds_exactly_this_hosts_clusters`] makes the crashing node exit through
//!   the harness's [`NodeFaults`] instead of its `exit 3`.
//! - [`unhealthy_node_is_reported`] makes the health check fail through [`NodeFaults`]
//!   instead of its `exit 1`.
//!
//! Such a driver's harness needs [`DriverHarness::with_node_faults`].

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::net::TcpStream;

use crate::driver::{Connector, HostDriver, NodeState, ObservedCluster};
use crate::model::{
    new_id, Blueprint, Cluster, Deployment, EngineFacts, HealthCheck, Host, HostKind, HostStatus, LogConfig,
    NodeSpec, PortSpec,
};
use crate::Error;

/// The image the cases run unless told otherwise. Its default command serves `ok` over
/// HTTP on port 80.
pub const TEST_IMAGE: &str = "poolmanager/testnode:latest";

/// The engine the tests use: `POOLMANAGER_TEST_DOCKER`, else `DOCKER_HOST`, else the
/// default local socket.
pub fn engine_from_env() -> String {
    std::env::var("POOLMANAGER_TEST_DOCKER")
        .or_else(|_| std::env::var("DOCKER_HOST"))
        .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
}

/// How long a node may take to answer, or to reach a state, before a case fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Makes a node fail the way a real node's command would, for engines that run no
/// processes (see the [module docs](self)): the engine's own test hooks do it.
pub trait NodeFaults: Send + Sync + 'static {
    /// Makes `node` of cluster `cluster_id` on `host`'s engine exit, as a command that
    /// ends does.
    fn exit(&self, host: &Host, cluster_id: &str, node: &str);

    /// Makes `node` of cluster `cluster_id` on `host`'s engine fail its health check.
    fn fail_health_check(&self, host: &Host, cluster_id: &str, node: &str);
}

/// What the cases need: a connector, the engine to test, and how to reach what it
/// publishes.
pub struct DriverHarness {
    connector: Arc<dyn Connector>,
    endpoint: String,
    public_address: String,
    image: String,
    missing_image: String,
    unreachable_endpoint: String,
    parallelism: usize,
    faults: Option<Arc<dyn NodeFaults>>,
    /// Every host a case was given, for the final clean-up.
    hosts: Mutex<Vec<Host>>,
}

impl std::fmt::Debug for DriverHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverHarness")
            .field("connector", &self.connector)
            .field("endpoint", &self.endpoint)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl DriverHarness {
    /// A harness for the engine at `endpoint`, reached through `connector`. Published
    /// ports are reached on `127.0.0.1` and nodes run [`TEST_IMAGE`].
    pub fn new(connector: Arc<dyn Connector>, endpoint: impl Into<String>) -> Self {
        DriverHarness {
            connector,
            endpoint: endpoint.into(),
            public_address: "127.0.0.1".to_owned(),
            image: TEST_IMAGE.to_owned(),
            missing_image: "poolmanager/does-not-exist:1".to_owned(),
            unreachable_endpoint: "tcp://127.0.0.1:1".to_owned(),
            parallelism: 4,
            faults: None,
            hosts: Mutex::new(Vec::new()),
        }
    }

    /// Address at which the test reaches published ports (the hosts' public address).
    pub fn with_public_address(mut self, address: impl Into<String>) -> Self {
        self.public_address = address.into();
        self
    }

    /// Image the nodes run: busybox with `sh`, `httpd`, `nc` and `echo`, serving HTTP
    /// on port 80 by default.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    /// An image no registry the engine reaches has, for the failed-pull case.
    pub fn with_missing_image(mut self, image: impl Into<String>) -> Self {
        self.missing_image = image.into();
        self
    }

    /// An endpoint of the connector's form where no engine answers.
    pub fn with_unreachable_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.unreachable_endpoint = endpoint.into();
        self
    }

    /// How many cases [`run_all`] runs at once (at least one).
    pub fn with_parallelism(mut self, cases: usize) -> Self {
        self.parallelism = cases.max(1);
        self
    }

    /// How nodes are made to fail on an engine that runs no processes; such a driver's
    /// harness needs it.
    pub fn with_node_faults(mut self, faults: impl NodeFaults) -> Self {
        self.faults = Some(Arc::new(faults));
        self
    }

    /// The engine's endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A new host record for the engine, with a unique id that labels what its driver
    /// makes. `case` makes the id readable.
    pub fn host(&self, case: &str) -> Host {
        let host = self.unregistered_host(case);
        if let Ok(mut hosts) = self.hosts.lock() {
            hosts.push(host.clone());
        }
        host
    }

    fn unregistered_host(&self, case: &str) -> Host {
        let id = new_id();
        Host {
            id: format!("conformance-{case}-{}", &id[..8]),
            name: format!("conformance-{case}-{}", &id[..8]),
            kind: self.connector.kind(),
            endpoint: self.endpoint.clone(),
            public_address: self.public_address.clone(),
            capacity: 10,
            autofill: false,
            schedulable: true,
            labels: Default::default(),
            log: None,
            status: HostStatus::Active,
            last_seen: None,
            last_error: None,
            facts: EngineFacts::default(),
            tls: None,
            created_at: Utc::now(),
            version: 0,
        }
    }

    /// The driver of `host`; panics if the connector refuses it.
    pub fn driver(&self, host: &Host) -> Arc<dyn HostDriver> {
        match self.connector.connect(host) {
            Ok(driver) => driver,
            Err(e) => panic!("connecting to {}: {e}", host.endpoint),
        }
    }

    /// Asks the engine who it is, through a throw-away host: lets a test tell whether an
    /// engine answers at all before it runs the cases.
    pub async fn probe_engine(&self) -> crate::Result<EngineFacts> {
        let host = self.unregistered_host("probe");
        self.connector.connect(&host)?.probe().await
    }

    /// The harness, once its engine answers and, for a swarm connector, is a swarm
    /// manager. Otherwise `None` with a notice on stderr; under `CI=true` a panic instead,
    /// since in CI a missing engine is a failure, never a skip.
    pub async fn ready(self) -> Option<Self> {
        let kind = self.connector.kind();
        let problem = match self.probe_engine().await {
            Ok(facts) if kind == HostKind::Swarm && !facts.swarm_manager => {
                format!("it is not a swarm manager (swarm state: {})", facts.swarm)
            }
            Ok(_) => return Some(self),
            Err(e) => e.to_string(),
        };
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "CI=true but the engine at {} cannot run {kind} hosts: {problem}",
                self.endpoint
            );
        }
        eprintln!(
            "skipping: the engine at {} cannot run {kind} hosts ({problem}); set POOLMANAGER_TEST_DOCKER",
            self.endpoint
        );
        None
    }

    /// Removes everything on every host this harness handed out (cases clean up after
    /// themselves; this catches what a failed case left). Returns the clusters removed.
    pub async fn cleanup(&self) -> u64 {
        let hosts = self
            .hosts
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        let mut removed = 0;
        for host in hosts.iter().filter(|h| h.endpoint == self.endpoint) {
            if let Ok(driver) = self.connector.connect(host) {
                removed += driver.remove_all().await.unwrap_or(0);
            }
        }
        removed
    }

    /// The fault hooks, for a case on a driver that runs no processes.
    fn faults(&self) -> &dyn NodeFaults {
        match &self.faults {
            Some(faults) => faults.as_ref(),
            None => panic!("the driver runs no processes: give the harness DriverHarness::with_node_faults"),
        }
    }

    /// A node running the test image's default command, serving HTTP on port 80 as `http`.
    fn web_node(&self, name: &str) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            image: self.image.clone(),
            command: Vec::new(),
            env: BTreeMap::new(),
            ports: BTreeMap::from([("http".to_owned(), port(80))]),
            health: None,
            readiness: None,
        }
    }

    /// A node running `script` with `sh -c`, without ports.
    fn script_node(&self, name: &str, script: &str) -> NodeSpec {
        NodeSpec {
            command: vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()],
            ports: BTreeMap::new(),
            ..self.web_node(name)
        }
    }
}

/// One case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's function name.
    pub name: &'static str,
    /// Runs it; panics when the driver misbehaves.
    pub run: for<'a> fn(&'a DriverHarness) -> BoxFuture<'a, ()>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

macro_rules! cases {
    ($($case:ident),+ $(,)?) => {
        /// Every case of the suite, in the order [`run_all`] starts them.
        pub const CASES: &[Case] = &[$(Case { name: stringify!($case), run: |h| Box::pin($case(h)) }),+];
    };
}

cases!(
    probe_reports_engine_facts,
    probe_of_unreachable_engine_is_unavailable,
    connect_refuses_unusable_endpoint,
    create_runs_every_node_and_publishes_ports,
    nodes_reach_each_other_by_name,
    create_is_idempotent,
    create_completes_a_half_done_create,
    create_labels_every_object,
    failed_pull_names_the_image,
    delete_removes_everything_and_is_idempotent,
    stop_start_restart_whole_cluster,
    stop_start_restart_one_node,
    repair_keeps_the_endpoints,
    unknown_node_is_not_found,
    inspect_finds_exactly_this_hosts_clusters,
    unhealthy_node_is_reported,
    exec_returns_the_exit_status,
    remove_all_cleans_only_this_host,
);

/// Runs every case in [`CASES`], several at once (see
/// [`DriverHarness::with_parallelism`]), then cleans up. Panics at the end naming each
/// failed case and why.
pub async fn run_all(harness: &DriverHarness) {
    let started = Instant::now();
    let outcomes: Vec<(&str, Result<(), String>)> = futures::stream::iter(CASES)
        .map(|case| async move {
            let outcome = AssertUnwindSafe((case.run)(harness)).catch_unwind().await;
            (case.name, outcome.map_err(|panic| panic_message(panic.as_ref())))
        })
        .buffer_unordered(harness.parallelism)
        .collect()
        .await;
    harness.cleanup().await;
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|(name, outcome)| Some(format!("  {name}: {}", outcome.as_ref().err()?)))
        .collect();
    println!(
        "driver conformance: {} passed, {} failed in {:.1}s",
        outcomes.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "driver conformance: {} of {} cases failed:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

// ---------------------------------------------------------------------------------------
// Cases

/// `probe`: returns the engine version, CPUs, memory, container count and swarm state.
pub async fn probe_reports_engine_facts(h: &DriverHarness) {
    let host = h.host("probe");
    let driver = h.driver(&host);
    let facts = ok(driver.probe().await, "probe");
    assert!(!facts.version.is_empty(), "no engine version in {facts:?}");
    assert!(facts.cpus > 0, "no CPUs in {facts:?}");
    assert!(facts.memory_bytes > 0, "no memory in {facts:?}");
    let states = ["inactive", "active", "pending", "error", "locked"];
    assert!(
        states.contains(&facts.swarm.as_str()),
        "swarm state {:?} unknown",
        facts.swarm
    );
    assert!(
        !facts.swarm_manager || facts.swarm == "active",
        "a manager of an inactive swarm: {facts:?}"
    );

    let bp = blueprint(vec![h.web_node("web")]);
    let cluster = cluster_on(&host, &bp);
    ok(driver.create_cluster(&cluster, &bp).await, "create");
    let facts = ok(driver.probe().await, "probe after create");
    assert!(
        facts.containers >= 1,
        "the engine runs our node but counts {} containers",
        facts.containers
    );
    clean(&*driver).await;
}

/// `probe`: an unreachable engine is `Unavailable`, naming the endpoint; `connect` does
/// not talk to the engine, so it succeeds.
pub async fn probe_of_unreachable_engine_is_unavailable(h: &DriverHarness) {
    let mut host = h.host("unreachable");
    host.endpoint = h.unreachable_endpoint.clone();
    let driver = h.driver(&host);
    let err = driver.probe().await.err();
    assert!(
        matches!(err, Some(Error::Unavailable { .. })),
        "probe of {} gave {err:?}, not Unavailable",
        host.endpoint
    );
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains(&host.endpoint),
        "{message:?} does not name {}",
        host.endpoint
    );
}

/// `connect`: an endpoint the connector cannot use is `Invalid`, naming it.
pub async fn connect_refuses_unusable_endpoint(h: &DriverHarness) {
    let mut host = h.host("bad-endpoint");
    host.endpoint = "ftp://nowhere.invalid:21".to_owned();
    match h.connector.connect(&host) {
        Err(e @ Error::Invalid { .. }) => {
            assert!(
                e.to_string().contains(&host.endpoint),
                "{e} does not name the endpoint"
            )
        }
        Err(e) => panic!("connect to {} gave {e:?}, not Invalid", host.endpoint),
        Ok(driver) => panic!("connect to {} gave a driver: {driver:?}", host.endpoint),
    }
}

/// `create_cluster`: every node runs with its command, env and health check; every named
/// port is published on its own free host port as `address:port`, and answers.
pub async fn create_runs_every_node_and_publishes_ports(h: &DriverHarness) {
    let mut host = h.host("create");
    host.log = Some(LogConfig {
        driver: "json-file".to_owned(),
        options: BTreeMap::from([("max-size".to_owned(), "1m".to_owned())]),
    });
    let driver = h.driver(&host);
    let mut web = h.web_node("web");
    web.health = Some(HealthCheck {
        command: "echo -e 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 80".to_owned(),
        interval_seconds: 1,
        retries: 3,
    });
    let mut echo = h.script_node(
        "echo",
        "echo \"$GREETING\" > /tmp/index.html && httpd -p 9090 -h /tmp && exec httpd -f -p 8080 -h /tmp",
    );
    echo.env = BTreeMap::from([("GREETING".to_owned(), "hello-from-env".to_owned())]);
    echo.ports = BTreeMap::from([("api".to_owned(), port(8080)), ("alt".to_owned(), port(9090))]);
    let bp = blueprint(vec![web, echo]);
    let cluster = cluster_on(&host, &bp);

    let deployment = ok(driver.create_cluster(&cluster, &bp).await, "create");
    assert_deployment(&host, &bp, &deployment);
    let ids: BTreeSet<&String> = deployment.nodes.values().map(|n| &n.id).collect();
    assert_eq!(ids.len(), 2, "nodes share a container id: {deployment:?}");
    let host_ports: BTreeSet<&String> = deployment
        .nodes
        .values()
        .flat_map(|n| n.endpoints.values())
        .collect();
    assert_eq!(host_ports.len(), 3, "ports share a host port: {deployment:?}");

    // Only a node that runs its command serves its own page; a simulated one answers.
    let runs_processes = driver.capability().runs_processes;
    let pages = [
        ("web", "http", "ok"),
        ("echo", "api", "hello-from-env"),
        ("echo", "alt", "hello-from-env"),
    ];
    for (node, port, page) in pages {
        let body = wait_http(endpoint(&deployment, node, port)).await;
        if runs_processes {
            assert_eq!(body.trim(), page, "page of {node}.{port}");
        }
    }
    // The health check passes, so the node counts as running.
    wait_state(&*driver, &cluster.id, "web", |s| *s == NodeState::Running).await;
    clean(&*driver).await;
}

/// `create_cluster`: nodes reach each other on the cluster's network by node name.
pub async fn nodes_reach_each_other_by_name(h: &DriverHarness) {
    let host = h.host("names");
    let driver = h.driver(&host);
    let server = h.script_node(
        "server",
        "echo greetings-from-server > /tmp/index.html && exec httpd -f -p 80 -h /tmp",
    );
    // The client fetches the server's page by its node name, then serves what it got.
    let mut client = h.script_node(
        "client",
        "until echo -e 'GET / HTTP/1.0\\r\\n\\r\\n' | nc server 80 > /tmp/index.html \
         && [ -s /tmp/index.html ]; do sleep 0.2; done; exec httpd -f -p 80 -h /tmp",
    );
    client.ports = BTreeMap::from([("http".to_owned(), port(80))]);
    let bp = blueprint(vec![server, client]);
    let cluster = cluster_on(&host, &bp);
    let deployment = ok(driver.create_cluster(&cluster, &bp).await, "create");
    let body = wait_http(endpoint(&deployment, "client", "http")).await;
    if driver.capability().runs_processes {
        assert!(
            body.contains("greetings-from-server"),
            "client fetched {body:?} from `server`"
        );
    } else {
        // No process fetches anything: both nodes on the cluster's network is what the
        // engine can show.
        let observed = observe(&*driver).await;
        let found = observed.iter().find(|c| c.cluster_id == cluster.id);
        let on_network = found.is_some_and(|c| c.network && c.nodes.len() == 2);
        assert!(
            on_network,
            "server and client are not on one network: {observed:?}"
        );
    }
    clean(&*driver).await;
}

/// `create_cluster`: idempotent; a second create adopts what exists.
pub async fn create_is_idempotent(h: &DriverHarness) {
    let host = h.host("idempotent");
    let driver = h.driver(&host);
    let bp = blueprint(vec![h.web_node("a"), h.web_node("b")]);
    let cluster = cluster_on(&host, &bp);
    let first = ok(driver.create_cluster(&cluster, &bp).await, "first create");
    let second = ok(driver.create_cluster(&cluster, &bp).await, "second create");
    assert_eq!(
        first.network_id, second.network_id,
        "a second create made another network"
    );
    for (node, made) in &first.nodes {
        assert_eq!(
            made.id, second.nodes[node].id,
            "a second create replaced node {node}"
        );
    }
    assert_deployment(&host, &bp, &second);
    wait_http(endpoint(&second, "b", "http")).await;
    assert_eq!(
        observe(&*driver).await.len(),
        1,
        "a second create made another cluster"
    );
    clean(&*driver).await;
}

/// `create_cluster`: after a half-done create (a node missing, a node stopped), calling it
/// again completes it and keeps what was made.
pub async fn create_completes_a_half_done_create(h: &DriverHarness) {
    let host = h.host("half-done");
    let driver = h.driver(&host);
    let full = blueprint(vec![h.web_node("a"), h.web_node("b")]);
    let half = Blueprint {
        nodes: vec![h.web_node("a")],
        ..full.clone()
    };
    let cluster = cluster_on(&host, &full);
    // As if the process died after making node `a`.
    let made = ok(driver.create_cluster(&cluster, &half).await, "create of node a");
    let done = ok(driver.create_cluster(&cluster, &full).await, "completing create");
    assert_deployment(&host, &full, &done);
    assert_eq!(
        done.nodes["a"].id, made.nodes["a"].id,
        "completing the create replaced node a"
    );
    wait_http(endpoint(&done, "b", "http")).await;

    // As if it died after creating node `b` but before starting it.
    ok(driver.stop_cluster(&cluster, Some("b")).await, "stop b");
    let again = ok(
        driver.create_cluster(&cluster, &full).await,
        "create with b stopped",
    );
    assert_eq!(
        again.nodes["b"].id, done.nodes["b"].id,
        "create replaced the stopped node b"
    );
    wait_http(endpoint(&again, "b", "http")).await;
    wait_state(&*driver, &cluster.id, "b", |s| *s == NodeState::Running).await;
    clean(&*driver).await;
}

/// `create_cluster`: every object carries the labels of `labels_for`, so `inspect` finds
/// the network and every node under the cluster's id.
pub async fn create_labels_every_object(h: &DriverHarness) {
    let host = h.host("labels");
    let driver = h.driver(&host);
    let bp = blueprint(vec![h.web_node("a"), h.web_node("b")]);
    let cluster = cluster_on(&host, &bp);
    ok(driver.create_cluster(&cluster, &bp).await, "create");
    let observed = observe(&*driver).await;
    assert_eq!(
        observed.len(),
        1,
        "expected one cluster on the host: {observed:?}"
    );
    let found = &observed[0];
    assert_eq!(found.cluster_id, cluster.id);
    assert!(found.network, "the cluster's network is not labelled: {found:?}");
    let nodes: BTreeSet<&str> = found.nodes.keys().map(String::as_str).collect();
    assert_eq!(nodes, BTreeSet::from(["a", "b"]), "node labels: {found:?}");
    clean(&*driver).await;
}

/// `create_cluster`: a missing image is pulled; a failed pull is an error naming the
/// image (and nothing panics). What was made is then deleted like any cluster.
pub async fn failed_pull_names_the_image(h: &DriverHarness) {
    let host = h.host("pull");
    let driver = h.driver(&host);
    let mut node = h.web_node("a");
    node.image = h.missing_image.clone();
    let bp = blueprint(vec![node]);
    let cluster = cluster_on(&host, &bp);
    let err = match driver.create_cluster(&cluster, &bp).await {
        Ok(made) => panic!(
            "created a cluster from missing image {}: {made:?}",
            h.missing_image
        ),
        Err(e) => e,
    };
    assert!(
        matches!(err, Error::Unavailable { .. } | Error::Backend { .. }),
        "a failed pull gave {err:?}, not Unavailable or Backend"
    );
    assert!(
        err.to_string().contains(&h.missing_image),
        "{err} does not name the image"
    );
    ok(
        driver.delete_cluster(&cluster.id).await,
        "delete after failed create",
    );
    assert!(
        observe(&*driver).await.is_empty(),
        "delete left objects of the failed create"
    );
}

/// `exec`: a command run in a node returns its exit status (for an exec readiness
/// probe); an unknown node is an error.
pub async fn exec_returns_the_exit_status(h: &DriverHarness) {
    let host = h.host("exec");
    let driver = h.driver(&host);
    let bp = blueprint(vec![h.web_node("a")]);
    let cluster = cluster_on(&host, &bp);
    let deployment = ok(driver.create_cluster(&cluster, &bp).await, "create");
    let made = Cluster {
        deployment,
        ..cluster.clone()
    };
    let run = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>();
    if driver.capability().runs_processes {
        let status = ok(
            driver.exec(&made, "a", &run(&["sh", "-c", "exit 3"])).await,
            "exec exit 3",
        );
        assert_eq!(status, 3, "the command's exit status");
        let status = ok(driver.exec(&made, "a", &run(&["true"])).await, "exec true");
        assert_eq!(status, 0, "a command that succeeds");
    } else if let Ok(status) = driver.exec(&made, "a", &run(&["true"])).await {
        assert_eq!(status, 0, "a simulated command succeeds");
    }
    assert!(
        driver.exec(&made, "nope", &run(&["true"])).await.is_err(),
        "exec in an unknown node"
    );
    clean(&*driver).await;
}

/// `delete_cluster`: removes every object of the cluster, and only of it; removing what
/// is already gone succeeds.
pub async fn delete_removes_everything_and_is_idempotent(h: &DriverHarness) {
    let host = h.host("delete");
    let driver = h.driver(&host);
    let bp = blueprint(vec![h.web_node("a"), h.web_node("b")]);
    let doomed = cluster_on(&host, &bp);
    let kept = cluster_on(&host, &bp);
    ok(driver.create_cluster(&doomed, &bp).await, "create doomed");
    ok(driver.create_cluster(&kept, &bp).await, "create kept");
    ok(driver.delete_cluster(&doomed.id).await, "delete");
    let left: Vec<String> = observe(&*driver)
        .await
        .into_iter()
        .map(|c| c.cluster_id)
        .collect();
    assert_eq!(left, vec![kept.id.clone()], "after deleting {}", doomed.id);
    ok(driver.delete_cluster(&doomed.id).await, "second delete");
    ok(
        driver.delete_cluster(&new_id()).await,
        "delete of a cluster never made",
    );
    clean(&*driver).await;
}

/// `stop_cluster`, `start_cluster`, `restart_cluster` on the whole cluster: stopping what
/// is stopped and starting what runs succeed; start and restart read endpoints back.
pub async fn stop_start_restart_whole_cluster(h: &DriverHarness) {
    let host = h.host("control");
    let driver = h.driver(&host);
    let bp = blueprint(vec![h.web_node("a"), h.web_node("b")]);
    let cluster = cluster_on(&host, &bp);
    let created = ok(driver.create_cluster(&cluster, &bp).await, "create");

    ok(driver.stop_cluster(&cluster, None).await, "stop");
    for node in ["a", "b"] {
        wait_state(&*driver, &cluster.id, node, |s| matches!(s, NodeState::Exited(_))).await;
    }
    ok(
        driver.stop_cluster(&cluster, None).await,
        "stop of a stopped cluster",
    );

    let started = ok(driver.start_cluster(&cluster, None).await, "start");
    assert_deployment(&host, &bp, &started);
    for node in ["a", "b"] {
        assert_eq!(
            started.nodes[node].id, created.nodes[node].id,
            "start replaced node {node}"
        );
        wait_http(endpoint(&started, node, "http")).await;
    }
    let again = ok(
        driver.start_cluster(&cluster, None).await,
        "start of a running cluster",
    );
    assert_deployment(&host, &bp, &again);

    let restarted = ok(driver.restart_cluster(&cluster, None).await, "restart");
    assert_deployment(&host, &bp, &restarted);
    for node in ["a", "b"] {
        wait_http(endpoint(&restarted, node, "http")).await;
        wait_state(&*driver, &cluster.id, node, |s| *s == NodeState::Running).await;
    }
    clean(&*driver).await;
}

/// `stop_cluster`, `start_cluster`, `restart_cluster` on one node: only that node
/// changes, and start and restart return its endpoints.
pub async fn stop_start_restart_one_node(h: &DriverHarness) {
    let host = h.host("node-control");
    let driver = h.driver(&host);
    let bp = blueprint(vec![h.web_node("a"), h.web_node("b")]);
    let cluster = cluster_on(&host, &bp);
    ok(driver.create_cluster(&cluster, &bp).await, "create");

    ok(driver.stop_cluster(&cluster, Some("a")).await, "stop a");
    wait_state(&*driver, &cluster.id, "a", |s| matches!(s, NodeState::Exited(_))).await;
    assert_eq!(
        node_state(&*driver, &cluster.id, "b").await,
        Some(NodeState::Running),
        "b after stop a"
    );
    ok(
        driver.stop_cluster(&cluster, Some("a")).await,
        "stop of stopped a",
    );

    let started = ok(driver.start_cluster(&cluster, Some("a")).await, "start a");
    assert_eq!(
        started.nodes.keys().collect::<Vec<_>>(),
        ["a"],
        "start a returned {started:?}"
    );
    wait_http(endpoint(&started, "a", "http")).await;

    let restarted = ok(driver.restart_cluster(&cluster, Some("b")).await, "restart b");
    assert_eq!(
        restarted.nodes.keys().collect::<Vec<_>>(),
        ["b"],
        "restart b returned {restarted:?}"
    );
    wait_http(endpoint(&restarted, "b", "http")).await;
    wait_state(&*driver, &cluster.id, "a", |s| *s == NodeState::Running).await;
    clean(&*driver).await;
}

/// `repair_cluster`: a node that exited runs again on the endpoints the deployment
/// records; a running node is left as it is.
pub async fn repair_keeps_the_endpoints(h: &DriverHarness) {
    let host = h.host("repair");
    let driver = h.driver(&host);
    let bp = blueprint(vec![h.web_node("a"), h.web_node("b")]);
    let mut cluster = cluster_on(&host, &bp);
    cluster.deployment = ok(driver.create_cluster(&cluster, &bp).await, "create");

    ok(driver.stop_cluster(&cluster, Some("a")).await, "stop a");
    wait_state(&*driver, &cluster.id, "a", |s| matches!(s, NodeState::Exited(_))).await;
    let repaired = ok(driver.repair_cluster(&cluster, &bp).await, "repair");
    assert_eq!(
        repaired.service_urls(),
        cluster.deployment.service_urls(),
        "repair keeps every endpoint"
    );
    assert_eq!(
        repaired.nodes["b"].id, cluster.deployment.nodes["b"].id,
        "the running node is left as it is"
    );
    wait_http(endpoint(&repaired, "a", "http")).await;
    wait_http(endpoint(&repaired, "b", "http")).await;
    clean(&*driver).await;
}

/// `start_cluster`, `stop_cluster`, `restart_cluster`: an unknown node is `NotFound`.
pub async fn unknown_node_is_not_found(h: &DriverHarness) {
    let host = h.host("unknown-node");
    let driver = h.driver(&host);
    let bp = blueprint(vec![h.web_node("a")]);
    let cluster = cluster_on(&host, &bp);
    ok(driver.create_cluster(&cluster, &bp).await, "create");
    let node = Some("no-such-node");
    let outcomes = [
        ("start", driver.start_cluster(&cluster, node).await.err()),
        ("stop", driver.stop_cluster(&cluster, node).await.err()),
        ("restart", driver.restart_cluster(&cluster, node).await.err()),
    ];
    for (call, err) in outcomes {
        assert!(
            matches!(err, Some(Error::NotFound { .. })),
            "{call} of an unknown node gave {err:?}, not NotFound"
        );
    }
    assert_eq!(
        node_state(&*driver, &cluster.id, "a").await,
        Some(NodeState::Running)
    );
    clean(&*driver).await;
}

/// `inspect`: finds exactly this host's clusters by label, with each node's state; a node
/// that exited is `Exited`.
pub async fn inspect_finds_exactly_this_hosts_clusters(h: &DriverHarness) {
    let host = h.host("inspect");
    let other_host = h.host("inspect-other");
    let driver = h.driver(&host);
    let other = h.driver(&other_host);
    assert!(
        observe(&*driver).await.is_empty(),
        "a new host already has clusters"
    );

    let healthy = blueprint(vec![h.web_node("web")]);
    let crashing = blueprint(vec![h.web_node("web"), h.script_node("crash", "exit 3")]);
    let first = cluster_on(&host, &healthy);
    let second = cluster_on(&host, &crashing);
    let elsewhere = cluster_on(&other_host, &healthy);
    ok(driver.create_cluster(&first, &healthy).await, "create first");
    ok(driver.create_cluster(&second, &crashing).await, "create second");
    ok(
        other.create_cluster(&elsewhere, &healthy).await,
        "create on the other host",
    );
    if !driver.capability().runs_processes {
        h.faults().exit(&host, &second.id, "crash");
    }

    let ids: BTreeSet<String> = observe(&*driver)
        .await
        .into_iter()
        .map(|c| c.cluster_id)
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([first.id.clone(), second.id.clone()]),
        "inspect of {}",
        host.id
    );
    let state = wait_state(&*driver, &second.id, "crash", |s| {
        matches!(s, NodeState::Exited(_))
    })
    .await;
    assert!(
        matches!(state, NodeState::Exited(ref why) if !why.is_empty()),
        "no reason in {state:?}"
    );
    wait_state(&*driver, &first.id, "web", |s| *s == NodeState::Running).await;
    wait_state(&*driver, &second.id, "web", |s| *s == NodeState::Running).await;
    let others: Vec<String> = observe(&*other).await.into_iter().map(|c| c.cluster_id).collect();
    assert_eq!(others, vec![elsewhere.id.clone()], "inspect of {}", other_host.id);
    clean(&*driver).await;
    clean(&*other).await;
}

/// `inspect`: a node whose health check fails is `Unhealthy` (drivers that run health
/// checks, or that run no processes at all and fail the check through [`NodeFaults`]).
pub async fn unhealthy_node_is_reported(h: &DriverHarness) {
    let host = h.host("unhealthy");
    let driver = h.driver(&host);
    let capability = driver.capability();
    if capability.runs_processes && !capability.health_checks {
        return;
    }
    // Without ports: a swarm publishes a node's ports only once its health check passes,
    // so a node with ports that never gets healthy cannot be created there; reporting
    // the failing check is what this case is about.
    let mut sick = h.script_node("sick", "exec httpd -f -p 80");
    sick.health = Some(HealthCheck {
        command: "exit 1".to_owned(),
        interval_seconds: 1,
        retries: 1,
    });
    let bp = blueprint(vec![sick]);
    let cluster = cluster_on(&host, &bp);
    ok(driver.create_cluster(&cluster, &bp).await, "create");
    if !capability.runs_processes {
        h.faults().fail_health_check(&host, &cluster.id, "sick");
    }
    wait_state(&*driver, &cluster.id, "sick", |s| {
        matches!(s, NodeState::Unhealthy(_))
    })
    .await;
    clean(&*driver).await;
}

/// `remove_all`: removes every object of this host, and nothing of another; returns how
/// many clusters had objects.
pub async fn remove_all_cleans_only_this_host(h: &DriverHarness) {
    let host = h.host("remove-all");
    let other_host = h.host("remove-all-other");
    let driver = h.driver(&host);
    let other = h.driver(&other_host);
    let bp = blueprint(vec![h.web_node("a"), h.script_node("b", "sleep 600")]);
    for _ in 0..2 {
        let cluster = cluster_on(&host, &bp);
        ok(driver.create_cluster(&cluster, &bp).await, "create");
    }
    let kept = cluster_on(&other_host, &bp);
    ok(other.create_cluster(&kept, &bp).await, "create on the other host");

    assert_eq!(ok(driver.remove_all().await, "remove_all"), 2, "clusters removed");
    assert!(observe(&*driver).await.is_empty(), "remove_all left objects");
    assert_eq!(ok(driver.remove_all().await, "second remove_all"), 0);
    let others: Vec<String> = observe(&*other).await.into_iter().map(|c| c.cluster_id).collect();
    assert_eq!(others, vec![kept.id.clone()], "remove_all touched another host");
    assert_eq!(node_state(&*other, &kept.id, "a").await, Some(NodeState::Running));
    assert_eq!(ok(other.remove_all().await, "remove_all of the other host"), 1);
}

// ---------------------------------------------------------------------------------------
// Helpers

fn port(port: u16) -> PortSpec {
    PortSpec {
        port,
        protocol: crate::model::Protocol::Tcp,
    }
}

/// A blueprint of `nodes` with a unique name.
fn blueprint(nodes: Vec<NodeSpec>) -> Blueprint {
    Blueprint {
        name: format!("conformance-{}", &new_id()[..8]),
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

fn cluster_on(host: &Host, blueprint: &Blueprint) -> Cluster {
    Cluster::new("conf", &blueprint.name, &host.id)
}

/// The value of `result`, or a panic saying which call failed and how.
fn ok<T>(result: crate::Result<T>, call: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{call} failed: {e}"),
    }
}

/// Removes what a case made, failing the case if the driver cannot.
async fn clean(driver: &dyn HostDriver) {
    ok(driver.remove_all().await, "clean-up");
}

async fn observe(driver: &dyn HostDriver) -> Vec<ObservedCluster> {
    ok(driver.inspect().await, "inspect")
}

async fn node_state(driver: &dyn HostDriver, cluster_id: &str, node: &str) -> Option<NodeState> {
    let observed = observe(driver).await;
    let cluster = observed.into_iter().find(|c| c.cluster_id == cluster_id)?;
    cluster.nodes.get(node).cloned()
}

/// Polls `inspect` until `node` of the cluster is in a state `wanted` accepts; panics
/// after [`PATIENCE`].
async fn wait_state(
    driver: &dyn HostDriver,
    cluster_id: &str,
    node: &str,
    wanted: impl Fn(&NodeState) -> bool,
) -> NodeState {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = node_state(driver, cluster_id, node).await;
        match state {
            Some(state) if wanted(&state) => return state,
            _ if Instant::now() >= deadline => panic!("node {node} of cluster {cluster_id} stayed {state:?}"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Checks that `deployment` has every node of `blueprint`, each with an id and every
/// named port at `public_address:port`.
fn assert_deployment(host: &Host, blueprint: &Blueprint, deployment: &Deployment) {
    let nodes: BTreeSet<&String> = deployment.nodes.keys().collect();
    let wanted: BTreeSet<&String> = blueprint.nodes.iter().map(|n| &n.name).collect();
    assert_eq!(nodes, wanted, "nodes of {deployment:?}");
    for spec in &blueprint.nodes {
        let made = &deployment.nodes[&spec.name];
        assert!(!made.id.is_empty(), "node {} has no id", spec.name);
        let ports: BTreeSet<&String> = made.endpoints.keys().collect();
        assert_eq!(ports, spec.ports.keys().collect(), "ports of node {}", spec.name);
        for (name, address) in &made.endpoints {
            let host_port = address.strip_prefix(&format!("{}:", host.public_address));
            let valid = host_port
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p > 0);
            assert!(valid, "endpoint {name} of node {} is {address:?}", spec.name);
        }
    }
}

fn endpoint<'a>(deployment: &'a Deployment, node: &str, port: &str) -> &'a str {
    match deployment.nodes.get(node).and_then(|n| n.endpoints.get(port)) {
        Some(address) => address,
        None => panic!("no endpoint {port} of node {node} in {deployment:?}"),
    }
}

/// Body of `GET /` at `address`, once it answers 200; panics after [`PATIENCE`].
async fn wait_http(address: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let last = match http_get(address).await {
            Ok((200, body)) => return body,
            Ok((status, body)) => format!("status {status}: {body:?}"),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            panic!("{address} never answered 200 (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A plain HTTP/1.0 `GET /`: status and body.
async fn http_get(address: &str) -> io::Result<(u16, String)> {
    let exchange = async {
        let stream = TcpStream::connect(address).await?;
        let request = b"GET / HTTP/1.0\r\nHost: poolmanager\r\n\r\n";
        let mut written = 0;
        while written < request.len() {
            stream.writable().await?;
            match stream.try_write(&request[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            stream.readable().await?;
            match stream.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {address} in 5s")))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("not HTTP: {head:?}")))?;
    Ok((status, body.to_owned()))
}

//! The simulated engines: what each holds (clusters, nodes, published ports), how the
//! driver's calls change it, and the [`SimEngine`] handle tests use to inject faults
//! and read counters.

use std::collections::{hash_map, BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use poolcore::driver::LABEL_NODE;
use poolcore::{
    labels_for, Blueprint, Cluster, Deployment, EngineFacts, Error, Labels, NodeDeployment, NodeSpec,
    NodeState, ObservedCluster, PortSpec, Result,
};

use crate::config::{clamp_rate, Latencies, SimConfig};
use crate::error::{nothing_of, SimError};
use crate::ports::{Ports, Published};

/// Images whose name holds this fail to pull: the conformance harness's missing image.
const MISSING_IMAGE_MARK: &str = "does-not-exist";

/// CPUs and memory every simulated engine reports.
const CPUS: u64 = 8;
const MEMORY_BYTES: u64 = 16 << 30;

/// How many of each call an engine answered (see each field); for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimCounters {
    /// Successful `probe` calls.
    pub probes: u64,
    /// Successful `create_cluster` calls (adopting what exists counts too).
    pub creates: u64,
    /// Successful `repair_cluster` calls.
    pub repairs: u64,
    /// `create_cluster` and `repair_cluster` calls that failed: a failed pull, an
    /// injected fault, no free port.
    pub create_failures: u64,
    /// Node containers made (not adopted) by creates and repairs.
    pub nodes_created: u64,
    /// Clusters removed, by `delete_cluster` or `remove_all`; removing what is gone does
    /// not count.
    pub deletes: u64,
    /// Successful `start_cluster` calls.
    pub starts: u64,
    /// Successful `stop_cluster` calls.
    pub stops: u64,
    /// Successful `restart_cluster` calls.
    pub restarts: u64,
    /// Successful `inspect` calls.
    pub inspects: u64,
    /// Successful `exec` calls (readiness probes).
    pub execs: u64,
    /// Most `create_cluster` calls in flight at once, by any host on the engine.
    pub most_creates_at_once: u64,
}

/// One cluster on a simulated engine, as [`SimEngine::clusters`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimCluster {
    /// The cluster's id (its [`LABEL_CLUSTER`](poolcore::driver::LABEL_CLUSTER)).
    pub cluster_id: String,
    /// The host that made it (its [`LABEL_HOST`](poolcore::driver::LABEL_HOST)).
    pub host_id: String,
    /// Its network's id.
    pub network_id: String,
    /// Its network's labels, from [`labels_for`].
    pub labels: Labels,
    /// Node name → node.
    pub nodes: BTreeMap<String, SimNode>,
}

/// One node of a [`SimCluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimNode {
    /// Container id.
    pub id: String,
    /// Image it was made from.
    pub image: String,
    /// Its labels, from [`labels_for`].
    pub labels: Labels,
    /// What `inspect` reports for it.
    pub state: NodeState,
    /// Port name → host port, while it runs.
    pub ports: BTreeMap<String, u16>,
}

/// A handle on one simulated engine, shared by every host on its endpoint: cloning it
/// gives another handle on the same engine.
///
/// Tests use it to make the engine misbehave ([`SimEngine::set_down`],
/// [`SimEngine::kill_node`], [`SimEngine::make_unhealthy`],
/// [`SimEngine::set_create_failure_rate`], [`SimEngine::set_latencies`]) and to see
/// what it did ([`SimEngine::counters`], [`SimEngine::clusters`]).
///
/// Every call costs a few map operations on the clusters it touches; `inspect` and
/// `remove_all` only visit the clusters of their host, so an engine with 100,000
/// clusters answers as fast as one with ten.
#[derive(Clone)]
pub struct SimEngine {
    shared: Arc<Shared>,
}

struct Shared {
    endpoint: String,
    state: Mutex<State>,
}

impl fmt::Debug for SimEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimEngine")
            .field("endpoint", &self.shared.endpoint)
            .finish_non_exhaustive()
    }
}

/// A kind of driver call, for its latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Probe,
    Create,
    Start,
    Stop,
    Restart,
    Delete,
    Inspect,
}

impl SimEngine {
    /// A new, empty engine at `endpoint`.
    pub(crate) fn new(endpoint: &str, config: &SimConfig) -> Self {
        let state = State {
            down: false,
            latency: config.latency,
            failure_rate: clamp_rate(config.create_failure_rate),
            rng: SplitMix64(config.seed ^ fnv1a(endpoint)),
            clusters: HashMap::new(),
            by_host: HashMap::new(),
            ports: Ports::new(config.serve_ports),
            last_id: 0,
            nodes: 0,
            creates_in_flight: 0,
            exec_status: 0,
            counters: SimCounters::default(),
        };
        SimEngine {
            shared: Arc::new(Shared {
                endpoint: endpoint.to_owned(),
                state: Mutex::new(state),
            }),
        }
    }

    /// The engine's endpoint, `sim://NAME`.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// Takes the engine away (`true`) or brings it back (`false`). While it is away,
    /// every driver call fails with [`Error::Unavailable`] naming the endpoint; what runs
    /// on it keeps running, as containers do while their engine restarts.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Whether the engine is away.
    pub fn is_down(&self) -> bool {
        self.state().down
    }

    /// Makes the running `node` of `cluster_id` exit, as if its process was killed: it
    /// is [`NodeState::Exited`]`("killed")` and its ports close. An unknown cluster or
    /// node is [`Error::NotFound`].
    pub fn kill_node(&self, cluster_id: &str, node: &str) -> Result<()> {
        let mut state = self.state();
        let (ports, found) = state.node_mut(cluster_id, node)?;
        found.stop(ports, "killed");
        Ok(())
    }

    /// Makes the running `node` of `cluster_id` fail its health check with `why`: it is
    /// [`NodeState::Unhealthy`] until it restarts or is repaired. An unknown cluster or
    /// node is [`Error::NotFound`]; a node that does not run is [`Error::Conflict`].
    pub fn make_unhealthy(&self, cluster_id: &str, node: &str, why: impl Into<String>) -> Result<()> {
        let mut state = self.state();
        let (_, found) = state.node_mut(cluster_id, node)?;
        match &mut found.run {
            Run::Running { unhealthy, .. } => {
                *unhealthy = Some(why.into());
                Ok(())
            }
            _ => Err(Error::conflict(format!(
                "node {node:?} of cluster {cluster_id} does not run ({:?}): only a running node can fail \
                 its health check",
                found.run.state()
            ))),
        }
    }

    /// Sets what every command run in a running node (an `exec` readiness probe)
    /// exits with: 0, the default, passes.
    pub fn set_exec_status(&self, status: i64) {
        self.state().exec_status = status;
    }

    /// Sets the share of creates and repairs that fail (clamped to 0..=1).
    pub fn set_create_failure_rate(&self, rate: f64) {
        self.state().failure_rate = clamp_rate(rate);
    }

    /// The share of creates and repairs that fail.
    pub fn create_failure_rate(&self) -> f64 {
        self.state().failure_rate
    }

    /// Sets how long each kind of call takes from now on.
    pub fn set_latencies(&self, latency: Latencies) {
        self.state().latency = latency;
    }

    /// How long each kind of call takes.
    pub fn latencies(&self) -> Latencies {
        self.state().latency
    }

    /// Whether published TCP ports listen for real ([`SimConfig::serve_ports`]).
    pub fn serves_ports(&self) -> bool {
        self.state().ports.serve()
    }

    /// What the engine answered so far.
    pub fn counters(&self) -> SimCounters {
        self.state().counters
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        self.state().counters = SimCounters::default();
    }

    /// Every cluster on the engine, of every host, by cluster id. Visits them all: for
    /// tests, not for hot paths.
    pub fn clusters(&self) -> Vec<SimCluster> {
        let state = self.state();
        let mut all: Vec<SimCluster> = state
            .clusters
            .iter()
            .map(|(id, record)| record.describe(id))
            .collect();
        all.sort_by(|a, b| a.cluster_id.cmp(&b.cluster_id));
        all
    }

    /// The cluster `cluster_id`, if the engine has it.
    pub fn cluster(&self, cluster_id: &str) -> Option<SimCluster> {
        let state = self.state();
        state
            .clusters
            .get(cluster_id)
            .map(|record| record.describe(cluster_id))
    }

    /// Runs one driver call: fails at once while the engine is down, waits the call's
    /// latency, then applies `change` to the engine in one step.
    ///
    /// Listeners closed by earlier calls are awaited before `change` (so a node published
    /// again on their ports gets them), and those this call closed before it returns (so
    /// a stopped node's ports refuse connections once `stop_cluster` returns).
    pub(crate) async fn call<T>(&self, op: Op, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let latency = {
            let mut state = self.state();
            self.check_up(&state)?;
            if op == Op::Create {
                state.creates_in_flight += 1;
                let now = state.creates_in_flight;
                let most = &mut state.counters.most_creates_at_once;
                *most = (*most).max(now);
            }
            state.latency_of(op)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.settle().await;
        let outcome = {
            let mut state = self.state();
            if op == Op::Create {
                state.creates_in_flight -= 1;
            }
            self.check_up(&state).and_then(|()| change(&mut state))
        };
        self.settle().await;
        outcome
    }

    fn check_up(&self, state: &State) -> Result<()> {
        if state.down {
            return Err(Error::unavailable(
                format!("simulated engine at {}", self.shared.endpoint),
                "it is down (SimEngine::set_down)",
            ));
        }
        Ok(())
    }

    /// Waits until every listener told to stop has closed its port.
    async fn settle(&self) {
        let closing = std::mem::take(&mut self.state().ports.closing);
        for task in closing {
            // An aborted task ends with a cancellation, after its listener is dropped.
            let _ = task.await;
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held left the engine as it was at that moment,
        // which is still a consistent simulated engine.
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything on one engine.
pub(crate) struct State {
    down: bool,
    latency: Latencies,
    failure_rate: f64,
    rng: SplitMix64,
    /// Cluster id → cluster.
    clusters: HashMap<String, ClusterRecord>,
    /// Host id → ids of its clusters: `inspect` and `remove_all` visit only these.
    by_host: HashMap<String, BTreeSet<String>>,
    ports: Ports,
    /// Number in the last container or network id handed out.
    last_id: u64,
    /// Nodes on the engine, of every host.
    nodes: u64,
    /// `create_cluster` calls in flight now.
    creates_in_flight: u64,
    /// What every `exec` in a running node exits with.
    exec_status: i64,
    counters: SimCounters,
}

/// Whether a create makes the cluster anew or repairs an applied one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `create_cluster`: nodes that run are left as they are.
    Create,
    /// `repair_cluster`: unhealthy nodes are made healthy too.
    Repair,
}

impl State {
    fn latency_of(&self, op: Op) -> Duration {
        let l = &self.latency;
        let ms = match op {
            Op::Probe => l.probe_ms,
            Op::Create => l.create_ms,
            Op::Start => l.start_ms,
            Op::Stop => l.stop_ms,
            Op::Restart => l.stop_ms.saturating_add(l.start_ms),
            Op::Delete => l.delete_ms,
            Op::Inspect => l.inspect_ms,
        };
        Duration::from_millis(ms)
    }

    /// What the engine is and holds.
    pub(crate) fn facts(&mut self) -> EngineFacts {
        self.counters.probes += 1;
        EngineFacts {
            version: format!("sim-{}", env!("CARGO_PKG_VERSION")),
            cpus: CPUS,
            memory_bytes: MEMORY_BYTES,
            containers: self.nodes,
            swarm: "inactive".to_owned(),
            swarm_manager: false,
        }
    }

    /// Makes (or adopts) the network and every node of `blueprint` and runs them, on
    /// the host ports `cluster.deployment` records when they are free. What runs is left
    /// as it is, except that a repair makes unhealthy nodes healthy.
    pub(crate) fn create(
        &mut self,
        cluster: &Cluster,
        blueprint: &Blueprint,
        public_address: &str,
        mode: Mode,
    ) -> Result<Deployment> {
        let outcome = self.create_nodes(cluster, blueprint, public_address, mode);
        let counter = match (&outcome, mode) {
            (Err(_), _) => &mut self.counters.create_failures,
            (Ok(_), Mode::Create) => &mut self.counters.creates,
            (Ok(_), Mode::Repair) => &mut self.counters.repairs,
        };
        *counter += 1;
        outcome
    }

    fn create_nodes(
        &mut self,
        cluster: &Cluster,
        blueprint: &Blueprint,
        public_address: &str,
        mode: Mode,
    ) -> Result<Deployment> {
        let State {
            clusters,
            by_host,
            ports,
            counters,
            last_id,
            nodes,
            rng,
            failure_rate,
            ..
        } = self;
        let record = match clusters.entry(cluster.id.clone()) {
            hash_map::Entry::Occupied(found) => found.into_mut(),
            hash_map::Entry::Vacant(missing) => {
                let ids = by_host.entry(cluster.host_id.clone()).or_default();
                ids.insert(cluster.id.clone());
                missing.insert(ClusterRecord::new(cluster, new_id(last_id, "net")))
            }
        };
        // The network comes first, as on a real engine: a failed pull leaves it behind,
        // for the next create (or a delete) to deal with.
        if let Some(node) = blueprint
            .nodes
            .iter()
            .find(|n| n.image.contains(MISSING_IMAGE_MARK))
        {
            let image = node.image.clone();
            return Err(SimError::PullFailed { image }.into());
        }
        if *failure_rate > 0.0 && rng.unit() < *failure_rate {
            let cluster_id = cluster.id.clone();
            let rate = *failure_rate;
            return Err(SimError::CreateFault { cluster_id, rate }.into());
        }
        for spec in &blueprint.nodes {
            let at = match record.nodes.iter().position(|(name, _)| *name == spec.name) {
                Some(at) => at,
                None => {
                    *nodes += 1;
                    counters.nodes_created += 1;
                    let node = NodeRecord::new(new_id(last_id, "node"), spec);
                    record.nodes.push((spec.name.clone(), node));
                    record.nodes.len() - 1
                }
            };
            let node = &mut record.nodes[at].1;
            if mode == Mode::Repair {
                node.heal();
            }
            node.start(ports, &spec.name, &cluster.recorded_ports(spec))?;
        }
        let names = blueprint.nodes.iter().map(|n| n.name.as_str());
        Ok(record.deployment(names, public_address))
    }

    /// Runs the cluster's nodes, or one; returns their endpoints.
    pub(crate) fn start(
        &mut self,
        cluster_id: &str,
        node: Option<&str>,
        public_address: &str,
    ) -> Result<Deployment> {
        self.control(
            cluster_id,
            node,
            |c| &mut c.starts,
            |ports, name, node| node.start(ports, name, &BTreeMap::new()),
        )?;
        self.deployment_of(cluster_id, node, public_address)
    }

    /// Stops the cluster's nodes, or one.
    pub(crate) fn stop(&mut self, cluster_id: &str, node: Option<&str>) -> Result<()> {
        self.control(
            cluster_id,
            node,
            |c| &mut c.stops,
            |ports, _, node| {
                node.stop(ports, "stopped");
                Ok(())
            },
        )
    }

    /// Stops and starts the cluster's nodes, or one, healthy again; returns their
    /// endpoints.
    pub(crate) fn restart(
        &mut self,
        cluster_id: &str,
        node: Option<&str>,
        public_address: &str,
    ) -> Result<Deployment> {
        self.control(
            cluster_id,
            node,
            |c| &mut c.restarts,
            |ports, name, node| {
                node.stop(ports, "restarting");
                node.heal();
                node.start(ports, name, &BTreeMap::new())
            },
        )?;
        self.deployment_of(cluster_id, node, public_address)
    }

    /// Applies `change` to the cluster's nodes, or to one, and counts the call in the
    /// `counter` it picks when all went well. An unknown cluster, or node, is
    /// [`Error::NotFound`].
    fn control(
        &mut self,
        cluster_id: &str,
        node: Option<&str>,
        counter: fn(&mut SimCounters) -> &mut u64,
        mut change: impl FnMut(&mut Ports, &str, &mut NodeRecord) -> Result<()>,
    ) -> Result<()> {
        let State {
            clusters,
            ports,
            counters,
            ..
        } = self;
        let record = clusters
            .get_mut(cluster_id)
            .filter(|r| !r.nodes.is_empty())
            .ok_or_else(|| nothing_of(cluster_id, node))?;
        if let Some(unknown) = node.filter(|n| record.node(n).is_none()) {
            return Err(nothing_of(cluster_id, Some(unknown)));
        }
        for (name, found) in record.nodes.iter_mut() {
            if node.is_none_or(|wanted| wanted == name) {
                change(ports, name, found)?;
            }
        }
        *counter(counters) += 1;
        Ok(())
    }

    /// The deployment of the cluster's nodes, or of one.
    fn deployment_of(
        &self,
        cluster_id: &str,
        node: Option<&str>,
        public_address: &str,
    ) -> Result<Deployment> {
        let record = self.record(cluster_id)?;
        match node {
            Some(node) => Ok(record.deployment([node], public_address)),
            None => Ok(record.deployment(record.node_names(), public_address)),
        }
    }

    /// Removes the cluster and everything of it; `false` when it was not there.
    pub(crate) fn delete(&mut self, cluster_id: &str) -> bool {
        let Some(record) = self.clusters.remove(cluster_id) else {
            return false;
        };
        if let Some(ids) = self.by_host.get_mut(&record.host_id) {
            ids.remove(cluster_id);
            if ids.is_empty() {
                self.by_host.remove(&record.host_id);
            }
        }
        self.discard(record);
        true
    }

    /// Removes every cluster of `host_id`; returns how many there were.
    pub(crate) fn remove_all(&mut self, host_id: &str) -> u64 {
        let ids = self.by_host.remove(host_id).unwrap_or_default();
        for id in &ids {
            if let Some(record) = self.clusters.remove(id) {
                self.discard(record);
            }
        }
        ids.len() as u64
    }

    fn discard(&mut self, record: ClusterRecord) {
        self.nodes -= record.nodes.len() as u64;
        self.counters.deletes += 1;
        for (_, node) in record.nodes {
            if let Run::Running { published, .. } = node.run {
                self.ports.unpublish(published);
            }
        }
    }

    /// Every cluster of `host_id`, in one listing, by cluster id.
    pub(crate) fn inspect(&mut self, host_id: &str) -> Vec<ObservedCluster> {
        self.counters.inspects += 1;
        let Some(ids) = self.by_host.get(host_id) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| Some((id, self.clusters.get(id)?)))
            .map(|(id, record)| ObservedCluster {
                cluster_id: id.clone(),
                network: true,
                nodes: record
                    .nodes
                    .iter()
                    .map(|(name, node)| (name.clone(), node.run.state()))
                    .collect(),
            })
            .collect()
    }

    /// The node `node` of `cluster_id`, with the engine's ports.
    /// A command run in `node` of `cluster_id`: the engine's exec status when the node
    /// runs, [`Error::Conflict`] when it does not, [`Error::NotFound`] when unknown.
    pub(crate) fn exec(&mut self, cluster_id: &str, node: &str) -> Result<i64> {
        let status = self.exec_status;
        let (_, found) = self.node_mut(cluster_id, node)?;
        if !matches!(found.run, Run::Running { .. }) {
            return Err(Error::conflict(format!(
                "node {node:?} of cluster {cluster_id} does not run: no command can run in it"
            )));
        }
        self.counters.execs += 1;
        Ok(status)
    }

    fn node_mut(&mut self, cluster_id: &str, node: &str) -> Result<(&mut Ports, &mut NodeRecord)> {
        let State { clusters, ports, .. } = self;
        let record = clusters
            .get_mut(cluster_id)
            .ok_or_else(|| nothing_of(cluster_id, None))?;
        let found = record
            .node_mut(node)
            .ok_or_else(|| nothing_of(cluster_id, Some(node)))?;
        Ok((ports, found))
    }

    fn record(&self, cluster_id: &str) -> Result<&ClusterRecord> {
        self.clusters
            .get(cluster_id)
            .ok_or_else(|| nothing_of(cluster_id, None))
    }
}

/// One cluster: its network and nodes. Lists, not maps, for the few labels and nodes
/// of a cluster: a map costs a kilobyte or more, which adds up over 100,000 clusters.
struct ClusterRecord {
    host_id: String,
    network_id: String,
    /// The network's labels, from [`labels_for`].
    labels: Vec<(String, String)>,
    /// Node name and node, in the order they were made.
    nodes: Vec<(String, NodeRecord)>,
}

impl ClusterRecord {
    /// The record of `cluster`'s network `network_id`, without nodes yet.
    fn new(cluster: &Cluster, network_id: String) -> Self {
        ClusterRecord {
            host_id: cluster.host_id.clone(),
            network_id,
            labels: labels_for(cluster, None).into_iter().collect(),
            nodes: Vec::new(),
        }
    }

    fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|(n, _)| n == name).map(|(_, node)| node)
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut NodeRecord> {
        self.nodes
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node)
    }

    fn node_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|(name, _)| name.as_str())
    }

    /// The deployment of the nodes `names` (those the cluster has).
    fn deployment<'a>(&self, names: impl IntoIterator<Item = &'a str>, public_address: &str) -> Deployment {
        let nodes = names
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), self.node(name)?.deployment(public_address))))
            .collect();
        Deployment {
            network_id: self.network_id.clone(),
            nodes,
        }
    }

    /// A node's labels: those of [`labels_for`] with the node, which are the network's
    /// and the node's name (kept once per cluster, to keep big engines small).
    fn node_labels(&self, node: &str) -> Labels {
        let mut labels: Labels = self.labels.iter().cloned().collect();
        labels.insert(LABEL_NODE.to_owned(), node.to_owned());
        labels
    }

    fn describe(&self, cluster_id: &str) -> SimCluster {
        SimCluster {
            cluster_id: cluster_id.to_owned(),
            host_id: self.host_id.clone(),
            network_id: self.network_id.clone(),
            labels: self.labels.iter().cloned().collect(),
            nodes: self
                .nodes
                .iter()
                .map(|(name, node)| (name.clone(), node.describe(self.node_labels(name))))
                .collect(),
        }
    }
}

/// One node: a container of the engine.
struct NodeRecord {
    id: String,
    image: String,
    /// Its named ports, from the blueprint it was made from.
    ports: Vec<(String, PortSpec)>,
    run: Run,
}

/// Whether a node runs.
enum Run {
    /// Made, never started.
    Created,
    /// Running, publishing its ports; `unhealthy` says why its health check fails.
    Running {
        published: Published,
        unhealthy: Option<String>,
    },
    /// Exited, with why.
    Exited(String),
}

impl Run {
    fn state(&self) -> NodeState {
        match self {
            Run::Created => NodeState::Starting,
            Run::Running { unhealthy: None, .. } => NodeState::Running,
            Run::Running {
                unhealthy: Some(why), ..
            } => NodeState::Unhealthy(why.clone()),
            Run::Exited(why) => NodeState::Exited(why.clone()),
        }
    }
}

impl NodeRecord {
    /// A container `id` for `spec`, made but not started.
    fn new(id: String, spec: &NodeSpec) -> Self {
        NodeRecord {
            id,
            image: spec.image.clone(),
            ports: spec
                .ports
                .iter()
                .map(|(name, spec)| (name.clone(), *spec))
                .collect(),
            run: Run::Created,
        }
    }

    /// Runs the node if it does not, publishing `name`'s ports on `pins` where free.
    fn start(&mut self, ports: &mut Ports, name: &str, pins: &BTreeMap<PortSpec, u16>) -> Result<()> {
        if !matches!(self.run, Run::Running { .. }) {
            let published = ports.publish(name, &self.ports, pins)?;
            self.run = Run::Running {
                published,
                unhealthy: None,
            };
        }
        Ok(())
    }

    /// Stops the node if it runs, closing its ports; it has exited with `why`.
    fn stop(&mut self, ports: &mut Ports, why: &str) {
        if let Run::Running { published, .. } = std::mem::replace(&mut self.run, Run::Exited(why.to_owned()))
        {
            ports.unpublish(published);
        }
    }

    /// Makes a running node's health check pass again.
    fn heal(&mut self) {
        if let Run::Running { unhealthy, .. } = &mut self.run {
            *unhealthy = None;
        }
    }

    /// Port name and host port of each published port; none while it does not run.
    fn published_ports(&self) -> impl Iterator<Item = (&String, u16)> {
        let published = match &self.run {
            Run::Running { published, .. } => Some(published.host_ports()),
            _ => None,
        };
        let names = self.ports.iter().map(|(name, _)| name);
        names.zip(published.into_iter().flatten())
    }

    fn deployment(&self, public_address: &str) -> NodeDeployment {
        let endpoints = self
            .published_ports()
            .map(|(name, port)| (name.clone(), format!("{public_address}:{port}")))
            .collect();
        NodeDeployment {
            id: self.id.clone(),
            endpoints,
        }
    }

    fn describe(&self, labels: Labels) -> SimNode {
        SimNode {
            id: self.id.clone(),
            image: self.image.clone(),
            labels,
            state: self.run.state(),
            ports: self
                .published_ports()
                .map(|(name, port)| (name.clone(), port))
                .collect(),
        }
    }
}

/// The next container or network id: `sim-net-00000000002a`.
fn new_id(last: &mut u64, kind: &str) -> String {
    *last += 1;
    format!("sim-{kind}-{last:012x}")
}

/// A small, fast random generator (SplitMix64) whose sequence depends on its seed
/// alone, so injected faults repeat from run to run.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..1`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// FNV-1a of `text`: mixes an engine's endpoint into the seed.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

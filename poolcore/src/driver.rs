//! The host-driver trait: how clusters are made on one Docker engine or Swarm.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Blueprint, Cluster, Deployment, EngineFacts, Host, HostKind, Labels};

/// Label on every object PoolManager makes: the cluster id.
pub const LABEL_CLUSTER: &str = "poolmanager.cluster";
/// Label on every object PoolManager makes: the host id.
pub const LABEL_HOST: &str = "poolmanager.host";
/// Label on node containers and services: the node name.
pub const LABEL_NODE: &str = "poolmanager.node";
/// Label on every object PoolManager makes: the blueprint name.
pub const LABEL_BLUEPRINT: &str = "poolmanager.blueprint";
/// Label on every object PoolManager makes: the blueprint version it was made of.
pub const LABEL_BLUEPRINT_VERSION: &str = "poolmanager.blueprint_version";

/// The labels an object of `cluster` carries; with `node`, those of that node's
/// container or service. The reconciler finds, adopts and removes objects by them.
pub fn labels_for(cluster: &Cluster, node: Option<&str>) -> Labels {
    let mut labels = Labels::from([
        (LABEL_CLUSTER.to_owned(), cluster.id.clone()),
        (LABEL_HOST.to_owned(), cluster.host_id.clone()),
        (LABEL_BLUEPRINT.to_owned(), cluster.blueprint.clone()),
        (
            LABEL_BLUEPRINT_VERSION.to_owned(),
            cluster.blueprint_version.to_string(),
        ),
    ]);
    if let Some(node) = node {
        labels.insert(LABEL_NODE.to_owned(), node.to_owned());
    }
    labels
}

/// Engine-side name of a cluster's network (`node = None`) or of one node's container
/// or service. Unique per cluster id, readable by the cluster name.
pub fn object_name(cluster: &Cluster, node: Option<&str>) -> String {
    let short = cluster.id.get(..8).unwrap_or(&cluster.id);
    match node {
        Some(node) => format!("pm-{}-{}-{short}", cluster.name, node),
        None => format!("pm-{}-{short}", cluster.name),
    }
}

/// What a driver can do, so callers need not find out at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capability {
    /// Nodes of one cluster may run on different machines (Swarm).
    pub multi_machine: bool,
    /// The engine runs the blueprint's health checks.
    pub health_checks: bool,
    /// Single nodes can be started, stopped and restarted.
    pub node_control: bool,
    /// Nodes run their images and commands as real processes: a port serves what the
    /// node's command serves, nodes reach each other by name, a command can exit. Off for
    /// a simulated engine, which only plays the nodes' states.
    pub runs_processes: bool,
}

impl Capability {
    /// A capability with every flag off.
    pub fn new() -> Self {
        Self::default()
    }

    /// With [`Capability::multi_machine`].
    pub fn with_multi_machine(mut self, on: bool) -> Self {
        self.multi_machine = on;
        self
    }

    /// With [`Capability::health_checks`].
    pub fn with_health_checks(mut self, on: bool) -> Self {
        self.health_checks = on;
        self
    }

    /// With [`Capability::node_control`].
    pub fn with_node_control(mut self, on: bool) -> Self {
        self.node_control = on;
        self
    }

    /// With [`Capability::runs_processes`].
    pub fn with_runs_processes(mut self, on: bool) -> Self {
        self.runs_processes = on;
        self
    }
}

/// State of one node as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    /// Running (and healthy, if it has a health check).
    Running,
    /// Created or being started.
    Starting,
    /// Exited, dead or stopped; with the engine's words.
    Exited(String),
    /// Running but its health check fails.
    Unhealthy(String),
}

/// One cluster as found on the engine by its labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedCluster {
    /// Value of [`LABEL_CLUSTER`].
    pub cluster_id: String,
    /// Its network exists.
    pub network: bool,
    /// Node name → state, for every labelled container or service found.
    pub nodes: BTreeMap<String, NodeState>,
}

/// Where clusters run: one Docker engine, one Swarm, ... One driver serves one host.
///
/// Every call is idempotent, so a caller that crashed half-way can simply call again.
#[async_trait]
pub trait HostDriver: Debug + Send + Sync + 'static {
    /// What this driver can do.
    fn capability(&self) -> Capability;

    /// Asks the engine who it is.
    ///
    /// # Behavior
    /// - Returns the engine version, CPUs, memory, container count and swarm state.
    /// - An unreachable engine is [`Error::Unavailable`](crate::Error::Unavailable).
    async fn probe(&self) -> Result<EngineFacts>;

    /// Creates the network and every node of `cluster`, starts them and reads back
    /// the published ports.
    ///
    /// # Behavior
    /// - Idempotent: after a half-done create, calling it again completes it and
    ///   adopts what exists.
    /// - Every object created carries the labels from [`labels_for`].
    /// - Every named port of the blueprint is published on a free host port and
    ///   appears in the returned deployment as `address:port`.
    /// - A missing image is pulled; a failed pull is an error naming the image.
    async fn create_cluster(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Deployment>;

    /// Removes every object labelled with `cluster_id`.
    ///
    /// # Behavior
    /// - Removing what is already gone succeeds.
    async fn delete_cluster(&self, cluster_id: &str) -> Result<()>;

    /// Starts the whole cluster, or one node, and reads the endpoints back (they may
    /// change when a node restarts).
    ///
    /// # Behavior
    /// - Starting what runs succeeds.
    /// - An unknown node is [`Error::NotFound`](crate::Error::NotFound).
    async fn start_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment>;

    /// Stops the whole cluster, or one node.
    ///
    /// # Behavior
    /// - Stopping what is stopped succeeds.
    /// - An unknown node is [`Error::NotFound`](crate::Error::NotFound).
    async fn stop_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<()>;

    /// Restarts the whole cluster, or one node, and reads the endpoints back.
    async fn restart_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment>;

    /// Brings every node of a made cluster back to running, keeping the endpoints in
    /// `cluster.deployment`: the reconciler calls it for applied clusters, whose users
    /// hold their URLs.
    ///
    /// The default calls [`HostDriver::create_cluster`], which adopts what exists and
    /// makes what is missing; drivers whose engine would move a restarted node to
    /// another port override it.
    ///
    /// # Behavior
    /// - A node that runs is left as it is.
    /// - A node that exited or is missing runs again, published on the same endpoints
    ///   when they are free.
    async fn repair_cluster(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Deployment> {
        self.create_cluster(cluster, blueprint).await
    }

    /// Runs `command` (no shell) in the container of `node` of `cluster`, waits for it
    /// to end and returns its exit status: what an `exec` readiness probe does.
    ///
    /// The default refuses: an engine that cannot run commands in a node takes only
    /// `http` and `tcp` probes.
    ///
    /// # Behavior
    /// - A node that is not running, or unknown, is an error.
    async fn exec(&self, cluster: &Cluster, node: &str, command: &[String]) -> Result<i64> {
        let _ = (cluster, command);
        Err(crate::Error::invalid(
            "readiness",
            format!("this engine cannot run a command in node {node:?}: give it an http or tcp probe"),
        ))
    }

    /// Lists every cluster of this host found on the engine, in one listing.
    ///
    /// # Behavior
    /// - Finds objects by [`LABEL_HOST`]; objects without our labels are never listed.
    async fn inspect(&self) -> Result<Vec<ObservedCluster>>;

    /// Removes every object labelled with this host's id; returns how many clusters
    /// had objects.
    async fn remove_all(&self) -> Result<u64>;
}

/// Makes drivers for the hosts of one [`HostKind`].
#[async_trait]
pub trait Connector: Debug + Send + Sync + 'static {
    /// The kind of host this connector serves.
    fn kind(&self) -> HostKind;

    /// A driver for `host`. Does not talk to the engine; [`HostDriver::probe`] does.
    ///
    /// An endpoint this connector cannot use is [`Error::Invalid`](crate::Error::Invalid).
    fn connect(&self, host: &Host) -> Result<Arc<dyn HostDriver>>;
}

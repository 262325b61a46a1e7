//! [`SwarmConnector`] and [`SwarmDriver`]: clusters as one overlay network and one
//! single-replica service per node on a Docker Swarm.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::models::{NodeState as SwarmNodeState, Service, Task, TaskState};
use futures::future::{join_all, try_join_all};
use poolcore::{
    object_name, Blueprint, Capability, Cluster, Connector, Deployment, EngineFacts, Error, Host, HostDriver,
    HostKind, LogConfig, NodeDeployment, NodeSpec, ObservedCluster, PortSpec, Result,
};
use poolcore_engine::{
    cluster_of, first_error, group_clusters, is_node_of, nothing_of, ClusterNetwork, LabelFilter,
};
use tracing::instrument;

use crate::config::SwarmConfig;
use crate::core::Manager;
use crate::error::{Stalled, SwarmError};
use crate::spec;
use crate::tasks::{self, Progress, TaskIndex};

/// How often a wait asks the manager again.
const POLL: Duration = Duration::from_millis(250);

/// How long, beyond the stop grace period, a removed or stopped node's containers may
/// take to be gone.
const STOP_SLACK: Duration = Duration::from_secs(30);

/// Makes a [`SwarmDriver`] for each host of kind [`HostKind::Swarm`].
///
/// Register it with the pool (`PoolBuilder::with_connector`); every driver it makes
/// shares its [`SwarmConfig`].
#[derive(Debug, Clone, Default)]
pub struct SwarmConnector {
    config: SwarmConfig,
}

impl SwarmConnector {
    /// A connector with the default [`SwarmConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A connector whose drivers use `config`.
    pub fn from_config(config: SwarmConfig) -> Self {
        SwarmConnector { config }
    }

    /// The config its drivers use.
    pub fn config(&self) -> &SwarmConfig {
        &self.config
    }
}

impl Connector for SwarmConnector {
    fn kind(&self) -> HostKind {
        HostKind::Swarm
    }

    fn connect(&self, host: &Host) -> Result<Arc<dyn HostDriver>> {
        Ok(Arc::new(SwarmDriver::new(host, self.config.clone())?))
    }
}

/// The [`HostDriver`] of one Docker Swarm, through one of its managers.
///
/// A cluster is one attachable overlay network and one service of one replica per
/// node, each labelled with [`labels_for`](poolcore::labels_for) and named by
/// [`object_name`]. Nodes reach each other by node name (a DNS alias on the network).
/// Ports are published in host mode on a port the engine picks, and read back from the
/// running task; the address is that of the swarm node the task runs on. The driver
/// keeps no state of its own: every call finds its objects by label.
#[derive(Debug)]
pub struct SwarmDriver {
    manager: Manager,
    config: SwarmConfig,
    host_id: String,
    public_address: String,
    log: Option<LogConfig>,
}

impl SwarmDriver {
    /// A driver for `host`, whose endpoint is a swarm manager's: `unix://`, `tcp://` or
    /// `http://`, or with TLS settings `tcp://` or `https://` (else [`Error::Invalid`]).
    /// TLS settings are read and checked now, and a wrong one is [`Error::Invalid`]
    /// naming it. It does not talk to the manager yet.
    pub fn new(host: &Host, config: SwarmConfig) -> Result<Self> {
        Ok(SwarmDriver {
            manager: Manager::new(host, &config)?,
            config,
            host_id: host.id.clone(),
            public_address: host.public_address.clone(),
            log: host.log.clone(),
        })
    }

    /// The node's service, created, or adopted and started if it exists.
    async fn ensure_service(&self, cluster: &Cluster, node: &NodeSpec, network_id: &str) -> Result<()> {
        let spec = spec::service_spec(cluster, node, network_id, self.log.as_ref(), &self.config);
        match self.manager.create_service(spec).await {
            Ok(_) => Ok(()),
            Err(Error::Conflict { .. }) => {
                let name = object_name(cluster, Some(&node.name));
                let service = self.adopt(cluster, node, &name).await?;
                let filter = LabelFilter::cluster(&cluster.id).node(Some(&node.name));
                let tasks = self.manager.tasks(&filter).await?;
                self.start_stopped(&[service], &tasks).await
            }
            Err(e) => Err(e),
        }
    }

    /// The existing service `name`, after checking it is this node's.
    async fn adopt(&self, cluster: &Cluster, node: &NodeSpec, name: &str) -> Result<Service> {
        let found = self.manager.service(name).await?;
        let labels = found.spec.as_ref().and_then(|s| s.labels.as_ref());
        if !is_node_of(labels, &cluster.id, &node.name) {
            return Err(SwarmError::Foreign {
                service: name.to_owned(),
                node: node.name.clone(),
                cluster_id: cluster.id.clone(),
            }
            .into());
        }
        Ok(found)
    }

    /// The cluster's services, or one node's. None found is [`Error::NotFound`] for
    /// the node (or the cluster).
    async fn services(&self, cluster: &Cluster, node: Option<&str>) -> Result<Vec<Service>> {
        let services = self
            .manager
            .services(&LabelFilter::cluster(&cluster.id).node(node))
            .await?;
        if services.is_empty() {
            return Err(nothing_of(&cluster.id, node));
        }
        Ok(services)
    }

    /// Starts anew each of `services` that the swarm does not run: stopped (no
    /// replicas) or given up on (no task it still wants to run).
    async fn start_stopped(&self, services: &[Service], tasks: &[Task]) -> Result<()> {
        self.start_stopped_with(services, tasks, |_| BTreeMap::new())
            .await
    }

    /// [`Self::start_stopped`], publishing each restarted node on the host ports
    /// `pinned` gives for it (by node name).
    async fn start_stopped_with(
        &self,
        services: &[Service],
        tasks: &[Task],
        pinned: impl Fn(&str) -> BTreeMap<PortSpec, u16>,
    ) -> Result<()> {
        let tasks = TaskIndex::new(tasks);
        let stopped = services.iter().filter(|service| {
            let generation = tasks.current_generation(service);
            matches!(
                tasks::node_state(service, &generation),
                poolcore::NodeState::Exited(_) | poolcore::NodeState::Unhealthy(_)
            )
        });
        let restarts = stopped.filter_map(|s| Some((s.id.as_deref()?, pinned(&tasks::node_name(s)))));
        try_join_all(restarts.map(|(id, ports)| {
            self.manager.update_service(id, move |spec| {
                spec::pin_ports(spec, &ports);
                spec::start_anew(spec);
            })
        }))
        .await
        .map(drop)
    }

    /// Waits until every node of the cluster (or `node`) runs, then reads back where
    /// its ports are published. Fails naming each node whose tasks the swarm gave up
    /// on, or that did not run within the start timeout.
    async fn await_running(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment> {
        let filter = LabelFilter::cluster(&cluster.id).node(node);
        let deadline = Instant::now() + self.config.start_timeout();
        loop {
            let (services, tasks) =
                futures::try_join!(self.manager.services(&filter), self.manager.tasks(&filter))?;
            if services.is_empty() {
                return Err(nothing_of(&cluster.id, node));
            }
            let index = TaskIndex::new(&tasks);
            let mut waiting = Vec::new();
            let mut failed = Vec::new();
            let mut running = Vec::new();
            for service in &services {
                let generation = index.current_generation(service);
                let stalled = |reason| Stalled {
                    node: tasks::node_name(service),
                    reason,
                };
                match tasks::progress(service, &generation, tasks::publishes_ports(service)) {
                    Progress::Running(task) => running.push((service, Some(task))),
                    Progress::Started => running.push((service, None)),
                    Progress::Waiting(why) => waiting.push(stalled(why)),
                    Progress::Failed(why) => failed.push(stalled(why)),
                }
            }
            if !failed.is_empty() {
                return Err(SwarmError::NotRunning(failed).into());
            }
            if waiting.is_empty() {
                return self.read_back(&running).await;
            }
            if Instant::now() >= deadline {
                let waited = self.config.start_timeout().as_secs();
                for stalled in &mut waiting {
                    stalled.reason = format!("not running after {waited}s ({})", stalled.reason);
                }
                return Err(SwarmError::NotRunning(waiting).into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The deployment of `running` services, each with its running task (`None` for a
    /// node without ports).
    async fn read_back(&self, running: &[(&Service, Option<&Task>)]) -> Result<Deployment> {
        let (own_node, nodes) = futures::try_join!(self.manager.own_node_id(), self.manager.nodes())?;
        let addresses: HashMap<String, String> = nodes
            .into_iter()
            .filter_map(|n| Some((n.id?, n.status?.addr?)))
            .collect();
        let mut deployment = Deployment::default();
        for (service, task) in running {
            let endpoints = match task {
                Some(task) => {
                    let address = tasks::task_address(task, &own_node, &addresses, &self.public_address);
                    tasks::endpoints(service, task, &address)?
                }
                None => BTreeMap::new(),
            };
            let id = service.id.clone().unwrap_or_default();
            deployment
                .nodes
                .insert(tasks::node_name(service), NodeDeployment { id, endpoints });
        }
        Ok(deployment)
    }

    /// Waits until no task of `filter` runs any more.
    async fn await_stopped(&self, filter: &LabelFilter) -> Result<()> {
        let patience = self.config.stop_grace() + STOP_SLACK;
        let deadline = Instant::now() + patience;
        loop {
            let tasks = self.manager.tasks(filter).await?;
            let alive: Vec<&Task> = tasks.iter().filter(|t| still_running(t)).collect();
            if alive.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let stalled = alive
                    .iter()
                    .map(|t| Stalled {
                        node: t.name.clone().or_else(|| t.id.clone()).unwrap_or_default(),
                        reason: format!("still running {}s after it was stopped", patience.as_secs()),
                    })
                    .collect();
                return Err(SwarmError::NotRunning(stalled).into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Removes every service, then every network, that `filter` finds. Returns the
    /// cluster ids they carried.
    async fn remove_labelled(&self, filter: &LabelFilter) -> Result<BTreeSet<String>> {
        let services = self.manager.services(filter).await?;
        let labels = |s: &Service| s.spec.as_ref().and_then(|spec| spec.labels.clone());
        let mut clusters: BTreeSet<String> = services
            .iter()
            .filter_map(|s| cluster_of(labels(s).as_ref()))
            .collect();
        let ids = services.iter().filter_map(|s| s.id.as_deref());
        let removed = first_error(join_all(ids.map(|id| self.manager.remove_service(id))).await);
        // The swarm lists a removed network until the containers of its removed tasks
        // are gone, which takes up to their stop grace period.
        let patience = self.config.stop_grace() + STOP_SLACK;
        clusters.extend(self.manager.engine().remove_networks(filter, patience).await?);
        removed?;
        Ok(clusters)
    }
}

/// The task's container may still run: the engine has not reported it ended.
fn still_running(task: &Task) -> bool {
    use bollard::models::TaskState as S;
    let state = task.status.as_ref().and_then(|s| s.state);
    matches!(
        state,
        Some(S::ASSIGNED | S::ACCEPTED | S::PREPARING | S::READY | S::STARTING | S::RUNNING)
    )
}

#[async_trait]
impl HostDriver for SwarmDriver {
    fn capability(&self) -> Capability {
        Capability::new()
            .with_multi_machine(true)
            .with_health_checks(true)
            .with_node_control(true)
            .with_runs_processes(true)
    }

    /// The manager's engine facts; on a manager, CPUs and memory are those of every
    /// ready node of the swarm, and containers the tasks running on them.
    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn probe(&self) -> Result<EngineFacts> {
        let mut facts = self.manager.engine().facts().await?;
        if !facts.swarm_manager {
            // The pool refuses the host, saying so; only a manager lists nodes.
            return Ok(facts);
        }
        let (nodes, running) = futures::try_join!(self.manager.nodes(), self.manager.running_task_count())?;
        let ready = nodes
            .iter()
            .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(SwarmNodeState::READY));
        let resources: Vec<_> = ready
            .filter_map(|n| n.description.as_ref()?.resources.as_ref())
            .collect();
        let sum = |value: fn(&bollard::models::ResourceObject) -> Option<i64>| -> u64 {
            resources
                .iter()
                .filter_map(|r| value(r).and_then(|v| u64::try_from(v).ok()))
                .sum()
        };
        if !resources.is_empty() {
            facts.cpus = sum(|r| r.nano_cpus) / 1_000_000_000;
            facts.memory_bytes = sum(|r| r.memory_bytes);
        }
        facts.containers = running;
        Ok(facts)
    }

    #[instrument(skip_all, fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn create_cluster(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Deployment> {
        let engine = self.manager.engine();
        let network_id = engine.ensure_network(cluster, ClusterNetwork::Overlay).await?;
        let nodes = blueprint.nodes.iter();
        try_join_all(nodes.map(|node| self.ensure_service(cluster, node, &network_id))).await?;
        let mut deployment = self.await_running(cluster, None).await?;
        deployment.network_id = network_id;
        Ok(deployment)
    }

    /// A node the swarm no longer runs is started anew with its ports published on
    /// the host ports its deployment records; a missing one is made again.
    #[instrument(skip_all, fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn repair_cluster(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Deployment> {
        let engine = self.manager.engine();
        let network_id = engine.ensure_network(cluster, ClusterNetwork::Overlay).await?;
        let filter = LabelFilter::cluster(&cluster.id);
        let (services, tasks) =
            futures::try_join!(self.manager.services(&filter), self.manager.tasks(&filter))?;
        let node_spec = |name: &str| blueprint.nodes.iter().find(|n| n.name == name);
        let pinned = |name: &str| {
            node_spec(name)
                .map(|n| cluster.recorded_ports(n))
                .unwrap_or_default()
        };
        self.start_stopped_with(&services, &tasks, pinned).await?;
        let present: BTreeSet<String> = services.iter().map(tasks::node_name).collect();
        let missing = blueprint.nodes.iter().filter(|n| !present.contains(&n.name));
        try_join_all(missing.map(|node| self.ensure_service(cluster, node, &network_id))).await?;
        let mut deployment = self.await_running(cluster, None).await?;
        deployment.network_id = network_id;
        Ok(deployment)
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn delete_cluster(&self, cluster_id: &str) -> Result<()> {
        self.remove_labelled(&LabelFilter::cluster(cluster_id))
            .await
            .map(drop)
    }

    #[instrument(skip(self, cluster), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn start_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment> {
        let services = self.services(cluster, node).await?;
        let tasks = self
            .manager
            .tasks(&LabelFilter::cluster(&cluster.id).node(node))
            .await?;
        self.start_stopped(&services, &tasks).await?;
        self.await_running(cluster, node).await
    }

    #[instrument(skip(self, cluster), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn stop_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<()> {
        let services = self.services(cluster, node).await?;
        let running = services
            .iter()
            .filter(|s| s.spec.as_ref().map(spec::replicas) != Some(0));
        let ids = running.filter_map(|s| s.id.as_deref());
        try_join_all(ids.map(|id| {
            self.manager
                .update_service(id, |spec| spec::set_replicas(spec, 0))
        }))
        .await?;
        self.await_stopped(&LabelFilter::cluster(&cluster.id).node(node))
            .await
    }

    #[instrument(skip(self, cluster), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn restart_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment> {
        let services = self.services(cluster, node).await?;
        let ids = services.iter().filter_map(|s| s.id.as_deref());
        try_join_all(ids.map(|id| self.manager.update_service(id, spec::start_anew))).await?;
        self.await_running(cluster, node).await
    }

    /// Runs the command in the container of the node's running task, which must run on
    /// the manager this driver talks to: the containers of other swarm nodes are out
    /// of its engine's reach.
    #[instrument(skip(self, cluster, command), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn exec(&self, cluster: &Cluster, node: &str, command: &[String]) -> Result<i64> {
        let services = self.services(cluster, Some(node)).await?;
        let filter = LabelFilter::cluster(&cluster.id).node(Some(node));
        let (tasks, manager) = futures::try_join!(self.manager.tasks(&filter), self.manager.own_node_id())?;
        let index = TaskIndex::new(&tasks);
        let running = services
            .iter()
            .flat_map(|service| index.current_generation(service))
            .find(|t| tasks::state(t) == TaskState::RUNNING);
        let Some(task) = running else {
            return Err(Error::unavailable(
                format!("node {node} of cluster {}", cluster.id),
                "it has no running task",
            ));
        };
        if task.node_id.as_deref() != Some(manager.as_str()) {
            return Err(Error::invalid(
                "readiness",
                format!("node {node} runs on another swarm node than the manager, out of reach of an exec probe: give it an http or tcp probe"),
            ));
        }
        let container = task
            .status
            .as_ref()
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.container_id.as_deref())
            .ok_or_else(|| {
                Error::unavailable(
                    format!("node {node} of cluster {}", cluster.id),
                    "its task has no container yet",
                )
            })?;
        self.manager.engine().exec(container, command).await
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn inspect(&self) -> Result<Vec<ObservedCluster>> {
        let filter = LabelFilter::host(&self.host_id);
        let engine = self.manager.engine();
        let (services, tasks, networks) = futures::try_join!(
            self.manager.services(&filter),
            self.manager.tasks(&filter),
            engine.networks(&filter)
        )?;
        let tasks = TaskIndex::new(&tasks);
        let nodes = services.iter().filter_map(|service| {
            let id = cluster_of(service.spec.as_ref().and_then(|s| s.labels.as_ref()))?;
            let state = tasks::node_state(service, &tasks.current_generation(service));
            Some((id, tasks::node_name(service), state))
        });
        Ok(group_clusters(nodes, networks.into_iter().map(|n| n.labels)))
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn remove_all(&self) -> Result<u64> {
        let clusters = self.remove_labelled(&LabelFilter::host(&self.host_id)).await?;
        Ok(clusters.len() as u64)
    }
}

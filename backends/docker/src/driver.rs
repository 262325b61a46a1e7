//! [`DockerConnector`] and [`DockerDriver`]: clusters as one bridge network and one
//! container per node on a single Docker engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig, HostConfigLogConfig,
    NetworkingConfig, PortBinding,
};
use futures::future::{join_all, try_join_all};
use poolcore::driver::LABEL_NODE;
use poolcore::{
    object_name, Blueprint, Capability, Cluster, Connector, Deployment, EngineFacts, Error, Host, HostDriver,
    HostKind, LogConfig, NodeDeployment, NodeSpec, NodeState, ObservedCluster, PortSpec, Result,
};
use poolcore_engine::{
    cluster_of, env_list, first_error, group_clusters, health_config, is_node_of, label_map, node_labels,
    nothing_of, ports_from_labels, ClusterNetwork, LabelFilter,
};
use tracing::{instrument, warn};

use crate::config::DockerConfig;
use crate::core::{self, Daemon};
use crate::error::DockerError;

/// A busy engine may take many seconds to tear a bridge network down.
const NETWORK_PATIENCE: Duration = Duration::from_secs(30);

/// Makes a [`DockerDriver`] for each host of kind [`HostKind::Docker`].
///
/// Register it with the pool (`PoolBuilder::with_connector`); every driver it makes
/// shares its [`DockerConfig`].
#[derive(Debug, Clone, Default)]
pub struct DockerConnector {
    config: DockerConfig,
}

impl DockerConnector {
    /// A connector with the default [`DockerConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A connector whose drivers use `config`.
    pub fn from_config(config: DockerConfig) -> Self {
        DockerConnector { config }
    }

    /// The config its drivers use.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }
}

impl Connector for DockerConnector {
    fn kind(&self) -> HostKind {
        HostKind::Docker
    }

    fn connect(&self, host: &Host) -> Result<Arc<dyn HostDriver>> {
        Ok(Arc::new(DockerDriver::new(host, self.config.clone())?))
    }
}

/// The [`HostDriver`] of one Docker engine.
///
/// A cluster is one bridge network and one container per node, each labelled with
/// [`labels_for`](poolcore::labels_for) and named by [`object_name`]. Nodes reach each
/// other by node name.
/// Every named port is published on a free host port, read back after each start.
/// The driver keeps no state of its own: every call finds its objects by label.
#[derive(Debug)]
pub struct DockerDriver {
    daemon: Daemon,
    /// Seconds a node gets to stop before it is killed.
    stop_timeout: i32,
    host_id: String,
    public_address: String,
    log: Option<LogConfig>,
}

impl DockerDriver {
    /// A driver for `host`, which must have a `unix://`, `tcp://` or `http://`
    /// endpoint, or with TLS settings a `tcp://` or `https://` one (else
    /// [`Error::Invalid`]). TLS settings are read and checked now, and a wrong one is
    /// [`Error::Invalid`] naming it. It does not talk to the engine yet: the first call
    /// connects and agrees on the API version.
    pub fn new(host: &Host, config: DockerConfig) -> Result<Self> {
        Ok(DockerDriver {
            daemon: Daemon::new(host, &config)?,
            stop_timeout: i32::try_from(config.stop_timeout_secs).unwrap_or(i32::MAX),
            host_id: host.id.clone(),
            public_address: host.public_address.clone(),
            log: host.log.clone(),
        })
    }

    /// The node's container, created (or adopted, if it exists) and started. Returns
    /// its id.
    ///
    /// A node the cluster's deployment already records (one being repaired) is
    /// published on its recorded host ports, so its URLs stay; when those are taken by
    /// now, it gets new ones.
    async fn ensure_node(&self, cluster: &Cluster, node: &NodeSpec, network_id: &str) -> Result<String> {
        let name = object_name(cluster, Some(&node.name));
        let pinned = cluster.recorded_ports(node);
        let id = self
            .create_or_adopt(cluster, node, &name, network_id, &pinned)
            .await?;
        match self.daemon.start_container(&id).await {
            Ok(()) => Ok(id),
            Err(e) if !pinned.is_empty() => {
                warn!(error = %e, node = node.name, "the node's former ports are taken; publishing it anew");
                self.daemon.remove_container(&id).await?;
                let id = self
                    .create_or_adopt(cluster, node, &name, network_id, &BTreeMap::new())
                    .await?;
                self.daemon.start_container(&id).await?;
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }

    async fn create_or_adopt(
        &self,
        cluster: &Cluster,
        node: &NodeSpec,
        name: &str,
        network_id: &str,
        pinned: &BTreeMap<PortSpec, u16>,
    ) -> Result<String> {
        let body = container_body(cluster, node, network_id, self.log.as_ref(), pinned);
        match self.daemon.create_container(name, body).await {
            Ok(id) => Ok(id),
            Err(Error::Conflict { .. }) => self.adopt(cluster, node, name).await,
            Err(e) => Err(e),
        }
    }

    /// Id of the existing container `name`, after checking it is this node's.
    async fn adopt(&self, cluster: &Cluster, node: &NodeSpec, name: &str) -> Result<String> {
        let found = self.daemon.inspect_container(name).await?;
        let labels = found.config.as_ref().and_then(|c| c.labels.as_ref());
        let ours = is_node_of(labels, &cluster.id, &node.name);
        match found.id {
            Some(id) if ours => Ok(id),
            _ => Err(DockerError::Foreign {
                container: name.to_owned(),
                node: node.name.clone(),
                cluster_id: cluster.id.clone(),
            }
            .into()),
        }
    }

    /// Reads back what the engine made for the containers `ids` of `cluster`.
    async fn read_back(&self, cluster: &Cluster, ids: &[String]) -> Result<Deployment> {
        let found = try_join_all(ids.iter().map(|id| self.daemon.inspect_container(id))).await?;
        let network = object_name(cluster, None);
        let mut deployment = Deployment::default();
        for container in found {
            if let Some(id) = network_id(&container, &network) {
                deployment.network_id = id;
            }
            let (node, published) = self.node_deployment(container)?;
            deployment.nodes.insert(node, published);
        }
        Ok(deployment)
    }

    /// Node name and endpoints of an inspected container. Every port its labels name
    /// must be published: a node that exited at once has none, and that is an error.
    fn node_deployment(&self, container: ContainerInspectResponse) -> Result<(String, NodeDeployment)> {
        let id = container.id.unwrap_or_default();
        let name = container
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        let config_labels = container.config.and_then(|c| c.labels).unwrap_or_default();
        let node = config_labels
            .get(LABEL_NODE)
            .cloned()
            .unwrap_or_else(|| name.clone());
        let published = container
            .network_settings
            .and_then(|n| n.ports)
            .unwrap_or_default();
        let mut endpoints = BTreeMap::new();
        for (port_name, spec) in ports_from_labels(&config_labels) {
            let host_port = published
                .get(&spec)
                .and_then(|bindings| bindings.as_ref())
                .and_then(|bindings| {
                    bindings
                        .iter()
                        .find_map(|b| b.host_port.clone().filter(|p| !p.is_empty()))
                });
            let Some(host_port) = host_port else {
                let state = container
                    .state
                    .as_ref()
                    .and_then(|s| s.status)
                    .map(|s| s.to_string());
                return Err(DockerError::PortNotPublished {
                    container: name,
                    port: spec,
                    state: state.unwrap_or_else(|| "state unknown".to_owned()),
                }
                .into());
            };
            endpoints.insert(port_name, format!("{}:{host_port}", self.public_address));
        }
        Ok((node, NodeDeployment { id, endpoints }))
    }

    /// Ids of the cluster's containers, or of one node's. None found is
    /// [`Error::NotFound`] for the node (or the cluster).
    async fn container_ids(&self, cluster: &Cluster, node: Option<&str>) -> Result<Vec<String>> {
        let filter = LabelFilter::cluster(&cluster.id).node(node);
        let ids: Vec<String> = self
            .daemon
            .containers(&filter)
            .await?
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        if ids.is_empty() {
            return Err(nothing_of(&cluster.id, node));
        }
        Ok(ids)
    }

    /// Removes every container, then every network, that `filter` finds. Returns the
    /// cluster ids they carried.
    async fn remove_labelled(&self, filter: &LabelFilter) -> Result<BTreeSet<String>> {
        let containers = self.daemon.containers(filter).await?;
        let mut clusters: BTreeSet<String> = containers
            .iter()
            .filter_map(|c| cluster_of(c.labels.as_ref()))
            .collect();
        let ids = containers.iter().filter_map(|c| c.id.as_deref());
        let removed_containers = first_error(join_all(ids.map(|id| self.daemon.remove_container(id))).await);
        // Networks go last: the engine refuses to remove one that containers still use.
        clusters.extend(
            self.daemon
                .engine()
                .remove_networks(filter, NETWORK_PATIENCE)
                .await?,
        );
        removed_containers?;
        Ok(clusters)
    }
}

/// Id of the network `name` the container is attached to.
fn network_id(container: &ContainerInspectResponse, name: &str) -> Option<String> {
    let networks = container.network_settings.as_ref()?.networks.as_ref()?;
    networks.get(name)?.network_id.clone()
}

/// What the engine needs to create `node`'s container on the network `network_id`,
/// publishing its ports on the `pinned` host ports (by port spec) or, for the others,
/// on free ones.
fn container_body(
    cluster: &Cluster,
    node: &NodeSpec,
    network_id: &str,
    log: Option<&LogConfig>,
    pinned: &BTreeMap<PortSpec, u16>,
) -> ContainerCreateBody {
    let specs: BTreeSet<&PortSpec> = node.ports.values().collect();
    // An empty host port lets the engine pick a free one, so clusters never collide.
    let binding = |spec: &PortSpec| {
        Some(vec![PortBinding {
            host_ip: Some("0.0.0.0".to_owned()),
            host_port: Some(pinned.get(spec).map(u16::to_string).unwrap_or_default()),
        }])
    };
    let ports: BTreeSet<String> = specs.iter().map(ToString::to_string).collect();
    let host_config = HostConfig {
        port_bindings: Some(specs.iter().map(|p| (p.to_string(), binding(p))).collect()),
        log_config: log.filter(|l| !l.driver.is_empty()).map(|l| HostConfigLogConfig {
            typ: Some(l.driver.clone()),
            config: Some(label_map(l.options.clone())),
        }),
        network_mode: Some(network_id.to_owned()),
        ..Default::default()
    };
    let endpoint = EndpointSettings {
        aliases: Some(vec![node.name.clone()]),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(node.image.clone()),
        cmd: (!node.command.is_empty()).then(|| node.command.clone()),
        env: Some(env_list(&node.env)),
        labels: Some(node_labels(cluster, node)),
        exposed_ports: Some(ports.into_iter().collect()),
        healthcheck: node.health.as_ref().map(health_config),
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network_id.to_owned(), endpoint)])),
        }),
        ..Default::default()
    }
}

#[async_trait]
impl HostDriver for DockerDriver {
    fn capability(&self) -> Capability {
        Capability::new()
            .with_health_checks(true)
            .with_node_control(true)
            .with_runs_processes(true)
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn probe(&self) -> Result<EngineFacts> {
        self.daemon.engine().facts().await
    }

    #[instrument(skip_all, fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn create_cluster(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Deployment> {
        let engine = self.daemon.engine();
        let network_id = engine.ensure_network(cluster, ClusterNetwork::Bridge).await?;
        let nodes = blueprint.nodes.iter();
        let ids = try_join_all(nodes.map(|node| self.ensure_node(cluster, node, &network_id))).await?;
        let mut deployment = self.read_back(cluster, &ids).await?;
        deployment.network_id = network_id;
        Ok(deployment)
    }

    /// Restarting a container would publish it on new host ports, so nodes that exited
    /// or are unhealthy are made anew on their recorded ones.
    #[instrument(skip_all, fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn repair_cluster(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Deployment> {
        let containers = self.daemon.containers(&LabelFilter::cluster(&cluster.id)).await?;
        let stale = containers
            .into_iter()
            .filter(|c| {
                matches!(
                    core::node_state(c),
                    NodeState::Exited(_) | NodeState::Unhealthy(_)
                )
            })
            .filter_map(|c| c.id);
        try_join_all(stale.map(|id| async move { self.daemon.remove_container(&id).await })).await?;
        self.create_cluster(cluster, blueprint).await
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn delete_cluster(&self, cluster_id: &str) -> Result<()> {
        self.remove_labelled(&LabelFilter::cluster(cluster_id))
            .await
            .map(drop)
    }

    #[instrument(skip(self, cluster), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn start_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment> {
        let ids = self.container_ids(cluster, node).await?;
        try_join_all(ids.iter().map(|id| self.daemon.start_container(id))).await?;
        self.read_back(cluster, &ids).await
    }

    #[instrument(skip(self, cluster), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn stop_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<()> {
        let ids = self.container_ids(cluster, node).await?;
        try_join_all(
            ids.iter()
                .map(|id| self.daemon.stop_container(id, self.stop_timeout)),
        )
        .await
        .map(drop)
    }

    #[instrument(skip(self, cluster), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn restart_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment> {
        let ids = self.container_ids(cluster, node).await?;
        try_join_all(
            ids.iter()
                .map(|id| self.daemon.restart_container(id, self.stop_timeout)),
        )
        .await?;
        self.read_back(cluster, &ids).await
    }

    #[instrument(skip(self, cluster, command), fields(host_id = %self.host_id, cluster_id = %cluster.id))]
    async fn exec(&self, cluster: &Cluster, node: &str, command: &[String]) -> Result<i64> {
        let ids = self.container_ids(cluster, Some(node)).await?;
        let Some(id) = ids.first() else {
            return Err(Error::not_found(
                "node",
                format!("{node} of cluster {}", cluster.id),
            ));
        };
        self.daemon.engine().exec(id, command).await
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn inspect(&self) -> Result<Vec<ObservedCluster>> {
        let filter = LabelFilter::host(&self.host_id);
        let (containers, networks) = futures::try_join!(
            self.daemon.containers(&filter),
            self.daemon.engine().networks(&filter)
        )?;
        Ok(group_clusters(
            core::container_nodes(&containers),
            networks.into_iter().map(|n| n.labels),
        ))
    }

    #[instrument(skip(self), fields(host_id = %self.host_id))]
    async fn remove_all(&self) -> Result<u64> {
        let clusters = self.remove_labelled(&LabelFilter::host(&self.host_id)).await?;
        Ok(clusters.len() as u64)
    }
}

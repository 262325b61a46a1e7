//! A custom [`HostDriver`]: an engine whose nodes are tasks of this program.
//!
//! Each node is a tokio task listening on one loopback TCP port per named port, which
//! answers every HTTP request with `200` and the node's name. It runs no image and no
//! command, and its [`Capability`] says so (`runs_processes` off); it needs nothing
//! installed. Endpoints are `sim://NAME` (the pool takes a closed set of host kinds and
//! endpoint forms, so a driver that is neither Docker nor Swarm serves `sim` hosts); the
//! hosts on one endpoint share the engine [`TaskConnector::start`] made there, and each
//! sees only the clusters with its label.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use poolcore::driver::LABEL_HOST;
use poolcore::labels_for;
use poolcore::model::{new_id, Labels, NodeDeployment};
use poolcore::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// Makes a [`TaskDriver`] for each host of kind `sim` on a `sim://` endpoint.
#[derive(Debug, Clone, Default)]
pub struct TaskConnector(Arc<Mutex<BTreeMap<String, Arc<TaskEngine>>>>);

/// One engine: the clusters it holds, and the images its nodes may name.
#[derive(Debug, Default)]
pub struct TaskEngine {
    images: BTreeSet<String>,
    clusters: Mutex<BTreeMap<String, Net>>,
}

#[derive(Debug)]
struct Net {
    id: String,
    labels: Labels,
    nodes: BTreeMap<String, Node>,
}

#[derive(Debug)]
struct Node {
    id: String,
    ports: BTreeMap<String, u16>,
    state: NodeState,
    // Dropping it stops the node's listeners.
    server: Option<JoinSet<()>>,
}

/// The driver of one host: its id labels what it makes.
#[derive(Debug)]
pub struct TaskDriver {
    host: Host,
    engines: TaskConnector,
}

impl TaskConnector {
    /// Starts an engine at `endpoint` whose nodes may run `images`.
    pub fn start(&self, endpoint: &str, images: &[&str]) -> Arc<TaskEngine> {
        let images = images.iter().map(|i| (*i).to_owned()).collect();
        let engine = Arc::new(TaskEngine {
            images,
            ..Default::default()
        });
        lock(&self.0).insert(endpoint.to_owned(), engine.clone());
        engine
    }

    /// The engine at `endpoint`, if one was started.
    pub fn engine(&self, endpoint: &str) -> Option<Arc<TaskEngine>> {
        lock(&self.0).get(endpoint).cloned()
    }
}

impl Connector for TaskConnector {
    fn kind(&self) -> HostKind {
        HostKind::Sim
    }

    fn connect(&self, host: &Host) -> Result<Arc<dyn HostDriver>> {
        match host.endpoint.strip_prefix("sim://") {
            Some(name) if !name.is_empty() => Ok(Arc::new(TaskDriver {
                host: host.clone(),
                engines: self.clone(),
            })),
            _ => Err(Error::invalid(
                "endpoint",
                format!("{:?} is not sim://NAME", host.endpoint),
            )),
        }
    }
}

impl TaskEngine {
    /// How many clusters the engine holds, over every host.
    pub fn cluster_count(&self) -> usize {
        lock(&self.clusters).len()
    }

    /// Makes a node exit, as a crashed process would.
    pub fn kill_node(&self, cluster_id: &str, node: &str) -> Result<()> {
        let mut clusters = lock(&self.clusters);
        let node = find_node(&mut clusters, cluster_id, node)?;
        (node.server, node.state) = (None, NodeState::Exited("killed".into()));
        Ok(())
    }

    /// Makes a running node fail its health check.
    pub fn make_unhealthy(&self, cluster_id: &str, node: &str) -> Result<()> {
        let mut clusters = lock(&self.clusters);
        find_node(&mut clusters, cluster_id, node)?.state =
            NodeState::Unhealthy("health check failed".into());
        Ok(())
    }
}

impl TaskDriver {
    fn engine(&self) -> Result<Arc<TaskEngine>> {
        let endpoint = &self.host.endpoint;
        self.engines
            .engine(endpoint)
            .ok_or_else(|| Error::unavailable(format!("engine {endpoint}"), "not started"))
    }

    /// Runs `f` on the selected nodes of the cluster (all, or `only`), then returns their endpoints.
    fn each(
        &self,
        cluster: &Cluster,
        only: Option<&str>,
        f: fn(&str, &mut Node) -> Result<()>,
    ) -> Result<Deployment> {
        let engine = self.engine()?;
        let mut clusters = lock(&engine.clusters);
        let net = clusters
            .get_mut(&cluster.id)
            .ok_or_else(|| Error::not_found("cluster", &cluster.id))?;
        if let Some(name) = only.filter(|n| !net.nodes.contains_key(*n)) {
            return Err(Error::not_found("node", name));
        }
        let mut deployment = Deployment {
            network_id: net.id.clone(),
            nodes: BTreeMap::new(),
        };
        for (name, node) in net
            .nodes
            .iter_mut()
            .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
        {
            f(name, node)?;
            let endpoints = node
                .ports
                .iter()
                .map(|(p, port)| (p.clone(), format!("{}:{port}", self.host.public_address)));
            deployment.nodes.insert(
                name.clone(),
                NodeDeployment {
                    id: node.id.clone(),
                    endpoints: endpoints.collect(),
                },
            );
        }
        Ok(deployment)
    }
}

#[async_trait]
impl HostDriver for TaskDriver {
    fn capability(&self) -> Capability {
        Capability::new().with_node_control(true)
    }

    async fn probe(&self) -> Result<EngineFacts> {
        let engine = self.engine()?;
        let containers = lock(&engine.clusters)
            .values()
            .map(|n| n.nodes.len() as u64)
            .sum();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let version = env!("CARGO_PKG_VERSION").to_owned();
        Ok(EngineFacts {
            version,
            cpus,
            memory_bytes: memory_bytes(),
            containers,
            swarm: "inactive".into(),
            swarm_manager: false,
        })
    }

    async fn create_cluster(&self, cluster: &Cluster, blueprint: &Blueprint) -> Result<Deployment> {
        let engine = self.engine()?;
        if let Some(spec) = blueprint.nodes.iter().find(|n| !engine.images.contains(&n.image)) {
            return Err(Error::unavailable(
                format!("image {}", spec.image),
                "this engine has no such image",
            ));
        }
        {
            let mut clusters = lock(&engine.clusters);
            let net = clusters.entry(cluster.id.clone()).or_insert_with(|| Net {
                id: new_id(),
                labels: labels_for(cluster, None),
                nodes: BTreeMap::new(),
            });
            for spec in &blueprint.nodes {
                let ports = spec.ports.keys().map(|p| (p.clone(), 0)).collect();
                let node = Node {
                    id: new_id(),
                    ports,
                    state: NodeState::Exited("created".into()),
                    server: None,
                };
                net.nodes.entry(spec.name.clone()).or_insert(node);
            }
        }
        self.each(cluster, None, start)
    }

    async fn delete_cluster(&self, cluster_id: &str) -> Result<()> {
        lock(&self.engine()?.clusters).remove(cluster_id);
        Ok(())
    }

    async fn start_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment> {
        self.each(cluster, node, start)
    }

    async fn stop_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<()> {
        self.each(cluster, node, stop).map(drop)
    }

    async fn restart_cluster(&self, cluster: &Cluster, node: Option<&str>) -> Result<Deployment> {
        self.each(cluster, node, |name, node| {
            stop(name, node).and_then(|()| start(name, node))
        })
    }

    async fn inspect(&self) -> Result<Vec<ObservedCluster>> {
        let engine = self.engine()?;
        let clusters = lock(&engine.clusters);
        let ours = clusters
            .iter()
            .filter(|(_, net)| net.labels.get(LABEL_HOST) == Some(&self.host.id));
        let observe = |(id, net): (&String, &Net)| ObservedCluster {
            cluster_id: id.clone(),
            network: true,
            nodes: net
                .nodes
                .iter()
                .map(|(name, node)| (name.clone(), node.state.clone()))
                .collect(),
        };
        Ok(ours.map(observe).collect())
    }

    async fn remove_all(&self) -> Result<u64> {
        let engine = self.engine()?;
        let mut clusters = lock(&engine.clusters);
        let before = clusters.len();
        clusters.retain(|_, net| net.labels.get(LABEL_HOST) != Some(&self.host.id));
        Ok((before - clusters.len()) as u64)
    }
}

fn start(name: &str, node: &mut Node) -> Result<()> {
    if node.server.is_none() {
        node.server = Some(serve(name, &mut node.ports)?);
        node.state = NodeState::Running;
    }
    Ok(())
}

fn stop(_: &str, node: &mut Node) -> Result<()> {
    (node.server, node.state) = (None, NodeState::Exited("stopped".into()));
    Ok(())
}

/// Listens on each port (the one it had, when still free) and answers with `node`'s name.
fn serve(node: &str, ports: &mut BTreeMap<String, u16>) -> Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    let page = format!(
        "HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{node}\n",
        node.len() + 1
    );
    for port in ports.values_mut() {
        let listener = rebind(*port).and_then(|l| l.set_nonblocking(true).map(|()| l));
        let listener =
            listener.and_then(|l| Ok((l.local_addr()?.port(), tokio::net::TcpListener::from_std(l)?)));
        let (bound, listener) =
            listener.map_err(|e| Error::backend("task engine", format!("node {node}: {e}")))?;
        *port = bound;
        let page = page.clone();
        tasks.spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let page = page.clone();
                tokio::spawn(async move {
                    let _ = stream.read(&mut [0; 1024]).await;
                    let _ = stream.write_all(page.as_bytes()).await;
                });
            }
        });
    }
    Ok(tasks)
}

/// A listener on `port` when it is free (a stopped node's old listener closes as its
/// task ends, so give it a moment), else on a new port.
fn rebind(port: u16) -> std::io::Result<std::net::TcpListener> {
    let bind = |port| std::net::TcpListener::bind(("127.0.0.1", port));
    for _ in 0..(if port == 0 { 0 } else { 50 }) {
        match bind(port) {
            Ok(listener) => return Ok(listener),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    bind(0)
}

fn find_node<'a>(
    clusters: &'a mut BTreeMap<String, Net>,
    cluster_id: &str,
    node: &str,
) -> Result<&'a mut Node> {
    let net = clusters
        .get_mut(cluster_id)
        .ok_or_else(|| Error::not_found("cluster", cluster_id))?;
    net.nodes
        .get_mut(node)
        .ok_or_else(|| Error::not_found("node", node))
}

/// The machine's memory, from `/proc/meminfo` (0 where there is none).
fn memory_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = meminfo.lines().find_map(|l| {
        l.strip_prefix("MemTotal:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    });
    kib.unwrap_or(0_u64) * 1024
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

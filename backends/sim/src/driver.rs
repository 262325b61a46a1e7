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

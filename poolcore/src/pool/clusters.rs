//! Cluster operations: create on a host, get, list, delete, start/stop/restart, and
//! the background work that provisions and recycles clusters.

use tracing::{info, instrument, warn};

use super::Pool;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{
    new_id, validate_name, Cluster, ClusterFilter, ClusterStatus, Deployment, Health, Listing, Page,
    STOPPED_BY_REQUEST,
};

/// What to do to a running cluster or one of its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeAction {
    /// Start it.
    Start,
    /// Stop it.
    Stop,
    /// Restart it.
    Restart,
}

impl Pool {
    /// Creates a cluster of `blueprint` on `host_id` and returns it `creating`; the
    /// engine work runs in the background and ends in `ready` or `failed`.
    ///
    /// A full host is [`Error::Conflict`]; a name defaults to `<blueprint>-<8 hex>`.
    #[instrument(skip(self))]
    pub async fn create_cluster(
        &self,
        host_id: &str,
        blueprint: &str,
        name: Option<&str>,
    ) -> Result<Cluster> {
        if let Some(name) = name {
            validate_name("name", name)?;
        }
        let host = self.host(host_id).await?;
        self.blueprint(blueprint).await?;
        let filter = ClusterFilter {
            host_id: Some(host.id.clone()),
            ..ClusterFilter::default()
        };
        let held = self
            .store()
            .list_clusters(&filter, Page { offset: 0, limit: 0 })
            .await?
            .total;
        if held >= u64::from(host.capacity) {
            return Err(Error::conflict(format!(
                "host {:?} is full: it holds {held} of {} clusters",
                host.name, host.capacity
            )));
        }
        let cluster = self.insert_cluster(&host.id, blueprint, name).await?;
        self.spawn_provision(cluster.clone());
        Ok(cluster)
    }

    /// Inserts a `creating` cluster record.
    pub(super) async fn insert_cluster(
        &self,
        host_id: &str,
        blueprint: &str,
        name: Option<&str>,
    ) -> Result<Cluster> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => format!("{blueprint}-{}", &new_id()[..8]),
        };
        let cluster = Cluster::new(name, blueprint, host_id);
        self.store().insert_cluster(&cluster).await?;
        info!(cluster_id = %cluster.id, cluster = %cluster.name, "cluster record created");
        self.emit(Event::Cluster(cluster.clone()));
        Ok(cluster)
    }

    /// The cluster with `id`.
    pub async fn cluster(&self, id: &str) -> Result<Cluster> {
        self.store()
            .get_cluster(id)
            .await?
            .ok_or_else(|| Error::not_found("cluster", id))
    }

    /// Clusters matching `filter`, one page of them.
    pub async fn clusters(&self, filter: &ClusterFilter, page: Page) -> Result<Listing<Cluster>> {
        self.store().list_clusters(filter, page).await
    }

    /// Removes a cluster from its engine and the store. An applied cluster is
    /// [`Error::Conflict`] unless `force` (its lease is then closed).
    #[instrument(skip(self))]
    pub async fn delete_cluster(&self, id: &str, force: bool) -> Result<()> {
        let mut cluster = self.cluster(id).await?;
        if cluster.is_applied() {
            if !force {
                return Err(Error::conflict(format!(
                    "cluster {:?} is applied to {:?}; release it first or delete with force",
                    cluster.name,
                    cluster.user_id.as_deref().unwrap_or_default()
                )));
            }
            if let Some(released) = self.release_one(&cluster, "deleted").await? {
                cluster = released;
            }
        }
        cluster.status = ClusterStatus::Deleting;
        let cluster = self.save_cluster(&cluster).await?;
        self.remove_cluster(&cluster).await
    }

    /// Removes a cluster's engine objects, then its record.
    pub(super) async fn remove_cluster(&self, cluster: &Cluster) -> Result<()> {
        let host = self.host(&cluster.host_id).await?;
        self.driver(&host)?.delete_cluster(&cluster.id).await?;
        self.store().delete_cluster(&cluster.id, cluster.version).await?;
        info!(cluster_id = %cluster.id, "cluster deleted");
        self.emit(Event::ClusterDeleted {
            id: cluster.id.clone(),
        });
        Ok(())
    }

    /// Starts, stops or restarts a cluster or one of its nodes.
    ///
    /// A free cluster stopped as a whole becomes `stopped`, and `ready` again when
    /// started; an applied cluster stays applied. Endpoints are read back.
    #[instrument(skip(self))]
    pub async fn control_cluster(&self, id: &str, action: NodeAction, node: Option<&str>) -> Result<Cluster> {
        let cluster = self.cluster(id).await?;
        if !matches!(
            cluster.status,
            ClusterStatus::Ready | ClusterStatus::Applied | ClusterStatus::Stopped
        ) {
            return Err(Error::conflict(format!(
                "cluster {:?} is {}; only ready, applied or stopped clusters can be controlled",
                cluster.name, cluster.status
            )));
        }
        if let Some(node) = node {
            let blueprint = self.blueprint(&cluster.blueprint).await?;
            if !blueprint.nodes.iter().any(|n| n.name == node) {
                return Err(Error::not_found("node", node));
            }
        }
        let host = self.host(&cluster.host_id).await?;
        let driver = self.driver(&host)?;
        let deployment = match action {
            NodeAction::Start => Some(driver.start_cluster(&cluster, node).await?),
            NodeAction::Restart => Some(driver.restart_cluster(&cluster, node).await?),
            NodeAction::Stop => {
                driver.stop_cluster(&cluster, node).await?;
                None
            }
        };
        // Re-read: a release or apply may have happened while the engine worked.
        let mut cluster = self.cluster(id).await?;
        if let Some(deployment) = deployment {
            merge_deployment(&mut cluster.deployment, deployment);
        }
        match (action, node, cluster.status) {
            (NodeAction::Stop, None, ClusterStatus::Ready) => cluster.status = ClusterStatus::Stopped,
            (NodeAction::Start | NodeAction::Restart, None, ClusterStatus::Stopped) => {
                cluster.status = ClusterStatus::Ready
            }
            _ => {}
        }
        cluster.health = match (action, node) {
            (NodeAction::Stop, _) => Health::Failing,
            (_, None) => Health::Ok,
            (_, Some(_)) => cluster.health,
        };
        cluster.health_reason = match action {
            NodeAction::Stop => Some(format!("{STOPPED_BY_REQUEST}: {}", node.unwrap_or("all nodes"))),
            _ if cluster.health == Health::Ok => None,
            _ => cluster.health_reason,
        };
        self.save_cluster(&cluster).await
    }

    /// Creates a `creating` cluster's engine objects in the background.
    pub(super) fn spawn_provision(&self, cluster: Cluster) {
        self.spawn_cluster_work("provision", cluster, |pool, cluster| async move {
            pool.provision(&cluster).await
        });
    }

    /// Makes the engine objects of a `creating` cluster and marks it `ready`, or
    /// `failed` with the reason. Waits for a slot on the host.
    pub(super) async fn provision(&self, cluster: &Cluster) -> Result<Cluster> {
        let _slot = self.host_slot(&cluster.host_id).await?;
        self.make(cluster).await
    }

    /// [`Pool::provision`] on a host slot the caller holds.
    async fn make(&self, cluster: &Cluster) -> Result<Cluster> {
        let host = self.host(&cluster.host_id).await?;
        let driver = self.driver(&host)?;
        let made = match self.blueprint(&cluster.blueprint).await {
            Ok(blueprint) => match driver.create_cluster(cluster, &blueprint).await {
                // A server killed mid-create may leave objects the engine is still
                // rolling back; clear the cluster's objects and try once more.
                Err(e) => {
                    warn!(error = %e, "creating the cluster failed; clearing it and trying once more");
                    match driver.delete_cluster(&cluster.id).await {
                        Ok(()) => driver.create_cluster(cluster, &blueprint).await,
                        Err(_) => Err(e),
                    }
                }
                made => made,
            },
            Err(e) => Err(e),
        };
        // The record may have been deleted (with its host) while the engine worked.
        let Some(mut current) = self.store().get_cluster(&cluster.id).await? else {
            warn!("cluster was deleted while it was created; removing its objects");
            driver.delete_cluster(&cluster.id).await?;
            return Err(Error::not_found("cluster", &cluster.id));
        };
        if current.status != ClusterStatus::Creating {
            return Err(Error::conflict(format!(
                "cluster {} became {} while it was created",
                current.id, current.status
            )));
        }
        match made {
            Ok(deployment) => {
                current.status = ClusterStatus::Ready;
                current.status_reason = None;
                current.health = Health::Ok;
                current.health_reason = None;
                current.deployment = deployment;
                info!("cluster ready");
            }
            Err(e) => {
                current.status = ClusterStatus::Failed;
                current.status_reason = Some(e.to_string());
                current.health = Health::Failing;
                current.health_reason = Some(e.to_string());
            }
        }
        self.save_cluster(&current).await
    }

    /// Destroys a `releasing` cluster's objects and provisions it afresh, same id,
    /// name and host.
    pub(super) fn spawn_recycle(&self, cluster: Cluster) {
        self.spawn_cluster_work("recycle", cluster, |pool, cluster| async move {
            pool.recycle(cluster).await
        });
    }

    async fn recycle(&self, cluster: Cluster) -> Result<Cluster> {
        // One slot for the removal and the creation: both load the engine.
        let _slot = self.host_slot(&cluster.host_id).await?;
        let host = self.host(&cluster.host_id).await?;
        self.driver(&host)?.delete_cluster(&cluster.id).await?;
        let mut fresh = cluster;
        fresh.status = ClusterStatus::Creating;
        fresh.status_reason = None;
        fresh.health = Health::Unknown;
        fresh.health_reason = None;
        fresh.deployment = Deployment::default();
        let fresh = self.save_cluster(&fresh).await?;
        self.make(&fresh).await
    }
}

/// Takes the new endpoints of the nodes in `update`, keeping the other nodes' ones.
fn merge_deployment(into: &mut Deployment, update: Deployment) {
    if !update.network_id.is_empty() {
        into.network_id = update.network_id;
    }
    into.nodes.extend(update.nodes);
}

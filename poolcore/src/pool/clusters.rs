//! Cluster operations: create on a host, get, list, delete, start/stop/restart, and
//! the background work that provisions and recycles clusters.

use std::collections::BTreeSet;

use tracing::{info, instrument, warn};

use super::backoff::MayCreate;
use super::{placement, Pool};
use crate::driver::HostDriver;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::limits;
use crate::metrics;
use crate::model::{
    new_id, Blueprint, Cluster, ClusterFilter, ClusterStatus, Deployment, Health, Host, Listing, Page,
    ReleaseMode, ReleaseReason,
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

/// On whose behalf a cluster is acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// An operator: may act on any cluster.
    Operator,
    /// A user (through the service that calls the API for them): may act only on
    /// clusters applied to them.
    User(&'a str),
}

impl Actor<'_> {
    /// [`Error::Forbidden`] unless this actor may act on `cluster`.
    pub fn may_act_on(self, cluster: &Cluster) -> Result<()> {
        match self {
            Actor::Operator => Ok(()),
            Actor::User(user) if cluster.is_applied() && cluster.user_id.as_deref() == Some(user) => Ok(()),
            Actor::User(user) => Err(Error::forbidden(format!(
                "cluster {:?} is not applied to user {}",
                cluster.name,
                limits::quoted(user)
            ))),
        }
    }
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
            limits::check_name("name", name)?;
        }
        let blueprint = self.blueprint(blueprint).await?;
        // Under the fills' lock, which a host's deletion holds while it sweeps.
        let planning = self.inner.planning.lock().await;
        let host = self.host(host_id).await?;
        placement::check_admits(&blueprint, &host)?;
        let cluster = self
            .insert_cluster(&host, &blueprint, name)
            .await?
            .ok_or_else(|| {
                Error::conflict(format!(
                    "host {:?} is full: it holds {} clusters",
                    host.name, host.capacity
                ))
            })?;
        drop(planning);
        self.spawn_provision(cluster.clone());
        Ok(cluster)
    }

    /// Inserts a `creating` cluster record of the current version of `blueprint` on
    /// `host` unless the host is full (`None`).
    pub(super) async fn insert_cluster(
        &self,
        host: &Host,
        blueprint: &Blueprint,
        name: Option<&str>,
    ) -> Result<Option<Cluster>> {
        // A made-up name may clash with another's (8 random hex digits): take another.
        let mut tries = if name.is_some() { 1 } else { 4 };
        let cluster = loop {
            let name = match name {
                Some(name) => name.to_owned(),
                None => format!("{}-{}", blueprint.name, &new_id()[..8]),
            };
            let cluster = Cluster {
                blueprint_version: blueprint.version,
                ..Cluster::new(name, &blueprint.name, &host.id)
            };
            tries -= 1;
            match self.store().insert_cluster(&cluster, host.capacity).await {
                Ok(true) => break cluster,
                Ok(false) => return Ok(None),
                Err(e) if tries > 0 && e.code() == "conflict" => continue,
                Err(e) => return Err(e),
            }
        };
        info!(cluster_id = %cluster.id, cluster = %cluster.name, "cluster record created");
        self.emit(Event::Cluster(cluster.clone()));
        Ok(Some(cluster))
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
            if let Some(released) = self.release_one(&cluster, ReleaseReason::Deleted).await? {
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
        let started = std::time::Instant::now();
        let removed = self.driver(&host)?.delete_cluster(&cluster.id).await;
        metrics::cluster_deleted(removed.is_ok(), started.elapsed());
        removed?;
        self.forget_cluster(cluster).await
    }

    /// Removes the record of a cluster whose engine objects are gone.
    async fn forget_cluster(&self, cluster: &Cluster) -> Result<()> {
        self.store().delete_cluster(&cluster.id, cluster.version).await?;
        info!(cluster_id = %cluster.id, "cluster deleted");
        self.emit(Event::ClusterDeleted {
            id: cluster.id.clone(),
        });
        Ok(())
    }

    /// Starts, stops or restarts a cluster or one of its nodes, on behalf of `actor`.
    ///
    /// A free cluster stopped as a whole becomes `stopped`, and `ready` again when
    /// started; an applied cluster stays applied, with the nodes stopped on purpose in
    /// `stopped_nodes` (the reconciler leaves those stopped). Endpoints are read back.
    #[instrument(skip(self))]
    pub async fn control_cluster(
        &self,
        id: &str,
        action: NodeAction,
        node: Option<&str>,
        actor: Actor<'_>,
    ) -> Result<Cluster> {
        let cluster = self.cluster(id).await?;
        actor.may_act_on(&cluster)?;
        if !matches!(
            cluster.status,
            ClusterStatus::Ready | ClusterStatus::Applied | ClusterStatus::Stopped
        ) {
            return Err(Error::conflict(format!(
                "cluster {:?} is {}; only ready, applied or stopped clusters can be controlled",
                cluster.name, cluster.status
            )));
        }
        let blueprint = self.blueprint(&cluster.blueprint).await?;
        let blueprint = blueprint.of_cluster(&cluster)?;
        if let Some(node) = node {
            if !blueprint.nodes.iter().any(|n| n.name == node) {
                return Err(Error::not_found("node", limits::quoted(node)));
            }
        }
        let mut cluster = cluster;
        if action == NodeAction::Stop && node.is_none() && cluster.status == ClusterStatus::Ready {
            // Out of the pool before the engine stops it, so no apply hands it out meanwhile.
            cluster = self
                .change_cluster(id, |c| {
                    if c.status == ClusterStatus::Ready {
                        c.status = ClusterStatus::Stopped;
                    }
                    Ok(())
                })
                .await?;
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
        let all_nodes: BTreeSet<String> = blueprint.nodes.iter().map(|n| n.name.clone()).collect();
        // A release, apply or health write may have come while the engine worked.
        self.change_cluster(id, |cluster| {
            if let Some(deployment) = deployment.clone() {
                merge_deployment(&mut cluster.deployment, deployment);
            }
            let touched: BTreeSet<String> = match node {
                Some(node) => BTreeSet::from([node.to_owned()]),
                None => all_nodes.clone(),
            };
            match action {
                NodeAction::Stop => cluster.stopped_nodes.extend(touched),
                NodeAction::Start | NodeAction::Restart => {
                    cluster.stopped_nodes.retain(|n| !touched.contains(n))
                }
            }
            if action != NodeAction::Stop && node.is_none() && cluster.status == ClusterStatus::Stopped {
                cluster.status = ClusterStatus::Ready;
            }
            if cluster.stopped_nodes.is_empty() {
                if action != NodeAction::Stop {
                    cluster.health = Health::Ok;
                    cluster.health_reason = None;
                }
            } else {
                cluster.health = Health::Failing;
                cluster.health_reason = Some(format!(
                    "stopped on request: {}",
                    cluster
                        .stopped_nodes
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Ok(())
        })
        .await
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
        let _slot = self.work_slot(&cluster.host_id).await?;
        self.make(cluster).await
    }

    /// [`Pool::provision`] on a host slot the caller holds.
    async fn make(&self, cluster: &Cluster) -> Result<Cluster> {
        let host = self.host(&cluster.host_id).await?;
        let driver = self.driver(&host)?;
        let started = std::time::Instant::now();
        // Always the current version: nothing of an earlier one runs yet.
        let blueprint = self.blueprint(&cluster.blueprint).await;
        let version = blueprint
            .as_ref()
            .map_or(cluster.blueprint_version, |b| b.version);
        let cluster = &Cluster {
            blueprint_version: version,
            ..cluster.clone()
        };
        let made = match blueprint {
            Ok(blueprint) => match self.may_create(&blueprint.name) {
                MayCreate::Yes => {
                    self.forget_probe_failures(&cluster.id);
                    let made = match driver.create_cluster(cluster, &blueprint).await {
                        // A server killed mid-create may leave objects the engine is
                        // still rolling back; clear the cluster's objects and try once more.
                        Err(e) => {
                            warn!(error = %e, "creating the cluster failed; clearing it and trying once more");
                            match driver.delete_cluster(&cluster.id).await {
                                Ok(()) => driver.create_cluster(cluster, &blueprint).await,
                                Err(_) => Err(e),
                            }
                        }
                        made => made,
                    };
                    // Still `creating` until every readiness probe has passed.
                    let made = match made {
                        Ok(deployment) => {
                            let made = Cluster {
                                deployment,
                                ..cluster.clone()
                            };
                            self.await_ready(driver.as_ref(), &made, &blueprint)
                                .await
                                .map(|()| made.deployment)
                        }
                        Err(e) => Err(e),
                    };
                    self.note_creation(
                        &blueprint.name,
                        made.as_ref().map(drop).map_err(ToString::to_string),
                    );
                    metrics::cluster_created(made.is_ok(), started.elapsed());
                    made
                }
                MayCreate::No(reason) => Err(Error::unavailable(
                    format!("blueprint {:?}", blueprint.name),
                    reason,
                )),
            },
            Err(e) => Err(e),
        };
        // The record may have been deleted (with its host) while the engine worked,
        // or between the read and the write of the outcome.
        match self.record_made(&cluster.id, version, made).await {
            Err(e) if e.is_not_found() => {
                warn!("cluster was deleted while it was created; removing its objects");
                driver.delete_cluster(&cluster.id).await?;
                Err(e)
            }
            recorded => recorded,
        }
    }

    /// Writes what creating cluster `id` at `version` came to: `ready` with its
    /// deployment, or `failed` with the reason. [`Error::NotFound`] when its record
    /// is gone.
    async fn record_made(&self, id: &str, version: u32, made: Result<Deployment>) -> Result<Cluster> {
        let mut current = self.cluster(id).await?;
        if current.status != ClusterStatus::Creating {
            return Err(Error::conflict(format!(
                "cluster {} became {} while it was created",
                current.id, current.status
            )));
        }
        current.blueprint_version = version;
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

    /// Makes a `releasing` cluster ready again, same id, name and host: destroyed and
    /// provisioned afresh at the blueprint's current version, or restarted in place
    /// when its blueprint's release mode is `reset` and it runs the current version. Removed instead when its blueprint holds more free clusters than it
    /// wants, or its host selector no longer admits the host.
    pub(super) fn spawn_recycle(&self, cluster: Cluster) {
        self.spawn_cluster_work("recycle", cluster, |pool, cluster| async move {
            pool.recycle(cluster).await
        });
    }

    async fn recycle(&self, cluster: Cluster) -> Result<Cluster> {
        // One slot for the removal and the creation: both load the engine.
        let _slot = self.work_slot(&cluster.host_id).await?;
        let host = self.host(&cluster.host_id).await?;
        let driver = self.driver(&host)?;
        let blueprint = self.store().get_blueprint(&cluster.blueprint).await?;
        let misplaced = blueprint.as_ref().is_some_and(|b| !b.placement.admits(&host));
        let gone = if misplaced {
            info!(cluster_id = %cluster.id, "the blueprint's host selector no longer admits the host: removing the cluster");
            let mut gone = cluster.clone();
            gone.status = ClusterStatus::Deleting;
            Some(self.save_cluster(&gone).await?)
        } else {
            self.retire_beyond_buffer(&cluster).await?
        };
        if let Some(gone) = gone {
            self.remove_cluster(&gone).await?;
            return Ok(gone);
        }
        // A reset keeps the version the cluster runs: only of the current one.
        let resettable =
            |b: &Blueprint| b.release_mode == ReleaseMode::Reset && b.version == cluster.blueprint_version;
        if let Some(blueprint) = blueprint.filter(resettable) {
            match self.reset(&cluster, &blueprint, driver.as_ref()).await {
                Ok(reset) => return Ok(reset),
                Err(e) if e.is_stale() => return Err(e),
                Err(e) => {
                    warn!(error = %e, "restarting the released cluster in place failed; making it afresh")
                }
            }
        }
        driver.delete_cluster(&cluster.id).await?;
        let mut fresh = cluster;
        fresh.status = ClusterStatus::Creating;
        fresh.status_reason = None;
        fresh.health = Health::Unknown;
        fresh.health_reason = None;
        fresh.deployment = Deployment::default();
        let fresh = self.save_cluster(&fresh).await?;
        self.make(&fresh).await
    }

    /// The `reset` release mode: restarts every node of a released cluster in place,
    /// waits for its readiness probes and marks it `ready` with the endpoints read back.
    async fn reset(
        &self,
        cluster: &Cluster,
        blueprint: &Blueprint,
        driver: &dyn HostDriver,
    ) -> Result<Cluster> {
        let started = std::time::Instant::now();
        self.forget_probe_failures(&cluster.id);
        let deployment = driver.restart_cluster(cluster, None).await?;
        let mut fresh = cluster.clone();
        merge_deployment(&mut fresh.deployment, deployment);
        self.await_ready(driver, &fresh, blueprint).await?;
        fresh.status = ClusterStatus::Ready;
        fresh.status_reason = None;
        fresh.health = Health::Ok;
        fresh.health_reason = None;
        fresh.stopped_nodes.clear();
        let fresh = self.save_cluster(&fresh).await?;
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "cluster reset in place"
        );
        Ok(fresh)
    }
}

/// Takes the new endpoints of the nodes in `update`, keeping the other nodes' ones.
fn merge_deployment(into: &mut Deployment, update: Deployment) {
    if !update.network_id.is_empty() {
        into.network_id = update.network_id;
    }
    into.nodes.extend(update.nodes);
}

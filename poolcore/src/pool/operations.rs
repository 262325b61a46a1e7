//! Long-running host operations (fill, clean, reset) with progress in the store.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use futures::stream::{self, StreamExt};
use tokio::sync::Mutex;
use tracing::{info, instrument, warn, Instrument};

use super::Pool;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{
    new_id, Cluster, ClusterFilter, ClusterStatus, Host, Operation, OperationKind, OperationStatus, Page,
};

/// Progress of one operation, written to the store after every step so that any
/// server sharing the store can report it.
#[derive(Debug, Clone)]
struct Progress {
    pool: Pool,
    op: Arc<Mutex<Operation>>,
}

impl Progress {
    async fn start(pool: &Pool, kind: OperationKind, host_id: &str, total: u32) -> Result<Self> {
        let op = Operation {
            id: new_id(),
            kind,
            host_id: host_id.to_owned(),
            status: OperationStatus::Running,
            done: 0,
            total,
            error: None,
            created_at: Utc::now(),
            finished_at: None,
        };
        pool.store().put_operation(&op).await?;
        Ok(Progress {
            pool: pool.clone(),
            op: Arc::new(Mutex::new(op)),
        })
    }

    async fn snapshot(&self) -> Operation {
        self.op.lock().await.clone()
    }

    async fn add_total(&self, more: u32) {
        self.op.lock().await.total += more;
        self.save().await;
    }

    /// One step ended, with its error if it failed.
    async fn step(&self, outcome: Result<()>) {
        {
            let mut op = self.op.lock().await;
            op.done += 1;
            if let Err(e) = outcome {
                warn!(operation_id = %op.id, error = %e, "operation step failed");
                op.error.get_or_insert_with(|| e.to_string());
            }
        }
        self.save().await;
    }

    async fn finish(&self, outcome: Result<()>) {
        {
            let mut op = self.op.lock().await;
            if let Err(e) = outcome {
                op.error.get_or_insert_with(|| e.to_string());
            }
            op.status = match op.error {
                Some(_) => OperationStatus::Failed,
                None => OperationStatus::Succeeded,
            };
            op.finished_at = Some(Utc::now());
            info!(operation_id = %op.id, status = %op.status, done = op.done, total = op.total, "operation ended");
        }
        self.save().await;
    }

    async fn save(&self) {
        let op = self.snapshot().await;
        match self.pool.store().put_operation(&op).await {
            Ok(()) => self.pool.emit(Event::Operation(op)),
            Err(e) => warn!(operation_id = %op.id, error = %e, "could not save operation progress"),
        }
    }
}

impl Pool {
    /// The operation with `id`.
    pub async fn operation(&self, id: &str) -> Result<Operation> {
        self.store()
            .get_operation(id)
            .await?
            .ok_or_else(|| Error::not_found("operation", id))
    }

    /// Fills a host up to its capacity, with `blueprint` or, when `None`, spreading
    /// evenly over every blueprint. Returns the running operation at once.
    #[instrument(skip(self))]
    pub async fn fill_host(&self, host_id: &str, blueprint: Option<&str>) -> Result<Operation> {
        let host = self.host(host_id).await?;
        let plan = self.fill_plan(&host, blueprint).await?;
        let clusters = self.insert_planned(&host, &plan).await?;
        let progress = Progress::start(self, OperationKind::Fill, &host.id, len_u32(&clusters)).await?;
        let op = progress.snapshot().await;
        let pool = self.clone();
        let span = tracing::info_span!("fill", host_id = %host.id, operation_id = %op.id);
        self.spawn(
            async move {
                pool.provision_all(clusters, &progress).await;
                progress.finish(Ok(())).await;
            }
            .instrument(span),
        );
        Ok(op)
    }

    /// Which blueprint each missing cluster of `host` gets: the one with the fewest
    /// clusters on the host so far.
    async fn fill_plan(&self, host: &Host, only: Option<&str>) -> Result<Vec<String>> {
        let names: Vec<String> = match only {
            Some(name) => vec![self.blueprint(name).await?.name],
            None => self.blueprints().await?.into_iter().map(|b| b.name).collect(),
        };
        if names.is_empty() {
            return Err(Error::invalid(
                "blueprint",
                "there is no blueprint to fill the host with",
            ));
        }
        let on_host = self.host_clusters(&host.id).await?;
        let mut counts: BTreeMap<&str, usize> = names.iter().map(|n| (n.as_str(), 0)).collect();
        for c in &on_host {
            if let Some(n) = counts.get_mut(c.blueprint.as_str()) {
                *n += 1;
            }
        }
        let missing = (host.capacity as usize).saturating_sub(on_host.len());
        let mut plan = Vec::with_capacity(missing);
        for _ in 0..missing {
            let (name, n) = counts
                .iter_mut()
                .min_by_key(|(_, n)| **n)
                .expect("names is not empty");
            *n += 1;
            plan.push((*name).to_owned());
        }
        Ok(plan)
    }

    async fn insert_planned(&self, host: &Host, plan: &[String]) -> Result<Vec<Cluster>> {
        let mut clusters = Vec::with_capacity(plan.len());
        for blueprint in plan {
            clusters.push(self.insert_cluster(&host.id, blueprint, None).await?);
        }
        Ok(clusters)
    }

    async fn provision_all(&self, clusters: Vec<Cluster>, progress: &Progress) {
        let parallelism = self.config().host_parallelism;
        // Queued clusters wait for a slot; the reconciler must not take them for abandoned.
        let _busy: Vec<_> = clusters.iter().filter_map(|c| self.mark_busy(&c.id)).collect();
        stream::iter(clusters)
            .for_each_concurrent(parallelism, |cluster| async move {
                let outcome = match self.provision(&cluster).await {
                    Ok(c) if c.status == ClusterStatus::Failed => Err(Error::unavailable(
                        format!("cluster {}", c.name),
                        c.status_reason.unwrap_or_default(),
                    )),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
                progress.step(outcome).await;
            })
            .await;
    }

    pub(super) async fn host_clusters(&self, host_id: &str) -> Result<Vec<Cluster>> {
        let filter = ClusterFilter {
            host_id: Some(host_id.to_owned()),
            ..ClusterFilter::default()
        };
        Ok(self.store().list_clusters(&filter, Page::ALL).await?.items)
    }

    /// Removes a host's free clusters (ready, stopped, failed). Returns the running
    /// operation at once.
    #[instrument(skip(self))]
    pub async fn clean_host(&self, host_id: &str) -> Result<Operation> {
        let host = self.host(host_id).await?;
        let free: Vec<Cluster> = self
            .host_clusters(&host.id)
            .await?
            .into_iter()
            .filter(|c| {
                matches!(
                    c.status,
                    ClusterStatus::Ready | ClusterStatus::Stopped | ClusterStatus::Failed
                )
            })
            .collect();
        let progress = Progress::start(self, OperationKind::Clean, &host.id, len_u32(&free)).await?;
        let op = progress.snapshot().await;
        let pool = self.clone();
        let span = tracing::info_span!("clean", host_id = %host.id, operation_id = %op.id);
        self.spawn(
            async move {
                for cluster in free {
                    let outcome = pool.delete_free_cluster(cluster).await;
                    progress.step(outcome).await;
                }
                progress.finish(Ok(())).await;
            }
            .instrument(span),
        );
        Ok(op)
    }

    async fn delete_free_cluster(&self, mut cluster: Cluster) -> Result<()> {
        cluster.status = ClusterStatus::Deleting;
        let cluster = self.save_cluster(&cluster).await?;
        self.remove_cluster(&cluster).await
    }

    /// Removes every cluster and everything PoolManager made on a host's engine, then
    /// fills it again. Refused with [`Error::Conflict`] while a cluster is applied.
    #[instrument(skip(self))]
    pub async fn reset_host(&self, host_id: &str) -> Result<Operation> {
        let host = self.host(host_id).await?;
        let clusters = self.host_clusters(&host.id).await?;
        let held = clusters.iter().filter(|c| !c.is_free()).count();
        if held > 0 {
            return Err(Error::conflict(format!(
                "host {:?} holds {held} applied cluster(s); release them before a reset",
                host.name
            )));
        }
        let progress = Progress::start(self, OperationKind::Reset, &host.id, len_u32(&clusters) + 1).await?;
        let op = progress.snapshot().await;
        let pool = self.clone();
        let span = tracing::info_span!("reset", host_id = %host.id, operation_id = %op.id);
        self.spawn(
            async move {
                let outcome = pool.reset_steps(&host, clusters, &progress).await;
                progress.finish(outcome).await;
            }
            .instrument(span),
        );
        Ok(op)
    }

    async fn reset_steps(&self, host: &Host, clusters: Vec<Cluster>, progress: &Progress) -> Result<()> {
        for cluster in clusters {
            let outcome = self.store().delete_cluster(&cluster.id, cluster.version).await;
            if let Ok(true) = outcome {
                self.emit(Event::ClusterDeleted { id: cluster.id });
            }
            progress.step(outcome.map(drop)).await;
        }
        let removed = self.driver(host)?.remove_all().await;
        progress.step(removed.map(drop)).await;
        if self.blueprints().await?.is_empty() {
            return Ok(());
        }
        let plan = self.fill_plan(host, None).await?;
        let fresh = self.insert_planned(host, &plan).await?;
        progress.add_total(len_u32(&fresh)).await;
        self.provision_all(fresh, progress).await;
        Ok(())
    }
}

fn len_u32<T>(items: &[T]) -> u32 {
    u32::try_from(items.len()).unwrap_or(u32::MAX)
}

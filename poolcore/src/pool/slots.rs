//! Slots for engine work: how many clusters are made (or recycled) at once on one host
//! and in all.
//!
//! Each server holds [`PoolConfig::host_parallelism`](super::PoolConfig) slots per
//! host in memory. Servers sharing one store can also share the limits: with
//! [`PoolConfig::shared_host_parallelism`](super::PoolConfig) a host's slots are store
//! locks (`creation/host/{id}/{k}`) every server takes from, and with
//! [`PoolConfig::creation_limit`](super::PoolConfig) so are the slots of the whole
//! pool (`creation/all/{k}`). A slot lock outlives a server that dies holding it by the
//! reconciler's transition timeout, after which the work is taken for abandoned
//! anyway.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, warn};

use super::Pool;
use crate::error::Result;
use crate::model::new_id;
use crate::store::Store;

/// How often a server waiting for a shared slot tries again.
pub const SLOT_POLL: Duration = Duration::from_millis(100);

/// A store lock held as one shared slot; freed when dropped.
#[derive(Debug)]
struct SharedSlot {
    store: Arc<dyn Store>,
    name: String,
    holder: String,
}

impl Drop for SharedSlot {
    fn drop(&mut self) {
        let (store, name, holder) = (
            self.store.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.holder),
        );
        // Freed in the background: a slot left behind expires with its lock anyway.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.release_lock(&name, &holder).await {
                    warn!(lock = %name, error = %e, "could not free a creation slot; it expires on its own");
                }
            });
        }
    }
}

/// The right to do engine work on a host: this server's slot and, when shared, the
/// store's. Everything is freed when it drops.
#[derive(Debug)]
pub(super) struct WorkSlot {
    _local: OwnedSemaphorePermit,
    _shared: Vec<SharedSlot>,
}

impl Pool {
    /// Waits for a slot for engine work on `host_id`: one of this server's
    /// `host_parallelism`, then, as configured, one of the host's shared ones and one
    /// of the pool's.
    pub(super) async fn work_slot(&self, host_id: &str) -> Result<WorkSlot> {
        let local = self.host_slot(host_id).await?;
        let config = self.config();
        let mut shared = Vec::new();
        if config.shared_host_parallelism {
            shared.push(
                self.shared_slot(&format!("host/{host_id}"), config.host_parallelism)
                    .await?,
            );
        }
        if let Some(limit) = config.creation_limit {
            shared.push(self.shared_slot("all", limit).await?);
        }
        Ok(WorkSlot {
            _local: local,
            _shared: shared,
        })
    }

    /// Takes one of the `count` store locks `creation/{scope}/{k}`, waiting until one
    /// is free.
    async fn shared_slot(&self, scope: &str, count: usize) -> Result<SharedSlot> {
        let holder = new_id();
        let ttl = chrono::Duration::from_std(self.config().reconcile.transition_timeout)
            .unwrap_or(chrono::Duration::minutes(10));
        let mut waited = false;
        loop {
            for k in 0..count.max(1) {
                let name = format!("creation/{scope}/{k}");
                let now = Utc::now();
                if self.store().acquire_lock(&name, &holder, now, now + ttl).await? {
                    if waited {
                        debug!(lock = %name, "took a shared creation slot after waiting");
                    }
                    return Ok(SharedSlot {
                        store: self.store().clone(),
                        name,
                        holder,
                    });
                }
            }
            waited = true;
            tokio::time::sleep(SLOT_POLL).await;
        }
    }
}

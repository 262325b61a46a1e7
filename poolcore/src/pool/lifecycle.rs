//! Starting and stopping what runs behind a pool: the reconciler loop and the
//! background work (creating, recycling, filling).

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Pool;

/// The reconciler loop of a pool, running on its own task; from
/// [`Pool::spawn_reconciler`].
#[derive(Debug)]
#[must_use = "dropping the handle leaves the reconciler running until the runtime stops"]
pub struct ReconcilerHandle {
    pool: Pool,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Pool {
    /// Starts the reconciler loop ([`Pool::run_reconciler`]) on its own task.
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use poolcore::{MemStore, Pool};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = Pool::builder(Arc::new(MemStore::new())).build();
    /// let reconciler = pool.spawn_reconciler();
    /// // ... serve ...
    /// assert!(reconciler.shutdown(Duration::from_secs(30)).await, "everything finished in time");
    /// # }
    /// ```
    pub fn spawn_reconciler(&self) -> ReconcilerHandle {
        let stop = CancellationToken::new();
        let (pool, token) = (self.clone(), stop.clone());
        let task = tokio::spawn(async move { pool.run_reconciler(token).await });
        ReconcilerHandle {
            pool: self.clone(),
            stop,
            task,
        }
    }

    /// Waits, at most `timeout`, for the background work (creating, recycling,
    /// filling) to end. Returns whether it did; work cut short by the process ending is
    /// finished by the reconciler of the next start.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        let finished = tokio::time::timeout(timeout, self.wait_idle()).await.is_ok();
        if !finished {
            warn!(
                timeout_secs = timeout.as_secs_f64(),
                "background work still running; the next start finishes it"
            );
        }
        finished
    }
}

impl ReconcilerHandle {
    /// Ends the loop after its current pass (giving the reconciler lock back), then
    /// waits, at most `timeout` in all, for the background work of the pool to end.
    /// Returns whether everything ended in time.
    pub async fn shutdown(self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        self.stop.cancel();
        match tokio::time::timeout_at(deadline, self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "the reconciler ended abnormally"),
            Err(_) => {
                warn!("the reconciler's pass did not end in time");
                return false;
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.pool.shutdown(left).await
    }
}

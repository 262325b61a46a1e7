//! Waiting for a cluster: an apply that finds nothing ready may wait, in line with the
//! others that want the same, until a cluster becomes ready or its time runs out.
//!
//! Waiters wanting the same (the same blueprint and labels) form one line and are
//! served in the order they came: only the one at the head tries to claim, the others
//! wait behind it on a fair lock. The head tries again whenever a cluster becomes ready
//! in this process (or a host or blueprint changes), and every [`WAIT_POLL`] for the
//! clusters other servers sharing the store make. A waiter whose caller goes away (its
//! future dropped) leaves the line at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::lock;
use crate::model::Labels;

/// How often the waiter at the head of a line claims again without being woken: the
/// longest a cluster made by another server sharing the store waits for its waiter.
pub const WAIT_POLL: Duration = Duration::from_millis(250);

/// What a line of waiters wants.
type LineKey = (Option<String>, Labels);

/// The lines of waiters of one pool.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    lines: Mutex<HashMap<LineKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Woken when a cluster may have become claimable.
    ready: Notify,
    waiting: AtomicUsize,
}

/// A waiter's place: counted while it lives, its line forgotten when it was the last.
pub(super) struct Place<'a> {
    waiters: &'a Waiters,
    key: LineKey,
    line: Arc<tokio::sync::Mutex<()>>,
}

impl Waiters {
    /// Joins the line for `blueprint` and `labels`.
    pub(super) fn join(&self, blueprint: Option<&str>, labels: &Labels) -> Place<'_> {
        let key = (blueprint.map(str::to_owned), labels.clone());
        let line = lock(&self.lines).entry(key.clone()).or_default().clone();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Place {
            waiters: self,
            key,
            line,
        }
    }

    /// Wakes the head of every line: a cluster may have become claimable.
    pub(super) fn wake(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.ready.notify_waiters();
        }
    }

    /// Applies waiting now in this process.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

impl Place<'_> {
    /// Waits, until `deadline`, to reach the head of the line; runs `claim` there until
    /// it gives `Some`, waking on [`Waiters::wake`] and every [`WAIT_POLL`]. `None` when
    /// the deadline came first.
    pub(super) async fn serve<T, F, Fut>(&self, deadline: Instant, mut claim: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let _head = tokio::time::timeout_at(deadline, self.line.lock()).await.ok()?;
        loop {
            // Listening before claiming: a cluster made during the claim still wakes us.
            let woken = self.waiters.ready.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(got) = claim().await {
                return Some(got);
            }
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep(WAIT_POLL) => {}
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.waiters.waiting.fetch_sub(1, Ordering::SeqCst);
        let mut lines = lock(&self.waiters.lines);
        // Ours and the map's: nobody else is in this line.
        if Arc::strong_count(&self.line) == 2 {
            lines.remove(&self.key);
        }
    }
}

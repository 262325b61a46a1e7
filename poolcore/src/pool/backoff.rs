//! Creation backoff: a blueprint whose creations keep failing (an image that cannot be
//! pulled, a command that exits at once) is not tried again and again.
//!
//! After [`BACKOFF_AFTER`] failed creations in a row, this server makes no cluster of
//! the blueprint for [`PoolConfig::creation_backoff`](super::PoolConfig::creation_backoff),
//! doubling with every further failure up to
//! [`PoolConfig::creation_backoff_max`](super::PoolConfig::creation_backoff_max): fills
//! plan none, clusters queued to be made are marked `failed` without touching the
//! engine, and the reconciler leaves its failed clusters alone. Once the time is up
//! one creation is let through as a trial; its success ends the backoff, its failure
//! doubles it. Each server keeps its own.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{lock, Pool};

/// Failed creations in a row before a blueprint backs off.
pub const BACKOFF_AFTER: u32 = 3;

/// A blueprint whose creations keep failing, as [`Pool::creation_backoffs`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// Failed creations in a row.
    pub failures: u32,
    /// When a creation is tried again.
    pub until: DateTime<Utc>,
    /// Why the last one failed.
    pub reason: String,
}

/// The failures in a row of each blueprint with any.
#[derive(Debug, Default)]
pub(super) struct Backoffs(std::sync::Mutex<HashMap<String, Failing>>);

#[derive(Debug)]
struct Failing {
    failures: u32,
    until: Option<DateTime<Utc>>,
    reason: String,
    /// A trial creation is under way.
    trial: bool,
}

impl Failing {
    /// Until when it backs off, if it does at `now`: a trial under way counts.
    fn backing_off(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.until.filter(|until| *until > now || self.trial)
    }
}

/// Whether a cluster of a blueprint may be made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MayCreate {
    Yes,
    /// Backing off: the reason, for the cluster's `status_reason`.
    No(String),
}

impl Pool {
    /// The blueprints backing off now, by name.
    pub fn creation_backoffs(&self) -> BTreeMap<String, Backoff> {
        let now = Utc::now();
        lock(&self.inner.backoffs.0)
            .iter()
            .filter_map(|(name, f)| {
                let until = f.backing_off(now)?;
                let backoff = Backoff {
                    failures: f.failures,
                    until,
                    reason: f.reason.clone(),
                };
                Some((name.clone(), backoff))
            })
            .collect()
    }

    /// Whether `blueprint` backs off now (a trial under way included).
    pub(super) fn backing_off(&self, blueprint: &str) -> bool {
        let now = Utc::now();
        lock(&self.inner.backoffs.0)
            .get(blueprint)
            .and_then(|f| f.backing_off(now))
            .is_some()
    }

    /// Whether a cluster of `blueprint` may be made now; past its backoff, the first
    /// to ask is the trial.
    pub(super) fn may_create(&self, blueprint: &str) -> MayCreate {
        let now = Utc::now();
        let mut backoffs = lock(&self.inner.backoffs.0);
        let Some(f) = backoffs.get_mut(blueprint) else {
            return MayCreate::Yes;
        };
        match f.until {
            None => MayCreate::Yes,
            Some(until) if until <= now && !f.trial => {
                f.trial = true;
                info!(blueprint, "the creation backoff is over; trying one creation");
                MayCreate::Yes
            }
            Some(until) => MayCreate::No(format!(
                "backing off: {} creations failed in a row (last: {}); the next is tried after {}",
                f.failures,
                f.reason,
                until.format("%Y-%m-%dT%H:%M:%SZ")
            )),
        }
    }

    /// Counts a creation of `blueprint` that was tried: `Err` with why it failed.
    pub(super) fn note_creation(&self, blueprint: &str, outcome: Result<(), String>) {
        let mut backoffs = lock(&self.inner.backoffs.0);
        let reason = match outcome {
            Ok(()) => {
                if backoffs.remove(blueprint).is_some_and(|f| f.until.is_some()) {
                    info!(blueprint, "a creation succeeded; the creation backoff ends");
                }
                return;
            }
            Err(reason) => reason,
        };
        let f = backoffs.entry(blueprint.to_owned()).or_insert(Failing {
            failures: 0,
            until: None,
            reason: String::new(),
            trial: false,
        });
        f.failures += 1;
        f.reason = reason;
        f.trial = false;
        if f.failures >= BACKOFF_AFTER {
            let delay = self.backoff_delay(f.failures);
            let until = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            warn!(
                blueprint,
                failures = f.failures,
                delay_seconds = delay.as_secs_f64(),
                reason = %f.reason,
                "creations keep failing; backing off"
            );
            f.until = Some(until);
        }
    }

    /// The backoff after `failures` in a row: the first delay, doubled for each
    /// failure beyond [`BACKOFF_AFTER`], at most the maximum.
    fn backoff_delay(&self, failures: u32) -> Duration {
        let config = self.config();
        let doublings = failures.saturating_sub(BACKOFF_AFTER).min(20);
        config
            .creation_backoff
            .saturating_mul(1 << doublings)
            .min(config.creation_backoff_max)
    }
}

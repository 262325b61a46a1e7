//! How the Swarm driver talks to a manager and how long it waits for tasks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings shared by every driver a [`SwarmConnector`](crate::SwarmConnector) makes.
///
/// Deserializable, so the server can read it from its config file; every field has a
/// default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SwarmConfig {
    /// Seconds one request to the manager may take before it fails as unavailable.
    pub request_timeout_secs: u64,
    /// Seconds a node's container gets to stop on its own before the engine kills it
    /// (stop, restart, delete). A delete waits for this, since the cluster's network
    /// is gone only once its containers are.
    pub stop_grace_secs: u32,
    /// Seconds create, start and restart wait for every node's task to run before they
    /// fail naming the nodes that do not.
    pub start_timeout_secs: u64,
    /// How often the swarm restarts a node's failing task (one second apart) before the
    /// node counts as failed. Each stop, start or restart allows as many again.
    pub restart_attempts: u32,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            request_timeout_secs: 120,
            stop_grace_secs: 10,
            start_timeout_secs: 120,
            restart_attempts: 2,
        }
    }
}

impl SwarmConfig {
    /// The defaults: 120 s per request, 10 s to stop, 120 s to start, 2 restarts.
    pub fn new() -> Self {
        Self::default()
    }

    /// With [`SwarmConfig::request_timeout_secs`], rounded down to whole seconds (at
    /// least one).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout_secs = timeout.as_secs().max(1);
        self
    }

    /// With [`SwarmConfig::stop_grace_secs`], rounded down to whole seconds.
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace_secs = u32::try_from(grace.as_secs()).unwrap_or(u32::MAX);
        self
    }

    /// With [`SwarmConfig::start_timeout_secs`], rounded down to whole seconds (at
    /// least one).
    pub fn with_start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout_secs = timeout.as_secs().max(1);
        self
    }

    /// With [`SwarmConfig::restart_attempts`].
    pub fn with_restart_attempts(mut self, attempts: u32) -> Self {
        self.restart_attempts = attempts;
        self
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub(crate) fn stop_grace(&self) -> Duration {
        Duration::from_secs(u64::from(self.stop_grace_secs))
    }

    pub(crate) fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_partial_input() {
        let config: SwarmConfig = serde_json::from_str(r#"{"stop_grace_secs": 1}"#).unwrap();
        assert_eq!(config.stop_grace_secs, 1);
        assert_eq!(config.start_timeout_secs, 120);
        assert_eq!(config.restart_attempts, 2);
    }

    #[test]
    fn builders_round_to_seconds() {
        let config = SwarmConfig::new()
            .with_stop_grace(Duration::from_millis(1500))
            .with_start_timeout(Duration::from_millis(10))
            .with_request_timeout(Duration::from_secs(7))
            .with_restart_attempts(0);
        assert_eq!(config.stop_grace(), Duration::from_secs(1));
        assert_eq!(config.start_timeout(), Duration::from_secs(1));
        assert_eq!(config.request_timeout(), Duration::from_secs(7));
        assert_eq!(config.restart_attempts, 0);
    }
}

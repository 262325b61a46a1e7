//! How the Docker driver talks to an engine: timeouts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings shared by every driver a [`DockerConnector`](crate::DockerConnector) makes.
///
/// Deserializable, so the server can read it from its config file; every field has a
/// default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DockerConfig {
    /// Seconds one request to the engine may take before it fails as unavailable.
    pub request_timeout_secs: u64,
    /// Seconds a node gets to stop on its own before the engine kills it (stop and
    /// restart). Keep it below the request timeout, which the stop call also obeys.
    pub stop_timeout_secs: u32,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            request_timeout_secs: 120,
            stop_timeout_secs: 10,
        }
    }
}

impl DockerConfig {
    /// The defaults: 120 s per request, 10 s to stop.
    pub fn new() -> Self {
        Self::default()
    }

    /// With [`DockerConfig::request_timeout_secs`], rounded down to whole seconds
    /// (at least one).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout_secs = timeout.as_secs().max(1);
        self
    }

    /// With [`DockerConfig::stop_timeout_secs`], rounded down to whole seconds.
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout_secs = u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX);
        self
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_partial_input() {
        let config: DockerConfig = serde_json::from_str(r#"{"stop_timeout_secs": 2}"#).unwrap();
        assert_eq!(config.stop_timeout_secs, 2);
        assert_eq!(config.request_timeout_secs, 120);
    }
}

//! How simulated engines behave (latencies, injected create failures, published ports),
//! and the endpoint form they accept.

use std::time::Duration;

use poolcore::{Error, Result};
use serde::{Deserialize, Serialize};

/// How long each kind of call takes on a simulated engine, in milliseconds; zero for
/// none. Slept with `tokio::time::sleep`, so tests with paused time skip them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Latencies {
    /// One `create_cluster` or `repair_cluster`.
    pub create_ms: u64,
    /// One `start_cluster`; a restart takes a stop and a start.
    pub start_ms: u64,
    /// One `stop_cluster`.
    pub stop_ms: u64,
    /// One `delete_cluster` or `remove_all`.
    pub delete_ms: u64,
    /// One `probe`.
    pub probe_ms: u64,
    /// One `inspect`.
    pub inspect_ms: u64,
}

impl Latencies {
    /// Every call answers at once.
    pub const NONE: Latencies = Latencies {
        create_ms: 0,
        start_ms: 0,
        stop_ms: 0,
        delete_ms: 0,
        probe_ms: 0,
        inspect_ms: 0,
    };
}

/// Settings of every engine a [`SimConnector`](crate::SimConnector) makes; each engine
/// can change its latencies and failure rate later, through its
/// [`SimEngine`](crate::SimEngine) handle.
///
/// Deserializable, so a server can read it from its config file; every field has a
/// default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SimConfig {
    /// How long calls take.
    pub latency: Latencies,
    /// Share of `create_cluster` and `repair_cluster` calls that fail, from 0 (none) to
    /// 1 (all); values outside are clamped.
    pub create_failure_rate: f64,
    /// Seed of the injected failures: the same seed and the same calls give the same
    /// failures. Each engine mixes its endpoint into it.
    pub seed: u64,
    /// Each published TCP port of a running node listens on `127.0.0.1` and answers
    /// every HTTP request with `200 ok`. Off, ports are numbers only (for benchmarks with
    /// many thousands of clusters).
    pub serve_ports: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Latencies::NONE,
            create_failure_rate: 0.0,
            seed: 0,
            serve_ports: true,
        }
    }
}

impl SimConfig {
    /// The defaults: no latency, no failures, seed 0, ports served.
    pub fn new() -> Self {
        Self::default()
    }

    /// With every latency of `latency`.
    pub fn with_latencies(mut self, latency: Latencies) -> Self {
        self.latency = latency;
        self
    }

    /// With [`Latencies::create_ms`].
    pub fn with_create_latency(mut self, latency: Duration) -> Self {
        self.latency.create_ms = millis(latency);
        self
    }

    /// With [`Latencies::start_ms`].
    pub fn with_start_latency(mut self, latency: Duration) -> Self {
        self.latency.start_ms = millis(latency);
        self
    }

    /// With [`Latencies::stop_ms`].
    pub fn with_stop_latency(mut self, latency: Duration) -> Self {
        self.latency.stop_ms = millis(latency);
        self
    }

    /// With [`Latencies::delete_ms`].
    pub fn with_delete_latency(mut self, latency: Duration) -> Self {
        self.latency.delete_ms = millis(latency);
        self
    }

    /// With [`Latencies::probe_ms`].
    pub fn with_probe_latency(mut self, latency: Duration) -> Self {
        self.latency.probe_ms = millis(latency);
        self
    }

    /// With [`Latencies::inspect_ms`].
    pub fn with_inspect_latency(mut self, latency: Duration) -> Self {
        self.latency.inspect_ms = millis(latency);
        self
    }

    /// With [`SimConfig::create_failure_rate`], clamped to 0..=1.
    pub fn with_create_failure_rate(mut self, rate: f64) -> Self {
        self.create_failure_rate = clamp_rate(rate);
        self
    }

    /// With [`SimConfig::seed`].
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// With [`SimConfig::serve_ports`].
    pub fn with_serve_ports(mut self, on: bool) -> Self {
        self.serve_ports = on;
        self
    }
}

/// Whole milliseconds of `latency`, saturating.
fn millis(latency: Duration) -> u64 {
    u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)
}

/// A failure rate in 0..=1; `NaN` is 0.
pub(crate) fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// Checks a simulated engine's endpoint, `sim://NAME`; anything else is
/// [`Error::Invalid`] naming the endpoint and the form.
pub(crate) fn check_endpoint(endpoint: &str) -> Result<()> {
    let name = endpoint.strip_prefix("sim://").unwrap_or_default();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "endpoint",
            format!(
                "{endpoint:?} is not a simulated engine: expected sim://NAME, such as sim://demo \
                 (NAME of letters, digits, '-', '_' and '.')"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_sim_names() {
        for good in ["sim://demo", "sim://host-1", "sim://a.b_c"] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "sim://",
            "demo",
            "tcp://h:2375",
            "sim://a/b",
            "sim://a b",
            "SIM://x",
        ] {
            let err = check_endpoint(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("{bad:?}")) && text.contains("sim://NAME"),
                "{text}"
            );
        }
    }

    #[test]
    fn builder_and_serde_agree() {
        let built = SimConfig::new()
            .with_create_latency(Duration::from_millis(250))
            .with_probe_latency(Duration::from_secs(1))
            .with_create_failure_rate(7.0)
            .with_seed(42)
            .with_serve_ports(false);
        assert_eq!(built.latency.create_ms, 250);
        assert_eq!(built.latency.probe_ms, 1000);
        assert_eq!(built.create_failure_rate, 1.0);
        let read: SimConfig = serde_json::from_str(
            r#"{"latency": {"create_ms": 250, "probe_ms": 1000}, "create_failure_rate": 1.0,
                "seed": 42, "serve_ports": false}"#,
        )
        .unwrap();
        assert_eq!(read, built);
        let partial: SimConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(partial, SimConfig::new());
        assert!(partial.serve_ports);
        assert_eq!(clamp_rate(f64::NAN), 0.0);
        assert_eq!(clamp_rate(-1.0), 0.0);
    }
}

//! The Swarm driver's own failures, mapped to [`poolcore::Error`].
//!
//! Failed requests to the manager are mapped by the shared engine client
//! ([`poolcore_engine::Engine::fail`]); these are what the driver finds wrong
//! in what the swarm reports.

use std::fmt;

use poolcore::Error;

/// One node whose service does not run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stalled {
    pub(crate) node: String,
    pub(crate) reason: String,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {:?} does not run: {}", self.node, self.reason)
    }
}

/// What the driver finds wrong; reaches callers as [`Error::Backend`] of `swarm`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SwarmError {
    /// Nodes whose tasks failed until the swarm gave up, or did not run in time.
    #[error("{}", join(.0))]
    NotRunning(Vec<Stalled>),
    /// A running task publishes no host port for one of its node's named ports.
    #[error("service {service:?} publishes no host port for {port} (task {task})")]
    PortNotPublished {
        service: String,
        port: String,
        task: String,
    },
    /// A service with our name exists but belongs to something else.
    #[error("service {service:?} exists but is not labelled as node {node:?} of cluster {cluster_id}")]
    Foreign {
        service: String,
        node: String,
        cluster_id: String,
    },
}

fn join(stalled: &[Stalled]) -> String {
    let lines: Vec<String> = stalled.iter().map(ToString::to_string).collect();
    lines.join("; ")
}

impl From<SwarmError> for Error {
    fn from(err: SwarmError) -> Self {
        Error::backend("swarm", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalled_nodes_are_named_with_their_reasons() {
        let err: Error = SwarmError::NotRunning(vec![
            Stalled {
                node: "a".into(),
                reason: "image missing: No such image: x:1".into(),
            },
            Stalled {
                node: "b".into(),
                reason: "no suitable node".into(),
            },
        ])
        .into();
        assert_eq!(err.code(), "backend_failure");
        let text = err.to_string();
        assert!(
            text.contains(r#"node "a" does not run: image missing: No such image: x:1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"node "b" does not run: no suitable node"#),
            "{text}"
        );
    }
}

//! The Docker driver's own failures, mapped to [`poolcore::Error`].
//!
//! Failed requests to the engine are mapped by the shared engine client
//! ([`poolcore_engine::Engine::fail`]); these are what the driver finds wrong in what
//! the engine reports.

use poolcore::Error;

/// The Docker driver's own failures; they reach callers as [`Error::Backend`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerError {
    /// A started node does not publish one of its ports (it exited at once?).
    #[error("container {container:?} publishes no host port for {port} ({state})")]
    PortNotPublished {
        container: String,
        port: String,
        state: String,
    },
    /// A container with our name exists but belongs to something else.
    #[error("container {container:?} exists but is not labelled as node {node:?} of cluster {cluster_id}")]
    Foreign {
        container: String,
        node: String,
        cluster_id: String,
    },
}

impl From<DockerError> for Error {
    fn from(err: DockerError) -> Self {
        Error::backend("docker", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_container_is_named_with_the_node_it_stands_in_for() {
        let err: Error = DockerError::Foreign {
            container: "pm-c-vp0-1234".into(),
            node: "vp0".into(),
            cluster_id: "c1".into(),
        }
        .into();
        assert!(
            matches!(
                err,
                Error::Backend {
                    backend: "docker",
                    ..
                }
            ),
            "{err:?}"
        );
        let text = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            text.contains("pm-c-vp0-1234") && text.contains("vp0") && text.contains("c1"),
            "{text}"
        );
    }
}

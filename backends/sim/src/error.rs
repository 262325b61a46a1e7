//! The simulated engine's own failures, mapped to [`poolcore::Error`].

use poolcore::Error;

/// What a simulated engine refuses or fails; reaches callers as [`Error::Backend`] of
/// backend `sim`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SimError {
    /// The image is the test harness's missing one (its name holds `does-not-exist`).
    #[error("pull of image {image:?} failed: no registry the engine reaches has it")]
    PullFailed { image: String },

    /// A failure injected by the create failure rate.
    #[error("create of cluster {cluster_id} failed: a simulated fault (create failure rate {rate})")]
    CreateFault { cluster_id: String, rate: f64 },

    /// Every host port the engine hands out is taken.
    #[error("no free host port for port {port:?} of node {node:?}: the engine's ports are used up")]
    NoFreePort { node: String, port: String },

    /// A served port could not listen.
    #[error("port {port:?} of node {node:?} cannot listen on 127.0.0.1: {source}")]
    Listen {
        node: String,
        port: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<SimError> for Error {
    fn from(err: SimError) -> Self {
        Error::backend("sim", err)
    }
}

/// [`Error::NotFound`] for `node` of a cluster, or for the cluster when no node is named.
pub(crate) fn nothing_of(cluster_id: &str, node: Option<&str>) -> Error {
    match node {
        Some(node) => Error::not_found("node", node),
        None => Error::not_found("cluster", cluster_id),
    }
}

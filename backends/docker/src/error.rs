//! The engine's errors, with what the driver was doing, mapped to [`poolcore::Error`].

use bollard::errors::Error as BollardError;
use poolcore::Error;

/// What the driver was doing when the engine answered with an error.
#[derive(Debug, Clone)]
pub(crate) struct Action {
    /// `create`, `start`, `list`, ...
    verb: &'static str,
    /// `container`, `network`, `image`, ...
    kind: &'static str,
    /// Name or id of the object, or the label filter of a listing.
    target: String,
}

impl Action {
    pub(crate) fn new(verb: &'static str, kind: &'static str, target: impl Into<String>) -> Self {
        Action {
            verb,
            kind,
            target: target.into(),
        }
    }
}

/// The driver's own failures; they reach callers as [`Error::Backend`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerError {
    /// The engine refused or failed a request.
    #[error("{} {} {:?}: {}", .action.verb, .action.kind, .action.target, chain(.source))]
    Api {
        action: Action,
        #[source]
        source: BollardError,
    },
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

/// `err` and every source under it, so "client error (Connect)" also says why.
fn chain(err: &BollardError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        let line = inner.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = inner.source();
    }
    text
}

/// True for a response with this HTTP status.
pub(crate) fn has_status(err: &BollardError, status: u16) -> bool {
    matches!(err, BollardError::DockerResponseServerError { status_code, .. } if *status_code == status)
}

/// True when the engine could not be reached at all (as opposed to answering "no").
fn is_unreachable(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError
            | BollardError::SocketNotFoundError(_)
    )
}

/// Maps an engine error during `action` on the engine at `endpoint`: 404 is
/// [`Error::NotFound`], 409 [`Error::Conflict`], no answer [`Error::Unavailable`],
/// anything else [`Error::Backend`]; each names the object.
pub(crate) fn map_err(endpoint: &str, action: Action, err: BollardError) -> Error {
    match &err {
        BollardError::DockerResponseServerError { status_code: 404, .. } => {
            Error::not_found(action.kind, action.target)
        }
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } => Error::conflict(format!(
            "{} {} {:?}: {message}",
            action.verb, action.kind, action.target
        )),
        _ if is_unreachable(&err) => Error::unavailable(
            format!("docker engine at {endpoint}"),
            DockerError::Api { action, source: err },
        ),
        _ => DockerError::Api { action, source: err }.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status_code: u16) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: "engine says no".into(),
        }
    }

    #[test]
    fn statuses_map_to_kinds_with_context() {
        let action = || Action::new("create", "container", "pm-c-vp0-1234");
        let err = map_err("unix:///x.sock", action(), response(404));
        assert!(matches!(&err, Error::NotFound { kind: "container", id } if id == "pm-c-vp0-1234"));

        let err = map_err("unix:///x.sock", action(), response(409));
        assert_eq!(err.code(), "conflict");
        assert!(err.to_string().contains("pm-c-vp0-1234"), "{err}");

        let err = map_err("unix:///x.sock", action(), response(500));
        assert_eq!(err.code(), "backend_failure");
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(|s| s.to_string())
                .unwrap_or_default()
        );
        assert!(
            text.contains("pm-c-vp0-1234") && text.contains("engine says no"),
            "{text}"
        );

        let err = map_err("unix:///x.sock", action(), BollardError::RequestTimeoutError);
        assert_eq!(err.code(), "unavailable");
        assert!(err.to_string().contains("unix:///x.sock"), "{err}");
    }
}

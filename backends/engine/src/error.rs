//! The engine's errors, with what the driver was doing, mapped to [`poolcore::Error`]:
//! 404 is [`Error::NotFound`], 409 [`Error::Conflict`] (a create that finds its object
//! exists, for the driver to adopt), no answer [`Error::Unavailable`], anything else
//! [`Error::Backend`] of the host kind's backend.

use bollard::errors::Error as BollardError;
use poolcore::{Error, HostKind};

use crate::tls::handshake_hint;

/// What a driver was doing when the engine answered with an error: it names the object
/// in the error the caller sees.
#[derive(Debug, Clone)]
pub struct Action {
    /// `create`, `start`, `list`, ...
    verb: &'static str,
    /// `container`, `network`, `service`, ...
    kind: &'static str,
    /// Name or id of the object, or the label filter of a listing.
    target: String,
}

impl Action {
    /// Doing `verb` to the `kind` named `target`: `Action::new("create", "service", name)`.
    pub fn new(verb: &'static str, kind: &'static str, target: impl Into<String>) -> Self {
        Action {
            verb,
            kind,
            target: target.into(),
        }
    }
}

/// A request the engine refused or failed; reaches callers inside [`Error::Backend`] or
/// [`Error::Unavailable`].
#[derive(Debug, thiserror::Error)]
#[error("{} {} {:?}: {}", .action.verb, .action.kind, .action.target, chain(.source))]
pub(crate) struct RequestFailed {
    action: Action,
    #[source]
    source: BollardError,
}

/// A network still listed after every attempt to remove it: something still uses it.
#[derive(Debug, thiserror::Error)]
#[error("network {network:?} is still there after {}s of attempts to remove it", .patience.as_secs())]
pub(crate) struct NetworkLingers {
    pub(crate) network: String,
    pub(crate) patience: std::time::Duration,
}

/// The engine has no address range left for another network (its default pools give
/// about 30 bridge networks). Engines answer this with 404, which would read as
/// "not found".
#[derive(Debug, thiserror::Error)]
#[error(
    "the engine has no free address pool for network {network:?}: every cluster takes one network; \
     give dockerd a larger --default-address-pool (such as base=10.213.0.0/16,size=24) or lower the \
     host's capacity"
)]
pub(crate) struct NoAddressPool {
    pub(crate) network: String,
}

/// True when the engine refused a network because its address pools are used up.
pub(crate) fn is_out_of_address_pools(err: &BollardError) -> bool {
    matches!(err, BollardError::DockerResponseServerError { message, .. }
        if message.contains("non-overlapping") && message.contains("address pool"))
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

/// True for an engine response with this HTTP status.
pub fn has_status(err: &BollardError, status: u16) -> bool {
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

/// What an endpoint of `kind` is called in messages.
pub(crate) fn engine_noun(kind: HostKind) -> &'static str {
    match kind {
        HostKind::Docker => "docker engine",
        HostKind::Swarm => "swarm manager",
        HostKind::Sim => "simulated engine",
    }
}

/// Maps an engine error during `action` on the `kind` endpoint `endpoint`: 404 is
/// [`Error::NotFound`], 409 [`Error::Conflict`], no answer [`Error::Unavailable`],
/// anything else [`Error::Backend`] of the kind's backend; each names the object.
pub(crate) fn map_err(kind: HostKind, endpoint: &str, action: Action, err: BollardError) -> Error {
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
        _ if is_unreachable(&err) => {
            let hint = handshake_hint(&err);
            let failed = RequestFailed { action, source: err };
            let reason = match hint {
                Some(hint) => format!("{failed} ({hint})"),
                None => failed.to_string(),
            };
            Error::unavailable(format!("{} at {endpoint}", engine_noun(kind)), reason)
        }
        _ => Error::backend(kind.as_str(), RequestFailed { action, source: err }),
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
    fn used_up_address_pools_are_told_apart_from_a_missing_network() {
        // What a 20.10 engine answers when its default pools are used up.
        let full = BollardError::DockerResponseServerError {
            status_code: 404,
            message: "could not find an available, non-overlapping IPv4 address pool among the defaults \
                      to assign to the network"
                .into(),
        };
        assert!(is_out_of_address_pools(&full));
        assert!(!is_out_of_address_pools(&response(404)));
        let text = NoAddressPool {
            network: "pm-c".into(),
        }
        .to_string();
        assert!(text.contains("--default-address-pool"), "{text}");
    }

    #[test]
    fn statuses_map_to_kinds_with_context() {
        let action = || Action::new("create", "container", "pm-c-vp0-1234");
        let map = |err| map_err(HostKind::Docker, "unix:///x.sock", action(), err);
        let err = map(response(404));
        assert!(matches!(&err, Error::NotFound { kind: "container", id } if id == "pm-c-vp0-1234"));

        let err = map(response(409));
        assert_eq!(err.code(), "conflict");
        assert!(err.to_string().contains("pm-c-vp0-1234"), "{err}");

        let err = map(response(500));
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

        let err = map(BollardError::RequestTimeoutError);
        assert_eq!(err.code(), "unavailable");
        assert!(
            err.to_string().contains("docker engine at unix:///x.sock"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_backend_of_the_host_kind() {
        let action = Action::new("create", "service", "pm-c-vp0-1234");
        let err = map_err(HostKind::Swarm, "tcp://m:2375", action.clone(), response(500));
        assert!(matches!(err, Error::Backend { backend: "swarm", .. }), "{err:?}");
        let err = map_err(
            HostKind::Swarm,
            "tcp://m:2375",
            action,
            BollardError::RequestTimeoutError,
        );
        assert!(err.to_string().contains("swarm manager at tcp://m:2375"), "{err}");
    }
}

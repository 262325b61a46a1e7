//! The store's own errors, and how they become [`poolcore::Error`]s.

use std::future::Future;

use mongodb::error::{ErrorKind, WriteFailure};
use poolcore::{Error, Result};
use tracing::Instrument;

use crate::documents::CodecError;

/// MongoDB's error code for a write that breaks a unique index.
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// Server error codes that mean "this server cannot serve now" (failover, shutdown,
/// network): worth retrying later.
const UNAVAILABLE_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// What can go wrong inside the store; becomes an [`Error`] with the operation's name.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MongoError {
    /// The driver or the server failed.
    #[error(transparent)]
    Driver(#[from] mongodb::error::Error),
    /// A record could not be written as a document, or a document read as a record.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A pool error decided by the store (conflict, stale, not found).
    #[error(transparent)]
    Pool(#[from] Error),
}

/// A failed operation, for [`Error::Backend`]'s source.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {cause}")]
struct Failed {
    op: &'static str,
    cause: MongoError,
}

impl MongoError {
    /// The pool error for this failure of `op`: duplicate keys are conflicts, an
    /// unreachable or failing-over server is unavailable (retrying may work), the
    /// rest is a backend failure.
    pub(crate) fn into_error(self, op: &'static str) -> Error {
        match self {
            MongoError::Pool(e) => e,
            MongoError::Driver(ref e) if is_duplicate_key(e) => Error::conflict(format!("{op}: {e}")),
            MongoError::Driver(ref e) if is_unavailable(e) => {
                Error::unavailable("mongodb server", format!("{op}: {e}"))
            }
            cause => Error::backend("mongodb", Failed { op, cause }),
        }
    }
}

fn server_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// True when `e` is a write refused by a unique index.
pub(crate) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    server_code(e) == Some(DUPLICATE_KEY)
}

fn is_unavailable(e: &mongodb::error::Error) -> bool {
    matches!(
        e.kind.as_ref(),
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown
    ) || server_code(e).is_some_and(|code| UNAVAILABLE_CODES.contains(&code))
}

/// `e`, or [`Error::Conflict`] with `message` when `e` is a duplicate key.
pub(crate) fn conflict_on_duplicate(
    e: mongodb::error::Error,
    message: impl FnOnce() -> String,
) -> MongoError {
    if is_duplicate_key(&e) {
        MongoError::Pool(Error::conflict(message()))
    } else {
        MongoError::Driver(e)
    }
}

/// Why a conditional write of `kind` `id`, read at version `read`, matched nothing,
/// given the version stored now: gone ([`Error::NotFound`]), changed meanwhile
/// ([`Error::Stale`]), or, at the same version, refused by a unique index (a server
/// may answer a `findAndModify` that breaks one with no document instead of an
/// error; nx-27017 does): [`Error::Conflict`] with `taken`.
pub(crate) fn missed_write(
    kind: &'static str,
    id: &str,
    read: u64,
    stored: Option<u64>,
    taken: impl FnOnce() -> String,
) -> MongoError {
    MongoError::Pool(match stored {
        None => Error::not_found(kind, id),
        Some(stored) if stored != read => Error::stale(kind, id, read, stored),
        Some(_) => Error::conflict(taken()),
    })
}

/// Runs the work of `op` in a span and turns its error into a pool error.
pub(crate) async fn run<T>(op: &'static str, work: impl Future<Output = Result<T, MongoError>>) -> Result<T> {
    work.instrument(tracing::debug_span!("mongodb", op))
        .await
        .map_err(|e| e.into_error(op))
}

//! What can go wrong inside the store, and how it becomes a [`poolcore::Error`].

use poolcore::Error;
use rusqlite::ErrorCode;

/// What can go wrong inside the store; becomes an [`Error`] with the operation's name.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqliteError {
    /// A statement failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A structured field could not be written as JSON.
    #[error("cannot encode as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The database could not be opened.
    #[error("cannot open sqlite database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    /// The database was written by newer code.
    #[error(
        "database {path} has schema version {found}, newer than version {supported} that this \
         poolcore-sqlite knows; open it with a newer PoolManager"
    )]
    SchemaTooNew {
        path: String,
        found: u32,
        supported: u32,
    },
    /// A pool error decided inside a transaction (conflict, stale, not found).
    #[error(transparent)]
    Pool(#[from] Error),
}

/// A failed operation, for [`Error::Backend`]'s source.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {cause}")]
struct Failed {
    op: &'static str,
    cause: SqliteError,
}

impl SqliteError {
    /// The pool error for this failure of `op`: constraint violations are conflicts,
    /// a busy or locked database is unavailable (retrying may work), the rest is a
    /// backend failure.
    pub(crate) fn into_error(self, op: &'static str) -> Error {
        match self {
            SqliteError::Pool(e) => e,
            SqliteError::Sqlite(ref e) => match e.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => Error::conflict(format!("{op}: {e}")),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                    Error::unavailable("sqlite database", format!("{op}: {e}"))
                }
                _ => Error::backend("sqlite", Failed { op, cause: self }),
            },
            cause => Error::backend("sqlite", Failed { op, cause }),
        }
    }
}

/// `e`, or [`Error::Conflict`] with `message` when `e` is a constraint violation.
pub(crate) fn conflict_on_constraint(e: rusqlite::Error, message: impl FnOnce() -> String) -> SqliteError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => SqliteError::Pool(Error::conflict(message())),
        _ => SqliteError::Sqlite(e),
    }
}

/// The error of a task on a blocking thread that did not finish.
pub(crate) fn join_error(e: tokio::task::JoinError) -> Error {
    match e.try_into_panic() {
        // A panic in a query is a bug: let it reach the caller as a panic.
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(e) => Error::unavailable("sqlite store", format!("its worker thread stopped: {e}")),
    }
}

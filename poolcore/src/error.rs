//! The one error type of `poolcore` and of every backend.

use std::fmt;

/// A boxed error from a backend (an engine, a database driver, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the pool.
///
/// Each variant maps to one HTTP status in the server: [`Error::NotFound`] 404,
/// [`Error::Conflict`] and [`Error::Stale`] 409, [`Error::Forbidden`] 403,
/// [`Error::Invalid`] 400, [`Error::QuotaExceeded`] 429, [`Error::PoolExhausted`] and
/// [`Error::Unavailable`] 503, [`Error::Backend`] 502.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named object does not exist.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// What kind of object: `host`, `cluster`, ...
        kind: &'static str,
        /// The id or name asked for.
        id: String,
    },

    /// The request clashes with the current state: a name taken, a full host, a host
    /// still in use, a cluster in the wrong status.
    #[error("{message}")]
    Conflict {
        /// What clashes, with the values.
        message: String,
    },

    /// A record changed since it was read (its version moved on): read it again and
    /// decide anew. The pool retries where that is safe; the REST API answers 409.
    #[error("{kind} {id:?} was changed meanwhile (version {read} is now {stored})")]
    Stale {
        /// What kind of record: `host`, `cluster`.
        kind: &'static str,
        /// Its id.
        id: String,
        /// The version that was read.
        read: u64,
        /// The version stored now.
        stored: u64,
    },

    /// The caller may not do this to this object (a user acting on a cluster applied
    /// to someone else).
    #[error("{message}")]
    Forbidden {
        /// What was refused, and why.
        message: String,
    },

    /// The input is not acceptable; nothing was changed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field that is wrong.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// No ready, healthy cluster matches an apply.
    #[error("no ready cluster matches {wanted}")]
    PoolExhausted {
        /// What was asked for.
        wanted: String,
    },

    /// An apply beyond a quota: the user holds as many clusters as one may, or the
    /// blueprint has as many applied as it allows. Releasing one makes room.
    #[error("quota exceeded: {message}")]
    QuotaExceeded {
        /// `user` or `blueprint`.
        quota: &'static str,
        /// Which quota, with its limit.
        message: String,
    },

    /// A host or service cannot be reached right now; trying again later may work.
    #[error("{what} is unavailable: {reason}")]
    Unavailable {
        /// What cannot be reached.
        what: String,
        /// Why.
        reason: String,
    },

    /// A backend (Docker engine, database) failed.
    #[error("{backend} failed: {source}")]
    Backend {
        /// Which backend: `docker`, `sqlite`, ...
        backend: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// [`Error::NotFound`] for `kind` and `id`.
    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Self {
        Error::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    /// [`Error::Invalid`] for `field`.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// [`Error::Conflict`] with `message`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
        }
    }

    /// [`Error::Stale`] for `kind` `id`, read at version `read`, now at `stored`.
    pub fn stale(kind: &'static str, id: impl fmt::Display, read: u64, stored: u64) -> Self {
        Error::Stale {
            kind,
            id: id.to_string(),
            read,
            stored,
        }
    }

    /// [`Error::Forbidden`] with `message`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden {
            message: message.into(),
        }
    }

    /// [`Error::Backend`] wrapping `source`.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }

    /// [`Error::Unavailable`] for `what`.
    pub fn unavailable(what: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Unavailable {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// A short, stable, machine-readable code: the `code` of the REST error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Stale { .. } => "stale",
            Error::Forbidden { .. } => "forbidden",
            Error::Invalid { .. } => "invalid_input",
            Error::PoolExhausted { .. } => "pool_exhausted",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::Unavailable { .. } => "unavailable",
            Error::Backend { .. } => "backend_failure",
        }
    }

    /// Every value [`Error::code`] can return, for documenting them.
    pub const CODES: &'static [&'static str] = &[
        "not_found",
        "conflict",
        "stale",
        "forbidden",
        "invalid_input",
        "pool_exhausted",
        "quota_exceeded",
        "unavailable",
        "backend_failure",
    ];

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::Stale`]: reading again and retrying may succeed.
    pub fn is_stale(&self) -> bool {
        matches!(self, Error::Stale { .. })
    }
}

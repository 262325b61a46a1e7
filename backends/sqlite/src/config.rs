//! [`SqliteConfig`]: where the database lives and how it is opened.

use std::path::{Path, PathBuf};
use std::time::Duration;

use poolcore::{Error, Result};
use serde::{Deserialize, Serialize};

/// The path that means "a private database in memory", as SQLite spells it.
pub const MEMORY: &str = ":memory:";

/// Where a [`SqliteStore`](crate::SqliteStore) keeps its data and how it opens it.
///
/// Build it in code, from a URL with [`SqliteConfig::from_url`], or read it from a
/// config file (serde; missing fields take their defaults):
///
/// ```
/// use std::time::Duration;
/// use poolcore_sqlite::SqliteConfig;
///
/// let config = SqliteConfig::new("/var/lib/poolmanager/pool.db")
///     .with_busy_timeout(Duration::from_secs(10))
///     .with_pool_size(8);
/// assert_eq!(config, SqliteConfig::from_url(
///     "sqlite:///var/lib/poolmanager/pool.db?busy_timeout_ms=10000&pool_size=8",
/// )?);
/// # Ok::<(), poolcore::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file, created if missing (its directory must exist), or
    /// [`MEMORY`] for a database that lives as long as the store.
    pub path: PathBuf,
    /// How long a statement waits for another connection or process to let go of the
    /// database before it fails with [`Error::Unavailable`], in milliseconds.
    pub busy_timeout_ms: u64,
    /// Connections kept open: one writes, the others read beside it. At least 1. An
    /// in-memory database always uses a single connection.
    pub pool_size: usize,
}

impl Default for SqliteConfig {
    /// `./poolmanager.db`, 5 s busy timeout, 4 connections.
    fn default() -> Self {
        SqliteConfig {
            path: PathBuf::from("./poolmanager.db"),
            busy_timeout_ms: 5_000,
            pool_size: 4,
        }
    }
}

impl SqliteConfig {
    /// The database file at `path`, with default options.
    pub fn new(path: impl AsRef<Path>) -> Self {
        SqliteConfig {
            path: path.as_ref().to_path_buf(),
            ..Default::default()
        }
    }

    /// A private in-memory database, with default options.
    pub fn memory() -> Self {
        Self::new(MEMORY)
    }

    /// Parses a store URL:
    ///
    /// - `sqlite::memory:` (or `sqlite://:memory:`): in memory;
    /// - `sqlite://./poolmanager.db`, `sqlite://poolmanager.db`: relative to the
    ///   working directory;
    /// - `sqlite:///var/lib/pool.db`: an absolute path;
    ///
    /// optionally followed by `?busy_timeout_ms=N&pool_size=N`. The path is taken
    /// literally (no percent-decoding).
    ///
    /// # Errors
    /// [`Error::Invalid`] for another scheme, an empty path or an unknown or bad
    /// option.
    pub fn from_url(url: &str) -> Result<Self> {
        let invalid = |reason: String| Error::invalid("sqlite url", format!("{url:?}: {reason}"));
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return Err(invalid(
                "expected sqlite://PATH, sqlite:///ABSOLUTE/PATH or sqlite::memory:".into(),
            ));
        };
        let (location, query) = match rest.split_once('?') {
            Some((location, query)) => (location, Some(query)),
            None => (rest, None),
        };
        let path = location.strip_prefix("//").unwrap_or(location);
        if path.is_empty() {
            return Err(invalid("the database path is empty".into()));
        }
        let mut config = Self::new(path);
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| invalid(format!("option {key} wants a whole number, not {value:?}")))
            };
            match key {
                "busy_timeout_ms" => config.busy_timeout_ms = number()?,
                "pool_size" => {
                    config.pool_size = usize::try_from(number()?)
                        .map_err(|_| invalid(format!("pool_size {value} is too large")))?
                }
                other => {
                    return Err(invalid(format!(
                        "unknown option {other:?}; known: busy_timeout_ms, pool_size"
                    )))
                }
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets how long to wait for a busy database (see [`SqliteConfig::busy_timeout_ms`]).
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets how many connections to keep open (see [`SqliteConfig::pool_size`]).
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// True when the database lives in memory.
    pub fn is_memory(&self) -> bool {
        self.path.as_os_str() == MEMORY
    }

    /// The busy timeout as a [`Duration`].
    pub fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }

    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty path or a pool size of 0.
    pub fn validate(&self) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            return Err(Error::invalid("sqlite path", "the database path is empty"));
        }
        if self.pool_size == 0 {
            return Err(Error::invalid("sqlite pool_size", "needs at least 1 connection"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_forms() {
        let cases = [
            ("sqlite::memory:", ":memory:"),
            ("sqlite://:memory:", ":memory:"),
            ("sqlite://./poolmanager.db", "./poolmanager.db"),
            ("sqlite://pool.db", "pool.db"),
            ("sqlite:///abs/path.db", "/abs/path.db"),
            ("sqlite:pool.db", "pool.db"),
        ];
        for (url, path) in cases {
            let config = SqliteConfig::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(config.path, Path::new(path), "{url}");
            assert_eq!(config.pool_size, SqliteConfig::default().pool_size);
        }
        assert!(SqliteConfig::from_url("sqlite::memory:").is_ok_and(|c| c.is_memory()));
    }

    #[test]
    fn parses_options() {
        let config =
            SqliteConfig::from_url("sqlite://x.db?pool_size=2&busy_timeout_ms=250").expect("valid url");
        assert_eq!(config.pool_size, 2);
        assert_eq!(config.busy_timeout(), Duration::from_millis(250));
    }

    #[test]
    fn refuses_bad_urls() {
        for url in [
            "",
            "postgres://db/pool",
            "mongodb://localhost",
            "sqlite://",
            "sqlite:",
            "sqlite://x.db?pool_size=0",
            "sqlite://x.db?pool_size=many",
            "sqlite://x.db?cache=shared",
        ] {
            let err = SqliteConfig::from_url(url).expect_err(url);
            assert_eq!(err.code(), "invalid_input", "{url}: {err}");
        }
    }

    #[test]
    fn reads_from_serde_with_defaults() {
        let config: SqliteConfig = serde_json::from_str(r#"{"path": "/tmp/p.db"}"#).expect("valid json");
        assert_eq!(config, SqliteConfig::new("/tmp/p.db"));
        assert!(serde_json::from_str::<SqliteConfig>(r#"{"paht": "/tmp/p.db"}"#).is_err());
    }
}

//! [`MongoConfig`]: which MongoDB deployment and which database the store uses.

use std::fmt;

use poolcore::{Error, Result};
use serde::{Deserialize, Serialize};

/// The database used when neither the URL's path nor [`MongoConfig::database`] names one.
pub const DEFAULT_DATABASE: &str = "poolmanager";

/// The URL schemes of a MongoDB connection string.
const SCHEMES: [&str; 2] = ["mongodb://", "mongodb+srv://"];

/// Characters MongoDB does not allow in a database name.
const FORBIDDEN_IN_DATABASE: &[char] = &['/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0'];

/// Where a [`MongoStore`](crate::MongoStore) keeps its data.
///
/// Build it in code, from a URL with [`MongoConfig::from_url`], or read it from a
/// config file (serde; missing fields take their defaults). The URL is a standard
/// MongoDB connection string: its options (`replicaSet`, `w`, `tls`,
/// `serverSelectionTimeoutMS`, ...) go to the driver unchanged, and its path names
/// the database, as the original PoolManager's `MONGO_URL` did.
/// [`MongoConfig::database`] overrides that name (the original's
/// `MONGO_COLLECTION`).
///
/// ```
/// use poolcore_mongo::MongoConfig;
///
/// let config = MongoConfig::from_url("mongodb://db1:27017,db2:27017/pool?replicaSet=rs0")?;
/// assert_eq!(config.database_name(), "pool");
/// let config = config.with_database("staging");
/// assert_eq!(config.database_name(), "staging");
/// assert_eq!(config.url_with_database(), "mongodb://db1:27017,db2:27017/staging?replicaSet=rs0");
/// assert_eq!(MongoConfig::from_url("mongodb://localhost")?.database_name(), "poolmanager");
/// # Ok::<(), poolcore::Error>(())
/// ```
///
/// `Debug` hides the password of the URL.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MongoConfig {
    /// Connection string: `mongodb://HOST[:PORT][,HOST...]/[DATABASE][?OPTIONS]` or
    /// `mongodb+srv://...`.
    pub url: String,
    /// Database holding the collections; when `None`, the URL's path, else
    /// [`DEFAULT_DATABASE`].
    pub database: Option<String>,
}

impl Default for MongoConfig {
    /// `mongodb://127.0.0.1:27017`, database `poolmanager`.
    fn default() -> Self {
        MongoConfig::new("mongodb://127.0.0.1:27017")
    }
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("url", &redact(&self.url))
            .field("database", &self.database)
            .finish()
    }
}

impl MongoConfig {
    /// The deployment at `url`, unchecked; [`MongoConfig::from_url`] checks it.
    pub fn new(url: impl Into<String>) -> Self {
        MongoConfig {
            url: url.into(),
            database: None,
        }
    }

    /// Parses and checks a connection string (see [`MongoConfig`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] for another scheme, no host, or a database name MongoDB
    /// does not allow.
    pub fn from_url(url: &str) -> Result<Self> {
        let config = MongoConfig::new(url);
        config.validate()?;
        Ok(config)
    }

    /// Uses the database `name`, whatever the URL says.
    pub fn with_database(mut self, name: impl Into<String>) -> Self {
        self.database = Some(name.into());
        self
    }

    /// The database the store uses: [`MongoConfig::database`], else the URL's path,
    /// else [`DEFAULT_DATABASE`].
    pub fn database_name(&self) -> String {
        self.database
            .clone()
            .or_else(|| {
                split_url(&self.url)
                    .map(|parts| parts.database.to_owned())
                    .filter(|db| !db.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned())
    }

    /// The URL with [`MongoConfig::database_name`] as its path: one string that
    /// names both, e.g. for another process's `--database`.
    pub fn url_with_database(&self) -> String {
        match split_url(&self.url) {
            Some(parts) => format!(
                "{}{}/{}{}",
                parts.scheme,
                parts.hosts,
                self.database_name(),
                parts.options
            ),
            None => self.url.clone(),
        }
    }

    /// The URL with its password, if any, replaced by `<redacted>`: safe for logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Checks the URL and the database name.
    ///
    /// # Errors
    /// [`Error::Invalid`] for another scheme, no host, or a database name MongoDB
    /// does not allow.
    pub fn validate(&self) -> Result<()> {
        let invalid =
            |reason: String| Error::invalid("mongodb url", format!("{}: {reason}", redact(&self.url)));
        let parts = split_url(&self.url).ok_or_else(|| {
            invalid("expected mongodb://HOST[:PORT]/[DATABASE][?OPTIONS] or mongodb+srv://...".into())
        })?;
        let hosts = parts
            .hosts
            .rsplit_once('@')
            .map_or(parts.hosts, |(_, hosts)| hosts);
        if hosts.is_empty() {
            return Err(invalid("no host given".into()));
        }
        let name = self.database_name();
        if name.is_empty() || name.len() > 63 || name.contains(FORBIDDEN_IN_DATABASE) {
            return Err(Error::invalid(
                "mongodb database",
                format!("{name:?} must be 1-63 characters, none of / \\ . space \" $ * < > : | ?"),
            ));
        }
        Ok(())
    }
}

/// A connection string cut at its path: `scheme`, `[user:pass@]hosts`, the
/// database (possibly empty) and `?options` (possibly empty).
struct UrlParts<'a> {
    scheme: &'a str,
    hosts: &'a str,
    database: &'a str,
    options: &'a str,
}

fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let scheme = SCHEMES.into_iter().find(|s| url.starts_with(s))?;
    let rest = &url[scheme.len()..];
    let (before_options, options) = match rest.find('?') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    // Credentials have '/' percent-encoded, so the first '/' ends the host list.
    let (hosts, database) = before_options.split_once('/').unwrap_or((before_options, ""));
    Some(UrlParts {
        scheme,
        hosts,
        database,
        options,
    })
}

fn redact(url: &str) -> String {
    let Some(parts) = split_url(url) else {
        return url.to_owned();
    };
    match parts.hosts.rsplit_once('@') {
        Some((credentials, hosts)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            let path = &url[parts.scheme.len() + parts.hosts.len()..];
            format!("{}{user}:<redacted>@{hosts}{path}", parts.scheme)
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_comes_from_the_path_or_the_default() {
        let cases = [
            ("mongodb://localhost", "poolmanager"),
            ("mongodb://localhost/", "poolmanager"),
            ("mongodb://localhost:27017/pool", "pool"),
            ("mongodb://a:1,b:2/pool?replicaSet=rs0&w=majority", "pool"),
            ("mongodb://a:1/?replicaSet=rs0", "poolmanager"),
            (
                "mongodb+srv://user:p%2Fw@cluster0.example.net/pm?retryWrites=true",
                "pm",
            ),
        ];
        for (url, database) in cases {
            let config = MongoConfig::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(config.database_name(), database, "{url}");
        }
    }

    #[test]
    fn the_database_can_be_overridden() {
        let config = MongoConfig::from_url("mongodb://u:secret@h:1/pool?tls=true")
            .expect("valid url")
            .with_database("other");
        assert_eq!(config.database_name(), "other");
        assert_eq!(
            config.url_with_database(),
            "mongodb://u:secret@h:1/other?tls=true"
        );
        assert_eq!(
            MongoConfig::new("mongodb://h").url_with_database(),
            "mongodb://h/poolmanager"
        );
    }

    #[test]
    fn refuses_bad_urls() {
        for url in [
            "",
            "sqlite://pool.db",
            "mongodb://",
            "mongodb://user:pw@/db",
            "mongodb://h/bad.name",
            "mongodb://h/a$b",
            "postgres://h/db",
        ] {
            let err = MongoConfig::from_url(url).expect_err(url);
            assert_eq!(err.code(), "invalid_input", "{url}: {err}");
        }
        let long = format!("mongodb://h/{}", "x".repeat(64));
        assert!(MongoConfig::from_url(&long).is_err());
    }

    #[test]
    fn passwords_stay_out_of_debug_and_errors() {
        let config = MongoConfig::new("mongodb://admin:s3cret@h:1/pool?authSource=admin");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("admin:<redacted>@h:1/pool?authSource=admin"),
            "{shown}"
        );
        let err = MongoConfig::from_url("mongodb://admin:s3cret@h:1/bad.name").expect_err("bad name");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let err = MongoConfig::from_url("mongodb://admin:s3cret@").expect_err("no host");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert_eq!(MongoConfig::new("mongodb://h/x").redacted_url(), "mongodb://h/x");
    }

    #[test]
    fn reads_from_serde_with_defaults() {
        let config: MongoConfig =
            serde_json::from_str(r#"{"url": "mongodb://h/pool", "database": "x"}"#).expect("valid json");
        assert_eq!(config.database_name(), "x");
        let config: MongoConfig = serde_json::from_str("{}").expect("valid json");
        assert_eq!(config, MongoConfig::default());
        assert!(serde_json::from_str::<MongoConfig>(r#"{"uri": "mongodb://h"}"#).is_err());
    }
}

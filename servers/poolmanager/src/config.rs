//! Server configuration: defaults < TOML file (`POOLMANAGER_CONFIG_FILE`) < environment
//! (`POOLMANAGER_*`) < command-line flags.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use poolcore::EndpointPolicy;
use poolcore_docker::DockerConfig;
use poolcore_sim::SimConfig;
use poolcore_swarm::SwarmConfig;
use serde::{Deserialize, Serialize};

/// Environment variable naming the TOML config file.
pub const CONFIG_FILE_ENV: &str = "POOLMANAGER_CONFIG_FILE";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object a line.
    Json,
}

/// Everything the server can be told.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Store URL: `sqlite://./poolmanager.db`, `sqlite:///abs/path.db`,
    /// `sqlite::memory:`, or `mongodb://HOST[:PORT]/DATABASE[?OPTIONS]` for a
    /// MongoDB database that several servers share.
    pub database: String,
    /// Token for every endpoint; generated and kept in `admin_token_file` when unset.
    /// Required with a MongoDB database unless `admin_token_file` is set.
    pub admin_token: Option<String>,
    /// Where a generated admin token is kept; beside a SQLite database when unset.
    pub admin_token_file: Option<PathBuf>,
    /// Token for the user endpoints (apply, release, clusters).
    pub user_token: Option<String>,
    /// Token that may read `GET /metrics` (besides the admin token), for a Prometheus
    /// scraper that should not hold the admin token.
    pub metrics_token: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Clusters created at once on one host.
    pub host_parallelism: usize,
    /// Hold `host_parallelism` across every server sharing the store, not per server.
    pub host_parallelism_shared: bool,
    /// Most clusters created at once in the whole pool, across every server sharing
    /// the store; 0 for no limit beyond the hosts'.
    pub creation_parallelism: usize,
    /// Lease length when an apply gives none.
    pub default_ttl_seconds: Option<u64>,
    /// Longest lease an apply may ask for.
    pub max_ttl_seconds: Option<u64>,
    /// Most clusters one user may hold at once, over every blueprint; no limit when
    /// unset. An apply beyond it is 429 `quota_exceeded`.
    pub max_clusters_per_user: Option<u32>,
    /// Longest an apply may wait for a cluster (its `wait_seconds`) when none is
    /// ready; 0 lets no apply wait. The idle timeout does not cut a waiting apply: a
    /// connection with a request in hand is closed only once it is answered.
    pub max_apply_wait_seconds: u64,
    /// Seconds a blueprint whose creations failed three times in a row is not tried
    /// again; doubled with every further failure.
    pub creation_backoff_seconds: u64,
    /// The longest the creation backoff grows to, in seconds.
    pub creation_backoff_max_seconds: u64,
    /// Seconds between reconcile passes (`POOLMANAGER_RECONCILE_INTERVAL`); 0 turns
    /// the reconciler off in `serve`.
    pub reconcile_interval: u64,
    /// Failed probes in a row before a host is marked inactive.
    pub reconcile_failed_probes: u32,
    /// Seconds after which a cluster still creating, releasing or deleting is taken for
    /// abandoned by a crashed server and driven on; also the wait before a failed
    /// cluster is tried again.
    pub reconcile_transition_timeout: u64,
    /// Seconds after which a running fill, clean or reset that no server has written
    /// (its server writes it every quarter of this) is closed as interrupted.
    pub reconcile_operation_timeout: u64,
    /// Hosts probed and inspected at once by a pass.
    pub reconcile_host_concurrency: usize,
    /// How docker hosts are driven (the `[docker]` table of the config file): the
    /// timeout of one engine request, the grace a node gets to stop (stop, restart and
    /// a `reset` release).
    pub docker: DockerConfig,
    /// How swarm hosts are driven (the `[swarm]` table of the config file): stop grace
    /// period, how long to wait for nodes to start, restart attempts.
    pub swarm: SwarmConfig,
    /// How simulated engines behave (the `[sim]` table): latencies, injected create
    /// failures, whether published ports are served. Hosts of kind `sim` run on them,
    /// to try the API without Docker; nothing of theirs survives a restart.
    pub sim: SimConfig,
    /// PEM file with the server's certificate chain; with `tls_key`, the server speaks
    /// HTTPS only. Both files are read again on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Seconds a client has to send a request's headers (and, first, finish the TLS
    /// handshake); slower connections are closed. 0 turns it off.
    pub header_timeout_seconds: u64,
    /// Seconds a connection may stay without any traffic before it is closed. 0 turns
    /// it off.
    pub idle_timeout_seconds: u64,
    /// Connections open at once; those beyond are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Clients following `GET /api/v1/events` at once; more get 503.
    pub max_event_subscribers: usize,
    /// Engine endpoints hosts may have (`unix:///var/run/docker.sock`,
    /// `tcp://10.0.*:2376`, `sim://*`); empty allows any but link-local ones.
    pub endpoint_allow: Vec<String>,
    /// Refuse engine endpoints on link-local and cloud metadata addresses.
    pub endpoint_deny_link_local: bool,
    /// Networks (`10.0.0.0/8`, `fd00::/8`) or addresses whose callers may use the
    /// original PoolManager API (`/v1/...`, `/v2/...`) without a token, as with the
    /// user token; none by default. `/api/v1` always needs a token.
    pub legacy_open_to: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database: "sqlite://./poolmanager.db".into(),
            admin_token: None,
            admin_token_file: None,
            user_token: None,
            metrics_token: None,
            log_format: LogFormat::Human,
            host_parallelism: 4,
            host_parallelism_shared: false,
            creation_parallelism: 0,
            default_ttl_seconds: None,
            max_ttl_seconds: None,
            max_clusters_per_user: None,
            max_apply_wait_seconds: 30,
            creation_backoff_seconds: 10,
            creation_backoff_max_seconds: 600,
            reconcile_interval: 15,
            reconcile_failed_probes: 3,
            reconcile_transition_timeout: 300,
            reconcile_operation_timeout: 60,
            reconcile_host_concurrency: 8,
            docker: DockerConfig::default(),
            swarm: SwarmConfig::default(),
            sim: SimConfig::default(),
            tls_cert: None,
            tls_key: None,
            header_timeout_seconds: 10,
            idle_timeout_seconds: 60,
            max_connections: 10_000,
            max_event_subscribers: 1_000,
            endpoint_allow: Vec::new(),
            endpoint_deny_link_local: true,
            legacy_open_to: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database", &redact_database(&self.database))
            .field("admin_token", &redacted(&self.admin_token))
            .field("admin_token_file", &self.admin_token_file)
            .field("user_token", &redacted(&self.user_token))
            .field("metrics_token", &redacted(&self.metrics_token))
            .field("log_format", &self.log_format)
            .field("host_parallelism", &self.host_parallelism)
            .field("host_parallelism_shared", &self.host_parallelism_shared)
            .field("creation_parallelism", &self.creation_parallelism)
            .field("default_ttl_seconds", &self.default_ttl_seconds)
            .field("max_ttl_seconds", &self.max_ttl_seconds)
            .field("max_clusters_per_user", &self.max_clusters_per_user)
            .field("max_apply_wait_seconds", &self.max_apply_wait_seconds)
            .field("creation_backoff_seconds", &self.creation_backoff_seconds)
            .field("creation_backoff_max_seconds", &self.creation_backoff_max_seconds)
            .field("reconcile_interval", &self.reconcile_interval)
            .field("reconcile_failed_probes", &self.reconcile_failed_probes)
            .field("reconcile_transition_timeout", &self.reconcile_transition_timeout)
            .field("reconcile_operation_timeout", &self.reconcile_operation_timeout)
            .field("reconcile_host_concurrency", &self.reconcile_host_concurrency)
            .field("docker", &self.docker)
            .field("swarm", &self.swarm)
            .field("sim", &self.sim)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("header_timeout_seconds", &self.header_timeout_seconds)
            .field("idle_timeout_seconds", &self.idle_timeout_seconds)
            .field("max_connections", &self.max_connections)
            .field("max_event_subscribers", &self.max_event_subscribers)
            .field("endpoint_allow", &self.endpoint_allow)
            .field("endpoint_deny_link_local", &self.endpoint_deny_link_local)
            .field("legacy_open_to", &self.legacy_open_to)
            .finish()
    }
}

/// Values given as command-line flags; unset ones leave the lower layers alone.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// Address to listen on [env: POOLMANAGER_LISTEN, default 127.0.0.1:8080].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Store URL [env: POOLMANAGER_DATABASE, default sqlite://./poolmanager.db].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Log format [env: POOLMANAGER_LOG_FORMAT].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// PEM certificate chain; with --tls-key, serve HTTPS [env: POOLMANAGER_TLS_CERT].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [env: POOLMANAGER_TLS_KEY].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a client has to send a request's headers; 0 = no limit
    /// [env: POOLMANAGER_HEADER_TIMEOUT_SECONDS, default 10].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_seconds: Option<u64>,
    /// Seconds without traffic before a connection is closed; 0 = no limit
    /// [env: POOLMANAGER_IDLE_TIMEOUT_SECONDS, default 60].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// Connections open at once [env: POOLMANAGER_MAX_CONNECTIONS, default 10000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Clients of GET /api/v1/events at once [env: POOLMANAGER_MAX_EVENT_SUBSCRIBERS,
    /// default 1000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_event_subscribers: Option<usize>,
}

impl Config {
    /// Reads the layers: defaults, the TOML file named by `file` or by
    /// `POOLMANAGER_CONFIG_FILE`, `POOLMANAGER_*` variables, then `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    file.display()
                ))));
            }
            figment = figment.merge(Toml::file(file));
        }
        let config: Config = figment
            .merge(Env::prefixed("POOLMANAGER_").ignore(&["config_file"]))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)?;
        config.check().map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(config)
    }

    /// Settings that cannot work together or at all.
    fn check(&self) -> Result<(), String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err("tls_cert is set but tls_key is not: HTTPS needs both".into()),
            (None, Some(_)) => return Err("tls_key is set but tls_cert is not: HTTPS needs both".into()),
            _ => {}
        }
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        let max_wait = poolcore::limits::APPLY_WAIT_MAX_SECONDS;
        if self.max_apply_wait_seconds > max_wait {
            return Err(format!("max_apply_wait_seconds must be at most {max_wait}"));
        }
        if self.creation_backoff_max_seconds < self.creation_backoff_seconds {
            return Err(format!(
                "creation_backoff_max_seconds ({}) must be at least creation_backoff_seconds ({})",
                self.creation_backoff_max_seconds, self.creation_backoff_seconds
            ));
        }
        Ok(())
    }

    /// The TLS certificate and key files, when HTTPS is on.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// Which engine endpoints hosts may be added with.
    pub fn endpoint_policy(&self) -> EndpointPolicy {
        EndpointPolicy {
            allow: self.endpoint_allow.clone(),
            deny_link_local: self.endpoint_deny_link_local,
        }
    }

    /// The directory of a SQLite database file (the working directory for one in
    /// memory), where a generated token is kept; `None` for other stores.
    fn data_dir(&self) -> Option<PathBuf> {
        let path = self
            .database
            .strip_prefix("sqlite://")
            .or_else(|| self.database.strip_prefix("sqlite:"))?;
        let dir = Some(path)
            .filter(|p| !p.starts_with(':'))
            .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Some(dir)
    }

    /// Where the generated admin token is kept: `admin_token_file`, else beside a
    /// SQLite database; `None` for a store that several servers share.
    pub fn admin_token_path(&self) -> Option<PathBuf> {
        self.admin_token_file
            .clone()
            .or_else(|| Some(self.data_dir()?.join("poolmanager.admin-token")))
    }
}

/// The kinds of store a database URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `sqlite://PATH`, `sqlite::memory:`.
    Sqlite,
    /// `mongodb://...`, `mongodb+srv://...`.
    Mongo,
}

impl StoreKind {
    /// The kind of store `url` names, by its scheme; `None` for an unknown one.
    pub fn of(url: &str) -> Option<StoreKind> {
        if url.starts_with("sqlite:") {
            Some(StoreKind::Sqlite)
        } else if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
            Some(StoreKind::Mongo)
        } else {
            None
        }
    }
}

/// `url` with any password in it replaced: safe for logs and error messages.
pub fn redact_database(url: &str) -> String {
    match StoreKind::of(url) {
        Some(StoreKind::Mongo) => poolcore_mongo::MongoConfig::new(url).redacted_url(),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail dictates the closure's error type
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "pm.toml",
                "listen = \"0.0.0.0:9000\"\ndatabase = \"sqlite://file.db\"\nhost_parallelism = 2\n\
                 [swarm]\nstop_grace_secs = 3\n[docker]\nstop_timeout_secs = 2",
            )?;
            jail.set_env("POOLMANAGER_DATABASE", "sqlite://env.db");
            let overrides = Overrides {
                listen: Some("127.0.0.1:1".into()),
                ..Overrides::default()
            };
            let config = Config::load(Some(Path::new("pm.toml")), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.listen, "127.0.0.1:1", "flag beats file");
            assert_eq!(config.database, "sqlite://env.db", "env beats file");
            assert_eq!(config.host_parallelism, 2, "file beats default");
            assert_eq!(config.log_format, LogFormat::Human, "default stays");
            assert_eq!(config.swarm.stop_grace_secs, 3, "a table of the file");
            assert_eq!(config.swarm.start_timeout_secs, 120, "its defaults stay");
            assert_eq!(config.docker.stop_timeout_secs, 2, "the docker table");
            assert_eq!(config.docker.request_timeout_secs, 120, "its defaults stay");
            assert_eq!(config.reconcile_interval, 15, "default stays");
            jail.set_env("POOLMANAGER_RECONCILE_INTERVAL", "3");
            let config = Config::load(Some(Path::new("pm.toml")), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.reconcile_interval, 3, "env sets the reconcile interval");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail dictates the closure's error type
    fn limits_tls_and_endpoints_come_from_every_layer() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "pm.toml",
                "tls_cert = \"/etc/pm/cert.pem\"\ntls_key = \"/etc/pm/key.pem\"\nmax_connections = 500\n\
                 endpoint_allow = [\"unix:///var/run/docker.sock\", \"tcp://10.0.*:2376\"]",
            )?;
            jail.set_env("POOLMANAGER_HEADER_TIMEOUT_SECONDS", "3");
            jail.set_env("POOLMANAGER_ENDPOINT_DENY_LINK_LOCAL", "false");
            let overrides = Overrides {
                max_event_subscribers: Some(7),
                ..Overrides::default()
            };
            let config = Config::load(Some(Path::new("pm.toml")), &overrides).map_err(|e| e.to_string())?;
            let (cert, key) = config.tls_files().expect("TLS is on");
            assert_eq!(
                (cert, key),
                (Path::new("/etc/pm/cert.pem"), Path::new("/etc/pm/key.pem"))
            );
            assert_eq!(config.max_connections, 500);
            assert_eq!(config.header_timeout_seconds, 3);
            assert_eq!(config.idle_timeout_seconds, 60, "default stays");
            assert_eq!(config.max_event_subscribers, 7);
            let policy = config.endpoint_policy();
            assert_eq!(policy.allow.len(), 2);
            assert!(!policy.deny_link_local);
            assert!(policy.check("tcp://10.0.1.2:2376").is_ok());
            assert!(policy.check("unix:///etc/shadow").is_err());
            jail.set_env("POOLMANAGER_ENDPOINT_ALLOW", "[\"sim://*\"]");
            let config = Config::load(Some(Path::new("pm.toml")), &overrides).map_err(|e| e.to_string())?;
            assert_eq!(config.endpoint_allow, ["sim://*"], "a list from the environment");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail dictates the closure's error type
    fn tls_needs_both_files() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("POOLMANAGER_TLS_CERT", "/etc/pm/cert.pem");
            let err = Config::load(None, &Overrides::default()).expect_err("no key");
            assert!(err.to_string().contains("tls_key is not"), "{err}");
            let overrides = Overrides {
                tls_key: Some("/etc/pm/key.pem".into()),
                ..Overrides::default()
            };
            Config::load(None, &overrides).map_err(|e| e.to_string())?;
            jail.clear_env();
            let err = Config::load(None, &overrides).expect_err("no certificate");
            assert!(err.to_string().contains("tls_cert is not"), "{err}");
            assert!(Config::load(None, &Overrides::default())
                .map_err(|e| e.to_string())?
                .tls_files()
                .is_none());
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail dictates the closure's error type
    fn legacy_networks_come_from_file_or_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("pm.toml", "legacy_open_to = [\"10.0.0.0/8\"]")?;
            let load =
                || Config::load(Some(Path::new("pm.toml")), &Overrides::default()).map_err(|e| e.to_string());
            assert_eq!(load()?.legacy_open_to, ["10.0.0.0/8"]);
            jail.set_env("POOLMANAGER_LEGACY_OPEN_TO", "[127.0.0.1, \"fd00::/8\"]");
            assert_eq!(load()?.legacy_open_to, ["127.0.0.1", "fd00::/8"]);
            assert!(Config::default().legacy_open_to.is_empty(), "closed by default");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/pm.toml")), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pm.toml"));
    }

    #[test]
    fn token_lives_beside_the_database() {
        let mut config = Config {
            database: "sqlite:///var/lib/pm/pool.db".into(),
            ..Config::default()
        };
        let path = |c: &Config| c.admin_token_path().expect("a token file");
        assert_eq!(path(&config), Path::new("/var/lib/pm/poolmanager.admin-token"));
        config.database = "sqlite://./poolmanager.db".into();
        assert_eq!(path(&config), Path::new("./poolmanager.admin-token"));
        config.database = "sqlite::memory:".into();
        assert_eq!(path(&config), Path::new("./poolmanager.admin-token"));
    }

    #[test]
    fn a_shared_database_keeps_no_token_beside_a_server() {
        let mut config = Config {
            database: "mongodb://db1,db2/pool?replicaSet=rs0".into(),
            ..Config::default()
        };
        assert_eq!(config.admin_token_path(), None);
        config.admin_token_file = Some("/shared/pm.token".into());
        assert_eq!(
            config.admin_token_path().as_deref(),
            Some(Path::new("/shared/pm.token"))
        );
    }

    #[test]
    fn store_kinds_come_from_the_scheme() {
        assert_eq!(StoreKind::of("sqlite://x.db"), Some(StoreKind::Sqlite));
        assert_eq!(StoreKind::of("sqlite::memory:"), Some(StoreKind::Sqlite));
        assert_eq!(StoreKind::of("mongodb://h/pool"), Some(StoreKind::Mongo));
        assert_eq!(
            StoreKind::of("mongodb+srv://c.example.net/pool"),
            Some(StoreKind::Mongo)
        );
        assert_eq!(StoreKind::of("postgres://h/pool"), None);
        assert_eq!(StoreKind::of("./pool.db"), None);
    }

    #[test]
    fn database_passwords_stay_out_of_debug() {
        let config = Config {
            database: "mongodb://pm:s3cret@db1/pool".into(),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("mongodb://pm:<redacted>@db1/pool"), "{shown}");
    }

    #[test]
    fn debug_hides_tokens() {
        let config = Config {
            admin_token: Some("s3cret".into()),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}

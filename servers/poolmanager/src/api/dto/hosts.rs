//! Hosts: the Docker engines and Swarm managers that run clusters.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use poolcore::limits;

use super::rules::{AddressRule, Bounded, EndpointRule, Labels, LogOptionsRule, Map, Name, PemRule, Text};

/// What a host's endpoint is: one Docker engine, a Docker Swarm manager, or a
/// simulated engine (tests and demos).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "HostKind", rename_all = "snake_case", remote = "poolcore::HostKind")]
pub enum HostKind {
    /// One Docker engine.
    Docker,
    /// A Docker Swarm manager.
    Swarm,
    /// A simulated engine in memory, where the server offers one.
    Sim,
}

/// Whether a host's engine answered its last probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "HostStatus",
    rename_all = "snake_case",
    remote = "poolcore::HostStatus"
)]
pub enum HostStatus {
    /// Answering; its clusters may be handed out.
    Active,
    /// Not answering; apply skips its clusters.
    Inactive,
}

/// Logging config for every container of a host's clusters: the Docker logging
/// driver and its `options` (a `LogOptions`; `{}` when missing).
#[derive(Debug, Clone, Object)]
#[oai(rename = "LogConfig", skip_serializing_if_is_none, deny_unknown_fields)]
pub struct LogConfig {
    /// Docker logging driver: `json-file`, `syslog`, `local`, ...
    pub driver: Name,
    // The driver's options.
    pub options: Option<Map<LogOptionsRule>>,
}

impl From<LogConfig> for poolcore::LogConfig {
    fn from(d: LogConfig) -> Self {
        poolcore::LogConfig {
            driver: d.driver.into_inner(),
            options: d.options.map(Map::into_inner).unwrap_or_default(),
        }
    }
}

impl From<poolcore::LogConfig> for LogConfig {
    fn from(l: poolcore::LogConfig) -> Self {
        LogConfig {
            driver: Text::from_pool(l.driver),
            options: Some(Map::from_pool(l.options)),
        }
    }
}

fn yes() -> bool {
    true
}

/// TLS to a `tcp://` or `https://` engine. `ca`, `cert` and `key` are each a PEM
/// document (starting with `-----BEGIN `) or the path of a file holding one on the
/// server's machine. Give `cert` and `key` together. Never returned: a host shows only
/// a `TlsSummary`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Tls", deny_unknown_fields)]
pub struct Tls {
    /// CA that signed the engine's certificate; the system's roots when missing.
    pub ca: Option<Text<PemRule>>,
    /// Client certificate.
    pub cert: Option<Text<PemRule>>,
    /// Client key.
    pub key: Option<Text<PemRule>>,
    /// Verify the engine's certificate (default true).
    #[oai(default = "yes")]
    pub verify: bool,
}

fn pem(text: Text<PemRule>) -> poolcore::Pem {
    let text = text.into_inner();
    if text.starts_with("-----BEGIN ") {
        poolcore::Pem::Inline(text)
    } else {
        poolcore::Pem::Path(text)
    }
}

impl From<Tls> for poolcore::EngineTls {
    fn from(t: Tls) -> Self {
        poolcore::EngineTls {
            ca: t.ca.map(pem),
            cert: t.cert.map(pem),
            key: t.key.map(pem),
            verify: t.verify,
        }
    }
}

/// What a host's TLS settings are, without their contents.
#[derive(Debug, Clone, Object)]
#[oai(rename = "TlsSummary")]
pub struct TlsSummary {
    /// The engine's certificate is verified.
    pub verify: bool,
    /// A client certificate is given.
    pub client_certificate: bool,
}

/// What the last probe learned of a host's engine.
#[derive(Debug, Clone, Object)]
#[oai(rename = "EngineFacts")]
pub struct EngineFacts {
    /// Engine version.
    pub version: String,
    /// CPUs.
    #[oai(validator(minimum(value = "0")))]
    pub cpus: u64,
    /// Memory in bytes.
    #[oai(validator(minimum(value = "0")))]
    pub memory_bytes: u64,
    /// Containers on the engine, PoolManager's or not.
    #[oai(validator(minimum(value = "0")))]
    pub containers: u64,
    /// Swarm state of the engine as Docker says it: `inactive`, `active`, `pending`,
    /// `error`, `locked`; empty when unknown.
    pub swarm: String,
    /// The engine is a swarm manager.
    pub swarm_manager: bool,
}

/// A host that runs clusters. `kind` is a `HostKind`, `status` a `HostStatus`,
/// `labels` its placement `Labels`, `log` the `LogConfig` of its cluster containers
/// (left out when none), `tls` a `TlsSummary` (left out without TLS), `facts` the
/// `EngineFacts` of its last probe.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Host", skip_serializing_if_is_none)]
pub struct Host {
    /// Host id.
    pub id: String,
    /// Unique name.
    pub name: String,
    // What the endpoint is.
    pub kind: HostKind,
    /// Engine address: `unix:///var/run/docker.sock`, `tcp://10.0.0.1:2375`.
    pub endpoint: String,
    /// Address put in service URLs.
    pub public_address: String,
    /// Most clusters it holds.
    #[oai(validator(minimum(value = "0")))]
    pub capacity: u32,
    /// Kept filled to capacity.
    pub autofill: bool,
    /// Its clusters are handed to users.
    pub schedulable: bool,
    // Placement labels.
    pub labels: Labels,
    // Logging config.
    pub log: Option<LogConfig>,
    // TLS, without secrets.
    pub tls: Option<TlsSummary>,
    // Answering or not.
    pub status: HostStatus,
    /// Last successful probe.
    pub last_seen: Option<DateTime<Utc>>,
    /// Error of the last failed probe.
    pub last_error: Option<String>,
    // Engine facts.
    pub facts: EngineFacts,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// Bumped by every change.
    #[oai(validator(minimum(value = "0")))]
    pub version: u64,
}

impl From<poolcore::Host> for Host {
    fn from(h: poolcore::Host) -> Self {
        Host {
            id: h.id,
            name: h.name,
            kind: h.kind.into(),
            endpoint: h.endpoint,
            public_address: h.public_address,
            capacity: h.capacity,
            autofill: h.autofill,
            schedulable: h.schedulable,
            labels: Map::from_pool(h.labels),
            log: h.log.map(Into::into),
            tls: h.tls.map(|t| TlsSummary {
                verify: t.verify,
                client_certificate: t.cert.is_some(),
            }),
            status: h.status.into(),
            last_seen: h.last_seen,
            last_error: h.last_error,
            facts: EngineFacts {
                version: h.facts.version,
                cpus: h.facts.cpus,
                memory_bytes: h.facts.memory_bytes,
                containers: h.facts.containers,
                swarm: h.facts.swarm,
                swarm_manager: h.facts.swarm_manager,
            },
            created_at: h.created_at,
            version: h.version,
        }
    }
}

/// Most clusters a host may be given.
pub type Capacity = Bounded<0, { limits::CAPACITY_MAX as u64 }>;

/// A host to add. `kind` is a `HostKind` (`docker` when missing); `labels` its
/// placement `Labels`; `log` the `LogConfig` of its cluster containers; `tls` the `Tls`
/// to its engine.
#[derive(Debug, Clone, Object)]
#[oai(rename = "NewHost", deny_unknown_fields)]
pub struct NewHost {
    /// Unique name.
    pub name: Name,
    // Docker engine (default) or Swarm manager.
    pub kind: Option<HostKind>,
    /// Engine address: `unix:///var/run/docker.sock`, `tcp://10.0.0.1:2375`,
    /// `https://...`, or `sim://NAME` for a simulated engine.
    pub endpoint: Text<EndpointRule>,
    /// Most clusters it may hold.
    pub capacity: Capacity,
    /// Keep it filled to capacity (default true).
    #[oai(default = "yes")]
    pub autofill: bool,
    /// Hand its clusters to users (default true).
    #[oai(default = "yes")]
    pub schedulable: bool,
    /// Address put in service URLs; the endpoint's host (or 127.0.0.1 for a local
    /// socket) when missing.
    pub public_address: Option<Text<AddressRule>>,
    // Placement labels.
    pub labels: Option<Labels>,
    // Logging config.
    pub log: Option<LogConfig>,
    // TLS to the engine.
    pub tls: Option<Tls>,
}

impl From<NewHost> for poolcore::NewHost {
    fn from(d: NewHost) -> Self {
        poolcore::NewHost {
            name: d.name.into_inner(),
            kind: d.kind.map_or(poolcore::HostKind::Docker, Into::into),
            endpoint: d.endpoint.into_inner(),
            capacity: d.capacity.get_u32(),
            autofill: d.autofill,
            schedulable: d.schedulable,
            public_address: d.public_address.map(Text::into_inner),
            labels: d.labels.map(Map::into_inner).unwrap_or_default(),
            log: d.log.map(Into::into),
            tls: d.tls.map(Into::into),
        }
    }
}

/// Changes to a host; what is missing stays as it is. `labels` replace the old
/// `Labels`; `log` and `tls` replace the old `LogConfig` and `Tls`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "HostPatch", deny_unknown_fields)]
pub struct HostPatch {
    /// New unique name.
    pub name: Option<Name>,
    /// New capacity.
    pub capacity: Option<Capacity>,
    /// New autofill flag.
    pub autofill: Option<bool>,
    /// New schedulable flag.
    pub schedulable: Option<bool>,
    /// New public address.
    pub public_address: Option<Text<AddressRule>>,
    // New labels.
    pub labels: Option<Labels>,
    // New logging config.
    pub log: Option<LogConfig>,
    // New TLS settings.
    pub tls: Option<Tls>,
}

impl From<HostPatch> for poolcore::HostPatch {
    fn from(d: HostPatch) -> Self {
        poolcore::HostPatch {
            name: d.name.map(Text::into_inner),
            capacity: d.capacity.map(Capacity::get_u32),
            autofill: d.autofill,
            schedulable: d.schedulable,
            public_address: d.public_address.map(Text::into_inner),
            labels: d.labels.map(Map::into_inner),
            log: d.log.map(|l| Some(l.into())),
            tls: d.tls.map(|t| Some(t.into())),
        }
    }
}

super::page_of!(
    /// A page of hosts, by name.
    HostPage("HostPage") of Host
);

/// What a fill takes; every blueprint, spread evenly, when `blueprint` is missing.
#[derive(Debug, Clone, Default, Object)]
#[oai(rename = "Fill", deny_unknown_fields)]
pub struct Fill {
    /// Fill with this blueprint only.
    pub blueprint: Option<Name>,
}

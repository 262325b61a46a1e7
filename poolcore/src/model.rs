//! The pool's data: hosts, blueprints, clusters, lease records and operations.
//!
//! Plain data with serde; the rules that keep it consistent live in
//! [`Pool`](crate::Pool) and the validation functions here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Free-form labels: `consensus_plugin = "pbft"`, `zone = "eu"`, ...
pub type Labels = BTreeMap<String, String>;

/// Service URLs of a cluster: node name → port name → URL.
pub type ServiceUrls = BTreeMap<String, BTreeMap<String, String>>;

/// Generates a new random id (UUID v4, hyphenated).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase name used in JSON, SQL and URLs.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(Error::invalid(
                        stringify!($name),
                        format!("{other:?} is not one of {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// What a host's endpoint is.
    HostKind {
        /// One Docker engine.
        Docker = "docker",
        /// A Docker Swarm manager.
        Swarm = "swarm",
    }
);

string_enum!(
    /// Whether a host answers.
    HostStatus {
        /// The engine answered its last probe; its clusters may be handed out.
        Active = "active",
        /// The engine did not answer; apply skips its clusters.
        Inactive = "inactive",
    }
);

string_enum!(
    /// Where a cluster is in its life: `creating → ready → applied → releasing → creating → …`.
    ClusterStatus {
        /// Its network and containers are being made.
        Creating = "creating",
        /// Running and free: the only status apply hands out.
        Ready = "ready",
        /// Handed to a user.
        Applied = "applied",
        /// Given back; it is being destroyed before being created anew.
        Releasing = "releasing",
        /// Stopped by an operator.
        Stopped = "stopped",
        /// Could not be created; `status_reason` says why.
        Failed = "failed",
        /// Being removed for good.
        Deleting = "deleting",
    }
);

string_enum!(
    /// A cluster's health, from the driver's inspection.
    Health {
        /// Every node runs.
        Ok = "ok",
        /// A node is missing, exited or unhealthy; `health_reason` says which.
        Failing = "failing",
        /// Not inspected yet.
        Unknown = "unknown",
    }
);

string_enum!(
    /// State of a long-running operation.
    OperationStatus {
        /// Still going.
        Running = "running",
        /// Finished without error.
        Succeeded = "succeeded",
        /// Finished with an error; see `error`.
        Failed = "failed",
    }
);

string_enum!(
    /// What a long-running operation does.
    OperationKind {
        /// Fill a host up to its capacity.
        Fill = "fill",
        /// Remove a host's free clusters.
        Clean = "clean",
        /// Remove everything on a host and fill it again.
        Reset = "reset",
    }
);

/// Logging config applied to every container of a host's clusters
/// (the original's `log_type`, `log_level`, `log_server`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    /// Docker logging driver: `json-file`, `syslog`, `local`, ...
    pub driver: String,
    /// Driver options, e.g. `syslog-address = "udp://10.0.0.5:514"`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// What a probe learned of an engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineFacts {
    /// Engine version, e.g. `20.10.24`.
    pub version: String,
    /// Number of CPUs.
    pub cpus: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Containers on the engine, ours or not.
    pub containers: u64,
    /// Swarm state of the engine: `inactive`, `active`, `pending`, `error`, `locked`.
    pub swarm: String,
    /// True when the engine is a swarm manager.
    pub swarm_manager: bool,
}

/// One Docker engine or Swarm manager that runs clusters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Stable id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Docker engine or Swarm manager.
    pub kind: HostKind,
    /// Engine address: `unix:///var/run/docker.sock`, `tcp://10.0.0.1:2375`.
    pub endpoint: String,
    /// Address put in service URLs.
    pub public_address: String,
    /// Most clusters this host may hold.
    pub capacity: u32,
    /// Keep it filled to capacity.
    pub autofill: bool,
    /// Hand its clusters to users.
    pub schedulable: bool,
    /// Labels for placement.
    pub labels: Labels,
    /// Logging config for cluster containers.
    pub log: Option<LogConfig>,
    /// Answering or not.
    pub status: HostStatus,
    /// Last time a probe succeeded.
    pub last_seen: Option<DateTime<Utc>>,
    /// Error of the last failed probe.
    pub last_error: Option<String>,
    /// What the last probe learned.
    pub facts: EngineFacts,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// A port a node listens on: `80/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSpec {
    /// Port inside the container.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: Protocol,
}

string_enum!(
    /// Transport protocol of a port.
    Protocol {
        /// TCP.
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
    }
);

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

impl FromStr for PortSpec {
    type Err = Error;
    /// Parses `80`, `80/tcp` or `53/udp`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("port", format!("{s:?} is not PORT/tcp or PORT/udp"));
        let (port, protocol) = match s.split_once('/') {
            Some((port, proto)) => (port, proto.parse().map_err(|_| bad())?),
            None => (s, Protocol::Tcp),
        };
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(PortSpec { port, protocol }),
            _ => Err(bad()),
        }
    }
}

impl Serialize for PortSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A health check run inside a node's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Command run by the engine's shell, e.g. `nc -z 127.0.0.1 80`.
    pub command: String,
    /// Seconds between checks.
    #[serde(default = "HealthCheck::default_interval_seconds")]
    pub interval_seconds: u32,
    /// Failures in a row before the node is unhealthy.
    #[serde(default = "HealthCheck::default_retries")]
    pub retries: u32,
}

impl HealthCheck {
    /// Seconds between checks when a blueprint gives none.
    pub fn default_interval_seconds() -> u32 {
        10
    }

    /// Failures in a row before unhealthy when a blueprint gives none.
    pub fn default_retries() -> u32 {
        3
    }
}

/// One node (container or service) of a blueprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Node name, unique within the blueprint: `vp0`, `ca`.
    pub name: String,
    /// Image to run.
    pub image: String,
    /// Command and arguments; empty runs the image's default.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Named ports: `rest = "7050/tcp"`. Each is published on a free host port.
    #[serde(default)]
    pub ports: BTreeMap<String, PortSpec>,
    /// Optional health check.
    #[serde(default)]
    pub health: Option<HealthCheck>,
}

/// A kind of cluster users can apply for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blueprint {
    /// Unique name, e.g. `fabric-pbft-4`.
    pub name: String,
    /// Labels users filter on: `consensus_plugin`, `size`, ...
    #[serde(default)]
    pub labels: Labels,
    /// The nodes; at least one.
    pub nodes: Vec<NodeSpec>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl Blueprint {
    /// True when every `(key, value)` of `filter` is among the blueprint's labels.
    pub fn matches(&self, filter: &Labels) -> bool {
        filter.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// What a driver made for one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDeployment {
    /// Container id (Docker) or service id (Swarm).
    pub id: String,
    /// Published endpoints: port name → `address:port` reachable from outside.
    pub endpoints: BTreeMap<String, String>,
}

/// What a driver made for one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Network id.
    pub network_id: String,
    /// Node name → what was made for it.
    pub nodes: BTreeMap<String, NodeDeployment>,
}

impl Deployment {
    /// Service URLs (`http://address:port`) of every published port.
    pub fn service_urls(&self) -> ServiceUrls {
        self.nodes
            .iter()
            .map(|(node, d)| {
                let urls = d
                    .endpoints
                    .iter()
                    .map(|(port, addr)| (port.clone(), format!("http://{addr}")))
                    .collect();
                (node.clone(), urls)
            })
            .collect()
    }
}

/// One instance of a blueprint on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Stable id; kept across release and re-creation.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Blueprint it was made from.
    pub blueprint: String,
    /// Host it runs on.
    pub host_id: String,
    /// Where it is in its life.
    pub status: ClusterStatus,
    /// Why it is `failed`.
    pub status_reason: Option<String>,
    /// Health from the last inspection.
    pub health: Health,
    /// Why it is `failing`.
    pub health_reason: Option<String>,
    /// Who holds it, while `applied`.
    pub user_id: Option<String>,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// When its lease ends, if it has a TTL.
    pub expires_at: Option<DateTime<Utc>>,
    /// Metadata the user gave at apply.
    pub metadata: BTreeMap<String, String>,
    /// Lease record of the current apply.
    pub lease_id: Option<String>,
    /// What the driver made; empty while creating.
    pub deployment: Deployment,
    /// When the record was made.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Bumped by every store write; used for optimistic concurrency.
    pub version: u64,
}

/// How `health_reason` starts when an operator or user stopped nodes on purpose: the
/// reconciler leaves such a cluster as it is.
pub const STOPPED_BY_REQUEST: &str = "stopped by request";

impl Cluster {
    /// Host ports the deployment records for `node`'s ports, by port: where a node
    /// being repaired is published again so that its URLs stay.
    pub fn recorded_ports(&self, node: &NodeSpec) -> BTreeMap<PortSpec, u16> {
        let Some(recorded) = self.deployment.nodes.get(&node.name) else {
            return BTreeMap::new();
        };
        node.ports
            .iter()
            .filter_map(|(name, spec)| {
                let (_, port) = recorded.endpoints.get(name)?.rsplit_once(':')?;
                Some((*spec, port.parse().ok()?))
            })
            .collect()
    }

    /// Whether nodes of the cluster were stopped on purpose (and are to stay so).
    pub fn stopped_by_request(&self) -> bool {
        self.health == Health::Failing
            && self
                .health_reason
                .as_deref()
                .is_some_and(|r| r.starts_with(STOPPED_BY_REQUEST))
    }

    /// A new `creating` cluster of `blueprint` on `host_id`.
    pub fn new(name: impl Into<String>, blueprint: impl Into<String>, host_id: impl Into<String>) -> Self {
        let now = Utc::now();
        Cluster {
            id: new_id(),
            name: name.into(),
            blueprint: blueprint.into(),
            host_id: host_id.into(),
            status: ClusterStatus::Creating,
            status_reason: None,
            health: Health::Unknown,
            health_reason: None,
            user_id: None,
            applied_at: None,
            expires_at: None,
            metadata: BTreeMap::new(),
            lease_id: None,
            deployment: Deployment::default(),
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }

    /// Service URLs: node → port name → `http://address:port`.
    pub fn service_urls(&self) -> ServiceUrls {
        self.deployment.service_urls()
    }

    /// True while it is held by a user.
    pub fn is_applied(&self) -> bool {
        self.status == ClusterStatus::Applied
    }

    /// True when it may be removed without taking it from a user.
    pub fn is_free(&self) -> bool {
        !matches!(self.status, ClusterStatus::Applied | ClusterStatus::Releasing)
    }

    /// The change a store makes on release: `releasing`, no owner, no lease fields,
    /// version bumped. Stores call it so that they all release alike.
    pub fn release(&mut self, now: DateTime<Utc>) {
        self.status = ClusterStatus::Releasing;
        self.user_id = None;
        self.applied_at = None;
        self.expires_at = None;
        self.metadata.clear();
        self.lease_id = None;
        self.updated_at = now;
        self.version += 1;
    }
}

/// History of one apply → release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Lease id.
    pub id: String,
    /// Cluster handed out.
    pub cluster_id: String,
    /// Its name at the time.
    pub cluster_name: String,
    /// Its blueprint.
    pub blueprint: String,
    /// Its host.
    pub host_id: String,
    /// Who held it.
    pub user_id: String,
    /// Metadata given at apply.
    pub metadata: BTreeMap<String, String>,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
    /// When it was released; `None` while it is held.
    pub released_at: Option<DateTime<Utc>>,
}

impl LeaseRecord {
    /// The open lease record of `cluster`, just claimed by `claim`.
    pub fn opened(cluster: &Cluster, claim: &Claim) -> Self {
        LeaseRecord {
            id: claim.lease_id.clone(),
            cluster_id: cluster.id.clone(),
            cluster_name: cluster.name.clone(),
            blueprint: cluster.blueprint.clone(),
            host_id: cluster.host_id.clone(),
            user_id: claim.user_id.clone(),
            metadata: claim.metadata.clone(),
            applied_at: claim.now,
            released_at: None,
        }
    }

    /// How long it was (or has been, so far) held.
    pub fn duration(&self, now: DateTime<Utc>) -> chrono::Duration {
        self.released_at.unwrap_or(now) - self.applied_at
    }
}

/// A long-running operation (fill, clean, reset) and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// Operation id.
    pub id: String,
    /// What it does.
    pub kind: OperationKind,
    /// Host it works on.
    pub host_id: String,
    /// Running, succeeded or failed.
    pub status: OperationStatus,
    /// Steps done.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
    /// First error, when failed.
    pub error: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Filter and page for listing clusters. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFilter {
    /// Only this status.
    pub status: Option<ClusterStatus>,
    /// Only on this host.
    pub host_id: Option<String>,
    /// Only held by this user.
    pub user_id: Option<String>,
    /// Only of these blueprints (any of them); `None` for all.
    pub blueprints: Option<Vec<String>>,
}

/// A page of a listing: skip `offset`, return at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Items to skip.
    pub offset: u64,
    /// Most items to return.
    pub limit: u64,
}

impl Page {
    /// Everything.
    pub const ALL: Page = Page {
        offset: 0,
        limit: u64::MAX,
    };
}

impl Default for Page {
    fn default() -> Self {
        Page {
            offset: 0,
            limit: 100,
        }
    }
}

/// One page of items and the total number that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    /// The page.
    pub items: Vec<T>,
    /// How many matched in all.
    pub total: u64,
}

/// What an apply asks the store to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Who gets the cluster.
    pub user_id: String,
    /// Acceptable blueprints (any of them); never empty.
    pub blueprints: Vec<String>,
    /// Acceptable hosts (active and schedulable); never empty.
    pub hosts: Vec<String>,
    /// Metadata stored with the cluster and the lease.
    pub metadata: BTreeMap<String, String>,
    /// Id of the lease record to open.
    pub lease_id: String,
    /// Time of the apply.
    pub now: DateTime<Utc>,
    /// End of the lease, if it has one.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Checks a name used for hosts, blueprints, clusters and nodes: 1–63 characters of
/// ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit. Such names
/// are safe in container, network and service names.
pub fn validate_name(field: &'static str, name: &str) -> Result<()> {
    let ok_start = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.is_empty() || name.len() > 63 || !ok_start || !ok_chars {
        return Err(Error::invalid(
            field,
            format!(
                "{name:?} must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_spec_parses_and_prints() {
        assert_eq!("80/tcp".parse::<PortSpec>().unwrap().to_string(), "80/tcp");
        assert_eq!("53/udp".parse::<PortSpec>().unwrap().protocol, Protocol::Udp);
        assert_eq!("7050".parse::<PortSpec>().unwrap().to_string(), "7050/tcp");
        for bad in ["", "0/tcp", "70000/tcp", "80/sctp", "http", "80/"] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("name", "vp0").is_ok());
        assert!(validate_name("name", "fabric-1.0_pbft").is_ok());
        for bad in ["", "-x", "a b", "ä", &"x".repeat(64)] {
            assert!(validate_name("name", bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn statuses_round_trip_through_strings() {
        for s in ClusterStatus::ALL {
            assert_eq!(s.as_str().parse::<ClusterStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        assert!("bogus".parse::<ClusterStatus>().is_err());
    }

    #[test]
    fn blueprint_label_filter() {
        let bp = Blueprint {
            name: "b".into(),
            labels: [("size".into(), "4".into()), ("consensus".into(), "pbft".into())].into(),
            nodes: vec![],
            created_at: Utc::now(),
        };
        assert!(bp.matches(&Labels::new()));
        assert!(bp.matches(&[("size".into(), "4".into())].into()));
        assert!(!bp.matches(&[("size".into(), "1".into())].into()));
    }
}

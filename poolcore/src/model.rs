//! The pool's data: hosts, blueprints, clusters, lease records and operations.
//!
//! Plain data with serde; the rules that keep it consistent live in
//! [`Pool`](crate::Pool) and the validation functions here.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
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

/// Generates a new id that sorts after the ids made before it (UUID v7: time first,
/// then random; hyphenated), for records made in time order such as leases: a store
/// that keys them adds each at the end of its index instead of anywhere in it.
pub fn new_ordered_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Serializes a type as its `Display` text and deserializes it with its `FromStr`.
macro_rules! serde_as_text {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
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
        /// A simulated engine in memory (`poolcore-sim`): for tests, benchmarks and
        /// trying the API; never a production default.
        Sim = "sim",
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
        /// Its server stopped before it finished (see `error`); the reconciler closes
        /// such operations and brings the host to its desired state itself.
        Interrupted = "interrupted",
    }
);

impl OperationStatus {
    /// True once the operation has ended, whichever way.
    pub fn is_finished(self) -> bool {
        self != OperationStatus::Running
    }
}

string_enum!(
    /// Why a lease ended.
    ReleaseReason {
        /// The user (or an operator) gave the cluster back.
        Release = "release",
        /// The lease's time ran out.
        Expired = "expired",
        /// The cluster was deleted (with force) while it was applied.
        Deleted = "deleted",
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

/// Where a PEM document (certificate or key) comes from.
///
/// `Debug` never prints inline contents: keys must not reach logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pem {
    /// A file on the server's machine.
    Path(String),
    /// The PEM text itself.
    Inline(String),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Pem::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// TLS to a `tcp://` engine: the usual `ca.pem`, `cert.pem` and `key.pem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineTls {
    /// CA that signed the engine's certificate; the system roots when `None`.
    #[serde(default)]
    pub ca: Option<Pem>,
    /// Client certificate.
    #[serde(default)]
    pub cert: Option<Pem>,
    /// Client key.
    #[serde(default)]
    pub key: Option<Pem>,
    /// Verify the engine's certificate (on unless an operator turns it off).
    #[serde(default = "yes")]
    pub verify: bool,
}

fn yes() -> bool {
    true
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

string_enum!(
    /// How a blueprint's new clusters are laid out over the hosts that may hold them.
    #[derive(Default)]
    PlacementStrategy {
        /// Evenly: each on the host with the fewest of the blueprint's clusters (then
        /// the most room), so that losing one host loses the fewest.
        #[default]
        Spread = "spread",
        /// Tightly: each on the fullest host that still has room, filling one host
        /// before the next, so that the others stay free for other blueprints.
        Packed = "packed",
    }
);

string_enum!(
    /// What a release does to a cluster before it is handed out again.
    #[derive(Default)]
    ReleaseMode {
        /// Destroy its containers and network and make them anew: nothing a user did
        /// survives.
        #[default]
        Recreate = "recreate",
        /// Restart its containers in place, keeping the network and what the
        /// containers wrote: faster, for images that start clean on every start.
        Reset = "reset",
    }
);

string_enum!(
    /// How the free clusters of a blueprint's earlier versions give way to its
    /// current one. Applied clusters keep their version until released either way,
    /// and every cluster made (or made afresh after a release) is of the current one.
    #[derive(Default)]
    RolloutStrategy {
        /// Replace the free clusters of earlier versions now, at most
        /// [`Rollout::max_per_minute`] of them a minute.
        #[default]
        Recreate = "recreate",
        /// Leave them: each is made anew at the current version after its next
        /// release (like Kubernetes' `OnDelete`).
        OnRelease = "on_release",
    }
);

/// How a blueprint's clusters move to a new version of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Replace the free clusters of earlier versions now, or on release.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Most free clusters of earlier versions the reconciler replaces in a minute
    /// (strategy `recreate`); at least 1.
    #[serde(default = "Rollout::default_per_minute")]
    pub max_per_minute: u32,
}

impl Rollout {
    /// [`Rollout::max_per_minute`] when none is given.
    pub const DEFAULT_PER_MINUTE: u32 = 30;

    fn default_per_minute() -> u32 {
        Self::DEFAULT_PER_MINUTE
    }
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            strategy: RolloutStrategy::default(),
            max_per_minute: Self::DEFAULT_PER_MINUTE,
        }
    }
}

/// An earlier version of a blueprint, kept while clusters may still run it: what
/// repairs, probes and node controls of those clusters go by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlueprintVersion {
    /// Its number.
    pub version: u32,
    /// Its nodes.
    pub nodes: Vec<NodeSpec>,
    /// Its API port, when one was chosen.
    #[serde(default)]
    pub api_port: Option<PortRef>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the next version replaced it.
    pub superseded_at: DateTime<Utc>,
}

/// Which hosts may hold a blueprint's clusters, and how its clusters are laid out
/// over them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Labels a host must carry, each with its value; empty admits every host.
    #[serde(default)]
    pub host_selector: Labels,
    /// How new clusters are laid out over the admitted hosts.
    #[serde(default)]
    pub strategy: PlacementStrategy,
}

impl Placement {
    /// True when `host` carries every label of the selector.
    pub fn admits(&self, host: &Host) -> bool {
        self.host_selector
            .iter()
            .all(|(k, v)| host.labels.get(k) == Some(v))
    }
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
    /// TLS settings for a `tcp://` engine; never returned by the API.
    pub tls: Option<EngineTls>,
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
    /// Bumped by every store write; every write is conditional on it, so that a probe
    /// never undoes an operator's change made meanwhile.
    pub version: u64,
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

serde_as_text!(PortSpec);

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

/// What a readiness probe checks on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeCheck {
    /// An HTTP GET of `path` on a named TCP port of the node, from the server to its
    /// published endpoint; any status from 200 to 399 passes.
    Http {
        /// The node's named port.
        port: String,
        /// Path and query, starting with `/`.
        #[serde(default = "ProbeCheck::default_path")]
        path: String,
    },
    /// A TCP connect to a named TCP port of the node, from the server to its
    /// published endpoint.
    Tcp {
        /// The node's named port.
        port: String,
    },
    /// A command run in the node's container (no shell: give `sh -c ...` for one);
    /// exit status 0 passes.
    Exec {
        /// Program and arguments.
        command: Vec<String>,
    },
}

impl ProbeCheck {
    fn default_path() -> String {
        "/".to_owned()
    }
}

impl fmt::Display for ProbeCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeCheck::Http { port, path } => write!(f, "http GET {path} on port {port}"),
            ProbeCheck::Tcp { port } => write!(f, "tcp connect to port {port}"),
            ProbeCheck::Exec { command } => write!(f, "exec {}", command.join(" ")),
        }
    }
}

/// A node's readiness probe: a cluster stays `creating` until the probe of every
/// node has passed once (within `start_seconds`, or it fails), and a made cluster
/// whose probe fails `failure_threshold` reconcile passes in a row is unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// What is checked.
    #[serde(flatten)]
    pub check: ProbeCheck,
    /// Seconds between tries while a node starts.
    #[serde(default = "Probe::default_period_seconds")]
    pub period_seconds: u32,
    /// Seconds one try may take before it counts as failed.
    #[serde(default = "Probe::default_timeout_seconds")]
    pub timeout_seconds: u32,
    /// Failed tries in a row, one per reconcile pass, before a made cluster is
    /// unhealthy.
    #[serde(default = "Probe::default_failure_threshold")]
    pub failure_threshold: u32,
    /// Seconds a new or restarted node has to pass for the first time; then the
    /// cluster is `failed`.
    #[serde(default = "Probe::default_start_seconds")]
    pub start_seconds: u32,
}

impl Probe {
    /// A probe doing `check` with the default timings.
    pub fn new(check: ProbeCheck) -> Self {
        Probe {
            check,
            period_seconds: Self::default_period_seconds(),
            timeout_seconds: Self::default_timeout_seconds(),
            failure_threshold: Self::default_failure_threshold(),
            start_seconds: Self::default_start_seconds(),
        }
    }

    /// Seconds between tries when a blueprint gives none.
    pub fn default_period_seconds() -> u32 {
        1
    }

    /// Seconds per try when a blueprint gives none.
    pub fn default_timeout_seconds() -> u32 {
        1
    }

    /// Failures in a row before unhealthy when a blueprint gives none.
    pub fn default_failure_threshold() -> u32 {
        3
    }

    /// Seconds to pass first when a blueprint gives none.
    pub fn default_start_seconds() -> u32 {
        60
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
    /// Optional health check, run by the engine.
    #[serde(default)]
    pub health: Option<HealthCheck>,
    /// Optional readiness probe, run by the pool: its clusters are handed out only
    /// once it passes.
    #[serde(default)]
    pub readiness: Option<Probe>,
}

impl NodeSpec {
    /// A node called `name` running `image` with its default command, no environment,
    /// no ports, no health check and no readiness probe.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        NodeSpec {
            name: name.into(),
            image: image.into(),
            command: Vec::new(),
            env: BTreeMap::new(),
            ports: BTreeMap::new(),
            health: None,
            readiness: None,
        }
    }
}

/// One named port of one node: `vp0.rest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRef {
    /// Node name.
    pub node: String,
    /// Port name.
    pub port: String,
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node, self.port)
    }
}

impl FromStr for PortRef {
    type Err = Error;
    /// Parses `NODE.PORT`; node names may hold dots, so the port is after the last one.
    fn from_str(s: &str) -> Result<Self> {
        match s.rsplit_once('.') {
            Some((node, port)) if !node.is_empty() && !port.is_empty() => Ok(PortRef {
                node: node.to_owned(),
                port: port.to_owned(),
            }),
            _ => Err(Error::invalid(
                "api_port",
                format!("{s:?} is not NODE.PORT, e.g. vp0.rest"),
            )),
        }
    }
}

serde_as_text!(PortRef);

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
    /// The port whose URL is the cluster's API URL (the original PoolManager's
    /// `api_url`); the first named port of the first node that has one when `None`.
    #[serde(default)]
    pub api_port: Option<PortRef>,
    /// Most clusters of this blueprint applied at once, over all users; `None` for no
    /// limit. An apply beyond it is refused with [`Error::QuotaExceeded`], however many
    /// are free.
    #[serde(default)]
    pub max_applied: Option<u32>,
    /// The free clusters it keeps ready, and the most it has in all.
    #[serde(default)]
    pub buffer: ReadyBuffer,
    /// Time windows that set other buffer values; the first that holds wins.
    #[serde(default)]
    pub buffer_windows: Vec<BufferWindow>,
    /// The hosts that may hold its clusters, and how they are laid out.
    #[serde(default)]
    pub placement: Placement,
    /// What a release does to one of its clusters.
    #[serde(default)]
    pub release_mode: ReleaseMode,
    /// How its clusters move to a new version.
    #[serde(default)]
    pub rollout: Rollout,
    /// Its version: 1 when added, one more each time its nodes change
    /// ([`Pool::update_blueprint_nodes`](crate::Pool::update_blueprint_nodes)).
    #[serde(default = "first_version")]
    pub version: u32,
    /// When the current version was made.
    #[serde(default)]
    pub version_created_at: DateTime<Utc>,
    /// Earlier versions some clusters may still run, oldest first; one is dropped
    /// once no cluster runs it.
    #[serde(default)]
    pub earlier_versions: Vec<BlueprintVersion>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

fn first_version() -> u32 {
    1
}

/// How many free clusters a blueprint keeps ready, and how many it has at most.
///
/// Without a target (`min_ready`, `min_ready_percent`) a blueprint takes whatever room
/// autofill hosts have, shared evenly with the others; with one, the pool keeps that
/// many free clusters of it (ready, or being made) within the hosts' capacity, making
/// more as applies take them and removing the surplus. `max_total` caps its clusters,
/// free and applied, either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyBuffer {
    /// Free clusters to keep, at least.
    #[serde(default)]
    pub min_ready: Option<u32>,
    /// Free clusters to keep as a percentage of the applied ones, rounded up, when that
    /// is more than `min_ready`: 50 keeps one free for every two applied.
    #[serde(default)]
    pub min_ready_percent: Option<u32>,
    /// Most clusters of the blueprint, free and applied together.
    #[serde(default)]
    pub max_total: Option<u32>,
}

impl ReadyBuffer {
    /// True when the blueprint has a target of free clusters.
    pub fn has_target(&self) -> bool {
        self.min_ready.is_some() || self.min_ready_percent.is_some()
    }

    /// True when the buffer limits what is made: a target, or `max_total`.
    pub fn limits(&self) -> bool {
        self.has_target() || self.max_total.is_some()
    }

    /// The free clusters to keep when `applied` are applied (`max_total` included);
    /// `None` without a target.
    pub fn target(&self, applied: u64) -> Option<u64> {
        if !self.has_target() {
            return None;
        }
        let share = self
            .min_ready_percent
            .map_or(0, |p| (applied * u64::from(p)).div_ceil(100));
        let wanted = share.max(self.min_ready.map_or(0, u64::from));
        Some(match self.max_total {
            Some(max) => wanted.min(u64::from(max).saturating_sub(applied)),
            None => wanted,
        })
    }

    /// How many more clusters may be made given the blueprint's `counts`; `None` for
    /// as many as there is room for.
    pub fn room(&self, counts: BufferCounts) -> Option<u64> {
        let by_total = self
            .max_total
            .map(|max| u64::from(max).saturating_sub(counts.total()));
        match self.target(counts.applied) {
            Some(target) => {
                let short = target.saturating_sub(counts.free);
                Some(by_total.map_or(short, |t| t.min(short)))
            }
            None => by_total,
        }
    }

    /// How many free clusters are beyond the target or `max_total`, to remove.
    pub fn surplus(&self, counts: BufferCounts) -> u64 {
        let over_target = self
            .target(counts.applied)
            .map_or(0, |target| counts.free.saturating_sub(target));
        let over_total = self
            .max_total
            .map_or(0, |max| counts.total().saturating_sub(u64::from(max)));
        over_target.max(over_total).min(counts.free)
    }
}

string_enum!(
    /// A day of the week, in UTC.
    Weekday {
        /// Monday.
        Mon = "mon",
        /// Tuesday.
        Tue = "tue",
        /// Wednesday.
        Wed = "wed",
        /// Thursday.
        Thu = "thu",
        /// Friday.
        Fri = "fri",
        /// Saturday.
        Sat = "sat",
        /// Sunday.
        Sun = "sun",
    }
);

impl Weekday {
    fn of(day: chrono::Weekday) -> Self {
        // ALL runs Monday to Sunday, as chrono counts from Monday.
        Weekday::ALL[day.num_days_from_monday() as usize]
    }
}

/// A time of day, `HH:MM` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    /// Minutes since midnight, below 1440.
    minutes: u16,
}

impl TimeOfDay {
    /// `hour:minute`; `None` beyond 23:59.
    pub fn new(hour: u16, minute: u16) -> Option<Self> {
        (hour < 24 && minute < 60).then_some(TimeOfDay {
            minutes: hour * 60 + minute,
        })
    }

    fn of(now: DateTime<Utc>) -> Self {
        use chrono::Timelike;
        // Hours and minutes of a time are below 24 and 60.
        TimeOfDay {
            minutes: (now.hour() * 60 + now.minute()) as u16,
        }
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

impl FromStr for TimeOfDay {
    type Err = Error;
    /// Parses `HH:MM`, 00:00 to 23:59.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "buffer_windows",
                format!("{s:?} is not a time of day HH:MM (00:00 to 23:59)"),
            )
        };
        let (hour, minute) = s.split_once(':').ok_or_else(bad)?;
        if hour.len() != 2 || minute.len() != 2 {
            return Err(bad());
        }
        let (hour, minute) = (
            hour.parse().map_err(|_| bad())?,
            minute.parse().map_err(|_| bad())?,
        );
        TimeOfDay::new(hour, minute).ok_or_else(bad)
    }
}

serde_as_text!(TimeOfDay);

/// A time window in which a blueprint's ready buffer takes other values: more free
/// clusters in office hours, fewer at night. Times are UTC; a window whose `until` is
/// before its `from` runs over midnight (and belongs to the day it starts on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferWindow {
    /// The days it holds on; every day when empty.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// When it starts, inclusive.
    pub from: TimeOfDay,
    /// When it ends, exclusive.
    pub until: TimeOfDay,
    /// [`ReadyBuffer::min_ready`] while it holds; the blueprint's own when `None`.
    #[serde(default)]
    pub min_ready: Option<u32>,
    /// [`ReadyBuffer::min_ready_percent`] while it holds; the blueprint's own when `None`.
    #[serde(default)]
    pub min_ready_percent: Option<u32>,
    /// [`ReadyBuffer::max_total`] while it holds; the blueprint's own when `None`.
    #[serde(default)]
    pub max_total: Option<u32>,
}

impl BufferWindow {
    /// True when the window holds at `now`.
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        use chrono::Datelike;
        let time = TimeOfDay::of(now);
        let today = Weekday::of(now.weekday());
        let yesterday = Weekday::of(now.weekday().pred());
        let on = |day: Weekday| self.days.is_empty() || self.days.contains(&day);
        if self.from <= self.until {
            on(today) && self.from <= time && time < self.until
        } else {
            // Over midnight: the evening part today, the morning part from yesterday's.
            (on(today) && time >= self.from) || (on(yesterday) && time < self.until)
        }
    }

    /// `base` with the values this window gives.
    pub fn over(&self, base: ReadyBuffer) -> ReadyBuffer {
        ReadyBuffer {
            min_ready: self.min_ready.or(base.min_ready),
            min_ready_percent: self.min_ready_percent.or(base.min_ready_percent),
            max_total: self.max_total.or(base.max_total),
        }
    }
}

/// A blueprint's clusters as its [`ReadyBuffer`] counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferCounts {
    /// Free or on their way to be: `creating`, `ready`, `releasing` (made anew after)
    /// and `failed` (tried again).
    pub free: u64,
    /// `applied`.
    pub applied: u64,
    /// `stopped` by an operator: neither free nor applied, but counted in the total.
    pub stopped: u64,
}

impl BufferCounts {
    /// Counts `count` clusters in `status`.
    pub fn add(&mut self, status: ClusterStatus, count: u64) {
        match status {
            ClusterStatus::Creating
            | ClusterStatus::Ready
            | ClusterStatus::Releasing
            | ClusterStatus::Failed => self.free += count,
            ClusterStatus::Applied => self.applied += count,
            ClusterStatus::Stopped => self.stopped += count,
            ClusterStatus::Deleting => {}
        }
    }

    /// Every cluster but those being deleted.
    pub fn total(&self) -> u64 {
        self.free + self.applied + self.stopped
    }
}

impl Blueprint {
    /// The blueprint as it was at `version`: its nodes and API port then, the rest as
    /// now. `None` when that version is neither the current one nor kept.
    pub fn at_version(&self, version: u32) -> Option<Cow<'_, Blueprint>> {
        if version == self.version {
            return Some(Cow::Borrowed(self));
        }
        let earlier = self.earlier_versions.iter().find(|v| v.version == version)?;
        Some(Cow::Owned(Blueprint {
            nodes: earlier.nodes.clone(),
            api_port: earlier.api_port.clone(),
            version: earlier.version,
            version_created_at: earlier.created_at,
            earlier_versions: Vec::new(),
            ..self.clone()
        }))
    }

    /// The blueprint as `cluster` runs it: [`Blueprint::at_version`] of its
    /// [`Cluster::blueprint_version`], or an error naming the lost version.
    pub fn of_cluster(&self, cluster: &Cluster) -> Result<Cow<'_, Blueprint>> {
        self.at_version(cluster.blueprint_version).ok_or_else(|| {
            Error::not_found(
                "blueprint version",
                format!(
                    "{} of {:?} (cluster {})",
                    cluster.blueprint_version, self.name, cluster.name
                ),
            )
        })
    }

    /// The ready buffer that holds at `now`: [`Blueprint::buffer`] with the values of
    /// the first of [`Blueprint::buffer_windows`] that holds then.
    pub fn buffer_at(&self, now: DateTime<Utc>) -> ReadyBuffer {
        match self.buffer_windows.iter().find(|w| w.holds_at(now)) {
            Some(window) => window.over(self.buffer),
            None => self.buffer,
        }
    }

    /// True when its buffer limits what is made at some time: its own, or a window's.
    pub fn may_limit(&self) -> bool {
        self.buffer.limits() || self.buffer_windows.iter().any(|w| w.over(self.buffer).limits())
    }

    /// True when it keeps free clusters at some time: its own target, or a window's.
    pub fn may_keep_ready(&self) -> bool {
        self.buffer.has_target()
            || self
                .buffer_windows
                .iter()
                .any(|w| w.over(self.buffer).has_target())
    }

    /// True when every `(key, value)` of `filter` is among the blueprint's labels.
    pub fn matches(&self, filter: &Labels) -> bool {
        filter.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }

    /// The port whose URL is a cluster's API URL: [`Blueprint::api_port`], else the
    /// first named port of the first node that has one.
    pub fn api_port(&self) -> Option<PortRef> {
        self.api_port.clone().or_else(|| {
            self.nodes.iter().find_map(|n| {
                n.ports.keys().next().map(|port| PortRef {
                    node: n.name.clone(),
                    port: port.clone(),
                })
            })
        })
    }

    /// The API URL of `cluster`, made from this blueprint as of the version the cluster
    /// runs: see [`Blueprint::api_port`].
    pub fn api_url(&self, cluster: &Cluster) -> Option<String> {
        let at = self.at_version(cluster.blueprint_version)?.api_port()?;
        cluster.service_urls().get(&at.node)?.get(&at.port).cloned()
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
    /// The version of the blueprint it runs ([`Blueprint::version`]).
    #[serde(default = "first_version")]
    pub blueprint_version: u32,
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
    /// Applied by an apply without `allow_multiple`: a user holds at most one such
    /// cluster at a time (see [`ClaimOutcome`]).
    pub single_apply: bool,
    /// Nodes stopped on purpose (by an operator or the user), which are to stay
    /// stopped: the reconciler does not take them for broken.
    pub stopped_nodes: BTreeSet<String>,
    /// What the driver made; empty while creating.
    pub deployment: Deployment,
    /// When the record was made.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Bumped by every store write; used for optimistic concurrency.
    pub version: u64,
}

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

    /// A new `creating` cluster of `blueprint` on `host_id`.
    pub fn new(name: impl Into<String>, blueprint: impl Into<String>, host_id: impl Into<String>) -> Self {
        let now = Utc::now();
        Cluster {
            id: new_id(),
            name: name.into(),
            blueprint: blueprint.into(),
            blueprint_version: 1,
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
            single_apply: false,
            stopped_nodes: BTreeSet::new(),
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

    /// The change a store makes on a claim: `applied` to `claim.user_id` with the
    /// lease fields, version bumped. Stores call it so that they all claim alike.
    pub fn claim(&mut self, claim: &Claim) {
        self.status = ClusterStatus::Applied;
        self.user_id = Some(claim.user_id.clone());
        self.applied_at = Some(claim.now);
        self.expires_at = claim.expires_at;
        self.metadata = claim.metadata.clone();
        self.lease_id = Some(claim.lease_id.clone());
        self.single_apply = !claim.allow_multiple;
        self.stopped_nodes.clear();
        self.updated_at = claim.now;
        self.version += 1;
    }

    /// True when a claim of `user_id` for one of `blueprints` would get this cluster
    /// back as [`ClaimOutcome::Held`].
    pub fn held_by(&self, user_id: &str, blueprints: &[String]) -> bool {
        self.is_applied() && self.user_id.as_deref() == Some(user_id) && blueprints.contains(&self.blueprint)
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
        self.single_apply = false;
        self.stopped_nodes.clear();
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
    /// Why it ended; `None` while it is held.
    pub release_reason: Option<ReleaseReason>,
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
            release_reason: None,
        }
    }

    /// The change a store makes when the lease ends.
    pub fn close(&mut self, now: DateTime<Utc>, reason: ReleaseReason) {
        self.released_at = Some(now);
        self.release_reason = Some(reason);
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
    /// Last progress, or the last sign of life of the server running it: a running
    /// operation whose `updated_at` is too old was left by a server that stopped.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Filter for listing operations. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    /// Only on this host.
    pub host_id: Option<String>,
    /// Only of this kind.
    pub kind: Option<OperationKind>,
    /// Only in this status.
    pub status: Option<OperationStatus>,
}

impl OperationFilter {
    /// Whether `op` passes the filter.
    pub fn matches(&self, op: &Operation) -> bool {
        self.host_id.as_ref().is_none_or(|h| &op.host_id == h)
            && self.kind.is_none_or(|k| op.kind == k)
            && self.status.is_none_or(|s| op.status == s)
    }
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
    /// Only in this health: with `status: ready` and `Health::Failing`, the free
    /// clusters that are up but broken.
    pub health: Option<Health>,
    /// The order of the listing (not a filter): by name unless set.
    pub sort: ClusterSort,
}

string_enum!(
    /// What a listing of clusters is ordered by. Ties are broken by name, then id; a
    /// field that is unset (no user, never applied) comes before every value.
    #[derive(Default)]
    ClusterSortKey {
        /// The cluster's name (the default).
        #[default]
        Name = "name",
        /// The blueprint's name.
        Blueprint = "blueprint",
        /// The host's id.
        Host = "host_id",
        /// The status's name.
        Status = "status",
        /// The health's name.
        Health = "health",
        /// The user holding it.
        User = "user_id",
        /// When it was applied.
        AppliedAt = "applied_at",
        /// When its lease ends.
        ExpiresAt = "expires_at",
        /// When its record was made.
        CreatedAt = "created_at",
    }
);

/// The order of a listing of clusters: a key, ascending unless `descending` (which
/// reverses the whole order, ties included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterSort {
    /// What to order by.
    pub key: ClusterSortKey,
    /// Largest first.
    pub descending: bool,
}

impl ClusterSort {
    /// Orders by `key`, ascending.
    pub fn by(key: ClusterSortKey) -> Self {
        ClusterSort {
            key,
            descending: false,
        }
    }

    /// The same key, largest first.
    pub fn descending(self) -> Self {
        ClusterSort {
            descending: true,
            ..self
        }
    }

    /// How `a` and `b` compare in this order: what every store's listing follows.
    pub fn compare(&self, a: &Cluster, b: &Cluster) -> std::cmp::Ordering {
        use ClusterSortKey as K;
        let by_key = match self.key {
            K::Name => std::cmp::Ordering::Equal,
            K::Blueprint => a.blueprint.cmp(&b.blueprint),
            K::Host => a.host_id.cmp(&b.host_id),
            K::Status => a.status.as_str().cmp(b.status.as_str()),
            K::Health => a.health.as_str().cmp(b.health.as_str()),
            K::User => a.user_id.cmp(&b.user_id),
            K::AppliedAt => a.applied_at.cmp(&b.applied_at),
            K::ExpiresAt => a.expires_at.cmp(&b.expires_at),
            K::CreatedAt => a.created_at.cmp(&b.created_at),
        };
        let order = by_key
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id));
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }
}

impl FromStr for ClusterSort {
    type Err = Error;

    /// `key` or `-key` (descending), as in `?sort=-applied_at`.
    fn from_str(s: &str) -> Result<Self> {
        match s.strip_prefix('-') {
            Some(key) => Ok(ClusterSort::by(key.parse()?).descending()),
            None => Ok(ClusterSort::by(s.parse()?)),
        }
    }
}

impl fmt::Display for ClusterSort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.descending { "-" } else { "" };
        write!(f, "{sign}{}", self.key)
    }
}

impl ClusterFilter {
    /// Whether `cluster` passes the filter.
    pub fn matches(&self, c: &Cluster) -> bool {
        self.status.is_none_or(|s| c.status == s)
            && self.health.is_none_or(|h| c.health == h)
            && self.host_id.as_ref().is_none_or(|h| &c.host_id == h)
            && self
                .user_id
                .as_ref()
                .is_none_or(|u| c.user_id.as_ref() == Some(u))
            && self.blueprints.as_ref().is_none_or(|b| b.contains(&c.blueprint))
    }
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
    /// Hand out a cluster even if the user holds one; see [`ClaimOutcome`].
    pub allow_multiple: bool,
    /// Most clusters the user may hold at once (of every blueprint); `None` for no
    /// limit.
    pub max_held: Option<u32>,
    /// Most clusters applied at once of those of `blueprints` that have a limit
    /// ([`Blueprint::max_applied`]), by blueprint.
    pub blueprint_quotas: BTreeMap<String, u32>,
}

/// A limit a claim was refused for: [`ClaimOutcome::QuotaExceeded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quota {
    /// The user holds `limit` clusters already.
    User {
        /// The user.
        user_id: String,
        /// The clusters one user may hold at once.
        limit: u32,
    },
    /// `limit` clusters of the blueprint are applied already.
    Blueprint {
        /// The blueprint.
        name: String,
        /// Its [`Blueprint::max_applied`].
        limit: u32,
    },
}

impl Quota {
    /// `user` or `blueprint`: which kind of quota, as errors name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Quota::User { .. } => "user",
            Quota::Blueprint { .. } => "blueprint",
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quota::User { user_id, limit } => write!(
                f,
                "user {user_id:?} holds {limit} cluster(s), the most one user may hold at once"
            ),
            Quota::Blueprint { name, limit } => write!(
                f,
                "{limit} cluster(s) of blueprint {name:?} are applied, the most it allows at once"
            ),
        }
    }
}

impl Claim {
    /// The quota the user's holdings break: `held` is how many clusters the user
    /// holds now. Stores call it so that they all decide alike.
    pub fn user_quota(&self, held: u64) -> Option<Quota> {
        self.max_held
            .filter(|&limit| held >= u64::from(limit))
            .map(|limit| Quota::User {
                user_id: self.user_id.clone(),
                limit,
            })
    }

    /// The wanted blueprints that are below their quota, given how many clusters of
    /// each are `applied` now; the first blueprint's quota when every one is at it.
    pub fn blueprints_below_quota(&self, applied: impl Fn(&str) -> u64) -> Result<Vec<String>, Quota> {
        let mut first_full = None;
        let below: Vec<String> = self
            .blueprints
            .iter()
            .filter(|name| match self.blueprint_quotas.get(name.as_str()) {
                Some(&limit) if applied(name) >= u64::from(limit) => {
                    first_full.get_or_insert_with(|| Quota::Blueprint {
                        name: name.to_string(),
                        limit,
                    });
                    false
                }
                _ => true,
            })
            .cloned()
            .collect();
        match first_full {
            Some(quota) if below.is_empty() => Err(quota),
            _ => Ok(below),
        }
    }
}

/// What a [`Claim`](crate::Store::claim_cluster) got.
///
/// A claim without `allow_multiple` is *single*: the user holds at most one cluster
/// from single claims at a time. It returns a cluster the user already holds of one
/// of the claim's blueprints ([`ClaimOutcome::Held`]) before it takes a new one, and
/// refuses to take a new one while the user holds a single-claimed cluster of another
/// blueprint ([`ClaimOutcome::HoldsOther`]). Of any number of concurrent single
/// claims by one user, at most one takes a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A ready cluster was taken for the user, and its lease opened.
    Claimed(Cluster),
    /// The user already holds this cluster of one of the wanted blueprints.
    Held(Cluster),
    /// A single claim, while the user holds this single-claimed cluster of another
    /// blueprint.
    HoldsOther(Cluster),
    /// No ready, healthy cluster matches.
    Exhausted,
    /// Refused for a quota: the user holds [`Claim::max_held`] clusters, or every
    /// wanted blueprint has its [`Claim::blueprint_quotas`] applied. A claim for
    /// several blueprints takes from those below their quota.
    QuotaExceeded(Quota),
}

/// Applies and releases in one time bucket of the lease history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseActivity {
    /// Start of the bucket.
    pub start: DateTime<Utc>,
    /// Leases applied in the bucket.
    pub applied: u64,
    /// Leases released in the bucket.
    pub released: u64,
}

impl LeaseActivity {
    /// Index of the bucket `at` falls in, counting buckets of `width` from `since`;
    /// `None` before `since` or for an empty width.
    pub fn bucket_of(at: DateTime<Utc>, since: DateTime<Utc>, width: chrono::Duration) -> Option<i64> {
        let width = width.num_nanoseconds().filter(|w| *w > 0)?;
        let offset = (at - since).num_nanoseconds()?;
        (offset >= 0).then(|| offset / width)
    }

    /// Counts `leases` into buckets of `width` from `since`, as
    /// [`Store::lease_activity`](crate::Store::lease_activity) returns them.
    pub fn tally<'a>(
        leases: impl IntoIterator<Item = &'a LeaseRecord>,
        since: DateTime<Utc>,
        width: chrono::Duration,
    ) -> Vec<LeaseActivity> {
        let mut buckets: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        for lease in leases {
            if let Some(i) = Self::bucket_of(lease.applied_at, since, width) {
                buckets.entry(i).or_default().0 += 1;
            }
            if let Some(i) = lease.released_at.and_then(|at| Self::bucket_of(at, since, width)) {
                buckets.entry(i).or_default().1 += 1;
            }
        }
        buckets
            .into_iter()
            .map(|(i, (applied, released))| LeaseActivity {
                start: since + width * i32::try_from(i).unwrap_or(i32::MAX),
                applied,
                released,
            })
            .collect()
    }
}

/// [`Store::lease_activity`](crate::Store::lease_activity) read from a per-minute
/// summary of applies and releases, which a store keeps beside its lease records so
/// that the history does not read every lease of the period.
///
/// With buckets of a whole number of minutes, every minute falls in one bucket, but
/// for the minutes a bucket boundary cuts when `since` is not on a minute: the part of
/// such a minute before the boundary (its *head*, `[minute, minute + since's offset
/// in its minute)`) belongs to the bucket before. The store counts those heads from
/// its lease records ([`Self::heads`]); everything else comes from the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteSummary {
    since: DateTime<Utc>,
    width: chrono::Duration,
    /// Width in minutes.
    minutes: i64,
    /// The minute `since` falls in.
    first: DateTime<Utc>,
}

impl MinuteSummary {
    /// The width of the summary's buckets.
    pub const MINUTE: chrono::Duration = chrono::Duration::minutes(1);

    /// How to read buckets of `width` from `since` from the summary; `None` unless
    /// `width` is a positive whole number of minutes (the caller tallies the leases).
    pub fn new(since: DateTime<Utc>, width: chrono::Duration) -> Option<Self> {
        let minutes = width.num_minutes();
        (minutes > 0 && Self::MINUTE * i32::try_from(minutes).ok()? == width).then(|| Self {
            since,
            width,
            minutes,
            first: Self::minute_of(since),
        })
    }

    /// The start of the minute `at` falls in.
    pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
        let start = at.timestamp().div_euclid(60) * 60;
        DateTime::from_timestamp(start, 0).unwrap_or(at)
    }

    /// The first minute of the summary to read: later ones are read too.
    pub fn first_minute(&self) -> DateTime<Utc> {
        self.first
    }

    /// Whether the minute starting at `minute` is cut by a bucket boundary.
    fn is_split(&self, minute: DateTime<Utc>) -> bool {
        self.since != self.first && (minute - self.first).num_minutes().rem_euclid(self.minutes) == 0
    }

    /// The heads to count from the lease records, as `[start, end)` ranges: one for
    /// each of the summarised `minutes` (at or after [`Self::first_minute`]) that a
    /// bucket boundary cuts.
    pub fn heads<'a>(
        &'a self,
        minutes: impl IntoIterator<Item = &'a LeaseActivity> + 'a,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + 'a {
        let offset = self.since - self.first;
        minutes
            .into_iter()
            .filter(|m| m.start >= self.first && self.is_split(m.start))
            .map(move |m| (m.start, m.start + offset))
    }

    /// The start of the head `at` falls in, if any: for a store that counts heads by
    /// going over its leases.
    pub fn head_of(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let minute = Self::minute_of(at);
        (minute >= self.first && at < minute + (self.since - self.first) && self.is_split(minute))
            .then_some(minute)
    }

    /// The buckets from the summarised `minutes` and the counts of their `heads`
    /// (each with the start of its minute), as [`Store::lease_activity`](crate::Store::lease_activity)
    /// returns them.
    pub fn buckets(
        &self,
        minutes: impl IntoIterator<Item = LeaseActivity>,
        heads: &[LeaseActivity],
    ) -> Vec<LeaseActivity> {
        let heads: BTreeMap<DateTime<Utc>, &LeaseActivity> = heads.iter().map(|h| (h.start, h)).collect();
        let mut buckets: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        let mut add = |i: i64, applied: u64, released: u64| {
            let b = buckets.entry(i).or_default();
            b.0 += applied;
            b.1 += released;
        };
        for m in minutes.into_iter().filter(|m| m.start >= self.first) {
            let i = (m.start - self.first).num_minutes() / self.minutes;
            match heads.get(&m.start).filter(|_| self.is_split(m.start)) {
                Some(head) => {
                    if i > 0 {
                        add(i - 1, head.applied, head.released);
                    }
                    add(
                        i,
                        m.applied.saturating_sub(head.applied),
                        m.released.saturating_sub(head.released),
                    );
                }
                None => add(i, m.applied, m.released),
            }
        }
        buckets
            .into_iter()
            .filter(|(_, (applied, released))| *applied + *released > 0)
            .map(|(i, (applied, released))| LeaseActivity {
                start: self.since + self.width * i32::try_from(i).unwrap_or(i32::MAX),
                applied,
                released,
            })
            .collect()
    }
}

/// How many clusters of one blueprint are in one status on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCount {
    /// Host id.
    pub host_id: String,
    /// Blueprint name.
    pub blueprint: String,
    /// Blueprint version.
    pub blueprint_version: u32,
    /// Status.
    pub status: ClusterStatus,
    /// How many.
    pub count: u64,
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
            api_port: None,
            max_applied: None,
            buffer: ReadyBuffer::default(),
            buffer_windows: Vec::new(),
            placement: Placement::default(),
            release_mode: ReleaseMode::default(),
            rollout: Default::default(),
            version: 1,
            version_created_at: Utc::now(),
            earlier_versions: Vec::new(),
            created_at: Utc::now(),
        };
        assert!(bp.matches(&Labels::new()));
        assert!(bp.matches(&[("size".into(), "4".into())].into()));
        assert!(!bp.matches(&[("size".into(), "1".into())].into()));
    }

    #[test]
    fn a_buffer_window_holds_on_its_days_and_hours_in_utc() {
        let at = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        let office = BufferWindow {
            days: vec![Weekday::Mon, Weekday::Tue],
            from: "08:00".parse().unwrap(),
            until: "18:30".parse().unwrap(),
            min_ready: Some(5),
            min_ready_percent: None,
            max_total: None,
        };
        // 2026-12-07 is a Monday.
        assert!(office.holds_at(at("2026-12-07T08:00:00Z")));
        assert!(office.holds_at(at("2026-12-08T18:29:59Z")));
        assert!(!office.holds_at(at("2026-12-07T18:30:00Z")), "until is exclusive");
        assert!(!office.holds_at(at("2026-12-09T09:00:00Z")), "not on a Wednesday");
        let night = BufferWindow {
            days: vec![Weekday::Fri],
            from: "22:00".parse().unwrap(),
            until: "02:00".parse().unwrap(),
            ..office.clone()
        };
        assert!(night.holds_at(at("2026-12-11T23:00:00Z")), "Friday evening");
        assert!(
            night.holds_at(at("2026-12-12T01:59:00Z")),
            "the night after Friday"
        );
        assert!(
            !night.holds_at(at("2026-12-13T01:00:00Z")),
            "the night after Saturday"
        );
        let base = ReadyBuffer {
            min_ready: Some(1),
            min_ready_percent: None,
            max_total: Some(9),
        };
        let bp = Blueprint {
            name: "b".into(),
            labels: Labels::new(),
            nodes: vec![],
            api_port: None,
            max_applied: None,
            buffer: base,
            buffer_windows: vec![office, night],
            placement: Placement::default(),
            release_mode: ReleaseMode::default(),
            rollout: Default::default(),
            version: 1,
            version_created_at: Utc::now(),
            earlier_versions: Vec::new(),
            created_at: Utc::now(),
        };
        assert_eq!(
            bp.buffer_at(at("2026-12-07T09:00:00Z")).min_ready,
            Some(5),
            "in office hours"
        );
        assert_eq!(
            bp.buffer_at(at("2026-12-07T09:00:00Z")).max_total,
            Some(9),
            "the rest is the base's"
        );
        assert_eq!(
            bp.buffer_at(at("2026-12-07T20:00:00Z")),
            base,
            "outside every window"
        );
        for bad in ["24:00", "7:00", "07:60", "0700", ""] {
            assert!(bad.parse::<TimeOfDay>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_ready_buffer_keeps_its_target_within_its_total() {
        let counts = |free, applied| BufferCounts {
            free,
            applied,
            stopped: 0,
        };
        let none = ReadyBuffer::default();
        assert_eq!(
            (
                none.target(5),
                none.room(counts(0, 5)),
                none.surplus(counts(9, 5))
            ),
            (None, None, 0)
        );

        let fixed = ReadyBuffer {
            min_ready: Some(3),
            ..ReadyBuffer::default()
        };
        assert_eq!(fixed.room(counts(1, 10)), Some(2));
        assert_eq!(fixed.surplus(counts(5, 10)), 2);

        // The larger of the two targets, the share rounded up.
        let share = ReadyBuffer {
            min_ready: Some(2),
            min_ready_percent: Some(50),
            max_total: None,
        };
        assert_eq!(
            (share.target(1), share.target(5), share.target(10)),
            (Some(2), Some(3), Some(5))
        );

        // The total caps both what is made and what is kept.
        let capped = ReadyBuffer {
            min_ready: Some(4),
            max_total: Some(6),
            ..ReadyBuffer::default()
        };
        assert_eq!(capped.target(4), Some(2));
        assert_eq!(capped.room(counts(1, 4)), Some(1));
        assert_eq!(capped.room(counts(2, 5)), Some(0));
        assert_eq!(capped.surplus(counts(3, 4)), 1);
        let only_total = ReadyBuffer {
            max_total: Some(3),
            ..ReadyBuffer::default()
        };
        assert_eq!(
            (only_total.room(counts(1, 1)), only_total.surplus(counts(3, 2))),
            (Some(1), 2)
        );
    }
}

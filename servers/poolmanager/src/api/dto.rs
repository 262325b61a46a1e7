//! Request and response bodies of the REST API, and their mapping to `poolcore`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use poem_openapi::Object;

use super::error::ApiError;
use poolcore::model::{Labels, ServiceUrls};

fn parse<T: std::str::FromStr<Err = poolcore::Error>>(text: &str) -> Result<T, ApiError> {
    text.parse().map_err(ApiError::from)
}

/// Logging config for cluster containers.
#[derive(Debug, Clone, Object)]
pub struct LogConfigDto {
    /// Docker logging driver: `json-file`, `syslog`, `local`, ...
    pub driver: String,
    /// Driver options, e.g. `{"syslog-address": "udp://10.0.0.5:514"}`.
    #[oai(default)]
    pub options: BTreeMap<String, String>,
}

impl From<LogConfigDto> for poolcore::LogConfig {
    fn from(d: LogConfigDto) -> Self {
        poolcore::LogConfig {
            driver: d.driver,
            options: d.options,
        }
    }
}

impl From<poolcore::LogConfig> for LogConfigDto {
    fn from(l: poolcore::LogConfig) -> Self {
        LogConfigDto {
            driver: l.driver,
            options: l.options,
        }
    }
}

/// What the last probe learned of the engine.
#[derive(Debug, Clone, Object)]
pub struct EngineFactsDto {
    /// Engine version.
    pub version: String,
    /// CPUs.
    pub cpus: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Containers on the engine.
    pub containers: u64,
    /// Swarm state: `inactive`, `active`, ...
    pub swarm: String,
    /// The engine is a swarm manager.
    pub swarm_manager: bool,
}

/// A host that runs clusters.
#[derive(Debug, Clone, Object)]
pub struct HostDto {
    /// Host id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// `docker` or `swarm`.
    pub kind: String,
    /// Engine address.
    pub endpoint: String,
    /// Address in service URLs.
    pub public_address: String,
    /// Most clusters it holds.
    pub capacity: u32,
    /// Kept filled to capacity.
    pub autofill: bool,
    /// Its clusters are handed out.
    pub schedulable: bool,
    /// Placement labels.
    pub labels: BTreeMap<String, String>,
    /// Logging config for cluster containers.
    pub log: Option<LogConfigDto>,
    /// `active` or `inactive`.
    pub status: String,
    /// Last successful probe.
    pub last_seen: Option<DateTime<Utc>>,
    /// Error of the last failed probe.
    pub last_error: Option<String>,
    /// Engine facts.
    pub facts: EngineFactsDto,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl From<poolcore::Host> for HostDto {
    fn from(h: poolcore::Host) -> Self {
        HostDto {
            id: h.id,
            name: h.name,
            kind: h.kind.to_string(),
            endpoint: h.endpoint,
            public_address: h.public_address,
            capacity: h.capacity,
            autofill: h.autofill,
            schedulable: h.schedulable,
            labels: h.labels,
            log: h.log.map(Into::into),
            status: h.status.to_string(),
            last_seen: h.last_seen,
            last_error: h.last_error,
            facts: EngineFactsDto {
                version: h.facts.version,
                cpus: h.facts.cpus,
                memory_bytes: h.facts.memory_bytes,
                containers: h.facts.containers,
                swarm: h.facts.swarm,
                swarm_manager: h.facts.swarm_manager,
            },
            created_at: h.created_at,
        }
    }
}

fn yes() -> bool {
    true
}

/// A host to add.
#[derive(Debug, Clone, Object)]
pub struct NewHostDto {
    /// Unique name: letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// `docker` (default) or `swarm`.
    #[oai(default = "default_kind")]
    pub kind: String,
    /// Engine address: `unix:///var/run/docker.sock`, `tcp://10.0.0.1:2375`.
    pub endpoint: String,
    /// Most clusters it may hold.
    pub capacity: u32,
    /// Keep it filled to capacity (default true).
    #[oai(default = "yes")]
    pub autofill: bool,
    /// Hand its clusters to users (default true).
    #[oai(default = "yes")]
    pub schedulable: bool,
    /// Address in service URLs; derived from the endpoint when missing.
    pub public_address: Option<String>,
    /// Placement labels.
    #[oai(default)]
    pub labels: BTreeMap<String, String>,
    /// Logging config for cluster containers.
    pub log: Option<LogConfigDto>,
}

fn default_kind() -> String {
    "docker".to_owned()
}

impl TryFrom<NewHostDto> for poolcore::NewHost {
    type Error = ApiError;
    fn try_from(d: NewHostDto) -> Result<Self, ApiError> {
        Ok(poolcore::NewHost {
            name: d.name,
            kind: parse(&d.kind)?,
            endpoint: d.endpoint,
            capacity: d.capacity,
            autofill: d.autofill,
            schedulable: d.schedulable,
            public_address: d.public_address,
            labels: d.labels,
            log: d.log.map(Into::into),
            tls: None,
        })
    }
}

/// Changes to a host; missing fields stay as they are.
#[derive(Debug, Clone, Object)]
pub struct HostPatchDto {
    /// New name.
    pub name: Option<String>,
    /// New capacity.
    pub capacity: Option<u32>,
    /// New autofill flag.
    pub autofill: Option<bool>,
    /// New schedulable flag.
    pub schedulable: Option<bool>,
    /// New public address.
    pub public_address: Option<String>,
    /// New labels, replacing the old ones.
    pub labels: Option<BTreeMap<String, String>>,
    /// New logging config.
    pub log: Option<LogConfigDto>,
}

impl From<HostPatchDto> for poolcore::HostPatch {
    fn from(d: HostPatchDto) -> Self {
        poolcore::HostPatch {
            name: d.name,
            capacity: d.capacity,
            autofill: d.autofill,
            schedulable: d.schedulable,
            public_address: d.public_address,
            labels: d.labels,
            log: d.log.map(|l| Some(l.into())),
            tls: None,
        }
    }
}

/// A health check run in a node's container.
#[derive(Debug, Clone, Object)]
pub struct HealthCheckDto {
    /// Shell command; exit 0 is healthy.
    pub command: String,
    /// Seconds between checks (default 10).
    #[oai(default = "poolcore::HealthCheck::default_interval_seconds")]
    pub interval_seconds: u32,
    /// Failures in a row before unhealthy (default 3).
    #[oai(default = "poolcore::HealthCheck::default_retries")]
    pub retries: u32,
}

/// One node of a blueprint.
#[derive(Debug, Clone, Object)]
pub struct NodeSpecDto {
    /// Node name, unique in the blueprint.
    pub name: String,
    /// Image to run.
    pub image: String,
    /// Command and arguments.
    #[oai(default)]
    pub command: Vec<String>,
    /// Environment.
    #[oai(default)]
    pub env: BTreeMap<String, String>,
    /// Named ports: `{"rest": "7050/tcp"}`.
    #[oai(default)]
    pub ports: BTreeMap<String, String>,
    /// Optional health check.
    pub health: Option<HealthCheckDto>,
}

impl TryFrom<NodeSpecDto> for poolcore::NodeSpec {
    type Error = ApiError;
    fn try_from(d: NodeSpecDto) -> Result<Self, ApiError> {
        let ports = d
            .ports
            .into_iter()
            .map(|(name, spec)| Ok((name, parse(&spec)?)))
            .collect::<Result<_, ApiError>>()?;
        Ok(poolcore::NodeSpec {
            name: d.name,
            image: d.image,
            command: d.command,
            env: d.env,
            ports,
            health: d.health.map(|h| poolcore::HealthCheck {
                command: h.command,
                interval_seconds: h.interval_seconds,
                retries: h.retries,
            }),
        })
    }
}

impl From<poolcore::NodeSpec> for NodeSpecDto {
    fn from(n: poolcore::NodeSpec) -> Self {
        NodeSpecDto {
            name: n.name,
            image: n.image,
            command: n.command,
            env: n.env,
            ports: n.ports.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
            health: n.health.map(|h| HealthCheckDto {
                command: h.command,
                interval_seconds: h.interval_seconds,
                retries: h.retries,
            }),
        }
    }
}

/// A blueprint to add.
#[derive(Debug, Clone, Object)]
pub struct NewBlueprintDto {
    /// Unique name.
    pub name: String,
    /// Labels users filter on.
    #[oai(default)]
    pub labels: BTreeMap<String, String>,
    /// The nodes.
    pub nodes: Vec<NodeSpecDto>,
}

impl TryFrom<NewBlueprintDto> for poolcore::NewBlueprint {
    type Error = ApiError;
    fn try_from(d: NewBlueprintDto) -> Result<Self, ApiError> {
        Ok(poolcore::NewBlueprint {
            name: d.name,
            labels: d.labels,
            nodes: d
                .nodes
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            api_port: None,
        })
    }
}

/// A kind of cluster.
#[derive(Debug, Clone, Object)]
pub struct BlueprintDto {
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Nodes.
    pub nodes: Vec<NodeSpecDto>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl From<poolcore::Blueprint> for BlueprintDto {
    fn from(b: poolcore::Blueprint) -> Self {
        BlueprintDto {
            name: b.name,
            labels: b.labels,
            nodes: b.nodes.into_iter().map(Into::into).collect(),
            created_at: b.created_at,
        }
    }
}

/// One cluster.
#[derive(Debug, Clone, Object)]
pub struct ClusterDto {
    /// Cluster id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Blueprint.
    pub blueprint: String,
    /// Host id.
    pub host_id: String,
    /// `creating`, `ready`, `applied`, `releasing`, `stopped`, `failed` or `deleting`.
    pub status: String,
    /// Why it failed.
    pub status_reason: Option<String>,
    /// `ok`, `failing` or `unknown`.
    pub health: String,
    /// Why it is failing.
    pub health_reason: Option<String>,
    /// Who holds it.
    pub user_id: Option<String>,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// When its lease ends.
    pub expires_at: Option<DateTime<Utc>>,
    /// Metadata given at apply.
    pub metadata: BTreeMap<String, String>,
    /// Node → port name → URL.
    pub service_urls: ServiceUrls,
    /// Node → container (or service) id on the engine.
    pub containers: BTreeMap<String, String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Version, bumped by every change.
    pub version: u64,
}

impl From<poolcore::Cluster> for ClusterDto {
    fn from(c: poolcore::Cluster) -> Self {
        let service_urls = c.service_urls();
        let containers = c
            .deployment
            .nodes
            .iter()
            .map(|(n, d)| (n.clone(), d.id.clone()))
            .collect();
        ClusterDto {
            id: c.id,
            name: c.name,
            blueprint: c.blueprint,
            host_id: c.host_id,
            status: c.status.to_string(),
            status_reason: c.status_reason,
            health: c.health.to_string(),
            health_reason: c.health_reason,
            user_id: c.user_id,
            applied_at: c.applied_at,
            expires_at: c.expires_at,
            metadata: c.metadata,
            service_urls,
            containers,
            created_at: c.created_at,
            updated_at: c.updated_at,
            version: c.version,
        }
    }
}

/// A page of clusters.
#[derive(Debug, Clone, Object)]
pub struct ClusterListDto {
    /// The page.
    pub items: Vec<ClusterDto>,
    /// How many matched in all.
    pub total: u64,
}

/// A cluster to create on a chosen host.
#[derive(Debug, Clone, Object)]
pub struct NewClusterDto {
    /// Host id.
    pub host_id: String,
    /// Blueprint name.
    pub blueprint: String,
    /// Name; `<blueprint>-<8 hex>` when missing.
    pub name: Option<String>,
}

/// A node to act on; the whole cluster when missing.
#[derive(Debug, Clone, Default, Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTargetDto {
    /// Node name.
    pub node: Option<String>,
    /// The user the cluster is applied to; required with the user token.
    pub user_id: Option<String>,
}

/// A lease renewal; every field may be left out.
#[derive(Debug, Clone, Default, Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewDto {
    /// New lease length in seconds, from now; the server's default when missing.
    pub ttl_seconds: Option<u64>,
    /// Renew only if the cluster is applied to this user.
    pub user_id: Option<String>,
}

/// An apply.
#[derive(Debug, Clone, Object)]
pub struct ApplyDto {
    /// Who asks.
    pub user_id: String,
    /// Wanted blueprint; any blueprint matching `labels` when missing.
    pub blueprint: Option<String>,
    /// Labels the blueprint must carry.
    #[oai(default)]
    pub labels: BTreeMap<String, String>,
    /// Hand out another cluster even if the user holds a matching one.
    #[oai(default)]
    pub allow_multiple: bool,
    /// Kept with the cluster and the lease.
    #[oai(default)]
    pub metadata: BTreeMap<String, String>,
    /// Lease length in seconds.
    pub ttl_seconds: Option<u64>,
}

impl From<ApplyDto> for poolcore::ApplyRequest {
    fn from(d: ApplyDto) -> Self {
        poolcore::ApplyRequest {
            user_id: d.user_id,
            blueprint: d.blueprint,
            labels: Labels::from_iter(d.labels),
            allow_multiple: d.allow_multiple,
            metadata: d.metadata,
            ttl: d.ttl_seconds.map(Duration::from_secs),
        }
    }
}

/// A release: one cluster (`cluster_id`, with the `user_id` it is applied to when the
/// user token is used), or every cluster of a user (`user_id` alone).
#[derive(Debug, Clone, Object)]
pub struct ReleaseDto {
    /// Release this cluster.
    pub cluster_id: Option<String>,
    /// The cluster's user; alone, release every cluster of this user.
    pub user_id: Option<String>,
}

impl TryFrom<ReleaseDto> for poolcore::ReleaseTarget {
    type Error = ApiError;
    fn try_from(d: ReleaseDto) -> Result<Self, ApiError> {
        match (d.cluster_id, d.user_id) {
            (Some(id), _) => Ok(poolcore::ReleaseTarget::Cluster(id)),
            (None, Some(user)) => Ok(poolcore::ReleaseTarget::User(user)),
            (None, None) => Err(ApiError::invalid("give cluster_id, user_id, or both")),
        }
    }
}

/// Clusters released.
#[derive(Debug, Clone, Object)]
pub struct ReleasedDto {
    /// Their ids.
    pub released: Vec<String>,
}

/// A started operation.
#[derive(Debug, Clone, Object)]
pub struct OperationRefDto {
    /// Poll `GET /api/v1/operations/{operation_id}`.
    pub operation_id: String,
}

/// A fill request; every blueprint, spread evenly, when `blueprint` is missing.
#[derive(Debug, Clone, Default, Object, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillDto {
    /// Fill with this blueprint only.
    pub blueprint: Option<String>,
}

/// A long-running operation.
#[derive(Debug, Clone, Object)]
pub struct OperationDto {
    /// Id.
    pub id: String,
    /// `fill`, `clean` or `reset`.
    pub kind: String,
    /// Host id.
    pub host_id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Steps done.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
    /// First error.
    pub error: Option<String>,
    /// Start.
    pub created_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<poolcore::Operation> for OperationDto {
    fn from(o: poolcore::Operation) -> Self {
        OperationDto {
            id: o.id,
            kind: o.kind.to_string(),
            host_id: o.host_id,
            status: o.status.to_string(),
            done: o.done,
            total: o.total,
            error: o.error,
            created_at: o.created_at,
            finished_at: o.finished_at,
        }
    }
}

/// One apply → release.
#[derive(Debug, Clone, Object)]
pub struct LeaseDto {
    /// Lease id.
    pub id: String,
    /// Cluster id.
    pub cluster_id: String,
    /// Cluster name.
    pub cluster_name: String,
    /// Blueprint.
    pub blueprint: String,
    /// Host id.
    pub host_id: String,
    /// Holder.
    pub user_id: String,
    /// Metadata given at apply.
    pub metadata: BTreeMap<String, String>,
    /// Applied.
    pub applied_at: DateTime<Utc>,
    /// Released; missing while held.
    pub released_at: Option<DateTime<Utc>>,
    /// Seconds held (so far).
    pub duration_seconds: i64,
}

impl From<poolcore::LeaseRecord> for LeaseDto {
    fn from(l: poolcore::LeaseRecord) -> Self {
        let duration_seconds = l.duration(Utc::now()).num_seconds();
        LeaseDto {
            id: l.id,
            cluster_id: l.cluster_id,
            cluster_name: l.cluster_name,
            blueprint: l.blueprint,
            host_id: l.host_id,
            user_id: l.user_id,
            metadata: l.metadata,
            applied_at: l.applied_at,
            released_at: l.released_at,
            duration_seconds,
        }
    }
}

/// A page of lease records.
#[derive(Debug, Clone, Object)]
pub struct LeaseListDto {
    /// The page, newest first.
    pub items: Vec<LeaseDto>,
    /// How many in all.
    pub total: u64,
}

fn by_status<K: ToString>(counts: BTreeMap<K, u64>) -> BTreeMap<String, u64> {
    counts.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Cluster counts of one host.
#[derive(Debug, Clone, Object)]
pub struct HostStatsDto {
    /// Host id.
    pub id: String,
    /// Host name.
    pub name: String,
    /// Host status.
    pub status: String,
    /// Capacity.
    pub capacity: u32,
    /// Clusters by status.
    pub clusters: BTreeMap<String, u64>,
}

/// Cluster counts of one blueprint.
#[derive(Debug, Clone, Object)]
pub struct BlueprintStatsDto {
    /// Blueprint name.
    pub name: String,
    /// Clusters by status.
    pub clusters: BTreeMap<String, u64>,
}

/// What the pool holds.
#[derive(Debug, Clone, Object)]
pub struct StatsDto {
    /// Clusters by status.
    pub clusters: BTreeMap<String, u64>,
    /// Hosts by status.
    pub hosts_by_status: BTreeMap<String, u64>,
    /// Per host.
    pub hosts: Vec<HostStatsDto>,
    /// Per blueprint.
    pub blueprints: Vec<BlueprintStatsDto>,
}

impl From<poolcore::Stats> for StatsDto {
    fn from(s: poolcore::Stats) -> Self {
        StatsDto {
            clusters: by_status(s.clusters),
            hosts_by_status: by_status(s.hosts_by_status),
            hosts: s
                .hosts
                .into_iter()
                .map(|h| HostStatsDto {
                    id: h.id,
                    name: h.name,
                    status: h.status.to_string(),
                    capacity: h.capacity,
                    clusters: by_status(h.clusters),
                })
                .collect(),
            blueprints: s
                .blueprints
                .into_iter()
                .map(|b| BlueprintStatsDto {
                    name: b.name,
                    clusters: by_status(b.clusters),
                })
                .collect(),
        }
    }
}

/// Server health.
#[derive(Debug, Clone, Object)]
pub struct HealthDto {
    /// `ok`.
    pub status: String,
    /// Server version.
    pub version: String,
}

/// One change of the pool's state, as sent on `GET /api/v1/events`. The SSE `event:`
/// field repeats `kind`; which other fields are set depends on it.
#[derive(Debug, Clone, Object)]
pub struct EventDto {
    /// `host`, `host_deleted`, `cluster`, `cluster_deleted`, `applied`, `released`,
    /// `operation`, or `lagged` when this subscriber fell behind and missed `missed`
    /// events.
    pub kind: String,
    /// When the server sent it.
    pub at: DateTime<Utc>,
    /// The host, for `host`.
    pub host: Option<HostDto>,
    /// The cluster, for `cluster`, `applied` and `released`.
    pub cluster: Option<ClusterDto>,
    /// The operation, for `operation`.
    pub operation: Option<OperationDto>,
    /// Id of what was removed, for `host_deleted` and `cluster_deleted`.
    pub id: Option<String>,
    /// Who held the cluster, for `released`.
    pub user_id: Option<String>,
    /// Why it was released (`release`, `expired`, `deleted`), for `released`.
    pub reason: Option<String>,
    /// Events missed, for `lagged`.
    pub missed: Option<u64>,
}

impl EventDto {
    fn of_kind(kind: &str) -> Self {
        EventDto {
            kind: kind.to_owned(),
            at: Utc::now(),
            host: None,
            cluster: None,
            operation: None,
            id: None,
            user_id: None,
            reason: None,
            missed: None,
        }
    }

    /// The event telling a subscriber it missed `missed` events.
    pub fn lagged(missed: u64) -> Self {
        EventDto {
            missed: Some(missed),
            ..Self::of_kind("lagged")
        }
    }
}

impl From<poolcore::Event> for EventDto {
    fn from(e: poolcore::Event) -> Self {
        use poolcore::Event;
        let base = EventDto::of_kind(e.name());
        match e {
            Event::Host(host) => EventDto {
                host: Some(host.into()),
                ..base
            },
            Event::HostDeleted { id } | Event::ClusterDeleted { id } => EventDto { id: Some(id), ..base },
            Event::Cluster(cluster) | Event::Applied(cluster) => EventDto {
                cluster: Some(cluster.into()),
                ..base
            },
            Event::Released {
                cluster,
                user_id,
                reason,
            } => EventDto {
                cluster: Some(cluster.into()),
                user_id: Some(user_id),
                reason: Some(reason.to_string()),
                ..base
            },
            Event::Operation(op) => EventDto {
                operation: Some(op.into()),
                ..base
            },
            // A kind this server does not know yet: sent by name only.
            _ => base,
        }
    }
}

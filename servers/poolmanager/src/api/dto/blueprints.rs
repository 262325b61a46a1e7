//! Blueprints: the kinds of cluster users can apply for.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use poolcore::limits;

use super::rules::{
    ArgRule, Bounded, CommandRule, EnvRule, ImageRule, Labels, Map, Name, PortRefRule, PortsRule,
    ProbePathRule, Text, TimeOfDayRule,
};
use crate::api::error::ApiError;

/// Seconds between health checks.
pub type HealthInterval = Bounded<1, { limits::HEALTH_INTERVAL_MAX as u64 }>;
/// Failed health checks in a row before a node is unhealthy.
pub type HealthRetries = Bounded<1, { limits::HEALTH_RETRIES_MAX as u64 }>;

fn default_interval() -> HealthInterval {
    HealthInterval::new(u64::from(poolcore::HealthCheck::default_interval_seconds()))
}

fn default_retries() -> HealthRetries {
    HealthRetries::new(u64::from(poolcore::HealthCheck::default_retries()))
}

/// A health check run in a node's container by the engine's shell.
#[derive(Debug, Clone, Object)]
#[oai(rename = "HealthCheck", deny_unknown_fields)]
pub struct HealthCheck {
    /// Shell command; exit 0 is healthy.
    pub command: Text<CommandRule>,
    /// Seconds between checks (default 10).
    #[oai(default = "default_interval")]
    pub interval_seconds: HealthInterval,
    /// Failures in a row before unhealthy (default 3).
    #[oai(default = "default_retries")]
    pub retries: HealthRetries,
}

/// Seconds of a readiness probe: a period, a timeout, a start.
pub type ProbeSeconds = Bounded<1, { limits::PROBE_SECONDS_MAX as u64 }>;
/// Failed readiness probes in a row before a made cluster is unhealthy.
pub type ProbeFailures = Bounded<1, { limits::PROBE_FAILURES_MAX as u64 }>;

fn seconds(n: u32) -> ProbeSeconds {
    ProbeSeconds::new(u64::from(n))
}

fn default_period() -> ProbeSeconds {
    seconds(poolcore::Probe::default_period_seconds())
}

fn default_timeout() -> ProbeSeconds {
    seconds(poolcore::Probe::default_timeout_seconds())
}

fn default_start() -> ProbeSeconds {
    seconds(poolcore::Probe::default_start_seconds())
}

fn default_failures() -> ProbeFailures {
    ProbeFailures::new(u64::from(poolcore::Probe::default_failure_threshold()))
}

fn default_path() -> Text<ProbePathRule> {
    Text::from_pool("/".to_owned())
}

/// An HTTP GET from the server to a named TCP port of the node, as published; a
/// status from 200 to 399 passes.
#[derive(Debug, Clone, Object)]
#[oai(rename = "HttpProbe", deny_unknown_fields)]
pub struct HttpProbe {
    /// A named port of the node (a key of its `ports`), TCP.
    pub port: Name,
    /// Path and query (default `/`).
    #[oai(default = "default_path")]
    pub path: Text<ProbePathRule>,
}

/// A TCP connect from the server to a named TCP port of the node, as published.
#[derive(Debug, Clone, Object)]
#[oai(rename = "TcpProbe", deny_unknown_fields)]
pub struct TcpProbe {
    /// A named port of the node (a key of its `ports`), TCP.
    pub port: Name,
}

/// A command run in the node's container, without a shell (give `sh -c ...` for
/// one); exit status 0 passes. On a swarm, only nodes running on the manager.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ExecProbe", deny_unknown_fields)]
pub struct ExecProbe {
    /// Program and arguments, 1 to 64.
    #[oai(validator(min_items = 1, max_items = 64))]
    pub command: Vec<Text<ArgRule>>,
}

/// A node's readiness probe: exactly one of `http`, `tcp` or `exec`. A cluster stays
/// `creating` until every node's probe passed once, within `start_seconds` (else it
/// is `failed`); a made cluster whose probe fails `failure_threshold` reconcile passes
/// in a row is unhealthy, and replaced when free.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Probe", skip_serializing_if_is_none, deny_unknown_fields)]
pub struct Probe {
    // An HTTP GET of a named port.
    pub http: Option<HttpProbe>,
    // A TCP connect to a named port.
    pub tcp: Option<TcpProbe>,
    // A command in the container.
    pub exec: Option<ExecProbe>,
    /// Seconds between tries while a node starts (default 1).
    #[oai(default = "default_period")]
    pub period_seconds: ProbeSeconds,
    /// Seconds one try may take (default 1).
    #[oai(default = "default_timeout")]
    pub timeout_seconds: ProbeSeconds,
    /// Failed passes in a row before a made cluster is unhealthy (default 3).
    #[oai(default = "default_failures")]
    pub failure_threshold: ProbeFailures,
    /// Seconds a new or restarted node has to pass first (default 60).
    #[oai(default = "default_start")]
    pub start_seconds: ProbeSeconds,
}

impl TryFrom<Probe> for poolcore::Probe {
    type Error = ApiError;
    fn try_from(d: Probe) -> Result<Self, ApiError> {
        let check = match (d.http, d.tcp, d.exec) {
            (Some(h), None, None) => poolcore::ProbeCheck::Http {
                port: h.port.into_inner(),
                path: h.path.into_inner(),
            },
            (None, Some(t), None) => poolcore::ProbeCheck::Tcp {
                port: t.port.into_inner(),
            },
            (None, None, Some(e)) => poolcore::ProbeCheck::Exec {
                command: e.command.into_iter().map(Text::into_inner).collect(),
            },
            _ => {
                return Err(ApiError::invalid(
                    "invalid readiness: give exactly one of http, tcp and exec",
                ))
            }
        };
        Ok(poolcore::Probe {
            check,
            period_seconds: d.period_seconds.get_u32(),
            timeout_seconds: d.timeout_seconds.get_u32(),
            failure_threshold: d.failure_threshold.get_u32(),
            start_seconds: d.start_seconds.get_u32(),
        })
    }
}

impl From<poolcore::Probe> for Probe {
    fn from(p: poolcore::Probe) -> Self {
        let (mut http, mut tcp, mut exec) = (None, None, None);
        match p.check {
            poolcore::ProbeCheck::Http { port, path } => {
                http = Some(HttpProbe {
                    port: Text::from_pool(port),
                    path: Text::from_pool(path),
                })
            }
            poolcore::ProbeCheck::Tcp { port } => {
                tcp = Some(TcpProbe {
                    port: Text::from_pool(port),
                })
            }
            poolcore::ProbeCheck::Exec { command } => {
                exec = Some(ExecProbe {
                    command: command.into_iter().map(Text::from_pool).collect(),
                })
            }
        }
        Probe {
            http,
            tcp,
            exec,
            period_seconds: seconds(p.period_seconds),
            timeout_seconds: seconds(p.timeout_seconds),
            failure_threshold: ProbeFailures::new(u64::from(p.failure_threshold)),
            start_seconds: seconds(p.start_seconds),
        }
    }
}

/// One node (container or Swarm service) of a blueprint. `env` is its `Env`, `ports`
/// its named `Ports` (each published on a free port of the host), `health` its
/// optional `HealthCheck`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "NodeSpec", skip_serializing_if_is_none, deny_unknown_fields)]
pub struct NodeSpec {
    /// Node name, unique in the blueprint.
    pub name: Name,
    /// Image to run: `name[:tag][@digest]`.
    pub image: Text<ImageRule>,
    /// Command and arguments; the image's default when missing or empty. At most 64.
    #[oai(validator(max_items = 64))]
    pub command: Option<Vec<Text<ArgRule>>>,
    // Environment.
    pub env: Option<Map<EnvRule>>,
    // Named ports.
    pub ports: Option<Map<PortsRule>>,
    // Health check.
    pub health: Option<HealthCheck>,
    // Readiness probe.
    pub readiness: Option<Probe>,
}

impl TryFrom<NodeSpec> for poolcore::NodeSpec {
    type Error = ApiError;
    fn try_from(d: NodeSpec) -> Result<Self, ApiError> {
        let ports = d
            .ports
            .map(Map::into_inner)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, spec)| Ok((name, spec.parse()?)))
            .collect::<Result<_, poolcore::Error>>()?;
        Ok(poolcore::NodeSpec {
            name: d.name.into_inner(),
            image: d.image.into_inner(),
            command: d
                .command
                .unwrap_or_default()
                .into_iter()
                .map(Text::into_inner)
                .collect(),
            env: d.env.map(Map::into_inner).unwrap_or_default(),
            ports,
            health: d.health.map(|h| poolcore::HealthCheck {
                command: h.command.into_inner(),
                interval_seconds: h.interval_seconds.get_u32(),
                retries: h.retries.get_u32(),
            }),
            readiness: d.readiness.map(TryInto::try_into).transpose()?,
        })
    }
}

impl From<poolcore::NodeSpec> for NodeSpec {
    fn from(n: poolcore::NodeSpec) -> Self {
        NodeSpec {
            name: Text::from_pool(n.name),
            image: Text::from_pool(n.image),
            command: Some(n.command.into_iter().map(Text::from_pool).collect()),
            env: Some(Map::from_pool(n.env)),
            ports: Some(Map::from_pool(
                n.ports.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
            )),
            health: n.health.map(|h| HealthCheck {
                command: Text::from_pool(h.command),
                interval_seconds: HealthInterval::new(u64::from(h.interval_seconds)),
                retries: HealthRetries::new(u64::from(h.retries)),
            }),
            readiness: n.readiness.map(Into::into),
        }
    }
}

/// How a blueprint's new clusters are laid out over the hosts its `host_selector`
/// admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "PlacementStrategy",
    rename_all = "snake_case",
    remote = "poolcore::PlacementStrategy"
)]
pub enum PlacementStrategy {
    /// Evenly: each on the host with the fewest of the blueprint's clusters.
    Spread,
    /// Tightly: each on the fullest host that still has room.
    Packed,
}

/// What a release does to a cluster before it is handed out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "ReleaseMode",
    rename_all = "snake_case",
    remote = "poolcore::ReleaseMode"
)]
pub enum ReleaseMode {
    /// Destroy its containers and network and make them anew.
    Recreate,
    /// Restart its containers in place, keeping what they wrote: faster, for images
    /// that start clean.
    Reset,
}

/// How the free clusters of a blueprint's earlier versions give way to a new one.
/// Applied clusters keep their version until released either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(
    rename = "RolloutStrategy",
    rename_all = "snake_case",
    remote = "poolcore::RolloutStrategy"
)]
pub enum RolloutStrategy {
    /// Make them anew at the current version now, at most `rollout_per_minute` a
    /// minute.
    Recreate,
    /// Leave them: each is made anew at the current version after its next release.
    OnRelease,
}

/// Free clusters of earlier versions replaced in a minute at most.
pub type RolloutRate = Bounded<1, { limits::ROLLOUT_PER_MINUTE_MAX as u64 }>;

/// A day of the week, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "Weekday", rename_all = "snake_case", remote = "poolcore::Weekday")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A time window in which the ready buffer takes other values (those it gives; the
/// blueprint's own otherwise). Times are UTC, `from` inclusive, `until` exclusive; an
/// `until` before `from` runs over midnight. The first window that holds wins.
#[derive(Debug, Clone, Object)]
#[oai(rename = "BufferWindow", skip_serializing_if_is_none, deny_unknown_fields)]
pub struct BufferWindow {
    /// The days it holds on (the day it starts, for one over midnight); every day when
    /// missing or empty.
    #[oai(validator(max_items = 7))]
    pub days: Option<Vec<Weekday>>,
    /// When it starts, `HH:MM` UTC.
    pub from: Text<TimeOfDayRule>,
    /// When it ends, `HH:MM` UTC.
    pub until: Text<TimeOfDayRule>,
    /// `min_ready` while it holds.
    #[oai(validator(maximum(value = "1000000")))]
    pub min_ready: Option<u32>,
    /// `min_ready_percent` while it holds.
    #[oai(validator(maximum(value = "1000")))]
    pub min_ready_percent: Option<u32>,
    /// `max_total` while it holds.
    #[oai(validator(maximum(value = "1000000")))]
    pub max_total: Option<u32>,
}

impl TryFrom<BufferWindow> for poolcore::BufferWindow {
    type Error = ApiError;
    fn try_from(d: BufferWindow) -> Result<Self, ApiError> {
        Ok(poolcore::BufferWindow {
            days: d.days.unwrap_or_default().into_iter().map(Into::into).collect(),
            from: d.from.as_str().parse()?,
            until: d.until.as_str().parse()?,
            min_ready: d.min_ready,
            min_ready_percent: d.min_ready_percent,
            max_total: d.max_total,
        })
    }
}

impl From<poolcore::BufferWindow> for BufferWindow {
    fn from(w: poolcore::BufferWindow) -> Self {
        BufferWindow {
            days: Some(w.days.into_iter().map(Into::into).collect()),
            from: Text::from_pool(w.from.to_string()),
            until: Text::from_pool(w.until.to_string()),
            min_ready: w.min_ready,
            min_ready_percent: w.min_ready_percent,
            max_total: w.max_total,
        }
    }
}

/// `base` with the strategy and rate given.
fn rollout(
    strategy: Option<RolloutStrategy>,
    rate: Option<RolloutRate>,
    base: poolcore::Rollout,
) -> poolcore::Rollout {
    poolcore::Rollout {
        strategy: strategy.map_or(base.strategy, Into::into),
        max_per_minute: rate.map_or(base.max_per_minute, RolloutRate::get_u32),
    }
}

fn windows(list: Option<Vec<BufferWindow>>) -> Result<Option<Vec<poolcore::BufferWindow>>, ApiError> {
    list.map(|l| l.into_iter().map(TryInto::try_into).collect())
        .transpose()
}

/// A blueprint to add: 1 to 64 `NodeSpec`s with unique names, and the `Labels` users
/// filter on.
#[derive(Debug, Clone, Object)]
#[oai(rename = "NewBlueprint", deny_unknown_fields)]
pub struct NewBlueprint {
    /// Unique name.
    pub name: Name,
    // Labels users filter on.
    pub labels: Option<Labels>,
    /// The nodes, with unique names.
    #[oai(validator(min_items = 1, max_items = 64))]
    pub nodes: Vec<NodeSpec>,
    /// `NODE.PORT` whose URL is a cluster's API URL; the first named port of the first
    /// node that has one when missing. Must name a port of a node.
    pub api_port: Option<Text<PortRefRule>>,
    /// Most clusters of this blueprint applied at once, over all users; no limit when
    /// missing. An apply beyond it is 429 `quota_exceeded`, however many are free.
    #[oai(validator(maximum(value = "1000000")))]
    pub max_applied: Option<u32>,
    /// Free clusters to keep ready, at least: the pool makes more as applies take
    /// them, within the autofill hosts' capacity, and removes the surplus. Without
    /// `min_ready` or `min_ready_percent` the blueprint takes what room autofill hosts
    /// have, shared evenly.
    #[oai(validator(maximum(value = "1000000")))]
    pub min_ready: Option<u32>,
    /// Free clusters to keep as a percentage of the applied ones, rounded up, when that
    /// is more than `min_ready` (50: one free for every two applied).
    #[oai(validator(maximum(value = "1000")))]
    pub min_ready_percent: Option<u32>,
    /// Most clusters of this blueprint, free and applied together; no less than
    /// `min_ready`.
    #[oai(validator(maximum(value = "1000000")))]
    pub max_total: Option<u32>,
    // Labels a host must carry to hold its clusters; every host when missing.
    pub host_selector: Option<Labels>,
    // How its clusters are laid out over the admitted hosts (`spread` when missing).
    pub placement: Option<PlacementStrategy>,
    // What a release does to its clusters (`recreate` when missing).
    pub release_mode: Option<ReleaseMode>,
    /// Time windows with other buffer values, at most 16.
    #[oai(validator(max_items = 16))]
    pub buffer_windows: Option<Vec<BufferWindow>>,
    // How free clusters move to a new version (`recreate` when missing).
    pub rollout: Option<RolloutStrategy>,
    /// Free clusters of earlier versions made anew in a minute at most, with `recreate`
    /// (default 30).
    pub rollout_per_minute: Option<RolloutRate>,
}

impl TryFrom<NewBlueprint> for poolcore::NewBlueprint {
    type Error = ApiError;
    fn try_from(d: NewBlueprint) -> Result<Self, ApiError> {
        let poolcore::BlueprintNodes { nodes, api_port } = blueprint_nodes(d.nodes, d.api_port)?;
        Ok(poolcore::NewBlueprint {
            name: d.name.into_inner(),
            labels: d.labels.map(Map::into_inner).unwrap_or_default(),
            nodes,
            api_port,
            max_applied: d.max_applied,
            buffer: poolcore::ReadyBuffer {
                min_ready: d.min_ready,
                min_ready_percent: d.min_ready_percent,
                max_total: d.max_total,
            },
            placement: poolcore::Placement {
                host_selector: d.host_selector.map(Map::into_inner).unwrap_or_default(),
                strategy: d.placement.map(Into::into).unwrap_or_default(),
            },
            release_mode: d.release_mode.map(Into::into).unwrap_or_default(),
            buffer_windows: windows(d.buffer_windows)?.unwrap_or_default(),
            rollout: rollout(d.rollout, d.rollout_per_minute, poolcore::Rollout::default()),
        })
    }
}

/// A policy of a blueprint that `BlueprintPatch.unset` may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "BlueprintPolicy", rename_all = "snake_case")]
pub enum BlueprintPolicy {
    MaxApplied,
    MinReady,
    MinReadyPercent,
    MaxTotal,
    BufferWindows,
}

/// Changes to a blueprint's policies: its quota, ready buffer, placement, release
/// mode and rollout. What is missing stays as it is; `unset` lists the limits to
/// remove. Nodes and ports change with a new version (`create_blueprint_version`);
/// labels never change. A new placement or release mode holds for clusters
/// made from then on; a free cluster on a host the new `host_selector` no longer
/// admits is removed when next released.
#[derive(Debug, Clone, Default, Object)]
#[oai(rename = "BlueprintPatch", deny_unknown_fields)]
pub struct BlueprintPatch {
    /// New `max_applied`.
    #[oai(validator(maximum(value = "1000000")))]
    pub max_applied: Option<u32>,
    /// New `min_ready`.
    #[oai(validator(maximum(value = "1000000")))]
    pub min_ready: Option<u32>,
    /// New `min_ready_percent`.
    #[oai(validator(maximum(value = "1000")))]
    pub min_ready_percent: Option<u32>,
    /// New `max_total`.
    #[oai(validator(maximum(value = "1000000")))]
    pub max_total: Option<u32>,
    // New host selector; `{}` admits every host.
    pub host_selector: Option<Labels>,
    // New placement strategy.
    pub placement: Option<PlacementStrategy>,
    // New release mode.
    pub release_mode: Option<ReleaseMode>,
    /// New time windows, replacing all; `[]` (or `buffer_windows` in `unset`) removes
    /// them.
    #[oai(validator(max_items = 16))]
    pub buffer_windows: Option<Vec<BufferWindow>>,
    // New rollout strategy, for versions made from then on and the rollout under way.
    pub rollout: Option<RolloutStrategy>,
    /// New most free clusters of earlier versions made anew in a minute.
    pub rollout_per_minute: Option<RolloutRate>,
    /// Policies to remove (no limit, no buffer, no windows); none may also be given a
    /// value.
    #[oai(validator(max_items = 5))]
    pub unset: Option<Vec<BlueprintPolicy>>,
}

impl TryFrom<BlueprintPatch> for poolcore::BlueprintPatch {
    type Error = ApiError;
    fn try_from(d: BlueprintPatch) -> Result<Self, ApiError> {
        let unset = d.unset.unwrap_or_default();
        let change = |policy: BlueprintPolicy, name: &str, value: Option<u32>| match (
            value,
            unset.contains(&policy),
        ) {
            (Some(_), true) => Err(ApiError::invalid(format!(
                "invalid unset: {name} is given a value and unset at once"
            ))),
            (Some(v), false) => Ok(Some(Some(v))),
            (None, true) => Ok(Some(None)),
            (None, false) => Ok(None),
        };
        Ok(poolcore::BlueprintPatch {
            max_applied: change(BlueprintPolicy::MaxApplied, "max_applied", d.max_applied)?,
            min_ready: change(BlueprintPolicy::MinReady, "min_ready", d.min_ready)?,
            min_ready_percent: change(
                BlueprintPolicy::MinReadyPercent,
                "min_ready_percent",
                d.min_ready_percent,
            )?,
            max_total: change(BlueprintPolicy::MaxTotal, "max_total", d.max_total)?,
            host_selector: d.host_selector.map(Map::into_inner),
            placement: d.placement.map(Into::into),
            release_mode: d.release_mode.map(Into::into),
            rollout_strategy: d.rollout.map(Into::into),
            rollout_per_minute: d.rollout_per_minute.map(RolloutRate::get_u32),
            buffer_windows: match (
                windows(d.buffer_windows)?,
                unset.contains(&BlueprintPolicy::BufferWindows),
            ) {
                (Some(w), true) if !w.is_empty() => {
                    return Err(ApiError::invalid(
                        "invalid unset: buffer_windows is given a value and unset at once",
                    ))
                }
                (_, true) => Some(Vec::new()),
                (given, false) => given,
            },
        })
    }
}

/// A kind of cluster: its `Labels` and `NodeSpec`s.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Blueprint", skip_serializing_if_is_none)]
pub struct Blueprint {
    /// Unique name.
    pub name: String,
    // Labels users filter on.
    pub labels: Labels,
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
    /// `NODE.PORT` whose URL is a cluster's API URL, when one was chosen.
    pub api_port: Option<String>,
    /// Most clusters applied at once, when it has a limit.
    pub max_applied: Option<u32>,
    /// Free clusters it keeps ready, at least, when it has a ready buffer.
    pub min_ready: Option<u32>,
    /// Free clusters it keeps as a percentage of the applied ones, when set.
    pub min_ready_percent: Option<u32>,
    /// Most clusters of it in all, when it has a limit.
    pub max_total: Option<u32>,
    // Labels a host must carry to hold its clusters; `{}` admits every host.
    pub host_selector: Labels,
    // How its clusters are laid out over the admitted hosts.
    pub placement: PlacementStrategy,
    // What a release does to its clusters.
    pub release_mode: ReleaseMode,
    /// Time windows with other buffer values.
    pub buffer_windows: Vec<BufferWindow>,
    // How free clusters move to a new version.
    pub rollout: RolloutStrategy,
    /// Free clusters of earlier versions made anew in a minute at most, with `recreate`.
    pub rollout_per_minute: u32,
    /// Its version: 1 when added, one more with each `create_blueprint_version`.
    pub version: u32,
    /// When the current version was made.
    pub version_created_at: DateTime<Utc>,
    /// Earlier versions some clusters may still run, oldest first; each is dropped
    /// once no cluster runs it.
    pub earlier_versions: Vec<BlueprintVersion>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// An earlier version of a blueprint: its nodes and API port.
#[derive(Debug, Clone, Object)]
#[oai(rename = "BlueprintVersion", skip_serializing_if_is_none)]
pub struct BlueprintVersion {
    /// Its number.
    pub version: u32,
    /// Its nodes.
    pub nodes: Vec<NodeSpec>,
    /// Its `NODE.PORT` API port, when one was chosen.
    pub api_port: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the next version replaced it.
    pub superseded_at: DateTime<Utc>,
}

impl From<poolcore::BlueprintVersion> for BlueprintVersion {
    fn from(v: poolcore::BlueprintVersion) -> Self {
        BlueprintVersion {
            version: v.version,
            nodes: v.nodes.into_iter().map(Into::into).collect(),
            api_port: v.api_port.map(|p| p.to_string()),
            created_at: v.created_at,
            superseded_at: v.superseded_at,
        }
    }
}

/// A new version of a blueprint: 1 to 64 `NodeSpec`s with unique names, and its API
/// port. Every cluster made from then on is of it; free clusters of earlier versions
/// are made anew as the blueprint's `rollout` says; applied ones keep their version
/// until released.
#[derive(Debug, Clone, Object)]
#[oai(rename = "NewBlueprintVersion", deny_unknown_fields)]
pub struct NewBlueprintVersion {
    /// The nodes, with unique names.
    #[oai(validator(min_items = 1, max_items = 64))]
    pub nodes: Vec<NodeSpec>,
    /// `NODE.PORT` whose URL is a cluster's API URL; the first named port of the first
    /// node that has one when missing. Must name a port of a node.
    pub api_port: Option<Text<PortRefRule>>,
}

impl TryFrom<NewBlueprintVersion> for poolcore::BlueprintNodes {
    type Error = ApiError;
    fn try_from(d: NewBlueprintVersion) -> Result<Self, ApiError> {
        blueprint_nodes(d.nodes, d.api_port)
    }
}

/// The nodes and API port of a new blueprint or version, as the pool takes them.
fn blueprint_nodes(
    nodes: Vec<NodeSpec>,
    api_port: Option<Text<PortRefRule>>,
) -> Result<poolcore::BlueprintNodes, ApiError> {
    Ok(poolcore::BlueprintNodes {
        nodes: nodes
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?,
        api_port: api_port.map(|p| p.as_str().parse()).transpose()?,
    })
}

/// The clusters of one version of a blueprint, by status.
#[derive(Debug, Clone, Object)]
#[oai(rename = "VersionClusters", skip_serializing_if_is_none)]
pub struct VersionClusters {
    /// The version.
    pub version: u32,
    /// When it was made, if the blueprint still knows.
    pub created_at: Option<DateTime<Utc>>,
    /// When the next version replaced it; missing for the current one.
    pub superseded_at: Option<DateTime<Utc>>,
    // Its clusters by status.
    pub clusters: super::pool::ClusterCounts,
    /// Its clusters in all.
    pub total: u64,
}

/// Where a blueprint's rollout stands: how many of its clusters run each version.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RolloutStatus")]
pub struct RolloutStatus {
    /// The blueprint.
    pub blueprint: String,
    /// Its current version.
    pub version: u32,
    // How free clusters move to a new version.
    pub rollout: RolloutStrategy,
    /// Free clusters of earlier versions made anew in a minute at most, with `recreate`.
    pub rollout_per_minute: u32,
    /// The current version and each earlier one that clusters run, newest first.
    pub versions: Vec<VersionClusters>,
    /// Clusters of earlier versions, in all.
    pub outdated: u64,
    /// True when every cluster runs the current version.
    pub complete: bool,
}

impl From<poolcore::RolloutStatus> for RolloutStatus {
    fn from(r: poolcore::RolloutStatus) -> Self {
        RolloutStatus {
            blueprint: r.blueprint,
            version: r.version,
            rollout: r.rollout.strategy.into(),
            rollout_per_minute: r.rollout.max_per_minute,
            versions: r
                .versions
                .into_iter()
                .map(|v| VersionClusters {
                    version: v.version,
                    created_at: v.created_at,
                    superseded_at: v.superseded_at,
                    clusters: v.clusters.into(),
                    total: v.total,
                })
                .collect(),
            outdated: r.outdated,
            complete: r.complete,
        }
    }
}

impl From<poolcore::Blueprint> for Blueprint {
    fn from(b: poolcore::Blueprint) -> Self {
        Blueprint {
            name: b.name,
            labels: Map::from_pool(b.labels),
            nodes: b.nodes.into_iter().map(Into::into).collect(),
            api_port: b.api_port.map(|p| p.to_string()),
            max_applied: b.max_applied,
            min_ready: b.buffer.min_ready,
            min_ready_percent: b.buffer.min_ready_percent,
            max_total: b.buffer.max_total,
            host_selector: Map::from_pool(b.placement.host_selector),
            placement: b.placement.strategy.into(),
            release_mode: b.release_mode.into(),
            buffer_windows: b.buffer_windows.into_iter().map(Into::into).collect(),
            rollout: b.rollout.strategy.into(),
            rollout_per_minute: b.rollout.max_per_minute,
            version: b.version,
            version_created_at: b.version_created_at,
            earlier_versions: b.earlier_versions.into_iter().map(Into::into).collect(),
            created_at: b.created_at,
        }
    }
}

super::page_of!(
    /// A page of blueprints, by name.
    BlueprintPage("BlueprintPage") of Blueprint
);

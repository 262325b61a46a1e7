//! Blueprint operations: create, get, list, delete.

use std::collections::BTreeSet;

use chrono::Utc;
use tracing::{info, instrument};

use super::Pool;
use crate::error::{Error, Result};
use crate::limits;
use crate::model::{
    Blueprint, BlueprintVersion, BufferWindow, ClusterFilter, Labels, Listing, NodeSpec, Page, Placement,
    PlacementStrategy, PortRef, Probe, ProbeCheck, Protocol, ReadyBuffer, ReleaseMode, Rollout,
    RolloutStrategy,
};

/// What an operator gives to add a blueprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlueprint {
    /// Unique name.
    pub name: String,
    /// Labels users filter on.
    pub labels: Labels,
    /// The nodes; at least one, with unique names.
    pub nodes: Vec<NodeSpec>,
    /// The port whose URL is a cluster's API URL; see [`Blueprint::api_port`].
    pub api_port: Option<PortRef>,
    /// Most clusters applied at once; see [`Blueprint::max_applied`].
    pub max_applied: Option<u32>,
    /// The free clusters to keep ready; see [`Blueprint::buffer`].
    pub buffer: ReadyBuffer,
    /// Time windows with other buffer values; see [`Blueprint::buffer_windows`].
    pub buffer_windows: Vec<BufferWindow>,
    /// The hosts that may hold its clusters; see [`Blueprint::placement`].
    pub placement: Placement,
    /// What a release does; see [`Blueprint::release_mode`].
    pub release_mode: ReleaseMode,
    /// How its clusters move to a new version; see [`Blueprint::rollout`].
    pub rollout: Rollout,
}

impl NewBlueprint {
    /// A blueprint called `name` of `nodes`, with no labels and every policy at its
    /// default (no quota, no buffer, any host, spread, recreate, a rollout replacing
    /// free clusters at [`Rollout::DEFAULT_PER_MINUTE`] a minute); set the others with
    /// struct update syntax: `NewBlueprint { max_applied: Some(3), ..NewBlueprint::new(..) }`.
    pub fn new(name: impl Into<String>, nodes: Vec<NodeSpec>) -> Self {
        NewBlueprint {
            name: name.into(),
            labels: Labels::new(),
            nodes,
            api_port: None,
            max_applied: None,
            buffer: ReadyBuffer::default(),
            buffer_windows: Vec::new(),
            placement: Placement::default(),
            release_mode: ReleaseMode::default(),
            rollout: Rollout::default(),
        }
    }

    /// Checks every field against [`limits`], and that node names are unique and
    /// `api_port` names a port of a node.
    pub fn validate(&self) -> Result<()> {
        limits::check_name("name", &self.name)?;
        limits::check_labels("labels", &self.labels)?;
        validate_nodes(&self.nodes, self.api_port.as_ref())?;
        validate_policies(self.max_applied, &self.buffer)?;
        validate_windows(self.max_applied, &self.buffer, &self.buffer_windows)?;
        limits::check_labels("host_selector", &self.placement.host_selector)?;
        validate_rollout(&self.rollout)
    }
}

/// What an operator changes of a blueprint's policies; `None` leaves one as it is,
/// `Some(None)` removes it. The nodes and ports change only with a new version
/// ([`Pool::update_blueprint_nodes`]); the labels never change.
///
/// A new placement or release mode applies to clusters made from then on; a free
/// cluster on a host the new selector no longer admits is removed when it is next
/// released, and the reconciler removes the free ones beyond the buffer as ever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlueprintPatch {
    /// New [`Blueprint::max_applied`].
    pub max_applied: Option<Option<u32>>,
    /// New [`ReadyBuffer::min_ready`].
    pub min_ready: Option<Option<u32>>,
    /// New [`ReadyBuffer::min_ready_percent`].
    pub min_ready_percent: Option<Option<u32>>,
    /// New [`ReadyBuffer::max_total`].
    pub max_total: Option<Option<u32>>,
    /// New [`Placement::host_selector`] (empty admits every host).
    pub host_selector: Option<Labels>,
    /// New [`Placement::strategy`].
    pub placement: Option<PlacementStrategy>,
    /// New [`Blueprint::release_mode`].
    pub release_mode: Option<ReleaseMode>,
    /// New [`Blueprint::buffer_windows`] (empty removes them all).
    pub buffer_windows: Option<Vec<BufferWindow>>,
    /// New [`Rollout::strategy`].
    pub rollout_strategy: Option<RolloutStrategy>,
    /// New [`Rollout::max_per_minute`].
    pub rollout_per_minute: Option<u32>,
}

/// The nodes of a new version of a blueprint, and its API port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlueprintNodes {
    /// The nodes; at least one, with unique names.
    pub nodes: Vec<NodeSpec>,
    /// The port whose URL is a cluster's API URL; see [`Blueprint::api_port`].
    pub api_port: Option<PortRef>,
}

impl BlueprintPatch {
    fn apply_to(&self, blueprint: &mut Blueprint) {
        let set = |field: &mut Option<u32>, new: Option<Option<u32>>| {
            if let Some(new) = new {
                *field = new;
            }
        };
        set(&mut blueprint.max_applied, self.max_applied);
        set(&mut blueprint.buffer.min_ready, self.min_ready);
        set(&mut blueprint.buffer.min_ready_percent, self.min_ready_percent);
        set(&mut blueprint.buffer.max_total, self.max_total);
        if let Some(selector) = &self.host_selector {
            blueprint.placement.host_selector = selector.clone();
        }
        if let Some(strategy) = self.placement {
            blueprint.placement.strategy = strategy;
        }
        if let Some(mode) = self.release_mode {
            blueprint.release_mode = mode;
        }
        if let Some(windows) = &self.buffer_windows {
            blueprint.buffer_windows = windows.clone();
        }
        if let Some(strategy) = self.rollout_strategy {
            blueprint.rollout.strategy = strategy;
        }
        if let Some(rate) = self.rollout_per_minute {
            blueprint.rollout.max_per_minute = rate;
        }
    }
}

/// Checks a blueprint's nodes: at least one, at most [`limits::NODES_MAX`], each
/// valid, with unique names, and `api_port`, when given, a named port of one of them.
fn validate_nodes(nodes: &[NodeSpec], api_port: Option<&PortRef>) -> Result<()> {
    if nodes.is_empty() {
        return Err(Error::invalid("nodes", "a blueprint needs at least one node"));
    }
    if nodes.len() > limits::NODES_MAX {
        return Err(Error::invalid(
            "nodes",
            format!("{} nodes is more than {}", nodes.len(), limits::NODES_MAX),
        ));
    }
    let mut seen = BTreeSet::new();
    for node in nodes {
        validate_node(node)?;
        if !seen.insert(node.name.as_str()) {
            return Err(Error::invalid(
                "nodes",
                format!("node name {:?} is used twice", node.name),
            ));
        }
    }
    if let Some(at) = api_port {
        let known = nodes
            .iter()
            .any(|n| n.name == at.node && n.ports.contains_key(&at.port));
        if !known {
            return Err(Error::invalid(
                "api_port",
                format!(
                    "{} is not a named port of a node of this blueprint",
                    limits::quoted(&at.to_string())
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a rollout: at least one replacement a minute, at most
/// [`limits::ROLLOUT_PER_MINUTE_MAX`].
fn validate_rollout(rollout: &Rollout) -> Result<()> {
    limits::check_range(
        "rollout_per_minute",
        u64::from(rollout.max_per_minute),
        1,
        u64::from(limits::ROLLOUT_PER_MINUTE_MAX),
    )
}

/// Checks a blueprint's buffer windows: at most [`limits::BUFFER_WINDOWS_MAX`], each
/// with a `from` other than its `until`, and the buffer each gives valid.
fn validate_windows(max_applied: Option<u32>, buffer: &ReadyBuffer, windows: &[BufferWindow]) -> Result<()> {
    if windows.len() > limits::BUFFER_WINDOWS_MAX {
        return Err(Error::invalid(
            "buffer_windows",
            format!(
                "{} windows is more than {}",
                windows.len(),
                limits::BUFFER_WINDOWS_MAX
            ),
        ));
    }
    for (i, window) in windows.iter().enumerate() {
        if window.from == window.until {
            return Err(Error::invalid(
                "buffer_windows",
                format!(
                    "window {i} starts and ends at {}: it would never hold",
                    window.from
                ),
            ));
        }
        validate_policies(max_applied, &window.over(*buffer)).map_err(|e| match e {
            Error::Invalid { field, reason } => {
                Error::invalid(field, format!("in buffer window {i}: {reason}"))
            }
            other => other,
        })?;
    }
    Ok(())
}

/// Checks a blueprint's quota and ready buffer: each within its limit, and a target
/// no larger than the total allowed.
fn validate_policies(max_applied: Option<u32>, buffer: &ReadyBuffer) -> Result<()> {
    let most = u64::from(limits::BUFFER_MAX);
    for (field, value) in [
        ("max_applied", max_applied),
        ("min_ready", buffer.min_ready),
        ("max_total", buffer.max_total),
    ] {
        if let Some(value) = value {
            limits::check_range(field, u64::from(value), 0, most)?;
        }
    }
    if let Some(percent) = buffer.min_ready_percent {
        limits::check_range(
            "min_ready_percent",
            u64::from(percent),
            0,
            u64::from(limits::READY_PERCENT_MAX),
        )?;
    }
    if let (Some(min), Some(max)) = (buffer.min_ready, buffer.max_total) {
        if min > max {
            return Err(Error::invalid(
                "min_ready",
                format!("{min} is above max_total ({max}): the pool could never hold it"),
            ));
        }
    }
    Ok(())
}

/// Checks a node's readiness probe: a named TCP port of the node for HTTP and TCP, a
/// path per [`limits::PROBE_PATH_PATTERN`], a command for exec, timings in range.
fn validate_probe(node: &NodeSpec, probe: &Probe) -> Result<()> {
    let named_tcp = |port: &str| match node.ports.get(port) {
        Some(spec) if spec.protocol == Protocol::Tcp => Ok(()),
        Some(spec) => Err(Error::invalid(
            "nodes.readiness",
            format!(
                "node {:?} probes port {port:?}, which is {spec}: probes need a tcp port",
                node.name
            ),
        )),
        None => Err(Error::invalid(
            "nodes.readiness",
            format!(
                "node {:?} probes port {}, which is not one of its named ports",
                node.name,
                limits::quoted(port)
            ),
        )),
    };
    match &probe.check {
        ProbeCheck::Http { port, path } => {
            named_tcp(port)?;
            let path_ok = path.len() <= limits::PROBE_PATH_MAX
                && path.starts_with('/')
                && path.chars().all(|c| c.is_ascii_graphic());
            if !path_ok {
                return Err(Error::invalid(
                    "nodes.readiness.http.path",
                    format!(
                        "{} is not a path: / then printable ASCII without spaces",
                        limits::quoted(path)
                    ),
                ));
            }
        }
        ProbeCheck::Tcp { port } => named_tcp(port)?,
        ProbeCheck::Exec { command } => {
            if command.is_empty() {
                return Err(Error::invalid(
                    "nodes.readiness.exec.command",
                    format!("node {:?} needs a command to probe with", node.name),
                ));
            }
            limits::check_command("nodes.readiness.exec.command", command)?;
        }
    }
    let seconds = u64::from(limits::PROBE_SECONDS_MAX);
    for (field, value, most) in [
        ("nodes.readiness.period_seconds", probe.period_seconds, seconds),
        ("nodes.readiness.timeout_seconds", probe.timeout_seconds, seconds),
        ("nodes.readiness.start_seconds", probe.start_seconds, seconds),
        (
            "nodes.readiness.failure_threshold",
            probe.failure_threshold,
            u64::from(limits::PROBE_FAILURES_MAX),
        ),
    ] {
        limits::check_range(field, u64::from(value), 1, most)?;
    }
    Ok(())
}

fn validate_node(node: &NodeSpec) -> Result<()> {
    limits::check_name("nodes.name", &node.name)?;
    limits::check_image("nodes.image", &node.image)?;
    limits::check_command("nodes.command", &node.command)?;
    limits::check_env("nodes.env", &node.env)?;
    if node.ports.len() > limits::PORTS_MAX {
        return Err(Error::invalid(
            "nodes.ports",
            format!("node {:?} has more than {} ports", node.name, limits::PORTS_MAX),
        ));
    }
    for port_name in node.ports.keys() {
        limits::check_name("nodes.ports", port_name)?;
    }
    if let Some(probe) = &node.readiness {
        validate_probe(node, probe)?;
    }
    if let Some(health) = &node.health {
        let command_ok = !health.command.trim().is_empty()
            && health.command.len() <= limits::ARG_MAX
            && !health.command.contains('\0');
        if !command_ok {
            return Err(Error::invalid(
                "nodes.health.command",
                format!(
                    "node {:?} needs a health command of 1-{} characters",
                    node.name,
                    limits::ARG_MAX
                ),
            ));
        }
        let interval = u64::from(health.interval_seconds);
        limits::check_range(
            "nodes.health.interval_seconds",
            interval,
            1,
            u64::from(limits::HEALTH_INTERVAL_MAX),
        )?;
        let retries = u64::from(health.retries);
        limits::check_range(
            "nodes.health.retries",
            retries,
            1,
            u64::from(limits::HEALTH_RETRIES_MAX),
        )?;
    }
    Ok(())
}

impl Pool {
    /// Adds a blueprint. A taken name is [`Error::Conflict`]. Autofill hosts with room
    /// start filling.
    #[instrument(skip(self, new), fields(blueprint = %new.name))]
    pub async fn create_blueprint(&self, new: NewBlueprint) -> Result<Blueprint> {
        new.validate()?;
        let now = Utc::now();
        let blueprint = Blueprint {
            name: new.name,
            labels: new.labels,
            nodes: new.nodes,
            api_port: new.api_port,
            max_applied: new.max_applied,
            buffer: new.buffer,
            buffer_windows: new.buffer_windows,
            placement: new.placement,
            release_mode: new.release_mode,
            rollout: new.rollout,
            version: 1,
            version_created_at: now,
            earlier_versions: Vec::new(),
            created_at: now,
        };
        self.store().insert_blueprint(&blueprint).await?;
        self.inner.catalog.invalidate();
        info!("blueprint added");
        for host in self.hosts().await? {
            if host.autofill {
                self.autofill(&host).await;
            }
        }
        Ok(blueprint)
    }

    /// Changes the policies of the blueprint `name` (its quota and ready buffer); the
    /// next reconcile pass, or the next apply, makes or removes free clusters to
    /// match. An unknown blueprint is [`Error::NotFound`], a bad value
    /// [`Error::Invalid`] (nothing changed).
    #[instrument(skip(self, patch))]
    pub async fn update_blueprint(&self, name: &str, patch: BlueprintPatch) -> Result<Blueprint> {
        let mut blueprint = self.blueprint(name).await?;
        patch.apply_to(&mut blueprint);
        validate_policies(blueprint.max_applied, &blueprint.buffer)?;
        validate_windows(
            blueprint.max_applied,
            &blueprint.buffer,
            &blueprint.buffer_windows,
        )?;
        limits::check_labels("host_selector", &blueprint.placement.host_selector)?;
        validate_rollout(&blueprint.rollout)?;
        if !self.store().update_blueprint_policies(&blueprint).await? {
            return Err(Error::not_found("blueprint", limits::quoted(name)));
        }
        self.inner.catalog.invalidate();
        info!(buffer = ?blueprint.buffer, max_applied = ?blueprint.max_applied, "blueprint policies changed");
        self.hold_buffers().await;
        Ok(blueprint)
    }

    /// Makes a new version of the blueprint `name` with other nodes (and API port):
    /// every cluster made from then on is of it. The free clusters of earlier versions
    /// are replaced as its [`Rollout`] says; applied ones keep their version until
    /// released. Bad nodes are [`Error::Invalid`], an unknown blueprint
    /// [`Error::NotFound`]; nothing changes then.
    #[instrument(skip(self, new))]
    pub async fn update_blueprint_nodes(&self, name: &str, new: BlueprintNodes) -> Result<Blueprint> {
        validate_nodes(&new.nodes, new.api_port.as_ref())?;
        let mut blueprint = self.blueprint(name).await?;
        let previous = blueprint.version;
        let now = Utc::now();
        let next = previous.checked_add(1).ok_or_else(|| {
            Error::conflict(format!("blueprint {name:?} has had {previous} versions; no more"))
        })?;
        blueprint.earlier_versions.push(BlueprintVersion {
            version: previous,
            nodes: std::mem::replace(&mut blueprint.nodes, new.nodes),
            api_port: std::mem::replace(&mut blueprint.api_port, new.api_port),
            created_at: blueprint.version_created_at,
            superseded_at: now,
        });
        blueprint.version = next;
        blueprint.version_created_at = now;
        if !self
            .store()
            .update_blueprint_version(&blueprint, previous)
            .await?
        {
            return Err(Error::not_found("blueprint", limits::quoted(name)));
        }
        self.inner.catalog.invalidate();
        info!(version = next, "blueprint has a new version");
        Ok(blueprint)
    }

    /// The blueprint called `name`.
    pub async fn blueprint(&self, name: &str) -> Result<Blueprint> {
        self.store()
            .get_blueprint(name)
            .await?
            .ok_or_else(|| Error::not_found("blueprint", limits::quoted(name)))
    }

    /// Every blueprint, by name.
    pub async fn blueprints(&self) -> Result<Vec<Blueprint>> {
        Ok(self.store().list_blueprints(Page::ALL).await?.items)
    }

    /// One page of blueprints, by name, and the total.
    pub async fn blueprints_page(&self, page: Page) -> Result<Listing<Blueprint>> {
        self.store().list_blueprints(page).await
    }

    /// Removes a blueprint; refused with [`Error::Conflict`] while clusters use it.
    #[instrument(skip(self))]
    pub async fn delete_blueprint(&self, name: &str) -> Result<()> {
        self.blueprint(name).await?;
        let filter = ClusterFilter {
            blueprints: Some(vec![name.to_owned()]),
            ..ClusterFilter::default()
        };
        let used = self
            .store()
            .list_clusters(&filter, Page { offset: 0, limit: 0 })
            .await?
            .total;
        if used > 0 {
            return Err(Error::conflict(format!(
                "blueprint {name:?} is used by {used} cluster(s); delete them first"
            )));
        }
        self.store().delete_blueprint(name).await?;
        self.inner.catalog.invalidate();
        Ok(())
    }
}

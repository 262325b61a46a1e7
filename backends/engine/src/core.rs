//! The raw engine client: one lazily connected client per host, the requests both
//! drivers make (info, facts, networks), and errors that name their object.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bollard::errors::Error as BollardError;
use bollard::exec::StartExecResults;
use bollard::models::{ExecConfig, Network, NetworkCreateRequest, SystemInfo, SystemVersion};
use bollard::query_parameters::ListNetworksOptionsBuilder;
use bollard::{Docker, API_DEFAULT_VERSION};
use futures::future::join_all;
use futures::StreamExt;
use poolcore::{labels_for, object_name, Cluster, EngineFacts, EngineTls, Error, Host, HostKind, Result};
use tokio::sync::OnceCell;

use crate::config::Endpoint;
use crate::error::{
    engine_noun, has_status, is_out_of_address_pools, map_err, Action, NetworkLingers, NoAddressPool,
};
use crate::labels::{cluster_of, LabelFilter};
use crate::spec::label_map;
use crate::tls::TlsConfig;
use crate::tls::{handshake_hint, NO_CLIENT_CERT};

/// One Docker engine or swarm manager. Connects, and agrees on the API version, on first
/// use; every request fails with a [`poolcore::Error`] that names its object.
#[derive(Debug)]
pub struct Engine {
    kind: HostKind,
    endpoint: Endpoint,
    /// The endpoint as the host record spells it, for messages.
    endpoint_text: String,
    request_timeout: Duration,
    /// Set once the engine answered the version negotiation. bollard speaks a newer API
    /// than older engines (Docker 20.10 speaks 1.41) and would be refused without it.
    client: OnceCell<Docker>,
}

/// The kind of network a cluster's nodes share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterNetwork {
    /// A bridge network on one engine.
    Bridge,
    /// An attachable overlay network spanning a swarm.
    Overlay,
}

impl Engine {
    /// The engine of `host`, a host of `kind`, at its endpoint and with its TLS
    /// settings: see [`Engine::new`].
    pub fn for_host(kind: HostKind, host: &Host, request_timeout: Duration) -> Result<Self> {
        Self::new(kind, &host.endpoint, host.tls.as_ref(), request_timeout)
    }

    /// The engine of a `kind` host at `endpoint`, with TLS settings `tls` or none.
    ///
    /// Without TLS: `unix:///path`, `tcp://host:port` or `http://host:port` (port 2375
    /// if none is given). With TLS: `tcp://host:port` or `https://host:port` (port
    /// 2376); `tls` is read and checked now (see [`EngineTls`]). Anything else is
    /// [`Error::Invalid`] naming the endpoint, or the TLS setting that is wrong.
    ///
    /// `kind` names the backend in errors. Each request may take `request_timeout`.
    /// Nothing is asked of the engine yet: the first request connects.
    pub fn new(
        kind: HostKind,
        endpoint: &str,
        tls: Option<&EngineTls>,
        request_timeout: Duration,
    ) -> Result<Self> {
        let tls = tls.map(TlsConfig::new).transpose()?;
        Ok(Engine {
            kind,
            endpoint: Endpoint::parse(endpoint, tls)?,
            endpoint_text: endpoint.to_owned(),
            request_timeout: request_timeout.max(Duration::from_secs(1)),
            client: OnceCell::new(),
        })
    }

    /// The endpoint as the host record spells it.
    pub fn endpoint(&self) -> &str {
        &self.endpoint_text
    }

    /// The client, connected and version-negotiated on first use. A failed attempt is
    /// not remembered, so the next call tries again.
    pub async fn client(&self) -> Result<&Docker> {
        self.client
            .get_or_try_init(|| async {
                let timeout = self.request_timeout.as_secs();
                let client = match &self.endpoint {
                    Endpoint::Unix(path) => Docker::connect_with_unix(path, timeout, API_DEFAULT_VERSION),
                    Endpoint::Http(addr) => Docker::connect_with_http(addr, timeout, API_DEFAULT_VERSION),
                    Endpoint::Https(addr, tls) => tls.connect(addr, timeout, API_DEFAULT_VERSION),
                };
                let action = || Action::new("negotiate", "API version with", self.endpoint.to_string());
                let client = client.map_err(|e| self.unavailable(action(), e))?;
                client
                    .negotiate_version()
                    .await
                    .map_err(|e| self.unavailable(action(), e))
            })
            .await
    }

    /// Any failure to reach the engine, whatever bollard calls it.
    fn unavailable(&self, action: Action, err: BollardError) -> Error {
        match self.fail(action)(err) {
            err @ Error::Unavailable { .. } => err,
            other => Error::unavailable(
                format!("{} at {}", engine_noun(self.kind), self.endpoint_text),
                other,
            ),
        }
    }

    /// Maps an error of `action`: 404 is [`Error::NotFound`], 409 [`Error::Conflict`],
    /// no answer [`Error::Unavailable`], anything else [`Error::Backend`]; each names
    /// the object.
    pub fn fail(&self, action: Action) -> impl FnOnce(BollardError) -> Error + '_ {
        move |err| {
            let dropped = self.dropped_for_want_of_a_certificate(&err);
            match map_err(self.kind, &self.endpoint_text, action, err) {
                Error::Unavailable { what, reason } if dropped => Error::Unavailable {
                    what,
                    reason: format!("{reason} ({NO_CLIENT_CERT})"),
                },
                other => other,
            }
        }
    }

    /// Whether `err` is a TLS engine closing a connection that showed no client
    /// certificate: under TLS 1.3 an engine that wants one may only close the
    /// connection after the handshake, with no alert for [`handshake_hint`] to read.
    fn dropped_for_want_of_a_certificate(&self, err: &BollardError) -> bool {
        matches!(&self.endpoint, Endpoint::Https(_, tls) if !tls.has_client_cert())
            && matches!(err, BollardError::HyperLegacyError { err } if !err.is_connect())
            && handshake_hint(err).is_none()
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<SystemInfo> {
        let client = self.client().await?;
        client
            .info()
            .await
            .map_err(self.fail(Action::new("read", "info of", "engine")))
    }

    /// Runs `command` (no shell) in the running container `container`, waits for it to
    /// end and returns its exit status; what an `exec` readiness probe does.
    pub async fn exec(&self, container: &str, command: &[String]) -> Result<i64> {
        let client = self.client().await?;
        let fail = || self.fail(Action::new("exec in", "container", container));
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(command.to_vec()),
            ..ExecConfig::default()
        };
        let created = client.create_exec(container, config).await.map_err(fail())?;
        if let StartExecResults::Attached { mut output, .. } =
            client.start_exec(&created.id, None).await.map_err(fail())?
        {
            // Its output is not kept; reading it to the end is waiting for it to end.
            while output.next().await.is_some() {}
        }
        let ended = client.inspect_exec(&created.id).await.map_err(fail())?;
        ended.exit_code.ok_or_else(|| {
            Error::unavailable(
                format!("exec in container {container}"),
                "the engine gave no exit status",
            )
        })
    }

    /// `GET /version`.
    async fn version(&self) -> Result<SystemVersion> {
        let client = self.client().await?;
        client
            .version()
            .await
            .map_err(self.fail(Action::new("read", "version of", "engine")))
    }

    /// What the engine says of itself: version, CPUs, memory, containers, swarm state.
    pub async fn facts(&self) -> Result<EngineFacts> {
        let (version, info) = futures::try_join!(self.version(), self.info())?;
        let swarm = info.swarm.unwrap_or_default();
        let count = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        Ok(EngineFacts {
            version: version.version.or(info.server_version).unwrap_or_default(),
            cpus: count(info.ncpu),
            memory_bytes: count(info.mem_total),
            containers: count(info.containers),
            swarm: swarm
                .local_node_state
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "inactive".to_owned()),
            swarm_manager: swarm.control_available.unwrap_or(false),
        })
    }

    /// Every network carrying the labels of `filter`.
    pub async fn networks(&self, filter: &LabelFilter) -> Result<Vec<Network>> {
        let options = ListNetworksOptionsBuilder::new()
            .filters(&filter.to_filters())
            .build();
        let client = self.client().await?;
        let fail = self.fail(Action::new("list", "networks", filter.to_string()));
        client.list_networks(Some(options)).await.map_err(fail)
    }

    /// The network of `cluster`: the one labelled with its id and named by
    /// [`object_name`] when it exists, else a new one of `kind`. Returns its id.
    pub async fn ensure_network(&self, cluster: &Cluster, kind: ClusterNetwork) -> Result<String> {
        let name = object_name(cluster, None);
        if let Some(id) = self.find_network(cluster, &name).await? {
            return Ok(id);
        }
        let (driver, attachable) = match kind {
            ClusterNetwork::Bridge => ("bridge", None),
            // Attachable, so an operator can run a debugging container beside the nodes.
            ClusterNetwork::Overlay => ("overlay", Some(true)),
        };
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some(driver.to_owned()),
            attachable,
            labels: Some(label_map(labels_for(cluster, None))),
            ..Default::default()
        };
        let client = self.client().await?;
        let created = client.create_network(request).await;
        if let Err(e) = &created {
            if is_out_of_address_pools(e) {
                return Err(Error::backend(
                    self.kind.as_str(),
                    NoAddressPool { network: name },
                ));
            }
        }
        match created.map_err(self.fail(Action::new("create", "network", name.clone()))) {
            Ok(created) => Ok(created.id),
            // Created by a concurrent call since we looked: adopt it.
            Err(Error::Conflict { .. }) => self
                .find_network(cluster, &name)
                .await?
                .ok_or_else(|| Error::conflict(format!("network {name:?} exists but is not ours"))),
            Err(e) => Err(e),
        }
    }

    /// Id of the cluster's network named `name`. Engines before API 1.44 allow several
    /// networks of one name; the oldest wins, so every caller picks the same one.
    async fn find_network(&self, cluster: &Cluster, name: &str) -> Result<Option<String>> {
        let networks = self.networks(&LabelFilter::cluster(&cluster.id)).await?;
        let mut matching: Vec<_> = networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| Some((n.created.clone().map(|c| c.to_string()), n.id?)))
            .collect();
        matching.sort();
        Ok(matching.into_iter().next().map(|(_, id)| id))
    }

    /// Removes every network `filter` finds, until none is listed any more; returns the
    /// cluster ids they carried.
    ///
    /// The engine refuses to remove a network that containers still use, and a swarm
    /// keeps listing a removed overlay network until its tasks' containers are gone, so
    /// this tries again for up to `patience`. Every network is tried each round, even
    /// when one fails.
    pub async fn remove_networks(
        &self,
        filter: &LabelFilter,
        patience: Duration,
    ) -> Result<BTreeSet<String>> {
        let deadline = Instant::now() + patience;
        let mut clusters = BTreeSet::new();
        let mut pause = Duration::from_millis(100);
        loop {
            let networks = self.networks(filter).await?;
            clusters.extend(networks.iter().filter_map(|n| cluster_of(n.labels.as_ref())));
            let Some(first) = networks.first() else {
                return Ok(clusters);
            };
            let name = first.name.clone().unwrap_or_default();
            let ids = networks.iter().filter_map(|n| n.id.as_deref());
            let removed = first_error(join_all(ids.map(|id| self.remove_network(id))).await);
            match removed {
                Err(e @ Error::Unavailable { .. }) => return Err(e),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Ok(()) if Instant::now() >= deadline => {
                    return Err(Error::backend(
                        self.kind.as_str(),
                        NetworkLingers {
                            network: name,
                            patience,
                        },
                    ))
                }
                _ => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Removes a network; one already gone is fine.
    async fn remove_network(&self, id: &str) -> Result<()> {
        let client = self.client().await?;
        match client.remove_network(id).await {
            Err(e) if has_status(&e, 404) => Ok(()),
            other => other.map_err(self.fail(Action::new("remove", "network", id))),
        }
    }
}

/// What a control call on a node (`Some`) or a whole cluster finds when nothing of it
/// is on the engine: [`Error::NotFound`] naming the node, or the cluster.
pub fn nothing_of(cluster_id: &str, node: Option<&str>) -> Error {
    match node {
        Some(node) => Error::not_found("node", node),
        None => Error::not_found("cluster", cluster_id),
    }
}

/// The first error of `results`, after all of them ran.
pub fn first_error(results: Vec<Result<()>>) -> Result<()> {
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_endpoints_are_refused_before_any_request() {
        let err = Engine::new(HostKind::Swarm, "ssh://m", None, Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert!(err.to_string().contains("ssh://m"), "{err}");
    }
}

//! Host operations: add (after a probe), update, delete, get, list.

use chrono::Utc;
use tracing::{info, instrument, warn};

use super::Pool;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{new_id, ClusterFilter, EngineFacts, Host, HostKind, HostStatus, Labels, LogConfig, Page};

/// What an operator gives to add a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHost {
    /// Unique name.
    pub name: String,
    /// Docker engine or Swarm manager.
    pub kind: HostKind,
    /// Engine address: `unix:///var/run/docker.sock`, `tcp://10.0.0.1:2375`.
    pub endpoint: String,
    /// Most clusters it may hold.
    pub capacity: u32,
    /// Keep it filled to capacity (default: true).
    pub autofill: bool,
    /// Hand its clusters to users (default: true).
    pub schedulable: bool,
    /// Address put in service URLs; derived from the endpoint when `None`.
    pub public_address: Option<String>,
    /// Labels for placement.
    pub labels: Labels,
    /// Logging config for cluster containers.
    pub log: Option<LogConfig>,
}

impl NewHost {
    /// A docker host with `capacity`, autofill and schedulable on, no labels.
    pub fn docker(name: impl Into<String>, endpoint: impl Into<String>, capacity: u32) -> Self {
        NewHost {
            name: name.into(),
            kind: HostKind::Docker,
            endpoint: endpoint.into(),
            capacity,
            autofill: true,
            schedulable: true,
            public_address: None,
            labels: Labels::new(),
            log: None,
        }
    }
}

/// Changes to a host; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPatch {
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
    /// New labels (replacing all).
    pub labels: Option<Labels>,
    /// New logging config (`Some(None)` removes it).
    pub log: Option<Option<LogConfig>>,
}

/// Largest capacity a host may be given.
pub const MAX_CAPACITY: u32 = 10_000;

fn validate_capacity(capacity: u32) -> Result<()> {
    if capacity > MAX_CAPACITY {
        return Err(Error::invalid(
            "capacity",
            format!("{capacity} is above {MAX_CAPACITY}"),
        ));
    }
    Ok(())
}

fn validate_log(log: &Option<LogConfig>) -> Result<()> {
    match log {
        Some(log) if log.driver.trim().is_empty() => Err(Error::invalid("log.driver", "must not be empty")),
        _ => Ok(()),
    }
}

fn validate_address(address: &str) -> Result<()> {
    if address.is_empty() || address.contains(['/', ' ', '@', '?', '#']) {
        return Err(Error::invalid(
            "public_address",
            format!("{address:?} is not a host name or IP address"),
        ));
    }
    Ok(())
}

/// The address in service URLs for an endpoint: its host part for `tcp://`, loopback
/// for a local socket.
fn default_public_address(endpoint: &str) -> Result<String> {
    if endpoint.starts_with("unix://") || endpoint.starts_with("npipe://") {
        return Ok("127.0.0.1".to_owned());
    }
    let rest = ["tcp://", "http://", "https://"]
        .iter()
        .find_map(|scheme| endpoint.strip_prefix(scheme))
        .ok_or_else(|| {
            Error::invalid(
                "endpoint",
                format!("{endpoint:?} is not unix:///path, tcp://host:port, http:// or https://"),
            )
        })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return Err(Error::invalid("endpoint", format!("{endpoint:?} names no host")));
    }
    Ok(host.to_owned())
}

/// Why a swarm host is refused: its engine is no swarm manager, with what to do.
fn not_a_swarm_manager(endpoint: &str, facts: &EngineFacts) -> Error {
    let hint = match facts.swarm.as_str() {
        "inactive" | "" => "it is in no swarm: run `docker swarm init` there, or add it with kind docker",
        "active" => "it is a swarm worker: add a manager's endpoint instead",
        _ => "its swarm is not usable now; see `docker info` there",
    };
    Error::invalid(
        "kind",
        format!(
            "the engine at {endpoint} is not a swarm manager (swarm state: {}); {hint}",
            if facts.swarm.is_empty() {
                "inactive"
            } else {
                &facts.swarm
            }
        ),
    )
}

impl Pool {
    /// Adds a host after probing its engine.
    ///
    /// An unreachable engine is refused with [`Error::Unavailable`]; a `swarm` host
    /// whose engine is not a swarm manager with [`Error::Invalid`]. An autofill host
    /// starts filling at once.
    #[instrument(skip(self, new), fields(host = %new.name))]
    pub async fn add_host(&self, new: NewHost) -> Result<Host> {
        crate::model::validate_name("name", &new.name)?;
        validate_capacity(new.capacity)?;
        validate_log(&new.log)?;
        let public_address = match new.public_address {
            Some(address) => address,
            None => default_public_address(&new.endpoint)?,
        };
        validate_address(&public_address)?;
        let mut host = Host {
            id: new_id(),
            name: new.name,
            kind: new.kind,
            endpoint: new.endpoint,
            public_address,
            capacity: new.capacity,
            autofill: new.autofill,
            schedulable: new.schedulable,
            labels: new.labels,
            log: new.log,
            status: HostStatus::Active,
            last_seen: None,
            last_error: None,
            facts: EngineFacts::default(),
            created_at: Utc::now(),
        };
        let driver = self.driver(&host)?;
        let facts = driver
            .probe()
            .await
            .map_err(|e| Error::unavailable(format!("host endpoint {}", host.endpoint), e))?;
        if host.kind == HostKind::Swarm && !facts.swarm_manager {
            self.forget_driver(&host.id);
            return Err(not_a_swarm_manager(&host.endpoint, &facts));
        }
        host.facts = facts;
        host.last_seen = Some(Utc::now());
        if let Err(e) = self.store().insert_host(&host).await {
            self.forget_driver(&host.id);
            return Err(e);
        }
        info!(host_id = %host.id, "host added");
        self.emit(Event::Host(host.clone()));
        if host.autofill && host.capacity > 0 {
            self.fill_host(&host.id, None).await?;
        }
        Ok(host)
    }

    /// The host with `id`.
    pub async fn host(&self, id: &str) -> Result<Host> {
        self.store()
            .get_host(id)
            .await?
            .ok_or_else(|| Error::not_found("host", id))
    }

    /// Every host, by name.
    pub async fn hosts(&self) -> Result<Vec<Host>> {
        self.store().list_hosts().await
    }

    /// Changes a host's settings.
    #[instrument(skip(self, patch))]
    pub async fn update_host(&self, id: &str, patch: HostPatch) -> Result<Host> {
        let mut host = self.host(id).await?;
        if let Some(name) = patch.name {
            crate::model::validate_name("name", &name)?;
            host.name = name;
        }
        if let Some(capacity) = patch.capacity {
            validate_capacity(capacity)?;
            host.capacity = capacity;
        }
        if let Some(address) = patch.public_address {
            validate_address(&address)?;
            host.public_address = address;
        }
        if let Some(log) = patch.log {
            validate_log(&log)?;
            host.log = log;
        }
        host.autofill = patch.autofill.unwrap_or(host.autofill);
        host.schedulable = patch.schedulable.unwrap_or(host.schedulable);
        host.labels = patch.labels.unwrap_or(host.labels);
        self.store().update_host(&host).await?;
        self.emit(Event::Host(host.clone()));
        Ok(host)
    }

    /// Removes a host, its clusters and everything PoolManager made on its engine.
    ///
    /// Refused with [`Error::Conflict`] while a cluster on it is applied, unless
    /// `force`. With `force`, an engine that cannot be cleaned does not stop the removal.
    #[instrument(skip(self))]
    pub async fn delete_host(&self, id: &str, force: bool) -> Result<()> {
        let host = self.host(id).await?;
        let filter = ClusterFilter {
            host_id: Some(host.id.clone()),
            ..ClusterFilter::default()
        };
        let clusters = self.store().list_clusters(&filter, Page::ALL).await?.items;
        let held = clusters.iter().filter(|c| !c.is_free()).count();
        if held > 0 && !force {
            return Err(Error::conflict(format!(
                "host {:?} holds {held} applied cluster(s); release them or delete with force",
                host.name
            )));
        }
        // Records go first: background work that finds its record gone removes what
        // it made itself, so nothing is created behind the sweep below.
        for cluster in clusters {
            if cluster.is_applied() {
                // Close the lease so the history stays whole.
                self.release_one(&cluster, "deleted").await?;
            }
            if let Some(current) = self.store().get_cluster(&cluster.id).await? {
                self.store().delete_cluster(&current.id, current.version).await?;
                self.emit(Event::ClusterDeleted { id: current.id });
            }
        }
        match self.driver(&host)?.remove_all().await {
            Ok(_) => {}
            Err(e) if force => warn!(error = %e, "could not clean the engine; removing the host anyway"),
            Err(e) => return Err(e),
        }
        self.store().delete_host(&host.id).await?;
        self.forget_driver(&host.id);
        info!(host_id = %host.id, "host deleted");
        self.emit(Event::HostDeleted { id: host.id });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_address_from_endpoint() {
        assert_eq!(
            default_public_address("unix:///var/run/docker.sock").unwrap(),
            "127.0.0.1"
        );
        assert_eq!(default_public_address("tcp://10.0.0.1:2375").unwrap(), "10.0.0.1");
        assert_eq!(
            default_public_address("https://dock.example:2376/").unwrap(),
            "dock.example"
        );
        assert_eq!(default_public_address("tcp://[fd00::1]:2375").unwrap(), "fd00::1");
        assert!(default_public_address("ftp://x").is_err());
        assert!(default_public_address("tcp://:2375").is_err());
    }

    #[test]
    fn a_swarm_host_that_is_no_manager_is_refused_with_what_to_do() {
        let facts = |swarm: &str| EngineFacts {
            swarm: swarm.to_owned(),
            ..EngineFacts::default()
        };
        let err = not_a_swarm_manager("tcp://10.0.0.1:2375", &facts("inactive"));
        assert_eq!(err.code(), "invalid_input");
        let text = err.to_string();
        assert!(
            text.contains("tcp://10.0.0.1:2375 is not a swarm manager (swarm state: inactive)")
                && text.contains("docker swarm init"),
            "{text}"
        );
        let text = not_a_swarm_manager("unix:///w.sock", &facts("active")).to_string();
        assert!(text.contains("swarm worker"), "{text}");
        let text = not_a_swarm_manager("unix:///w.sock", &facts("locked")).to_string();
        assert!(text.contains("swarm state: locked"), "{text}");
    }
}

//! Host operations: add (after a probe), update, delete, get, list.

use chrono::Utc;
use tracing::{info, instrument, warn};

use super::Pool;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::limits;
use crate::model::{
    new_id, Cluster, EngineFacts, EngineTls, Host, HostKind, HostStatus, Labels, Listing, LogConfig, Page,
    Pem, ReleaseReason,
};

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
    /// TLS for a `tcp://` engine.
    pub tls: Option<EngineTls>,
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
            tls: None,
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
    /// New TLS settings (`Some(None)` removes them).
    pub tls: Option<Option<EngineTls>>,
}

fn validate_capacity(capacity: u32) -> Result<()> {
    limits::check_range(
        "capacity",
        u64::from(capacity),
        0,
        u64::from(limits::CAPACITY_MAX),
    )
}

fn validate_log(log: &Option<LogConfig>) -> Result<()> {
    let Some(log) = log else { return Ok(()) };
    limits::check_name("log.driver", &log.driver)?;
    limits::check_text_map("log.options", &log.options, limits::LOG_OPTIONS_MAX)
}

fn validate_tls(tls: &Option<EngineTls>) -> Result<()> {
    let Some(tls) = tls else { return Ok(()) };
    for (field, pem) in [
        ("tls.ca", &tls.ca),
        ("tls.cert", &tls.cert),
        ("tls.key", &tls.key),
    ] {
        match pem {
            Some(Pem::Path(path)) if path.is_empty() || path.len() > 4096 || path.contains('\0') => {
                return Err(Error::invalid(
                    field,
                    "a path must be 1-4096 characters without NUL",
                ))
            }
            Some(Pem::Inline(text)) if !text.starts_with("-----BEGIN ") || text.len() > limits::PEM_MAX => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "inline PEM must start with -----BEGIN and be at most {} bytes",
                        limits::PEM_MAX
                    ),
                ))
            }
            _ => {}
        }
    }
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(Error::invalid("tls", "give both cert and key, or neither"));
    }
    Ok(())
}

/// The address in service URLs for an endpoint: its host part for `tcp://`, loopback
/// for a local socket or a simulated engine (whose ports listen on loopback).
fn default_public_address(endpoint: &str) -> Result<String> {
    if ["unix://", "npipe://", "sim://"]
        .iter()
        .any(|local| endpoint.starts_with(local))
    {
        return Ok("127.0.0.1".to_owned());
    }
    let rest = ["tcp://", "http://", "https://"]
        .iter()
        .find_map(|scheme| endpoint.strip_prefix(scheme))
        .ok_or_else(|| {
            Error::invalid(
                "endpoint",
                format!(
                    "{} is not unix:///path, tcp://host:port, http://, https:// or sim://name",
                    limits::quoted(endpoint)
                ),
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

impl NewHost {
    /// Checks every field against [`limits`].
    pub fn validate(&self) -> Result<()> {
        limits::check_name("name", &self.name)?;
        limits::check_endpoint("endpoint", &self.endpoint)?;
        validate_capacity(self.capacity)?;
        if let Some(address) = &self.public_address {
            limits::check_address("public_address", address)?;
        }
        limits::check_labels("labels", &self.labels)?;
        validate_log(&self.log)?;
        validate_tls(&self.tls)
    }
}

impl HostPatch {
    /// Checks every field given against [`limits`].
    pub fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name {
            limits::check_name("name", name)?;
        }
        if let Some(capacity) = self.capacity {
            validate_capacity(capacity)?;
        }
        if let Some(address) = &self.public_address {
            limits::check_address("public_address", address)?;
        }
        if let Some(labels) = &self.labels {
            limits::check_labels("labels", labels)?;
        }
        if let Some(log) = &self.log {
            validate_log(log)?;
        }
        if let Some(tls) = &self.tls {
            validate_tls(tls)?;
        }
        Ok(())
    }

    fn apply_to(&self, host: &mut Host) {
        let patch = self.clone();
        host.name = patch.name.unwrap_or(std::mem::take(&mut host.name));
        host.capacity = patch.capacity.unwrap_or(host.capacity);
        host.autofill = patch.autofill.unwrap_or(host.autofill);
        host.schedulable = patch.schedulable.unwrap_or(host.schedulable);
        if let Some(address) = patch.public_address {
            host.public_address = address;
        }
        if let Some(labels) = patch.labels {
            host.labels = labels;
        }
        if let Some(log) = patch.log {
            host.log = log;
        }
        if let Some(tls) = patch.tls {
            host.tls = tls;
        }
    }
}

impl Pool {
    /// Adds a host after probing its engine.
    ///
    /// An engine that does not answer is refused with [`Error::Unavailable`], whose
    /// message says only that (what the probe met is logged, not returned: the answer
    /// must not tell a caller what listens where); a `swarm` host whose engine is not
    /// a swarm manager with [`Error::Invalid`]. An autofill host starts filling at once
    /// when there are blueprints, and once there are otherwise.
    #[instrument(skip(self, new), fields(host = %new.name))]
    pub async fn add_host(&self, new: NewHost) -> Result<Host> {
        new.validate()?;
        self.config().endpoint_policy.check(&new.endpoint)?;
        let public_address = match new.public_address {
            Some(address) => address,
            None => default_public_address(&new.endpoint)?,
        };
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
            tls: new.tls,
            status: HostStatus::Active,
            last_seen: None,
            last_error: None,
            facts: EngineFacts::default(),
            created_at: Utc::now(),
            version: 0,
        };
        if self
            .store()
            .list_hosts(Page::ALL)
            .await?
            .items
            .iter()
            .any(|h| h.name == host.name)
        {
            return Err(Error::conflict(format!("host {:?} exists", host.name)));
        }
        let driver = self.driver(&host)?;
        let probed = driver.probe().await;
        self.forget_driver(&host.id);
        let facts = probed.map_err(|e| {
            warn!(endpoint = %host.endpoint, error = %e, "the new host's engine did not answer its probe");
            Error::unavailable(
                format!("host endpoint {}", host.endpoint),
                "the engine did not answer as a Docker engine; see the server log for details",
            )
        })?;
        if host.kind == HostKind::Swarm && !facts.swarm_manager {
            return Err(not_a_swarm_manager(&host.endpoint, &facts));
        }
        host.facts = facts;
        host.last_seen = Some(Utc::now());
        self.store().insert_host(&host).await?;
        self.inner.catalog.invalidate();
        info!(host_id = %host.id, "host added");
        self.emit(Event::Host(host.clone()));
        if host.autofill {
            self.autofill(&host).await;
        }
        Ok(host)
    }

    /// The host with `id`.
    pub async fn host(&self, id: &str) -> Result<Host> {
        self.store()
            .get_host(id)
            .await?
            .ok_or_else(|| Error::not_found("host", limits::quoted(id)))
    }

    /// Every host, by name.
    pub async fn hosts(&self) -> Result<Vec<Host>> {
        Ok(self.store().list_hosts(Page::ALL).await?.items)
    }

    /// One page of hosts, by name, and the total.
    pub async fn hosts_page(&self, page: Page) -> Result<Listing<Host>> {
        self.store().list_hosts(page).await
    }

    /// Changes a host's settings. The change is made on the host as stored when it is
    /// written, so a probe recorded meanwhile is kept, and the probe never undoes it.
    #[instrument(skip(self, patch))]
    pub async fn update_host(&self, id: &str, patch: HostPatch) -> Result<Host> {
        patch.validate()?;
        let host = self
            .change_host(id, |host| {
                patch.apply_to(host);
                Ok(())
            })
            .await?;
        if host.autofill {
            self.autofill(&host).await;
        }
        Ok(host)
    }

    /// Removes a host, its clusters and everything PoolManager made on its engine.
    ///
    /// Refused with [`Error::Conflict`] while a cluster on it is applied, unless
    /// `force`. With `force`, an engine that cannot be cleaned does not stop the removal.
    #[instrument(skip(self))]
    pub async fn delete_host(&self, id: &str, force: bool) -> Result<()> {
        let host = self.host(id).await?;
        {
            // Fills plan and insert under this lock: none adds a cluster behind a sweep.
            let _planning = self.inner.planning.lock().await;
            let clusters = self.host_clusters(&host.id).await?;
            let held = clusters.iter().filter(|c| !c.is_free()).count();
            if held > 0 && !force {
                return Err(Error::conflict(format!(
                    "host {:?} holds {held} applied cluster(s); release them or delete with force",
                    host.name
                )));
            }
            // Records go first: background work that finds its record gone removes
            // what it made itself, so nothing is created behind the engine's cleaning.
            self.delete_records(clusters).await?;
        }
        // Not under the lock: a slow engine must not hold up the fills of other hosts.
        match self.driver(&host)?.remove_all().await {
            Ok(_) => {}
            Err(e) if force => warn!(error = %e, "could not clean the engine; removing the host anyway"),
            Err(e) => return Err(e),
        }
        let made_meanwhile = {
            // Fills read the host again under this lock, so none starts once it is
            // gone; what one planned while the engine was cleaned goes too.
            let _planning = self.inner.planning.lock().await;
            let planned = self.host_clusters(&host.id).await?;
            let any = !planned.is_empty();
            self.delete_records(planned).await?;
            self.store().delete_host(&host.id).await?;
            any
        };
        if made_meanwhile {
            if let Err(e) = self.driver(&host)?.remove_all().await {
                warn!(error = %e, "could not clean the engine of what was made during the removal");
            }
        }
        self.forget_driver(&host.id);
        self.inner.catalog.invalidate();
        info!(host_id = %host.id, "host deleted");
        self.emit(Event::HostDeleted { id: host.id });
        Ok(())
    }

    /// Deletes the records of `clusters`, closing the lease of an applied one first so
    /// the history stays whole.
    async fn delete_records(&self, clusters: Vec<Cluster>) -> Result<()> {
        for cluster in clusters {
            if cluster.is_applied() {
                self.release_one(&cluster, ReleaseReason::Deleted).await?;
            }
            loop {
                let Some(current) = self.store().get_cluster(&cluster.id).await? else {
                    break;
                };
                match self.store().delete_cluster(&current.id, current.version).await {
                    Err(e) if e.is_stale() => continue,
                    Err(e) => return Err(e),
                    Ok(_) => {
                        self.emit(Event::ClusterDeleted { id: current.id });
                        break;
                    }
                }
            }
        }
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
        assert_eq!(default_public_address("sim://demo").unwrap(), "127.0.0.1");
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

//! The raw manager: the shared engine client plus the swarm requests the driver makes
//! (services, tasks, nodes), each returning [`poolcore::Error`] that names its object.

use std::time::Duration;

use bollard::models::{Node, Service, ServiceSpec, Task};
use bollard::query_parameters::{
    ListNodesOptions, ListServicesOptionsBuilder, ListTasksOptionsBuilder, UpdateServiceOptions,
};
use poolcore::{Error, Host, HostKind, Result};
use poolcore_engine::{has_status, Action, Engine, LabelFilter};

use crate::config::SwarmConfig;

/// How often an update that lost a race with another one is tried again.
const UPDATE_ATTEMPTS: u32 = 5;

/// One swarm manager.
#[derive(Debug)]
pub(crate) struct Manager {
    engine: Engine,
}

impl Manager {
    /// The manager of `host`, at its endpoint and with its TLS settings; an endpoint
    /// the engine client cannot use, or a wrong TLS setting, is [`Error::Invalid`].
    pub(crate) fn new(host: &Host, config: &SwarmConfig) -> Result<Self> {
        Ok(Manager {
            engine: Engine::for_host(HostKind::Swarm, host, config.request_timeout())?,
        })
    }

    /// The shared engine client: probe, networks.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Every service carrying the labels of `filter`.
    pub(crate) async fn services(&self, filter: &LabelFilter) -> Result<Vec<Service>> {
        let options = ListServicesOptionsBuilder::new()
            .filters(&filter.to_filters())
            .build();
        let client = self.engine.client().await?;
        let fail = self
            .engine
            .fail(Action::new("list", "services", filter.to_string()));
        client.list_services(Some(options)).await.map_err(fail)
    }

    /// Every task of the services carrying the labels of `filter`, current and past
    /// (the swarm keeps a few failed ones per service).
    pub(crate) async fn tasks(&self, filter: &LabelFilter) -> Result<Vec<Task>> {
        let options = ListTasksOptionsBuilder::new()
            .filters(&filter.to_filters())
            .build();
        let client = self.engine.client().await?;
        let fail = self.engine.fail(Action::new("list", "tasks", filter.to_string()));
        client.list_tasks(Some(options)).await.map_err(fail)
    }

    /// How many tasks of the whole swarm, ours or not, run now.
    pub(crate) async fn running_task_count(&self) -> Result<u64> {
        let filters = std::collections::HashMap::from([("desired-state", vec!["running"])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        let client = self.engine.client().await?;
        let fail = self
            .engine
            .fail(Action::new("list", "tasks", "desired-state=running"));
        let tasks = client.list_tasks(Some(options)).await.map_err(fail)?;
        let running = tasks
            .iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(bollard::models::TaskState::RUNNING));
        Ok(running.count() as u64)
    }

    /// Every node of the swarm.
    pub(crate) async fn nodes(&self) -> Result<Vec<Node>> {
        let client = self.engine.client().await?;
        let fail = self.engine.fail(Action::new("list", "nodes", "swarm"));
        client.list_nodes(None::<ListNodesOptions>).await.map_err(fail)
    }

    /// Id of the swarm node the driver talks to.
    pub(crate) async fn own_node_id(&self) -> Result<String> {
        let info = self.engine.info().await?;
        Ok(info.swarm.and_then(|s| s.node_id).unwrap_or_default())
    }

    /// Creates a service; returns its id. One of that name that exists is
    /// [`Error::Conflict`].
    pub(crate) async fn create_service(&self, spec: ServiceSpec) -> Result<String> {
        let name = spec.name.clone().unwrap_or_default();
        let client = self.engine.client().await?;
        let fail = self.engine.fail(Action::new("create", "service", name.clone()));
        let created = client.create_service(spec, None).await.map_err(fail)?;
        created.id.ok_or_else(|| {
            Error::backend(
                "swarm",
                format!("the manager created service {name:?} without an id"),
            )
        })
    }

    /// Inspects a service by id or name.
    pub(crate) async fn service(&self, id: &str) -> Result<Service> {
        let client = self.engine.client().await?;
        let fail = self.engine.fail(Action::new("inspect", "service", id));
        client.inspect_service(id, None).await.map_err(fail)
    }

    /// Changes the spec of service `id` with `change`. The manager takes an update only
    /// against the version it was read at; one that lost a race is read and tried again.
    pub(crate) async fn update_service(&self, id: &str, change: impl Fn(&mut ServiceSpec)) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let service = self.service(id).await?;
            let version = service.version.and_then(|v| v.index).unwrap_or_default();
            let mut spec = service.spec.unwrap_or_default();
            change(&mut spec);
            let options = UpdateServiceOptions {
                version: i32::try_from(version).unwrap_or(i32::MAX),
                ..Default::default()
            };
            let client = self.engine.client().await?;
            match client.update_service(id, spec, options, None).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < UPDATE_ATTEMPTS && e.to_string().contains("update out of sequence") => {
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(e) => return Err(self.engine.fail(Action::new("update", "service", id))(e)),
            }
        }
    }

    /// Removes a service; its tasks stop after their grace period. One already gone is
    /// fine.
    pub(crate) async fn remove_service(&self, id: &str) -> Result<()> {
        let client = self.engine.client().await?;
        match client.delete_service(id).await {
            Err(e) if has_status(&e, 404) => Ok(()),
            other => other.map_err(self.engine.fail(Action::new("remove", "service", id))),
        }
    }
}

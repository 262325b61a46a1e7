//! The raw engine: a lazily connected bollard client and the requests the driver makes,
//! each returning [`poolcore::Error`] that names its object.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, Network, NetworkCreateRequest,
    SystemInfo, SystemVersion,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures::TryStreamExt;
use poolcore::{Error, Result};
use tokio::sync::OnceCell;

use crate::config::{DockerConfig, Endpoint};
use crate::error::{has_status, map_err, Action};
use crate::labels::LabelFilter;

/// One Docker engine. Connects, and agrees on the API version, on first use.
#[derive(Debug)]
pub(crate) struct Engine {
    endpoint: Endpoint,
    /// The endpoint as the host record spells it, for messages.
    endpoint_text: String,
    config: DockerConfig,
    /// Set once the engine answered the version negotiation. bollard speaks a newer API
    /// than older engines (Docker 20.10 speaks 1.41) and would be refused without it.
    client: OnceCell<Docker>,
}

impl Engine {
    pub(crate) fn new(endpoint: Endpoint, endpoint_text: &str, config: DockerConfig) -> Self {
        Engine {
            endpoint,
            endpoint_text: endpoint_text.to_owned(),
            config,
            client: OnceCell::new(),
        }
    }

    /// Seconds a node gets to stop before it is killed.
    fn stop_timeout(&self) -> i32 {
        i32::try_from(self.config.stop_timeout_secs).unwrap_or(i32::MAX)
    }

    /// The client, connected and version-negotiated on first use. A failed attempt is
    /// not remembered, so the next call tries again.
    async fn client(&self) -> Result<&Docker> {
        self.client
            .get_or_try_init(|| async {
                let timeout = self.config.request_timeout_secs;
                let client = match &self.endpoint {
                    Endpoint::Unix(path) => Docker::connect_with_unix(path, timeout, API_DEFAULT_VERSION),
                    Endpoint::Http(addr) => Docker::connect_with_http(addr, timeout, API_DEFAULT_VERSION),
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
        match map_err(&self.endpoint_text, action, err) {
            err @ Error::Unavailable { .. } => err,
            other => Error::unavailable(format!("docker engine at {}", self.endpoint_text), other),
        }
    }

    /// Maps an error of `action` (see [`map_err`]).
    fn fail(&self, action: Action) -> impl FnOnce(BollardError) -> Error + '_ {
        move |err| map_err(&self.endpoint_text, action, err)
    }

    /// `GET /info`.
    pub(crate) async fn info(&self) -> Result<SystemInfo> {
        let client = self.client().await?;
        client
            .info()
            .await
            .map_err(self.fail(Action::new("read", "info of", "engine")))
    }

    /// `GET /version`.
    pub(crate) async fn version(&self) -> Result<SystemVersion> {
        let client = self.client().await?;
        client
            .version()
            .await
            .map_err(self.fail(Action::new("read", "version of", "engine")))
    }

    /// Every container, running or not, carrying the labels of `filter`.
    pub(crate) async fn containers(&self, filter: &LabelFilter) -> Result<Vec<ContainerSummary>> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filter.to_filters())
            .build();
        let client = self.client().await?;
        let fail = self.fail(Action::new("list", "containers", filter.to_string()));
        client.list_containers(Some(options)).await.map_err(fail)
    }

    /// Every network carrying the labels of `filter`.
    pub(crate) async fn networks(&self, filter: &LabelFilter) -> Result<Vec<Network>> {
        let options = ListNetworksOptionsBuilder::new()
            .filters(&filter.to_filters())
            .build();
        let client = self.client().await?;
        let fail = self.fail(Action::new("list", "networks", filter.to_string()));
        client.list_networks(Some(options)).await.map_err(fail)
    }

    /// Creates a network; returns its id.
    pub(crate) async fn create_network(&self, request: NetworkCreateRequest) -> Result<String> {
        let fail = self.fail(Action::new("create", "network", request.name.clone()));
        let client = self.client().await?;
        let created = client.create_network(request).await.map_err(fail)?;
        Ok(created.id)
    }

    /// Removes a network; one already gone is fine.
    pub(crate) async fn remove_network(&self, id: &str) -> Result<()> {
        let client = self.client().await?;
        match client.remove_network(id).await {
            Err(e) if has_status(&e, 404) => Ok(()),
            other => other.map_err(self.fail(Action::new("remove", "network", id))),
        }
    }

    /// Creates a container named `name`; returns its id. One that exists is
    /// [`Error::Conflict`].
    pub(crate) async fn create_container(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let client = self.client().await?;
        let fail = self.fail(Action::new("create", "container", name));
        let created = client.create_container(Some(options), body).await.map_err(fail)?;
        Ok(created.id)
    }

    /// Inspects a container by id or name.
    pub(crate) async fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse> {
        let client = self.client().await?;
        let fail = self.fail(Action::new("inspect", "container", id));
        client.inspect_container(id, None).await.map_err(fail)
    }

    /// Starts a container; one that runs already is fine.
    pub(crate) async fn start_container(&self, id: &str) -> Result<()> {
        let client = self.client().await?;
        let fail = self.fail(Action::new("start", "container", id));
        client.start_container(id, None).await.map_err(fail)
    }

    /// Stops a container, killing it after the stop timeout; one stopped already is fine.
    pub(crate) async fn stop_container(&self, id: &str) -> Result<()> {
        let options = StopContainerOptionsBuilder::new().t(self.stop_timeout()).build();
        let client = self.client().await?;
        let fail = self.fail(Action::new("stop", "container", id));
        client.stop_container(id, Some(options)).await.map_err(fail)
    }

    /// Restarts a container (starts it, if stopped).
    pub(crate) async fn restart_container(&self, id: &str) -> Result<()> {
        let options = RestartContainerOptionsBuilder::new()
            .t(self.stop_timeout())
            .build();
        let client = self.client().await?;
        let fail = self.fail(Action::new("restart", "container", id));
        client.restart_container(id, Some(options)).await.map_err(fail)
    }

    /// Kills and removes a container with its anonymous volumes; one already gone is fine.
    pub(crate) async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        let client = self.client().await?;
        match client.remove_container(id, Some(options)).await {
            // 409: another caller is removing it already.
            Err(e) if has_status(&e, 404) || has_status(&e, 409) => Ok(()),
            other => other.map_err(self.fail(Action::new("remove", "container", id))),
        }
    }

    /// Makes sure `image` is on the engine, pulling it when it is not.
    pub(crate) async fn ensure_image(&self, image: &str) -> Result<()> {
        let client = self.client().await?;
        match client.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(e) if has_status(&e, 404) => self.pull(client, image).await,
            Err(e) => Err(map_err(
                &self.endpoint_text,
                Action::new("inspect", "image", image),
                e,
            )),
        }
    }

    /// Pulls `image`, draining the progress stream. A failed pull names the image.
    async fn pull(&self, client: &Docker, image: &str) -> Result<()> {
        tracing::info!(image, endpoint = %self.endpoint_text, "pulling image");
        let (repository, tag) = split_image(image);
        let mut options = CreateImageOptionsBuilder::new().from_image(repository);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        let progress = client.create_image(Some(options.build()), None, None);
        match progress.try_for_each(|_| futures::future::ready(Ok(()))).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let reason = e.to_string();
                Err(
                    match map_err(&self.endpoint_text, Action::new("pull", "image", image), e) {
                        engine_down @ Error::Unavailable { .. } => engine_down,
                        _ => Error::unavailable(format!("image {image:?}"), format!("pull failed: {reason}")),
                    },
                )
            }
        }
    }
}

/// `repo:tag` → (`repo`, `tag`); without a tag, `latest`. A digest reference is pulled
/// as it is: the engine reads the digest from `fromImage`.
fn split_image(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
        _ => (image, Some("latest")),
    }
}

/// The environment as the engine wants it: `KEY=value`.
pub(crate) fn env_list(env: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Labels as the engine's models want them.
pub(crate) fn label_map(labels: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
    labels.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_repository_and_tag() {
        assert_eq!(split_image("busybox"), ("busybox", Some("latest")));
        assert_eq!(
            split_image("poolmanager/testnode:1.2"),
            ("poolmanager/testnode", Some("1.2"))
        );
        assert_eq!(
            split_image("registry:5000/team/app"),
            ("registry:5000/team/app", Some("latest"))
        );
        assert_eq!(
            split_image("registry:5000/app:v1"),
            ("registry:5000/app", Some("v1"))
        );
        assert_eq!(split_image("app@sha256:abc"), ("app@sha256:abc", None));
    }
}

//! The raw engine of the Docker driver: the shared [`Engine`] client plus the
//! container and image requests the driver makes, and what a listed container says
//! about its node.

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerSummaryHealthStatusEnum,
    ContainerSummaryStateEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures::TryStreamExt;
use poolcore::driver::{LABEL_CLUSTER, LABEL_NODE};
use poolcore::{Error, Host, HostKind, NodeState, Result};
use poolcore_engine::{has_status, Action, Engine, LabelFilter};

use crate::config::DockerConfig;

/// One Docker engine.
#[derive(Debug)]
pub(crate) struct Daemon {
    engine: Engine,
}

impl Daemon {
    /// The engine of `host`, at its endpoint and with its TLS settings; an endpoint the
    /// engine client cannot use, or a wrong TLS setting, is [`Error::Invalid`].
    pub(crate) fn new(host: &Host, config: &DockerConfig) -> Result<Self> {
        Ok(Daemon {
            engine: Engine::for_host(HostKind::Docker, host, config.request_timeout())?,
        })
    }

    /// The shared engine client: probe, networks.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Every container, running or not, carrying the labels of `filter`.
    pub(crate) async fn containers(&self, filter: &LabelFilter) -> Result<Vec<ContainerSummary>> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filter.to_filters())
            .build();
        let client = self.engine.client().await?;
        let fail = self
            .engine
            .fail(Action::new("list", "containers", filter.to_string()));
        client.list_containers(Some(options)).await.map_err(fail)
    }

    /// Creates a container named `name`; returns its id. One that exists is
    /// [`Error::Conflict`]. When the engine refuses it for want of the image, the
    /// image is pulled and the creation tried once more, as `docker run` does: no
    /// image lookup on the way of every creation.
    pub(crate) async fn create_container(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let client = self.engine.client().await?;
        let fail = self.engine.fail(Action::new("create", "container", name));
        let image = body.image.clone().unwrap_or_default();
        let created = match client.create_container(Some(options.clone()), body.clone()).await {
            // Another missing object (the network) is no reason to pull or try again.
            Err(e) if has_status(&e, 404) && self.pull_if_missing(&image).await? => {
                client.create_container(Some(options), body).await
            }
            created => created,
        };
        Ok(created.map_err(fail)?.id)
    }

    /// Inspects a container by id or name.
    pub(crate) async fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse> {
        let client = self.engine.client().await?;
        let fail = self.engine.fail(Action::new("inspect", "container", id));
        client.inspect_container(id, None).await.map_err(fail)
    }

    /// Starts a container; one that runs already is fine.
    pub(crate) async fn start_container(&self, id: &str) -> Result<()> {
        let client = self.engine.client().await?;
        let fail = self.engine.fail(Action::new("start", "container", id));
        client.start_container(id, None).await.map_err(fail)
    }

    /// Stops a container, killing it after `timeout` seconds; one stopped already is fine.
    pub(crate) async fn stop_container(&self, id: &str, timeout: i32) -> Result<()> {
        let options = StopContainerOptionsBuilder::new().t(timeout).build();
        let client = self.engine.client().await?;
        let fail = self.engine.fail(Action::new("stop", "container", id));
        client.stop_container(id, Some(options)).await.map_err(fail)
    }

    /// Restarts a container (starts it, if stopped), killing it after `timeout` seconds.
    pub(crate) async fn restart_container(&self, id: &str, timeout: i32) -> Result<()> {
        let options = RestartContainerOptionsBuilder::new().t(timeout).build();
        let client = self.engine.client().await?;
        let fail = self.engine.fail(Action::new("restart", "container", id));
        client.restart_container(id, Some(options)).await.map_err(fail)
    }

    /// Kills and removes a container with its anonymous volumes; one already gone is fine.
    pub(crate) async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
        let client = self.engine.client().await?;
        match client.remove_container(id, Some(options)).await {
            // 409: another caller is removing it already.
            Err(e) if has_status(&e, 404) || has_status(&e, 409) => Ok(()),
            other => other.map_err(self.engine.fail(Action::new("remove", "container", id))),
        }
    }

    /// Pulls `image` when the engine does not have it; whether it did.
    async fn pull_if_missing(&self, image: &str) -> Result<bool> {
        let client = self.engine.client().await?;
        match client.inspect_image(image).await {
            Ok(_) => Ok(false),
            Err(e) if has_status(&e, 404) => self.pull(client, image).await.map(|()| true),
            Err(e) => Err(self.engine.fail(Action::new("inspect", "image", image))(e)),
        }
    }

    /// Pulls `image`, draining the progress stream. A failed pull names the image.
    async fn pull(&self, client: &Docker, image: &str) -> Result<()> {
        tracing::info!(image, endpoint = %self.engine.endpoint(), "pulling image");
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
                Err(match self.engine.fail(Action::new("pull", "image", image))(e) {
                    engine_down @ Error::Unavailable { .. } => engine_down,
                    _ => Error::unavailable(format!("image {image:?}"), format!("pull failed: {reason}")),
                })
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

/// Value of `label` on a listed container.
fn label<'a>(summary: &'a ContainerSummary, label: &str) -> Option<&'a str> {
    summary.labels.as_ref()?.get(label).map(String::as_str)
}

/// Node name of a listed container: its node label, else its own name.
fn node_name(summary: &ContainerSummary) -> String {
    if let Some(node) = label(summary, LABEL_NODE) {
        return node.to_owned();
    }
    let name = summary.names.as_ref().and_then(|names| names.first());
    name.map(|n| n.trim_start_matches('/').to_owned())
        .or_else(|| summary.id.clone())
        .unwrap_or_default()
}

/// Health of a running container. Engines before API 1.50 do not list it, but say it
/// in the status text: `Up 3 minutes (unhealthy)`.
fn health(summary: &ContainerSummary) -> ContainerSummaryHealthStatusEnum {
    if let Some(status) = summary.health.as_ref().and_then(|h| h.status) {
        return status;
    }
    let text = summary.status.as_deref().unwrap_or_default();
    if text.contains("(unhealthy)") {
        ContainerSummaryHealthStatusEnum::UNHEALTHY
    } else if text.contains("(health: starting)") {
        ContainerSummaryHealthStatusEnum::STARTING
    } else {
        ContainerSummaryHealthStatusEnum::NONE
    }
}

/// State of a node from its listed container.
pub(crate) fn node_state(summary: &ContainerSummary) -> NodeState {
    use ContainerSummaryStateEnum as S;
    let text = summary.status.clone().unwrap_or_default();
    match summary.state.unwrap_or(S::EMPTY) {
        S::RUNNING => match health(summary) {
            ContainerSummaryHealthStatusEnum::UNHEALTHY => NodeState::Unhealthy(text),
            ContainerSummaryHealthStatusEnum::STARTING => NodeState::Starting,
            _ => NodeState::Running,
        },
        // A paused node answers nobody, though its process lives.
        S::PAUSED => NodeState::Unhealthy(text),
        S::CREATED | S::RESTARTING | S::EMPTY => NodeState::Starting,
        S::EXITED | S::DEAD | S::REMOVING | S::STOPPING => NodeState::Exited(text),
    }
}

/// Cluster id, node name and state of each listed container that carries a cluster
/// label, for [`group_clusters`](poolcore_engine::group_clusters).
pub(crate) fn container_nodes(
    containers: &[ContainerSummary],
) -> impl Iterator<Item = (String, String, NodeState)> + '_ {
    containers.iter().filter_map(|summary| {
        let id = label(summary, LABEL_CLUSTER)?;
        Some((id.to_owned(), node_name(summary), node_state(summary)))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::ContainerSummaryHealth;
    use poolcore_engine::group_clusters;

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

    fn container(
        state: ContainerSummaryStateEnum,
        status: &str,
        labels: &[(&str, &str)],
    ) -> ContainerSummary {
        ContainerSummary {
            id: Some("c0ffee".into()),
            names: Some(vec!["/pm-c-vp0-1234".into()]),
            state: Some(state),
            status: Some(status.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn node_states_follow_the_engine() {
        use ContainerSummaryStateEnum as S;
        let state = |s, text| node_state(&container(s, text, &[]));
        assert_eq!(state(S::RUNNING, "Up 2 minutes"), NodeState::Running);
        assert_eq!(state(S::RUNNING, "Up 2 minutes (healthy)"), NodeState::Running);
        assert_eq!(
            state(S::RUNNING, "Up 1 second (health: starting)"),
            NodeState::Starting
        );
        assert_eq!(
            state(S::RUNNING, "Up 2 minutes (unhealthy)"),
            NodeState::Unhealthy("Up 2 minutes (unhealthy)".into())
        );
        assert_eq!(state(S::CREATED, "Created"), NodeState::Starting);
        assert_eq!(
            state(S::RESTARTING, "Restarting (1) 1 second ago"),
            NodeState::Starting
        );
        assert_eq!(
            state(S::EXITED, "Exited (3) 5 seconds ago"),
            NodeState::Exited("Exited (3) 5 seconds ago".into())
        );
        assert!(matches!(state(S::DEAD, "Dead"), NodeState::Exited(_)));
    }

    #[test]
    fn listed_health_wins_over_status_text() {
        let mut summary = container(ContainerSummaryStateEnum::RUNNING, "Up 2 minutes", &[]);
        summary.health = Some(ContainerSummaryHealth {
            status: Some(ContainerSummaryHealthStatusEnum::UNHEALTHY),
            ..Default::default()
        });
        assert!(matches!(node_state(&summary), NodeState::Unhealthy(_)));
    }

    #[test]
    fn listings_group_into_clusters() {
        use ContainerSummaryStateEnum as S;
        let containers = [
            container(S::RUNNING, "Up", &[(LABEL_CLUSTER, "c1"), (LABEL_NODE, "vp0")]),
            container(
                S::EXITED,
                "Exited (1)",
                &[(LABEL_CLUSTER, "c1"), (LABEL_NODE, "vp1")],
            ),
            container(S::RUNNING, "Up", &[(LABEL_CLUSTER, "c2")]),
            container(S::RUNNING, "Up", &[]),
        ];
        let networks = [
            Some(HashMap::from([(LABEL_CLUSTER.to_owned(), "c1".to_owned())])),
            Some(HashMap::from([(LABEL_CLUSTER.to_owned(), "c3".to_owned())])),
            None,
        ];
        let found = group_clusters(container_nodes(&containers), networks);
        let ids: Vec<&str> = found.iter().map(|c| c.cluster_id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2", "c3"]);
        assert!(found[0].network && !found[1].network && found[2].network);
        assert_eq!(found[0].nodes["vp0"], NodeState::Running);
        assert!(matches!(found[0].nodes["vp1"], NodeState::Exited(_)));
        // Without a node label the container's own name stands in.
        assert!(found[1].nodes.contains_key("pm-c-vp0-1234"));
        assert!(found[2].nodes.is_empty());
    }
}

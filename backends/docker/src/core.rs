//! The container and image requests of the Docker driver, on the shared [`Engine`].

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures::TryStreamExt;
use poolcore::{Error, Result};

use crate::engine::{has_status, Action, Engine, LabelFilter};

impl Engine {
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

    /// Stops a container, killing it after `timeout` seconds; one stopped already is fine.
    pub(crate) async fn stop_container(&self, id: &str, timeout: i32) -> Result<()> {
        let options = StopContainerOptionsBuilder::new().t(timeout).build();
        let client = self.client().await?;
        let fail = self.fail(Action::new("stop", "container", id));
        client.stop_container(id, Some(options)).await.map_err(fail)
    }

    /// Restarts a container (starts it, if stopped), killing it after `timeout` seconds.
    pub(crate) async fn restart_container(&self, id: &str, timeout: i32) -> Result<()> {
        let options = RestartContainerOptionsBuilder::new().t(timeout).build();
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
            Err(e) => Err(self.fail(Action::new("inspect", "image", image))(e)),
        }
    }

    /// Pulls `image`, draining the progress stream. A failed pull names the image.
    async fn pull(&self, client: &Docker, image: &str) -> Result<()> {
        tracing::info!(image, endpoint = %self.endpoint(), "pulling image");
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
                Err(match self.fail(Action::new("pull", "image", image))(e) {
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

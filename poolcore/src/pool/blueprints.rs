//! Blueprint operations: create, get, list, delete.

use std::collections::BTreeSet;

use chrono::Utc;
use tracing::instrument;

use super::Pool;
use crate::error::{Error, Result};
use crate::model::{validate_name, Blueprint, ClusterFilter, Labels, NodeSpec, Page};

/// What an operator gives to add a blueprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlueprint {
    /// Unique name.
    pub name: String,
    /// Labels users filter on.
    pub labels: Labels,
    /// The nodes; at least one, with unique names.
    pub nodes: Vec<NodeSpec>,
}

/// Most nodes a blueprint may have.
pub const MAX_NODES: usize = 64;

fn validate_nodes(nodes: &[NodeSpec]) -> Result<()> {
    if nodes.is_empty() {
        return Err(Error::invalid("nodes", "a blueprint needs at least one node"));
    }
    if nodes.len() > MAX_NODES {
        return Err(Error::invalid(
            "nodes",
            format!("{} nodes is more than {MAX_NODES}", nodes.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for node in nodes {
        validate_name("node name", &node.name)?;
        if !seen.insert(node.name.as_str()) {
            return Err(Error::invalid(
                "nodes",
                format!("node name {:?} is used twice", node.name),
            ));
        }
        if node.image.trim().is_empty() || node.image.contains(char::is_whitespace) {
            return Err(Error::invalid(
                "image",
                format!("node {:?} has no valid image ({:?})", node.name, node.image),
            ));
        }
        for port_name in node.ports.keys() {
            validate_name("port name", port_name)?;
        }
        for key in node.env.keys() {
            if key.is_empty() || key.contains('=') {
                return Err(Error::invalid("env", format!("{key:?} is not a variable name")));
            }
        }
        if let Some(health) = &node.health {
            if health.command.trim().is_empty() || health.interval_seconds == 0 {
                return Err(Error::invalid(
                    "health",
                    format!("node {:?} needs a command and an interval above 0", node.name),
                ));
            }
        }
    }
    Ok(())
}

impl Pool {
    /// Adds a blueprint. A taken name is [`Error::Conflict`].
    #[instrument(skip(self, new), fields(blueprint = %new.name))]
    pub async fn create_blueprint(&self, new: NewBlueprint) -> Result<Blueprint> {
        validate_name("name", &new.name)?;
        validate_nodes(&new.nodes)?;
        let blueprint = Blueprint {
            name: new.name,
            labels: new.labels,
            nodes: new.nodes,
            created_at: Utc::now(),
        };
        self.store().insert_blueprint(&blueprint).await?;
        Ok(blueprint)
    }

    /// The blueprint called `name`.
    pub async fn blueprint(&self, name: &str) -> Result<Blueprint> {
        self.store()
            .get_blueprint(name)
            .await?
            .ok_or_else(|| Error::not_found("blueprint", name))
    }

    /// Every blueprint, by name.
    pub async fn blueprints(&self) -> Result<Vec<Blueprint>> {
        self.store().list_blueprints().await
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
        Ok(())
    }
}

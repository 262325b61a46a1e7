//! Labels on the engine's objects: filters that find them, and what they tell back.
//!
//! Labels are the truth on the host: the driver never keeps state of its own, so every
//! call finds its containers and networks again by these labels.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use bollard::models::{ContainerSummary, ContainerSummaryHealthStatusEnum, ContainerSummaryStateEnum};
use poolcore::driver::{LABEL_CLUSTER, LABEL_HOST, LABEL_NODE};
use poolcore::{NodeSpec, NodeState, ObservedCluster};

/// Prefix of the labels that record a node's named ports: `poolmanager.port.rest=7050/tcp`.
///
/// Start and restart read the endpoints back without the blueprint, so the container
/// itself says which port is which.
const LABEL_PORT_PREFIX: &str = "poolmanager.port.";

/// A label filter for the engine's listings (containers, networks, services, tasks);
/// all its labels must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter(Vec<String>);

impl LabelFilter {
    /// Objects of one cluster.
    pub fn cluster(cluster_id: &str) -> Self {
        LabelFilter(vec![format!("{LABEL_CLUSTER}={cluster_id}")])
    }

    /// Objects of every cluster of one host.
    pub fn host(host_id: &str) -> Self {
        LabelFilter(vec![format!("{LABEL_HOST}={host_id}")])
    }

    /// Narrowed to one node's container or service, when `node` is given.
    pub fn node(mut self, node: Option<&str>) -> Self {
        if let Some(node) = node {
            self.0.push(format!("{LABEL_NODE}={node}"));
        }
        self
    }

    /// The `filters` query parameter of the engine's listings.
    pub fn to_filters(&self) -> HashMap<&'static str, Vec<String>> {
        HashMap::from([("label", self.0.clone())])
    }
}

impl fmt::Display for LabelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// Labels recording `node`'s named ports.
pub(crate) fn port_labels(node: &NodeSpec) -> impl Iterator<Item = (String, String)> + '_ {
    node.ports
        .iter()
        .map(|(name, spec)| (format!("{LABEL_PORT_PREFIX}{name}"), spec.to_string()))
}

/// The named ports recorded in a container's or service's labels: port name → `80/tcp`.
pub fn ports_from_labels(labels: &HashMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter_map(|(key, spec)| Some((key.strip_prefix(LABEL_PORT_PREFIX)?.to_owned(), spec.clone())))
        .collect()
}

/// Value of `label` on a listed container.
fn label<'a>(summary: &'a ContainerSummary, label: &str) -> Option<&'a str> {
    summary.labels.as_ref()?.get(label).map(String::as_str)
}

/// Node name of a listed container: its node label, else its own name.
pub(crate) fn node_name(summary: &ContainerSummary) -> String {
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

/// Clusters found in one listing of nodes (containers or services) and one of
/// networks. `nodes` gives each labelled node's cluster id, node name and state.
pub fn group_clusters(
    nodes: impl IntoIterator<Item = (String, String, NodeState)>,
    network_labels: impl IntoIterator<Item = Option<HashMap<String, String>>>,
) -> Vec<ObservedCluster> {
    let mut clusters: BTreeMap<String, ObservedCluster> = BTreeMap::new();
    for (id, node, state) in nodes {
        let cluster = clusters.entry(id.clone()).or_insert_with(|| observed(&id));
        cluster.nodes.insert(node, state);
    }
    for labels in network_labels {
        let Some(id) = labels.as_ref().and_then(|l| l.get(LABEL_CLUSTER)) else {
            continue;
        };
        clusters.entry(id.clone()).or_insert_with(|| observed(id)).network = true;
    }
    clusters.into_values().collect()
}

/// Cluster id, node name and state of each listed container that carries a cluster
/// label, for [`group_clusters`].
pub(crate) fn container_nodes(
    containers: &[ContainerSummary],
) -> impl Iterator<Item = (String, String, NodeState)> + '_ {
    containers.iter().filter_map(|summary| {
        let id = label(summary, LABEL_CLUSTER)?;
        Some((id.to_owned(), node_name(summary), node_state(summary)))
    })
}

/// True when `labels` mark an object as node `node` of the cluster `cluster_id`.
pub fn is_node_of(labels: Option<&HashMap<String, String>>, cluster_id: &str, node: &str) -> bool {
    labels.is_some_and(|l| {
        l.get(LABEL_CLUSTER).map(String::as_str) == Some(cluster_id)
            && l.get(LABEL_NODE).map(String::as_str) == Some(node)
    })
}

fn observed(cluster_id: &str) -> ObservedCluster {
    ObservedCluster {
        cluster_id: cluster_id.to_owned(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerSummaryHealth;

    use super::*;

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
    fn port_labels_round_trip() {
        let node = NodeSpec {
            name: "vp0".into(),
            image: "img".into(),
            command: vec![],
            env: Default::default(),
            ports: [
                ("rest".into(), "7050/tcp".parse().unwrap()),
                ("dns".into(), "53/udp".parse().unwrap()),
            ]
            .into(),
            health: None,
        };
        let labels: HashMap<String, String> = port_labels(&node)
            .chain([(LABEL_NODE.to_owned(), "vp0".to_owned())])
            .collect();
        let ports = ports_from_labels(&labels);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports["rest"], "7050/tcp");
        assert_eq!(ports["dns"], "53/udp");
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

    #[test]
    fn ownership_is_read_from_cluster_and_node_labels() {
        let labels = HashMap::from([
            (LABEL_CLUSTER.to_owned(), "c1".to_owned()),
            (LABEL_NODE.to_owned(), "vp0".to_owned()),
        ]);
        assert!(is_node_of(Some(&labels), "c1", "vp0"));
        assert!(!is_node_of(Some(&labels), "c1", "vp1"));
        assert!(!is_node_of(Some(&labels), "c2", "vp0"));
        assert!(!is_node_of(None, "c1", "vp0"));
    }

    #[test]
    fn filters_are_label_filters() {
        let filter = LabelFilter::cluster("c1").node(Some("vp0"));
        let filters = filter.to_filters();
        assert_eq!(
            filters["label"],
            ["poolmanager.cluster=c1", "poolmanager.node=vp0"]
        );
        assert_eq!(
            LabelFilter::host("h").node(None).to_string(),
            "poolmanager.host=h"
        );
    }
}

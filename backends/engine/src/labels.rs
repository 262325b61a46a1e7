//! Labels on the engine's objects: filters that find them, and what they tell back.
//!
//! Labels are the truth on the host: the drivers never keep state of their own, so
//! every call finds its containers, services and networks again by these labels.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use poolcore::driver::{LABEL_CLUSTER, LABEL_HOST, LABEL_NODE};
use poolcore::{NodeSpec, NodeState, ObservedCluster};

/// Prefix of the labels that record a node's named ports: `poolmanager.port.rest=7050/tcp`.
///
/// Start and restart read the endpoints back without the blueprint, so the container
/// (or service) itself says which port is which.
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

/// The cluster id in an object's labels.
pub fn cluster_of(labels: Option<&HashMap<String, String>>) -> Option<String> {
    labels?.get(LABEL_CLUSTER).cloned()
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
    use super::*;

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
            readiness: None,
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
        let node = |cluster: &str, node: &str, state| (cluster.to_owned(), node.to_owned(), state);
        let nodes = [
            node("c1", "vp0", NodeState::Running),
            node("c1", "vp1", NodeState::Exited("Exited (1)".into())),
            node("c2", "vp0", NodeState::Starting),
        ];
        let networks = [
            Some(HashMap::from([(LABEL_CLUSTER.to_owned(), "c1".to_owned())])),
            Some(HashMap::from([(LABEL_CLUSTER.to_owned(), "c3".to_owned())])),
            Some(HashMap::new()),
            None,
        ];
        let found = group_clusters(nodes, networks);
        let ids: Vec<&str> = found.iter().map(|c| c.cluster_id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2", "c3"]);
        assert!(found[0].network && !found[1].network && found[2].network);
        assert_eq!(found[0].nodes["vp0"], NodeState::Running);
        assert!(matches!(found[0].nodes["vp1"], NodeState::Exited(_)));
        assert!(found[2].nodes.is_empty(), "a network alone is still a cluster");
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
        assert_eq!(cluster_of(Some(&labels)).as_deref(), Some("c1"));
        assert_eq!(cluster_of(Some(&HashMap::new())), None);
        assert_eq!(cluster_of(None), None);
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

//! The parts of a node's spec that a container (Docker driver) and a service (Swarm
//! driver) share: environment, labels, health check, in the engine's models.

use std::collections::{BTreeMap, HashMap};

use bollard::models::HealthConfig;
use poolcore::{labels_for, Cluster, HealthCheck, NodeSpec};

use crate::labels::port_labels;

/// The environment as the engine wants it: `KEY=value`.
pub fn env_list(env: &BTreeMap<String, String>) -> Vec<String> {
    env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Labels as the engine's models want them.
pub fn label_map(labels: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
    labels.into_iter().collect()
}

/// The labels of `node`'s container or service: those of [`labels_for`], plus its named
/// ports, so that start and restart read the endpoints back without the blueprint.
pub fn node_labels(cluster: &Cluster, node: &NodeSpec) -> HashMap<String, String> {
    let labels = labels_for(cluster, Some(&node.name));
    label_map(labels.into_iter().chain(port_labels(node)))
}

/// A blueprint's health check as the engine runs it: through the shell, durations in
/// nanoseconds.
pub fn health_config(check: &HealthCheck) -> HealthConfig {
    const NANOS_PER_SEC: i64 = 1_000_000_000;
    HealthConfig {
        test: Some(vec!["CMD-SHELL".to_owned(), check.command.clone()]),
        interval: Some(i64::from(check.interval_seconds.max(1)) * NANOS_PER_SEC),
        retries: Some(i64::from(check.retries)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use poolcore::driver::{LABEL_CLUSTER, LABEL_HOST, LABEL_NODE};

    use super::*;
    use crate::labels::{cluster_of, ports_from_labels};

    #[test]
    fn node_labels_carry_cluster_node_and_ports() {
        let cluster = Cluster::new("c", "bp", "h1");
        let node = NodeSpec {
            name: "vp0".into(),
            image: "img".into(),
            command: vec![],
            env: Default::default(),
            ports: [("rest".into(), "7050/tcp".parse().unwrap())].into(),
            health: None,
            readiness: None,
        };
        let labels = node_labels(&cluster, &node);
        assert_eq!(labels[LABEL_CLUSTER], cluster.id);
        assert_eq!(labels[LABEL_HOST], "h1");
        assert_eq!(labels[LABEL_NODE], "vp0");
        assert_eq!(ports_from_labels(&labels)["rest"], "7050/tcp");
        assert_eq!(cluster_of(Some(&labels)), Some(cluster.id.clone()));
    }

    #[test]
    fn health_checks_run_in_the_shell_in_nanoseconds() {
        let check = HealthCheck {
            command: "nc -z 127.0.0.1 80".into(),
            interval_seconds: 0,
            retries: 2,
        };
        let config = health_config(&check);
        assert_eq!(config.test.unwrap(), ["CMD-SHELL", "nc -z 127.0.0.1 80"]);
        assert_eq!(config.interval, Some(1_000_000_000), "at least a second");
        assert_eq!(config.retries, Some(2));
    }
}

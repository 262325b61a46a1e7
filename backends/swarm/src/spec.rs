//! A blueprint node as a swarm service: one replica on the cluster's overlay network,
//! its ports published in host mode, its name a DNS alias there.
//!
//! A module of its own because a service spec is the one thing the Docker driver has
//! no counterpart of (a container body is a few lines there): building and changing it
//! (replicas, generation, pinned ports) are pure functions, tested without a swarm.

use std::collections::{BTreeMap, BTreeSet};

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    TaskSpec, TaskSpecContainerSpec, TaskSpecLogDriver, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use poolcore::model::Protocol;
use poolcore::{object_name, Cluster, LogConfig, NodeSpec, PortSpec};
use poolcore_engine::{env_list, health_config, label_map, node_labels};

use crate::config::SwarmConfig;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Pause before the swarm restarts a failed task.
const RESTART_DELAY_SECS: i64 = 1;

/// Window in which [`SwarmConfig::restart_attempts`] are counted: a node that crashes
/// now and then is restarted each time, one that crashes in a loop is given up on.
const RESTART_WINDOW_SECS: i64 = 60;

/// The service that runs `node` of `cluster` on the overlay network `network_id`.
///
/// - Ports are published in host mode on a port the engine picks (`PublishedPort`
///   unset): the ingress routing mesh needs IPVS, which not every kernel has, and host
///   mode also spares a hop. The endpoint mode is DNS round robin for the same reason.
/// - The node's name is a DNS alias on the network, so nodes reach each other by name.
/// - The command replaces the image's `CMD` (the service's `Args`), as with the Docker
///   driver.
pub(crate) fn service_spec(
    cluster: &Cluster,
    node: &NodeSpec,
    network_id: &str,
    log: Option<&LogConfig>,
    config: &SwarmConfig,
) -> ServiceSpec {
    let labels = node_labels(cluster, node);
    let container = TaskSpecContainerSpec {
        image: Some(node.image.clone()),
        args: (!node.command.is_empty()).then(|| node.command.clone()),
        env: Some(env_list(&node.env)),
        labels: Some(labels.clone()),
        health_check: node.health.as_ref().map(health_config),
        stop_grace_period: Some(i64::from(config.stop_grace_secs) * NANOS_PER_SEC),
        ..Default::default()
    };
    let task = TaskSpec {
        container_spec: Some(container),
        restart_policy: Some(restart_policy(config.restart_attempts)),
        networks: Some(vec![NetworkAttachmentConfig {
            target: Some(network_id.to_owned()),
            aliases: Some(vec![node.name.clone()]),
            ..Default::default()
        }]),
        log_driver: log.filter(|l| !l.driver.is_empty()).map(|l| TaskSpecLogDriver {
            name: Some(l.driver.clone()),
            options: Some(label_map(l.options.clone())),
        }),
        force_update: Some(0),
        ..Default::default()
    };
    ServiceSpec {
        name: Some(object_name(cluster, Some(&node.name))),
        labels: Some(labels),
        task_template: Some(task),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: Some(endpoint_spec(node)),
        ..Default::default()
    }
}

/// Restart a failed task `attempts` times a minute, a second apart; `0` never.
fn restart_policy(attempts: u32) -> TaskSpecRestartPolicy {
    if attempts == 0 {
        // The swarm reads 0 attempts as "no limit".
        return TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
            ..Default::default()
        };
    }
    TaskSpecRestartPolicy {
        condition: Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
        delay: Some(RESTART_DELAY_SECS * NANOS_PER_SEC),
        max_attempts: Some(i64::from(attempts)),
        window: Some(RESTART_WINDOW_SECS * NANOS_PER_SEC),
    }
}

/// DNS round robin, and each distinct port of the node published in host mode on a
/// port the engine picks.
fn endpoint_spec(node: &NodeSpec) -> EndpointSpec {
    let ports: BTreeSet<&PortSpec> = node.ports.values().collect();
    let ports: Vec<EndpointPortConfig> = ports
        .into_iter()
        .map(|port| EndpointPortConfig {
            protocol: Some(match port.protocol {
                Protocol::Tcp => EndpointPortConfigProtocolEnum::TCP,
                Protocol::Udp => EndpointPortConfigProtocolEnum::UDP,
            }),
            target_port: Some(i64::from(port.port)),
            published_port: None,
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        })
        .collect();
    EndpointSpec {
        mode: Some(EndpointSpecModeEnum::DNSRR),
        ports: (!ports.is_empty()).then_some(ports),
    }
}

/// Replicas the service asks for.
pub(crate) fn replicas(spec: &ServiceSpec) -> i64 {
    let replicated = spec.mode.as_ref().and_then(|m| m.replicated.as_ref());
    replicated.and_then(|r| r.replicas).unwrap_or(1)
}

/// The generation of the service's tasks: bumped by every start and restart, and
/// copied into each task's spec, so the tasks of the latest one are told from older
/// ones still shutting down.
pub(crate) fn generation(spec: &ServiceSpec) -> u64 {
    spec.task_template
        .as_ref()
        .and_then(|t| t.force_update)
        .unwrap_or(0)
}

/// Asks for one replica, of a new generation: the swarm replaces the node's task (a
/// restart) or makes a new one (a start).
pub(crate) fn start_anew(spec: &mut ServiceSpec) {
    set_replicas(spec, 1);
    let task = spec.task_template.get_or_insert_with(Default::default);
    task.force_update = Some(task.force_update.unwrap_or(0).wrapping_add(1));
}

/// Publishes each port of `pinned` (by target port and protocol) on its given host
/// port instead of one the engine picks.
pub(crate) fn pin_ports(spec: &mut ServiceSpec, pinned: &BTreeMap<PortSpec, u16>) {
    let ports = spec.endpoint_spec.as_mut().and_then(|e| e.ports.as_mut());
    for port in ports.into_iter().flatten() {
        let protocol = match port.protocol {
            Some(EndpointPortConfigProtocolEnum::UDP) => Protocol::Udp,
            _ => Protocol::Tcp,
        };
        let target = port.target_port.and_then(|p| u16::try_from(p).ok());
        if let Some(host_port) = target.and_then(|port| pinned.get(&PortSpec { port, protocol })) {
            port.published_port = Some(i64::from(*host_port));
        }
    }
}

/// Asks for `replicas` tasks; `0` stops the node and keeps the service.
pub(crate) fn set_replicas(spec: &mut ServiceSpec, replicas: i64) {
    let mode = spec.mode.get_or_insert_with(Default::default);
    mode.replicated.get_or_insert_with(Default::default).replicas = Some(replicas);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use poolcore::driver::{LABEL_CLUSTER, LABEL_NODE};
    use poolcore::HealthCheck;

    use super::*;

    fn node() -> NodeSpec {
        NodeSpec {
            name: "vp0".into(),
            image: "poolmanager/testnode:latest".into(),
            command: vec!["sh".into(), "-c".into(), "exec httpd -f -p 80".into()],
            env: BTreeMap::from([("GREETING".into(), "hi".into())]),
            ports: BTreeMap::from([
                ("rest".into(), "7050/tcp".parse().unwrap()),
                ("again".into(), "7050/tcp".parse().unwrap()),
                ("dns".into(), "53/udp".parse().unwrap()),
            ]),
            health: Some(HealthCheck {
                command: "true".into(),
                interval_seconds: 2,
                retries: 3,
            }),
            readiness: None,
        }
    }

    #[test]
    fn a_node_becomes_one_labelled_replica_on_the_network() {
        let cluster = Cluster::new("c", "bp", "h1");
        let log = LogConfig {
            driver: "json-file".into(),
            options: BTreeMap::from([("max-size".into(), "1m".into())]),
        };
        let config = SwarmConfig::new().with_stop_grace(std::time::Duration::from_secs(1));
        let spec = service_spec(&cluster, &node(), "net-id", Some(&log), &config);

        assert_eq!(
            spec.name.as_deref(),
            Some(object_name(&cluster, Some("vp0")).as_str())
        );
        let labels = spec.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_CLUSTER], cluster.id);
        assert_eq!(labels[LABEL_NODE], "vp0");
        assert_eq!(replicas(&spec), 1);
        assert_eq!(generation(&spec), 0);

        let task = spec.task_template.as_ref().unwrap();
        let container = task.container_spec.as_ref().unwrap();
        assert_eq!(container.image.as_deref(), Some("poolmanager/testnode:latest"));
        assert_eq!(container.command, None, "the entrypoint stays the image's");
        assert_eq!(container.args.as_ref().unwrap()[0], "sh");
        assert_eq!(container.env.as_ref().unwrap(), &["GREETING=hi"]);
        assert_eq!(container.labels.as_ref(), Some(labels));
        assert_eq!(container.stop_grace_period, Some(NANOS_PER_SEC));
        let health = container.health_check.as_ref().unwrap();
        assert_eq!(health.interval, Some(2 * NANOS_PER_SEC));

        let network = &task.networks.as_ref().unwrap()[0];
        assert_eq!(network.target.as_deref(), Some("net-id"));
        assert_eq!(network.aliases.as_ref().unwrap(), &["vp0"]);
        let driver = task.log_driver.as_ref().unwrap();
        assert_eq!(driver.name.as_deref(), Some("json-file"));
        assert_eq!(driver.options.as_ref().unwrap()["max-size"], "1m");
        let restart = task.restart_policy.as_ref().unwrap();
        assert_eq!(
            restart.condition,
            Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE)
        );
        assert_eq!(restart.max_attempts, Some(2));
    }

    #[test]
    fn ports_are_published_in_host_mode_once_each() {
        let cluster = Cluster::new("c", "bp", "h1");
        let spec = service_spec(&cluster, &node(), "net", None, &SwarmConfig::new());
        let endpoint = spec.endpoint_spec.unwrap();
        assert_eq!(endpoint.mode, Some(EndpointSpecModeEnum::DNSRR));
        let ports = endpoint.ports.unwrap();
        assert_eq!(
            ports.len(),
            2,
            "7050/tcp is named twice but published once: {ports:?}"
        );
        for port in &ports {
            assert_eq!(port.publish_mode, Some(EndpointPortConfigPublishModeEnum::HOST));
            assert_eq!(port.published_port, None, "the engine picks the host port");
        }
        assert_eq!(ports[0].target_port, Some(53));
        assert_eq!(ports[0].protocol, Some(EndpointPortConfigProtocolEnum::UDP));

        let mut quiet = node();
        quiet.ports.clear();
        let spec = service_spec(&cluster, &quiet, "net", None, &SwarmConfig::new());
        assert_eq!(spec.endpoint_spec.unwrap().ports, None);
        assert!(spec.task_template.unwrap().log_driver.is_none());
    }

    #[test]
    fn recorded_ports_are_pinned_by_port_and_protocol() {
        let cluster = Cluster::new("c", "bp", "h1");
        let mut spec = service_spec(&cluster, &node(), "net", None, &SwarmConfig::new());
        let pinned = BTreeMap::from([
            ("7050/tcp".parse().unwrap(), 31000),
            ("53/tcp".parse().unwrap(), 31001),
        ]);
        pin_ports(&mut spec, &pinned);
        let ports = spec.endpoint_spec.unwrap().ports.unwrap();
        let published: Vec<_> = ports.iter().map(|p| (p.target_port, p.published_port)).collect();
        assert_eq!(
            published,
            [(Some(53), None), (Some(7050), Some(31000))],
            "53/udp is not 53/tcp"
        );
    }

    #[test]
    fn starting_anew_bumps_the_generation_and_scales_to_one() {
        let cluster = Cluster::new("c", "bp", "h1");
        let mut spec = service_spec(&cluster, &node(), "net", None, &SwarmConfig::new());
        set_replicas(&mut spec, 0);
        assert_eq!(replicas(&spec), 0);
        start_anew(&mut spec);
        assert_eq!(replicas(&spec), 1);
        assert_eq!(generation(&spec), 1);
        start_anew(&mut spec);
        assert_eq!(generation(&spec), 2);
    }

    #[test]
    fn zero_restart_attempts_means_never_not_forever() {
        let policy = restart_policy(0);
        assert_eq!(policy.condition, Some(TaskSpecRestartPolicyConditionEnum::NONE));
        assert_eq!(policy.max_attempts, None);
    }
}

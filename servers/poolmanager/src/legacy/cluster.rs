//! A cluster as the original PoolManager showed it: `api_url`, `daemon_url`, the
//! `consensus_plugin`/`consensus_mode`/`size` it was filtered on (here the blueprint's
//! labels), empty strings rather than nulls.

use std::collections::BTreeMap;

use poem_openapi::Object;
use poolcore::model::ServiceUrls;
use poolcore::{Blueprint, Cluster, ClusterStatus, Health, Host};

/// Blueprint labels the original's filters map onto.
pub const PLUGIN: &str = "consensus_plugin";
/// See [`PLUGIN`].
pub const MODE: &str = "consensus_mode";
/// See [`PLUGIN`].
pub const SIZE: &str = "size";

/// A cluster, in the original PoolManager's shape.
#[derive(Debug, Clone, Object)]
#[oai(rename = "LegacyCluster")]
pub struct LegacyCluster {
    /// Cluster id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The user holding it; empty when it is free.
    pub user_id: String,
    /// Host id.
    pub host_id: String,
    /// URL of the blueprint's API port (`api_port`, else the first named port of the
    /// first node that has one); empty while the cluster has no endpoints.
    pub api_url: String,
    /// The engine endpoint of its host (`tcp://10.0.0.1:2375`), as the original's
    /// Docker daemon URL; never credentials or TLS material.
    pub daemon_url: String,
    /// The blueprint's `consensus_plugin` label; empty without one.
    pub consensus_plugin: String,
    /// The blueprint's `consensus_mode` label; empty without one.
    pub consensus_mode: String,
    /// The blueprint's `size` label, or its number of nodes when that label is not a
    /// whole number.
    pub size: u32,
    /// `running` (ready or applied), `stopped`, or `creating`, `releasing`, `failed`,
    /// `deleting`.
    pub status: String,
    /// `OK`, `FAIL`, or empty while not inspected.
    pub health: String,
    /// Container (or Swarm service) ids, node by node.
    pub containers: Vec<String>,
    /// Port name → URL, as the original's flat `service_url`: the API node's ports,
    /// then those of the other nodes in blueprint order, where the name is not taken.
    pub service_url: BTreeMap<String, String>,
    /// Node → port name → URL, every published port (as `/api/v1` gives it).
    pub service_urls: ServiceUrls,
    /// The blueprint it was made from.
    pub blueprint: String,
    /// When it was made, RFC 3339.
    pub create_ts: String,
    /// When it was applied, RFC 3339; empty when it is free.
    pub apply_ts: String,
}

impl LegacyCluster {
    /// `cluster` with what its `host` and `blueprint` tell (each may be gone).
    pub fn new(cluster: Cluster, host: Option<&Host>, blueprint: Option<&Blueprint>) -> Self {
        let blueprint = blueprint.and_then(|b| b.at_version(cluster.blueprint_version));
        let blueprint = blueprint.as_deref();
        let label = |key| {
            blueprint
                .and_then(|b| b.labels.get(key))
                .cloned()
                .unwrap_or_default()
        };
        let nodes = blueprint.map_or(cluster.deployment.nodes.len(), |b| b.nodes.len());
        let size = label(SIZE).parse().unwrap_or(nodes as u32);
        let service_urls = cluster.service_urls();
        let order = node_order(blueprint, &service_urls);
        LegacyCluster {
            api_url: blueprint.and_then(|b| b.api_url(&cluster)).unwrap_or_default(),
            daemon_url: host.map(|h| without_credentials(&h.endpoint)).unwrap_or_default(),
            consensus_plugin: label(PLUGIN),
            consensus_mode: label(MODE),
            size,
            status: status(cluster.status).to_owned(),
            health: health(cluster.health).to_owned(),
            containers: order
                .iter()
                .filter_map(|node| cluster.deployment.nodes.get(*node))
                .map(|d| d.id.clone())
                .collect(),
            service_url: flat_urls(&order, &service_urls),
            create_ts: cluster.created_at.to_rfc3339(),
            apply_ts: cluster.applied_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            user_id: cluster.user_id.unwrap_or_default(),
            id: cluster.id,
            name: cluster.name,
            host_id: cluster.host_id,
            blueprint: cluster.blueprint,
            service_urls,
        }
    }
}

/// The original knew `running` and `stopped`; a ready or applied cluster runs.
fn status(status: ClusterStatus) -> &'static str {
    match status {
        ClusterStatus::Ready | ClusterStatus::Applied => "running",
        other => other.as_str(),
    }
}

fn health(health: Health) -> &'static str {
    match health {
        Health::Ok => "OK",
        Health::Failing => "FAIL",
        Health::Unknown => "",
    }
}

/// Nodes in the order their URLs are taken: the API node, the others in blueprint
/// order, then any the blueprint does not name.
fn node_order<'a>(blueprint: Option<&'a Blueprint>, urls: &'a ServiceUrls) -> Vec<&'a str> {
    let api = blueprint.and_then(Blueprint::api_port).map(|p| p.node);
    let mut order: Vec<&str> = Vec::new();
    let named = blueprint
        .into_iter()
        .flat_map(|b| &b.nodes)
        .map(|n| n.name.as_str());
    for node in api
        .as_deref()
        .into_iter()
        .chain(named)
        .chain(urls.keys().map(String::as_str))
    {
        if let Some((known, _)) = urls.get_key_value(node) {
            if !order.contains(&known.as_str()) {
                order.push(known);
            }
        }
    }
    order
}

fn flat_urls(order: &[&str], urls: &ServiceUrls) -> BTreeMap<String, String> {
    let mut flat = BTreeMap::new();
    for ports in order.iter().filter_map(|node| urls.get(*node)) {
        for (port, url) in ports {
            flat.entry(port.clone()).or_insert_with(|| url.clone());
        }
    }
    flat
}

/// `endpoint` without a `user:password@` part.
fn without_credentials(endpoint: &str) -> String {
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return endpoint.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => endpoint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poolcore::model::{Deployment, NodeDeployment, NodeSpec, PortRef};

    fn node(name: &str, ports: &[&str]) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            image: "x".into(),
            command: vec![],
            env: BTreeMap::new(),
            ports: ports
                .iter()
                .map(|p| (p.to_string(), "80/tcp".parse().unwrap()))
                .collect(),
            health: None,
            readiness: None,
        }
    }

    fn blueprint(size: Option<&str>) -> Blueprint {
        let mut labels = BTreeMap::from([(PLUGIN.to_owned(), "pbft".to_owned())]);
        if let Some(size) = size {
            labels.insert(SIZE.into(), size.into());
        }
        Blueprint {
            name: "bp".into(),
            labels,
            nodes: vec![
                node("vp0", &["rest", "grpc"]),
                node("vp1", &["rest"]),
                node("ca", &["ecap"]),
            ],
            api_port: Some(PortRef {
                node: "vp1".into(),
                port: "rest".into(),
            }),
            max_applied: None,
            buffer: Default::default(),
            buffer_windows: Default::default(),
            placement: Default::default(),
            release_mode: Default::default(),
            rollout: Default::default(),
            version: 1,
            version_created_at: chrono::Utc::now(),
            earlier_versions: Vec::new(),
            created_at: chrono::Utc::now(),
        }
    }

    fn deployed() -> Cluster {
        let mut cluster = Cluster::new("c", "bp", "h");
        cluster.status = ClusterStatus::Applied;
        cluster.user_id = Some("alice".into());
        cluster.deployment = Deployment {
            network_id: "n".into(),
            nodes: [
                ("vp0", &[("rest", 1), ("grpc", 2)][..]),
                ("vp1", &[("rest", 3)]),
                ("ca", &[("ecap", 4)]),
            ]
            .into_iter()
            .map(|(node, ports)| {
                let endpoints = ports
                    .iter()
                    .map(|(p, n)| (p.to_string(), format!("10.0.0.1:{n}")))
                    .collect();
                (
                    node.to_owned(),
                    NodeDeployment {
                        id: format!("id-{node}"),
                        endpoints,
                    },
                )
            })
            .collect(),
        };
        cluster
    }

    #[test]
    fn the_original_fields_come_from_blueprint_and_host() {
        let mut host = poolcore::Host {
            endpoint: "tcp://admin:s3cret@10.0.0.1:2376".into(),
            ..test_host()
        };
        let c = LegacyCluster::new(deployed(), Some(&host), Some(&blueprint(Some("4"))));
        assert_eq!(c.api_url, "http://10.0.0.1:3", "the blueprint's api_port");
        assert_eq!(c.daemon_url, "tcp://10.0.0.1:2376", "no credentials");
        assert_eq!(
            (c.consensus_plugin.as_str(), c.consensus_mode.as_str(), c.size),
            ("pbft", "", 4)
        );
        assert_eq!(
            (c.status.as_str(), c.health.as_str(), c.user_id.as_str()),
            ("running", "", "alice")
        );
        assert_eq!(c.containers, ["id-vp1", "id-vp0", "id-ca"]);
        let flat: Vec<(&str, &str)> = c
            .service_url
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            flat,
            [
                ("ecap", "http://10.0.0.1:4"),
                ("grpc", "http://10.0.0.1:2"),
                ("rest", "http://10.0.0.1:3")
            ],
            "the API node's rest wins"
        );
        host.endpoint = "unix:///var/run/docker.sock".into();
        let c = LegacyCluster::new(deployed(), Some(&host), Some(&blueprint(Some("many"))));
        assert_eq!(c.daemon_url, "unix:///var/run/docker.sock");
        assert_eq!(c.size, 3, "a size label that is no number gives the node count");
        let free = LegacyCluster::new(Cluster::new("c", "bp", "h"), None, None);
        assert_eq!(
            (
                free.user_id.as_str(),
                free.apply_ts.as_str(),
                free.api_url.as_str()
            ),
            ("", "", "")
        );
        assert_eq!(free.status, "creating");
    }

    fn test_host() -> poolcore::Host {
        poolcore::Host {
            id: "h".into(),
            name: "h".into(),
            kind: poolcore::HostKind::Docker,
            endpoint: "tcp://10.0.0.1:2375".into(),
            public_address: "10.0.0.1".into(),
            capacity: 1,
            autofill: false,
            schedulable: true,
            labels: BTreeMap::new(),
            log: None,
            tls: None,
            status: poolcore::HostStatus::Active,
            last_seen: None,
            last_error: None,
            facts: Default::default(),
            created_at: chrono::Utc::now(),
            version: 0,
        }
    }

    #[test]
    fn credentials_are_cut_from_endpoints_only_where_they_are() {
        assert_eq!(without_credentials("tcp://u:p@h:2376"), "tcp://h:2376");
        assert_eq!(without_credentials("ssh://u@h/path@x"), "ssh://h/path@x");
        assert_eq!(without_credentials("tcp://h:2375"), "tcp://h:2375");
        assert_eq!(
            without_credentials("/var/run/docker.sock"),
            "/var/run/docker.sock"
        );
    }
}

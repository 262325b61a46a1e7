//! # poolcore-rules
//!
//! The pool's rules, tested in seconds: every test in `tests/` runs a real [`Pool`] on
//! a real store — [`MemStore`] and a SQLite file — with simulated hosts
//! (`poolcore-sim`), so apply, release, renewal, capacity, fill plans and the
//! reconciler's decisions are checked without Docker. The real engines are proven
//! apart, by the driver conformance suite and the server's end-to-end tests.
//!
//! [`Rig`] is the harness: a pool, its store and its simulated engines.
//!
//! ```
//! use poolcore_rules::{Rig, StoreKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let rig = Rig::new(StoreKind::Sqlite).await;
//! rig.blueprint("fabric", &[("consensus_plugin", "pbft")]).await;
//! let host = rig.filled_host("h1", 2).await;
//! assert_eq!(rig.pool.clusters(&Default::default(), Default::default()).await.unwrap().total, 2);
//! # let _ = host;
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use poolcore::{
    ApplyRequest, Blueprint, Cluster, ClusterFilter, Host, HostKind, LeaseRecord, MemStore, NewBlueprint,
    NewHost, NodeSpec, Operation, OperationFilter, Page, Pool, PoolConfig, Store,
};
use poolcore_sim::{SimConfig, SimConnector, SimEngine};
use poolcore_sqlite::SqliteStore;

/// Which store a rig keeps its state in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// [`MemStore`].
    Memory,
    /// A SQLite file in a temp dir.
    Sqlite,
}

/// Every store kind: rule tests run on each.
pub const STORES: [StoreKind; 2] = [StoreKind::Memory, StoreKind::Sqlite];

/// A pool on a store, with simulated engines that serve no ports and take no time.
pub struct Rig {
    /// The pool under test.
    pub pool: Pool,
    /// Its store, to look under the pool.
    pub store: Arc<dyn Store>,
    /// The simulated engines (clones share them with the pool's connector).
    pub sim: SimConnector,
    /// Which store it is, for messages.
    pub kind: StoreKind,
    _dir: Option<tempfile::TempDir>,
}

impl Rig {
    /// A rig with the pool's default config.
    pub async fn new(kind: StoreKind) -> Rig {
        Rig::with_config(kind, PoolConfig::default()).await
    }

    /// A rig with `config`.
    pub async fn with_config(kind: StoreKind, config: PoolConfig) -> Rig {
        let (store, dir): (Arc<dyn Store>, _) = match kind {
            StoreKind::Memory => (Arc::new(MemStore::new()), None),
            StoreKind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = SqliteStore::open(dir.path().join("pool.db"))
                    .await
                    .expect("sqlite store");
                (Arc::new(store), Some(dir))
            }
        };
        let sim = SimConnector::from_config(SimConfig::new().with_serve_ports(false));
        Rig::on(kind, store, sim, config, dir)
    }

    /// A second pool on this rig's store and engines, as a second server sharing them.
    pub fn second_server(&self) -> Pool {
        Pool::builder(Arc::clone(&self.store))
            .with_connector(self.sim.clone())
            .with_config(self.pool.config().clone())
            .build()
    }

    fn on(
        kind: StoreKind,
        store: Arc<dyn Store>,
        sim: SimConnector,
        config: PoolConfig,
        dir: Option<tempfile::TempDir>,
    ) -> Rig {
        let pool = Pool::builder(Arc::clone(&store))
            .with_connector(sim.clone())
            .with_config(config)
            .build();
        Rig {
            pool,
            store,
            sim,
            kind,
            _dir: dir,
        }
    }

    /// Adds a one-node blueprint with a `rest` port and `labels`.
    pub async fn blueprint(&self, name: &str, labels: &[(&str, &str)]) -> Blueprint {
        self.pool
            .create_blueprint(new_blueprint(name, labels))
            .await
            .unwrap_or_else(|e| panic!("{:?}: blueprint {name}: {e}", self.kind))
    }

    /// Adds a sim host of `capacity` on its own engine (`sim://NAME`), autofill off.
    pub async fn host(&self, name: &str, capacity: u32) -> Host {
        let new = NewHost {
            kind: HostKind::Sim,
            autofill: false,
            ..NewHost::docker(name, format!("sim://{name}"), capacity)
        };
        self.pool
            .add_host(new)
            .await
            .unwrap_or_else(|e| panic!("{:?}: host {name}: {e}", self.kind))
    }

    /// Adds a sim host and fills it to `capacity` with every blueprint.
    pub async fn filled_host(&self, name: &str, capacity: u32) -> Host {
        let host = self.host(name, capacity).await;
        self.pool.fill_host(&host.id, None).await.expect("fill");
        self.pool.wait_idle().await;
        host
    }

    /// The engine of the host called `name`.
    pub fn engine(&self, name: &str) -> SimEngine {
        self.sim.engine(&format!("sim://{name}"))
    }

    /// Clusters matching `filter`, all of them.
    pub async fn clusters(&self, filter: ClusterFilter) -> Vec<Cluster> {
        self.pool
            .clusters(&filter, Page::ALL)
            .await
            .expect("list clusters")
            .items
    }

    /// Everything the store holds, to compare before and after a refused request.
    pub async fn snapshot(&self) -> Snapshot {
        let s = &self.store;
        Snapshot {
            hosts: s.list_hosts(Page::ALL).await.expect("hosts").items,
            blueprints: s.list_blueprints(Page::ALL).await.expect("blueprints").items,
            clusters: s
                .list_clusters(&ClusterFilter::default(), Page::ALL)
                .await
                .expect("clusters")
                .items,
            leases: s.list_leases(None, Page::ALL).await.expect("leases").items,
            operations: s
                .list_operations(&OperationFilter::default(), Page::ALL)
                .await
                .expect("operations")
                .items,
        }
    }
}

/// An apply by `user` for `blueprint` with `allow_multiple`: each one takes a cluster.
pub fn apply_another(user: &str, blueprint: &str) -> ApplyRequest {
    ApplyRequest {
        user_id: user.to_owned(),
        blueprint: Some(blueprint.to_owned()),
        allow_multiple: true,
        ..ApplyRequest::default()
    }
}

/// A one-node blueprint with a `rest` port on `7050/tcp`.
pub fn new_blueprint(name: &str, labels: &[(&str, &str)]) -> NewBlueprint {
    NewBlueprint {
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        nodes: vec![node("vp0")],
        api_port: None,
        max_applied: None,
        buffer: Default::default(),
        buffer_windows: Default::default(),
        placement: Default::default(),
        release_mode: Default::default(),
        rollout: Default::default(),
    }
}

/// A node running a fabric peer image with a `rest` port.
pub fn node(name: &str) -> NodeSpec {
    NodeSpec {
        name: name.to_owned(),
        image: "hyperledger/fabric-peer:1.0".to_owned(),
        command: Vec::new(),
        env: BTreeMap::new(),
        ports: BTreeMap::from([("rest".to_owned(), "7050/tcp".parse().expect("a port"))]),
        health: None,
        readiness: None,
    }
}

/// Everything a store holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Hosts.
    pub hosts: Vec<Host>,
    /// Blueprints.
    pub blueprints: Vec<Blueprint>,
    /// Clusters.
    pub clusters: Vec<Cluster>,
    /// Lease records.
    pub leases: Vec<LeaseRecord>,
    /// Operations.
    pub operations: Vec<Operation>,
}

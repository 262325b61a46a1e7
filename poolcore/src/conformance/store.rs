//! Conformance cases for [`Store`]: every `# Behavior` line of the trait, asserted.
//!
//! Each case makes its own uniquely named objects, so the cases may run one after the
//! other, or side by side, on one store that also holds other data.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! poolcore::conformance::store::run_all(&poolcore::MemStore::new()).await;
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use futures::future::join_all;

use crate::model::{
    new_id, Blueprint, Claim, Cluster, ClusterFilter, ClusterStatus, Deployment, EngineFacts, Health, Host,
    HostKind, HostStatus, Labels, NodeDeployment, NodeSpec, Operation, OperationKind, OperationStatus, Page,
};
use crate::{Error, Store};

/// Runs every case against `store`.
pub async fn run_all(store: &dyn Store) {
    hosts_round_trip(store).await;
    host_names_are_unique(store).await;
    blueprints_round_trip(store).await;
    clusters_round_trip(store).await;
    cluster_updates_are_conditional(store).await;
    cluster_deletes_are_conditional(store).await;
    clusters_filter_and_page(store).await;
    claim_takes_only_eligible_clusters(store).await;
    claim_sets_the_lease(store).await;
    concurrent_claims_never_share(store).await;
    release_is_once(store).await;
    leases_newest_first(store).await;
    operations_round_trip(store).await;
    locks_are_exclusive(store).await;
    concurrent_lock_takers_get_one(store).await;
}

/// A unique name with `prefix`.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &new_id()[..8])
}

/// A host with a unique name.
pub fn sample_host() -> Host {
    Host {
        id: new_id(),
        name: unique("host"),
        kind: HostKind::Docker,
        endpoint: "tcp://10.0.0.1:2375".into(),
        public_address: "10.0.0.1".into(),
        capacity: 5,
        autofill: true,
        schedulable: true,
        labels: Labels::from([("zone".into(), "eu".into())]),
        log: None,
        status: HostStatus::Active,
        last_seen: Some(Utc::now()),
        last_error: None,
        facts: EngineFacts {
            version: "20.10.24".into(),
            cpus: 2,
            memory_bytes: 1 << 30,
            containers: 3,
            swarm: "inactive".into(),
            swarm_manager: false,
        },
        created_at: Utc::now(),
    }
}

/// A one-node blueprint with a unique name.
pub fn sample_blueprint() -> Blueprint {
    Blueprint {
        name: unique("bp"),
        labels: Labels::from([("consensus".into(), "pbft".into())]),
        nodes: vec![NodeSpec {
            name: "vp0".into(),
            image: "poolmanager/testnode:latest".into(),
            command: vec!["httpd".into(), "-f".into()],
            env: BTreeMap::from([("CORE_PEER_ID".into(), "vp0".into())]),
            ports: BTreeMap::from([("rest".into(), "80/tcp".parse().expect("valid port"))]),
            health: None,
        }],
        created_at: Utc::now(),
    }
}

/// A `ready`, healthy cluster of `blueprint` on `host_id`, with a deployment.
pub fn ready_cluster(blueprint: &str, host_id: &str) -> Cluster {
    let mut c = Cluster::new(unique("c"), blueprint, host_id);
    c.status = ClusterStatus::Ready;
    c.health = Health::Ok;
    c.deployment = Deployment {
        network_id: new_id(),
        nodes: BTreeMap::from([(
            "vp0".into(),
            NodeDeployment {
                id: new_id(),
                endpoints: BTreeMap::from([("rest".into(), "10.0.0.1:32768".into())]),
            },
        )]),
    };
    c
}

fn claim(user: &str, blueprints: &[&str], hosts: &[&str]) -> Claim {
    Claim {
        user_id: user.into(),
        blueprints: blueprints.iter().map(|s| s.to_string()).collect(),
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        metadata: BTreeMap::from([("purpose".into(), "ci".into())]),
        lease_id: new_id(),
        now: Utc::now(),
        expires_at: Some(Utc::now() + Duration::hours(1)),
    }
}

fn assert_conflict<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::Conflict { .. }) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// Timestamps may lose precision below a millisecond in a store; compare at that grain.
fn same_instant(a: chrono::DateTime<Utc>, b: chrono::DateTime<Utc>) -> bool {
    (a - b).num_milliseconds().abs() < 1
}

/// Hosts read back as written; unknown ids give `None`/`NotFound`/`false`.
pub async fn hosts_round_trip(store: &dyn Store) {
    let mut host = sample_host();
    store.insert_host(&host).await.expect("insert host");
    let got = store
        .get_host(&host.id)
        .await
        .expect("get host")
        .expect("host exists");
    assert_eq!(got.name, host.name);
    assert_eq!(got.labels, host.labels);
    assert_eq!(got.facts, host.facts);
    assert_eq!(got.kind, HostKind::Docker);
    assert!(store
        .list_hosts()
        .await
        .expect("list")
        .iter()
        .any(|h| h.id == host.id));

    host.capacity = 9;
    host.status = HostStatus::Inactive;
    host.last_error = Some("connection refused".into());
    store.update_host(&host).await.expect("update host");
    let got = store.get_host(&host.id).await.expect("get").expect("exists");
    assert_eq!((got.capacity, got.status), (9, HostStatus::Inactive));
    assert_eq!(got.last_error.as_deref(), Some("connection refused"));

    let ghost = sample_host();
    assert!(store
        .update_host(&ghost)
        .await
        .expect_err("unknown host")
        .is_not_found());
    assert!(store.get_host(&ghost.id).await.expect("get").is_none());
    assert!(store.delete_host(&host.id).await.expect("delete"));
    assert!(!store.delete_host(&host.id).await.expect("delete again"));
}

/// Names of hosts are unique, on insert and on rename; hosts list by name.
pub async fn host_names_are_unique(store: &dyn Store) {
    let a = sample_host();
    let mut b = sample_host();
    store.insert_host(&a).await.expect("insert a");
    store.insert_host(&b).await.expect("insert b");
    let twin = Host {
        id: new_id(),
        ..a.clone()
    };
    assert_conflict(store.insert_host(&twin).await, "same host name");
    assert_conflict(store.insert_host(&a).await, "same host id");
    b.name = a.name.clone();
    assert_conflict(store.update_host(&b).await, "rename to a taken name");

    let names: Vec<String> = store
        .list_hosts()
        .await
        .expect("list")
        .into_iter()
        .map(|h| h.name)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "hosts are listed by name");
    store.delete_host(&a.id).await.expect("cleanup");
    store.delete_host(&b.id).await.expect("cleanup");
}

/// Blueprints read back whole; names are unique.
pub async fn blueprints_round_trip(store: &dyn Store) {
    let bp = sample_blueprint();
    store.insert_blueprint(&bp).await.expect("insert blueprint");
    let got = store.get_blueprint(&bp.name).await.expect("get").expect("exists");
    assert_eq!(got.nodes, bp.nodes);
    assert_eq!(got.labels, bp.labels);
    assert_conflict(store.insert_blueprint(&bp).await, "same blueprint name");
    let names: Vec<String> = store
        .list_blueprints()
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(names.contains(&bp.name));
    assert!(
        names.windows(2).all(|w| w[0] <= w[1]),
        "blueprints are listed by name"
    );
    assert!(store.delete_blueprint(&bp.name).await.expect("delete"));
    assert!(!store.delete_blueprint(&bp.name).await.expect("delete again"));
    assert!(store.get_blueprint(&bp.name).await.expect("get").is_none());
}

/// Clusters read back whole; names and ids are unique.
pub async fn clusters_round_trip(store: &dyn Store) {
    let host = sample_host();
    let mut c = ready_cluster("bp", &host.id);
    c.metadata.insert("k".into(), "v".into());
    store.insert_cluster(&c).await.expect("insert cluster");
    let got = store.get_cluster(&c.id).await.expect("get").expect("exists");
    assert_eq!(got.name, c.name);
    assert_eq!(got.status, ClusterStatus::Ready);
    assert_eq!(got.health, Health::Ok);
    assert_eq!(got.deployment, c.deployment);
    assert_eq!(got.metadata, c.metadata);
    assert_eq!(got.version, c.version);
    assert!(same_instant(got.created_at, c.created_at));

    let twin = Cluster {
        id: new_id(),
        ..c.clone()
    };
    assert_conflict(store.insert_cluster(&twin).await, "same cluster name");
    assert_conflict(store.insert_cluster(&c).await, "same cluster id");
    assert!(store.get_cluster(&new_id()).await.expect("get").is_none());
    assert!(store.delete_cluster(&c.id, c.version).await.expect("delete"));
}

/// An update writes only over the version it read, and bumps it.
pub async fn cluster_updates_are_conditional(store: &dyn Store) {
    let c = ready_cluster("bp", &new_id());
    store.insert_cluster(&c).await.expect("insert");
    let mut first = c.clone();
    first.status = ClusterStatus::Stopped;
    let written = store.update_cluster(&first).await.expect("update");
    assert_eq!(written.version, c.version + 1);
    assert_eq!(written.status, ClusterStatus::Stopped);

    let mut stale = c.clone();
    stale.status = ClusterStatus::Failed;
    assert_conflict(store.update_cluster(&stale).await, "update over a stale version");
    let got = store.get_cluster(&c.id).await.expect("get").expect("exists");
    assert_eq!(
        got.status,
        ClusterStatus::Stopped,
        "a refused update writes nothing"
    );
    assert_eq!(got.version, c.version + 1);

    let ghost = ready_cluster("bp", &new_id());
    assert!(store
        .update_cluster(&ghost)
        .await
        .expect_err("unknown")
        .is_not_found());
    store.delete_cluster(&c.id, got.version).await.expect("cleanup");
}

/// A delete removes only the version it read; a missing cluster is `false`.
pub async fn cluster_deletes_are_conditional(store: &dyn Store) {
    let c = ready_cluster("bp", &new_id());
    store.insert_cluster(&c).await.expect("insert");
    let written = store.update_cluster(&c).await.expect("update");
    assert_conflict(
        store.delete_cluster(&c.id, c.version).await,
        "delete of a stale version",
    );
    assert!(store.get_cluster(&c.id).await.expect("get").is_some());
    assert!(store
        .delete_cluster(&c.id, written.version)
        .await
        .expect("delete"));
    assert!(!store
        .delete_cluster(&c.id, written.version)
        .await
        .expect("delete again"));
}

/// Filters combine; pages skip and cut; the total counts every match.
pub async fn clusters_filter_and_page(store: &dyn Store) {
    let host = new_id();
    let other_host = new_id();
    let mut made = Vec::new();
    for i in 0..7 {
        let mut c = ready_cluster(if i % 2 == 0 { "even" } else { "odd" }, &host);
        if i < 2 {
            c.status = ClusterStatus::Applied;
            c.user_id = Some("alice".into());
        }
        store.insert_cluster(&c).await.expect("insert");
        made.push(c);
    }
    let elsewhere = ready_cluster("even", &other_host);
    store.insert_cluster(&elsewhere).await.expect("insert");

    let on_host = ClusterFilter {
        host_id: Some(host.clone()),
        ..ClusterFilter::default()
    };
    let all = store.list_clusters(&on_host, Page::ALL).await.expect("list");
    assert_eq!(all.total, 7);
    assert_eq!(all.items.len(), 7);
    assert!(
        all.items.windows(2).all(|w| w[0].name <= w[1].name),
        "listed by name"
    );

    let page = store
        .list_clusters(&on_host, Page { offset: 2, limit: 3 })
        .await
        .expect("page");
    assert_eq!(page.total, 7);
    let ids = |cs: &[Cluster]| cs.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&page.items), ids(&all.items[2..5]));
    let past = store
        .list_clusters(&on_host, Page { offset: 10, limit: 3 })
        .await
        .expect("past the end");
    assert!(past.items.is_empty());
    assert_eq!(past.total, 7);

    let count =
        |f: ClusterFilter| async move { store.list_clusters(&f, Page::ALL).await.expect("list").total };
    let with = |f: ClusterFilter| ClusterFilter {
        host_id: Some(host.clone()),
        ..f
    };
    let status = |s| ClusterFilter {
        status: Some(s),
        ..ClusterFilter::default()
    };
    assert_eq!(count(with(status(ClusterStatus::Applied))).await, 2);
    assert_eq!(count(with(status(ClusterStatus::Ready))).await, 5);
    let user = ClusterFilter {
        user_id: Some("alice".into()),
        ..ClusterFilter::default()
    };
    assert_eq!(count(with(user)).await, 2);
    let even = ClusterFilter {
        blueprints: Some(vec!["even".into()]),
        ..ClusterFilter::default()
    };
    assert_eq!(count(with(even.clone())).await, 4);
    let both = ClusterFilter {
        blueprints: Some(vec!["even".into(), "odd".into()]),
        ..ClusterFilter::default()
    };
    assert_eq!(count(with(both)).await, 7);
    let none = ClusterFilter {
        blueprints: Some(vec![]),
        ..ClusterFilter::default()
    };
    assert_eq!(
        count(with(none)).await,
        0,
        "an empty blueprint list matches nothing"
    );
    let even_elsewhere = ClusterFilter {
        host_id: Some(other_host.clone()),
        ..even
    };
    assert_eq!(count(even_elsewhere).await, 1);

    for c in made.iter().chain([&elsewhere]) {
        store.delete_cluster(&c.id, c.version).await.expect("cleanup");
    }
}

/// Claim returns only a ready, healthy cluster of a wanted blueprint on a wanted host.
pub async fn claim_takes_only_eligible_clusters(store: &dyn Store) {
    let host = new_id();
    let bp = unique("bp");
    let mut decoys = Vec::new();
    for status in [
        ClusterStatus::Creating,
        ClusterStatus::Stopped,
        ClusterStatus::Failed,
    ] {
        let mut c = ready_cluster(&bp, &host);
        c.status = status;
        decoys.push(c);
    }
    let mut failing = ready_cluster(&bp, &host);
    failing.health = Health::Failing;
    let mut unknown = ready_cluster(&bp, &host);
    unknown.health = Health::Unknown;
    decoys.extend([
        failing,
        unknown,
        ready_cluster("another-blueprint", &host),
        ready_cluster(&bp, &new_id()),
    ]);
    for c in &decoys {
        store.insert_cluster(c).await.expect("insert decoy");
    }
    let none = store
        .claim_cluster(&claim("bob", &[&bp], &[&host]))
        .await
        .expect("claim");
    assert!(none.is_none(), "claimed an ineligible cluster: {none:?}");

    let good = ready_cluster(&bp, &host);
    store.insert_cluster(&good).await.expect("insert");
    let got = store
        .claim_cluster(&claim("bob", &["nope", &bp], &[&new_id(), &host]))
        .await
        .expect("claim")
        .expect("a cluster");
    assert_eq!(got.id, good.id);
    assert!(store
        .claim_cluster(&claim("carol", &[&bp], &[&host]))
        .await
        .expect("claim")
        .is_none());
    for c in decoys {
        store.delete_cluster(&c.id, c.version).await.expect("cleanup");
    }
    store.delete_cluster(&got.id, got.version).await.expect("cleanup");
}

/// A claim writes the owner and lease fields, bumps the version and opens the lease.
pub async fn claim_sets_the_lease(store: &dyn Store) {
    let host = new_id();
    let c = ready_cluster("bp", &host);
    store.insert_cluster(&c).await.expect("insert");
    let req = claim(&unique("user"), &["bp"], &[&host]);
    let got = store
        .claim_cluster(&req)
        .await
        .expect("claim")
        .expect("a cluster");
    assert_eq!(got.status, ClusterStatus::Applied);
    assert_eq!(got.user_id.as_deref(), Some(req.user_id.as_str()));
    assert_eq!(got.metadata, req.metadata);
    assert_eq!(got.lease_id.as_deref(), Some(req.lease_id.as_str()));
    assert!(got.applied_at.is_some_and(|t| same_instant(t, req.now)));
    assert!(got
        .expires_at
        .zip(req.expires_at)
        .is_some_and(|(a, b)| same_instant(a, b)));
    assert_eq!(got.version, c.version + 1);
    assert_eq!(got.deployment, c.deployment, "a claim keeps the deployment");
    assert_eq!(store.get_cluster(&c.id).await.expect("get").as_ref(), Some(&got));

    let lease = store
        .get_lease(&req.lease_id)
        .await
        .expect("get lease")
        .expect("lease opened");
    assert_eq!(lease.cluster_id, c.id);
    assert_eq!(lease.cluster_name, c.name);
    assert_eq!(lease.user_id, req.user_id);
    assert_eq!(lease.metadata, req.metadata);
    assert!(lease.released_at.is_none());
    store.release_cluster(&c.id, Utc::now()).await.expect("release");
    let released = store.get_cluster(&c.id).await.expect("get").expect("exists");
    store
        .delete_cluster(&c.id, released.version)
        .await
        .expect("cleanup");
}

/// Many concurrent claims over few clusters: each cluster goes to exactly one.
pub async fn concurrent_claims_never_share(store: &dyn Store) {
    let host = new_id();
    let bp = unique("bp");
    let clusters: Vec<Cluster> = (0..8).map(|_| ready_cluster(&bp, &host)).collect();
    for c in &clusters {
        store.insert_cluster(c).await.expect("insert");
    }
    let claims: Vec<Claim> = (0..40)
        .map(|i| claim(&format!("u{i}"), &[&bp], &[&host]))
        .collect();
    let results = join_all(claims.iter().map(|c| store.claim_cluster(c))).await;
    let won: Vec<Cluster> = results
        .into_iter()
        .filter_map(|r| r.expect("claim does not fail"))
        .collect();
    let distinct: BTreeSet<&str> = won.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(won.len(), 8, "every cluster is handed out once");
    assert_eq!(distinct.len(), 8, "no cluster is handed out twice");
    for c in won {
        let lease = store
            .get_lease(c.lease_id.as_deref().expect("lease id"))
            .await
            .expect("lease");
        assert_eq!(lease.map(|l| l.user_id), c.user_id, "the lease names the winner");
        store.release_cluster(&c.id, Utc::now()).await.expect("release");
        let c = store.get_cluster(&c.id).await.expect("get").expect("exists");
        store.delete_cluster(&c.id, c.version).await.expect("cleanup");
    }
}

/// Release moves applied → releasing once, clears the owner and closes the lease.
pub async fn release_is_once(store: &dyn Store) {
    let host = new_id();
    let ready = ready_cluster("bp", &host);
    store.insert_cluster(&ready).await.expect("insert");
    assert!(
        store
            .release_cluster(&ready.id, Utc::now())
            .await
            .expect("release")
            .is_none(),
        "a ready cluster is not released"
    );
    assert!(store
        .release_cluster(&new_id(), Utc::now())
        .await
        .expect("release")
        .is_none());

    let req = claim("dave", &["bp"], &[&host]);
    let applied = store
        .claim_cluster(&req)
        .await
        .expect("claim")
        .expect("a cluster");
    let now = Utc::now();
    let results = join_all((0..5).map(|_| store.release_cluster(&applied.id, now))).await;
    let winners: Vec<Cluster> = results.into_iter().filter_map(|r| r.expect("release")).collect();
    assert_eq!(winners.len(), 1, "exactly one of concurrent releases wins");
    let released = &winners[0];
    assert_eq!(released.status, ClusterStatus::Releasing);
    assert_eq!(released.user_id, None);
    assert_eq!(released.applied_at, None);
    assert_eq!(released.expires_at, None);
    assert_eq!(released.lease_id, None);
    assert!(released.metadata.is_empty());
    assert_eq!(released.version, applied.version + 1);
    assert_eq!(
        store.get_cluster(&applied.id).await.expect("get").as_ref(),
        Some(released)
    );

    let lease = store
        .get_lease(&req.lease_id)
        .await
        .expect("get")
        .expect("lease kept");
    assert!(
        lease.released_at.is_some_and(|t| same_instant(t, now)),
        "lease closed"
    );
    store
        .delete_cluster(&released.id, released.version)
        .await
        .expect("cleanup");
}

/// Leases list newest apply first, per user, in pages.
pub async fn leases_newest_first(store: &dyn Store) {
    let host = new_id();
    let user = unique("user");
    let mut lease_ids = Vec::new();
    for i in 0..3 {
        let c = ready_cluster("bp", &host);
        store.insert_cluster(&c).await.expect("insert");
        let mut req = claim(&user, &["bp"], &[&host]);
        req.now = Utc::now() + Duration::seconds(i);
        let got = store
            .claim_cluster(&req)
            .await
            .expect("claim")
            .expect("a cluster");
        assert_eq!(got.id, c.id);
        lease_ids.push(req.lease_id);
    }
    let listing = store.list_leases(Some(&user), Page::ALL).await.expect("list");
    assert_eq!(listing.total, 3);
    let got: Vec<String> = listing.items.iter().map(|l| l.id.clone()).collect();
    let newest_first: Vec<String> = lease_ids.iter().rev().cloned().collect();
    assert_eq!(got, newest_first);
    let page = store
        .list_leases(Some(&user), Page { offset: 1, limit: 1 })
        .await
        .expect("page");
    assert_eq!((page.total, page.items.len()), (3, 1));
    assert_eq!(page.items[0].id, lease_ids[1]);
    assert!(store.list_leases(None, Page::ALL).await.expect("all").total >= 3);
    let filter = ClusterFilter {
        host_id: Some(host),
        ..ClusterFilter::default()
    };
    for c in store.list_clusters(&filter, Page::ALL).await.expect("list").items {
        store.delete_cluster(&c.id, c.version).await.expect("cleanup");
    }
}

/// Operations are stored and replaced whole.
pub async fn operations_round_trip(store: &dyn Store) {
    let mut op = Operation {
        id: new_id(),
        kind: OperationKind::Fill,
        host_id: new_id(),
        status: OperationStatus::Running,
        done: 0,
        total: 4,
        error: None,
        created_at: Utc::now(),
        finished_at: None,
    };
    store.put_operation(&op).await.expect("put");
    assert_eq!(
        store.get_operation(&op.id).await.expect("get").map(|o| o.total),
        Some(4)
    );
    op.done = 4;
    op.status = OperationStatus::Failed;
    op.error = Some("image missing".into());
    op.finished_at = Some(Utc::now());
    store.put_operation(&op).await.expect("replace");
    let got = store.get_operation(&op.id).await.expect("get").expect("exists");
    assert_eq!((got.done, got.status), (4, OperationStatus::Failed));
    assert_eq!(got.error.as_deref(), Some("image missing"));
    assert!(store.get_operation(&new_id()).await.expect("get").is_none());
}

/// A lock has one holder; it is renewed by its holder, taken over once expired, and
/// free again once released.
pub async fn locks_are_exclusive(store: &dyn Store) {
    let lock = unique("lock");
    let now = Utc::now();
    let later = now + Duration::seconds(30);
    assert!(
        store.acquire_lock(&lock, "a", now, later).await.expect("acquire"),
        "a free lock is taken"
    );
    assert!(
        !store.acquire_lock(&lock, "b", now, later).await.expect("acquire"),
        "a held lock is not taken by another holder"
    );
    assert!(
        store
            .acquire_lock(&lock, "a", now, later + Duration::seconds(30))
            .await
            .expect("renew"),
        "the holder renews its lock"
    );
    assert!(
        !store
            .acquire_lock(&lock, "b", later, later)
            .await
            .expect("acquire"),
        "a renewed lock is still held"
    );
    let expired = later + Duration::seconds(31);
    assert!(
        store
            .acquire_lock(&lock, "b", expired, expired + Duration::seconds(30))
            .await
            .expect("take over"),
        "an expired lock is taken over"
    );
    store
        .release_lock(&lock, "a")
        .await
        .expect("release by a non-holder");
    assert!(
        !store
            .acquire_lock(&lock, "a", expired, expired)
            .await
            .expect("acquire"),
        "a release by a non-holder does nothing"
    );
    store.release_lock(&lock, "b").await.expect("release");
    assert!(
        store
            .acquire_lock(&lock, "a", expired, expired)
            .await
            .expect("acquire"),
        "a released lock is free"
    );
    store.release_lock(&lock, "a").await.expect("cleanup");
}

/// Of many holders asking for one free lock at once, exactly one gets it.
pub async fn concurrent_lock_takers_get_one(store: &dyn Store) {
    let lock = unique("lock");
    let now = Utc::now();
    let holders: Vec<String> = (0..16).map(|i| format!("holder-{i}")).collect();
    let results = join_all(
        holders
            .iter()
            .map(|h| store.acquire_lock(&lock, h, now, now + Duration::seconds(30))),
    )
    .await;
    let winners: Vec<&String> = holders
        .iter()
        .zip(results)
        .filter_map(|(h, r)| r.expect("acquire does not fail").then_some(h))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one holder gets the lock: {winners:?}");
    store.release_lock(&lock, winners[0]).await.expect("cleanup");
}

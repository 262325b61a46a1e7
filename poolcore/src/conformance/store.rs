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

use chrono::{Duration, SubsecRound, Utc};
use futures::future::join_all;

use crate::model::{
    new_id, Blueprint, BlueprintVersion, BufferWindow, Claim, ClaimOutcome, Cluster, ClusterCount,
    ClusterFilter, ClusterSort, ClusterSortKey, ClusterStatus, Deployment, EngineFacts, Health, Host,
    HostKind, HostStatus, Labels, MinuteSummary, NodeDeployment, NodeSpec, Operation, OperationFilter,
    OperationKind, OperationStatus, Page, Placement, PlacementStrategy, PortRef, Quota, ReadyBuffer,
    ReleaseMode, ReleaseReason, Rollout, RolloutStrategy, Weekday,
};
use crate::{Error, Store};

/// Runs every case against `store`.
pub async fn run_all(store: &dyn Store) {
    hosts_round_trip(store).await;
    host_names_are_unique(store).await;
    host_updates_are_conditional(store).await;
    hosts_and_blueprints_page(store).await;
    blueprints_round_trip(store).await;
    blueprint_policies_update_alone(store).await;
    blueprint_versions_update_alone(store).await;
    clusters_round_trip(store).await;
    cluster_updates_are_conditional(store).await;
    cluster_deletes_are_conditional(store).await;
    clusters_filter_and_page(store).await;
    clusters_filter_by_health(store).await;
    clusters_sort_by_every_key(store).await;
    inserts_respect_capacity(store).await;
    concurrent_inserts_never_exceed_capacity(store).await;
    clusters_are_counted(store).await;
    claim_takes_only_eligible_clusters(store).await;
    claim_sets_the_lease(store).await;
    concurrent_claims_never_share(store).await;
    single_claim_returns_the_held_cluster(store).await;
    concurrent_single_claims_of_one_user_take_one(store).await;
    release_is_once(store).await;
    claim_respects_quotas(store).await;
    concurrent_claims_never_exceed_quotas(store).await;
    leases_newest_first(store).await;
    lease_activity_counts_per_bucket(store).await;
    lease_activity_splits_minutes(store).await;
    operations_round_trip(store).await;
    operations_filter_and_page(store).await;
    locks_are_exclusive(store).await;
    concurrent_lock_takers_get_one(store).await;
}

/// A unique name with `prefix`.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &new_id()[..8])
}

/// A host with a unique name; its times are whole milliseconds, which every store
/// keeps exactly (see `same_instant`), so that it reads back equal.
pub fn sample_host() -> Host {
    let now = Utc::now().trunc_subsecs(3);
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
        last_seen: Some(now),
        last_error: None,
        facts: EngineFacts {
            version: "20.10.24".into(),
            cpus: 2,
            memory_bytes: 1 << 30,
            containers: 3,
            swarm: "inactive".into(),
            swarm_manager: false,
        },
        tls: None,
        created_at: now,
        version: 0,
    }
}

/// A one-node blueprint with a unique name.
pub fn sample_blueprint() -> Blueprint {
    let now = Utc::now().trunc_subsecs(3);
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
            readiness: None,
        }],
        api_port: None,
        max_applied: None,
        buffer: Default::default(),
        buffer_windows: Default::default(),
        placement: Default::default(),
        release_mode: Default::default(),
        rollout: Default::default(),
        version: 1,
        version_created_at: now,
        earlier_versions: Vec::new(),
        created_at: now,
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

/// A claim with `allow_multiple`: it takes a new cluster whatever the user holds.
fn claim(user: &str, blueprints: &[&str], hosts: &[&str]) -> Claim {
    Claim {
        user_id: user.into(),
        blueprints: blueprints.iter().map(|s| s.to_string()).collect(),
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        metadata: BTreeMap::from([("purpose".into(), "ci".into())]),
        lease_id: new_id(),
        now: Utc::now(),
        expires_at: Some(Utc::now() + Duration::hours(1)),
        allow_multiple: true,
        max_held: None,
        blueprint_quotas: Default::default(),
    }
}

/// A claim without `allow_multiple`.
fn single_claim(user: &str, blueprints: &[&str], hosts: &[&str]) -> Claim {
    Claim {
        allow_multiple: false,
        ..claim(user, blueprints, hosts)
    }
}

/// The cluster a claim took; panics on any other outcome.
async fn claimed(store: &dyn Store, claim: &Claim) -> Cluster {
    match store.claim_cluster(claim).await.expect("claim") {
        ClaimOutcome::Claimed(c) => c,
        other => panic!("expected a claimed cluster, got {other:?}"),
    }
}

/// Claims with `claim`, asserting nothing is taken.
async fn assert_exhausted(store: &dyn Store, claim: &Claim, what: &str) {
    match store.claim_cluster(claim).await.expect("claim") {
        ClaimOutcome::Exhausted => {}
        other => panic!("{what}: expected Exhausted, got {other:?}"),
    }
}

/// Inserts `cluster` on a host with room to spare.
async fn insert(store: &dyn Store, cluster: &Cluster) {
    assert!(
        store.insert_cluster(cluster, 1000).await.expect("insert cluster"),
        "a host with room takes the cluster"
    );
}

/// Releases `id` and deletes it.
async fn release_and_delete(store: &dyn Store, id: &str) {
    store
        .release_cluster(id, Utc::now(), ReleaseReason::Release)
        .await
        .expect("release");
    delete(store, id).await;
}

/// Deletes `id` at its stored version.
async fn delete(store: &dyn Store, id: &str) {
    if let Some(c) = store.get_cluster(id).await.expect("get") {
        store.delete_cluster(&c.id, c.version).await.expect("cleanup");
    }
}

fn assert_conflict<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::Conflict { .. }) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

fn assert_stale<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::Stale { .. }) => {}
        other => panic!("{what}: expected Stale, got {other:?}"),
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
    assert_eq!(got, host, "a host reads back whole");
    assert!(store
        .list_hosts(Page::ALL)
        .await
        .expect("list")
        .items
        .iter()
        .any(|h| h.id == host.id));

    host.capacity = 9;
    host.status = HostStatus::Inactive;
    host.last_error = Some("connection refused".into());
    host.tls = Some(crate::EngineTls {
        ca: Some(crate::Pem::Path("/etc/pm/ca.pem".into())),
        cert: Some(crate::Pem::Inline("-----BEGIN CERTIFICATE-----".into())),
        key: None,
        verify: true,
    });
    let written = store.update_host(&host).await.expect("update host");
    assert_eq!(written.version, host.version + 1);
    let got = store.get_host(&host.id).await.expect("get").expect("exists");
    assert_eq!((got.capacity, got.status), (9, HostStatus::Inactive));
    assert_eq!(got.last_error.as_deref(), Some("connection refused"));
    assert_eq!(got, written, "update returns what is stored");

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
        .list_hosts(Page::ALL)
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|h| h.name)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "hosts are listed by name");
    store.delete_host(&a.id).await.expect("cleanup");
    store.delete_host(&b.id).await.expect("cleanup");
}

/// A host update writes only over the version it read: a probe that read the host
/// before an operator changed it cannot undo the change.
pub async fn host_updates_are_conditional(store: &dyn Store) {
    let host = sample_host();
    store.insert_host(&host).await.expect("insert");
    let probe_read = store.get_host(&host.id).await.expect("get").expect("exists");
    let mut operator = probe_read.clone();
    operator.schedulable = false;
    let changed = store.update_host(&operator).await.expect("operator's change");
    let mut probe = probe_read;
    probe.status = HostStatus::Inactive;
    assert_stale(store.update_host(&probe).await, "a probe over a stale version");
    let got = store.get_host(&host.id).await.expect("get").expect("exists");
    assert_eq!(got, changed, "a refused write changes nothing");
    assert!(!got.schedulable);
    store.delete_host(&host.id).await.expect("cleanup");
}

/// Hosts and blueprints come in pages, by name, with the total.
pub async fn hosts_and_blueprints_page(store: &dyn Store) {
    let hosts: Vec<Host> = (0..3).map(|_| sample_host()).collect();
    let blueprints: Vec<Blueprint> = (0..3).map(|_| sample_blueprint()).collect();
    for h in &hosts {
        store.insert_host(h).await.expect("insert host");
    }
    for b in &blueprints {
        store.insert_blueprint(b).await.expect("insert blueprint");
    }
    let (all_hosts, page) = page_of_unchanged(
        || store.list_hosts(Page::ALL),
        || store.list_hosts(Page { offset: 1, limit: 2 }),
    )
    .await;
    assert_eq!(all_hosts.total as usize, all_hosts.items.len());
    assert_eq!(page.total, all_hosts.total);
    let names = |hs: &[Host]| hs.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&page.items), names(&all_hosts.items[1..3]));
    let (all_bps, page) = page_of_unchanged(
        || store.list_blueprints(Page::ALL),
        || store.list_blueprints(Page { offset: 1, limit: 1 }),
    )
    .await;
    assert_eq!(all_bps.total as usize, all_bps.items.len());
    assert_eq!((page.total, page.items.len()), (all_bps.total, 1));
    assert_eq!(page.items[0].name, all_bps.items[1].name);
    for h in &hosts {
        store.delete_host(&h.id).await.expect("cleanup");
    }
    for b in &blueprints {
        store.delete_blueprint(&b.name).await.expect("cleanup");
    }
}

/// A whole listing and a page of it, read while nothing else changed the listing:
/// another run of the suite side by side on the store may add or remove records
/// between two reads, so they are read again until the listing read before and after
/// the page agree.
async fn page_of_unchanged<T, L, P>(
    all: impl Fn() -> L,
    page: impl Fn() -> P,
) -> (crate::model::Listing<T>, crate::model::Listing<T>)
where
    T: PartialEq,
    L: std::future::Future<Output = crate::Result<crate::model::Listing<T>>>,
    P: std::future::Future<Output = crate::Result<crate::model::Listing<T>>>,
{
    for _ in 0..50 {
        let before = all().await.expect("list");
        let page = page().await.expect("page");
        if all().await.expect("list") == before {
            return (before, page);
        }
    }
    panic!("the listing changed at every one of 50 reads");
}

/// Blueprints read back whole; names are unique.
pub async fn blueprints_round_trip(store: &dyn Store) {
    let mut bp = sample_blueprint();
    bp.api_port = Some(PortRef {
        node: "vp0".into(),
        port: "rest".into(),
    });
    store.insert_blueprint(&bp).await.expect("insert blueprint");
    let got = store.get_blueprint(&bp.name).await.expect("get").expect("exists");
    assert_eq!(got.nodes, bp.nodes);
    assert_eq!(got.labels, bp.labels);
    assert_eq!(got.api_port, bp.api_port);
    assert!(same_instant(got.created_at, bp.created_at));
    assert_conflict(store.insert_blueprint(&bp).await, "same blueprint name");
    let names: Vec<String> = store
        .list_blueprints(Page::ALL)
        .await
        .expect("list")
        .items
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

/// A blueprint's policies (quota, ready buffer) read back as written, and change
/// alone: its nodes and labels stay; an unknown blueprint is not written.
pub async fn blueprint_policies_update_alone(store: &dyn Store) {
    let mut bp = sample_blueprint();
    bp.buffer = ReadyBuffer {
        min_ready: Some(2),
        min_ready_percent: Some(50),
        max_total: Some(9),
    };
    bp.placement = Placement {
        host_selector: Labels::from([("zone".into(), "eu".into())]),
        strategy: PlacementStrategy::Packed,
    };
    bp.release_mode = ReleaseMode::Reset;
    bp.rollout = Rollout {
        strategy: RolloutStrategy::OnRelease,
        max_per_minute: 7,
    };
    bp.buffer_windows = vec![BufferWindow {
        days: vec![Weekday::Mon, Weekday::Fri],
        from: "08:00".parse().expect("a time"),
        until: "18:30".parse().expect("a time"),
        min_ready: Some(5),
        min_ready_percent: None,
        max_total: None,
    }];
    store.insert_blueprint(&bp).await.expect("insert blueprint");
    let got = store.get_blueprint(&bp.name).await.expect("get").expect("exists");
    assert_eq!(
        (
            &got.buffer,
            &got.buffer_windows,
            &got.placement,
            got.release_mode,
            got.rollout
        ),
        (
            &bp.buffer,
            &bp.buffer_windows,
            &bp.placement,
            bp.release_mode,
            bp.rollout
        ),
        "the policies read back"
    );

    let mut changed = bp.clone();
    changed.max_applied = Some(3);
    changed.buffer = ReadyBuffer {
        min_ready: None,
        min_ready_percent: Some(10),
        max_total: None,
    };
    changed.placement = Placement {
        host_selector: Labels::from([("disk".into(), "ssd".into()), ("zone".into(), "us".into())]),
        strategy: PlacementStrategy::Spread,
    };
    changed.release_mode = ReleaseMode::Recreate;
    changed.rollout = Rollout::default();
    changed.buffer_windows = Vec::new();
    changed.version = 5;
    changed.nodes.clear();
    changed.labels.clear();
    assert!(store.update_blueprint_policies(&changed).await.expect("update"));
    let got = store.get_blueprint(&bp.name).await.expect("get").expect("exists");
    assert_eq!(
        (
            got.max_applied,
            got.buffer,
            &got.placement,
            got.release_mode,
            got.rollout
        ),
        (
            changed.max_applied,
            changed.buffer,
            &changed.placement,
            changed.release_mode,
            changed.rollout
        )
    );
    assert_eq!(
        (got.nodes, got.labels, got.version),
        (bp.nodes.clone(), bp.labels.clone(), bp.version),
        "only policies change"
    );
    let listed = store.list_blueprints(Page::ALL).await.expect("list").items;
    let listed = listed.iter().find(|b| b.name == bp.name).expect("listed");
    assert_eq!(listed.buffer, changed.buffer, "a listing reads the same");

    let unknown = Blueprint {
        name: unique("nope"),
        ..changed.clone()
    };
    assert!(!store
        .update_blueprint_policies(&unknown)
        .await
        .expect("update unknown"));
    assert!(store.get_blueprint(&unknown.name).await.expect("get").is_none());
    assert!(store.delete_blueprint(&bp.name).await.expect("delete"));
}

/// A new blueprint version (nodes, API port, number, time and earlier versions) reads
/// back as written and changes alone; it is written only over the version it follows;
/// an unknown blueprint is not written.
pub async fn blueprint_versions_update_alone(store: &dyn Store) {
    let bp = sample_blueprint();
    store.insert_blueprint(&bp).await.expect("insert blueprint");
    let got = store.get_blueprint(&bp.name).await.expect("get").expect("exists");
    assert_eq!(
        (got.version, got.version_created_at, &got.earlier_versions),
        (1, bp.version_created_at, &Vec::new()),
        "a new blueprint is at version 1"
    );

    let later = bp.created_at + Duration::seconds(30);
    let mut next = bp.clone();
    next.nodes[0].image = "poolmanager/testnode:v2".into();
    next.nodes.push(NodeSpec::new("vp1", "poolmanager/testnode:v2"));
    next.api_port = Some(PortRef {
        node: "vp0".into(),
        port: "rest".into(),
    });
    next.version = 2;
    next.version_created_at = later;
    next.earlier_versions = vec![BlueprintVersion {
        version: 1,
        nodes: bp.nodes.clone(),
        api_port: None,
        created_at: bp.version_created_at,
        superseded_at: later,
    }];
    next.max_applied = Some(99);
    assert!(store
        .update_blueprint_version(&next, 1)
        .await
        .expect("new version"));
    let got = store.get_blueprint(&bp.name).await.expect("get").expect("exists");
    assert_eq!(
        (
            &got.nodes,
            &got.api_port,
            got.version,
            got.version_created_at,
            &got.earlier_versions
        ),
        (&next.nodes, &next.api_port, 2, later, &next.earlier_versions),
        "the new version reads back"
    );
    assert_eq!(got.max_applied, None, "the policies stay");
    let listed = store.list_blueprints(Page::ALL).await.expect("list").items;
    let listed = listed.iter().find(|b| b.name == bp.name).expect("listed");
    assert_eq!(listed.version, 2, "a listing reads the same");

    // Written over version 1 again (another server made version 2 first): refused.
    let mut late = next.clone();
    late.nodes[0].image = "poolmanager/testnode:v3".into();
    let err = store
        .update_blueprint_version(&late, 1)
        .await
        .expect_err("a version over one that is gone");
    assert!(err.is_stale(), "{err}");
    let got = store.get_blueprint(&bp.name).await.expect("get").expect("exists");
    assert_eq!(got.nodes, next.nodes, "nothing written");

    // The same version with fewer earlier ones: what dropping unused ones writes.
    let mut pruned = next.clone();
    pruned.earlier_versions.clear();
    assert!(store
        .update_blueprint_version(&pruned, 2)
        .await
        .expect("drop earlier"));
    let got = store.get_blueprint(&bp.name).await.expect("get").expect("exists");
    assert_eq!((got.version, got.earlier_versions.len()), (2, 0));

    let unknown = Blueprint {
        name: unique("nope"),
        ..next.clone()
    };
    assert!(!store
        .update_blueprint_version(&unknown, 1)
        .await
        .expect("update unknown"));
    assert!(store.get_blueprint(&unknown.name).await.expect("get").is_none());
    assert!(store.delete_blueprint(&bp.name).await.expect("delete"));
}

/// Clusters read back whole; names and ids are unique.
pub async fn clusters_round_trip(store: &dyn Store) {
    let host = sample_host();
    let mut c = ready_cluster("bp", &host.id);
    c.metadata.insert("k".into(), "v".into());
    c.stopped_nodes.insert("vp0".into());
    insert(store, &c).await;
    let got = store.get_cluster(&c.id).await.expect("get").expect("exists");
    assert_eq!(got.name, c.name);
    assert_eq!(got.stopped_nodes, c.stopped_nodes);
    assert!(!got.single_apply);
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
    assert_conflict(store.insert_cluster(&twin, 1000).await, "same cluster name");
    assert_conflict(store.insert_cluster(&c, 1000).await, "same cluster id");
    assert!(store.get_cluster(&new_id()).await.expect("get").is_none());
    assert!(store.delete_cluster(&c.id, c.version).await.expect("delete"));
}

/// An update writes only over the version it read, and bumps it.
pub async fn cluster_updates_are_conditional(store: &dyn Store) {
    let c = ready_cluster("bp", &new_id());
    insert(store, &c).await;
    let mut first = c.clone();
    first.status = ClusterStatus::Stopped;
    let written = store.update_cluster(&first).await.expect("update");
    assert_eq!(written.version, c.version + 1);
    assert_eq!(written.status, ClusterStatus::Stopped);

    let mut stale = c.clone();
    stale.status = ClusterStatus::Failed;
    assert_stale(store.update_cluster(&stale).await, "update over a stale version");
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
    insert(store, &c).await;
    let written = store.update_cluster(&c).await.expect("update");
    assert_stale(
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
        insert(store, &c).await;
        made.push(c);
    }
    let elsewhere = ready_cluster("even", &other_host);
    insert(store, &elsewhere).await;

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

/// A health filter finds the broken clusters of a status, and counts them right.
pub async fn clusters_filter_by_health(store: &dyn Store) {
    let host = new_id();
    let mut made = Vec::new();
    for (status, health) in [
        (ClusterStatus::Ready, Health::Ok),
        (ClusterStatus::Ready, Health::Failing),
        (ClusterStatus::Ready, Health::Failing),
        (ClusterStatus::Applied, Health::Failing),
        (ClusterStatus::Creating, Health::Unknown),
    ] {
        let mut c = ready_cluster("bp", &host);
        c.status = status;
        c.health = health;
        if status == ClusterStatus::Applied {
            c.user_id = Some(unique("user"));
        }
        insert(store, &c).await;
        made.push(c);
    }
    let listed = |status: Option<ClusterStatus>, health: Option<Health>| {
        let filter = ClusterFilter {
            host_id: Some(host.clone()),
            status,
            health,
            ..ClusterFilter::default()
        };
        async move { store.list_clusters(&filter, Page::ALL).await.expect("list") }
    };
    let broken_free = listed(Some(ClusterStatus::Ready), Some(Health::Failing)).await;
    assert_eq!(broken_free.total, 2, "two ready clusters fail");
    let mut want: Vec<_> = made[1..3].iter().map(|c| c.id.clone()).collect();
    want.sort_by_key(|id| made.iter().find(|c| &c.id == id).map(|c| c.name.clone()));
    let got: Vec<_> = broken_free.items.iter().map(|c| c.id.clone()).collect();
    assert_eq!(got, want, "the failing ready clusters, by name");
    assert_eq!(
        listed(None, Some(Health::Failing)).await.total,
        3,
        "failing in any status"
    );
    assert_eq!(listed(None, Some(Health::Ok)).await.total, 1);
    assert_eq!(
        listed(Some(ClusterStatus::Applied), Some(Health::Ok)).await.total,
        0
    );
    assert_eq!(listed(None, None).await.total, 5);
    for c in &made {
        delete(store, &c.id).await;
    }
}

/// Every sort key orders a listing as [`ClusterSort::compare`] does, ascending and
/// descending, and a sorted listing pages in that order.
pub async fn clusters_sort_by_every_key(store: &dyn Store) {
    let host = new_id();
    let other_host = new_id();
    let base = Utc::now().trunc_subsecs(0) - chrono::Duration::hours(1);
    let mut made = Vec::new();
    // Names in one order, every other key in another, with ties and unset fields.
    let rows = [
        (
            "d",
            "bp-b",
            ClusterStatus::Applied,
            Health::Ok,
            Some("bob"),
            Some(3),
            5,
        ),
        ("a", "bp-a", ClusterStatus::Ready, Health::Failing, None, None, 4),
        (
            "c",
            "bp-b",
            ClusterStatus::Applied,
            Health::Failing,
            Some("ann"),
            Some(1),
            3,
        ),
        ("b", "bp-a", ClusterStatus::Ready, Health::Ok, None, None, 2),
        (
            "e",
            "bp-c",
            ClusterStatus::Applied,
            Health::Unknown,
            Some("ann"),
            Some(2),
            1,
        ),
    ];
    let tag = unique("sort");
    for (i, (name, bp, status, health, user, applied, created)) in rows.into_iter().enumerate() {
        let mut c = ready_cluster(
            &format!("{tag}-{bp}"),
            if i % 2 == 0 { &host } else { &other_host },
        );
        c.name = format!("{tag}-{name}");
        c.status = status;
        c.health = health;
        c.user_id = user.map(|u| format!("{tag}-{u}"));
        c.applied_at = applied.map(|m| base + chrono::Duration::minutes(m));
        c.expires_at = applied.map(|m| base + chrono::Duration::minutes(60 - m));
        c.created_at = base - chrono::Duration::minutes(created);
        insert(store, &c).await;
        made.push(c);
    }
    let ids: Vec<String> = made.iter().map(|c| c.id.clone()).collect();
    let blueprints = ["bp-a", "bp-b", "bp-c"].map(|bp| format!("{tag}-{bp}")).to_vec();
    for &key in ClusterSortKey::ALL {
        for sort in [ClusterSort::by(key), ClusterSort::by(key).descending()] {
            let filter = ClusterFilter {
                blueprints: Some(blueprints.clone()),
                sort,
                ..ClusterFilter::default()
            };
            let listed = store.list_clusters(&filter, Page::ALL).await.expect("list");
            let got: Vec<&str> = listed
                .items
                .iter()
                .filter(|c| ids.contains(&c.id))
                .map(|c| c.name.as_str())
                .collect();
            let mut want: Vec<&Cluster> = made.iter().collect();
            want.sort_by(|a, b| sort.compare(a, b));
            let want: Vec<&str> = want.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(got, want, "sorted by {sort}");

            let host_filter = ClusterFilter {
                host_id: Some(host.clone()),
                ..filter
            };
            let page = store
                .list_clusters(&host_filter, Page { offset: 1, limit: 1 })
                .await
                .expect("page");
            let on_host: Vec<&str> = want
                .iter()
                .copied()
                .filter(|n| made.iter().any(|c| c.name == *n && c.host_id == host))
                .collect();
            assert_eq!(page.total, 3);
            assert_eq!(
                page.items.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
                on_host[1..2],
                "the second of one host's clusters by {sort}"
            );
        }
    }
    assert_eq!(
        "-applied_at".parse::<ClusterSort>().ok(),
        Some(ClusterSort::by(ClusterSortKey::AppliedAt).descending())
    );
    assert!("-".parse::<ClusterSort>().is_err() && "size".parse::<ClusterSort>().is_err());
    for c in &made {
        delete(store, &c.id).await;
    }
}

/// The quota a refused claim names; panics on any other outcome.
async fn refused_for(store: &dyn Store, claim: &Claim) -> Quota {
    match store.claim_cluster(claim).await.expect("claim") {
        ClaimOutcome::QuotaExceeded(quota) => quota,
        other => panic!("expected a quota refusal, got {other:?}"),
    }
}

/// A user holds no more than `max_held` clusters, a blueprint has no more than its
/// quota applied, a claim for several blueprints takes from those below their quota,
/// and a release makes room again.
pub async fn claim_respects_quotas(store: &dyn Store) {
    let host = new_id();
    let (limited, free) = (unique("bp-limited"), unique("bp-free"));
    let mut made = Vec::new();
    for bp in [&limited, &limited, &limited, &free, &free, &free, &free] {
        let c = ready_cluster(bp, &host);
        insert(store, &c).await;
        made.push(c);
    }
    let (ann, bob) = (unique("ann"), unique("bob"));
    let of_user = |user: &str, bps: &[&str]| Claim {
        max_held: Some(2),
        ..claim(user, bps, &[&host])
    };
    let first = claimed(store, &of_user(&ann, &[&free])).await;
    claimed(store, &of_user(&ann, &[&free])).await;
    assert_eq!(
        refused_for(store, &of_user(&ann, &[&free])).await,
        Quota::User {
            user_id: ann.clone(),
            limit: 2
        },
        "a third cluster for a user who may hold two"
    );
    assert_exhausted(
        store,
        &of_user(&bob, &[&unique("bp-none")]),
        "below the user quota and nothing ready: exhausted, not refused",
    )
    .await;
    release_and_delete(store, &first.id).await;
    claimed(store, &of_user(&ann, &[&free])).await;

    let of_blueprint = |user: &str, bps: &[&str]| Claim {
        blueprint_quotas: BTreeMap::from([(limited.clone(), 1)]),
        ..claim(user, bps, &[&host])
    };
    let taken = claimed(store, &of_blueprint(&bob, &[&limited])).await;
    assert_eq!(taken.blueprint, limited);
    assert_eq!(
        refused_for(store, &of_blueprint(&unique("carl"), &[&limited])).await,
        Quota::Blueprint {
            name: limited.clone(),
            limit: 1
        },
        "two free clusters, but one applied is the blueprint's most"
    );
    let either = claimed(store, &of_blueprint(&unique("dana"), &[&limited, &free])).await;
    assert_eq!(either.blueprint, free, "the blueprint below its quota");
    release_and_delete(store, &taken.id).await;
    let again = claimed(store, &of_blueprint(&unique("erin"), &[&limited])).await;
    assert_eq!(again.blueprint, limited, "a release makes room");
    let single = Claim {
        allow_multiple: false,
        ..of_blueprint(&again.user_id.clone().expect("held"), &[&limited])
    };
    match store.claim_cluster(&single).await.expect("claim") {
        ClaimOutcome::Held(c) => assert_eq!(c.id, again.id, "a held cluster comes back at the quota"),
        other => panic!("expected the held cluster, got {other:?}"),
    }
    for c in &made {
        if store
            .get_cluster(&c.id)
            .await
            .expect("get")
            .is_some_and(|c| c.is_applied())
        {
            release_and_delete(store, &c.id).await;
        } else {
            delete(store, &c.id).await;
        }
    }
}

/// Of many concurrent claims, no more than a quota allows take a cluster: twenty of
/// one user who may hold three, and twenty of different users for a blueprint that
/// allows three applied.
pub async fn concurrent_claims_never_exceed_quotas(store: &dyn Store) {
    let host = new_id();
    let bp = unique("bp-quota");
    let mut made = Vec::new();
    for _ in 0..40 {
        let c = ready_cluster(&bp, &host);
        insert(store, &c).await;
        made.push(c);
    }
    let user = unique("ann");
    let claims: Vec<Claim> = (0..20)
        .map(|_| Claim {
            max_held: Some(3),
            ..claim(&user, &[&bp], &[&host])
        })
        .collect();
    let outcomes = join_all(claims.iter().map(|c| store.claim_cluster(c))).await;
    let won = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().expect("claim"), ClaimOutcome::Claimed(_)))
        .count();
    assert_eq!(won, 3, "one user who may hold three: {outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(
        o.as_ref().expect("claim"),
        ClaimOutcome::Claimed(_) | ClaimOutcome::QuotaExceeded(_)
    )));

    let claims: Vec<Claim> = (0..20)
        .map(|_| Claim {
            blueprint_quotas: BTreeMap::from([(bp.clone(), 6)]),
            ..claim(&unique("user"), &[&bp], &[&host])
        })
        .collect();
    let outcomes = join_all(claims.iter().map(|c| store.claim_cluster(c))).await;
    let won = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().expect("claim"), ClaimOutcome::Claimed(_)))
        .count();
    assert_eq!(won, 3, "three held already, six allowed: {outcomes:?}");
    let applied = ClusterFilter {
        host_id: Some(host.clone()),
        status: Some(ClusterStatus::Applied),
        ..ClusterFilter::default()
    };
    assert_eq!(
        store
            .list_clusters(&applied, Page::ALL)
            .await
            .expect("list")
            .total,
        6
    );
    for c in &made {
        if store
            .get_cluster(&c.id)
            .await
            .expect("get")
            .is_some_and(|c| c.is_applied())
        {
            release_and_delete(store, &c.id).await;
        } else {
            delete(store, &c.id).await;
        }
    }
}

/// An insert into a full host writes nothing and says so; other hosts are not affected.
pub async fn inserts_respect_capacity(store: &dyn Store) {
    let host = new_id();
    let first = ready_cluster("bp", &host);
    let second = ready_cluster("bp", &host);
    assert!(store.insert_cluster(&first, 2).await.expect("insert"));
    assert!(store.insert_cluster(&second, 2).await.expect("insert"));
    let third = ready_cluster("bp", &host);
    assert!(!store
        .insert_cluster(&third, 2)
        .await
        .expect("insert into a full host"));
    assert!(store.get_cluster(&third.id).await.expect("get").is_none());
    assert!(!store.insert_cluster(&third, 0).await.expect("capacity 0"));
    let elsewhere = ready_cluster("bp", &new_id());
    assert!(store.insert_cluster(&elsewhere, 1).await.expect("another host"));
    delete(store, &first.id).await;
    assert!(
        store.insert_cluster(&third, 2).await.expect("insert"),
        "a deleted cluster frees its place"
    );
    for c in [&second, &third, &elsewhere] {
        delete(store, &c.id).await;
    }
}

/// Two pools filling one host at once never put it above its capacity.
pub async fn concurrent_inserts_never_exceed_capacity(store: &dyn Store) {
    let host = new_id();
    let clusters: Vec<Cluster> = (0..24).map(|_| ready_cluster("bp", &host)).collect();
    let results = join_all(clusters.iter().map(|c| store.insert_cluster(c, 5))).await;
    let inserted = results
        .into_iter()
        .filter(|r| *r.as_ref().expect("insert"))
        .count();
    assert_eq!(inserted, 5, "exactly the capacity is inserted");
    let on_host = ClusterFilter {
        host_id: Some(host),
        ..ClusterFilter::default()
    };
    let listing = store.list_clusters(&on_host, Page::ALL).await.expect("list");
    assert_eq!(listing.total, 5);
    for c in listing.items {
        delete(store, &c.id).await;
    }
}

/// Counts per host, blueprint, blueprint version and status add up to what is
/// stored, also after a cluster moves to another version.
pub async fn clusters_are_counted(store: &dyn Store) {
    let host = new_id();
    let bp = unique("bp");
    let mut stopped = ready_cluster(&bp, &host);
    stopped.status = ClusterStatus::Stopped;
    let mut newer = ready_cluster(&bp, &host);
    newer.blueprint_version = 2;
    let made = [
        ready_cluster(&bp, &host),
        ready_cluster(&bp, &host),
        stopped,
        newer,
    ];
    for c in &made {
        insert(store, c).await;
    }
    let counts = || async {
        let mine: Vec<ClusterCount> = store
            .count_clusters()
            .await
            .expect("count")
            .into_iter()
            .filter(|c| c.host_id == host)
            .collect();
        mine
    };
    let count = |mine: &[ClusterCount], version, status| {
        mine.iter()
            .find(|c| c.blueprint == bp && c.blueprint_version == version && c.status == status)
            .map(|c| c.count)
    };
    let mine = counts().await;
    assert_eq!(count(&mine, 1, ClusterStatus::Ready), Some(2));
    assert_eq!(count(&mine, 1, ClusterStatus::Stopped), Some(1));
    assert_eq!(count(&mine, 2, ClusterStatus::Ready), Some(1));
    assert_eq!(
        count(&mine, 1, ClusterStatus::Applied),
        None,
        "empty groups are left out"
    );
    assert_eq!(mine.len(), 3);

    let mut moved = store
        .get_cluster(&made[0].id)
        .await
        .expect("get")
        .expect("exists");
    moved.blueprint_version = 2;
    store.update_cluster(&moved).await.expect("move to version 2");
    let mine = counts().await;
    assert_eq!(count(&mine, 1, ClusterStatus::Ready), Some(1));
    assert_eq!(count(&mine, 2, ClusterStatus::Ready), Some(2));
    for c in &made {
        delete(store, &c.id).await;
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
        insert(store, c).await;
    }
    assert_exhausted(store, &claim("bob", &[&bp], &[&host]), "only ineligible clusters").await;

    let good = ready_cluster(&bp, &host);
    insert(store, &good).await;
    let got = claimed(store, &claim("bob", &["nope", &bp], &[&new_id(), &host])).await;
    assert_eq!(got.id, good.id);
    assert_exhausted(store, &claim("carol", &[&bp], &[&host]), "the one taken").await;
    for c in decoys {
        delete(store, &c.id).await;
    }
    delete(store, &got.id).await;
}

/// A claim writes the owner and lease fields, bumps the version and opens the lease.
pub async fn claim_sets_the_lease(store: &dyn Store) {
    let host = new_id();
    let mut c = ready_cluster("bp", &host);
    c.stopped_nodes.insert("vp0".into());
    insert(store, &c).await;
    let req = claim(&unique("user"), &["bp"], &[&host]);
    let got = claimed(store, &req).await;
    assert_eq!(got.status, ClusterStatus::Applied);
    assert!(
        got.stopped_nodes.is_empty(),
        "a fresh lease starts with every node wanted"
    );
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
    assert!(lease.release_reason.is_none());
    release_and_delete(store, &c.id).await;
}

/// Many concurrent claims over few clusters: each cluster goes to exactly one.
pub async fn concurrent_claims_never_share(store: &dyn Store) {
    let host = new_id();
    let bp = unique("bp");
    let clusters: Vec<Cluster> = (0..8).map(|_| ready_cluster(&bp, &host)).collect();
    for c in &clusters {
        insert(store, c).await;
    }
    let claims: Vec<Claim> = (0..40)
        .map(|i| claim(&format!("u{i}"), &[&bp], &[&host]))
        .collect();
    let results = join_all(claims.iter().map(|c| store.claim_cluster(c))).await;
    let won: Vec<Cluster> = results
        .into_iter()
        .filter_map(|r| match r.expect("claim does not fail") {
            ClaimOutcome::Claimed(c) => Some(c),
            ClaimOutcome::Exhausted => None,
            other => panic!("claims with allow_multiple only claim or find none: {other:?}"),
        })
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
        release_and_delete(store, &c.id).await;
    }
}

/// Without `allow_multiple`, a user gets back the cluster they hold of a wanted
/// blueprint (on any host), is refused a second single cluster of another blueprint,
/// and may still take more with `allow_multiple`.
pub async fn single_claim_returns_the_held_cluster(store: &dyn Store) {
    let host = new_id();
    let (a, b) = (unique("bp"), unique("bp"));
    let made: Vec<Cluster> = [&a, &a, &b, &b]
        .iter()
        .map(|bp| ready_cluster(bp, &host))
        .collect();
    for c in &made {
        insert(store, c).await;
    }
    let user = unique("user");
    let first = claimed(store, &single_claim(&user, &[&a], &[&host])).await;
    assert!(first.single_apply);
    let lease = store
        .get_lease(first.lease_id.as_deref().expect("lease id"))
        .await
        .expect("lease")
        .expect("opened");
    match store
        .claim_cluster(&single_claim(&user, &[&a], &[&new_id()]))
        .await
        .expect("claim")
    {
        ClaimOutcome::Held(c) => assert_eq!((c.id, c.version), (first.id.clone(), first.version)),
        other => panic!("expected the held cluster, got {other:?}"),
    }
    match store
        .claim_cluster(&single_claim(&user, &[&b], &[&host]))
        .await
        .expect("claim")
    {
        ClaimOutcome::HoldsOther(c) => assert_eq!(c.id, first.id),
        other => panic!("expected HoldsOther, got {other:?}"),
    }
    let more = claimed(store, &claim(&user, &[&b], &[&host])).await;
    assert!(!more.single_apply);
    match store
        .claim_cluster(&single_claim(&user, &[&b], &[&host]))
        .await
        .expect("claim")
    {
        ClaimOutcome::Held(c) => assert_eq!(c.id, more.id, "any held cluster of the blueprint is returned"),
        other => panic!("expected the held cluster of b, got {other:?}"),
    }
    let other_user = claimed(store, &single_claim(&unique("user"), &[&a], &[&host])).await;
    assert_ne!(
        other_user.id, first.id,
        "another user is not given what this one holds"
    );
    let leases = store.list_leases(Some(&user), Page::ALL).await.expect("leases");
    assert_eq!(leases.total, 2, "a held cluster opens no new lease");
    assert!(leases.items.iter().any(|l| l.id == lease.id));
    for c in [&first, &more, &other_user] {
        release_and_delete(store, &c.id).await;
    }
    for c in &made {
        delete(store, &c.id).await;
    }
}

/// Fifty concurrent claims without `allow_multiple` by one user take exactly one
/// cluster; each of them gets that cluster.
pub async fn concurrent_single_claims_of_one_user_take_one(store: &dyn Store) {
    let host = new_id();
    let bp = unique("bp");
    let made: Vec<Cluster> = (0..10).map(|_| ready_cluster(&bp, &host)).collect();
    for c in &made {
        insert(store, c).await;
    }
    let user = unique("user");
    let claims: Vec<Claim> = (0..50).map(|_| single_claim(&user, &[&bp], &[&host])).collect();
    let results = join_all(claims.iter().map(|c| store.claim_cluster(c))).await;
    let mut got = BTreeSet::new();
    let mut taken = 0;
    for r in results {
        match r.expect("claim does not fail") {
            ClaimOutcome::Claimed(c) => {
                taken += 1;
                got.insert(c.id);
            }
            ClaimOutcome::Held(c) => {
                got.insert(c.id);
            }
            other => panic!("expected Claimed or Held, got {other:?}"),
        }
    }
    assert_eq!(taken, 1, "exactly one claim takes a cluster");
    assert_eq!(got.len(), 1, "every claim gets the same cluster: {got:?}");
    let held = ClusterFilter {
        user_id: Some(user.clone()),
        ..ClusterFilter::default()
    };
    assert_eq!(
        store.list_clusters(&held, Page::ALL).await.expect("list").total,
        1
    );
    assert_eq!(
        store
            .list_leases(Some(&user), Page::ALL)
            .await
            .expect("leases")
            .total,
        1
    );
    for id in &got {
        release_and_delete(store, id).await;
    }
    for c in &made {
        delete(store, &c.id).await;
    }
}

/// Release moves applied → releasing once, clears the owner and closes the lease.
pub async fn release_is_once(store: &dyn Store) {
    let host = new_id();
    let ready = ready_cluster("bp", &host);
    insert(store, &ready).await;
    let release =
        |id: String, now| async move { store.release_cluster(&id, now, ReleaseReason::Expired).await };
    assert!(
        release(ready.id.clone(), Utc::now())
            .await
            .expect("release")
            .is_none(),
        "a ready cluster is not released"
    );
    assert!(release(new_id(), Utc::now()).await.expect("release").is_none());

    let req = single_claim(&unique("dave"), &["bp"], &[&host]);
    let applied = claimed(store, &req).await;
    let now = Utc::now();
    let results = join_all((0..5).map(|_| release(applied.id.clone(), now))).await;
    let winners: Vec<Cluster> = results.into_iter().filter_map(|r| r.expect("release")).collect();
    assert_eq!(winners.len(), 1, "exactly one of concurrent releases wins");
    let released = &winners[0];
    assert_eq!(released.status, ClusterStatus::Releasing);
    assert_eq!(released.user_id, None);
    assert_eq!(released.applied_at, None);
    assert_eq!(released.expires_at, None);
    assert_eq!(released.lease_id, None);
    assert!(released.metadata.is_empty());
    assert!(!released.single_apply);
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
    assert_eq!(lease.release_reason, Some(ReleaseReason::Expired));
    delete(store, &released.id).await;
}

/// Leases list newest apply first, per user, in pages.
pub async fn leases_newest_first(store: &dyn Store) {
    let host = new_id();
    let user = unique("user");
    let mut lease_ids = Vec::new();
    for i in 0..3 {
        let c = ready_cluster("bp", &host);
        insert(store, &c).await;
        let mut req = claim(&user, &["bp"], &[&host]);
        req.now = Utc::now() + Duration::seconds(i);
        let got = claimed(store, &req).await;
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
        delete(store, &c.id).await;
    }
}

/// A time far in the future, at a random minute, so that no other case's or run's
/// leases fall in the ten minutes from it.
fn quiet_minute() -> chrono::DateTime<Utc> {
    let offset = uuid::Uuid::new_v4().as_u128() % 1_000_000;
    MinuteSummary::minute_of(Utc::now() + Duration::days(3650)) + Duration::minutes(offset as i64)
}

/// Claims one new cluster of a new host per `(applied, released)`, at those seconds
/// from `at`, releasing it then if given; returns the cluster ids.
async fn leases_at(
    store: &dyn Store,
    at: chrono::DateTime<Utc>,
    times: &[(i64, Option<i64>)],
) -> Vec<String> {
    let host = new_id();
    let user = unique("user");
    let mut ids = Vec::new();
    for (applied, released) in times {
        let c = ready_cluster("bp", &host);
        insert(store, &c).await;
        let mut req = claim(&user, &["bp"], &[&host]);
        req.now = at + Duration::seconds(*applied);
        claimed(store, &req).await;
        if let Some(released) = released {
            store
                .release_cluster(&c.id, at + Duration::seconds(*released), ReleaseReason::Release)
                .await
                .expect("release");
        }
        ids.push(c.id);
    }
    ids
}

/// The buckets of `width` from `since` that start before `end`: leases of another
/// run side by side fall at another random minute, later ones past `end`.
async fn activity_until(
    store: &dyn Store,
    since: chrono::DateTime<Utc>,
    width: Duration,
    end: chrono::DateTime<Utc>,
) -> Vec<(i32, u64, u64)> {
    let got = store.lease_activity(since, width).await.expect("activity");
    got.into_iter()
        .filter(|b| b.start < end)
        .map(|b| {
            let i = (b.start - since).num_milliseconds() / width.num_milliseconds();
            assert_eq!(
                b.start,
                since + width * i as i32,
                "bucket {b:?} starts on a boundary"
            );
            (i as i32, b.applied, b.released)
        })
        .collect()
}

/// Applies and releases are counted in the bucket they fall in, from `since` on.
pub async fn lease_activity_counts_per_bucket(store: &dyn Store) {
    // Within a minute, as a dashboard asks for "the last hour".
    let since = quiet_minute() + Duration::milliseconds(uuid::Uuid::new_v4().as_u128() as i64 % 60_000);
    let minute = Duration::minutes(1);
    let ids = leases_at(
        store,
        since,
        &[(5, Some(150)), (65, None), (65, Some(90)), (305, None)],
    )
    .await;
    let end = since + Duration::minutes(10);
    assert_eq!(
        activity_until(store, since, minute, end).await,
        [(0, 1, 0), (1, 2, 1), (2, 0, 1), (5, 1, 0)]
    );
    let later = activity_until(store, since + Duration::minutes(2), minute, end).await;
    assert_eq!(
        later.len(),
        2,
        "what happened before since does not count: {later:?}"
    );
    for id in ids {
        release_and_delete(store, &id).await;
    }
}

/// Buckets of whole minutes from a `since` within a minute: the part of a minute
/// before a bucket boundary counts in the bucket before, what is before `since` in
/// none; buckets of other widths count the same way.
pub async fn lease_activity_splits_minutes(store: &dyn Store) {
    let minute = quiet_minute();
    let since = minute + Duration::seconds(30);
    let ids = leases_at(
        store,
        since,
        &[
            (-10, Some(35)),
            (35, Some(115)),
            (115, None),
            (125, Some(245)),
            (245, None),
        ],
    )
    .await;
    let end = since + Duration::minutes(10);
    let cases = [
        (since, Duration::minutes(2), vec![(0, 2, 2), (1, 1, 0), (2, 1, 1)]),
        (
            since,
            Duration::seconds(90),
            vec![(0, 1, 1), (1, 2, 1), (2, 1, 1)],
        ),
        (since, Duration::hours(1), vec![(0, 4, 3)]),
        (
            minute,
            Duration::minutes(1),
            vec![(0, 1, 0), (1, 1, 1), (2, 2, 1), (4, 1, 1)],
        ),
        (
            minute + Duration::seconds(25),
            Duration::minutes(3),
            vec![(0, 3, 2), (1, 1, 1)],
        ),
    ];
    for (from, width, expected) in cases {
        assert_eq!(
            activity_until(store, from, width, end).await,
            expected,
            "buckets of {width} from {from}"
        );
    }
    for id in ids {
        release_and_delete(store, &id).await;
    }
}

fn operation(host_id: &str, kind: OperationKind) -> Operation {
    let now = Utc::now();
    Operation {
        id: new_id(),
        kind,
        host_id: host_id.to_owned(),
        status: OperationStatus::Running,
        done: 0,
        total: 4,
        error: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    }
}

/// Operations are stored and replaced whole.
pub async fn operations_round_trip(store: &dyn Store) {
    let mut op = operation(&new_id(), OperationKind::Fill);
    store.put_operation(&op).await.expect("put");
    assert_eq!(
        store.get_operation(&op.id).await.expect("get").map(|o| o.total),
        Some(4)
    );
    op.done = 4;
    op.status = OperationStatus::Failed;
    op.error = Some("image missing".into());
    op.updated_at = Utc::now();
    op.finished_at = Some(Utc::now());
    store.put_operation(&op).await.expect("replace");
    let got = store.get_operation(&op.id).await.expect("get").expect("exists");
    assert_eq!((got.done, got.status), (4, OperationStatus::Failed));
    assert_eq!(got.error.as_deref(), Some("image missing"));
    assert!(same_instant(got.updated_at, op.updated_at));
    assert!(got
        .finished_at
        .zip(op.finished_at)
        .is_some_and(|(a, b)| same_instant(a, b)));
    assert!(store.get_operation(&new_id()).await.expect("get").is_none());
}

/// Operations list newest first, filtered by host, kind and status, in pages.
pub async fn operations_filter_and_page(store: &dyn Store) {
    let host = new_id();
    let mut made = Vec::new();
    for (i, kind) in [OperationKind::Fill, OperationKind::Clean, OperationKind::Fill]
        .into_iter()
        .enumerate()
    {
        let mut op = operation(&host, kind);
        op.created_at = Utc::now() + Duration::seconds(i as i64);
        if i == 0 {
            op.status = OperationStatus::Interrupted;
        }
        store.put_operation(&op).await.expect("put");
        made.push(op);
    }
    store
        .put_operation(&operation(&new_id(), OperationKind::Fill))
        .await
        .expect("another host's");
    let on_host = OperationFilter {
        host_id: Some(host.clone()),
        ..OperationFilter::default()
    };
    let all = store.list_operations(&on_host, Page::ALL).await.expect("list");
    let ids = |ops: &[Operation]| ops.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
    let newest_first: Vec<String> = made.iter().rev().map(|o| o.id.clone()).collect();
    assert_eq!(ids(&all.items), newest_first);
    assert_eq!(all.total, 3);
    let page = store
        .list_operations(&on_host, Page { offset: 1, limit: 1 })
        .await
        .expect("page");
    assert_eq!((page.total, ids(&page.items)), (3, vec![made[1].id.clone()]));
    let fills = OperationFilter {
        kind: Some(OperationKind::Fill),
        ..on_host.clone()
    };
    assert_eq!(
        store
            .list_operations(&fills, Page::ALL)
            .await
            .expect("fills")
            .total,
        2
    );
    let interrupted = OperationFilter {
        status: Some(OperationStatus::Interrupted),
        ..on_host
    };
    let got = store
        .list_operations(&interrupted, Page::ALL)
        .await
        .expect("interrupted");
    assert_eq!(ids(&got.items), vec![made[0].id.clone()]);
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

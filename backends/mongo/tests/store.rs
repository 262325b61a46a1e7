//! What the Mongo store promises beyond the shared suite: lease records survive a
//! crash between a claim's or a release's two writes, documents of an earlier
//! version are migrated, locks and keys behave on a real server, two connections
//! (as two servers) share one pool without exceeding a capacity or a single claim,
//! and connection errors are clear.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use bson::{doc, Document};
use chrono::{Duration, Utc};
use futures::future::join_all;
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use poolcore::conformance::store::{ready_cluster, sample_blueprint, sample_host};
use poolcore::model::new_id;
use poolcore::{
    ApplyRequest, Claim, ClaimOutcome, Cluster, ClusterFilter, ClusterStatus, LeaseRecord, Page, Pool,
    PoolConfig, ReleaseReason, Store,
};
use poolcore_mongo::{LeaseRepair, MongoConfig, MongoStore};

fn claim(user: &str, blueprint: &str, host: &str) -> Claim {
    Claim {
        user_id: user.into(),
        blueprints: vec![blueprint.into()],
        hosts: vec![host.into()],
        metadata: [("ticket".to_string(), "42".to_string())].into(),
        lease_id: new_id(),
        now: Utc::now(),
        expires_at: None,
        allow_multiple: true,
        max_held: None,
        blueprint_quotas: Default::default(),
    }
}

/// A store on the same database as `store`, through its own client: as a second
/// server sees it.
async fn second_server(store: &MongoStore) -> MongoStore {
    MongoStore::with_config(store.config().clone())
        .await
        .expect("second connection")
}

/// Two servers on one fresh database, each with its own client.
struct Servers {
    first: MongoStore,
    second: MongoStore,
}

impl Servers {
    async fn start() -> Option<Self> {
        let first = common::fresh_store().await?;
        let second = second_server(&first).await;
        Some(Servers { first, second })
    }

    /// The server the `i`th of many concurrent calls goes to: each in turn.
    fn nth(&self, i: usize) -> &MongoStore {
        if i.is_multiple_of(2) {
            &self.first
        } else {
            &self.second
        }
    }

    /// Inserts `clusters` all at once, spread over both servers; returns how many
    /// went in.
    async fn insert_all(&self, clusters: &[Cluster], capacity: u32) -> usize {
        let results = join_all(
            clusters
                .iter()
                .enumerate()
                .map(|(i, c)| self.nth(i).insert_cluster(c, capacity)),
        )
        .await;
        results
            .into_iter()
            .filter(|r| *r.as_ref().expect("insert"))
            .count()
    }

    /// Claims with `claims` all at once, spread over both servers.
    async fn claim_all(&self, claims: &[Claim]) -> Vec<ClaimOutcome> {
        let results = join_all(
            claims
                .iter()
                .enumerate()
                .map(|(i, c)| self.nth(i).claim_cluster(c)),
        )
        .await;
        // Each server writes its claims' lease records behind them; a reader on the
        // other server sees them once written.
        self.first.flush_leases().await;
        self.second.flush_leases().await;
        results
            .into_iter()
            .map(|r| r.expect("claim does not fail"))
            .collect()
    }

    async fn stop(self) {
        common::drop_database(self.first).await;
    }
}

/// Inserts `cluster` on a host with room to spare.
async fn insert(store: &MongoStore, cluster: &Cluster) {
    assert!(store.insert_cluster(cluster, 100).await.expect("insert"));
}

/// The cluster `req` took; panics on any other outcome.
async fn take(store: &MongoStore, req: &Claim) -> Cluster {
    match store.claim_cluster(req).await.expect("claim") {
        ClaimOutcome::Claimed(c) => c,
        other => panic!("expected a claimed cluster, got {other:?}"),
    }
}

fn collection(store: &MongoStore, name: &str) -> mongodb::Collection<Document> {
    store.database().collection(name)
}

async fn lease(store: &MongoStore, id: &str) -> Option<LeaseRecord> {
    store.get_lease(id).await.expect("get lease")
}

/// A claimed cluster on a fresh host; returns it with the claim.
async fn claimed(store: &MongoStore) -> (Cluster, Claim) {
    let host = new_id();
    let cluster = ready_cluster("bp", &host);
    insert(store, &cluster).await;
    let req = claim(&format!("user-{}", &new_id()[..8]), "bp", &host);
    (take(store, &req).await, req)
}

/// A cluster claimed, then released at `at`; returns it with the claim.
async fn released(store: &MongoStore, at: chrono::DateTime<Utc>) -> (Cluster, Claim) {
    let (cluster, req) = claimed(store).await;
    store
        .release_cluster(&cluster.id, at, ReleaseReason::Expired)
        .await
        .expect("release")
        .expect("released");
    (cluster, req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_cut_short_gets_its_lease_back() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    // The state a crash after the claim's cluster write leaves: applied, no lease.
    let mut cluster = ready_cluster("bp", &new_id());
    cluster.status = ClusterStatus::Applied;
    cluster.user_id = Some("alice".into());
    cluster.lease_id = Some(new_id());
    cluster.applied_at = Some(Utc::now());
    cluster.metadata.insert("ticket".into(), "7".into());
    insert(&store, &cluster).await;
    let lease_id = cluster.lease_id.clone().expect("lease id");
    assert!(lease(&store, &lease_id).await.is_none());

    let repair = store.repair_leases().await.expect("repair");
    assert_eq!(
        repair,
        LeaseRepair {
            written: 1,
            closed: 0
        }
    );
    let rebuilt = lease(&store, &lease_id).await.expect("lease written");
    assert_eq!(
        (rebuilt.cluster_id.as_str(), rebuilt.user_id.as_str()),
        (cluster.id.as_str(), "alice")
    );
    assert_eq!(rebuilt.metadata, cluster.metadata);
    assert!(rebuilt.released_at.is_none(), "the cluster is still applied");
    assert_eq!(
        store.repair_leases().await.expect("repair"),
        LeaseRepair::default(),
        "a second repair has nothing to do"
    );

    // Releasing it closes the rebuilt lease; none is duplicated.
    let now = Utc::now();
    store
        .release_cluster(&cluster.id, now, ReleaseReason::Release)
        .await
        .expect("release")
        .expect("released");
    let user_leases = store.list_leases(Some("alice"), Page::ALL).await.expect("list");
    assert_eq!(user_leases.total, 1);
    assert!(user_leases.items[0].released_at.is_some());
    assert_eq!(user_leases.items[0].release_reason, Some(ReleaseReason::Release));
    common::drop_database(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_cut_short_closes_its_lease_at_the_release_time() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    let leases = collection(&store, "leases");

    // Crash after the release's cluster write: the lease record is still open.
    let released_at = Utc::now() - Duration::minutes(5);
    let (open_case, open_claim) = released(&store, released_at).await;
    leases
        .update_one(
            doc! {"_id": &open_claim.lease_id},
            doc! {"$set": {"released_at": null, "release_reason": null}},
        )
        .await
        .expect("reopen the lease");

    // Crash after the claim's cluster write and again after the release's: the
    // lease record was never written.
    let (missing_case, missing_claim) = released(&store, released_at).await;
    leases
        .delete_one(doc! {"_id": &missing_claim.lease_id})
        .await
        .expect("lose the lease");

    let repair = store.repair_leases().await.expect("repair");
    assert_eq!(
        repair,
        LeaseRepair {
            written: 1,
            closed: 1
        }
    );
    for (req, cluster) in [(&open_claim, &open_case), (&missing_claim, &missing_case)] {
        let record = lease(&store, &req.lease_id).await.expect("lease kept");
        assert_eq!(record.cluster_id, cluster.id);
        assert_eq!(record.user_id, req.user_id);
        assert_eq!(record.metadata, req.metadata);
        let closed = record.released_at.expect("closed");
        assert!(
            (closed - released_at).num_milliseconds().abs() < 1,
            "closed at the release time {released_at}, not at the repair: {closed}"
        );
        assert_eq!(
            record.release_reason,
            Some(ReleaseReason::Expired),
            "closed for the reason of the release"
        );
    }
    common::drop_database(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_lease_of_a_gone_cluster_is_closed() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    let (cluster, req) = claimed(&store).await;
    let (kept, kept_claim) = claimed(&store).await;
    collection(&store, "clusters")
        .delete_one(doc! {"_id": &cluster.id})
        .await
        .expect("remove the cluster behind the store's back");
    let before = Utc::now();
    let repair = store.repair_leases().await.expect("repair");
    assert_eq!(
        repair,
        LeaseRepair {
            written: 0,
            closed: 1
        }
    );
    let closed = lease(&store, &req.lease_id).await.expect("lease kept");
    assert!(closed
        .released_at
        .is_some_and(|t| t >= before - Duration::seconds(1)));
    assert_eq!(closed.release_reason, Some(ReleaseReason::Deleted));
    let open = lease(&store, &kept_claim.lease_id).await.expect("lease kept");
    assert!(
        open.released_at.is_none(),
        "the applied cluster {} keeps its lease",
        kept.id
    );
    common::drop_database(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lock_does_not_open_another() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    let now = Utc::now();
    let held = format!("held-{}", &new_id()[..8]);
    let expired = format!("expired-{}", &new_id()[..8]);
    assert!(store
        .acquire_lock(
            &expired,
            "x",
            now - Duration::minutes(2),
            now - Duration::minutes(1)
        )
        .await
        .expect("acquire"));
    assert!(store
        .acquire_lock(&held, "b", now, now + Duration::minutes(1))
        .await
        .expect("acquire"));
    assert!(
        !store
            .acquire_lock(&held, "a", now, now + Duration::minutes(1))
            .await
            .expect("acquire"),
        "another lock's expiry does not free this one"
    );
    let locks: Vec<Document> = {
        use futures::TryStreamExt;
        collection(&store, "locks")
            .find(doc! {})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("read")
    };
    let holders: BTreeSet<(String, String)> = locks
        .iter()
        .map(|l| {
            let field = |k| l.get_str(k).expect("a string").to_owned();
            (field("_id"), field("holder"))
        })
        .collect();
    assert_eq!(
        holders,
        BTreeSet::from([(expired, "x".into()), (held, "b".into())])
    );
    common::drop_database(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_dots_and_dollars_round_trip() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    let mut host = sample_host();
    host.labels.insert("app.kubernetes.io/name".into(), "pool".into());
    host.labels.insert("$where".into(), "eu".into());
    store.insert_host(&host).await.expect("insert host");
    let got = store.get_host(&host.id).await.expect("get").expect("exists");
    assert_eq!(got.labels, host.labels);

    let host_id = new_id();
    let mut cluster = ready_cluster("bp", &host_id);
    let endpoints = cluster.deployment.nodes.remove("vp0").expect("a node");
    cluster.deployment.nodes.insert("peer0.org1".into(), endpoints);
    cluster.stopped_nodes.insert("peer0.org1".into());
    insert(&store, &cluster).await;
    let stored = store
        .get_cluster(&cluster.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(stored.stopped_nodes, cluster.stopped_nodes);
    let mut req = claim("alice", "bp", &host_id);
    req.metadata.insert("build.id".into(), "1.2".into());
    req.metadata.insert("$cost".into(), "100%".into());
    let got = take(&store, &req).await;
    assert_eq!(got.metadata, req.metadata);
    assert!(got.deployment.nodes.contains_key("peer0.org1"));
    let record = lease(&store, &req.lease_id).await.expect("lease");
    assert_eq!(record.metadata, req.metadata);
    common::drop_database(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_share_one_pool() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let host = new_id();
    for _ in 0..10 {
        insert(&servers.first, &ready_cluster("bp", &host)).await;
    }
    let claims: Vec<Claim> = (0..40).map(|i| claim(&format!("u{i}"), "bp", &host)).collect();
    let won: Vec<String> = servers
        .claim_all(&claims)
        .await
        .into_iter()
        .filter_map(|outcome| match outcome {
            ClaimOutcome::Claimed(c) => Some(c.id),
            _ => None,
        })
        .collect();
    let distinct: BTreeSet<&String> = won.iter().collect();
    assert_eq!((won.len(), distinct.len()), (10, 10), "each cluster once");
    let leases = servers.second.list_leases(None, Page::ALL).await.expect("list");
    assert_eq!(leases.total, 10, "one lease per claimed cluster");
    servers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_filling_one_host_never_exceed_its_capacity() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let host = new_id();
    let on_host = ClusterFilter {
        host_id: Some(host.clone()),
        ..ClusterFilter::default()
    };
    // The second round, at a lowered capacity, finds the host full already.
    for (capacity, expected) in [(7, 7), (3, 0)] {
        let clusters: Vec<Cluster> = (0..30).map(|_| ready_cluster("bp", &host)).collect();
        let inserted = servers.insert_all(&clusters, capacity).await;
        let listing = servers
            .first
            .list_clusters(&on_host, Page::ALL)
            .await
            .expect("list");
        assert_eq!((inserted, listing.total), (expected, 7), "capacity {capacity}");
    }
    servers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lowered_capacity_holds_after_deletes() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let host = new_id();
    let clusters: Vec<Cluster> = (0..6).map(|_| ready_cluster("bp", &host)).collect();
    assert_eq!(servers.insert_all(&clusters, 6).await, 6);
    // Lowered to 4 with slots 0, 4 and 5 left in use: only one more fits.
    for c in &clusters[1..4] {
        assert!(servers
            .first
            .delete_cluster(&c.id, c.version)
            .await
            .expect("delete"));
    }
    let more: Vec<Cluster> = (0..12).map(|_| ready_cluster("bp", &host)).collect();
    assert_eq!(
        servers.insert_all(&more, 4).await,
        1,
        "3 clusters left on a host of capacity 4"
    );
    let slots = slots_of(&servers.first, &host).await;
    assert_eq!(
        slots,
        BTreeSet::from([0, 1, 2, 3]),
        "every cluster moved below the capacity"
    );
    servers.stop().await;
}

/// The slots the clusters of `host` sit on.
async fn slots_of(store: &MongoStore, host: &str) -> BTreeSet<i64> {
    use futures::TryStreamExt;
    let docs: Vec<Document> = collection(store, "clusters")
        .find(doc! {"host_id": host})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("read");
    // A server may store a whole number it was given as 64 bits in 32 (nx-27017 does).
    let slot = |d: &Document| match d.get("slot") {
        Some(bson::Bson::Int32(n)) => i64::from(*n),
        Some(bson::Bson::Int64(n)) => *n,
        other => panic!("not a slot: {other:?}"),
    };
    docs.iter().map(slot).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_single_claims_of_one_user_through_two_servers_take_one_cluster() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let host = new_id();
    for _ in 0..10 {
        insert(&servers.first, &ready_cluster("bp", &host)).await;
    }
    let user = format!("user-{}", &new_id()[..8]);
    let claims: Vec<Claim> = (0..50)
        .map(|_| Claim {
            allow_multiple: false,
            ..claim(&user, "bp", &host)
        })
        .collect();
    let (mut taken, mut got) = (0, BTreeSet::new());
    for outcome in servers.claim_all(&claims).await {
        match outcome {
            ClaimOutcome::Claimed(c) => {
                taken += 1;
                got.insert(c.id);
            }
            ClaimOutcome::Held(c) => drop(got.insert(c.id)),
            other => panic!("expected Claimed or Held, got {other:?}"),
        }
    }
    assert_eq!((taken, got.len()), (1, 1), "one cluster, taken once: {got:?}");
    let leases = servers
        .first
        .list_leases(Some(&user), Page::ALL)
        .await
        .expect("leases");
    assert_eq!(leases.total, 1);
    servers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_versions_documents_are_migrated_at_connect() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    let (hosts, clusters) = (collection(&store, "hosts"), collection(&store, "clusters"));
    let host = sample_host();
    store.insert_host(&host).await.expect("insert host");
    hosts
        .update_one(doc! {"_id": &host.id}, doc! {"$unset": {"version": ""}})
        .await
        .expect("as an earlier version wrote it");
    let host_id = new_id();
    let old: Vec<Cluster> = (0..3).map(|_| ready_cluster("bp", &host_id)).collect();
    for c in &old {
        insert(&store, c).await;
    }
    clusters
        .update_many(
            doc! {"host_id": &host_id},
            doc! {"$unset": {"slot": "", "stopped_nodes": "", "single_apply": ""}},
        )
        .await
        .expect("as an earlier version wrote them");

    let reopened = second_server(&store).await;
    assert_eq!(slots_of(&reopened, &host_id).await, BTreeSet::from([0, 1, 2]));
    let got = reopened.get_host(&host.id).await.expect("get").expect("exists");
    assert_eq!(got.version, 0);
    let mut renamed = got.clone();
    renamed.name = format!("{}-renamed", host.name);
    assert_eq!(reopened.update_host(&renamed).await.expect("update").version, 1);
    let cluster = reopened
        .get_cluster(&old[0].id)
        .await
        .expect("get")
        .expect("exists");
    assert!(cluster.stopped_nodes.is_empty() && !cluster.single_apply);
    assert!(!reopened
        .insert_cluster(&ready_cluster("bp", &host_id), 3)
        .await
        .expect("insert"));
    assert!(reopened
        .insert_cluster(&ready_cluster("bp", &host_id), 4)
        .await
        .expect("insert"));
    common::drop_database(store).await;
}

#[tokio::test]
async fn connection_errors_are_clear() {
    let err = MongoStore::from_url("mongodb://127.0.0.1:9/pool?serverSelectionTimeoutMS=300")
        .await
        .expect_err("nothing listens on port 9");
    assert_eq!(err.code(), "unavailable", "{err}");
    let err = MongoStore::from_url("mongodb://h/pool?maxPoolSize=lots&serverSelectionTimeoutMS=300")
        .await
        .expect_err("a bad option");
    assert_eq!(err.code(), "invalid_input", "{err}");
    let err = MongoStore::with_config(MongoConfig::new(
        "mongodb://u:s3cret@h:1/x?authMechanism=BOGUS&serverSelectionTimeoutMS=300",
    ))
    .await
    .expect_err("an unknown auth mechanism");
    assert_eq!(err.code(), "invalid_input", "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// A store on a fresh database that records every command it sends, as "command
/// collection".
async fn watched_store() -> Option<(Arc<MongoStore>, Arc<Mutex<Vec<String>>>)> {
    let url = common::server_url()?;
    let config = MongoConfig::from_url(&url)
        .expect("test server URL")
        .with_database(format!("pm_test_{}", &new_id()[..8]));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&sent);
    let store = MongoStore::with_client_options(config, move |options| {
        options.command_event_handler = Some(EventHandler::callback(move |event| {
            if let CommandEvent::Started(started) = event {
                let collection = started.command.get_str(&started.command_name).unwrap_or_default();
                let sent = format!("{} {collection}", started.command_name);
                log.lock().expect("command log").push(sent);
            }
        }));
    })
    .await
    .expect("store");
    Some((Arc::new(store), sent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_takes_at_most_two_round_trips() {
    let Some((mongo, sent)) = watched_store().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::clone(&mongo) as Arc<dyn Store>;
    let host = sample_host();
    let blueprint = sample_blueprint();
    store.insert_host(&host).await.expect("host");
    store.insert_blueprint(&blueprint).await.expect("blueprint");
    for _ in 0..40 {
        let cluster = ready_cluster(&blueprint.name, &host.id);
        assert!(store.insert_cluster(&cluster, 100).await.expect("insert"));
    }
    // The cache of blueprints and hosts stays fresh through the test.
    let config = PoolConfig::default().with_catalog_ttl(std::time::Duration::from_secs(60));
    let pool = Pool::builder(Arc::clone(&store)).with_config(config).build();
    let apply = |user: &str, allow_multiple: bool| ApplyRequest {
        user_id: user.into(),
        blueprint: Some(blueprint.name.clone()),
        allow_multiple,
        ..ApplyRequest::default()
    };
    const LEASE_RECORDS: &str = "insert leases";
    // Their counts in the lease activity, written behind them.
    const LEASE_COUNTS: &str = "update lease_minutes";
    // What was sent since the last call, without the lease records and counts
    // written behind the claims, and how many inserts of records there were.
    let sent_since = || {
        let all = std::mem::take(&mut *sent.lock().expect("command log"));
        let records = all.iter().filter(|c| *c == LEASE_RECORDS).count();
        let others: Vec<String> = all
            .into_iter()
            .filter(|c| c != LEASE_RECORDS && c != LEASE_COUNTS)
            .collect();
        (others, records)
    };
    // The first apply reads the blueprints and hosts into the pool's cache.
    pool.apply(apply("warm", true)).await.expect("apply");
    mongo.flush_leases().await;
    sent_since();

    pool.apply(apply("alice", false)).await.expect("single apply");
    let (by_apply, _) = sent_since();
    assert_eq!(
        by_apply,
        ["find clusters", "findAndModify clusters"],
        "a single apply"
    );

    pool.apply(apply("bob", true))
        .await
        .expect("apply with allow_multiple");
    let (by_apply, _) = sent_since();
    assert_eq!(
        by_apply,
        ["findAndModify clusters"],
        "an apply with allow_multiple"
    );

    // A repeated single apply gets the held cluster back in one round trip.
    let held = pool.apply(apply("alice", false)).await.expect("held");
    assert_eq!(held.user_id.as_deref(), Some("alice"));
    let (by_apply, _) = sent_since();
    assert_eq!(by_apply, ["find clusters"], "a held cluster");

    // Under a burst, many claims' lease records share an insert.
    mongo.flush_leases().await;
    sent_since();
    let burst = join_all((0..30).map(|i| pool.apply(apply(&format!("burst-{i}"), false)))).await;
    assert!(burst.iter().all(Result::is_ok), "{burst:?}");
    mongo.flush_leases().await;
    let (by_burst, records) = sent_since();
    eprintln!(
        "30 concurrent single applies: {} commands, and {records} inserts of lease records",
        by_burst.len()
    );
    assert_eq!(by_burst.len(), 60, "{by_burst:?}");
    assert!(
        records < 30,
        "lease records are batched: {records} inserts for 30 applies"
    );
    let leases = store.list_leases(None, Page::ALL).await.expect("leases");
    assert_eq!(leases.total, 33, "every lease recorded");
    drop((pool, store));
    common::drop_database(Arc::into_inner(mongo).expect("the only handle left")).await;
}

#[tokio::test]
async fn lease_activity_of_an_earlier_version_is_counted_at_connect() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    let host = sample_host();
    let since = Utc::now() - Duration::hours(1);
    let mut ids = Vec::new();
    for minutes in [1, 2, 2] {
        let cluster = ready_cluster("bp", &host.id);
        insert(&store, &cluster).await;
        let mut req = claim("alice", "bp", &host.id);
        req.now = since + Duration::minutes(minutes) + Duration::seconds(10);
        take(&store, &req).await;
        ids.push(cluster.id);
    }
    let at = since + Duration::minutes(3);
    store
        .release_cluster(&ids[0], at, ReleaseReason::Release)
        .await
        .expect("release");
    let hourly = Duration::hours(1);
    let counted = store.lease_activity(since, hourly).await.expect("activity");
    assert_eq!(
        counted
            .iter()
            .map(|b| (b.applied, b.released))
            .collect::<Vec<_>>(),
        [(3, 1)]
    );
    // An earlier version kept no counts.
    collection(&store, "lease_minutes")
        .drop()
        .await
        .expect("drop the counts");
    let upgraded = second_server(&store).await;
    assert_eq!(
        upgraded.lease_activity(since, hourly).await.expect("activity"),
        counted
    );
    let minutes = upgraded
        .lease_activity(since, Duration::minutes(1))
        .await
        .expect("activity per minute");
    assert_eq!(
        minutes
            .iter()
            .map(|b| ((b.start - since).num_minutes(), b.applied, b.released))
            .collect::<Vec<_>>(),
        [(1, 1, 0), (2, 2, 0), (3, 0, 1)]
    );
    common::drop_database(store).await;
}

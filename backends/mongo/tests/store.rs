//! What the Mongo store promises beyond the shared suite: lease records survive a
//! crash between a claim's or a release's two writes, locks and keys behave on a
//! real server, two connections share one pool, and connection errors are clear.

mod common;

use std::collections::BTreeSet;

use bson::{doc, Document};
use chrono::{Duration, Utc};
use futures::future::join_all;
use poolcore::conformance::store::{ready_cluster, sample_host};
use poolcore::model::new_id;
use poolcore::{Claim, Cluster, ClusterStatus, LeaseRecord, Store};
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
    store.insert_cluster(&cluster).await.expect("insert");
    let req = claim(&format!("user-{}", &new_id()[..8]), "bp", &host);
    let got = store
        .claim_cluster(&req)
        .await
        .expect("claim")
        .expect("a cluster");
    (got, req)
}

/// A cluster claimed, then released at `at`; returns it with the claim.
async fn released(store: &MongoStore, at: chrono::DateTime<Utc>) -> (Cluster, Claim) {
    let (cluster, req) = claimed(store).await;
    store
        .release_cluster(&cluster.id, at)
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
    store.insert_cluster(&cluster).await.expect("insert");
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
        .release_cluster(&cluster.id, now)
        .await
        .expect("release")
        .expect("released");
    let user_leases = store
        .list_leases(Some("alice"), poolcore::Page::ALL)
        .await
        .expect("list");
    assert_eq!(user_leases.total, 1);
    assert!(user_leases.items[0].released_at.is_some());
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
            doc! {"$set": {"released_at": null}},
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
    store.insert_cluster(&cluster).await.expect("insert cluster");
    let mut req = claim("alice", "bp", &host_id);
    req.metadata.insert("build.id".into(), "1.2".into());
    req.metadata.insert("$cost".into(), "100%".into());
    let got = store
        .claim_cluster(&req)
        .await
        .expect("claim")
        .expect("a cluster");
    assert_eq!(got.metadata, req.metadata);
    assert!(got.deployment.nodes.contains_key("peer0.org1"));
    let record = lease(&store, &req.lease_id).await.expect("lease");
    assert_eq!(record.metadata, req.metadata);
    common::drop_database(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_share_one_pool() {
    let Some(first) = common::fresh_store().await else {
        return;
    };
    let config = first.config().clone();
    let second = MongoStore::with_config(config).await.expect("second connection");
    let host = new_id();
    let clusters: Vec<Cluster> = (0..10).map(|_| ready_cluster("bp", &host)).collect();
    for c in &clusters {
        first.insert_cluster(c).await.expect("insert");
    }
    let claims: Vec<Claim> = (0..40).map(|i| claim(&format!("u{i}"), "bp", &host)).collect();
    let results = join_all(claims.iter().enumerate().map(|(i, c)| {
        let store: &dyn Store = if i % 2 == 0 { &first } else { &second };
        store.claim_cluster(c)
    }))
    .await;
    let won: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.expect("claim does not fail"))
        .map(|c| c.id)
        .collect();
    let distinct: BTreeSet<&String> = won.iter().collect();
    assert_eq!((won.len(), distinct.len()), (10, 10), "each cluster once");
    let leases = second.list_leases(None, poolcore::Page::ALL).await.expect("list");
    assert_eq!(leases.total, 10, "one lease per claimed cluster");
    common::drop_database(first).await;
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

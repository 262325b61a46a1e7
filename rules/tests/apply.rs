//! Apply: which cluster a user gets, when, and what is refused.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use poolcore::{
    Actor, ApplyRequest, ClusterFilter, ClusterStatus, Error, HostPatch, HostStatus, Labels, PoolConfig,
    ReconcileConfig, ReleaseTarget,
};
use poolcore_rules::{Rig, STORES};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn apply(user: &str, blueprint: Option<&str>, filter: &[(&str, &str)]) -> ApplyRequest {
    ApplyRequest {
        user_id: user.to_owned(),
        blueprint: blueprint.map(str::to_owned),
        labels: labels(filter),
        ..ApplyRequest::default()
    }
}

/// One row of the filter table: the blueprint named, the label filter, and the
/// blueprint of the cluster handed out or the error code.
type FilterRow = (
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
    Result<&'static str, &'static str>,
);

/// Blueprint names and label filters choose the blueprint; what matches nothing is
/// told apart from what is merely all taken.
#[tokio::test]
async fn blueprint_and_label_filters_choose_the_cluster() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("pbft-4", &[("consensus_plugin", "pbft"), ("size", "4")])
            .await;
        rig.blueprint("noops-1", &[("consensus_plugin", "noops"), ("size", "1")])
            .await;
        rig.filled_host("h1", 8).await;
        #[rustfmt::skip]
        let table: &[FilterRow] = &[
            (Some("pbft-4"), &[], Ok("pbft-4")),
            (None, &[("consensus_plugin", "noops")], Ok("noops-1")),
            (None, &[("size", "4")], Ok("pbft-4")),
            (None, &[("consensus_plugin", "pbft"), ("size", "4")], Ok("pbft-4")),
            (Some("pbft-4"), &[("size", "1")], Err("pool_exhausted")),
            (Some("raft-7"), &[], Err("not_found")),
            (None, &[("consensus_plugin", "raft")], Err("not_found")),
        ];
        for (i, (blueprint, filter, expected)) in table.iter().enumerate() {
            let got = rig
                .pool
                .apply(apply(&format!("user-{i}"), *blueprint, filter))
                .await;
            let got = got.as_ref().map(|c| c.blueprint.as_str()).map_err(Error::code);
            assert_eq!(got, *expected, "{kind:?}: case {i}: {blueprint:?} {filter:?}");
        }
    }
}

/// Without `allow_multiple` a user holds one cluster: asking again gives it back,
/// asking for another blueprint is refused; with it, the user gets more.
#[tokio::test]
async fn allow_multiple_decides_between_the_held_cluster_and_a_new_one() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.blueprint("b", &[]).await;
        rig.filled_host("h1", 6).await;
        let first = rig
            .pool
            .apply(apply("alice", Some("a"), &[]))
            .await
            .expect("first");
        let again = rig
            .pool
            .apply(apply("alice", Some("a"), &[]))
            .await
            .expect("again");
        assert_eq!(again.id, first.id, "{kind:?}: the held cluster comes back");
        let other = rig.pool.apply(apply("alice", Some("b"), &[])).await;
        assert!(
            matches!(&other, Err(Error::Conflict { message }) if message.contains("allow_multiple")),
            "{kind:?}: {other:?}"
        );
        let mut multiple = apply("alice", Some("b"), &[]);
        multiple.allow_multiple = true;
        let second = rig
            .pool
            .apply(multiple.clone())
            .await
            .expect("with allow_multiple");
        let third = rig.pool.apply(multiple).await.expect("and again");
        assert_ne!(second.id, third.id, "{kind:?}: allow_multiple hands out another");
        let held = rig
            .pool
            .apply(apply("alice", Some("b"), &[]))
            .await
            .expect("held b");
        assert!([&second.id, &third.id].contains(&&held.id), "{kind:?}");
        let mine = rig
            .clusters(ClusterFilter {
                user_id: Some("alice".into()),
                ..Default::default()
            })
            .await;
        assert_eq!(mine.len(), 3, "{kind:?}");
        assert_eq!(
            rig.pool
                .leases(Some("alice"), Default::default())
                .await
                .expect("leases")
                .total,
            3,
            "{kind:?}: returning a held cluster opens no lease"
        );
    }
}

/// Fifty applies of one user at once, without `allow_multiple`: one cluster, which
/// every one of them gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_applies_of_one_user_get_one_cluster() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.filled_host("h1", 10).await;
        let applies = (0..50).map(|_| rig.pool.apply(apply("bob", None, &[])));
        let got: BTreeSet<String> = futures::future::join_all(applies)
            .await
            .into_iter()
            .map(|r| r.expect("every apply gets the cluster").id)
            .collect();
        assert_eq!(got.len(), 1, "{kind:?}: {got:?}");
        let applied = ClusterFilter {
            status: Some(ClusterStatus::Applied),
            ..Default::default()
        };
        assert_eq!(rig.clusters(applied).await.len(), 1, "{kind:?}");
    }
}

/// Only ready clusters of active, schedulable hosts are handed out; when none is
/// left, apply says the pool is exhausted.
#[tokio::test]
async fn only_active_schedulable_hosts_hand_out_and_then_the_pool_is_exhausted() {
    for kind in STORES {
        let config = PoolConfig::default().with_reconcile(ReconcileConfig::default().with_failed_probes(1));
        let rig = Rig::with_config(kind, config).await;
        rig.blueprint("a", &[]).await;
        let quiet = rig.filled_host("quiet", 2).await;
        let gone = rig.filled_host("gone", 2).await;
        let live = rig.filled_host("live", 2).await;
        let patch = HostPatch {
            schedulable: Some(false),
            ..Default::default()
        };
        rig.pool
            .update_host(&quiet.id, patch)
            .await
            .expect("unschedulable");
        rig.engine("gone").set_down(true);
        rig.pool.reconcile_once().await.expect("reconcile");
        assert_eq!(
            rig.pool.host(&gone.id).await.expect("host").status,
            HostStatus::Inactive
        );

        let mut hosts = BTreeSet::new();
        for i in 0..2 {
            let mut req = apply(&format!("u{i}"), None, &[]);
            req.allow_multiple = true;
            hosts.insert(rig.pool.apply(req).await.expect("a cluster of live").host_id);
        }
        assert_eq!(hosts, BTreeSet::from([live.id.clone()]), "{kind:?}");
        let err = rig
            .pool
            .apply(apply("u9", None, &[]))
            .await
            .expect_err("exhausted");
        assert_eq!(err.code(), "pool_exhausted", "{kind:?}: {err}");

        // The engine back, its clusters are handed out again.
        rig.engine("gone").set_down(false);
        rig.pool.reconcile_once().await.expect("reconcile");
        let got = rig.pool.apply(apply("u10", None, &[])).await.expect("back");
        assert_eq!(got.host_id, gone.id, "{kind:?}");
    }
}

/// Lease lengths: the default, the maximum, and what is refused (never an overflow).
#[tokio::test]
async fn lease_lengths_are_checked_against_the_pool_and_time_itself() {
    for kind in STORES {
        let config = PoolConfig::default()
            .with_default_ttl(Some(Duration::from_secs(60)))
            .with_max_ttl(Some(Duration::from_secs(3600)));
        let rig = Rig::with_config(kind, config).await;
        rig.blueprint("a", &[]).await;
        rig.filled_host("h1", 4).await;
        let with_ttl = |user: &str, ttl: Option<u64>| ApplyRequest {
            ttl: ttl.map(Duration::from_secs),
            allow_multiple: true,
            ..apply(user, None, &[])
        };
        let before = Utc::now();
        let default = rig.pool.apply(with_ttl("a", None)).await.expect("default ttl");
        let lease = default.expires_at.expect("a lease end") - before;
        assert!((59..=61).contains(&lease.num_seconds()), "{kind:?}: {lease}");
        let max = rig
            .pool
            .apply(with_ttl("b", Some(3600)))
            .await
            .expect("the maximum");
        assert!(max.expires_at.is_some());
        #[rustfmt::skip]
        let refused: &[(u64, &str)] = &[
            (3601, "above the maximum"),
            (0, "not between 1 and"),
            (10_000_000_000_000, "not between 1 and"),
        ];
        for (ttl, says) in refused {
            let err = rig
                .pool
                .apply(with_ttl("c", Some(*ttl)))
                .await
                .expect_err("refused");
            assert_eq!(err.code(), "invalid_input", "{kind:?}: {ttl}: {err}");
            assert!(err.to_string().contains(says), "{kind:?}: {ttl}: {err}");
        }

        // Renewal: within the same rules, by the holder only.
        let renewed = rig
            .pool
            .renew(&default.id, Actor::User("a"), Some(Duration::from_secs(1800)))
            .await
            .expect("renew");
        assert!(renewed.expires_at > default.expires_at, "{kind:?}");
        let err = rig
            .pool
            .renew(&default.id, Actor::User("b"), None)
            .await
            .expect_err("not theirs");
        assert_eq!(err.code(), "forbidden", "{kind:?}");
        let err = rig
            .pool
            .renew(&default.id, Actor::Operator, Some(Duration::from_secs(7200)))
            .await
            .expect_err("above the maximum");
        assert_eq!(err.code(), "invalid_input", "{kind:?}");
        rig.pool
            .release(ReleaseTarget::Cluster(default.id.clone()), Actor::Operator)
            .await
            .expect("release");
        let err = rig
            .pool
            .renew(&default.id, Actor::Operator, None)
            .await
            .expect_err("released");
        assert_eq!(err.code(), "conflict", "{kind:?}");
    }
}

/// Without any lease length in the pool, a renewal must say how long.
#[tokio::test]
async fn renewal_without_a_length_needs_one() {
    let rig = Rig::new(STORES[0]).await;
    rig.blueprint("a", &[]).await;
    rig.filled_host("h1", 1).await;
    let c = rig.pool.apply(apply("a", None, &[])).await.expect("apply");
    assert!(c.expires_at.is_none(), "no TTL, no lease end");
    let err = rig
        .pool
        .renew(&c.id, Actor::Operator, None)
        .await
        .expect_err("no length");
    assert!(err.to_string().contains("required"), "{err}");
}

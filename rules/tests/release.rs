//! Release: who may give what back, what the history keeps, and that the cluster
//! comes back fresh.

use poolcore::{
    Actor, ApplyRequest, ClusterFilter, ClusterStatus, Error, Event, ReleaseReason, ReleaseTarget,
};
use poolcore_rules::{Rig, STORES};

fn multiple(user: &str) -> ApplyRequest {
    ApplyRequest {
        user_id: user.to_owned(),
        allow_multiple: true,
        ..ApplyRequest::default()
    }
}

/// A release by cluster answers at once; the cluster is destroyed and made again on
/// its engine, same id, ready for the next user; the lease is closed with its reason.
#[tokio::test]
async fn a_released_cluster_comes_back_fresh_and_its_lease_is_closed() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.filled_host("h1", 1).await;
        let mut events = rig.pool.events();
        let c = rig.pool.apply(multiple("alice")).await.expect("apply");
        let engine = rig.engine("h1");
        let before = engine.counters();
        let released = rig
            .pool
            .release(ReleaseTarget::Cluster(c.id.clone()), Actor::User("alice"))
            .await
            .expect("release");
        assert_eq!(released, vec![c.id.clone()], "{kind:?}");
        rig.pool.wait_idle().await;
        let fresh = rig.pool.cluster(&c.id).await.expect("kept");
        assert_eq!(
            (fresh.status, fresh.user_id.as_deref()),
            (ClusterStatus::Ready, None),
            "{kind:?}"
        );
        let after = engine.counters();
        assert_eq!(
            (after.deletes - before.deletes, after.creates - before.creates),
            (1, 1),
            "{kind:?}"
        );
        let lease = rig
            .pool
            .leases(Some("alice"), Default::default())
            .await
            .expect("leases")
            .items
            .remove(0);
        assert!(lease.released_at.is_some(), "{kind:?}");
        assert_eq!(lease.release_reason, Some(ReleaseReason::Release), "{kind:?}");
        let mut told = None;
        while let Ok(event) = events.try_recv() {
            if let Event::Released { reason, user_id, .. } = event {
                told = Some((reason, user_id));
            }
        }
        assert_eq!(
            told,
            Some((ReleaseReason::Release, "alice".to_owned())),
            "{kind:?}"
        );
    }
}

/// What a release may not do: twice, a ready cluster, someone else's, nothing.
#[tokio::test]
async fn releases_are_refused_clearly() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.filled_host("h1", 3).await;
        let c = rig.pool.apply(multiple("alice")).await.expect("apply");
        let by = |id: &str| ReleaseTarget::Cluster(id.to_owned());
        let err = rig
            .pool
            .release(by(&c.id), Actor::User("mallory"))
            .await
            .expect_err("not hers");
        assert_eq!(err.code(), "forbidden", "{kind:?}: {err}");
        assert!(
            rig.pool.cluster(&c.id).await.expect("get").is_applied(),
            "{kind:?}: still applied"
        );
        rig.pool
            .release(by(&c.id), Actor::Operator)
            .await
            .expect("the operator may");
        let err = rig
            .pool
            .release(by(&c.id), Actor::Operator)
            .await
            .expect_err("twice");
        assert!(matches!(err, Error::Conflict { .. }), "{kind:?}: {err}");
        rig.pool.wait_idle().await;
        let err = rig
            .pool
            .release(by(&c.id), Actor::Operator)
            .await
            .expect_err("a ready one");
        assert!(err.to_string().contains("not applied"), "{kind:?}: {err}");
        let err = rig
            .pool
            .release(by("no-such-id"), Actor::Operator)
            .await
            .expect_err("unknown");
        assert_eq!(err.code(), "not_found", "{kind:?}");
        let nothing = rig
            .pool
            .release(ReleaseTarget::User("nobody".into()), Actor::Operator)
            .await
            .expect("a user holding nothing releases nothing");
        assert!(nothing.is_empty(), "{kind:?}");
    }
}

/// A release by user gives back everything the user holds, and nothing of others.
#[tokio::test]
async fn a_release_by_user_takes_all_of_theirs_only() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.filled_host("h1", 4).await;
        let mine = [
            rig.pool.apply(multiple("carol")).await.expect("one").id,
            rig.pool.apply(multiple("carol")).await.expect("two").id,
        ];
        let theirs = rig.pool.apply(multiple("dave")).await.expect("dave's").id;
        let mut released = rig
            .pool
            .release(ReleaseTarget::User("carol".into()), Actor::Operator)
            .await
            .expect("release carol's");
        released.sort();
        let mut expected = mine.to_vec();
        expected.sort();
        assert_eq!(released, expected, "{kind:?}");
        assert!(
            rig.pool.cluster(&theirs).await.expect("get").is_applied(),
            "{kind:?}"
        );
        rig.pool.wait_idle().await;
        let ready = ClusterFilter {
            status: Some(ClusterStatus::Ready),
            ..Default::default()
        };
        assert_eq!(rig.clusters(ready).await.len(), 3, "{kind:?}");
    }
}

/// Two releases of one cluster at once, through two servers sharing the store:
/// exactly one releases it, and the engine makes it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_releases_recycle_once() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.filled_host("h1", 1).await;
        let other = rig.second_server();
        let c = rig.pool.apply(multiple("erin")).await.expect("apply");
        let before = rig.engine("h1").counters();
        let target = || ReleaseTarget::Cluster(c.id.clone());
        let (a, b) = tokio::join!(
            rig.pool.release(target(), Actor::Operator),
            other.release(target(), Actor::Operator)
        );
        let won = [a, b]
            .into_iter()
            .filter(|r| r.as_ref().is_ok_and(|ids| !ids.is_empty()))
            .count();
        assert_eq!(won, 1, "{kind:?}: exactly one release wins");
        rig.pool.wait_idle().await;
        other.wait_idle().await;
        let after = rig.engine("h1").counters();
        assert_eq!(after.creates - before.creates, 1, "{kind:?}: made again once");
        let lease = rig
            .pool
            .leases(Some("erin"), Default::default())
            .await
            .expect("leases");
        assert_eq!(lease.total, 1, "{kind:?}");
    }
}

//! Quotas: the clusters one user may hold, and a blueprint's most applied at once,
//! through the pool, under concurrency, on every store.

use futures::future::join_all;
use poolcore::{Actor, Error, NewBlueprint, PoolConfig, ReleaseTarget};
use poolcore_rules::{apply_another as apply, new_blueprint, Rig, STORES};

/// The quota named by a refused apply; panics on anything else.
fn quota_of<T: std::fmt::Debug>(result: Result<T, Error>) -> (&'static str, String) {
    match result {
        Err(Error::QuotaExceeded { quota, message }) => (quota, message),
        other => panic!("expected a quota refusal, got {other:?}"),
    }
}

/// Fifty applies of one user who may hold three, at once: exactly three clusters.
#[tokio::test]
async fn fifty_concurrent_applies_of_one_user_get_exactly_the_quota() {
    for kind in STORES {
        let rig = Rig::with_config(kind, PoolConfig::default().with_max_clusters_per_user(Some(3))).await;
        rig.blueprint("bp", &[]).await;
        rig.filled_host("h1", 60).await;
        let results = join_all((0..50).map(|_| rig.pool.apply(apply("ann", "bp")))).await;
        let served = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(served, 3, "{kind:?}");
        for result in results.into_iter().filter(Result::is_err) {
            let (quota, message) = quota_of(result);
            assert_eq!(quota, "user", "{kind:?}");
            assert!(message.contains("\"ann\"") && message.contains('3'), "{message}");
        }
        // Another user is not held back by ann's quota; a release makes room for ann.
        assert!(rig.pool.apply(apply("bob", "bp")).await.is_ok());
        let held = rig
            .pool
            .release(ReleaseTarget::User("ann".into()), Actor::Operator)
            .await
            .expect("release");
        assert_eq!(held.len(), 3);
        assert!(rig.pool.apply(apply("ann", "bp")).await.is_ok(), "{kind:?}");
    }
}

/// A blueprint's `max_applied` holds over every user, however many clusters are free;
/// a blueprint with a quota of 0 is closed to applies.
#[tokio::test]
async fn a_blueprint_quota_holds_over_all_users() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        let limited = NewBlueprint {
            max_applied: Some(4),
            ..new_blueprint("limited", &[])
        };
        rig.pool.create_blueprint(limited).await.expect("blueprint");
        let closed = NewBlueprint {
            max_applied: Some(0),
            ..new_blueprint("closed", &[])
        };
        rig.pool.create_blueprint(closed).await.expect("blueprint");
        rig.filled_host("h1", 30).await;
        let results = join_all((0..30).map(|i| rig.pool.apply(apply(&format!("user-{i}"), "limited")))).await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4, "{kind:?}");
        let (quota, message) = quota_of(results.into_iter().find(Result::is_err).expect("a refusal"));
        assert_eq!(quota, "blueprint");
        assert!(message.contains("\"limited\""), "{message}");
        let (quota, _) = quota_of(rig.pool.apply(apply("ann", "closed")).await);
        assert_eq!(quota, "blueprint", "{kind:?}: a quota of 0 closes the blueprint");
        assert_eq!(
            rig.pool.blueprint("limited").await.expect("read").max_applied,
            Some(4),
            "the quota is kept"
        );
    }
}

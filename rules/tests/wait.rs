//! Applies that wait: in line, first come first served, as clusters become ready (here
//! or on another server sharing the store), never past their deadline, and gone from
//! the line when their caller goes away.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poolcore::{Actor, ApplyRequest, Error, Pool, PoolConfig, ReleaseTarget};
use poolcore_rules::{Rig, STORES};

fn waiting_apply(user: &str, wait: Duration) -> ApplyRequest {
    ApplyRequest {
        user_id: user.to_owned(),
        blueprint: Some("bp".to_owned()),
        wait: Some(wait),
        ..ApplyRequest::default()
    }
}

/// Waits until `pool` counts `n` waiting applies.
async fn until_waiting(pool: &Pool, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.waiting() != n {
        assert!(
            Instant::now() < deadline,
            "{} applies wait, not {n}",
            pool.waiting()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A hundred applies wait on an empty pool; a fill of sixty serves the first sixty in
/// the order they came, a release serves the next, and the rest answer
/// `pool_exhausted` at their deadline, not later. No cluster is handed out twice.
#[tokio::test]
async fn a_hundred_waiters_are_served_in_arrival_order() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("bp", &[]).await;
        let host = rig.host("h1", 60).await;
        let wait = Duration::from_secs(3);
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..100 {
            let (pool, served) = (rig.pool.clone(), Arc::clone(&served));
            waiters.push(tokio::spawn(async move {
                let started = Instant::now();
                let result = pool.apply(waiting_apply(&format!("user-{i:03}"), wait)).await;
                if let Ok(cluster) = &result {
                    served.lock().expect("lock").push((i, cluster.id.clone()));
                }
                (result, started.elapsed())
            }));
            // Each in line before the next comes.
            until_waiting(&rig.pool, i + 1).await;
        }
        rig.pool.fill_host(&host.id, None).await.expect("fill");
        rig.pool.wait_idle().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while served.lock().expect("lock").len() < 60 {
            assert!(
                Instant::now() < deadline,
                "{kind:?}: the fill did not serve 60 waiters"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A release gives the cluster back fresh, and the next in line gets it.
        let first = served.lock().expect("lock")[0].1.clone();
        rig.pool
            .release(ReleaseTarget::Cluster(first.clone()), Actor::Operator)
            .await
            .expect("release");

        let mut exhausted = 0;
        for waiter in waiters {
            let (result, took) = waiter.await.expect("waiter task");
            match result {
                Ok(_) => {}
                Err(Error::PoolExhausted { wanted }) => {
                    exhausted += 1;
                    assert!(wanted.contains("waited 3"), "{wanted}");
                    assert!(
                        took >= wait,
                        "{kind:?}: answered after {took:?}, before its deadline"
                    );
                    assert!(
                        took < wait + Duration::from_secs(2),
                        "{kind:?}: answered after {took:?}, long past its deadline"
                    );
                }
                Err(e) => panic!("{kind:?}: {e}"),
            }
        }
        let served = served.lock().expect("lock").clone();
        let order: Vec<usize> = served.iter().map(|(i, _)| *i).collect();
        assert_eq!(
            order,
            (0..61).collect::<Vec<_>>(),
            "{kind:?}: first come, first served"
        );
        assert_eq!(exhausted, 39, "{kind:?}");
        let ids: BTreeSet<&str> = served[1..].iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids.len(), 60, "{kind:?}: no cluster handed out twice while held");
        assert_eq!(
            served[60].1, first,
            "{kind:?}: the released cluster, made anew, served the 61st"
        );
        assert_eq!(rig.pool.waiting(), 0, "{kind:?}: nobody left in line");
    }
}

/// A waiter whose caller goes away leaves the line at once, and the one behind it
/// moves up.
#[tokio::test]
async fn a_waiter_whose_caller_goes_away_leaves_the_line() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("bp", &[]).await;
        let host = rig.host("h1", 1).await;
        let pool = rig.pool.clone();
        let gone =
            tokio::spawn(async move { pool.apply(waiting_apply("gone", Duration::from_secs(20))).await });
        until_waiting(&rig.pool, 1).await;
        let pool = rig.pool.clone();
        let next =
            tokio::spawn(async move { pool.apply(waiting_apply("next", Duration::from_secs(20))).await });
        until_waiting(&rig.pool, 2).await;
        gone.abort();
        assert!(gone.await.is_err_and(|e| e.is_cancelled()));
        until_waiting(&rig.pool, 1).await;
        rig.pool.fill_host(&host.id, None).await.expect("fill");
        let cluster = next.await.expect("task").expect("served");
        assert_eq!(cluster.user_id.as_deref(), Some("next"), "{kind:?}");
        assert_eq!(rig.pool.waiting(), 0);
    }
}

/// A cluster made by another server sharing the store serves a waiter here, within the
/// poll interval.
#[tokio::test]
async fn a_cluster_made_by_another_server_serves_a_waiter() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("bp", &[]).await;
        let host = rig.host("h1", 1).await;
        let pool = rig.pool.clone();
        let waiter =
            tokio::spawn(async move { pool.apply(waiting_apply("ann", Duration::from_secs(20))).await });
        until_waiting(&rig.pool, 1).await;
        let other = rig.second_server();
        other.fill_host(&host.id, None).await.expect("fill");
        other.wait_idle().await;
        let cluster = waiter.await.expect("task").expect("served");
        assert_eq!(cluster.user_id.as_deref(), Some("ann"), "{kind:?}");
    }
}

/// A wait above the pool's maximum is refused before anything is claimed; a wait of
/// zero answers at once.
#[tokio::test]
async fn a_wait_beyond_the_maximum_is_refused() {
    for kind in STORES {
        let config = PoolConfig::default().with_max_apply_wait(Duration::from_secs(5));
        let rig = Rig::with_config(kind, config).await;
        rig.blueprint("bp", &[]).await;
        rig.filled_host("h1", 1).await;
        let before = rig.snapshot().await;
        match rig.pool.apply(waiting_apply("ann", Duration::from_secs(6))).await {
            Err(Error::Invalid {
                field,
                reason: message,
            }) => {
                assert_eq!(field, "wait_seconds");
                assert!(message.contains("maximum of 5"), "{message}");
            }
            other => panic!("{kind:?}: expected a refusal, got {other:?}"),
        }
        assert_eq!(rig.snapshot().await, before, "{kind:?}: nothing changed");
        assert!(rig.pool.apply(waiting_apply("ann", Duration::ZERO)).await.is_ok());
        let started = Instant::now();
        let exhausted = rig.pool.apply(waiting_apply("bob", Duration::ZERO)).await;
        assert!(
            matches!(exhausted, Err(Error::PoolExhausted { .. })),
            "{exhausted:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a zero wait answers at once"
        );
    }
}

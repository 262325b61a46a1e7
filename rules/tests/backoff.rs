//! Creation backoff: a blueprint whose creations keep failing is left alone for a
//! while, then tried once; a success ends it. On every store, on the simulated engine.

use std::time::Duration;

use poolcore::{ClusterFilter, ClusterStatus, PoolConfig, ReconcileConfig};
use poolcore_rules::{Rig, STORES};

#[tokio::test]
async fn failing_creations_back_off_then_one_trial_brings_them_back() {
    for kind in STORES {
        let config = PoolConfig::default()
            .with_reconcile(ReconcileConfig::default().with_transition_timeout(Duration::ZERO))
            .with_creation_backoff(Duration::from_millis(300), Duration::from_secs(1));
        let rig = Rig::with_config(kind, config).await;
        rig.blueprint("flaky", &[]).await;
        let host = rig.host("h1", 8).await;
        let engine = rig.engine("h1");
        engine.set_create_failure_rate(1.0);
        rig.pool.fill_host(&host.id, None).await.expect("fill");
        rig.pool.wait_idle().await;
        let failed = rig.clusters(ClusterFilter::default()).await;
        assert!(
            failed.iter().all(|c| c.status == ClusterStatus::Failed),
            "{kind:?}"
        );
        let not_tried = failed
            .iter()
            .filter(|c| {
                c.status_reason
                    .as_deref()
                    .is_some_and(|r| r.contains("backing off"))
            })
            .count();
        assert!(not_tried >= 1, "{kind:?}: every one of 8 reached the engine");
        let backoff = rig.pool.creation_backoffs().remove("flaky").expect("backing off");
        assert!(backoff.failures >= 3, "{kind:?}: {backoff:?}");
        let stats = rig.pool.stats().await.expect("stats");
        assert_eq!(stats.blueprints[0].backoff.as_ref(), Some(&backoff), "{kind:?}");

        // While it backs off, passes leave its failed clusters alone.
        let tried = engine.counters().create_failures;
        rig.pool.reconcile_once().await.expect("pass");
        rig.pool.wait_idle().await;
        assert_eq!(
            engine.counters().create_failures,
            tried,
            "{kind:?}: nothing tried"
        );

        // Past it, one trial; its success ends the backoff and the next pass retries all.
        engine.set_create_failure_rate(0.0);
        // Slow enough that the others ask while the trial is under way.
        engine.set_latencies(poolcore_sim::Latencies {
            create_ms: 200,
            ..engine.latencies()
        });
        tokio::time::sleep(Duration::from_millis(1100)).await;
        rig.pool.reconcile_once().await.expect("pass");
        rig.pool.wait_idle().await;
        let ready =
            |all: &[poolcore::Cluster]| all.iter().filter(|c| c.status == ClusterStatus::Ready).count();
        assert_eq!(
            ready(&rig.clusters(ClusterFilter::default()).await),
            1,
            "{kind:?}: one trial"
        );
        assert!(rig.pool.creation_backoffs().is_empty(), "{kind:?}");
        rig.pool.reconcile_once().await.expect("pass");
        rig.pool.wait_idle().await;
        assert_eq!(
            ready(&rig.clusters(ClusterFilter::default()).await),
            8,
            "{kind:?}"
        );
    }
}

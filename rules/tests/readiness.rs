//! Readiness probes on the simulated engine: a cluster is handed out only once every
//! probe passed, a probe that never passes fails the creation, and a made cluster
//! whose probe keeps failing is replaced.

use poolcore::{ClusterFilter, ClusterStatus, Error, NewBlueprint, Probe, ProbeCheck};
use poolcore_rules::{apply_another as apply, new_blueprint, node, Rig, STORES};

/// A blueprint of two nodes, each with an exec probe.
async fn probed(rig: &Rig, name: &str, probe: &Probe) {
    let nodes = ["vp0", "vp1"]
        .into_iter()
        .map(|n| poolcore::NodeSpec {
            readiness: Some(probe.clone()),
            ..node(n)
        })
        .collect();
    let new = NewBlueprint {
        nodes,
        ..new_blueprint(name, &[])
    };
    rig.pool.create_blueprint(new).await.expect("blueprint");
}

fn exec_probe() -> Probe {
    Probe {
        start_seconds: 1,
        failure_threshold: 2,
        ..Probe::new(ProbeCheck::Exec {
            command: vec!["sh".into(), "-c".into(), "test -f /ready".into()],
        })
    }
}

async fn by_status(rig: &Rig, status: ClusterStatus) -> Vec<poolcore::Cluster> {
    rig.pool.wait_idle().await;
    rig.clusters(ClusterFilter {
        status: Some(status),
        ..ClusterFilter::default()
    })
    .await
}

#[tokio::test]
async fn a_cluster_is_ready_only_once_its_probes_pass() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        probed(&rig, "bp", &exec_probe()).await;
        rig.filled_host("h1", 2).await;
        let engine = rig.engine("h1");
        assert_eq!(by_status(&rig, ClusterStatus::Ready).await.len(), 2, "{kind:?}");
        assert!(
            engine.counters().execs >= 4,
            "{kind:?}: every node was probed: {:?}",
            engine.counters()
        );
        rig.pool.apply(apply("alice", "bp")).await.expect("apply");
    }
}

#[tokio::test]
async fn a_probe_that_never_passes_fails_the_creation() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        probed(&rig, "bp", &exec_probe()).await;
        rig.engine("h1").set_exec_status(1);
        rig.filled_host("h1", 2).await;
        let failed = by_status(&rig, ClusterStatus::Failed).await;
        assert_eq!(failed.len(), 2, "{kind:?}");
        let reason = failed[0].status_reason.clone().unwrap_or_default();
        assert!(
            reason.contains("readiness probe (exec sh -c test -f /ready) did not pass within 1 s")
                && reason.contains("exited with status 1"),
            "{kind:?}: {reason}"
        );
        let refused = rig.pool.apply(apply("alice", "bp")).await;
        assert!(
            matches!(refused, Err(Error::PoolExhausted { .. })),
            "{kind:?}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_made_cluster_whose_probe_keeps_failing_is_replaced() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        probed(&rig, "bp", &exec_probe()).await;
        rig.filled_host("h1", 1).await;
        let engine = rig.engine("h1");
        assert_eq!(by_status(&rig, ClusterStatus::Ready).await.len(), 1, "{kind:?}");
        engine.set_exec_status(1);
        // One failed pass is below the threshold of two: nothing happens yet.
        rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(by_status(&rig, ClusterStatus::Ready).await.len(), 1, "{kind:?}");
        engine.reset_counters();
        let report = rig.pool.reconcile_once().await.expect("pass");
        rig.pool.wait_idle().await;
        assert_eq!(report.replaced, 1, "{kind:?}: {report:?}");
        assert_eq!(engine.counters().deletes, 1, "{kind:?}");
        // Made anew while the probe still fails, it cannot become ready.
        let failed = by_status(&rig, ClusterStatus::Failed).await;
        assert_eq!(failed.len(), 1, "{kind:?}");
    }
}

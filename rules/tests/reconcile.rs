//! The reconciler, carried out on simulated engines: healing, leaving alone what was
//! stopped on purpose, expiring leases, closing interrupted operations, and never
//! undoing an operator's change.

use std::time::Duration;

use chrono::Utc;
use poolcore::{
    Actor, ApplyRequest, ClusterStatus, Health, HostPatch, HostStatus, NodeAction, NodeState, Operation,
    OperationKind, OperationStatus, PoolConfig, ReconcileConfig, ReleaseReason,
};
use poolcore_rules::{Rig, STORES};
use poolcore_sim::Latencies;

fn alice() -> ApplyRequest {
    ApplyRequest {
        user_id: "alice".into(),
        ..ApplyRequest::default()
    }
}

/// A dead node of a free cluster: replaced. Of an applied one: repaired in place,
/// same URLs. A node stopped on purpose: left stopped until started.
#[tokio::test]
async fn broken_clusters_heal_and_stopped_nodes_stay_stopped() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.filled_host("h1", 2).await;
        let engine = rig.engine("h1");
        let applied = rig.pool.apply(alice()).await.expect("apply");
        let free = rig
            .clusters(Default::default())
            .await
            .into_iter()
            .find(|c| c.status == ClusterStatus::Ready)
            .expect("a free one");
        engine.kill_node(&applied.id, "vp0").expect("kill");
        engine.kill_node(&free.id, "vp0").expect("kill");
        let report = rig.pool.reconcile_once().await.expect("pass");
        rig.pool.wait_idle().await;
        assert_eq!((report.repaired, report.replaced), (1, 1), "{kind:?}: {report:?}");
        let repaired = rig.pool.cluster(&applied.id).await.expect("get");
        assert_eq!(
            repaired.service_urls(),
            applied.service_urls(),
            "{kind:?}: same URLs"
        );
        assert_eq!(
            (repaired.status, repaired.health),
            (ClusterStatus::Applied, Health::Ok)
        );
        let replaced = rig.pool.cluster(&free.id).await.expect("get");
        assert_eq!(
            (replaced.status, replaced.health),
            (ClusterStatus::Ready, Health::Ok),
            "{kind:?}"
        );

        let stopped = rig
            .pool
            .control_cluster(&applied.id, NodeAction::Stop, Some("vp0"), Actor::User("alice"))
            .await
            .expect("stop a node");
        assert!(stopped.stopped_nodes.contains("vp0"), "{kind:?}");
        assert_eq!(stopped.health, Health::Failing);
        let report = rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(
            report.repaired, 0,
            "{kind:?}: a node stopped on purpose is no fault"
        );
        let node = engine.cluster(&applied.id).expect("on the engine").nodes["vp0"]
            .state
            .clone();
        assert!(
            matches!(node, NodeState::Exited(_)),
            "{kind:?}: still stopped: {node:?}"
        );
        let started = rig
            .pool
            .control_cluster(&applied.id, NodeAction::Start, Some("vp0"), Actor::User("alice"))
            .await
            .expect("start it");
        assert!(started.stopped_nodes.is_empty());
        assert_eq!(started.health, Health::Ok, "{kind:?}");
        let err = rig
            .pool
            .control_cluster(&applied.id, NodeAction::Stop, None, Actor::User("bob"))
            .await
            .expect_err("not bob's");
        assert_eq!(err.code(), "forbidden", "{kind:?}");
    }
}

/// A lease past its end is released with the reason `expired`, and the cluster made
/// again for the next user.
#[tokio::test]
async fn expired_leases_are_released() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.filled_host("h1", 1).await;
        let c = rig
            .pool
            .apply(ApplyRequest {
                ttl: Some(Duration::from_secs(1)),
                ..alice()
            })
            .await
            .expect("apply");
        let report = rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(report.leases_expired, 0, "{kind:?}: not yet");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let report = rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(report.leases_expired, 1, "{kind:?}");
        rig.pool.wait_idle().await;
        assert_eq!(
            rig.pool.cluster(&c.id).await.expect("get").status,
            ClusterStatus::Ready
        );
        let lease = rig
            .pool
            .leases(Some("alice"), Default::default())
            .await
            .expect("leases")
            .items;
        assert_eq!(lease[0].release_reason, Some(ReleaseReason::Expired), "{kind:?}");
    }
}

/// An operation whose server stopped writing it is closed as interrupted; one this
/// process runs is not, however slow.
#[tokio::test]
async fn operations_of_a_stopped_server_are_closed_as_interrupted() {
    for kind in STORES {
        let reconcile = ReconcileConfig::default().with_operation_timeout(Duration::from_millis(400));
        let rig = Rig::with_config(kind, PoolConfig::default().with_reconcile(reconcile)).await;
        rig.blueprint("a", &[]).await;
        let host = rig.host("h1", 2).await;
        let long_ago = Utc::now() - chrono::Duration::minutes(5);
        let orphan = Operation {
            id: poolcore::model::new_id(),
            kind: OperationKind::Fill,
            host_id: host.id.clone(),
            status: OperationStatus::Running,
            done: 1,
            total: 4,
            error: None,
            created_at: long_ago,
            updated_at: long_ago,
            finished_at: None,
        };
        rig.store
            .put_operation(&orphan)
            .await
            .expect("an operation left by a dead server");
        // A slow fill of this process: its heartbeat keeps it alive.
        rig.engine("h1").set_latencies(Latencies {
            create_ms: 1500,
            ..Latencies::NONE
        });
        let live = rig.pool.fill_host(&host.id, None).await.expect("fill");
        tokio::time::sleep(Duration::from_millis(700)).await;
        let report = rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(report.operations_interrupted, 1, "{kind:?}: {report:?}");
        let closed = rig.pool.operation(&orphan.id).await.expect("get");
        assert_eq!(closed.status, OperationStatus::Interrupted, "{kind:?}");
        assert!(
            closed
                .error
                .as_deref()
                .is_some_and(|e| e.contains("server stopped")),
            "{closed:?}"
        );
        assert!(closed.finished_at.is_some());
        assert_eq!(
            rig.pool.operation(&live.id).await.expect("get").status,
            OperationStatus::Running
        );
        rig.pool.wait_idle().await;
        assert_eq!(
            rig.pool.operation(&live.id).await.expect("get").status,
            OperationStatus::Succeeded
        );
    }
}

/// A probe that read the host before an operator changed it does not undo the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_never_undoes_an_operators_change() {
    for kind in STORES {
        let config = PoolConfig::default().with_reconcile(ReconcileConfig::default().with_failed_probes(1));
        let rig = Rig::with_config(kind, config).await;
        let host = rig.host("h1", 0).await;
        let engine = rig.engine("h1");
        engine.set_latencies(Latencies {
            probe_ms: 400,
            ..Latencies::NONE
        });
        engine.set_down(true);
        let pass = {
            let pool = rig.pool.clone();
            tokio::spawn(async move { pool.reconcile_once().await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let patch = HostPatch {
            schedulable: Some(false),
            labels: Some([("zone".to_owned(), "eu".to_owned())].into()),
            ..Default::default()
        };
        rig.pool
            .update_host(&host.id, patch)
            .await
            .expect("the operator's change");
        pass.await.expect("task").expect("pass");
        let got = rig.pool.host(&host.id).await.expect("get");
        assert!(!got.schedulable, "{kind:?}: the change is kept");
        assert_eq!(got.labels.get("zone").map(String::as_str), Some("eu"), "{kind:?}");
        assert_eq!(
            got.status,
            HostStatus::Inactive,
            "{kind:?}: and so is the probe's finding"
        );
        assert!(got.version >= host.version + 2, "{kind:?}: two writes");
    }
}

/// Objects with our labels that no record owns are removed.
#[tokio::test]
async fn orphans_are_removed() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        let blueprint = rig.blueprint("a", &[]).await;
        let host = rig.filled_host("h1", 1).await;
        let ghost = poolcore::Cluster::new("ghost", &blueprint.name, &host.id);
        let driver = rig.pool.driver(&host).expect("driver");
        driver
            .create_cluster(&ghost, &blueprint)
            .await
            .expect("made behind the pool's back");
        assert_eq!(rig.engine("h1").clusters().len(), 2);
        let report = rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(report.orphans_removed, 1, "{kind:?}");
        assert_eq!(rig.engine("h1").clusters().len(), 1, "{kind:?}");
    }
}

//! Blueprint versions and their rollout: free clusters of earlier versions made anew at
//! the blueprint's rate and never an applied one; `on_release` leaving them until
//! released; clusters of an earlier version repaired as that version; earlier versions
//! dropped once nothing runs them.

use std::time::{Duration, Instant};

use poolcore::{
    Actor, BlueprintNodes, BlueprintPatch, ClusterFilter, ClusterStatus, PoolConfig, ReconcileConfig,
    ReleaseMode, ReleaseTarget, Rollout, RolloutStrategy,
};
use poolcore_rules::{apply_another as apply, new_blueprint, node, Rig, STORES};

/// Version 2 of a one-node blueprint: another image, and a second node.
fn version_2() -> BlueprintNodes {
    let mut vp0 = node("vp0");
    vp0.image = "hyperledger/fabric-peer:1.1".into();
    BlueprintNodes {
        nodes: vec![vp0, node("vp1")],
        api_port: None,
    }
}

/// The clusters of `rig` by version: (of version 1, of version 2).
async fn by_version(rig: &Rig) -> (usize, usize) {
    let all = rig.clusters(ClusterFilter::default()).await;
    let of = |v| all.iter().filter(|c| c.blueprint_version == v).count();
    (of(1), of(2))
}

/// 1,000 free clusters and 10 applied ones; a new version rolls out at 30,000 a
/// minute (500 a second). At every pass, the replacements started stay within the rate
/// (plus one pass's share, the bucket's depth); the applied clusters are never touched;
/// each release then makes its cluster anew at version 2, and version 1 is dropped once
/// no cluster runs it.
#[tokio::test]
async fn a_rollout_keeps_its_rate_and_never_touches_an_applied_cluster() {
    let per_minute = 30_000;
    let interval = Duration::from_millis(100);
    let config = PoolConfig::default().with_reconcile(ReconcileConfig::default().with_interval(interval));
    for kind in STORES {
        let rig = Rig::with_config(kind, config.clone()).await;
        let new = poolcore::NewBlueprint {
            rollout: Rollout {
                strategy: RolloutStrategy::Recreate,
                max_per_minute: per_minute,
            },
            ..new_blueprint("bp", &[])
        };
        rig.pool.create_blueprint(new).await.expect("blueprint");
        let host = rig.filled_host("h1", 1010).await;
        let mut applied = Vec::new();
        for i in 0..10 {
            applied.push(
                rig.pool
                    .apply(apply(&format!("u{i}"), "bp"))
                    .await
                    .expect("apply"),
            );
        }
        let v2 = rig
            .pool
            .update_blueprint_nodes("bp", version_2())
            .await
            .expect("v2");
        assert_eq!(v2.version, 2, "{kind:?}");
        assert_eq!(
            by_version(&rig).await,
            (1010, 0),
            "{kind:?}: nothing changes at once"
        );

        let per_second = f64::from(per_minute) / 60.0;
        let depth = (per_second * interval.as_secs_f64()).ceil();
        let started = Instant::now();
        let mut replaced = 0u32;
        let mut passes = 0;
        loop {
            let report = rig.pool.reconcile_once().await.expect("pass");
            replaced += report.rolled_out;
            passes += 1;
            let allowed = per_second * started.elapsed().as_secs_f64() + depth;
            assert!(
                f64::from(replaced) <= allowed,
                "{kind:?}: {replaced} replaced after {:?}, more than the rate allows ({allowed:.0})",
                started.elapsed()
            );
            let status = rig.pool.rollout_status("bp").await.expect("status");
            if status.outdated == 10 && replaced >= 1000 {
                break;
            }
            assert!(passes < 400, "{kind:?}: the rollout did not end: {status:?}");
            tokio::time::sleep(interval).await;
        }
        rig.pool.wait_idle().await;
        let took = started.elapsed();
        eprintln!(
            "{kind:?}: 1000 free clusters replaced in {took:.1?} over {passes} passes: {:.0}/s at a rate of {per_second:.0}/s",
            1000.0 / took.as_secs_f64()
        );
        assert_eq!(replaced, 1000, "{kind:?}: each free cluster once");
        assert_eq!(by_version(&rig).await, (10, 1000), "{kind:?}");
        let engine = rig.engine("h1");
        for before in &applied {
            let now = rig.pool.cluster(&before.id).await.expect("get");
            assert_eq!(
                (now.status, now.blueprint_version, &now.lease_id, &now.deployment),
                (ClusterStatus::Applied, 1, &before.lease_id, &before.deployment),
                "{kind:?}: an applied cluster is untouched"
            );
            let on_engine = engine.cluster(&before.id).expect("on the engine");
            assert_eq!(on_engine.nodes.len(), 1, "{kind:?}: still version 1's one node");
        }
        let fresh = rig
            .clusters(ClusterFilter {
                status: Some(ClusterStatus::Ready),
                ..ClusterFilter::default()
            })
            .await;
        let made = engine.cluster(&fresh[0].id).expect("on the engine");
        assert_eq!(made.nodes.len(), 2, "{kind:?}: version 2 has two nodes");
        assert_eq!(
            made.labels
                .get("poolmanager.blueprint_version")
                .map(String::as_str),
            Some("2"),
            "{kind:?}: its objects carry the version"
        );

        // Released, each is made anew at version 2; version 1 goes with the last.
        for before in &applied[..9] {
            rig.pool
                .release(ReleaseTarget::Cluster(before.id.clone()), Actor::Operator)
                .await
                .expect("release");
        }
        rig.pool.wait_idle().await;
        assert_eq!(by_version(&rig).await, (1, 1009), "{kind:?}");
        rig.pool.reconcile_once().await.expect("pass");
        let kept = rig.pool.blueprint("bp").await.expect("blueprint");
        assert_eq!(
            kept.earlier_versions.len(),
            1,
            "{kind:?}: one cluster still runs version 1"
        );
        rig.pool
            .release(ReleaseTarget::Cluster(applied[9].id.clone()), Actor::Operator)
            .await
            .expect("release");
        rig.pool.wait_idle().await;
        rig.pool.reconcile_once().await.expect("pass");
        let done = rig.pool.rollout_status("bp").await.expect("status");
        assert!(done.complete, "{kind:?}: {done:?}");
        assert_eq!(
            done.versions.len(),
            1,
            "{kind:?}: only the current version is left"
        );
        assert_eq!(done.versions[0].total, 1010, "{kind:?}");
        let kept = rig.pool.blueprint("bp").await.expect("blueprint");
        assert!(kept.earlier_versions.is_empty(), "{kind:?}: version 1 is dropped");
        assert_eq!(rig.pool.host(&host.id).await.expect("host").capacity, 1010);
    }
}

/// With `on_release`, free clusters of version 1 stay and are still handed out; a
/// released one comes back at version 2, also with the `reset` release mode (a reset
/// would keep the old version). A broken applied cluster of version 1 is repaired as
/// version 1.
#[tokio::test]
async fn on_release_leaves_free_clusters_and_repairs_by_their_version() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        let new = poolcore::NewBlueprint {
            rollout: Rollout {
                strategy: RolloutStrategy::OnRelease,
                max_per_minute: 1000,
            },
            release_mode: ReleaseMode::Reset,
            ..new_blueprint("bp", &[])
        };
        rig.pool.create_blueprint(new).await.expect("blueprint");
        rig.filled_host("h1", 4).await;
        let held = rig.pool.apply(apply("alice", "bp")).await.expect("apply");
        rig.pool
            .update_blueprint_nodes("bp", version_2())
            .await
            .expect("v2");
        for _ in 0..3 {
            let report = rig.pool.reconcile_once().await.expect("pass");
            assert_eq!(report.rolled_out, 0, "{kind:?}: on_release replaces nothing free");
        }
        rig.pool.wait_idle().await;
        assert_eq!(by_version(&rig).await, (4, 0), "{kind:?}");
        let status = rig.pool.rollout_status("bp").await.expect("status");
        assert_eq!(
            (status.version, status.outdated, status.complete),
            (2, 4, false),
            "{kind:?}"
        );

        // Repaired as what it runs: version 1's single node, no vp1.
        let engine = rig.engine("h1");
        engine.kill_node(&held.id, "vp0").expect("kill");
        let report = rig.pool.reconcile_once().await.expect("pass");
        rig.pool.wait_idle().await;
        assert_eq!(report.repaired, 1, "{kind:?}: {report:?}");
        let repaired = rig.pool.cluster(&held.id).await.expect("get");
        assert_eq!(
            (repaired.status, repaired.blueprint_version, repaired.health),
            (ClusterStatus::Applied, 1, poolcore::Health::Ok),
            "{kind:?}"
        );
        assert_eq!(
            engine.cluster(&held.id).expect("on the engine").nodes.len(),
            1,
            "{kind:?}: repaired with version 1's nodes"
        );

        // A free version 1 cluster is still handed out; released, it is version 2.
        let another = rig.pool.apply(apply("bob", "bp")).await.expect("apply");
        assert_eq!(another.blueprint_version, 1, "{kind:?}");
        for id in [&held.id, &another.id] {
            rig.pool
                .release(ReleaseTarget::Cluster(id.clone()), Actor::Operator)
                .await
                .expect("release");
        }
        rig.pool.wait_idle().await;
        for id in [&held.id, &another.id] {
            let fresh = rig.pool.cluster(id).await.expect("get");
            assert_eq!(
                (fresh.status, fresh.blueprint_version),
                (ClusterStatus::Ready, 2),
                "{kind:?}: made anew, not reset"
            );
            assert_eq!(engine.cluster(id).expect("on the engine").nodes.len(), 2);
        }
        assert_eq!(by_version(&rig).await, (2, 2), "{kind:?}");

        // Switched to recreate, the rest follow.
        let patch = BlueprintPatch {
            rollout_strategy: Some(RolloutStrategy::Recreate),
            ..BlueprintPatch::default()
        };
        rig.pool.update_blueprint("bp", patch).await.expect("patch");
        rig.pool.reconcile_once().await.expect("pass");
        rig.pool.wait_idle().await;
        assert_eq!(by_version(&rig).await, (0, 4), "{kind:?}");
    }
}

/// Bad nodes for a new version, an unknown blueprint, and a rate of 0 are refused,
/// and nothing changes.
#[tokio::test]
async fn bad_versions_are_refused_and_change_nothing() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("bp", &[]).await;
        rig.filled_host("h1", 2).await;
        let before = rig.snapshot().await;
        let twice = BlueprintNodes {
            nodes: vec![node("vp0"), node("vp0")],
            api_port: None,
        };
        let err = rig
            .pool
            .update_blueprint_nodes("bp", twice)
            .await
            .expect_err("twice");
        assert_eq!(err.code(), "invalid_input", "{kind:?}: {err}");
        let none = BlueprintNodes {
            nodes: Vec::new(),
            api_port: None,
        };
        let err = rig
            .pool
            .update_blueprint_nodes("bp", none)
            .await
            .expect_err("none");
        assert_eq!(err.code(), "invalid_input", "{kind:?}: {err}");
        let bad_port = BlueprintNodes {
            nodes: vec![node("vp0")],
            api_port: Some("vp9.rest".parse().expect("a port ref")),
        };
        let err = rig
            .pool
            .update_blueprint_nodes("bp", bad_port)
            .await
            .expect_err("api port");
        assert!(err.to_string().contains("vp9.rest"), "{kind:?}: {err}");
        let err = rig
            .pool
            .update_blueprint_nodes("nope", version_2())
            .await
            .expect_err("unknown");
        assert!(err.is_not_found(), "{kind:?}: {err}");
        let zero = BlueprintPatch {
            rollout_per_minute: Some(0),
            ..BlueprintPatch::default()
        };
        let err = rig.pool.update_blueprint("bp", zero).await.expect_err("rate 0");
        assert!(err.to_string().contains("rollout_per_minute"), "{kind:?}: {err}");
        assert_eq!(rig.snapshot().await, before, "{kind:?}: nothing changed");
    }
}

//! Placement and release modes: a blueprint's clusters only on the hosts its selector
//! admits, laid out spread or packed, moved off a host that no longer qualifies; a
//! `reset` release restarts a cluster in place where `recreate` makes it anew.

use std::collections::BTreeMap;

use poolcore::{
    Actor, BlueprintPatch, ClusterFilter, ClusterStatus, Error, HostKind, HostPatch, Labels, NewBlueprint,
    NewHost, Placement, PlacementStrategy, ReadyBuffer, ReleaseMode, ReleaseTarget,
};
use poolcore_rules::{apply_another as apply, new_blueprint, Rig, STORES};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Adds an autofill sim host of `capacity` with `labels`.
async fn host(rig: &Rig, name: &str, capacity: u32, with: &[(&str, &str)]) -> String {
    let new = NewHost {
        kind: HostKind::Sim,
        labels: labels(with),
        ..NewHost::docker(name, format!("sim://{name}"), capacity)
    };
    rig.pool.add_host(new).await.expect("host").id
}

/// A blueprint keeping `min_ready` free clusters, placed by `placement`.
async fn placed(rig: &Rig, name: &str, min_ready: u32, placement: Placement) {
    let new = NewBlueprint {
        buffer: ReadyBuffer {
            min_ready: Some(min_ready),
            ..ReadyBuffer::default()
        },
        placement,
        ..new_blueprint(name, &[])
    };
    rig.pool.create_blueprint(new).await.expect("blueprint");
}

/// Host name → clusters of `blueprint` on it (not being deleted), once the pool is idle.
async fn layout(rig: &Rig, blueprint: &str) -> BTreeMap<String, usize> {
    rig.pool.wait_idle().await;
    let hosts = rig.pool.hosts().await.expect("hosts");
    let mut on: BTreeMap<String, usize> = hosts.iter().map(|h| (h.name.clone(), 0)).collect();
    let all = rig
        .clusters(ClusterFilter {
            blueprints: Some(vec![blueprint.to_owned()]),
            ..ClusterFilter::default()
        })
        .await;
    for c in all.iter().filter(|c| c.status != ClusterStatus::Deleting) {
        let name = &hosts.iter().find(|h| h.id == c.host_id).expect("its host").name;
        *on.get_mut(name).expect("listed") += 1;
    }
    on
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

#[tokio::test]
async fn a_host_selector_keeps_a_blueprint_on_the_hosts_it_admits() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        host(&rig, "eu1", 10, &[("zone", "eu")]).await;
        host(&rig, "eu2", 10, &[("zone", "eu"), ("disk", "ssd")]).await;
        let us = host(&rig, "us1", 10, &[("zone", "us")]).await;
        let eu_only = Placement {
            host_selector: labels(&[("zone", "eu")]),
            ..Placement::default()
        };
        placed(&rig, "eu", 4, eu_only).await;
        rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(
            layout(&rig, "eu").await,
            counts(&[("eu1", 2), ("eu2", 2), ("us1", 0)]),
            "{kind:?}"
        );

        // An operator cannot put one on the host it does not admit either.
        let fill = rig.pool.fill_host(&us, Some("eu")).await;
        assert!(
            matches!(
                fill,
                Err(Error::Invalid {
                    field: "blueprint",
                    ..
                })
            ),
            "{kind:?}: {fill:?}"
        );
        let made = rig.pool.create_cluster(&us, "eu", None).await;
        assert!(matches!(made, Err(Error::Invalid { .. })), "{kind:?}: {made:?}");
        let any = rig.pool.fill_host(&us, None).await;
        assert!(
            matches!(any, Err(Error::Invalid { .. })),
            "{kind:?}: no blueprint admits us1: {any:?}"
        );
        assert_eq!(
            layout(&rig, "eu").await["us1"],
            0,
            "{kind:?}: refusals change nothing"
        );
    }
}

#[tokio::test]
async fn spread_evens_a_buffer_out_and_packed_fills_one_host_first() {
    for kind in STORES {
        for (strategy, want) in [
            (PlacementStrategy::Spread, vec![1, 2, 2]),
            (PlacementStrategy::Packed, vec![0, 2, 4]),
        ] {
            let rig = Rig::new(kind).await;
            for name in ["h1", "h2", "h3"] {
                host(&rig, name, 4, &[]).await;
            }
            let placement = Placement {
                strategy,
                ..Placement::default()
            };
            let min_ready = want.iter().sum::<usize>() as u32;
            placed(&rig, "bp", min_ready, placement).await;
            rig.pool.reconcile_once().await.expect("pass");
            let mut got: Vec<usize> = layout(&rig, "bp").await.into_values().collect();
            got.sort_unstable();
            assert_eq!(got, want, "{kind:?}: {strategy}");
        }
    }
}

#[tokio::test]
async fn free_clusters_leave_a_host_the_selector_no_longer_admits() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        let old = host(&rig, "old", 6, &[("tier", "a")]).await;
        host(&rig, "new", 6, &[("tier", "b")]).await;
        let on_a = Placement {
            host_selector: labels(&[("tier", "a")]),
            ..Placement::default()
        };
        placed(&rig, "bp", 3, on_a).await;
        assert_eq!(
            layout(&rig, "bp").await,
            counts(&[("new", 0), ("old", 3)]),
            "{kind:?}"
        );
        let held = rig.pool.apply(apply("alice", "bp")).await.expect("apply");
        rig.pool.wait_idle().await;

        // The host is relabelled: the free clusters move, the applied one stays.
        let relabel = HostPatch {
            labels: Some(labels(&[("tier", "b")])),
            ..HostPatch::default()
        };
        rig.pool.update_host(&old, relabel).await.expect("relabel old");
        let relabel = HostPatch {
            labels: Some(labels(&[("tier", "a")])),
            ..HostPatch::default()
        };
        let new = rig.pool.hosts().await.expect("hosts");
        let new = &new.iter().find(|h| h.name == "new").expect("new").id;
        rig.pool.update_host(new, relabel).await.expect("relabel new");
        rig.pool.reconcile_once().await.expect("pass");
        rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(
            layout(&rig, "bp").await,
            counts(&[("new", 3), ("old", 1)]),
            "{kind:?}: three free on the admitted host, the applied one where it was"
        );
        let still = rig.pool.cluster(&held.id).await.expect("held");
        assert_eq!(still.status, ClusterStatus::Applied, "{kind:?}");

        // Released, it is removed rather than made again where it no longer belongs.
        rig.pool
            .release(ReleaseTarget::User("alice".into()), Actor::Operator)
            .await
            .expect("release");
        assert_eq!(
            layout(&rig, "bp").await,
            counts(&[("new", 3), ("old", 0)]),
            "{kind:?}"
        );
    }
}

/// Applies a cluster of `blueprint` for `user` and releases it; the engine's
/// (restarts, deletes, creates) over the release.
async fn release_counts(rig: &Rig, blueprint: &str, user: &str) -> (u64, u64, u64) {
    rig.pool.apply(apply(user, blueprint)).await.expect("apply");
    let engine = rig.engine("h1");
    engine.reset_counters();
    rig.pool
        .release(ReleaseTarget::User(user.into()), Actor::Operator)
        .await
        .expect("release");
    rig.pool.wait_idle().await;
    let seen = engine.counters();
    (seen.restarts, seen.deletes, seen.creates)
}

#[tokio::test]
async fn a_reset_release_restarts_in_place_where_recreate_makes_anew() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        host(&rig, "h1", 2, &[]).await;
        let new = NewBlueprint {
            release_mode: ReleaseMode::Reset,
            ..new_blueprint("fast", &[])
        };
        rig.pool.create_blueprint(new).await.expect("blueprint");
        rig.pool.wait_idle().await;

        assert_eq!(
            release_counts(&rig, "fast", "alice").await,
            (1, 0, 0),
            "{kind:?}: reset"
        );
        let free = rig
            .clusters(ClusterFilter {
                status: Some(ClusterStatus::Ready),
                ..ClusterFilter::default()
            })
            .await;
        assert_eq!(free.len(), 2, "{kind:?}: the reset cluster is ready again");
        assert!(free.iter().all(|c| c.user_id.is_none()), "{kind:?}");

        // Switched to recreate, the next release destroys and makes it.
        let patch = BlueprintPatch {
            release_mode: Some(ReleaseMode::Recreate),
            ..BlueprintPatch::default()
        };
        let changed = rig.pool.update_blueprint("fast", patch).await.expect("patch");
        assert_eq!(changed.release_mode, ReleaseMode::Recreate, "{kind:?}");
        assert_eq!(
            release_counts(&rig, "fast", "bob").await,
            (0, 1, 1),
            "{kind:?}: recreate"
        );
    }
}

//! Ready buffers: a blueprint's free clusters held at its target through applies,
//! releases and changes of the target, never beyond its `max_total`, on every store.

use poolcore::{
    Actor, BlueprintPatch, ClusterFilter, ClusterStatus, Error, HostKind, NewBlueprint, NewHost, ReadyBuffer,
    ReleaseTarget,
};
use poolcore_rules::{apply_another as apply, new_blueprint, Rig, STORES};

/// Adds an autofill sim host of `capacity`.
async fn autofill_host(rig: &Rig, name: &str, capacity: u32) {
    let new = NewHost {
        kind: HostKind::Sim,
        autofill: true,
        ..NewHost::docker(name, format!("sim://{name}"), capacity)
    };
    rig.pool.add_host(new).await.expect("host");
}

async fn add(rig: &Rig, name: &str, buffer: ReadyBuffer) {
    let new = NewBlueprint {
        buffer,
        ..new_blueprint(name, &[])
    };
    rig.pool.create_blueprint(new).await.expect("blueprint");
}

/// The clusters of `blueprint` by status, once the pool is idle: (ready, applied, all).
async fn held(rig: &Rig, blueprint: &str) -> (usize, usize, usize) {
    rig.pool.wait_idle().await;
    let all = rig
        .clusters(ClusterFilter {
            blueprints: Some(vec![blueprint.to_owned()]),
            ..ClusterFilter::default()
        })
        .await;
    let count = |status| all.iter().filter(|c| c.status == status).count();
    (
        count(ClusterStatus::Ready),
        count(ClusterStatus::Applied),
        all.len(),
    )
}

fn patch_min_ready(min_ready: Option<u32>) -> BlueprintPatch {
    BlueprintPatch {
        min_ready: Some(min_ready),
        ..BlueprintPatch::default()
    }
}

#[tokio::test]
async fn a_buffer_is_held_through_applies_releases_and_changes() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        let buffer = ReadyBuffer {
            min_ready: Some(3),
            max_total: Some(8),
            ..ReadyBuffer::default()
        };
        add(&rig, "buffered", buffer).await;
        // An unbuffered blueprint capped so that it leaves room on the host.
        let capped = ReadyBuffer {
            max_total: Some(4),
            ..ReadyBuffer::default()
        };
        add(&rig, "capped", capped).await;
        autofill_host(&rig, "h1", 20).await;
        assert_eq!(
            held(&rig, "buffered").await,
            (3, 0, 3),
            "{kind:?}: the buffer is made"
        );
        assert_eq!(held(&rig, "capped").await, (4, 0, 4), "{kind:?}: max_total holds");

        // Each apply is topped up, until max_total leaves less room than the target.
        for i in 0..4 {
            rig.pool
                .apply(apply(&format!("u{i}"), "buffered"))
                .await
                .expect("apply");
            rig.pool.wait_idle().await;
        }
        assert_eq!(held(&rig, "buffered").await, (3, 4, 7), "{kind:?}");
        for i in 4..8 {
            rig.pool
                .apply(apply(&format!("u{i}"), "buffered"))
                .await
                .expect("apply");
            rig.pool.wait_idle().await;
        }
        assert_eq!(
            held(&rig, "buffered").await,
            (0, 8, 8),
            "{kind:?}: max_total reached"
        );
        let refused = rig.pool.apply(apply("late", "buffered")).await;
        assert!(
            matches!(refused, Err(Error::PoolExhausted { .. })),
            "{kind:?}: {refused:?}"
        );

        // Five releases at once: two are removed, three made afresh, so three stay free.
        for i in 0..5 {
            rig.pool
                .release(ReleaseTarget::User(format!("u{i}")), Actor::Operator)
                .await
                .expect("release");
        }
        assert_eq!(
            held(&rig, "buffered").await,
            (3, 3, 6),
            "{kind:?}: held after releases"
        );

        // A lower target removes the surplus, a higher one makes more (within max_total).
        rig.pool
            .update_blueprint("buffered", patch_min_ready(Some(1)))
            .await
            .expect("update");
        assert_eq!(held(&rig, "buffered").await, (1, 3, 4), "{kind:?}: trimmed");
        rig.pool
            .update_blueprint("buffered", patch_min_ready(Some(5)))
            .await
            .expect("update");
        assert_eq!(held(&rig, "buffered").await, (5, 3, 8), "{kind:?}: grown");
        let stats = rig.pool.stats().await.expect("stats");
        let of = stats
            .blueprints
            .iter()
            .find(|b| b.name == "buffered")
            .expect("stats");
        assert_eq!(of.ready_target, Some(5), "{kind:?}");

        // Without a buffer, the blueprint takes the host's room like any other.
        let open = BlueprintPatch {
            min_ready: Some(None),
            max_total: Some(None),
            ..BlueprintPatch::default()
        };
        rig.pool.update_blueprint("buffered", open).await.expect("update");
        assert_eq!(
            held(&rig, "buffered").await,
            (13, 3, 16),
            "{kind:?}: the host is full"
        );
        assert_eq!(held(&rig, "capped").await, (4, 0, 4), "{kind:?}");
    }
}

/// A share of the applied ones, rounded up, when it is more than `min_ready`.
#[tokio::test]
async fn a_buffer_grows_with_the_applied_share() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        let buffer = ReadyBuffer {
            min_ready: Some(1),
            min_ready_percent: Some(50),
            max_total: None,
        };
        add(&rig, "share", buffer).await;
        autofill_host(&rig, "h1", 30).await;
        assert_eq!(held(&rig, "share").await, (1, 0, 1), "{kind:?}");
        for i in 0..5 {
            rig.pool
                .apply(apply(&format!("u{i}"), "share"))
                .await
                .expect("apply");
            rig.pool.wait_idle().await;
        }
        assert_eq!(
            held(&rig, "share").await,
            (3, 5, 8),
            "{kind:?}: half of 5, rounded up"
        );
    }
}

/// Hosts filled side by side by one reconcile pass share the buffer's room: never more
/// than the target in all.
#[tokio::test]
async fn hosts_filled_at_once_never_overshoot_the_buffer() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        for name in ["h1", "h2", "h3"] {
            autofill_host(&rig, name, 10).await;
        }
        let buffer = ReadyBuffer {
            min_ready: Some(5),
            ..ReadyBuffer::default()
        };
        // Added under the store's feet, so that only the reconcile pass fills.
        let blueprint = poolcore::Blueprint {
            name: "spread".into(),
            labels: Default::default(),
            nodes: vec![poolcore_rules::node("vp0")],
            api_port: None,
            max_applied: None,
            buffer,
            buffer_windows: Default::default(),
            placement: Default::default(),
            release_mode: Default::default(),
            rollout: Default::default(),
            version: 1,
            version_created_at: chrono::Utc::now(),
            earlier_versions: Vec::new(),
            created_at: chrono::Utc::now(),
        };
        rig.store.insert_blueprint(&blueprint).await.expect("insert");
        rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(held(&rig, "spread").await, (5, 0, 5), "{kind:?}");
        rig.pool.reconcile_once().await.expect("pass");
        assert_eq!(
            held(&rig, "spread").await,
            (5, 0, 5),
            "{kind:?}: a second pass adds none"
        );
    }
}

/// A target above `max_total` or out of range is refused and changes nothing; an
/// unknown blueprint is not found.
#[tokio::test]
async fn bad_buffers_are_refused_and_change_nothing() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("bp", &[]).await;
        let before = rig.snapshot().await;
        let above = NewBlueprint {
            buffer: ReadyBuffer {
                min_ready: Some(5),
                max_total: Some(4),
                ..ReadyBuffer::default()
            },
            ..new_blueprint("above", &[])
        };
        let refused = rig.pool.create_blueprint(above).await;
        assert!(
            matches!(&refused, Err(Error::Invalid { field, .. }) if *field == "min_ready"),
            "{kind:?}: {refused:?}"
        );
        let percent = BlueprintPatch {
            min_ready_percent: Some(Some(1001)),
            ..BlueprintPatch::default()
        };
        let refused = rig.pool.update_blueprint("bp", percent).await;
        assert!(
            matches!(&refused, Err(Error::Invalid { field, .. }) if *field == "min_ready_percent"),
            "{kind:?}: {refused:?}"
        );
        let over_total = BlueprintPatch {
            min_ready: Some(Some(3)),
            max_total: Some(Some(2)),
            ..BlueprintPatch::default()
        };
        assert!(
            rig.pool.update_blueprint("bp", over_total).await.is_err(),
            "{kind:?}"
        );
        let unknown = rig.pool.update_blueprint("nope", patch_min_ready(Some(1))).await;
        assert!(
            matches!(unknown, Err(Error::NotFound { .. })),
            "{kind:?}: {unknown:?}"
        );
        assert_eq!(rig.snapshot().await, before, "{kind:?}: nothing changed");
    }
}

/// A window around now: `from` an hour ago `until` an hour ahead (wrapping midnight
/// when it must); `ahead` shifts it by hours, so that 2 gives one that does not hold.
fn window_around_now(ahead: i64, min_ready: u32) -> poolcore::BufferWindow {
    let at = |hours: i64| {
        let t = chrono::Utc::now() + chrono::Duration::hours(hours);
        t.format("%H:%M").to_string().parse().expect("a time of day")
    };
    poolcore::BufferWindow {
        days: Vec::new(),
        from: at(ahead - 1),
        until: at(ahead + 1),
        min_ready: Some(min_ready),
        min_ready_percent: None,
        max_total: None,
    }
}

#[tokio::test]
async fn a_buffer_window_sets_the_target_while_it_holds() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        let new = NewBlueprint {
            buffer: ReadyBuffer {
                min_ready: Some(1),
                ..ReadyBuffer::default()
            },
            buffer_windows: vec![window_around_now(0, 4)],
            ..new_blueprint("office", &[])
        };
        rig.pool.create_blueprint(new).await.expect("blueprint");
        autofill_host(&rig, "h1", 10).await;
        assert_eq!(
            held(&rig, "office").await,
            (4, 0, 4),
            "{kind:?}: the window's target holds now"
        );
        let stats = rig.pool.stats().await.expect("stats");
        let of = stats
            .blueprints
            .iter()
            .find(|b| b.name == "office")
            .expect("stats");
        assert_eq!(of.ready_target, Some(4), "{kind:?}");

        // Moved to later hours, it no longer holds: the base target of 1 does.
        let moved = window_around_now(3, 4);
        let later = BlueprintPatch {
            buffer_windows: Some(vec![moved.clone()]),
            ..BlueprintPatch::default()
        };
        rig.pool.update_blueprint("office", later).await.expect("patch");
        assert_eq!(
            held(&rig, "office").await,
            (1, 0, 1),
            "{kind:?}: trimmed to the base"
        );

        // A window whose buffer breaks a rule is refused, and changes nothing.
        let bad = BlueprintPatch {
            buffer_windows: Some(vec![poolcore::BufferWindow {
                max_total: Some(2),
                ..window_around_now(0, 4)
            }]),
            ..BlueprintPatch::default()
        };
        let refused = rig.pool.update_blueprint("office", bad).await;
        assert!(
            matches!(&refused, Err(Error::Invalid { reason, .. }) if reason.contains("in buffer window 0")),
            "{kind:?}: {refused:?}"
        );
        let kept = rig.pool.blueprint("office").await.expect("blueprint");
        assert_eq!(kept.buffer_windows, vec![moved], "{kind:?}");
    }
}

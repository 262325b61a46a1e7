//! Capacity and filling: what goes on a host, and never more than it holds.

use std::collections::BTreeMap;

use poolcore::{Cluster, ClusterFilter, HostKind, HostPatch, NewHost};
use poolcore_rules::{Rig, STORES};

fn on(host: &str, blueprint: &str) -> Cluster {
    Cluster::new(
        format!("{blueprint}-{}", poolcore::model::new_id()),
        blueprint,
        host,
    )
}

fn count_by_blueprint(plan: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for b in plan {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    counts
}

/// One row of the fill-plan table: the blueprints of the clusters on the host, the
/// blueprints to fill with, the capacity, and how many the plan adds of each.
type PlanRow = (
    &'static [&'static str],
    &'static [&'static str],
    u32,
    &'static [(&'static str, usize)],
);

/// The fill plan evens out the blueprints and stops at the capacity.
#[test]
fn fill_plans_as_a_table() {
    let names = |ns: &[&str]| ns.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    #[rustfmt::skip]
    let table: &[PlanRow] = &[
        // on the host      blueprints      capacity  what the plan adds
        (&[],               &["a"],          3,       &[("a", 3)]),
        (&[],               &["a", "b"],     4,       &[("a", 2), ("b", 2)]),
        (&[],               &["a", "b"],     3,       &[("a", 2), ("b", 1)]),
        (&["a", "a"],       &["a", "b"],     4,       &[("b", 2)]),
        (&["a"],            &["a", "b"],     4,       &[("a", 1), ("b", 2)]),
        (&["x", "x"],       &["a"],          3,       &[("a", 1)]),
        (&["a", "b"],       &["a", "b"],     2,       &[]),
        (&["a", "b", "a"],  &["a", "b"],     2,       &[]),
        (&[],               &[],             5,       &[]),
        (&[],               &["a"],          0,       &[]),
    ];
    for (existing, blueprints, capacity, expected) in table {
        let existing: Vec<Cluster> = existing.iter().map(|b| on("h", b)).collect();
        let plan = poolcore::pool::fill_plan(&existing, &names(blueprints), *capacity);
        let expected: BTreeMap<&str, usize> = expected.iter().copied().collect();
        assert_eq!(
            count_by_blueprint(&plan),
            expected,
            "{existing:?} of {blueprints:?} up to {capacity}",
            existing = existing.iter().map(|c| &c.blueprint).collect::<Vec<_>>()
        );
    }
}

/// A fill reaches the capacity and no further; a create on a full host is refused.
#[tokio::test]
async fn a_host_holds_its_capacity_and_no_more() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.blueprint("b", &[]).await;
        let host = rig.filled_host("h1", 3).await;
        let on_host = ClusterFilter {
            host_id: Some(host.id.clone()),
            ..Default::default()
        };
        assert_eq!(rig.clusters(on_host.clone()).await.len(), 3, "{kind:?}");
        let op = rig
            .pool
            .fill_host(&host.id, None)
            .await
            .expect("a fill of a full host");
        assert_eq!(op.total, 0, "{kind:?}: nothing to add");
        let err = rig
            .pool
            .create_cluster(&host.id, "a", None)
            .await
            .expect_err("full");
        assert!(err.to_string().contains("full"), "{kind:?}: {err}");
        let patch = HostPatch {
            capacity: Some(5),
            ..Default::default()
        };
        rig.pool.update_host(&host.id, patch).await.expect("more room");
        rig.pool
            .fill_host(&host.id, Some("b"))
            .await
            .expect("fill with b");
        rig.pool.wait_idle().await;
        let clusters = rig.clusters(on_host).await;
        assert_eq!(clusters.len(), 5, "{kind:?}");
        assert_eq!(
            clusters.iter().filter(|c| c.blueprint == "b").count(),
            3,
            "{kind:?}"
        );
    }
}

/// Two servers filling one host at once, many times over: never above its capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_filling_one_host_never_overfill_it() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        let host = rig.host("h1", 7).await;
        let other = rig.second_server();
        let fills = (0..6).map(|i| {
            let pool = if i % 2 == 0 {
                rig.pool.clone()
            } else {
                other.clone()
            };
            let id = host.id.clone();
            async move { pool.fill_host(&id, None).await }
        });
        for outcome in futures::future::join_all(fills).await {
            outcome.expect("a fill starts");
        }
        rig.pool.wait_idle().await;
        other.wait_idle().await;
        let on_host = ClusterFilter {
            host_id: Some(host.id.clone()),
            ..Default::default()
        };
        assert_eq!(rig.clusters(on_host).await.len(), 7, "{kind:?}");
        assert_eq!(
            rig.engine("h1").clusters().len(),
            7,
            "{kind:?}: and the engine runs 7"
        );
    }
}

/// An autofill host added before any blueprint is accepted, and fills once one exists.
#[tokio::test]
async fn an_autofill_host_waits_for_a_blueprint() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        let new = NewHost {
            kind: HostKind::Sim,
            ..NewHost::docker("early", "sim://early", 2)
        };
        assert!(new.autofill);
        let host = rig
            .pool
            .add_host(new)
            .await
            .expect("accepted without a blueprint");
        rig.pool.wait_idle().await;
        let on_host = ClusterFilter {
            host_id: Some(host.id.clone()),
            ..Default::default()
        };
        assert!(rig.clusters(on_host.clone()).await.is_empty(), "{kind:?}");
        rig.blueprint("late", &[]).await;
        rig.pool.wait_idle().await;
        assert_eq!(
            rig.clusters(on_host).await.len(),
            2,
            "{kind:?}: filled once a blueprint exists"
        );
    }
}

/// A host deleted while fills keep starting on it leaves nothing behind: no record of
/// a cluster on it, nothing on its engine, and no fill starts once it is gone.
#[tokio::test]
async fn a_host_deleted_while_it_fills_leaves_nothing_behind() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        let host = rig.host("h1", 60).await;
        let filler = {
            let (pool, id) = (rig.pool.clone(), host.id.clone());
            tokio::spawn(async move {
                let mut started = 0;
                while pool.fill_host(&id, None).await.is_ok() {
                    started += 1;
                    tokio::task::yield_now().await;
                }
                started
            })
        };
        let on_host = ClusterFilter {
            host_id: Some(host.id.clone()),
            ..Default::default()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while rig.clusters(on_host.clone()).await.len() < 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "{kind:?}: the fills made nothing"
            );
            tokio::task::yield_now().await;
        }
        rig.pool.delete_host(&host.id, true).await.expect("delete");
        let started = filler.await.expect("filler");
        rig.pool.wait_idle().await;
        assert!(started > 0, "{kind:?}: no fill started");
        let left: Vec<String> = rig
            .clusters(on_host.clone())
            .await
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert!(
            left.is_empty(),
            "{kind:?}: records left on the deleted host: {left:?}"
        );
        let on_engine = rig.engine("h1").clusters().len();
        assert_eq!(on_engine, 0, "{kind:?}: clusters left on the engine");
    }
}

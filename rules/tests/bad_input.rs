//! Every refused request leaves the store as it was: a table of refusals, each with
//! the whole store compared before and after.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use poolcore::{
    Actor, ApplyRequest, HostKind, HostPatch, NewBlueprint, NewHost, NodeAction, Pem, Pool, PortRef,
    ReleaseTarget,
};
use poolcore_rules::{new_blueprint, node, Rig, STORES};

type Attempt = Pin<Box<dyn Future<Output = poolcore::Result<()>> + Send>>;
type Refusal = Box<dyn Fn(Pool, Ids) -> Attempt + Send + Sync>;

/// Ids of what the rig holds when the refusals are tried.
#[derive(Clone)]
struct Ids {
    host: String,
    applied: String,
    ready: String,
}

macro_rules! refusal {
    (|$pool:ident, $ids:ident| $body:expr) => {
        Box::new(|$pool: Pool, $ids: Ids| -> Attempt {
            Box::pin(async move {
                let _ = &$ids;
                $body.await.map(drop)
            })
        }) as Refusal
    };
}

fn sim_host(name: &str, endpoint: &str) -> NewHost {
    NewHost {
        kind: HostKind::Sim,
        ..NewHost::docker(name, endpoint, 1)
    }
}

fn refusals() -> Vec<(&'static str, &'static str, Refusal)> {
    vec![
        (
            "add host: bad name",
            "invalid_input",
            refusal!(|p, i| p.add_host(sim_host("a b", "sim://x"))),
        ),
        (
            "add host: taken name",
            "conflict",
            refusal!(|p, i| p.add_host(sim_host("h1", "sim://other"))),
        ),
        (
            "add host: bad endpoint",
            "invalid_input",
            refusal!(|p, i| p.add_host(sim_host("x", "ftp://x"))),
        ),
        (
            "add host: NUL in endpoint",
            "invalid_input",
            refusal!(|p, i| p.add_host(sim_host("x", "sim://a\0b"))),
        ),
        (
            "add host: engine down",
            "unavailable",
            refusal!(|p, i| p.add_host(sim_host("x", "sim://down"))),
        ),
        (
            "add host: capacity",
            "invalid_input",
            refusal!(|p, i| {
                let mut h = sim_host("x", "sim://x");
                h.capacity = 10_001;
                p.add_host(h)
            }),
        ),
        (
            "add host: address",
            "invalid_input",
            refusal!(|p, i| {
                let mut h = sim_host("x", "sim://x");
                h.public_address = Some("javascript:alert(1)/".into());
                p.add_host(h)
            }),
        ),
        (
            "add host: half TLS",
            "invalid_input",
            refusal!(|p, i| {
                let mut h = sim_host("x", "sim://x");
                h.tls = Some(poolcore::EngineTls {
                    ca: None,
                    cert: Some(Pem::Path("/c.pem".into())),
                    key: None,
                    verify: true,
                });
                p.add_host(h)
            }),
        ),
        (
            "update host: bad name",
            "invalid_input",
            refusal!(|p, i| {
                p.update_host(
                    &i.host,
                    HostPatch {
                        name: Some("-x".into()),
                        ..Default::default()
                    },
                )
            }),
        ),
        (
            "update host: huge label",
            "invalid_input",
            refusal!(|p, i| {
                let labels = [("k".to_owned(), "v".repeat(300))].into();
                p.update_host(
                    &i.host,
                    HostPatch {
                        labels: Some(labels),
                        ..Default::default()
                    },
                )
            }),
        ),
        (
            "delete host: clusters applied",
            "conflict",
            refusal!(|p, i| p.delete_host(&i.host, false)),
        ),
        (
            "blueprint: taken",
            "conflict",
            refusal!(|p, i| p.create_blueprint(new_blueprint("a", &[]))),
        ),
        (
            "blueprint: no nodes",
            "invalid_input",
            refusal!(|p, i| {
                p.create_blueprint(NewBlueprint {
                    nodes: vec![],
                    ..new_blueprint("b", &[])
                })
            }),
        ),
        (
            "blueprint: node twice",
            "invalid_input",
            refusal!(|p, i| {
                p.create_blueprint(NewBlueprint {
                    nodes: vec![node("n"), node("n")],
                    ..new_blueprint("b", &[])
                })
            }),
        ),
        (
            "blueprint: image",
            "invalid_input",
            refusal!(|p, i| {
                let mut n = node("n");
                n.image = "busybox\0".into();
                p.create_blueprint(NewBlueprint {
                    nodes: vec![n],
                    ..new_blueprint("b", &[])
                })
            }),
        ),
        (
            "blueprint: api port",
            "invalid_input",
            refusal!(|p, i| {
                let api_port = Some(PortRef {
                    node: "vp0".into(),
                    port: "grpc".into(),
                });
                p.create_blueprint(NewBlueprint {
                    api_port,
                    ..new_blueprint("b", &[])
                })
            }),
        ),
        (
            "blueprint: in use",
            "conflict",
            refusal!(|p, i| p.delete_blueprint("a")),
        ),
        (
            "apply: user id",
            "invalid_input",
            refusal!(|p, i| {
                p.apply(ApplyRequest {
                    user_id: "a b".into(),
                    ..Default::default()
                })
            }),
        ),
        (
            "apply: metadata",
            "invalid_input",
            refusal!(|p, i| {
                let metadata = [("note".to_owned(), "x".repeat(20_000))].into();
                p.apply(ApplyRequest {
                    user_id: "u".into(),
                    metadata,
                    ..Default::default()
                })
            }),
        ),
        (
            "apply: ttl",
            "invalid_input",
            refusal!(|p, i| {
                p.apply(ApplyRequest {
                    user_id: "u".into(),
                    ttl: Some(Duration::from_secs(u64::MAX)),
                    ..Default::default()
                })
            }),
        ),
        (
            "apply: holds another",
            "conflict",
            refusal!(|p, i| {
                p.apply(ApplyRequest {
                    user_id: "alice".into(),
                    blueprint: Some("b2".into()),
                    ..Default::default()
                })
            }),
        ),
        (
            "release: ready cluster",
            "conflict",
            refusal!(|p, i| { p.release(ReleaseTarget::Cluster(i.ready.clone()), Actor::Operator) }),
        ),
        (
            "release: someone else's",
            "forbidden",
            refusal!(|p, i| { p.release(ReleaseTarget::Cluster(i.applied.clone()), Actor::User("bob")) }),
        ),
        (
            "renew: someone else's",
            "forbidden",
            refusal!(|p, i| { p.renew(&i.applied, Actor::User("bob"), Some(Duration::from_secs(60))) }),
        ),
        (
            "control: someone else's",
            "forbidden",
            refusal!(|p, i| { p.control_cluster(&i.applied, NodeAction::Stop, None, Actor::User("bob")) }),
        ),
        (
            "control: unknown node",
            "not_found",
            refusal!(|p, i| {
                p.control_cluster(&i.applied, NodeAction::Stop, Some("vp9"), Actor::Operator)
            }),
        ),
        (
            "create cluster: full host",
            "conflict",
            refusal!(|p, i| p.create_cluster(&i.host, "a", None)),
        ),
        (
            "create cluster: bad name",
            "invalid_input",
            refusal!(|p, i| p.create_cluster(&i.host, "a", Some("a/b"))),
        ),
        (
            "fill: unknown blueprint",
            "invalid_input",
            refusal!(|p, i| p.fill_host(&i.host, Some("zz"))),
        ),
        (
            "reset: clusters applied",
            "conflict",
            refusal!(|p, i| p.reset_host(&i.host)),
        ),
    ]
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    for kind in STORES {
        let rig = Rig::new(kind).await;
        rig.blueprint("a", &[]).await;
        rig.blueprint("b2", &[]).await;
        let host = rig.filled_host("h1", 2).await;
        rig.engine("down").set_down(true);
        let applied = rig
            .pool
            .apply(ApplyRequest {
                user_id: "alice".into(),
                blueprint: Some("a".into()),
                ..Default::default()
            })
            .await
            .expect("apply");
        let ready = rig
            .clusters(Default::default())
            .await
            .into_iter()
            .find(|c| !c.is_applied())
            .expect("a ready cluster");
        let ids = Ids {
            host: host.id.clone(),
            applied: applied.id.clone(),
            ready: ready.id.clone(),
        };
        for (case, code, refusal) in refusals() {
            let before = rig.snapshot().await;
            let outcome = refusal(rig.pool.clone(), ids.clone()).await;
            rig.pool.wait_idle().await;
            let err = outcome.expect_err(case);
            assert_eq!(err.code(), code, "{kind:?}: {case}: {err}");
            assert!(
                err.to_string().len() < 400,
                "{kind:?}: {case}: the error echoes its input: {err}"
            );
            assert_eq!(rig.snapshot().await, before, "{kind:?}: {case} changed the store");
        }
    }
}

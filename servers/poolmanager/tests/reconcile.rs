//! The pool heals itself: fault tests against a real Docker engine. Nodes are killed
//! with `docker kill`, the engine is cut off behind a TCP proxy, objects are made
//! behind PoolManager's back, and leases run out.

mod common;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use common::{docker, http_get, unique, TestServer};
use poolcore::{object_name, ClusterStatus, Health, HostStatus};

/// The reconcile interval of the looping tests.
const INTERVAL: Duration = Duration::from_secs(1);

/// The container of `node` of cluster `id`.
async fn container_of(server: &TestServer, id: &str, node: &str) -> String {
    let cluster = server.pool.cluster(id).await.expect("cluster");
    object_name(&cluster, Some(node))
}

async fn apply(server: &TestServer, user: &str, body: Value) -> (StatusCode, Value) {
    let mut body = body;
    body["user_id"] = json!(user);
    server.user(Method::POST, "/apply", Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_nodes_are_replaced_or_repaired_in_place() {
    let Some(server) = TestServer::start_with(|c| c.reconcile_interval = 1).await else {
        return;
    };
    let host = server.add_host(2, false).await;
    let bp = server.add_blueprint(2).await;
    server.fill(&host).await;
    let stop = CancellationToken::new();
    tokio::spawn({
        let (pool, stop) = (server.pool.clone(), stop.clone());
        async move { pool.run_reconciler(stop).await }
    });

    let (status, applied) = apply(&server, "alice", json!({"blueprint": bp})).await;
    assert_eq!(status, StatusCode::OK, "apply: {applied}");
    let applied_id = applied["id"].as_str().expect("id").to_owned();
    let urls = applied["service_urls"].clone();
    let free = server
        .pool
        .clusters(&Default::default(), poolcore::Page::ALL)
        .await
        .expect("clusters")
        .items
        .into_iter()
        .find(|c| c.status == ClusterStatus::Ready)
        .expect("a free cluster");
    let free_container = container_of(&server, &free.id, "vp1").await;
    let applied_container = container_of(&server, &applied_id, "vp0").await;
    let free_node_id = free.deployment.nodes["vp1"].id.clone();
    let applied_node_id = server
        .pool
        .cluster(&applied_id)
        .await
        .expect("cluster")
        .deployment
        .nodes["vp0"]
        .id
        .clone();

    let killed = Instant::now();
    docker(&server.endpoint, &["kill", &free_container]);
    docker(&server.endpoint, &["kill", &applied_container]);

    // The applied cluster is repaired in place: same id, owner and URLs.
    let repaired = wait_until(&server, &applied_id, |c| {
        c.health == Health::Ok
            && c.deployment
                .nodes
                .get("vp0")
                .is_some_and(|n| n.id != applied_node_id)
    })
    .await
    .expect("the applied cluster was never repaired");
    let repaired_after = killed.elapsed();
    assert_eq!(repaired.status, ClusterStatus::Applied);
    assert_eq!(repaired.user_id.as_deref(), Some("alice"), "the owner stays");
    let (_, now) = server
        .user(Method::GET, &format!("/clusters/{applied_id}"), None)
        .await;
    assert_eq!(now["service_urls"], urls, "the URLs stay");
    let url = urls["vp0"]["web"].as_str().expect("url");
    assert!(http_get(url).await.contains("ok"), "the repaired node serves");

    // The free cluster is replaced: recreated with fresh containers, ready again.
    let replaced = wait_until(&server, &free.id, |c| {
        c.status == ClusterStatus::Ready
            && c.health == Health::Ok
            && c.deployment
                .nodes
                .get("vp1")
                .is_some_and(|n| n.id != free_node_id)
    })
    .await
    .expect("the free cluster was never replaced");
    let replaced_after = killed.elapsed();
    assert_eq!(replaced.name, free.name, "a replacement keeps the name");
    stop.cancel();
    eprintln!(
        "recovery after docker kill: applied cluster repaired in {:.1}s, free cluster ready again in {:.1}s \
         (reconcile interval {}s)",
        repaired_after.as_secs_f64(),
        replaced_after.as_secs_f64(),
        INTERVAL.as_secs()
    );
    assert!(
        replaced_after < INTERVAL * 3 + Duration::from_secs(10),
        "ready again within three intervals plus the time to create it: {replaced_after:?}"
    );
    server.remove_host(&host).await;
}

/// Polls the store until `done(cluster)`; `None` after 60 s.
async fn wait_until(
    server: &TestServer,
    id: &str,
    done: impl Fn(&poolcore::Cluster) -> bool,
) -> Option<poolcore::Cluster> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let cluster = server.pool.cluster(id).await.expect("cluster");
        if done(&cluster) {
            return Some(cluster);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// A TCP front of the engine's unix socket that can be cut off: while down, every
/// connection, open or new, is dropped, as when the engine's machine goes away.
struct EngineProxy {
    endpoint: String,
    up: watch::Sender<bool>,
}

impl EngineProxy {
    async fn start(unix_endpoint: &str) -> EngineProxy {
        let socket = unix_endpoint
            .strip_prefix("unix://")
            .expect("the proxy fronts a unix socket")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("tcp://{}", listener.local_addr().expect("address"));
        let (up, watcher) = watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut up = watcher.clone();
                let socket = socket.clone();
                tokio::spawn(async move {
                    if !*up.borrow() {
                        return;
                    }
                    let Ok(mut engine) = UnixStream::connect(&socket).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut engine) => {}
                        _ = up.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        EngineProxy { endpoint, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_engine_goes_inactive_and_comes_back() {
    let Some(server) = TestServer::start_with(|c| c.reconcile_failed_probes = 2).await else {
        return;
    };
    if !server.endpoint.starts_with("unix://") {
        eprintln!("skipping: the proxy fronts unix sockets only");
        return;
    }
    let proxy = EngineProxy::start(&server.endpoint).await;
    let bp = server.add_blueprint(1).await;
    let far = server.api.add_host(&proxy.endpoint, 1, false).await;
    let near = server.add_host(1, false).await;
    server.fill(&far).await;
    server.fill(&near).await;

    proxy.set_up(false);
    let report = server.pool.reconcile_once().await.expect("pass");
    assert_eq!(report.hosts_unreachable, 1, "{report:?}");
    let host = server.pool.host(&far).await.expect("host");
    assert_eq!(host.status, HostStatus::Active, "one failed probe is not enough");
    assert!(host.last_error.is_some(), "the probe error is recorded");
    server.pool.reconcile_once().await.expect("pass");
    let host = server.pool.host(&far).await.expect("host");
    assert_eq!(
        host.status,
        HostStatus::Inactive,
        "two failed probes make it inactive"
    );

    let (status, got) = apply(&server, "u1", json!({"blueprint": bp})).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["host_id"], near.as_str(), "only the reachable host hands out");
    let (status, body) = apply(&server, "u2", json!({"blueprint": bp})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    proxy.set_up(true);
    let report = server.pool.reconcile_once().await.expect("pass");
    assert_eq!(report.hosts_unreachable, 0, "{report:?}");
    let host = server.pool.host(&far).await.expect("host");
    assert_eq!(host.status, HostStatus::Active, "it answers again");
    assert_eq!(host.last_error, None);
    let (status, got) = apply(&server, "u2", json!({"blueprint": bp})).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["host_id"], far.as_str());
    assert_eq!(got["health"], "ok", "its clusters were inspected again");
    server.remove_host(&far).await;
    server.remove_host(&near).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_with_our_labels_but_no_record_are_removed_and_others_left() {
    let Some(server) = TestServer::start().await else {
        return;
    };
    let host = server.add_host(0, false).await;
    let image = common::image();
    let orphan = unique("orphan");
    let foreign = unique("foreign");
    let orphan_cluster = format!("poolmanager.cluster={}", poolcore::model::new_id());
    let host_label = format!("poolmanager.host={host}");
    docker(
        &server.endpoint,
        &[
            "run",
            "-d",
            "--name",
            &orphan,
            "--label",
            &orphan_cluster,
            "--label",
            &host_label,
            &image,
        ],
    );
    docker(&server.endpoint, &["run", "-d", "--name", &foreign, &image]);

    let report = server.pool.reconcile_once().await.expect("pass");
    assert_eq!(report.orphans_removed, 1, "{report:?}");
    let names = docker(&server.endpoint, &["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!names.lines().any(|n| n == orphan), "the orphan is gone: {names}");
    assert!(
        names.lines().any(|n| n == foreign),
        "the foreign container stays: {names}"
    );
    docker(&server.endpoint, &["rm", "-f", &foreign]);
    server.remove_host(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_unless_renewed_and_events_tell() {
    let Some(server) = TestServer::start_with(|c| c.max_ttl_seconds = Some(3600)).await else {
        return;
    };
    let host = server.add_host(2, false).await;
    let bp = server.add_blueprint(1).await;
    server.fill(&host).await;

    let mut events = server.pool.events();
    let sse = tokio::spawn(read_sse(server.base.clone(), 3));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (_, short) = apply(&server, "bob", json!({"blueprint": bp, "ttl_seconds": 1})).await;
    let (_, kept) = apply(&server, "carol", json!({"blueprint": bp, "ttl_seconds": 1})).await;
    let kept_id = kept["id"].as_str().expect("id");
    let (status, renewed) = server
        .user(
            Method::POST,
            &format!("/clusters/{kept_id}/renew"),
            Some(json!({"ttl_seconds": 600, "user_id": "carol"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "renew: {renewed}");
    assert!(
        renewed["expires_at"].as_str() > kept["expires_at"].as_str(),
        "{renewed}"
    );
    let (status, body) = server
        .user(
            Method::POST,
            &format!("/clusters/{kept_id}/renew"),
            Some(json!({"ttl_seconds": 600, "user_id": "mallory"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another user's lease: {body}");
    let (status, body) = server
        .user(
            Method::POST,
            &format!("/clusters/{kept_id}/renew"),
            Some(json!({"ttl_seconds": 7200, "user_id": "carol"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "above the maximum: {body}");
    assert_eq!(body["code"], "invalid_input");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = server.pool.reconcile_once().await.expect("pass");
    assert_eq!(report.leases_expired, 1, "{report:?}");
    let short_id = short["id"].as_str().expect("id");
    server.wait_cluster(short_id, |c| c["status"] == "ready").await;
    let (_, kept_now) = server
        .user(Method::GET, &format!("/clusters/{kept_id}"), None)
        .await;
    assert_eq!(kept_now["status"], "applied", "the renewed lease holds");
    let (_, leases) = server.admin(Method::GET, "/leases?user_id=bob", None).await;
    assert!(leases["items"][0]["released_at"].is_string(), "{leases}");

    // The library's subscribers and the SSE stream both saw it happen.
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(seen.iter().any(|e| matches!(
        e,
        poolcore::Event::Released {
            reason: poolcore::ReleaseReason::Expired,
            ..
        }
    )));
    let sse = tokio::time::timeout(Duration::from_secs(10), sse)
        .await
        .expect("SSE events arrive")
        .expect("SSE reader");
    assert!(sse.contains("event: applied"), "SSE events: {sse}");
    assert!(sse.contains("\"user_id\":\"bob\""), "{sse}");
    server.remove_host(&host).await;
}

/// Reads `GET /events` until `count` events came; returns their text.
async fn read_sse(base: String, count: usize) -> String {
    let mut resp = reqwest::Client::new()
        .get(format!("{base}/events"))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .expect("events request");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut text = String::new();
    while text.matches("\n\n").count() < count {
        let chunk = resp.chunk().await.expect("chunk").expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

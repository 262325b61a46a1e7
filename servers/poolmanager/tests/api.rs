//! The REST API end to end: real HTTP, a real SQLite file, a real Docker engine.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{assert_answers, http_get, TestServer, ADMIN, USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn walkthrough_apply_use_release_recreate() {
    let Some(s) = TestServer::start().await else {
        return;
    };
    let (status, health) = s.call(Method::GET, "/health", None, None).await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")));

    let host = s.add_host(2, false).await;
    let bp = s.add_blueprint(2).await;
    s.fill(&host).await;

    assert_eq!(s.ready_clusters(&host).await, 2);

    let apply = json!({"user_id": "alice", "blueprint": bp, "metadata": {"ticket": "42"}});
    let (status, cluster) = s.user(Method::POST, "/apply", Some(apply.clone())).await;
    assert_eq!(status, StatusCode::OK, "apply: {cluster}");
    assert_eq!(cluster["status"], "applied");
    assert_eq!(cluster["user_id"], "alice");
    assert_eq!(cluster["metadata"]["ticket"], "42");
    let id = cluster["id"].as_str().expect("id").to_owned();
    assert_answers(&cluster, &["vp0", "vp1"]).await;

    let (_, again) = s.user(Method::POST, "/apply", Some(apply.clone())).await;
    assert_eq!(
        again["id"], cluster["id"],
        "a user holding a cluster gets it back"
    );
    let mut multiple = apply.clone();
    multiple["allow_multiple"] = json!(true);
    let (status, second) = s.user(Method::POST, "/apply", Some(multiple.clone())).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["id"], cluster["id"]);

    let resp = s
        .http
        .post(format!("{}/apply", s.base))
        .bearer_auth(USER)
        .json(&multiple)
        .send()
        .await
        .expect("apply");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        resp.headers().get("retry-after").is_some(),
        "503 carries Retry-After"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "pool_exhausted");

    let (status, err) = s
        .user(
            Method::POST,
            "/release",
            Some(json!({"cluster_id": id, "user_id": "bob"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the user token acts only for the holder: {err}"
    );
    let (status, err) = s
        .user(Method::POST, "/release", Some(json!({"cluster_id": id})))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the user token names the user: {err}"
    );
    let (status, released) = s
        .user(
            Method::POST,
            "/release",
            Some(json!({"cluster_id": id, "user_id": "alice"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(released["released"], json!([id]));
    let fresh = s
        .wait_cluster(&id, |c| c["status"] == "ready" && c["health"] == "ok")
        .await;
    assert_eq!(
        (&fresh["name"], &fresh["host_id"]),
        (&cluster["name"], &cluster["host_id"])
    );
    assert!(
        fresh.get("user_id").is_none(),
        "absent values are left out: {fresh}"
    );
    for node in ["vp0", "vp1"] {
        assert_ne!(
            fresh["containers"][node], cluster["containers"][node],
            "fresh containers"
        );
        let url = fresh["service_urls"][node]["web"].as_str().expect("url");
        assert!(http_get(url).await.ends_with("ok\n"));
    }
    let (status, released) = s
        .user(
            Method::POST,
            "/release",
            Some(json!({"cluster_id": id, "user_id": "alice"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a ready cluster is not released: {released}"
    );

    let (_, leases) = s.admin(Method::GET, "/leases?user_id=alice", None).await;
    assert_eq!(leases["total"], 2, "{leases}");
    let closed: Vec<&Value> = leases["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|l| l["released_at"].is_string())
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["cluster_id"], json!(id));

    let (_, stats) = s.admin(Method::GET, "/stats", None).await;
    assert_eq!(stats["clusters"]["applied"], 1, "{stats}");
    assert_eq!(stats["clusters"]["ready"], 1, "{stats}");
    assert_eq!(stats["hosts_by_status"]["active"], 1);

    let (status, body) = s.admin(Method::DELETE, &format!("/hosts/{host}"), None).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a host holding an applied cluster stays: {body}"
    );
    let (status, released) = s
        .user(Method::POST, "/release", Some(json!({"user_id": "alice"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(released["released"], json!([second["id"]]));
    s.remove_host(&host).await;
    let (status, _) = s.admin(Method::GET, &format!("/hosts/{host}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_applies_hand_out_each_cluster_once() {
    let Some(s) = TestServer::start().await else {
        return;
    };
    let host = s.add_host(20, false).await;
    let bp = s.add_blueprint(1).await;
    s.fill(&host).await;

    let started = Instant::now();
    let applies = (0..200).map(|i| {
        let s = &s;
        let bp = bp.clone();
        async move {
            let begun = Instant::now();
            let out = s
                .user(
                    Method::POST,
                    "/apply",
                    Some(json!({"user_id": format!("user-{i}"), "blueprint": bp})),
                )
                .await;
            (out, begun.elapsed())
        }
    });
    let results = futures::future::join_all(applies).await;
    let wall = started.elapsed();

    let mut won = BTreeSet::new();
    let mut exhausted = 0;
    let mut latencies: Vec<Duration> = Vec::new();
    for ((status, body), took) in results {
        latencies.push(took);
        match status {
            StatusCode::OK => assert!(won.insert(body["id"].as_str().expect("id").to_owned()), "{body}"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["code"], "pool_exhausted");
                exhausted += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(won.len(), 20, "each of the 20 clusters handed out exactly once");
    assert_eq!(exhausted, 180);
    latencies.sort();
    eprintln!(
        "200 concurrent applies over HTTP: wall {wall:?}, p50 {:?}, p99 {:?}",
        latencies[100], latencies[197]
    );
    let (_, applied) = s
        .admin(
            Method::GET,
            &format!("/clusters?host_id={host}&status=applied"),
            None,
        )
        .await;
    assert_eq!(applied["total"], 20);
    s.remove_host(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let Some(s) = TestServer::start().await else {
        return;
    };
    let host = s.add_host(1, false).await;
    let bp = s.add_blueprint(1).await;

    let user = Some(USER);
    let admin = Some(ADMIN);
    let host_body =
        |endpoint: &str| json!({"name": common::unique("h"), "endpoint": endpoint, "capacity": 1});
    let mut bad_kind = host_body(&s.endpoint);
    bad_kind["kind"] = json!("kubernetes");
    let one_node = |name: &str, port: &str| json!({"name": name, "nodes": [{"name": "vp0", "image": "x", "ports": {"web": port}}]});
    let twins = json!({"name": "twins", "nodes": [{"name": "a", "image": "x"}, {"name": "a", "image": "x"}]});
    let fill = format!("/hosts/{host}/fill");
    let (get, post) = (Method::GET, Method::POST);
    let (bad, missing, exhausted) = (
        StatusCode::BAD_REQUEST,
        StatusCode::NOT_FOUND,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    /// Method, path, token, body, the status and error code wanted.
    type Case<'a> = (
        Method,
        &'a str,
        Option<&'a str>,
        Option<Value>,
        StatusCode,
        &'a str,
    );
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (post.clone(), "/apply", user, Some(json!({"user_id": "u", "blueprint": "nope"})), missing, "not_found"),
        (post.clone(), "/apply", user, Some(json!({"blueprint": bp})), bad, "invalid_input"),
        (post.clone(), "/apply", user, Some(json!({"user_id": " ", "blueprint": bp})), bad, "invalid_input"),
        (post.clone(), "/apply", user, Some(json!({"user_id": "u", "blueprint": bp, "ttl_seconds": 0})), bad, "invalid_input"),
        (post.clone(), "/apply", user, Some(json!({"user_id": "u", "blueprint": bp})), exhausted, "pool_exhausted"),
        (get.clone(), "/clusters/no-such-id", user, None, missing, "not_found"),
        (get.clone(), "/hosts/no-such-id", admin, None, missing, "not_found"),
        (get.clone(), "/operations/no-such-id", admin, None, missing, "not_found"),
        (post.clone(), "/release", user, Some(json!({"cluster_id": "no-such-id", "user_id": "u"})), missing, "not_found"),
        (post.clone(), "/release", user, Some(json!({"cluster_id": "no-such-id"})), bad, "invalid_input"),
        (post.clone(), "/release", admin, Some(json!({"cluster_id": "no-such-id"})), missing, "not_found"),
        (post.clone(), "/release", user, Some(json!({})), bad, "invalid_input"),
        (get.clone(), "/clusters?status=bogus", user, None, bad, "invalid_input"),
        (get.clone(), "/clusters?limit=0", user, None, bad, "invalid_input"),
        (get.clone(), "/clusters", Some("wrong"), None, StatusCode::UNAUTHORIZED, "unauthorized"),
        (get.clone(), "/clusters", None, None, StatusCode::UNAUTHORIZED, "unauthorized"),
        (get.clone(), "/hosts", user, None, StatusCode::FORBIDDEN, "forbidden"),
        (post.clone(), "/blueprints", user, Some(one_node("x", "80/tcp")), StatusCode::FORBIDDEN, "forbidden"),
        (post.clone(), "/blueprints", admin, Some(one_node("bad", "80/sctp")), bad, "invalid_input"),
        (post.clone(), "/blueprints", admin, Some(json!({"name": "bad", "nodes": []})), bad, "invalid_input"),
        (post.clone(), "/blueprints", admin, Some(one_node("no spaces", "80/tcp")), bad, "invalid_input"),
        (post.clone(), "/blueprints", admin, Some(twins), bad, "invalid_input"),
        (post.clone(), "/blueprints", admin, Some(one_node(&bp, "80/tcp")), StatusCode::CONFLICT, "conflict"),
        (post.clone(), "/hosts", admin, Some(host_body("ftp://nowhere")), bad, "invalid_input"),
        (post.clone(), "/hosts", admin, Some(host_body("unix:///nonexistent/docker.sock")), exhausted, "unavailable"),
        (post.clone(), "/hosts", admin, Some(bad_kind), bad, "invalid_input"),
        (post.clone(), "/clusters", admin, Some(json!({"host_id": host, "blueprint": "nope"})), missing, "not_found"),
        (post.clone(), &fill, admin, Some(json!({"blueprint": "nope"})), bad, "invalid_input"),
        (post.clone(), &fill, admin, Some(json!({"blueprnt": bp})), bad, "invalid_input"),
    ];
    for (method, path, token, body, want, code) in cases {
        let (status, err) = s.call(method, path, token, body).await;
        assert_eq!(status, want, "{path}: {err}");
        assert_eq!(err["code"], code, "{path}: {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}: {err}"
        );
    }

    let resp = s
        .http
        .post(format!("{}/apply", s.base))
        .bearer_auth(USER)
        .header("content-type", "application/json")
        .body("{\"user_id\": ")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let err: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(err["code"], "invalid_input");

    // Nothing above changed anything.
    let (_, hosts) = s.admin(Method::GET, "/hosts", None).await;
    assert_eq!(hosts["total"], 1, "{hosts}");
    let (_, blueprints) = s.admin(Method::GET, "/blueprints", None).await;
    assert_eq!(blueprints["total"], 1, "{blueprints}");
    let (_, clusters) = s.admin(Method::GET, "/clusters", None).await;
    assert_eq!(clusters["total"], 0, "{clusters}");
    let (_, leases) = s.admin(Method::GET, "/leases", None).await;
    assert_eq!(leases["total"], 0, "{leases}");
    s.remove_host(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_stop_start_and_fail_clearly() {
    let Some(s) = TestServer::start().await else {
        return;
    };
    let host = s.add_host(3, false).await;
    let bp = s.add_blueprint(2).await;
    let (status, cluster) = s
        .admin(
            Method::POST,
            "/clusters",
            Some(json!({"host_id": host, "blueprint": bp, "name": common::unique("c")})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cluster}");
    assert_eq!(cluster["status"], "creating");
    let id = cluster["id"].as_str().expect("id").to_owned();
    s.wait_cluster(&id, |c| c["status"] == "ready").await;

    let (status, err) = s.user(Method::POST, &format!("/clusters/{id}/stop"), None).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the user token names a user: {err}"
    );
    let stop = Some(json!({"user_id": "alice"}));
    let (status, err) = s.user(Method::POST, &format!("/clusters/{id}/stop"), stop).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a free cluster is no user's: {err}"
    );
    let (status, stopped) = s.admin(Method::POST, &format!("/clusters/{id}/stop"), None).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    let (status, err) = s
        .admin(
            Method::POST,
            &format!("/clusters/{id}/start"),
            Some(json!({"node": "vp9"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    let (status, started) = s
        .admin(Method::POST, &format!("/clusters/{id}/start"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(
        (&started["status"], &started["health"]),
        (&json!("ready"), &json!("ok"))
    );
    let (status, restarted) = s
        .admin(
            Method::POST,
            &format!("/clusters/{id}/restart"),
            Some(json!({"node": "vp1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{restarted}");
    for node in ["vp0", "vp1"] {
        let url = restarted["service_urls"][node]["web"].as_str().expect("url");
        assert!(
            http_get(url).await.ends_with("ok\n"),
            "{node} answers after restart"
        );
    }

    let broken = common::unique("broken");
    let (status, _) = s
        .admin(
            Method::POST,
            "/blueprints",
            Some(
                json!({"name": broken, "nodes": [{"name": "vp0", "image": "poolmanager/does-not-exist:1"}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, failing) = s
        .admin(
            Method::POST,
            "/clusters",
            Some(json!({"host_id": host, "blueprint": broken})),
        )
        .await;
    let failed = s
        .wait_cluster(failing["id"].as_str().expect("id"), |c| c["status"] != "creating")
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["status_reason"].as_str().expect("a reason");
    assert!(
        reason.contains("poolmanager/does-not-exist:1"),
        "the reason names the image: {reason}"
    );

    let (status, err) = s.admin(Method::DELETE, &format!("/blueprints/{bp}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "a blueprint in use stays: {err}");
    let (status, _) = s.admin(Method::DELETE, &format!("/clusters/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.admin(Method::GET, &format!("/clusters/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.admin(Method::DELETE, &format!("/blueprints/{bp}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    s.remove_host(&host).await;
}

#[tokio::test]
async fn openapi_spec_and_swagger_ui_are_served() {
    let Some(s) = TestServer::start().await else {
        return;
    };
    let spec: Value = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json spec");
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert_eq!(
        &spec,
        common::contract::spec(),
        "the served spec is the one `poolmanager openapi` prints"
    );
    for path in [
        "/apply",
        "/release",
        "/hosts",
        "/clusters/{id}",
        "/operations/{id}",
    ] {
        assert!(spec["paths"][path].is_object(), "spec lists {path}");
    }
    assert!(spec["components"]["securitySchemes"]
        .as_object()
        .is_some_and(|s| !s.is_empty()));
    let docs = s
        .http
        .get(s.base.replace("/api/v1", "/docs"))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("swagger"));
}

/// A blueprint whose image cannot be pulled backs off after three failed creations:
/// the rest of a fill is marked failed without touching the engine, and the stats say
/// why and until when.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_image_backs_off_instead_of_hammering_the_engine() {
    let Some(s) = TestServer::start_with(|c| c.host_parallelism = 2).await else {
        return;
    };
    let host = s.add_host(10, false).await;
    let name = common::unique("broken");
    let nodes = json!([{"name": "vp0", "image": "poolmanager/missing:latest"}]);
    let (status, body) = s
        .admin(
            Method::POST,
            "/blueprints",
            Some(json!({"name": name, "nodes": nodes})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = s.admin(Method::POST, &format!("/hosts/{host}/fill"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let op = s
        .wait_operation(body["operation_id"].as_str().expect("operation id"))
        .await;
    assert_eq!(
        (op["status"].as_str(), op["done"].as_u64()),
        (Some("failed"), Some(10)),
        "{op}"
    );

    let (_, failed) = s
        .user(
            Method::GET,
            &format!("/clusters?blueprint={name}&status=failed"),
            None,
        )
        .await;
    let reasons: Vec<&str> = failed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["status_reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(reasons.len(), 10, "{failed}");
    let not_tried = reasons.iter().filter(|r| r.contains("backing off")).count();
    // Two at a time: at most three failures and the two in flight reached the engine.
    assert!(not_tried >= 5, "{not_tried} of 10 were not tried: {reasons:#?}");

    let (_, stats) = s.admin(Method::GET, "/stats", None).await;
    let of = stats["blueprints"]
        .as_array()
        .expect("blueprints")
        .iter()
        .find(|b| b["name"] == name.as_str())
        .expect("the blueprint's stats")
        .clone();
    let backoff = &of["backoff"];
    assert!(
        backoff["failures"].as_u64().is_some_and(|f| (3..=5).contains(&f)),
        "{of}"
    );
    assert!(backoff["reason"].as_str().is_some_and(|r| !r.is_empty()), "{of}");
    let until: chrono::DateTime<chrono::Utc> =
        backoff["until"].as_str().expect("until").parse().expect("a time");
    assert!(until > chrono::Utc::now(), "{of}");
    eprintln!(
        "{} of 10 creations reached the engine; backing off until {until}: {}",
        10 - not_tried,
        backoff["reason"]
    );
    s.remove_host(&host).await;
}

/// A blueprint released in `reset` mode gets the same containers back, restarted and
/// answering; switched to `recreate`, new ones. Prints the time of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_release_restarts_the_same_containers() {
    let Some(s) = TestServer::start().await else {
        return;
    };
    let host = s.add_host(1, false).await;
    let bp = s.add_blueprint(2).await;
    let (status, body) = s
        .admin(
            Method::PATCH,
            &format!("/blueprints/{bp}"),
            Some(json!({"release_mode": "reset"})),
        )
        .await;
    assert_eq!(
        (status, body["release_mode"].as_str()),
        (StatusCode::OK, Some("reset")),
        "{body}"
    );
    s.fill(&host).await;

    let mut timings = Vec::new();
    for (mode, same) in [("reset", true), ("recreate", false)] {
        let (status, body) = s
            .admin(
                Method::PATCH,
                &format!("/blueprints/{bp}"),
                Some(json!({"release_mode": mode})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let apply = json!({"user_id": "alice", "blueprint": bp});
        let (status, held) = s.user(Method::POST, "/apply", Some(apply)).await;
        assert_eq!(status, StatusCode::OK, "apply: {held}");
        let id = held["id"].as_str().expect("id").to_owned();
        let started = Instant::now();
        let (status, released) = s
            .admin(Method::POST, "/release", Some(json!({"cluster_id": id})))
            .await;
        assert_eq!(status, StatusCode::OK, "{released}");
        let fresh = s
            .wait_cluster(&id, |c| c["status"] == "ready" && c["health"] == "ok")
            .await;
        timings.push((mode, started.elapsed()));
        for node in ["vp0", "vp1"] {
            assert_eq!(
                fresh["containers"][node] == held["containers"][node],
                same,
                "{mode}: {node} before {} after {}",
                held["containers"][node],
                fresh["containers"][node]
            );
            let url = fresh["service_urls"][node]["web"].as_str().expect("url");
            assert!(http_get(url).await.ends_with("ok\n"), "{mode}: {node} answers");
        }
    }
    eprintln!("release to ready again: {timings:?}");
    s.remove_host(&host).await;
}

/// Nodes that answer only after 3 s, with an HTTP probe and with an exec probe: their
/// clusters stay `creating` and are not handed out until the probes pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_answers_late_is_not_handed_out_before_its_probe_passes() {
    let Some(s) = TestServer::start().await else {
        return;
    };
    let host = s.add_host(1, false).await;
    let probes = [
        (
            "http",
            json!({"http": {"port": "web", "path": "/"}, "period_seconds": 1}),
        ),
        (
            "exec",
            json!({"exec": {"command": ["sh", "-c", "[ -f /tmp/ready ]"]}}),
        ),
    ];
    for (kind, probe) in probes {
        let bp = s.add_slow_blueprint(3, probe).await;
        let took = s.fill_slow(&host, &bp, 3).await;
        eprintln!("{kind} probe: ready after {took:?}");
        let (status, body) = s
            .admin(Method::POST, "/release", Some(json!({"user_id": "early"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        s.pool.wait_idle().await;
        let (status, body) = s.admin(Method::POST, &format!("/hosts/{host}/clean"), None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        s.wait_operation(body["operation_id"].as_str().expect("operation id"))
            .await;
    }
    let (status, body) = s
        .admin(
            Method::POST,
            "/blueprints",
            Some(json!({"name": "bad-probe", "nodes": [{"name": "vp0", "image": "x", "readiness": {"tcp": {"port": "nope"}}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not one of its named ports")),
        "{body}"
    );
    s.remove_host(&host).await;
}

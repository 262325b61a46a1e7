//! The original PoolManager's API, end to end: its documented requests
//! (`api/restserver_v1.md`, `api/restserver_v2.md`) as query strings, forms and JSON
//! bodies, its load script (`test/user_operations.sh`), and its failure envelopes, on
//! a real server driving a real Docker engine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use common::serve::ServeProcess;
use common::{http_get, image, unique, Api, TestServer, ADMIN, USER};

/// A client for the legacy routes, at the server's root, with the user token.
struct Legacy {
    root: String,
    http: reqwest::Client,
    token: Option<&'static str>,
}

impl Legacy {
    fn of(api: &Api) -> Legacy {
        Legacy {
            root: api.base.trim_end_matches("/api/v1").to_owned(),
            http: api.http.clone(),
            token: Some(USER),
        }
    }

    fn with_token(&self, token: Option<&'static str>) -> Legacy {
        Legacy {
            token,
            root: self.root.clone(),
            http: self.http.clone(),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.root));
        match self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    async fn send(&self, req: RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, body)
    }

    /// `GET path` (with its query string).
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path)).await
    }

    /// `POST path` with a JSON body.
    async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).json(&body)).await
    }

    /// `POST path` with a form body, as `requests.post(url, data=…)` sends it.
    async fn post_form(&self, path: &str, form: &str) -> (StatusCode, Value) {
        let req = self
            .request(Method::POST, path)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_owned());
        self.send(req).await
    }

    /// `POST path` with JSON sent as a form, as `curl -d '{…}'` sends it.
    async fn post_curl_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let req = self
            .request(Method::POST, path)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.to_string());
        self.send(req).await
    }
}

/// Asserts the original's success envelope, exactly its four keys; returns `data`.
fn ok((status, body): (StatusCode, Value)) -> Value {
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: Vec<&String> = body.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["code", "data", "error", "status"], "{body}");
    assert_eq!(
        (&body["code"], &body["status"], &body["error"]),
        (&json!(200), &json!("OK"), &json!("")),
        "{body}"
    );
    body["data"].clone()
}

/// Asserts the original's failure envelope with `code`; returns it.
fn failed(code: u16, (status, body): (StatusCode, Value)) -> Value {
    let http = if code == 401 {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    assert_eq!(status, http, "{body}");
    let keys: Vec<&String> = body.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["code", "data", "error", "status"], "{body}");
    assert_eq!(
        (&body["code"], &body["status"]),
        (&json!(code), &json!("FAIL")),
        "{body}"
    );
    assert!(body["data"].is_object(), "{body}");
    assert!(!body["error"].as_str().expect("error text").is_empty(), "{body}");
    body
}

/// Asserts that `data` is a cluster in the original's shape, of `user` (`""`: free).
fn assert_cluster(data: &Value, user: &str) {
    for key in [
        "id",
        "name",
        "user_id",
        "api_url",
        "daemon_url",
        "consensus_plugin",
        "consensus_mode",
    ] {
        assert!(data[key].is_string(), "{key} in {data}");
    }
    assert!(data["size"].is_u64(), "{data}");
    assert!(
        data["service_url"].is_object() && data["service_urls"].is_object(),
        "{data}"
    );
    assert_eq!(data["user_id"], user, "{data}");
}

/// Adds a blueprint of `nodes` web nodes labelled as the original's cluster types,
/// whose API URL is `api_port`; returns its name.
async fn add_typed_blueprint(
    s: &TestServer,
    plugin: &str,
    mode: &str,
    nodes: usize,
    api_port: &str,
) -> String {
    let name = unique(&format!("{plugin}-{mode}"));
    let labels = [
        ("consensus_plugin", plugin),
        ("consensus_mode", mode),
        ("size", "4"),
    ];
    let new = poolcore::NewBlueprint {
        name: name.clone(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        nodes: (0..nodes)
            .map(|i| poolcore::NodeSpec {
                name: format!("vp{i}"),
                image: image(),
                command: vec![],
                env: BTreeMap::new(),
                ports: [("web".to_owned(), "80/tcp".parse().expect("port"))].into(),
                health: None,
                readiness: None,
            })
            .collect(),
        api_port: Some(api_port.parse().expect("api port")),
        max_applied: None,
        buffer: Default::default(),
        buffer_windows: Default::default(),
        placement: Default::default(),
        release_mode: Default::default(),
        rollout: Default::default(),
    };
    s.pool.create_blueprint(new).await.expect("blueprint");
    name
}

/// A server with a host of capacity 4 (not filled yet), a client of its legacy
/// routes, and the host's id; `None` without an engine.
async fn with_host() -> Option<(TestServer, Legacy, String)> {
    let s = TestServer::start().await?;
    let legacy = Legacy::of(&s);
    let host = s.add_host(4, false).await;
    Some((s, legacy, host))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_documented_requests_work_as_documented() {
    let Some((s, legacy, host)) = with_host().await else {
        return;
    };
    add_typed_blueprint(&s, "pbft", "batch", 2, "vp1.web").await;
    add_typed_blueprint(&s, "pbft", "classic", 1, "vp0.web").await;
    s.fill(&host).await;

    // POST /clusters, "all available clusters of a given type" (restserver_v2.md).
    let free_classic = ok(legacy
        .post_json(
            "/v2/clusters",
            json!({"consensus_plugin": "pbft", "consensus_mode": "classic", "size": 4, "user_id": ""}),
        )
        .await);
    assert_eq!(
        free_classic.as_array().expect("a list").len(),
        2,
        "{free_classic}"
    );
    free_classic
        .as_array()
        .unwrap()
        .iter()
        .for_each(|c| assert_cluster(c, ""));
    let free = ok(legacy.get("/v2/clusters?user_id=").await);
    assert_eq!(free.as_array().expect("a list").len(), 4, "{free}");

    // "Cluster apply" of restserver_v2.md, as JSON.
    let apply = json!({
        "action": "apply", "user_id": "xxx", "allow_multiple": false,
        "consensus_plugin": "pbft", "consensus_mode": "batch", "size": 4,
    });
    let a = ok(legacy.post_json("/v2/cluster_op", apply).await);
    assert_cluster(&a, "xxx");
    assert_eq!(
        (&a["consensus_plugin"], &a["consensus_mode"], &a["size"]),
        (&json!("pbft"), &json!("batch"), &json!(4))
    );
    assert_eq!(a["daemon_url"], s.endpoint, "the host's engine endpoint");
    assert_eq!(
        a["api_url"], a["service_urls"]["vp1"]["web"],
        "the blueprint's api_port"
    );
    assert_eq!(
        a["service_url"]["web"], a["api_url"],
        "the API node's port comes first"
    );
    assert_eq!(a["status"], "running");
    assert!(http_get(a["api_url"].as_str().expect("api_url"))
        .await
        .ends_with("ok\n"));

    // Queries of restserver_v2.md: the type, and a user's clusters.
    let of_type = json!({"consensus_plugin": "pbft", "consensus_mode": "batch", "size": 4});
    assert_eq!(
        ok(legacy.post_json("/v2/clusters", of_type).await)
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let mine = ok(legacy.post_json("/v2/clusters", json!({"user_id": "xxx"})).await);
    assert_eq!(
        mine.as_array()
            .map(|l| l.iter().map(|c| &c["id"]).collect::<Vec<_>>()),
        Some(vec![&a["id"]])
    );

    // The same apply as a form: "False" means false (the original took the string as true).
    let form =
        "action=apply&user_id=xxx&allow_multiple=False&consensus_plugin=pbft&consensus_mode=batch&size=4";
    assert_eq!(
        ok(legacy.post_form("/v2/cluster_op", form).await)["id"],
        a["id"],
        "the user's cluster back"
    );
    // As a query string, allowing another one.
    let query = "/v2/cluster_op?action=apply&user_id=xxx&allow_multiple=True&consensus_plugin=pbft&consensus_mode=batch&size=4";
    let b = ok(legacy.get(query).await);
    assert_cluster(&b, "xxx");
    assert_ne!(b["id"], a["id"]);
    // As `curl -d` sends JSON: none of that type is left.
    let more = json!({"action": "apply", "user_id": "xxx", "allow_multiple": "true", "consensus_plugin": "pbft", "consensus_mode": "batch"});
    let none = failed(400, legacy.post_curl_json("/v2/cluster_op", more).await);
    assert!(
        none["error"]
            .as_str()
            .unwrap()
            .starts_with("No available res for xxx"),
        "{none}"
    );

    // restserver_v1.md's cluster_apply: new=0 gives the user's cluster back, new=1 another.
    let v1 = "/v1/cluster_apply?user_id=yyy&consensus_plugin=pbft&consensus_mode=classic&size=4";
    let c = ok(legacy.get(&format!("{v1}&new=0")).await);
    assert_cluster(&c, "yyy");
    assert_eq!(
        (&c["consensus_mode"], &c["api_url"]),
        (&json!("classic"), &c["service_urls"]["vp0"]["web"])
    );
    assert_eq!(ok(legacy.get(&format!("{v1}&new=0")).await)["id"], c["id"]);
    let d = ok(legacy.get(&format!("{v1}&new=1")).await);
    assert_ne!(d["id"], c["id"]);
    failed(400, legacy.get(&format!("{v1}&new=1")).await);
    // The /v2 aliases of the deprecated forms.
    failed(
        400,
        legacy
            .post_form("/v2/cluster_apply", "user_id=zzz&consensus_mode=classic")
            .await,
    );
    let held = ok(legacy
        .get("/v2/cluster_apply?user_id=yyy&consensus_mode=classic")
        .await);
    assert!(
        held["id"] == c["id"] || held["id"] == d["id"],
        "one of the user's: {held}"
    );

    // GET /cluster/{id}.
    let got = ok(legacy
        .get(&format!("/v2/cluster/{}", a["id"].as_str().unwrap()))
        .await);
    assert_cluster(&got, "xxx");
    assert_eq!(
        (&got["id"], &got["api_url"], &got["health"]),
        (&a["id"], &a["api_url"], &json!("OK"))
    );

    // Start, stop, restart, one node or all, on behalf of the cluster's user.
    let a_id = a["id"].as_str().unwrap();
    for (action, node) in [("stop", Some("vp0")), ("start", Some("vp0")), ("restart", None)] {
        let mut body = json!({"action": action, "cluster_id": a_id});
        if let Some(node) = node {
            body["node_id"] = json!(node);
        }
        assert_eq!(
            ok(legacy.post_json("/v2/cluster_op", body).await),
            json!({}),
            "{action}"
        );
    }
    let refused = failed(
        403,
        legacy
            .post_json(
                "/v2/cluster_op",
                json!({"action": "stop", "cluster_id": a_id, "user_id": "yyy"}),
            )
            .await,
    );
    assert!(
        refused["error"].as_str().unwrap().contains("not applied to user"),
        "{refused}"
    );
    let a_now = ok(legacy.get(&format!("/v2/cluster/{a_id}")).await);
    assert_eq!(a_now["status"], "running");
    assert!(http_get(a_now["api_url"].as_str().unwrap())
        .await
        .ends_with("ok\n"));

    // "Cluster release": one cluster, then every cluster of a user; v1's two forms.
    let done = json!({"code": 200, "data": {}, "error": "", "status": "OK"});
    let (status, body) = legacy
        .post_json("/v2/cluster_op", json!({"action": "release", "cluster_id": a_id}))
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &done));
    ok(legacy
        .post_json("/v2/cluster_op", json!({"action": "release", "user_id": "xxx"}))
        .await);
    ok(legacy
        .get(&format!(
            "/v1/cluster_release?cluster_id={}",
            c["id"].as_str().unwrap()
        ))
        .await);
    ok(legacy.get("/v1/cluster_release?user_id=yyy").await);
    ok(legacy.post_form("/v2/cluster_release", "user_id=nobody").await);
    let again = failed(
        400,
        legacy
            .get(&format!("/v2/cluster_release?cluster_id={a_id}"))
            .await,
    );
    assert_eq!(
        again["data"],
        json!({"cluster_id": a_id}),
        "the failure names what was asked"
    );

    let (_, held) = s.admin(Method::GET, "/clusters?status=applied", None).await;
    assert_eq!(held["total"], 0, "{held}");
    s.pool.wait_idle().await;
    for cluster in free.as_array().unwrap() {
        s.wait_cluster(cluster["id"].as_str().unwrap(), |c| c["status"] == "ready")
            .await;
    }
    s.remove_host(&host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_answer_in_the_original_envelope() {
    let Some(s) = TestServer::start().await else {
        return;
    };
    let legacy = Legacy::of(&s);
    add_typed_blueprint(&s, "pbft", "batch", 1, "vp0.web").await;

    let unknown = json!({"code": 400, "data": {}, "error": "Unknown action type", "status": "FAIL"});
    for (status, body) in [
        legacy.get("/v2/cluster_op").await,
        legacy.get("/v2/cluster_op?action=fly&user_id=u").await,
        legacy.post_json("/v2/cluster_op", json!({"action": "fly"})).await,
        legacy.post_form("/v2/cluster_op", "action=").await,
    ] {
        assert_eq!((status, &body), (StatusCode::BAD_REQUEST, &unknown));
    }
    for answer in [
        legacy.post_form("/v2/cluster_op", "action=apply").await,
        legacy.get("/v1/cluster_apply?user_id=").await,
        legacy.post_json("/v2/cluster_apply", json!({"size": 4})).await,
    ] {
        assert_eq!(failed(400, answer)["error"], "cluster_apply without user_id");
    }
    let missing = failed(404, legacy.get("/v2/cluster/nope").await);
    assert_eq!(missing["error"], "cluster not found with id=nope");
    for action in ["release", "start", "stop", "restart"] {
        let body = json!({"action": action, "cluster_id": "nope"});
        failed(404, legacy.post_json("/v2/cluster_op", body).await);
    }
    let nope = failed(404, legacy.get("/v1/cluster_release?cluster_id=nope").await);
    assert_eq!(nope["data"], json!({"cluster_id": "nope"}));
    failed(400, legacy.get("/v1/cluster_release").await);
    failed(
        400,
        legacy
            .post_json("/v2/cluster_op", json!({"action": "stop"}))
            .await,
    );

    // No ready cluster: no host holds one, or no blueprint has the labels.
    for query in ["user_id=u1", "user_id=u1&consensus_plugin=noops"] {
        let none = failed(400, legacy.get(&format!("/v1/cluster_apply?{query}")).await);
        let error = none["error"].as_str().unwrap();
        assert!(error.starts_with("No available res for u1"), "{none}");
    }
    failed(400, legacy.get("/v1/cluster_apply?user_id=u1&size=four").await);
    failed(
        400,
        legacy
            .get("/v2/cluster_op?action=apply&user_id=u1&allow_multiple=maybe")
            .await,
    );
    failed(
        400,
        legacy
            .post_json("/v2/clusters", json!({"status": "running"}))
            .await,
    );
    assert_eq!(ok(legacy.post_json("/v2/clusters", json!({})).await), json!([]));

    // Tokens: none or a wrong one is 401 in the same envelope; the admin token works.
    let refused = failed(401, legacy.with_token(None).get("/v2/cluster/nope").await);
    assert!(refused["error"].as_str().unwrap().contains("Bearer"), "{refused}");
    failed(
        401,
        legacy.with_token(Some("wrong")).get("/v2/cluster/nope").await,
    );
    failed(404, legacy.with_token(Some(ADMIN)).get("/v2/cluster/nope").await);

    // The spec and its Swagger UI.
    let (status, spec) = legacy.get("/legacy/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(spec["paths"]["/v2/cluster_op"]["post"].is_object(), "{spec}");
    let docs = s
        .http
        .get(format!("{}/legacy/docs", legacy.root))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_network_needs_no_token_for_the_legacy_routes_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("pool.db").display());
    let open = ServeProcess::start(&database, &[("POOLMANAGER_LEGACY_OPEN_TO", "[127.0.0.0/8]")]).await;
    let legacy = Legacy::of(&open).with_token(None);
    failed(404, legacy.get("/v2/cluster/nope").await);
    failed(400, legacy.get("/v1/cluster_apply?user_id=u1").await);
    failed(
        401,
        legacy.with_token(Some("wrong")).get("/v2/cluster/nope").await,
    );
    let (status, _) = open.call(Method::GET, "/clusters", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "/api/v1 still needs a token");

    let closed = ServeProcess::start(&database, &[("POOLMANAGER_LEGACY_OPEN_TO", "[10.0.0.0/8]")]).await;
    failed(
        401,
        Legacy::of(&closed).with_token(None).get("/v2/cluster/nope").await,
    );
}

/// What the load clients know: per user, the cluster they hold and whether a release
/// of theirs is on its way.
#[derive(Default)]
struct Claims {
    held: BTreeMap<String, String>,
    releasing: BTreeSet<String>,
    violations: Vec<String>,
}

impl Claims {
    /// `user` was answered `cluster`; returns true for a new claim. Another user who
    /// holds it and sent no release yet holds it at this very moment too.
    fn applied(&mut self, user: &str, cluster: &str) -> bool {
        for (other, theirs) in &self.held {
            if other != user && theirs == cluster && !self.releasing.contains(other) {
                self.violations
                    .push(format!("{cluster} held by {other} and {user}"));
            }
        }
        match self.held.insert(user.to_owned(), cluster.to_owned()) {
            None => true,
            Some(before) if before == cluster => false,
            Some(before) => {
                self.violations
                    .push(format!("{user} holds {before} and was handed {cluster}"));
                true
            }
        }
    }
}

/// Requests of the load, as in `test/user_operations.sh`.
const REQUESTS: usize = 1000;

/// Most milliseconds a user waits before each request: the load then lasts long
/// enough for released clusters to be recycled and handed out again.
const THINK_MS: u64 = 1000;

#[derive(Default, Debug)]
struct Tally {
    claimed: usize,
    held_again: usize,
    exhausted: usize,
    released: usize,
    other: Vec<String>,
}

/// One client of the load: a user sending random applies and releases, one at a time
/// after a random pause, until `REQUESTS` are sent by all users together.
async fn user_load(legacy: &Legacy, user: &str, sent: &AtomicUsize, claims: &Mutex<Claims>) -> Tally {
    let mut tally = Tally::default();
    while sent.fetch_add(1, Ordering::SeqCst) < REQUESTS {
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..THINK_MS))).await;
        if rand::random::<bool>() {
            let answer = legacy.get(&format!("/v1/cluster_apply?user_id={user}")).await;
            if answer.0 == StatusCode::OK {
                let data = ok(answer);
                assert_cluster(&data, user);
                let id = data["id"].as_str().expect("id");
                match claims.lock().expect("claims").applied(user, id) {
                    true => tally.claimed += 1,
                    false => tally.held_again += 1,
                }
                continue;
            }
            let body = failed(400, answer);
            match body["error"].as_str() {
                Some(e) if e.starts_with(&format!("No available res for {user}")) => tally.exhausted += 1,
                _ => tally.other.push(body.to_string()),
            }
        } else {
            claims.lock().expect("claims").releasing.insert(user.to_owned());
            let answer = legacy.get(&format!("/v1/cluster_release?user_id={user}")).await;
            let mut claims = claims.lock().expect("claims");
            claims.releasing.remove(user);
            if answer.0 == StatusCode::OK {
                assert_eq!(ok(answer), json!({}));
                claims.held.remove(user);
                tally.released += 1;
            } else {
                tally.other.push(answer.1.to_string());
            }
        }
    }
    tally
}

/// When a lease was applied and released (`None` while held).
type Span = (DateTime<Utc>, Option<DateTime<Utc>>);

/// No two leases of one cluster overlap; every lease is closed. Returns their count.
async fn assert_leases_never_overlap(s: &TestServer) -> usize {
    let (status, leases) = s.admin(Method::GET, "/leases?limit=1000", None).await;
    assert_eq!(status, StatusCode::OK, "{leases}");
    let items = leases["items"].as_array().expect("items");
    assert_eq!(
        leases["total"].as_u64(),
        Some(items.len() as u64),
        "one page holds them all"
    );
    let time = |v: &Value| v.as_str().map(|t| t.parse::<DateTime<Utc>>().expect("RFC 3339"));
    let mut by_cluster: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for lease in items {
        let span = (
            time(&lease["applied_at"]).expect("applied_at"),
            time(&lease["released_at"]),
        );
        by_cluster
            .entry(lease["cluster_id"].as_str().expect("cluster"))
            .or_default()
            .push(span);
    }
    for (cluster, spans) in &mut by_cluster {
        spans.sort();
        for pair in spans.windows(2) {
            let released = pair[0]
                .1
                .unwrap_or_else(|| panic!("{cluster}: an open lease before another"));
            assert!(released <= pair[1].0, "{cluster}: leases overlap: {pair:?}");
        }
        assert!(
            spans.iter().all(|(_, released)| released.is_some()),
            "{cluster}: all released"
        );
    }
    items.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_original_load_script_never_hands_a_cluster_to_two_users() {
    let Some((s, legacy, host)) = with_host().await else {
        return;
    };
    s.add_blueprint(1).await;
    s.fill(&host).await;

    let users: Vec<String> = ('a'..='z').map(String::from).collect();
    let sent = AtomicUsize::new(0);
    let claims = Arc::new(Mutex::new(Claims::default()));
    let started = Instant::now();
    let tallies =
        futures::future::join_all(users.iter().map(|user| user_load(&legacy, user, &sent, &claims))).await;
    let took = started.elapsed();

    let mut total = Tally::default();
    for t in tallies {
        total.claimed += t.claimed;
        total.held_again += t.held_again;
        total.exhausted += t.exhausted;
        total.released += t.released;
        total.other.extend(t.other);
    }
    let sent = total.claimed + total.held_again + total.exhausted + total.released + total.other.len();
    eprintln!(
        "{sent} legacy requests from 26 users in {took:?} ({:.0}/s): {} claims, {} held clusters \
         handed back, {} 'No available res', {} releases, other failures: {:?}",
        sent as f64 / took.as_secs_f64(),
        total.claimed,
        total.held_again,
        total.exhausted,
        total.released,
        total.other
    );
    assert_eq!(sent, REQUESTS);
    assert!(
        total.other.is_empty(),
        "only exhaustion may fail: {:?}",
        total.other
    );
    assert!(total.claimed > 0 && total.released > 0, "{total:?}");
    assert_eq!(claims.lock().expect("claims").violations, Vec::<String>::new());

    for user in &users {
        ok(legacy.get(&format!("/v1/cluster_release?user_id={user}")).await);
    }
    let recycling = Instant::now();
    s.pool.wait_idle().await;
    eprintln!("the last releases were recycled in {:?}", recycling.elapsed());
    assert_eq!(
        assert_leases_never_overlap(&s).await,
        total.claimed,
        "one lease per claim"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    s.remove_host(&host).await;
}

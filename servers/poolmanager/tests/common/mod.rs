//! A real server on a real port, on a real SQLite file, driving a real Docker engine
//! (as a docker host, or as a swarm manager).

#![allow(dead_code)]

pub mod contract;
pub mod serve;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use poolmanager::api::auth::Tokens;
use poolmanager::config::Config;

pub const ADMIN: &str = "test-admin-token";
pub const USER: &str = "test-user-token";

/// The Docker engine the tests use: `POOLMANAGER_TEST_DOCKER`, then `DOCKER_HOST`,
/// then the default socket. `None` when none answers and CI is not set; under
/// `CI=true` a missing engine fails the test.
pub async fn engine() -> Option<String> {
    let endpoint = std::env::var("POOLMANAGER_TEST_DOCKER")
        .or_else(|_| std::env::var("DOCKER_HOST"))
        .unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let socket = endpoint.strip_prefix("unix://").unwrap_or_default();
    let answers = !socket.is_empty() && tokio::net::UnixStream::connect(socket).await.is_ok()
        || endpoint.starts_with("tcp://");
    if answers {
        return Some(endpoint);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but no Docker engine answers at {endpoint}; scripts/test.sh starts one");
    }
    eprintln!("skipping: no Docker engine at {endpoint} (run scripts/test.sh)");
    None
}

/// The MongoDB server the tests use: `POOLMANAGER_TEST_MONGO_URL`. `None` when it is
/// not set and CI is not set; under `CI=true` a missing server fails the test.
pub fn mongo_url() -> Option<String> {
    const VAR: &str = "POOLMANAGER_TEST_MONGO_URL";
    if let Some(url) = std::env::var(VAR).ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {VAR} is not set; scripts/test.sh starts a MongoDB test server");
    }
    eprintln!("skipping: {VAR} is not set (run scripts/test.sh or scripts/test-mongo.sh)");
    None
}

/// The test image (busybox; serves `ok` on port 80 by default).
pub fn image() -> String {
    std::env::var("POOLMANAGER_TEST_IMAGE").unwrap_or_else(|_| "poolmanager/testnode:latest".into())
}

/// A unique name with `prefix`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &poolcore::model::new_id()[..8])
}

/// A client for a server's API.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// A running server and a client for it.
pub struct TestServer {
    pub api: Api,
    pub endpoint: String,
    pub pool: poolcore::Pool,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestServer {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestServer {
    /// Starts a server on a fresh SQLite file; `None` when no engine is there.
    pub async fn start() -> Option<TestServer> {
        Self::start_with(|_| {}).await
    }

    /// Like [`TestServer::start`], with the config changed by `adjust` first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Option<TestServer> {
        let endpoint = engine().await?;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            database: format!("sqlite://{}", dir.path().join("pool.db").display()),
            // The test image's httpd ignores SIGTERM: a short grace keeps stops, restarts
            // and swarm work fast.
            docker: poolcore_docker::DockerConfig::new().with_stop_timeout(Duration::from_secs(1)),
            swarm: poolcore_swarm::SwarmConfig::new()
                .with_stop_grace(Duration::from_secs(1))
                .with_start_timeout(Duration::from_secs(60)),
            ..Config::default()
        };
        adjust(&mut config);
        let pool = poolmanager::build_pool(&config).await.expect("pool");
        let tokens = Tokens {
            admin: ADMIN.into(),
            user: Some(USER.into()),
        };
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind");
        let addr: SocketAddr = *acceptor.local_addr()[0].as_socket_addr().expect("tcp address");
        let app = poolmanager::api::app(pool.clone(), tokens);
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Some(TestServer {
            api: Api::new(addr),
            endpoint,
            pool,
            _dir: dir,
        })
    }

    /// Adds the test engine as a docker host; returns its id.
    pub async fn add_host(&self, capacity: u32, autofill: bool) -> String {
        self.api.add_host(&self.endpoint, capacity, autofill).await
    }

    /// Asks to add the test engine as a host of `kind`: status and body.
    pub async fn post_host(&self, kind: &str, capacity: u32, autofill: bool) -> (StatusCode, Value) {
        self.api.post_host(&self.endpoint, kind, capacity, autofill).await
    }

    /// Removes the host and everything on it.
    pub async fn remove_host(&self, host: &str) {
        let record = self.pool.host(host).await.expect("host exists");
        self.api.delete_host(host).await;
        // Work still running on the host's clusters (a recycle after a release) finds
        // their records gone and removes what it made; let it end before the test does.
        self.pool.wait_idle().await;
        assert_nothing_left(&record).await;
    }
}

/// Asserts that the engine holds nothing of `host`.
pub async fn assert_nothing_left(host: &poolcore::Host) {
    use poolcore::{Connector, HostKind};
    let driver = match host.kind {
        HostKind::Docker => poolcore_docker::DockerConnector::new().connect(host),
        HostKind::Swarm => poolcore_swarm::SwarmConnector::new().connect(host),
        other => panic!("the server tests make docker and swarm hosts only, not {other}"),
    }
    .expect("driver");
    let left = driver.inspect().await.expect("inspect");
    assert!(
        left.is_empty(),
        "nothing of the host is left on the engine: {left:?}"
    );
}

impl Api {
    /// A client for the server at `addr`.
    pub fn new(addr: SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}/api/v1"),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("client"),
        }
    }

    /// Sends a request with `token` and returns status and JSON body (`Null` if none),
    /// after checking both against the spec (see [`contract`]).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body read");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path} answered non-JSON: {text}"))
        };
        contract::check(&method, path, status, &headers, &json);
        (status, json)
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(ADMIN), body).await
    }

    pub async fn user(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(USER), body).await
    }

    /// Adds the engine at `endpoint` as a docker host; returns its id.
    pub async fn add_host(&self, endpoint: &str, capacity: u32, autofill: bool) -> String {
        let (status, host) = self.post_host(endpoint, "docker", capacity, autofill).await;
        assert_eq!(status, StatusCode::CREATED, "add host: {host}");
        host["id"].as_str().expect("host id").to_owned()
    }

    /// Asks to add the engine at `endpoint` as a `kind` host; returns status and body.
    pub async fn post_host(
        &self,
        endpoint: &str,
        kind: &str,
        capacity: u32,
        autofill: bool,
    ) -> (StatusCode, Value) {
        let body = json!({
            "name": unique("host"),
            "kind": kind,
            "endpoint": endpoint,
            "capacity": capacity,
            "autofill": autofill,
        });
        self.admin(Method::POST, "/hosts", Some(body)).await
    }

    /// Adds a blueprint of `nodes` httpd nodes, each with port `web` 80/tcp.
    pub async fn add_blueprint(&self, nodes: usize) -> String {
        let name = unique("bp");
        let nodes: Vec<Value> = (0..nodes)
            .map(|i| json!({"name": format!("vp{i}"), "image": image(), "ports": {"web": "80/tcp"}}))
            .collect();
        let (status, body) = self
            .admin(
                Method::POST,
                "/blueprints",
                Some(json!({"name": name, "labels": {"consensus": "pbft"}, "nodes": nodes})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "add blueprint: {body}");
        name
    }

    /// Adds a blueprint of two httpd nodes that answer on port `web` only `after`
    /// seconds (`exec_probe`: and write /tmp/ready then), each with `readiness`.
    pub async fn add_slow_blueprint(&self, after: u32, readiness: Value) -> String {
        let name = unique("slow");
        let script =
            format!("(sleep {after}; echo > /tmp/ready) & sleep {after}; exec httpd -f -p 80 -h /www");
        let nodes: Vec<Value> = (0..2)
            .map(|i| {
                json!({"name": format!("vp{i}"), "image": image(), "ports": {"web": "80/tcp"},
                       "command": ["sh", "-c", script], "readiness": readiness})
            })
            .collect();
        let (status, body) = self
            .admin(
                Method::POST,
                "/blueprints",
                Some(json!({"name": name, "nodes": nodes})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "add blueprint: {body}");
        name
    }

    /// Fills `host` with the slow blueprint `bp`, whose nodes answer after `after`
    /// seconds, and checks that its cluster stays `creating` and no apply gets it
    /// until its probes pass; then that an apply gets it and it answers. Returns how
    /// long the fill took.
    pub async fn fill_slow(&self, host: &str, bp: &str, after: u32) -> Duration {
        let started = Instant::now();
        let (status, body) = self
            .admin(
                Method::POST,
                &format!("/hosts/{host}/fill"),
                Some(json!({"blueprint": bp})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "fill: {body}");
        let op = body["operation_id"].as_str().expect("operation id").to_owned();
        let apply = json!({"user_id": "early", "blueprint": bp});
        let mut looked = 0;
        while started.elapsed() < Duration::from_secs(u64::from(after)) - Duration::from_millis(500) {
            let (_, listed) = self
                .admin(Method::GET, &format!("/clusters?host_id={host}"), None)
                .await;
            for c in listed["items"].as_array().expect("items") {
                assert_eq!(c["status"], "creating", "before its probes pass: {c}");
            }
            let (status, refused) = self.user(Method::POST, "/apply", Some(apply.clone())).await;
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "handed out early: {refused}"
            );
            looked += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(looked > 3, "looked only {looked} times");
        let op = self.wait_operation(&op).await;
        assert_eq!(op["status"], "succeeded", "fill: {op}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(u64::from(after)),
            "ready after {took:?}"
        );
        let (status, cluster) = self.user(Method::POST, "/apply", Some(apply)).await;
        assert_eq!(status, StatusCode::OK, "apply: {cluster}");
        assert_answers(&cluster, &["vp0", "vp1"]).await;
        took
    }

    /// Polls an operation until it ends; returns it.
    pub async fn wait_operation(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, op) = self.admin(Method::GET, &format!("/operations/{id}"), None).await;
            assert_eq!(status, StatusCode::OK, "operation: {op}");
            if op["status"] != "running" {
                return op;
            }
            assert!(Instant::now() < deadline, "operation {id} still running: {op}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Fills `host` and waits until the fill succeeded.
    pub async fn fill(&self, host: &str) {
        let (status, body) = self
            .admin(Method::POST, &format!("/hosts/{host}/fill"), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "fill: {body}");
        let op = self
            .wait_operation(body["operation_id"].as_str().expect("operation id"))
            .await;
        assert_eq!(op["status"], "succeeded", "fill: {op}");
        assert_eq!(op["done"], op["total"]);
    }

    /// Polls a cluster until `ready(cluster)`; returns it.
    pub async fn wait_cluster(&self, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, cluster) = self.admin(Method::GET, &format!("/clusters/{id}"), None).await;
            assert_eq!(status, StatusCode::OK, "cluster: {cluster}");
            if ready(&cluster) {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "cluster {id} never got there: {cluster}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many clusters of `host` are ready, as a user lists them.
    pub async fn ready_clusters(&self, host: &str) -> u64 {
        let path = format!("/clusters?host_id={host}&status=ready");
        let (status, list) = self.user(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["total"].as_u64().expect("total")
    }

    /// Deletes the host with force: its clusters and what they run go too.
    pub async fn delete_host(&self, host: &str) {
        let (status, body) = self
            .admin(Method::DELETE, &format!("/hosts/{host}?force=true"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "delete host: {body}");
    }
}

/// GETs `url` over plain HTTP/1.0 on a TCP socket and returns the response text.
pub async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = url
        .strip_prefix("http://")
        .expect("http URL")
        .trim_end_matches('/');
    let mut last_err = None;
    for _ in 0..50 {
        match tokio::net::TcpStream::connect(authority).await {
            Ok(mut stream) => {
                stream
                    .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
                    .await
                    .expect("write request");
                let mut text = String::new();
                if stream.read_to_string(&mut text).await.is_ok() && !text.is_empty() {
                    return text;
                }
            }
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered: {last_err:?}");
}

/// Runs `docker -H <endpoint> args...` and returns its stdout; panics when it fails.
pub fn docker(endpoint: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .arg("-H")
        .arg(endpoint)
        .args(args)
        .output()
        .expect("the docker CLI runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Asserts that the `web` URL of each of `nodes` of `cluster` is on `127.0.0.1` and
/// answers `ok` over plain TCP.
pub async fn assert_answers(cluster: &Value, nodes: &[&str]) {
    for node in nodes {
        let url = cluster["service_urls"][node]["web"]
            .as_str()
            .unwrap_or_else(|| panic!("no service url for {node}: {cluster}"));
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let answer = http_get(url).await;
        assert!(
            answer.starts_with("HTTP/1.") && answer.ends_with("ok\n"),
            "{url} answered {answer:?}"
        );
    }
}

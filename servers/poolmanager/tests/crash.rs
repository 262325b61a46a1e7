//! Crash safety with real processes: `kill -9` a `poolmanager serve` in the middle of a
//! fill and of a release, then one `poolmanager reconcile --once` pass restores
//! everything. Also: of several processes on one store, one reconciles at a time, and
//! a dead holder's lock is taken over.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use poolcore::{ClusterFilter, ClusterStatus, Connector, Health, NodeState, OperationStatus, Page, Store};
use poolcore_docker::DockerConnector;
use poolcore_sqlite::SqliteStore;
use reqwest::{Method, StatusCode};
use serde_json::json;

use common::engine;
use common::serve::ServeProcess;

/// A `poolmanager` command on the database `db`.
fn poolmanager(db: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolmanager"));
    cmd.env("POOLMANAGER_DATABASE", sqlite_url(db))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied());
    cmd
}

fn sqlite_url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

/// Runs `poolmanager reconcile --once`.
fn reconcile_once(db: &Path) -> Output {
    let timeouts = [
        ("POOLMANAGER_RECONCILE_TRANSITION_TIMEOUT", "0"),
        ("POOLMANAGER_RECONCILE_OPERATION_TIMEOUT", "1"),
    ];
    poolmanager(db, &timeouts)
        .args(["reconcile", "--once"])
        .output()
        .expect("poolmanager reconcile runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts the store and the engine agree: `capacity` clusters, all ready and
/// healthy, each with every node running, nothing else on the engine.
async fn assert_whole(store: &SqliteStore, host_id: &str, capacity: usize) {
    let clusters = store
        .list_clusters(&ClusterFilter::default(), Page::ALL)
        .await
        .expect("clusters")
        .items;
    assert_eq!(clusters.len(), capacity, "the host is filled to capacity");
    for c in &clusters {
        assert_eq!(
            (c.status, c.health),
            (ClusterStatus::Ready, Health::Ok),
            "no cluster is stuck: {c:?}"
        );
    }
    let host = store.get_host(host_id).await.expect("host").expect("host exists");
    let driver = DockerConnector::new().connect(&host).expect("driver");
    let observed = driver.inspect().await.expect("inspect");
    let mut on_engine: Vec<&str> = observed.iter().map(|o| o.cluster_id.as_str()).collect();
    let mut in_store: Vec<&str> = clusters.iter().map(|c| c.id.as_str()).collect();
    on_engine.sort_unstable();
    in_store.sort_unstable();
    assert_eq!(on_engine, in_store, "no orphans, nothing missing");
    for o in &observed {
        assert!(o.network, "{o:?}");
        assert!(o.nodes.values().all(|s| *s == NodeState::Running), "{o:?}");
    }
}

/// Removes everything labelled with a host from the engine when dropped, so a failed
/// run leaves nothing behind either.
struct Sweep {
    endpoint: String,
    host_id: Option<String>,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let Some(host_id) = &self.host_id else {
            return;
        };
        let filter = format!("label=poolmanager.host={host_id}");
        for (list, remove) in [
            (["ps", "-aq"], ["rm", "-f"]),
            (["network", "ls"], ["network", "rm"]),
        ] {
            let mut args: Vec<&str> = list.to_vec();
            if list[0] == "network" {
                args.push("-q");
            }
            args.extend(["--filter", &filter]);
            let ids = Command::new("docker")
                .arg("-H")
                .arg(&self.endpoint)
                .args(&args)
                .output();
            let ids = ids
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for id in ids.split_whitespace() {
                let _ = Command::new("docker")
                    .arg("-H")
                    .arg(&self.endpoint)
                    .args(remove)
                    .arg(id)
                    .output();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_fill_and_mid_release_then_one_pass_restores_everything() {
    let Some(endpoint) = engine().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let db: PathBuf = dir.path().join("pool.db");
    let no_reconciler = [
        ("POOLMANAGER_RECONCILE_INTERVAL", "0"),
        ("POOLMANAGER_HOST_PARALLELISM", "1"),
    ];
    const CAPACITY: usize = 5;

    // Mid-fill: some clusters made, some half made, some not started.
    let serve = ServeProcess::start(&sqlite_url(&db), &no_reconciler).await;
    let mut sweep = Sweep {
        endpoint: endpoint.clone(),
        host_id: None,
    };
    let host = serve.add_host(&endpoint, CAPACITY as u32, false).await;
    let bp = serve.add_blueprint(2).await;
    sweep.host_id = Some(host.clone());
    let (status, op) = serve
        .admin(Method::POST, &format!("/hosts/{host}/fill"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, stats) = serve.admin(Method::GET, "/stats", None).await;
        if stats["clusters"]["ready"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no cluster got ready: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serve.kill_9().await;
    let fill_id = op["operation_id"].as_str().expect("an operation id").to_owned();
    let store = SqliteStore::open(&db).await.expect("store");
    let creating = store
        .list_clusters(
            &ClusterFilter {
                status: Some(ClusterStatus::Creating),
                ..Default::default()
            },
            Page::ALL,
        )
        .await
        .expect("clusters")
        .total;
    assert!(creating > 0, "the kill came mid-fill");

    // The fill's server is gone: once its operation has been silent for the timeout
    // (1 s here), the pass closes it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let out = reconcile_once(&db);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!(
        "after kill -9 mid-fill ({creating} clusters creating): one pass restored the pool in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_whole(&store, &host, CAPACITY).await;
    let fill = store
        .get_operation(&fill_id)
        .await
        .expect("get")
        .expect("the fill is kept");
    assert_eq!(fill.status, OperationStatus::Interrupted, "{fill:?}");
    assert!(
        fill.error
            .as_deref()
            .is_some_and(|e| e.contains("server stopped"))
            && fill.finished_at.is_some(),
        "the interrupted fill says why: {fill:?}"
    );

    // Mid-release: the leases are closed, the clusters not yet recreated.
    let serve = ServeProcess::start(&sqlite_url(&db), &no_reconciler).await;
    for user in ["ann", "ben", "cat"] {
        let (status, c) = serve
            .user(
                Method::POST,
                "/apply",
                Some(json!({"user_id": user, "blueprint": bp})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        let (status, released) = serve
            .user(
                Method::POST,
                "/release",
                Some(json!({"cluster_id": c["id"], "user_id": user})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{released}");
    }
    serve.kill_9().await;
    let releasing = store
        .list_clusters(
            &ClusterFilter {
                status: Some(ClusterStatus::Releasing),
                ..Default::default()
            },
            Page::ALL,
        )
        .await
        .expect("clusters")
        .total;
    assert!(releasing > 0, "the kill came mid-release");
    let out = reconcile_once(&db);
    assert!(out.status.success(), "{}", text(&out));
    eprintln!("after kill -9 mid-release ({releasing} clusters releasing): one pass restored the pool");
    assert_whole(&store, &host, CAPACITY).await;
    let history = store.list_leases(None, Page::ALL).await.expect("leases");
    assert_eq!(
        history.total, 3,
        "no lease lost or duplicated: {:?}",
        history.items
    );
    assert!(
        history.items.iter().all(|l| l.released_at.is_some()),
        "every lease is closed once: {:?}",
        history.items
    );
    drop(sweep);
    let record = store.get_host(&host).await.expect("host").expect("host exists");
    let left = DockerConnector::new()
        .connect(&record)
        .expect("driver")
        .inspect()
        .await;
    assert_eq!(left.expect("inspect").len(), 0, "the sweep left nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reconciler_at_a_time_and_a_dead_holder_is_taken_over() {
    if engine().await.is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("pool.db");
    let serve = ServeProcess::start(&sqlite_url(&db), &[("POOLMANAGER_RECONCILE_INTERVAL", "1")]).await;
    // Its first pass runs at start and takes the lock for three intervals.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = reconcile_once(&db);
    assert!(
        !out.status.success(),
        "a second reconciler must wait: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("another PoolManager process is reconciling"),
        "{}",
        text(&out)
    );

    serve.kill_9().await;
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(10);
    loop {
        let out = reconcile_once(&db);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead server's lock was never taken over: {}",
            text(&out)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let taken = killed.elapsed();
    assert!(
        taken >= Duration::from_secs(2),
        "the lock held while fresh: {taken:?}"
    );
    eprintln!(
        "reconciler lock of a killed server taken over after {:.1}s",
        taken.as_secs_f64()
    );
}

/// Applies answered `200` by a server under load: (cluster id, user id).
type Answered = Vec<(String, String)>;

/// Sends applies on `connections` connections, each as a new user, until `stop`;
/// returns those answered. Requests cut off by the server's death are not answered.
async fn apply_until(
    api: &common::Api,
    blueprint: &str,
    connections: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Answered {
    let worker = |w: usize| {
        let stop = stop.clone();
        async move {
            let mut answered = Vec::new();
            for i in 0.. {
                if *stop.borrow() {
                    break;
                }
                let user = format!("load-{w}-{i}");
                let sent = api
                    .http
                    .post(format!("{}/apply", api.base))
                    .bearer_auth(common::USER)
                    .json(&json!({"user_id": user, "blueprint": blueprint}))
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() != StatusCode::OK {
                    continue;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    break;
                };
                if let Some(id) = body["id"].as_str() {
                    answered.push((id.to_owned(), user));
                }
            }
            answered
        }
    };
    futures::future::join_all((0..connections).map(worker))
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_apply_load_keeps_every_answered_apply() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db: PathBuf = dir.path().join("pool.db");
    const CAPACITY: u32 = 3_000;
    let serve = ServeProcess::start(&sqlite_url(&db), &[("POOLMANAGER_RECONCILE_INTERVAL", "0")]).await;
    let (status, host) = serve
        .admin(
            Method::POST,
            "/hosts",
            Some(json!({"name": common::unique("sim"), "kind": "sim",
                "endpoint": format!("sim://{}", common::unique("e")), "capacity": CAPACITY, "autofill": false})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{host}");
    let host = host["id"].as_str().expect("host id").to_owned();
    let bp = common::unique("bp");
    let (status, body) = serve
        .admin(
            Method::POST,
            "/blueprints",
            Some(json!({"name": bp, "nodes": [{"name": "vp0", "image": "sim", "ports": {"web": "80/tcp"}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, op) = serve
        .admin(Method::POST, &format!("/hosts/{host}/fill"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, stats) = serve.admin(Method::GET, "/stats", None).await;
        if stats["clusters"]["ready"].as_u64() == Some(u64::from(CAPACITY)) {
            break;
        }
        assert!(Instant::now() < deadline, "the sim host did not fill: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Full load, then kill -9 while applies are in flight.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = apply_until(&serve.api, &bp, 32, stopped);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let pid = serve.pid();
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
        assert!(killed.expect("kill runs").success(), "kill -9 {pid}");
        // Workers whose connection died stop on their own; the rest stop here.
        let _ = stop.send(true);
    };
    let (answered, ()) = tokio::join!(load, killer);
    drop(serve);
    assert!(
        answered.len() > 100,
        "the kill came under load: {} answered",
        answered.len()
    );
    let ids: std::collections::BTreeSet<&str> = answered.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), answered.len(), "no cluster handed out twice");

    // Restarted on the same file: every answered apply is there, with its open lease.
    let serve = ServeProcess::start(&sqlite_url(&db), &[("POOLMANAGER_RECONCILE_INTERVAL", "0")]).await;
    let store = SqliteStore::open(&db).await.expect("store");
    for (id, user) in &answered {
        let cluster = store
            .get_cluster(id)
            .await
            .expect("get")
            .expect("the cluster is kept");
        assert_eq!(
            (cluster.status, cluster.user_id.as_deref()),
            (ClusterStatus::Applied, Some(user.as_str())),
            "an answered apply is stored"
        );
        let leases = store.list_leases(Some(user), Page::ALL).await.expect("leases");
        assert!(
            leases
                .items
                .iter()
                .any(|l| l.cluster_id == *id && l.released_at.is_none()),
            "the answered apply of {id} to {user} has its open lease: {:?}",
            leases.items
        );
    }
    let (_, stats) = serve.admin(Method::GET, "/stats", None).await;
    let applied = stats["clusters"]["applied"].as_u64().expect("applied count");
    let open = store
        .list_leases(None, Page::ALL)
        .await
        .expect("leases")
        .items
        .iter()
        .filter(|l| l.released_at.is_none())
        .count() as u64;
    assert_eq!(applied, open, "one open lease per applied cluster");
    assert!(applied >= answered.len() as u64);
    eprintln!(
        "kill -9 under 32 connections of applies: {} answered, {applied} stored applied",
        answered.len()
    );
}

//! Two `poolmanager serve` processes sharing one store, as several servers behind a
//! load balancer do: applies through either never hand out a cluster twice, and
//! releases through either recreate each cluster exactly once. Once on one SQLite
//! file, once on one MongoDB database; a real Docker engine runs the clusters.
//!
//! Each cluster has a bridge network of its own, so the engine needs address pools
//! for 30 of them (scripts/test.sh gives its engine room for 256); the two cases take
//! turns on it.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::panic::AssertUnwindSafe;

use futures::future::join_all;
use futures::{FutureExt, TryStreamExt};
use poolcore::model::new_id;
use poolcore::{Connector, Page, Store};
use poolcore_docker::DockerConnector;
use poolcore_mongo::{MongoConfig, MongoStore};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::serve::ServeProcess;
use common::Api;

/// Ready clusters in the pool: one network each, so the engine needs address pools
/// for 30 networks (scripts/test.sh gives its engine 256).
const CLUSTERS: usize = 30;
/// Concurrent applies, split over both servers.
const APPLIES: usize = 300;

/// Each server creates and recycles up to 8 clusters at once on the host.
const HOST_PARALLELISM: &[(&str, &str)] = &[("POOLMANAGER_HOST_PARALLELISM", "8")];

/// Held by the case using the engine.
static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_sqlite_file() {
    let Some(endpoint) = common::engine().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("pool.db").display());
    two_servers_share_one_pool(&endpoint, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_mongodb_database() {
    let Some(endpoint) = common::engine().await else {
        return;
    };
    let Some(server) = common::mongo_url() else {
        return;
    };
    let config = MongoConfig::from_url(&server)
        .expect("POOLMANAGER_TEST_MONGO_URL is a MongoDB URL")
        .with_database(format!("pm_multi_{}", &new_id()[..8]));
    two_servers_share_one_pool(&endpoint, &config.url_with_database()).await;
    let store = MongoStore::with_config(config).await.expect("connect");
    store.database().drop().await.expect("drop the test database");
}

async fn two_servers_share_one_pool(endpoint: &str, database: &str) {
    let _turn = ENGINE.lock().await;
    let store = poolmanager::open_store(database).await.expect("open the store");
    let outcome = AssertUnwindSafe(exercise(endpoint, database, &store))
        .catch_unwind()
        .await;
    if let Err(panic) = outcome {
        // The engine is shared: leave nothing of a failed run on it.
        let hosts = store.list_hosts(poolcore::Page::ALL).await;
        for host in hosts.map(|l| l.items).unwrap_or_default() {
            if let Ok(driver) = DockerConnector::new().connect(&host) {
                let _ = driver.remove_all().await;
            }
        }
        std::panic::resume_unwind(panic);
    }
}

async fn exercise(endpoint: &str, database: &str, store: &Arc<dyn Store>) {
    let started = Instant::now();
    let (a, b) = tokio::join!(
        ServeProcess::start(database, HOST_PARALLELISM),
        ServeProcess::start(database, HOST_PARALLELISM)
    );

    let host = a.add_host(endpoint, CLUSTERS as u32, false).await;
    let blueprint = b.add_blueprint(1).await;
    fill_through(&a, &b, &host).await;
    let filled = started.elapsed();

    let applied = apply_through_both(&a, &b, &blueprint).await;
    let leases = store.list_leases(None, Page::ALL).await.expect("leases");
    let leased: BTreeSet<&String> = leases.items.iter().map(|l| &l.cluster_id).collect();
    assert_eq!(leases.total, CLUSTERS as u64, "one lease per apply");
    assert_eq!(
        leased,
        applied.keys().collect(),
        "the leases name the applied clusters"
    );
    let applies_done = started.elapsed();

    let since = unix_time();
    release_through_both(&a, &b, &applied).await;
    wait_all_ready(&b, &host).await;
    let until = unix_time();
    let recycled = started.elapsed();

    assert_recreated_once(&b, &applied).await;
    let leases = store.list_leases(None, Page::ALL).await.expect("leases");
    assert_eq!(leases.total, CLUSTERS as u64, "a release adds no lease");
    assert!(
        leases.items.iter().all(|l| l.released_at.is_some()),
        "every lease is closed"
    );
    let creates = container_creates(endpoint, &host, &since, &until).await;
    let once: BTreeMap<String, usize> = applied.keys().map(|id| (id.clone(), 1)).collect();
    assert_eq!(
        creates, once,
        "each released cluster's container was created exactly once"
    );

    let record = store.get_host(&host).await.expect("get host").expect("host");
    a.delete_host(&host).await;
    common::assert_nothing_left(&record).await;
    eprintln!(
        "{}: fill {CLUSTERS} {:?}, {APPLIES} applies {:?}, release + recreate {:?}, total {:?}",
        database.split(':').next().unwrap_or(database),
        filled,
        applies_done - filled,
        recycled - applies_done,
        started.elapsed()
    );
    tokio::join!(a.kill_9(), b.kill_9());
}

/// Fills `host` through one server and watches the operation through the other.
async fn fill_through(a: &Api, b: &Api, host: &str) {
    let (status, body) = a.admin(Method::POST, &format!("/hosts/{host}/fill"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "fill: {body}");
    let id = body["operation_id"].as_str().expect("operation id");
    let op = b.wait_operation(id).await;
    assert_eq!(op["status"], "succeeded", "fill: {op}");
    let (_, ready) = b
        .user(
            Method::GET,
            &format!("/clusters?host_id={host}&status=ready&limit=100"),
            None,
        )
        .await;
    assert_eq!(ready["total"], CLUSTERS, "{ready}");
}

/// [`APPLIES`] concurrent applies, every other one through each server; returns the
/// clusters handed out, by id.
async fn apply_through_both(a: &Api, b: &Api, blueprint: &str) -> BTreeMap<String, Value> {
    let applies = (0..APPLIES).map(|i| {
        let server = if i % 2 == 0 { a } else { b };
        let body = json!({"user_id": format!("user-{i}"), "blueprint": blueprint});
        async move { (i % 2, server.user(Method::POST, "/apply", Some(body)).await) }
    });
    let mut handed = BTreeMap::new();
    let mut exhausted = 0;
    let mut served_by = [0, 0];
    for (server, (status, body)) in join_all(applies).await {
        match status {
            StatusCode::OK => {
                served_by[server] += 1;
                let id = body["id"].as_str().expect("id").to_owned();
                assert!(
                    handed.insert(id, body.clone()).is_none(),
                    "handed out twice: {body}"
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["code"], "pool_exhausted", "{body}");
                exhausted += 1;
            }
            other => panic!("apply answered {other}: {body}"),
        }
    }
    eprintln!("clusters handed out by each server: {served_by:?}");
    assert_eq!(handed.len(), CLUSTERS, "each cluster is handed out exactly once");
    assert_eq!(exhausted, APPLIES - CLUSTERS);
    handed
}

/// Releases every cluster through both servers at once; exactly one release of each
/// wins.
async fn release_through_both(a: &Api, b: &Api, applied: &BTreeMap<String, Value>) {
    let releases = applied
        .keys()
        .flat_map(|id| [(a, id), (b, id)])
        .map(|(server, id)| server.admin(Method::POST, "/release", Some(json!({"cluster_id": id}))));
    let mut released: BTreeMap<String, usize> = BTreeMap::new();
    for (status, body) in join_all(releases).await {
        match status {
            StatusCode::OK => {
                for id in body["released"].as_array().expect("released ids") {
                    *released.entry(id.as_str().expect("id").to_owned()).or_default() += 1;
                }
            }
            // The other server's release won and the cluster is no longer applied.
            StatusCode::CONFLICT => {}
            other => panic!("release answered {other}: {body}"),
        }
    }
    let once: BTreeMap<String, usize> = applied.keys().map(|id| (id.clone(), 1)).collect();
    assert_eq!(released, once, "each cluster is released exactly once");
}

async fn wait_all_ready(api: &Api, host: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, ready) = api
            .admin(
                Method::GET,
                &format!("/clusters?host_id={host}&status=ready&limit=100"),
                None,
            )
            .await;
        if ready["total"] == CLUSTERS {
            return;
        }
        if Instant::now() >= deadline {
            let (_, all) = api
                .admin(Method::GET, &format!("/clusters?host_id={host}&limit=100"), None)
                .await;
            let items = all["items"].as_array().cloned().unwrap_or_default();
            let stuck: Vec<&Value> = items.iter().filter(|c| c["status"] != "ready").collect();
            panic!(
                "{} of {CLUSTERS} clusters came back; the others: {stuck:?}",
                ready["total"]
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Each cluster is ready and healthy on new containers, and every one went through
/// the same number of writes since its apply: none was recycled twice.
async fn assert_recreated_once(api: &Api, applied: &BTreeMap<String, Value>) {
    let mut writes = BTreeSet::new();
    for (id, before) in applied {
        let (status, now) = api.admin(Method::GET, &format!("/clusters/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{now}");
        assert_eq!(
            (&now["status"], &now["health"]),
            (&json!("ready"), &json!("ok")),
            "{now}"
        );
        assert_eq!(now["user_id"], Value::Null);
        assert_ne!(
            now["containers"], before["containers"],
            "fresh containers for {id}"
        );
        let version = |c: &Value| c["version"].as_u64().expect("version");
        writes.insert(version(&now) - version(before));
    }
    assert_eq!(writes.len(), 1, "writes per cluster since its apply: {writes:?}");
}

/// The engine's `create` events of the host's containers between `since` and
/// `until`, counted per cluster.
async fn container_creates(endpoint: &str, host: &str, since: &str, until: &str) -> BTreeMap<String, usize> {
    use bollard::query_parameters::EventsOptionsBuilder;
    use bollard::{Docker, API_DEFAULT_VERSION};
    let docker = match endpoint.strip_prefix("unix://") {
        Some(socket) => Docker::connect_with_unix(socket, 60, API_DEFAULT_VERSION),
        None => Docker::connect_with_http(&endpoint.replace("tcp://", "http://"), 60, API_DEFAULT_VERSION),
    }
    .expect("docker client");
    let filters = HashMap::from([
        ("type", vec!["container".to_owned()]),
        ("event", vec!["create".to_owned()]),
        ("label", vec![format!("{}={host}", poolcore::driver::LABEL_HOST)]),
    ]);
    let options = EventsOptionsBuilder::new()
        .since(since)
        .until(until)
        .filters(&filters)
        .build();
    let events: Vec<_> = docker.events(Some(options)).try_collect().await.expect("events");
    let mut creates = BTreeMap::new();
    for event in events {
        let cluster = event
            .actor
            .and_then(|a| a.attributes)
            .and_then(|mut attributes| attributes.remove(poolcore::driver::LABEL_CLUSTER))
            .expect("a cluster label");
        *creates.entry(cluster).or_default() += 1;
    }
    creates
}

/// Now, as the Docker API reads times: Unix seconds with nanoseconds.
fn unix_time() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

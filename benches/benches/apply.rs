//! Apply latency: through `Pool::apply` on MemStore, on a SQLite file and, when
//! `POOLMANAGER_BENCH_MONGO_URL` (or `POOLMANAGER_TEST_MONGO_URL`) names a MongoDB
//! server, on a fresh database there; and over HTTP against the real server on the
//! same stores. No engine is needed: apply never calls one, so the pool is seeded
//! with ready clusters directly in the store.
//!
//! `cargo bench -p poolmanager-benches` prints the figures kept in docs/performance.md;
//! `scripts/test-mongo.sh cargo bench -p poolmanager-benches` adds the MongoDB test
//! server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use poolcore::model::new_id;
use poolcore::{ApplyRequest, MemStore, Pool, Store};
use poolcore_mongo::{MongoConfig, MongoStore};
use poolcore_sqlite::SqliteStore;
use poolmanager::api::auth::Tokens;
use poolmanager_benches::{seed, summary};

/// Ready clusters seeded for each path, all of them applied for.
///
/// `cargo test --all-targets` runs this bench as a test (without `--bench`): then a
/// smoke run is enough, and keeps the test suite short.
fn clusters() -> usize {
    if std::env::args().any(|arg| arg == "--bench") {
        2_000
    } else {
        64
    }
}

async fn applies_in_process(name: &str, store: Arc<dyn Store>) {
    let clusters = clusters();
    let blueprint = seed(&store, clusters).await;
    let pool = Pool::builder(store).build();
    let started = Instant::now();
    let mut samples = Vec::with_capacity(clusters);
    for i in 0..clusters {
        let begun = Instant::now();
        pool.apply(ApplyRequest {
            user_id: format!("user-{i}"),
            blueprint: Some(blueprint.clone()),
            ..ApplyRequest::default()
        })
        .await
        .expect("a ready cluster");
        samples.push(begun.elapsed());
    }
    let wall = started.elapsed();
    println!(
        "pool.apply on {name}, sequential: {} ({:.0} applies/s)",
        summary(&mut samples),
        clusters as f64 / wall.as_secs_f64()
    );
}

async fn applies_over_http(store_url: &str, concurrency: usize) {
    let config = poolmanager::config::Config {
        database: store_url.to_owned(),
        ..Default::default()
    };
    let pool = poolmanager::build_pool(&config).await.expect("pool");
    let clusters = clusters();
    let blueprint = seed(pool.store(), clusters).await;
    let tokens = Tokens {
        admin: "bench".into(),
        user: None,
    };
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let addr = *acceptor.local_addr()[0].as_socket_addr().expect("tcp");
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(poolmanager::api::app(pool, tokens)));
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/apply");

    let started = Instant::now();
    let per_worker = clusters / concurrency;
    let workers = (0..concurrency).map(|w| {
        let (http, url, blueprint) = (http.clone(), url.clone(), blueprint.clone());
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_worker);
            for i in 0..per_worker {
                let begun = Instant::now();
                let resp = http
                    .post(&url)
                    .bearer_auth("bench")
                    .json(&serde_json::json!({"user_id": format!("u{w}-{i}"), "blueprint": blueprint}))
                    .send()
                    .await
                    .expect("sent");
                assert!(resp.status().is_success(), "apply failed: {}", resp.status());
                resp.bytes().await.expect("body");
                samples.push(begun.elapsed());
            }
            samples
        })
    });
    let mut samples: Vec<Duration> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.expect("worker"))
        .collect();
    let wall = started.elapsed();
    println!(
        "HTTP POST /apply on {}, {concurrency} concurrent client(s): {} ({:.0} applies/s)",
        store_url.split(':').next().unwrap_or(store_url),
        summary(&mut samples),
        samples.len() as f64 / wall.as_secs_f64()
    );
}

/// The MongoDB server to measure, if one is named.
fn mongo_server() -> Option<String> {
    ["POOLMANAGER_BENCH_MONGO_URL", "POOLMANAGER_TEST_MONGO_URL"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|url| !url.is_empty()))
}

/// A fresh database named `name` on the MongoDB server at `server`.
fn mongo_database(server: &str, name: &str) -> MongoConfig {
    MongoConfig::from_url(server)
        .expect("a MongoDB URL")
        .with_database(format!("pm_bench_{name}_{}", &new_id()[..8]))
}

async fn drop_database(config: MongoConfig) {
    let store = MongoStore::with_config(config).await.expect("mongodb");
    store.database().drop().await.expect("drop the bench database");
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    applies_in_process("MemStore", Arc::new(MemStore::new())).await;
    let file = dir.path().join("bench.db");
    let sqlite = SqliteStore::open(&file).await.expect("sqlite");
    applies_in_process("SQLite file", Arc::new(sqlite)).await;
    let mongo = mongo_server();
    if let Some(server) = &mongo {
        let config = mongo_database(server, "pool");
        let store = MongoStore::with_config(config.clone()).await.expect("mongodb");
        applies_in_process("MongoDB", Arc::new(store)).await;
        drop_database(config).await;
    }
    for concurrency in [1, 32] {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("http-{concurrency}.db")).display()
        );
        applies_over_http(&url, concurrency).await;
        if let Some(server) = &mongo {
            let config = mongo_database(server, &format!("http{concurrency}"));
            applies_over_http(&config.url_with_database(), concurrency).await;
            drop_database(config).await;
        }
    }
}

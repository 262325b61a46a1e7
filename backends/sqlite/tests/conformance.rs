//! The shared Store conformance suite, against real SQLite databases.

use poolcore::conformance::store::run_all;
use poolcore_sqlite::{SqliteConfig, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("pool.db"))
        .await
        .expect("open store");
    run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_on_a_file_with_one_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SqliteConfig::new(dir.path().join("pool.db")).with_pool_size(1);
    let store = SqliteStore::with_config(config).await.expect("open store");
    run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_memory() {
    let store = SqliteStore::memory().await.expect("open store");
    run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_twice_side_by_side_on_one_file() {
    // The cases make their own names, so two runs on one database must not collide.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("pool.db"))
        .await
        .expect("open store");
    tokio::join!(run_all(&store), run_all(&store));
}

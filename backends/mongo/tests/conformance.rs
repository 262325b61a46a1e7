//! The shared Store conformance suite, against a real MongoDB server
//! (`POOLMANAGER_TEST_MONGO_URL`), each run on its own fresh database.

mod common;

use poolcore::conformance::store::run_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    run_all(&store).await;
    common::drop_database(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_twice_side_by_side_on_one_database() {
    // The cases make their own names, so two runs on one database must not collide.
    let Some(store) = common::fresh_store().await else {
        return;
    };
    tokio::join!(run_all(&store), run_all(&store));
    common::drop_database(store).await;
}

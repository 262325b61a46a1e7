//! A pool on the MongoDB store, with the reconciler running: it repairs a node that
//! dies under a user, and is then shut down cleanly. The hosts are simulated engines
//! (`poolcore-sim`), so no Docker is needed; any MongoDB server is.
//!
//! ```sh
//! scripts/test-mongo.sh cargo run -p poolmanager-examples --example mongo
//! cargo run -p poolmanager-examples --example mongo -- mongodb://127.0.0.1:27017
//! ```
//!
//! The server is the first argument, else `POOLMANAGER_TEST_MONGO_URL`. Each run works
//! in a database of its own and drops it at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use poolcore::model::new_id;
use poolcore::prelude::*;
use poolcore_mongo::{MongoConfig, MongoStore};
use poolcore_sim::SimConnector;

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("POOLMANAGER_TEST_MONGO_URL").ok())
        .ok_or("give a MongoDB URL as the argument or in POOLMANAGER_TEST_MONGO_URL")?;
    let config = MongoConfig::from_url(&url)?.with_database(format!("pm_example_{}", &new_id()[..8]));
    let store = Arc::new(MongoStore::with_config(config).await?);
    let sim = SimConnector::new();
    let pool = Pool::builder(store.clone())
        .with_connector(sim.clone())
        .with_config(
            PoolConfig::default()
                .with_reconcile(ReconcileConfig::default().with_interval(Duration::from_millis(200))),
        )
        .build();
    let reconciler = pool.spawn_reconciler();

    let peer = NodeSpec {
        ports: [("rest".to_owned(), "7050/tcp".parse()?)].into(),
        ..NodeSpec::new("vp0", "hyperledger/fabric-peer:1.0")
    };
    pool.create_blueprint(NewBlueprint::new("fabric", vec![peer]))
        .await?;
    let host = pool
        .add_host(NewHost {
            kind: HostKind::Sim,
            ..NewHost::docker("sim", "sim://demo", 2)
        })
        .await?;
    pool.wait_idle().await;

    let cluster = pool
        .apply(ApplyRequest {
            user_id: "alice".into(),
            ..Default::default()
        })
        .await?;
    println!("alice got {} with {:?}", cluster.name, cluster.service_urls());

    // A node dies under alice; the reconciler brings it back on the same endpoints.
    let engine = sim.engine("sim://demo");
    engine.kill_node(&cluster.id, "vp0")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.counters().repairs == 0 {
        if Instant::now() > deadline {
            return Err("the reconciler did not repair the killed node in 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("the reconciler repaired node vp0 of {}", cluster.name);

    pool.release(ReleaseTarget::Cluster(cluster.id.clone()), Actor::User("alice"))
        .await?;
    pool.wait_idle().await;
    let fresh = pool.cluster(&cluster.id).await?;
    println!("released and recreated: {} is {}", fresh.name, fresh.status);
    pool.delete_host(&host.id, true).await?;

    // Ends the loop after its current pass and waits for the pool's background work.
    if !reconciler.shutdown(Duration::from_secs(30)).await {
        return Err("the reconciler did not shut down in 30 s".into());
    }
    println!("the reconciler shut down");
    store.database().drop().await?;
    Ok(())
}

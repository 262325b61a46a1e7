//! Embeds a pool in a program: SQLite store, the local Docker engine, the reconciler,
//! one blueprint, fill, apply, release.
//!
//! ```sh
//! scripts/test-image.sh            # the demo image, built locally
//! cargo run -p poolmanager-examples --example embed -- unix:///var/run/docker.sock
//! ```

use std::sync::Arc;
use std::time::Duration;

use poolcore::prelude::*;
use poolcore_docker::DockerConnector;
use poolcore_sqlite::SqliteStore;

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    let image =
        std::env::var("POOLMANAGER_TEST_IMAGE").unwrap_or_else(|_| "poolmanager/testnode:latest".into());
    let dir = std::env::temp_dir().join(format!("embedded-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(SqliteStore::open(dir.join("pool.db")).await?);
    let pool = Pool::builder(store)
        .with_connector(DockerConnector::new())
        .build();
    // Heals what breaks and expires leases, every 15 s by default.
    let reconciler = pool.spawn_reconciler();

    let node = NodeSpec {
        ports: [("web".to_owned(), "80/tcp".parse()?)].into(),
        ..NodeSpec::new("vp0", image)
    };
    let blueprint = NewBlueprint::new("demo", vec![node]);
    pool.create_blueprint(blueprint).await?;
    let mut host = NewHost::docker("embedded", endpoint, 1);
    host.autofill = false;
    let host = pool.add_host(host).await?;
    pool.fill_host(&host.id, None).await?;
    pool.wait_idle().await;

    let cluster = pool
        .apply(ApplyRequest {
            user_id: "alice".into(),
            blueprint: Some("demo".into()),
            ..Default::default()
        })
        .await?;
    println!("alice got {} with {:?}", cluster.name, cluster.service_urls());

    pool.release(ReleaseTarget::Cluster(cluster.id.clone()), Actor::User("alice"))
        .await?;
    pool.wait_idle().await;
    let fresh = pool.cluster(&cluster.id).await?;
    assert_eq!(fresh.status, ClusterStatus::Ready);
    println!("released and recreated: {} is {}", fresh.name, fresh.status);

    pool.delete_host(&host.id, true).await?;
    reconciler.shutdown(Duration::from_secs(30)).await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

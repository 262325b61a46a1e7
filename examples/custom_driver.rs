//! A pool on a custom `HostDriver`: the task engine of `src/task_driver.rs`, whose nodes
//! are tasks of this program serving HTTP on loopback ports. Needs nothing installed.
//!
//! ```sh
//! cargo run -p poolmanager-examples --example custom_driver
//! ```

use std::sync::Arc;

use poolcore::prelude::*;
use poolmanager_examples::task_driver::TaskConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let tasks = TaskConnector::default();
    tasks.start("sim://local", &["demo/web:1"]);
    let pool = Pool::builder(Arc::new(MemStore::new()))
        .with_connector(tasks)
        .build();

    let web = |name: &str| NodeSpec {
        ports: [("web".to_owned(), "80/tcp".parse().expect("a port spec"))].into(),
        ..NodeSpec::new(name, "demo/web:1")
    };
    pool.create_blueprint(NewBlueprint::new("demo", vec![web("vp0"), web("vp1")]))
        .await?;
    let host = NewHost {
        kind: HostKind::Sim,
        ..NewHost::docker("local", "sim://local", 2)
    };
    let host = pool.add_host(host).await?; // autofill: two clusters are made
    pool.wait_idle().await;

    let cluster = pool
        .apply(ApplyRequest {
            user_id: "alice".into(),
            ..Default::default()
        })
        .await?;
    let url = &cluster.service_urls()["vp1"]["web"];
    let page = get(url.trim_start_matches("http://")).await?;
    println!("alice got {} and {url} answers {:?}", cluster.name, page.trim());
    assert!(page.ends_with("vp1\n"), "{url} answered {page:?}");

    pool.release(ReleaseTarget::Cluster(cluster.id.clone()), Actor::User("alice"))
        .await?;
    pool.wait_idle().await;
    let fresh = pool.cluster(&cluster.id).await?;
    println!("released and recreated: {} is {}", fresh.name, fresh.status);
    assert_eq!(fresh.status, ClusterStatus::Ready);
    pool.delete_host(&host.id, true).await?;
    Ok(())
}

/// The response to a plain `GET /` at `address`.
async fn get(address: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

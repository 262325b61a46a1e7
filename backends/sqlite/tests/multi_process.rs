//! Two OS processes claiming from one database file never get the same cluster, and
//! filling one host together never put it above its capacity.
//!
//! The test binary runs itself twice as a worker (selected by an environment
//! variable); each worker claims with many concurrent tasks until the pool is empty,
//! then inserts clusters on another host with many tasks until it is full.

use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use poolcore::model::new_id;
use poolcore::{Claim, ClaimOutcome, Cluster, ClusterFilter, ClusterStatus, Health, Page, Store};
use poolcore_sqlite::SqliteStore;

const TEST_NAME: &str = "two_processes_never_claim_the_same_cluster";
/// Set in a worker: the database file to claim from.
const WORKER_DB: &str = "POOLCORE_SQLITE_TEST_CLAIM_WORKER_DB";
/// Set in a worker: when to start (Unix milliseconds), so that both claim at once.
const WORKER_START: &str = "POOLCORE_SQLITE_TEST_CLAIM_WORKER_START_MS";
const CLUSTERS: usize = 200;
const TASKS_PER_PROCESS: usize = 8;
const BLUEPRINT: &str = "bp";
const HOST: &str = "host-1";
/// The host both workers fill, and its capacity.
const FILLED_HOST: &str = "host-2";
const CAPACITY: u32 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_never_claim_the_same_cluster() {
    if let Ok(db) = std::env::var(WORKER_DB) {
        return worker(&db).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("pool.db");
    let store = SqliteStore::open(&db).await.expect("open store");
    for i in 0..CLUSTERS {
        let mut c = Cluster::new(format!("c{i:04}"), BLUEPRINT, HOST);
        c.status = ClusterStatus::Ready;
        c.health = Health::Ok;
        store.insert_cluster(&c, u32::MAX).await.expect("insert cluster");
    }
    let mut decoy = Cluster::new("decoy", BLUEPRINT, HOST);
    decoy.status = ClusterStatus::Creating;
    store
        .insert_cluster(&decoy, u32::MAX)
        .await
        .expect("insert decoy");

    let start = unix_millis() + 1_000;
    let (a, b) = tokio::join!(spawn_worker(&db, start), spawn_worker(&db, start));
    let inserted = [&a, &b].map(|out| lines_with(out, "INSERTED ").len());
    eprintln!("inserted: {} and {}", inserted[0], inserted[1]);
    assert_eq!(
        inserted[0] + inserted[1],
        CAPACITY as usize,
        "together the workers inserted exactly the capacity"
    );
    let filled = ClusterFilter {
        host_id: Some(FILLED_HOST.into()),
        ..ClusterFilter::default()
    };
    let filled = store
        .list_clusters(&filled, Page::ALL)
        .await
        .expect("list clusters");
    assert_eq!(
        filled.total,
        u64::from(CAPACITY),
        "the host holds its capacity, no more"
    );
    assert_eq!(filled.items.len(), CAPACITY as usize);
    let (a, b) = (lines_with(&a, "CLAIMED "), lines_with(&b, "CLAIMED "));
    eprintln!("claimed: {} and {}", a.len(), b.len());
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both processes claimed ({} and {})",
        a.len(),
        b.len()
    );

    let all: Vec<&String> = a.iter().chain(&b).collect();
    let distinct: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a cluster was handed out twice");
    assert_eq!(all.len(), CLUSTERS, "every ready cluster was handed out once");

    let leases = store.list_leases(None, Page::ALL).await.expect("list leases");
    assert_eq!(leases.total, CLUSTERS as u64);
    assert!(
        leases.items.iter().all(|l| l.released_at.is_none()),
        "every lease is open"
    );
    let leased: BTreeSet<&String> = leases.items.iter().map(|l| &l.cluster_id).collect();
    assert_eq!(leased, distinct, "the leases name exactly the claimed clusters");

    let applied = ClusterFilter {
        status: Some(ClusterStatus::Applied),
        ..ClusterFilter::default()
    };
    let applied = store
        .list_clusters(&applied, Page::ALL)
        .await
        .expect("list clusters");
    assert_eq!(applied.total, CLUSTERS as u64);
    let decoy = store
        .get_cluster(&decoy.id)
        .await
        .expect("get decoy")
        .expect("decoy exists");
    assert_eq!(
        decoy.status,
        ClusterStatus::Creating,
        "a creating cluster is never claimed"
    );
}

async fn spawn_worker(db: &std::path::Path, start: u128) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    let output = tokio::process::Command::new(exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads", "1"])
        .env(WORKER_DB, db)
        .env(WORKER_START, start.to_string())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run worker process");
    assert!(
        output.status.success(),
        "worker failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// What a worker printed after `tag` on each line that has it.
fn lines_with(output: &Output, tag: &str) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        // libtest may have printed "test NAME ... " without a newline before our lines.
        .filter_map(|line| line.split_once(tag).map(|(_, id)| id.to_owned()))
        .collect()
}

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// The worker side: claim until nothing is left, then fill the other host until it is
/// full; print each claimed and inserted id.
async fn worker(db: &str) {
    let store = std::sync::Arc::new(SqliteStore::open(db).await.expect("worker opens the store"));
    let start: u128 = std::env::var(WORKER_START)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let wait = start.saturating_sub(unix_millis());
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;

    let pid = std::process::id();
    let tasks: Vec<_> = (0..TASKS_PER_PROCESS)
        .map(|task| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                loop {
                    let claim = Claim {
                        user_id: format!("p{pid}-t{task}"),
                        blueprints: vec![BLUEPRINT.into()],
                        hosts: vec![HOST.into()],
                        metadata: Default::default(),
                        lease_id: new_id(),
                        now: Utc::now(),
                        expires_at: None,
                        allow_multiple: true,
                        max_held: None,
                        blueprint_quotas: Default::default(),
                    };
                    match store.claim_cluster(&claim).await.expect("claim does not fail") {
                        ClaimOutcome::Claimed(cluster) => claimed.push(cluster.id),
                        ClaimOutcome::Exhausted => return claimed,
                        other => panic!("a claim with allow_multiple got {other:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        for id in task.await.expect("claim task") {
            println!("CLAIMED {id}");
        }
    }
    let fillers: Vec<_> = (0..TASKS_PER_PROCESS)
        .map(|task| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                let mut inserted = Vec::new();
                for i in 0.. {
                    let c = Cluster::new(format!("fill-p{pid}-t{task}-{i}"), BLUEPRINT, FILLED_HOST);
                    if !store
                        .insert_cluster(&c, CAPACITY)
                        .await
                        .expect("insert does not fail")
                    {
                        return inserted;
                    }
                    inserted.push(c.id);
                }
                inserted
            })
        })
        .collect();
    for task in fillers {
        for id in task.await.expect("fill task") {
            println!("INSERTED {id}");
        }
    }
}

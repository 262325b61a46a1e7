//! What the conformance suite does not cover: files, migrations, URLs, exact round
//! trips and how SQLite's failures reach the caller.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use poolcore::conformance::store::{ready_cluster, sample_blueprint, sample_host};
use poolcore::model::new_id;
use poolcore::{
    Claim, ClaimOutcome, Error, HostStatus, LogConfig, Operation, OperationKind, OperationStatus, Page, Store,
};
use poolcore_sqlite::{SqliteConfig, SqliteStore};
use rusqlite::Connection;

/// A time with nanoseconds, to see that none are lost.
fn precise_time(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 123_456_789)
        .single()
        .expect("valid timestamp")
}

fn raw(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open raw connection");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    conn
}

#[tokio::test]
async fn reopening_a_file_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pool.db");

    let mut host = sample_host();
    host.log = Some(LogConfig {
        driver: "syslog".into(),
        options: BTreeMap::from([("syslog-address".into(), "udp://10.0.0.5:514".into())]),
    });
    host.last_seen = Some(precise_time(1));
    host.created_at = precise_time(0);
    let blueprint = sample_blueprint();
    let mut cluster = ready_cluster(&blueprint.name, &host.id);
    cluster.status_reason = Some("was failed once".into());
    cluster.health_reason = Some("vp0 restarted".into());
    cluster.created_at = precise_time(2);
    cluster.updated_at = precise_time(3);
    cluster.version = 41;
    let claim = Claim {
        user_id: "alice".into(),
        blueprints: vec![blueprint.name.clone()],
        hosts: vec![host.id.clone()],
        metadata: BTreeMap::from([("ticket".into(), "T-1".into())]),
        lease_id: new_id(),
        now: precise_time(4),
        expires_at: Some(precise_time(3604)),
        allow_multiple: false,
        max_held: None,
        blueprint_quotas: Default::default(),
    };
    let op = Operation {
        id: new_id(),
        kind: OperationKind::Reset,
        host_id: host.id.clone(),
        status: OperationStatus::Succeeded,
        done: 3,
        total: 3,
        error: None,
        created_at: precise_time(5),
        updated_at: precise_time(6),
        finished_at: Some(precise_time(6)),
    };

    let claimed = {
        let store = SqliteStore::open(&path).await.expect("create store");
        store.insert_host(&host).await.expect("insert host");
        store
            .insert_blueprint(&blueprint)
            .await
            .expect("insert blueprint");
        store.insert_cluster(&cluster, 10).await.expect("insert cluster");
        store.put_operation(&op).await.expect("put operation");
        match store.claim_cluster(&claim).await.expect("claim") {
            ClaimOutcome::Claimed(cluster) => cluster,
            other => panic!("expected a claimed cluster, got {other:?}"),
        }
    };
    assert_eq!(claimed.version, 42);
    assert_eq!(claimed.applied_at, Some(claim.now));

    let store = SqliteStore::open(&path).await.expect("reopen store");
    assert_eq!(store.get_host(&host.id).await.expect("get host"), Some(host));
    assert_eq!(
        store.get_blueprint(&blueprint.name).await.expect("get bp"),
        Some(blueprint)
    );
    assert_eq!(
        store.get_cluster(&cluster.id).await.expect("get cluster"),
        Some(claimed.clone())
    );
    assert_eq!(store.get_operation(&op.id).await.expect("get op"), Some(op));
    let lease = store
        .get_lease(&claim.lease_id)
        .await
        .expect("get lease")
        .expect("lease");
    assert_eq!(lease, poolcore::LeaseRecord::opened(&claimed, &claim));
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pool.db");
    drop(SqliteStore::open(&path).await.expect("create store"));
    raw(&path)
        .pragma_update(None, "user_version", 99)
        .expect("set user_version");

    let err = SqliteStore::open(&path)
        .await
        .expect_err("a newer schema must be refused");
    let message = err.to_string();
    assert_eq!(err.code(), "backend_failure", "{message}");
    assert!(
        message.contains("schema version 99") && message.contains("newer"),
        "{message}"
    );
    assert!(message.contains("pool.db"), "names the file: {message}");
}

#[tokio::test]
async fn a_file_is_in_wal_mode_with_the_current_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pool.db");
    let _store = SqliteStore::open(&path).await.expect("create store");
    let conn = raw(&path);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    let version: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert!(version >= 1);
}

#[tokio::test]
async fn urls_open_files_and_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("from-url.db");
    let store = SqliteStore::from_url(&format!("sqlite://{}?pool_size=2", path.display()))
        .await
        .expect("open by url");
    assert!(path.exists(), "the file is created");
    assert_eq!(store.config().pool_size, 2);
    assert!(
        path.is_absolute(),
        "so the url has three slashes, as in sqlite:///abs/path.db"
    );

    let memory = SqliteStore::from_url("sqlite::memory:")
        .await
        .expect("memory by url");
    assert!(memory.config().is_memory());
    let host = sample_host();
    memory.insert_host(&host).await.expect("insert");
    assert!(memory.get_host(&host.id).await.expect("get").is_some());

    for bad in [
        "postgres://localhost/pool",
        "mongodb://localhost:27017",
        "sqlite://",
    ] {
        let err = SqliteStore::from_url(bad).await.expect_err(bad);
        assert!(matches!(err, Error::Invalid { .. }), "{bad}: {err}");
    }
}

#[tokio::test]
async fn in_memory_stores_are_private() {
    let a = SqliteStore::memory().await.expect("open a");
    let b = SqliteStore::memory().await.expect("open b");
    let host = sample_host();
    a.insert_host(&host).await.expect("insert");
    assert!(b.get_host(&host.id).await.expect("get").is_none());
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-dir").join("pool.db");
    let err = SqliteStore::open(&path)
        .await
        .expect_err("cannot create the file");
    assert_eq!(err.code(), "backend_failure");
    assert!(err.to_string().contains("no-such-dir"), "names the path: {err}");
}

#[tokio::test]
async fn a_locked_database_is_unavailable_and_reads_go_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pool.db");
    let config = SqliteConfig::new(&path).with_busy_timeout(Duration::from_millis(100));
    let store = SqliteStore::with_config(config).await.expect("open store");
    let host = sample_host();
    store.insert_host(&host).await.expect("insert");

    // Another process holds the write lock.
    let other = raw(&path);
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let err = store
        .insert_host(&sample_host())
        .await
        .expect_err("write while locked");
    assert!(matches!(err, Error::Unavailable { .. }), "retryable: {err:?}");
    assert!(
        err.to_string().contains("insert host"),
        "names the operation: {err}"
    );
    assert!(store
        .get_host(&host.id)
        .await
        .expect("read while locked")
        .is_some());

    other.execute_batch("COMMIT").expect("let go");
    store
        .insert_host(&sample_host())
        .await
        .expect("write after the lock");
}

#[tokio::test]
async fn a_corrupt_row_is_a_backend_error_naming_the_operation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pool.db");
    let store = SqliteStore::open(&path).await.expect("open store");
    let cluster = ready_cluster("bp", &new_id());
    store.insert_cluster(&cluster, 10).await.expect("insert");
    raw(&path)
        .execute(
            "UPDATE clusters SET status = 'bogus' WHERE id = ?1",
            [&cluster.id],
        )
        .expect("corrupt the row");

    let err = store.get_cluster(&cluster.id).await.expect_err("bad status");
    assert_eq!(err.code(), "backend_failure");
    let message = err.to_string();
    assert!(
        message.contains("get cluster") && message.contains("bogus"),
        "{message}"
    );
}

#[tokio::test]
async fn renaming_a_cluster_to_a_taken_name_conflicts() {
    let store = SqliteStore::memory().await.expect("open store");
    let a = ready_cluster("bp", "h");
    let mut b = ready_cluster("bp", "h");
    store.insert_cluster(&a, 10).await.expect("insert a");
    store.insert_cluster(&b, 10).await.expect("insert b");
    b.name = a.name.clone();
    let err = store.update_cluster(&b).await.expect_err("name taken");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains(&a.name), "names the cluster: {err}");
}

#[tokio::test]
async fn a_duplicate_lease_id_rolls_the_claim_back() {
    let store = SqliteStore::memory().await.expect("open store");
    let first = ready_cluster("bp", "h");
    let second = ready_cluster("bp", "h");
    store.insert_cluster(&first, 10).await.expect("insert");
    store.insert_cluster(&second, 10).await.expect("insert");
    let claim = Claim {
        user_id: "alice".into(),
        blueprints: vec!["bp".into()],
        hosts: vec!["h".into()],
        metadata: BTreeMap::new(),
        lease_id: new_id(),
        now: Utc::now(),
        expires_at: None,
        allow_multiple: true,
        max_held: None,
        blueprint_quotas: Default::default(),
    };
    assert!(matches!(
        store.claim_cluster(&claim).await.expect("claim"),
        ClaimOutcome::Claimed(_)
    ));
    let err = store.claim_cluster(&claim).await.expect_err("same lease id");
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let ready = poolcore::ClusterFilter {
        status: Some(poolcore::ClusterStatus::Ready),
        ..Default::default()
    };
    let listing = store.list_clusters(&ready, Page::ALL).await.expect("list");
    assert_eq!(listing.total, 1, "the failed claim took no cluster");
}

#[tokio::test]
async fn two_stores_on_one_file_see_each_other() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pool.db");
    let a = SqliteStore::open(&path).await.expect("open a");
    let b = SqliteStore::open(&path).await.expect("open b");
    let mut host = sample_host();
    a.insert_host(&host).await.expect("insert through a");
    host.status = HostStatus::Inactive;
    b.update_host(&host).await.expect("update through b");
    assert_eq!(
        a.get_host(&host.id).await.expect("get").map(|h| h.status),
        Some(HostStatus::Inactive)
    );
    assert!(matches!(b.insert_host(&host).await, Err(Error::Conflict { .. })));
    assert!(
        matches!(a.update_host(&host).await, Err(Error::Stale { .. })),
        "a write over the version b replaced is refused"
    );
}

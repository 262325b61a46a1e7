//! A `poolmanager serve` of its own for a run: a SQLite file seeded with simulated
//! hosts, ready clusters and lease history, and the real server binary on it.
//!
//! The hosts are `sim` hosts (`poolcore-sim`), so no engine is needed: a release
//! recycles its cluster on the simulated engine, as it would on Docker. The reconciler
//! is off, as in a run that measures the API alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use poolcore::conformance::store::{ready_cluster, sample_blueprint, sample_host};
use poolcore::model::new_id;
use poolcore::{HostKind, LeaseRecord, Store};
use poolcore_sqlite::SqliteStore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The admin token of the servers the bench starts.
pub const TOKEN: &str = "poolmanager-bench";

/// What to put in the database before the server starts.
#[derive(Debug, Clone, Copy)]
pub struct Seed {
    /// Simulated hosts.
    pub hosts: usize,
    /// Ready clusters, spread over the hosts.
    pub clusters: usize,
    /// Closed lease records (history), spread over the last 30 days.
    pub leases: usize,
}

/// Fills a new SQLite database at `path`: `seed.hosts` sim hosts, one blueprint,
/// `seed.clusters` ready clusters and `seed.leases` lease records.
pub async fn seed_database(path: &Path, seed: Seed) -> poolcore::Result<()> {
    let store = SqliteStore::open(path).await?;
    let blueprint = sample_blueprint();
    store.insert_blueprint(&blueprint).await?;
    let per_host = seed.clusters.div_ceil(seed.hosts.max(1));
    let mut hosts = Vec::with_capacity(seed.hosts);
    for i in 0..seed.hosts.max(1) {
        let mut host = sample_host();
        host.name = format!("bench-{i:04}");
        host.kind = HostKind::Sim;
        host.endpoint = format!("sim://bench-{i:04}");
        host.public_address = "127.0.0.1".into();
        host.capacity = u32::try_from(per_host).unwrap_or(u32::MAX);
        host.autofill = false;
        store.insert_host(&host).await?;
        hosts.push(host.id);
    }
    let clusters: Vec<_> = (0..seed.clusters)
        .map(|i| {
            let mut cluster = ready_cluster(&blueprint.name, &hosts[i % hosts.len()]);
            // Numbered: short random names collide among 100,000.
            cluster.name = format!("bench-{i:07}");
            cluster
        })
        .collect();
    let now = Utc::now();
    let month = chrono::Duration::days(30).num_seconds().max(1);
    let leases: Vec<_> = (0..seed.leases)
        .map(|i| {
            let cluster = &clusters[i % clusters.len().max(1)];
            let applied_at = now - chrono::Duration::seconds((i as i64 * 7919) % month);
            LeaseRecord {
                id: new_id(),
                cluster_id: cluster.id.clone(),
                cluster_name: cluster.name.clone(),
                blueprint: blueprint.name.clone(),
                host_id: cluster.host_id.clone(),
                user_id: format!("history-{}", i % 1000),
                metadata: Default::default(),
                applied_at,
                released_at: Some(applied_at + chrono::Duration::minutes(20)),
                release_reason: Some(poolcore::ReleaseReason::Release),
            }
        })
        .collect();
    // In chunks, so that a million records do not sit in memory twice.
    let mut clusters = clusters.into_iter().peekable();
    let mut leases = leases.into_iter().peekable();
    while clusters.peek().is_some() || leases.peek().is_some() {
        let c: Vec<_> = clusters.by_ref().take(20_000).collect();
        let l: Vec<_> = leases.by_ref().take(50_000).collect();
        store.import(c, l).await?;
    }
    Ok(())
}

/// A running `poolmanager serve` child process.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts `binary` on `database` with the bench token, listening on a free port of
    /// 127.0.0.1, the reconciler off; returns once it listens.
    pub async fn start(binary: &Path, database: &Path) -> Result<Server, String> {
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--database")
            .arg(format!("sqlite://{}", database.display()))
            .env("POOLMANAGER_ADMIN_TOKEN", TOKEN)
            .env("POOLMANAGER_RECONCILE_INTERVAL", "0")
            .env("RUST_LOG", "warn,poolmanager=info")
            .env_remove("POOLMANAGER_CONFIG_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stderr = child.stderr.take().ok_or("the server's stderr is not captured")?;
        let mut lines = BufReader::new(stderr).lines();
        let listening = async {
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = listening_on(&line) {
                    return Ok((addr, lines));
                }
                seen.push(line);
            }
            Err(format!(
                "the server stopped before it listened:\n{}",
                seen.join("\n")
            ))
        };
        let (addr, mut lines) = tokio::time::timeout(Duration::from_secs(120), listening)
            .await
            .map_err(|_| "the server did not listen within 120 s".to_owned())??;
        // Keep reading its log, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { addr, child })
    }

    /// The server's resident memory, from /proc, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The address in the server's "listening" log line, if `line` is that one.
fn listening_on(line: &str) -> Option<SocketAddr> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &entry["fields"];
    if !fields["message"].as_str()?.starts_with("PoolManager listening") {
        return None;
    }
    fields["addr"].as_str()?.parse().ok()
}

/// The `poolmanager` binary beside this one (`cargo build --release -p poolmanager`
/// puts both in `target/release`), unless `given`.
pub fn server_binary(given: Option<PathBuf>) -> Result<PathBuf, String> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(|e| format!("where is this program: {e}"))?
            .with_file_name("poolmanager"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no server binary at {}: build it with `cargo build --release -p poolmanager`, or name it with --server",
            path.display()
        ))
    }
}

//! `poolmanager-bench`: the apply load generator behind docs/performance.md.
//!
//! ```sh
//! cargo build --release -p poolmanager -p poolmanager-benches
//! target/release/poolmanager-bench run --clusters 100000 --connections 32 --duration 20
//! target/release/poolmanager-bench sweep --plot-dir docs/img
//! target/release/poolmanager-bench reads --clusters 100000 --leases 1000000
//! ```
//!
//! Without `--url` each command seeds a SQLite file with simulated hosts and ready
//! clusters and starts its own `poolmanager serve` on it (the binary beside this one),
//! so no engine is needed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use poolmanager_benches::load::{self, Latency, Mix, RunReport, Workload};
use poolmanager_benches::plot::{self, Line};
use poolmanager_benches::server::{self, Seed, Server};
use serde::Serialize;

/// Load generator for PoolManager's REST API.
#[derive(Debug, Parser)]
#[command(name = "poolmanager-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Health, then applies and releases, on the same server; prints both and their ratio.
    Run {
        #[command(flatten)]
        target: Target,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds each phase sends for.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Chance an applied cluster is released right away (0-1).
        #[arg(long, default_value_t = 0.5)]
        release: f64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Apply latency against connections and against pool size; draws PNG plots.
    Sweep {
        /// Connection counts to try (at the largest pool size).
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
        connections: Vec<usize>,
        /// Pool sizes to try (at `--pool-connections`).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
        clusters: Vec<usize>,
        /// Connections of the pool-size runs.
        #[arg(long, default_value_t = 32)]
        pool_connections: usize,
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Simulated hosts the clusters are spread over.
        #[arg(long, default_value_t = 100)]
        hosts: usize,
        /// Where the PNG plots go.
        #[arg(long, default_value = "docs/img")]
        plot_dir: PathBuf,
        /// The `poolmanager` binary (default: the one beside this program).
        #[arg(long)]
        server: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// What an operator's dashboard polls (stats, pages of clusters and leases with
    /// their totals), timed on a large pool.
    Reads {
        #[command(flatten)]
        target: Target,
        /// Times each read is made.
        #[arg(long, default_value_t = 50)]
        repeat: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The server to load: one given by `--url`, or one of its own.
#[derive(Debug, Args)]
struct Target {
    /// A running server (`http://127.0.0.1:8080`); without it, one is started.
    #[arg(long)]
    url: Option<String>,
    /// Its admin token (with --url).
    #[arg(long, env = "POOLMANAGER_ADMIN_TOKEN")]
    token: Option<String>,
    /// Ready clusters to seed (own server).
    #[arg(long, default_value_t = 100_000)]
    clusters: usize,
    /// Simulated hosts to spread them over (own server).
    #[arg(long, default_value_t = 100)]
    hosts: usize,
    /// Closed lease records to seed (own server).
    #[arg(long, default_value_t = 0)]
    leases: usize,
    /// The `poolmanager` binary (default: the one beside this program).
    #[arg(long)]
    server: Option<PathBuf>,
}

/// A server to load, and what to stop afterwards.
struct Running {
    addr: std::net::SocketAddr,
    token: String,
    own: Option<(Server, tempfile::TempDir)>,
}

impl Running {
    async fn of(target: &Target) -> Result<Running, String> {
        if let Some(url) = &target.url {
            let addr = url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .map_err(|e| format!("--url {url}: give http://IP:PORT ({e})"))?;
            let token = target
                .token
                .clone()
                .ok_or("--url needs --token (or POOLMANAGER_ADMIN_TOKEN)")?;
            return Ok(Running {
                addr,
                token,
                own: None,
            });
        }
        let seed = Seed {
            hosts: target.hosts,
            clusters: target.clusters,
            leases: target.leases,
        };
        start_own(seed, target.server.clone()).await
    }

    fn rss_mib(&self) -> Option<f64> {
        self.own.as_ref().and_then(|(server, _)| server.rss_mib())
    }

    /// The size of its own database's write-ahead log, in MiB.
    fn wal_mib(&self) -> Option<f64> {
        let (_, dir) = self.own.as_ref()?;
        let wal = std::fs::metadata(dir.path().join(format!("{DATABASE}-wal"))).ok()?;
        Some(wal.len() as f64 / (1024.0 * 1024.0))
    }

    async fn stop(self) {
        if let Some((server, _dir)) = self.own {
            server.stop().await;
        }
    }
}

/// The file name of the database a run seeds.
const DATABASE: &str = "bench.db";

async fn start_own(seed: Seed, binary: Option<PathBuf>) -> Result<Running, String> {
    let binary = server::server_binary(binary)?;
    let dir = tempfile::tempdir().map_err(|e| format!("a temp dir: {e}"))?;
    let db = dir.path().join(DATABASE);
    let seeding = Instant::now();
    server::seed_database(&db, seed)
        .await
        .map_err(|e| format!("seeding {}: {e}", db.display()))?;
    eprintln!(
        "seeded {} hosts, {} ready clusters, {} leases in {:.1}s",
        seed.hosts,
        seed.clusters,
        seed.leases,
        seeding.elapsed().as_secs_f64()
    );
    let server = Server::start(&binary, &db).await?;
    Ok(Running {
        addr: server.addr,
        token: server::TOKEN.to_owned(),
        own: Some((server, dir)),
    })
}

fn workload(running: &Running, connections: usize, duration: u64, mix: Mix) -> Workload {
    Workload {
        addr: running.addr,
        token: running.token.clone(),
        connections,
        duration: Duration::from_secs(duration),
        mix,
    }
}

fn line(name: &str, l: &Option<Latency>) -> String {
    match l {
        Some(l) => format!(
            "{name:<10} {:>9} req {:>9.0}/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            l.count, l.per_second, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        ),
        None => format!("{name:<10} none"),
    }
}

fn print_run(report: &RunReport) {
    for (name, l) in [
        ("health", &report.health),
        ("applied", &report.applied),
        ("exhausted", &report.exhausted),
        ("released", &report.released),
    ] {
        if l.is_some() {
            println!("{}", line(name, l));
        }
    }
    if report.errors > 0 {
        println!("errors     {} (first: {:?})", report.errors, report.error_samples);
    }
}

#[derive(Serialize)]
struct RunOutput {
    health: RunReport,
    apply: RunReport,
    apply_to_health: f64,
    server_rss_mib: Option<f64>,
    /// The write-ahead log after the run.
    wal_mib: Option<f64>,
}

async fn run(
    target: Target,
    connections: usize,
    duration: u64,
    release: f64,
    json: bool,
) -> Result<(), String> {
    let running = Running::of(&target).await?;
    let health = load::run(workload(&running, connections, duration, Mix::Health)).await;
    let apply = load::run(workload(
        &running,
        connections,
        duration,
        Mix::ApplyRelease { release },
    ))
    .await;
    let ratio = apply.applied.as_ref().map_or(0.0, |a| a.per_second)
        / health.health.as_ref().map_or(f64::INFINITY, |h| h.per_second);
    let output = RunOutput {
        apply_to_health: ratio,
        server_rss_mib: running.rss_mib(),
        wal_mib: running.wal_mib(),
        health,
        apply,
    };
    running.stop().await;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&output).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!("{connections} connections, {duration} s per phase");
    print_run(&output.health);
    print_run(&output.apply);
    println!("apply / health throughput: {:.1}%", ratio * 100.0);
    if let Some(rss) = output.server_rss_mib {
        println!("server RSS: {rss:.0} MiB");
    }
    if let Some(wal) = output.wal_mib {
        println!("write-ahead log after the run: {wal:.1} MiB");
    }
    Ok(())
}

#[derive(Serialize)]
struct SweepPoint {
    connections: usize,
    clusters: usize,
    report: RunReport,
}

async fn sweep_one(
    clusters: usize,
    hosts: usize,
    connections: usize,
    duration: u64,
    binary: &Option<PathBuf>,
) -> Result<SweepPoint, String> {
    let seed = Seed {
        hosts,
        clusters,
        leases: 0,
    };
    let running = start_own(seed, binary.clone()).await?;
    // Every apply is released: the pool keeps its size through the run.
    let report = load::run(workload(
        &running,
        connections,
        duration,
        Mix::ApplyRelease { release: 1.0 },
    ))
    .await;
    running.stop().await;
    eprintln!(
        "{}",
        line(&format!("c={connections} n={clusters}"), &report.applied)
    );
    Ok(SweepPoint {
        connections,
        clusters,
        report,
    })
}

fn latency_lines(points: &[SweepPoint], x: impl Fn(&SweepPoint) -> f64) -> Vec<Line> {
    let pick = |name: &str, q: fn(&Latency) -> f64| Line {
        name: name.to_owned(),
        points: points
            .iter()
            .filter_map(|p| p.report.applied.as_ref().map(|l| (x(p), q(l))))
            .collect(),
    };
    vec![
        pick("p50", |l| l.p50_ms),
        pick("p90", |l| l.p90_ms),
        pick("p99", |l| l.p99_ms),
    ]
}

#[allow(clippy::too_many_arguments)]
async fn sweep(
    connections: Vec<usize>,
    clusters: Vec<usize>,
    pool_connections: usize,
    duration: u64,
    hosts: usize,
    plot_dir: PathBuf,
    binary: Option<PathBuf>,
    json: bool,
) -> Result<(), String> {
    let largest = clusters.iter().copied().max().unwrap_or(100_000);
    let mut by_connections = Vec::new();
    for &c in &connections {
        by_connections.push(sweep_one(largest, hosts, c, duration, &binary).await?);
    }
    let mut by_size = Vec::new();
    for &n in &clusters {
        by_size.push(sweep_one(n, hosts, pool_connections, duration, &binary).await?);
    }
    std::fs::create_dir_all(&plot_dir).map_err(|e| format!("{}: {e}", plot_dir.display()))?;
    plot::draw(
        &plot_dir.join("apply-latency-by-connections.png"),
        &format!("POST /apply latency, {largest} ready clusters"),
        "connections",
        "ms",
        &latency_lines(&by_connections, |p| p.connections as f64),
    )?;
    plot::draw(
        &plot_dir.join("apply-latency-by-pool-size.png"),
        &format!("POST /apply latency, {pool_connections} connections"),
        "ready clusters",
        "ms",
        &latency_lines(&by_size, |p| p.clusters as f64),
    )?;
    if json {
        let all: Vec<&SweepPoint> = by_connections.iter().chain(&by_size).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?
        );
    } else {
        for p in by_connections.iter().chain(&by_size) {
            println!(
                "{}  (throughput {:.0}/s)",
                line(
                    &format!("c={} n={}", p.connections, p.clusters),
                    &p.report.applied
                ),
                p.report.applied.as_ref().map_or(0.0, |l| l.per_second)
            );
        }
        println!("plots in {}", plot_dir.display());
    }
    Ok(())
}

#[derive(Serialize)]
struct ReadTiming {
    path: String,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

async fn reads(target: Target, repeat: usize, json: bool) -> Result<(), String> {
    let running = Running::of(&target).await?;
    let http = reqwest::Client::new();
    let base = format!("http://{}/api/v1", running.addr);
    let deep = (target.clusters / 2).max(1);
    // The overview's three ranges, as the dashboard asks for them.
    let since = |hours: i64| {
        (chrono::Utc::now() - chrono::Duration::hours(hours))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let paths = [
        "/stats".to_owned(),
        format!("/stats/history?since={}&bucket=60", since(1)),
        format!("/stats/history?since={}&bucket=3600", since(24)),
        format!("/stats/history?since={}&bucket=21600", since(24 * 7)),
        "/stats/history?bucket=3600".to_owned(),
        "/clusters?limit=50".to_owned(),
        "/clusters?status=ready&limit=25".to_owned(),
        "/clusters?status=applied&sort=applied_at&order=desc&limit=25".to_owned(),
        "/clusters?health=failing&limit=1".to_owned(),
        "/clusters?status=failed&limit=25".to_owned(),
        "/clusters?sort=name&order=desc&limit=25&offset=25".to_owned(),
        format!("/clusters?status=ready&limit=50&offset={deep}"),
        "/blueprints?limit=1000".to_owned(),
        "/hosts?limit=1000".to_owned(),
        "/leases?limit=25".to_owned(),
        "/leases?user_id=history-7&limit=25".to_owned(),
        "/leases?limit=50&offset=500000".to_owned(),
        "/operations?limit=10".to_owned(),
    ];
    let mut timings = Vec::new();
    for path in &paths {
        let mut samples = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            let begun = Instant::now();
            let response = http
                .get(format!("{base}{path}"))
                .bearer_auth(&running.token)
                .send()
                .await
                .map_err(|e| format!("{path}: {e}"))?;
            let status = response.status();
            response.bytes().await.map_err(|e| format!("{path}: {e}"))?;
            if !status.is_success() {
                return Err(format!("{path} answered {status}"));
            }
            samples.push(begun.elapsed());
        }
        samples.sort();
        let at = |q: f64| {
            samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e3
        };
        timings.push(ReadTiming {
            path: path.clone(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        });
    }
    let rss = running.rss_mib();
    running.stop().await;
    if json {
        let out = serde_json::json!({ "reads": timings, "server_rss_mib": rss });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    for t in &timings {
        println!(
            "GET {:<45} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            t.path, t.p50_ms, t.p99_ms, t.max_ms
        );
    }
    if let Some(rss) = rss {
        println!("server RSS: {rss:.0} MiB");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Run {
            target,
            connections,
            duration,
            release,
            json,
        } => run(target, connections, duration, release, json).await,
        Command::Sweep {
            connections,
            clusters,
            pool_connections,
            duration,
            hosts,
            plot_dir,
            server,
            json,
        } => {
            sweep(
                connections,
                clusters,
                pool_connections,
                duration,
                hosts,
                plot_dir,
                server,
                json,
            )
            .await
        }
        Command::Reads { target, repeat, json } => reads(target, repeat, json).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poolmanager-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

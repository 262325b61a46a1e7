//! The load: N keep-alive HTTP/1.1 connections, each sending requests one after the
//! other for a fixed time, with every latency recorded in an HDR histogram.
//!
//! The client is a bare hyper connection per worker, so that it costs the shared
//! cores as little as it can: a bench whose client eats the CPU measures the client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::Serialize;
use tokio::net::TcpStream;

/// What one run sends.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Server address.
    pub addr: SocketAddr,
    /// Bearer token (the admin token, or the user token).
    pub token: String,
    /// Concurrent connections, each with one request in flight.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
    /// What each request is.
    pub mix: Mix,
}

/// The requests of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mix {
    /// `GET /api/v1/health`: the server's own floor, without the store.
    Health,
    /// `POST /api/v1/apply` of `blueprint` (any when `None`), each followed by a
    /// `POST /api/v1/release` of the cluster with probability `release`.
    ApplyRelease {
        /// Chance that an applied cluster is released right away (0 to 1).
        release: f64,
    },
}

/// Latencies of one kind of request, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Requests answered.
    pub count: u64,
    /// Per second over the run.
    pub per_second: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Connections.
    pub connections: usize,
    /// Seconds sent.
    pub seconds: f64,
    /// Health requests, for a health run.
    pub health: Option<Latency>,
    /// Applies answered with a cluster (200).
    pub applied: Option<Latency>,
    /// Applies answered 503 `pool_exhausted`.
    pub exhausted: Option<Latency>,
    /// Releases (200).
    pub released: Option<Latency>,
    /// Answers with any other status, or transport errors.
    pub errors: u64,
    /// The first few errors, to say what went wrong.
    pub error_samples: Vec<String>,
}

impl RunReport {
    /// Every request answered per second, whatever it was.
    pub fn requests_per_second(&self) -> f64 {
        [&self.health, &self.applied, &self.exhausted, &self.released]
            .into_iter()
            .flatten()
            .map(|l| l.per_second)
            .sum()
    }
}

#[derive(Debug)]
struct Histograms {
    health: Histogram<u64>,
    applied: Histogram<u64>,
    exhausted: Histogram<u64>,
    released: Histogram<u64>,
    errors: u64,
    error_samples: Vec<String>,
}

impl Histograms {
    fn new() -> Self {
        // 1 µs to 60 s, three significant digits.
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        Histograms {
            health: h(),
            applied: h(),
            exhausted: h(),
            released: h(),
            errors: 0,
            error_samples: Vec::new(),
        }
    }

    fn add(&mut self, other: &Histograms) {
        for (into, from) in [
            (&mut self.health, &other.health),
            (&mut self.applied, &other.applied),
            (&mut self.exhausted, &other.exhausted),
            (&mut self.released, &other.released),
        ] {
            // Same bounds on both sides: adding cannot fail.
            let _ = into.add(from);
        }
        self.errors += other.errors;
        for e in &other.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(e.clone());
            }
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(what);
        }
    }
}

fn record(h: &mut Histogram<u64>, took: Duration) {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(micros);
}

fn latency(h: &Histogram<u64>, seconds: f64) -> Option<Latency> {
    let ms = |v: u64| v as f64 / 1000.0;
    (!h.is_empty()).then(|| Latency {
        count: h.len(),
        per_second: h.len() as f64 / seconds,
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    })
}

/// One keep-alive connection to the server.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    authorization: String,
}

impl Connection {
    async fn open(addr: SocketAddr, token: &str) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
        tokio::spawn(connection);
        Ok(Connection {
            sender,
            authorization: format!("Bearer {token}"),
        })
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), String> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "bench")
            .header("authorization", &self.authorization)
            .header("content-type", "application/json")
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| format!("building the request: {e}"))?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection lost: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{path}: reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

#[derive(serde::Deserialize)]
struct Applied {
    id: String,
}

/// One worker: its own connection, requests one after the other until `until`.
async fn worker(load: Workload, index: usize, until: Instant) -> Histograms {
    let mut h = Histograms::new();
    let mut conn = match Connection::open(load.addr, &load.token).await {
        Ok(conn) => conn,
        Err(e) => {
            h.error(e);
            return h;
        }
    };
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let outcome = match load.mix {
            Mix::Health => {
                let begun = Instant::now();
                conn.send(Method::GET, "/api/v1/health", None)
                    .await
                    .map(|(status, _)| {
                        if status == StatusCode::OK {
                            record(&mut h.health, begun.elapsed());
                        }
                        status
                    })
            }
            Mix::ApplyRelease { release } => apply_release(&mut conn, &mut h, index, n, release).await,
        };
        match outcome {
            Ok(status) if status.is_success() || status == StatusCode::SERVICE_UNAVAILABLE => {}
            Ok(status) => h.error(format!("answered {status}")),
            Err(e) => {
                h.error(e);
                // A lost connection: open another, as a real client would.
                match Connection::open(load.addr, &load.token).await {
                    Ok(fresh) => conn = fresh,
                    Err(_) => return h,
                }
            }
        }
    }
    h
}

async fn apply_release(
    conn: &mut Connection,
    h: &mut Histograms,
    worker: usize,
    n: u64,
    release: f64,
) -> Result<StatusCode, String> {
    // Each apply by a new user: no apply returns a cluster its user already holds.
    let user = format!("bench-w{worker}-{n}");
    let body = serde_json::json!({ "user_id": user }).to_string();
    let begun = Instant::now();
    let (status, answer) = conn.send(Method::POST, "/api/v1/apply", Some(body)).await?;
    let took = begun.elapsed();
    match status {
        StatusCode::OK => record(&mut h.applied, took),
        StatusCode::SERVICE_UNAVAILABLE => {
            record(&mut h.exhausted, took);
            return Ok(status);
        }
        other => return Ok(other),
    }
    if !rand::rng().random_bool(release.clamp(0.0, 1.0)) {
        return Ok(status);
    }
    let applied: Applied =
        serde_json::from_slice(&answer).map_err(|e| format!("the apply answer has no cluster id: {e}"))?;
    let body = serde_json::json!({ "cluster_id": applied.id, "user_id": user }).to_string();
    let begun = Instant::now();
    let (status, _) = conn.send(Method::POST, "/api/v1/release", Some(body)).await?;
    if status == StatusCode::OK {
        record(&mut h.released, begun.elapsed());
    }
    Ok(status)
}

/// Sends `load` and reports what it measured.
pub async fn run(load: Workload) -> RunReport {
    let started = Instant::now();
    let until = started + load.duration;
    let workers: Vec<_> = (0..load.connections)
        .map(|i| tokio::spawn(worker(load.clone(), i, until)))
        .collect();
    let mut all = Histograms::new();
    for w in workers {
        match w.await {
            Ok(h) => all.add(&h),
            Err(e) => all.error(format!("a worker stopped: {e}")),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    RunReport {
        connections: load.connections,
        seconds,
        health: latency(&all.health, seconds),
        applied: latency(&all.applied, seconds),
        exhausted: latency(&all.exhausted, seconds),
        released: latency(&all.released, seconds),
        errors: all.errors,
        error_samples: all.error_samples,
    }
}

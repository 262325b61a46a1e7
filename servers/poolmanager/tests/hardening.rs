//! The real `poolmanager serve` binary against clients that misbehave: slow and idle
//! connections, too many connections, too many event subscribers; HTTPS with a
//! certificate reloaded on SIGHUP; a waiting apply past the idle timeout and one whose client hangs up; and logs that never hold a secret. On the embedded
//! SQLite store, no Docker engine needed.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::serve::ServeProcess;
use common::{ADMIN, USER};

/// The latency test runs alone (write); the others, which start servers that would
/// compete with it for the CPU, together (read).
static TIMING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A server on a fresh SQLite file, reconciler off, with `env`; the directory holds
/// the file and must outlive the server.
async fn start(env: &[(&str, &str)]) -> (ServeProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("pool.db").display());
    let mut env = env.to_vec();
    env.push(("POOLMANAGER_RECONCILE_INTERVAL", "0"));
    (ServeProcess::start(&database, &env).await, dir)
}

/// Lets this process (and the servers it starts) open as many files as allowed.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both calls only read or write the struct given, which lives on this stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    assert!(
        limit.rlim_cur >= 8192,
        "the open-file limit {} is too low for this test",
        limit.rlim_cur
    );
}

/// Waits until a log line of `server` contains `text`.
async fn wait_log(server: &ServeProcess, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().iter().any(|line| line.contains(text)) {
        assert!(Instant::now() < deadline, "no log line with {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the server closed `stream` within `wait` (EOF or reset on read).
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends a whole health request on `stream` and reads its answer.
async fn get_health(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("send request");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"}") {
        let n = stream.read(&mut buf).await.expect("read answer");
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

// ---------------------------------------------------------------------------------
// Slow and idle clients

/// One attacker: connects, then trickles a header line every `every` or, without
/// `every`, stays silent, until the server closes the connection or `give_up` passes.
/// Returns how long the connection lasted if the server closed it.
async fn attacker(
    addr: SocketAddr,
    every: Option<Duration>,
    connected: Arc<AtomicUsize>,
    give_up: Duration,
) -> Option<Duration> {
    let mut stream = loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => break stream,
            // The listen backlog overflows while thousands connect at once.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let opened = Instant::now();
    connected.fetch_add(1, Ordering::Relaxed);
    let Some(every) = every else {
        return closed_within(&mut stream, give_up)
            .await
            .then(|| opened.elapsed());
    };
    if stream
        .write_all(b"GET /api/v1/health HTTP/1.1\r\n")
        .await
        .is_err()
    {
        return Some(opened.elapsed());
    }
    for line in 0.. {
        if closed_within(&mut stream, every).await {
            return Some(opened.elapsed());
        }
        if opened.elapsed() > give_up {
            return None;
        }
        if stream
            .write_all(format!("X-Slow-{line}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            return Some(opened.elapsed());
        }
    }
    unreachable!()
}

/// Latencies of up to `count` requests (fewer if `until` comes first), each on a new
/// connection, alternating health and an authenticated list; panics on any failure.
async fn latencies(base: &str, count: usize, until: Instant) -> Vec<Duration> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        if Instant::now() >= until {
            break;
        }
        let request = if i % 2 == 0 {
            http.get(format!("{base}/health"))
        } else {
            http.get(format!("{base}/hosts")).bearer_auth(ADMIN)
        };
        let started = Instant::now();
        let resp = request.send().await.expect("request answered");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.bytes().await.expect("body read");
        times.push(started.elapsed());
    }
    times.sort();
    times
}

/// The server's resident memory (Linux), in KiB; 0 where unknown.
fn resident_kib(server: &ServeProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_idle_clients_neither_hold_nor_slow_the_server() {
    const SLOW: usize = 2_000;
    const IDLE: usize = 200;
    // Long enough to hold them while ~200 requests are timed, on a busy machine.
    const HEADER_TIMEOUT: Duration = Duration::from_secs(4);
    // Connected before the server accepted them, on a busy machine: some slack.
    const SLACK: Duration = Duration::from_millis(1500);
    let _alone = TIMING.write().await;
    raise_fd_limit();
    let (server, _dir) = start(&[("POOLMANAGER_HEADER_TIMEOUT_SECONDS", "4")]).await;
    let before = latencies(&server.base, 200, Instant::now() + Duration::from_secs(20)).await;
    let memory_before = resident_kib(&server);

    let connected = Arc::new(AtomicUsize::new(0));
    let attack_began = Instant::now();
    let mut attackers = Vec::new();
    for i in 0..SLOW + IDLE {
        let every = (i < SLOW).then_some(Duration::from_millis(1500));
        let connected = Arc::clone(&connected);
        attackers.push(tokio::spawn(attacker(
            server.addr,
            every,
            connected,
            HEADER_TIMEOUT + SLACK,
        )));
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    while connected.load(Ordering::Relaxed) < SLOW + IDLE {
        assert!(
            attack_began.elapsed() < Duration::from_secs(5),
            "attackers connect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_connected = attack_began.elapsed();
    // Let the server take them all in, then measure while it holds them: until shortly
    // before the first ones reach the header timeout.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = latencies(
        &server.base,
        200,
        attack_began + HEADER_TIMEOUT - Duration::from_millis(300),
    )
    .await;
    let held_at_the_end = attack_began.elapsed();
    let memory_held = resident_kib(&server);

    let mut slow = Vec::new();
    let mut idle = Vec::new();
    for (i, attacker) in attackers.into_iter().enumerate() {
        let lasted = attacker.await.expect("attacker");
        let lasted =
            lasted.unwrap_or_else(|| panic!("connection {i} still open after {:?}", HEADER_TIMEOUT + SLACK));
        if i < SLOW {
            slow.push(lasted)
        } else {
            idle.push(lasted)
        }
    }
    slow.sort();
    idle.sort();
    let (base_p50, base_p99) = (percentile(&before, 0.5), percentile(&before, 0.99));
    let (p50, p99) = (percentile(&during, 0.5), percentile(&during, 0.99));
    eprintln!(
        "{} requests before: p50 {:.2} ms, p99 {:.2} ms; {} requests while {SLOW} slow and {IDLE} idle \
         connections were held ({:.2} s to {:.2} s after they began): p50 {:.2} ms, p99 {:.2} ms",
        before.len(),
        ms(base_p50),
        ms(base_p99),
        during.len(),
        all_connected.as_secs_f64(),
        held_at_the_end.as_secs_f64(),
        ms(p50),
        ms(p99)
    );
    eprintln!(
        "closed by the server after (header timeout {:?}): slow p50 {:.0} ms, p99 {:.0} ms, \
         min {:.0} ms, max {:.0} ms; idle p50 {:.0} ms, max {:.0} ms",
        HEADER_TIMEOUT,
        ms(percentile(&slow, 0.5)),
        ms(percentile(&slow, 0.99)),
        ms(percentile(&slow, 0.0)),
        ms(percentile(&slow, 1.0)),
        ms(percentile(&idle, 0.5)),
        ms(percentile(&idle, 1.0)),
    );
    eprintln!(
        "server resident memory: {memory_before} KiB before, {memory_held} KiB holding the {} \
         connections",
        SLOW + IDLE
    );
    assert!(during.len() >= 50, "only {} requests while held", during.len());
    assert!(
        p99 < base_p99 * 10 + Duration::from_millis(50),
        "p99 {p99:?} during the attack, {base_p99:?} before"
    );
    assert!(
        // The attackers' clocks start when their task runs again after the connect.
        percentile(&slow, 0.0) >= HEADER_TIMEOUT - Duration::from_secs(1),
        "closed before the timeout"
    );
    assert!(
        percentile(&slow, 1.0) < HEADER_TIMEOUT + SLACK,
        "slow connections held too long"
    );
    assert!(
        percentile(&idle, 1.0) < HEADER_TIMEOUT + SLACK,
        "idle connections held too long"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_quiet_ones_time_out() {
    let _shared = TIMING.read().await;
    let (server, _dir) = start(&[
        ("POOLMANAGER_MAX_CONNECTIONS", "20"),
        ("POOLMANAGER_HEADER_TIMEOUT_SECONDS", "2"),
        ("POOLMANAGER_IDLE_TIMEOUT_SECONDS", "1"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // The server counts a connection when it accepts it: give it the time to.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect(server.addr).await.expect("the kernel accepts");
    assert!(
        closed_within(&mut extra, Duration::from_millis(500)).await,
        "a connection beyond the cap is closed at once"
    );
    for stream in &mut held[..5] {
        stream.shutdown().await.expect("close");
    }
    held.drain(..5);
    let mut answered = false;
    for _ in 0..20 {
        let mut fresh = TcpStream::connect(server.addr).await.expect("connect");
        if !closed_within(&mut fresh, Duration::from_millis(100)).await {
            get_health(&mut fresh).await;
            answered = true;
            break;
        }
    }
    assert!(answered, "closing connections makes room again");

    // After an answer, a keep-alive connection that stays quiet ends with the idle
    // timeout (1 s here).
    drop(held);
    let mut quiet = TcpStream::connect(server.addr).await.expect("connect");
    get_health(&mut quiet).await;
    let started = Instant::now();
    assert!(
        closed_within(&mut quiet, Duration::from_secs(4)).await,
        "idle connection closed"
    );
    let idle_close = started.elapsed();
    assert!(idle_close >= Duration::from_millis(900), "{idle_close:?}");

    // A second request whose head trickles in gets the header timeout (2 s) from its
    // first byte, though its bytes keep the connection from being idle.
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    get_health(&mut slow).await;
    slow.write_all(b"GET /api/v1/health HTTP/1.1\r\n")
        .await
        .expect("send");
    let started = Instant::now();
    let mut closed = false;
    for line in 0..20 {
        if closed_within(&mut slow, Duration::from_millis(400)).await {
            closed = true;
            break;
        }
        if slow
            .write_all(format!("X-Slow-{line}: 1\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
    }
    let slow_close = started.elapsed();
    assert!(closed, "the slow second head is cut off");
    assert!(
        slow_close >= Duration::from_millis(1900) && slow_close < Duration::from_secs(4),
        "{slow_close:?}"
    );
    eprintln!(
        "idle keep-alive connection closed after {:.0} ms; slow second head after {:.0} ms",
        ms(idle_close),
        ms(slow_close)
    );
}

#[tokio::test]
async fn event_subscribers_beyond_the_cap_get_503() {
    let _shared = TIMING.read().await;
    let (server, _dir) = start(&[("POOLMANAGER_MAX_EVENT_SUBSCRIBERS", "2")]).await;
    let subscribe = |token: &'static str| {
        let http = reqwest::Client::new();
        let url = format!("{}/events", server.base);
        async move { http.get(url).bearer_auth(token).send().await.expect("answered") }
    };
    let first = subscribe(ADMIN).await;
    let second = subscribe(ADMIN).await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let refused = subscribe(ADMIN).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused.headers().contains_key("retry-after"),
        "{:?}",
        refused.headers()
    );
    let body: serde_json::Value = refused.json().await.expect("JSON error");
    assert_eq!(body["code"], "unavailable", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("at most 2")),
        "{body}"
    );
    assert_eq!(
        subscribe(USER).await.status(),
        StatusCode::FORBIDDEN,
        "auth comes first"
    );

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = subscribe(ADMIN).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "a slot frees when a subscriber leaves");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);
}

/// Applies waiting now, from `/stats`.
async fn waiting(server: &ServeProcess) -> u64 {
    let (status, stats) = server.admin(reqwest::Method::GET, "/stats", None).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    stats["waiting"].as_u64().expect("stats.waiting")
}

#[tokio::test]
async fn a_waiting_apply_outlives_the_idle_timeout_and_leaves_when_its_client_hangs_up() {
    let _shared = TIMING.read().await;
    let (server, _dir) = start(&[("POOLMANAGER_IDLE_TIMEOUT_SECONDS", "1")]).await;
    let blueprint = server.add_blueprint(1).await;

    // A wait longer than the idle timeout is answered, not cut off.
    let started = Instant::now();
    let (status, body) = server
        .user(
            reqwest::Method::POST,
            "/apply",
            Some(serde_json::json!({"user_id": "bob", "blueprint": blueprint, "wait_seconds": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("waited 2 s")),
        "{body}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // No host: nothing will ever be ready, so the apply waits its whole 20 s.
    let body = format!(r#"{{"user_id": "ann", "blueprint": "{blueprint}", "wait_seconds": 20}}"#);
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!(
        "POST /api/v1/apply HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {USER}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send apply");
    let deadline = Instant::now() + Duration::from_secs(5);
    while waiting(&server).await != 1 {
        assert!(Instant::now() < deadline, "the apply never waited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let hung_up = Instant::now();
    drop(stream);
    while waiting(&server).await != 0 {
        assert!(
            hung_up.elapsed() < Duration::from_secs(3),
            "the apply still waits {:?} after its client hung up",
            hung_up.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------
// HTTPS

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// A self-signed certificate and its key, in files.
struct TlsFiles {
    dir: tempfile::TempDir,
    cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
    cert: String,
    key: String,
}

impl TlsFiles {
    fn new() -> TlsFiles {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = self_signed();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, &cert).expect("write cert");
        std::fs::write(&key_path, &key).expect("write key");
        TlsFiles {
            dir,
            cert_path,
            key_path,
            cert,
            key,
        }
    }
}

/// A server serving HTTPS with `tls`, and `env`.
async fn start_https(tls: &TlsFiles, env: &[(&str, &str)]) -> (ServeProcess, tempfile::TempDir) {
    let (cert, key) = (
        tls.cert_path.display().to_string(),
        tls.key_path.display().to_string(),
    );
    let mut env = env.to_vec();
    env.extend([
        ("POOLMANAGER_TLS_CERT", cert.as_str()),
        ("POOLMANAGER_TLS_KEY", key.as_str()),
    ]);
    start(&env).await
}

/// A client that trusts only `cert` and opens a new connection for each request.
fn trusting(cert: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).expect("PEM"))
        .resolve("localhost", addr)
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

async fn health_over_tls(cert: &str, addr: SocketAddr) -> Result<StatusCode, reqwest::Error> {
    let url = format!("https://localhost:{}/api/v1/health", addr.port());
    Ok(trusting(cert, addr).get(url).send().await?.status())
}

fn send_hangup(server: &ServeProcess) {
    let pid = libc::pid_t::try_from(server.pid()).expect("pid");
    // SAFETY: kill only sends a signal to the server this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0, "SIGHUP sent");
}

#[tokio::test]
async fn https_serves_and_reloads_its_certificate_on_sighup() {
    let _shared = TIMING.read().await;
    let tls = TlsFiles::new();
    let (server, _db) = start_https(&tls, &[]).await;
    let (cert_path, key_path, old_cert, old_key) = (&tls.cert_path, &tls.key_path, &tls.cert, &tls.key);
    let listening = server
        .log()
        .into_iter()
        .find(|l| l.contains("PoolManager listening"))
        .expect("listening line");
    assert!(listening.contains("https://"), "{listening}");

    assert_eq!(
        health_over_tls(old_cert, server.addr).await.expect("HTTPS"),
        StatusCode::OK
    );
    let plain = reqwest::get(format!("http://{}/api/v1/health", server.addr)).await;
    assert!(plain.is_err(), "plain HTTP is not served: {plain:?}");

    let (new_cert, new_key) = self_signed();
    std::fs::write(cert_path, &new_cert).expect("write cert");
    std::fs::write(key_path, &new_key).expect("write key");
    send_hangup(&server);
    wait_log(&server, "TLS certificate reloaded").await;
    assert_eq!(
        health_over_tls(&new_cert, server.addr)
            .await
            .expect("new certificate served"),
        StatusCode::OK
    );
    assert!(
        health_over_tls(old_cert, server.addr).await.is_err(),
        "the old certificate is gone"
    );

    // A broken pair is refused and the one in use stays.
    std::fs::write(key_path, old_key).expect("write key of the old certificate");
    send_hangup(&server);
    wait_log(&server, "TLS certificate not reloaded").await;
    assert_eq!(
        health_over_tls(&new_cert, server.addr)
            .await
            .expect("still served"),
        StatusCode::OK
    );
    let log = server.log().join("\n");
    assert!(!log.contains(key_body(old_key)) && !log.contains(key_body(&new_key)));
}

/// The base64 body of a PEM key: what must never be logged.
fn key_body(pem: &str) -> &str {
    pem.lines().nth(1).expect("a PEM body line")
}

#[tokio::test]
async fn unusable_tls_files_stop_the_start_naming_the_file_only() {
    let _shared = TIMING.read().await;
    let tls = TlsFiles::new();
    // The key with its header cut off: not PEM any more.
    let broken: String = tls.key.lines().skip(1).collect::<Vec<_>>().join("\n");
    std::fs::write(&tls.key_path, &broken).expect("write key");
    let db = tls.dir.path().join("pool.db");
    let output = start_and_exit(&db, &tls.cert_path, &tls.key_path).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("key.pem"), "{stderr}");
    assert!(!stderr.contains(key_body(&tls.key)), "{stderr}");

    let missing = tls.dir.path().join("absent.pem");
    let output = start_and_exit(&db, &missing, &tls.key_path).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("absent.pem"),
        "{stderr}"
    );
}

async fn start_and_exit(db: &Path, cert: &Path, key: &Path) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_poolmanager"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .env("POOLMANAGER_ADMIN_TOKEN", ADMIN)
        .env_remove("POOLMANAGER_CONFIG_FILE")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the server gives up")
        .expect("the server ran")
}

// ---------------------------------------------------------------------------------
// Secrets

#[tokio::test]
async fn tokens_and_keys_never_reach_the_log() {
    let _shared = TIMING.read().await;
    let tls = TlsFiles::new();
    let (server, _db) = start_https(&tls, &[("RUST_LOG", "debug")]).await;
    let (cert, key) = (&tls.cert, &tls.key);
    const WRONG: &str = "wrong-token-0123456789";
    let http = trusting(cert, server.addr);
    let base = format!("https://localhost:{}/api/v1", server.addr.port());
    let calls = [
        (format!("{base}/hosts"), Some(ADMIN)),
        (format!("{base}/clusters"), Some(USER)),
        (format!("{base}/hosts"), Some(WRONG)),
        (format!("{base}/hosts?token={ADMIN}"), None),
        (format!("{base}/hosts?access_token={USER}&status=active"), None),
        (format!("{base}/hosts?{ADMIN}"), None),
        (format!("{base}/nowhere?token={WRONG}"), Some(WRONG)),
    ];
    for (url, token) in &calls {
        let mut request = http.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let status = request.send().await.expect("answered").status();
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{url}");
    }
    // The access log line of the last request is written once it is answered.
    wait_log(&server, "/nowhere?token=<redacted>").await;
    let log = server.log().join("\n");
    assert!(log.contains("\"status\":401"), "refusals are logged");
    for secret in [ADMIN, USER, WRONG, key_body(key)] {
        assert!(!log.contains(secret), "{secret:?} is in the log:\n{log}");
    }
}

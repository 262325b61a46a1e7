//! Test support for TLS (feature `testing`): certificates made on the spot, and a
//! private Docker engine that speaks TLS on 127.0.0.1, for the drivers' TLS tests.
//!
//! [`TlsEngine::start`] runs a second `dockerd` (as root) beside any other on the
//! machine: its own data root, exec root, pidfile and unix socket in a fresh directory
//! under `/tmp`, `--tlsverify` on a free port of 127.0.0.1, a default bridge of its own
//! (never `docker0`: a dockerd told `--bridge=none` deletes the `docker0` of the
//! engine beside it), no iptables rules, and an address pool of its own, so it stays
//! out of the way of a shared engine. Dropping it stops that dockerd and removes its
//! bridge and directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::{Docker, API_DEFAULT_VERSION};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use poolcore::{EngineTls, Pem};

/// A test CA, a server certificate it signed for `127.0.0.1` and `localhost`, a client
/// certificate it signed, and a second CA that signed neither. All PEM.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA's certificate.
    pub ca: String,
    /// The engine's certificate, for `127.0.0.1` and `localhost`.
    pub server_cert: String,
    /// The engine's key.
    pub server_key: String,
    /// The client's certificate.
    pub client_cert: String,
    /// The client's key.
    pub client_key: String,
    /// A CA that signed none of these.
    pub other_ca: String,
}

impl Certificates {
    /// Makes a fresh set.
    pub fn generate() -> Self {
        let (ca, issuer) = new_ca("PoolManager test CA");
        let (other_ca, _) = new_ca("PoolManager other CA");
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let (server_cert, server_key) = signed(names, ExtendedKeyUsagePurpose::ServerAuth, &issuer);
        let (client_cert, client_key) = signed(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, &issuer);
        Certificates {
            ca,
            server_cert,
            server_key,
            client_cert,
            client_key,
            other_ca,
        }
    }

    /// Client settings with every PEM inline, verifying the engine against the CA.
    pub fn inline(&self) -> EngineTls {
        EngineTls {
            ca: Some(Pem::Inline(self.ca.clone())),
            cert: Some(Pem::Inline(self.client_cert.clone())),
            key: Some(Pem::Inline(self.client_key.clone())),
            verify: true,
        }
    }
}

/// A self-signed CA: its certificate and what signs with it.
fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("a CA key");
    let cert = params.self_signed(&key).expect("a CA certificate");
    (cert.pem(), Issuer::new(params, key))
}

/// A certificate for `names` (none for a client) that `issuer` signed, and its key.
fn signed(
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> (String, String) {
    let mut params = CertificateParams::new(names).expect("subject names");
    params
        .distinguished_name
        .push(DnType::CommonName, "PoolManager test");
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("a key");
    let cert = params.signed_by(&key, issuer).expect("a signed certificate");
    (cert.pem(), key.serialize_pem())
}

/// A private dockerd with `--tlsverify` on 127.0.0.1, holding the test image. Stopped,
/// and its directory removed, when dropped.
#[derive(Debug)]
pub struct TlsEngine {
    dir: PathBuf,
    bridge: String,
    dockerd: Child,
    /// `tcp://127.0.0.1:PORT`: the TLS endpoint.
    pub endpoint: String,
    /// `unix:///tmp/…/docker.sock`: the same engine without TLS, for setting up.
    pub socket: String,
    /// What the engine and its clients were given.
    pub certificates: Certificates,
}

/// How long dockerd may take to answer after it started.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// How long dockerd may take to stop before it is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

impl TlsEngine {
    /// Starts the engine and builds the test image on it (`scripts/test-image.sh`).
    ///
    /// Without `dockerd` (or root), `None` with a notice; under `CI=true` that is a
    /// failure (a panic) instead. A dockerd that does not come up is a panic showing
    /// its log.
    pub async fn start() -> Option<Self> {
        if let Some(missing) = missing_prerequisite() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and the TLS engine test cannot run: {missing}"
            );
            eprintln!("skipping the TLS engine test: {missing}");
            return None;
        }
        let dir = private_dir();
        let certificates = Certificates::generate();
        let files = [
            ("ca.pem", &certificates.ca),
            ("server-cert.pem", &certificates.server_cert),
            ("server-key.pem", &certificates.server_key),
            ("cert.pem", &certificates.client_cert),
            ("key.pem", &certificates.client_key),
            ("other-ca.pem", &certificates.other_ca),
        ];
        for (name, pem) in files {
            write_private(&dir.join(name), pem);
        }
        let port = free_port();
        let socket = format!("unix://{}", dir.join("docker.sock").display());
        let bridge = own_bridge();
        let dockerd = spawn_dockerd(&dir, &bridge, &socket, port);
        let mut engine = TlsEngine {
            dir,
            bridge,
            dockerd,
            endpoint: format!("tcp://127.0.0.1:{port}"),
            socket,
            certificates,
        };
        engine.await_answer().await;
        engine.build_test_image().await;
        Some(engine)
    }

    /// The path of one of the PEM files written for the engine and its clients:
    /// `ca.pem`, `cert.pem`, `key.pem` (the client's) or `other-ca.pem`.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Client settings reading every PEM from its file, verifying the engine.
    pub fn files(&self) -> EngineTls {
        EngineTls {
            ca: Some(Pem::Path(self.file("ca.pem"))),
            cert: Some(Pem::Path(self.file("cert.pem"))),
            key: Some(Pem::Path(self.file("key.pem"))),
            verify: true,
        }
    }

    /// Waits until the engine answers on its unix socket.
    async fn await_answer(&mut self) {
        let deadline = Instant::now() + START_PATIENCE;
        let path = self.dir.join("docker.sock");
        loop {
            let ping = async {
                let client =
                    Docker::connect_with_unix(&path.display().to_string(), 2, API_DEFAULT_VERSION).ok()?;
                client.ping().await.ok()
            };
            if path.exists() && ping.await.is_some() {
                return;
            }
            let exited = self.dockerd.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                panic!(
                    "the TLS dockerd did not come up ({exited:?}); its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Builds `poolmanager/testnode:latest` on the engine, over its unix socket.
    async fn build_test_image(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-image.sh");
        let status = tokio::process::Command::new(&script)
            .arg(&self.socket)
            .env_remove("POOLMANAGER_TEST_IMAGE")
            .status()
            .await
            .unwrap_or_else(|e| panic!("{} cannot run: {e}", script.display()));
        assert!(status.success(), "{} failed: {status}", script.display());
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for TlsEngine {
    fn drop(&mut self) {
        let pid = self.dockerd.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + STOP_PATIENCE;
        while self.dockerd.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                let _ = self.dockerd.kill();
                let _ = self.dockerd.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Overlay mounts under the data root may outlive a killed dockerd.
        let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
        let prefix = self.dir.display().to_string();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(1))
            .filter(|point| point.starts_with(&prefix))
            .collect();
        ours.sort_unstable_by(|a, b| b.cmp(a));
        for point in ours {
            let _ = Command::new("umount").args(["-l", point]).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = Command::new("ip").args(["link", "delete", &self.bridge]).status();
    }
}

/// Why a private dockerd cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let found = Command::new("dockerd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !found.is_ok_and(|s| s.success()) {
        return Some("dockerd is not installed (Debian: apt-get install docker.io)".to_owned());
    }
    let ip = Command::new("ip").arg("-V").stdout(Stdio::null()).status();
    if !ip.is_ok_and(|s| s.success()) {
        return Some("`ip` is not installed (Debian: apt-get install iproute2)".to_owned());
    }
    let uid = Command::new("id").arg("-u").output().ok();
    let root = uid.is_some_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    (!root).then(|| "dockerd needs root".to_owned())
}

/// A fresh directory under /tmp, only root's.
fn private_dir() -> PathBuf {
    let unique = format!(
        "pm-tls-{}-{}",
        std::process::id(),
        &poolcore::model::new_id()[..8]
    );
    let dir = std::env::temp_dir().join(unique);
    fs::create_dir_all(&dir).expect("a directory for the TLS engine");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("a private directory");
    dir
}

/// Writes `contents` to a new file only its owner reads.
fn write_private(path: &Path, contents: &str) {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("{} cannot be written: {e}", path.display()));
    file.write_all(contents.as_bytes()).expect("a PEM file");
}

/// A port of 127.0.0.1 free at the moment.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// The /16 of the private engine's networks: never the 10.213.0.0/16 of the shared
/// engine, so that its networks route apart from another engine's.
fn second_octet() -> u32 {
    214 + std::process::id() % 40
}

/// A bridge for the private engine's default network, made here with an address of
/// its own: dockerd adopts a bridge it is given (`--bridge`) and leaves every other
/// alone.
fn own_bridge() -> String {
    let name = format!("pmtls{}", &poolcore::model::new_id()[..8]);
    // Engines started by one test binary get a /24 each, from the top of its /16.
    static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nth = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 64;
    let address = format!("10.{}.{}.1/24", second_octet(), 255 - nth);
    for args in [
        vec!["link", "add", &name, "type", "bridge"],
        vec!["address", "add", &address, "dev", &name],
        vec!["link", "set", &name, "up"],
    ] {
        let status = Command::new("ip").args(&args).status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "ip {}: {status:?}",
            args.join(" ")
        );
    }
    name
}

/// Starts dockerd in `dir` with `bridge`, on `socket` and, with TLS, on
/// 127.0.0.1:`port`.
fn spawn_dockerd(dir: &Path, bridge: &str, socket: &str, port: u16) -> Child {
    let path = |name: &str| dir.join(name).display().to_string();
    let pool = format!("base=10.{}.0.0/16,size=24", second_octet());
    let log = fs::File::create(dir.join("dockerd.log")).expect("a dockerd log");
    Command::new("dockerd")
        .args(["--data-root", &path("data"), "--exec-root", &path("exec")])
        .args(["--pidfile", &path("docker.pid")])
        .args(["-H", socket, "-H", &format!("tcp://127.0.0.1:{port}")])
        .args(["--tlsverify", "--tlscacert", &path("ca.pem")])
        .args([
            "--tlscert",
            &path("server-cert.pem"),
            "--tlskey",
            &path("server-key.pem"),
        ])
        .args([
            &format!("--bridge={bridge}"),
            "--iptables=false",
            "--default-address-pool",
            &pool,
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a dockerd log"))
        .stderr(log)
        .spawn()
        .expect("dockerd starts")
}

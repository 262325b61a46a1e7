//! The real `poolmanager serve` binary as a child process, for tests that need
//! several servers or a crash.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{Api, ADMIN, USER};

/// A `poolmanager serve` process and a client for it. Its log is kept, and shown if
/// the test fails while it runs.
pub struct ServeProcess {
    pub api: Api,
    /// The address it listens on.
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl std::ops::Deref for ServeProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl ServeProcess {
    /// Starts the binary on a free port of 127.0.0.1 with `database`, the test tokens
    /// and the `env` given; returns once it listens.
    pub async fn start(database: &str, env: &[(&str, &str)]) -> ServeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_poolmanager"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--database", database])
            .env("POOLMANAGER_ADMIN_TOKEN", ADMIN)
            .env("POOLMANAGER_USER_TOKEN", USER)
            .env("RUST_LOG", "info")
            .env_remove("POOLMANAGER_CONFIG_FILE")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start poolmanager");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let listening = async {
            while let Ok(Some(line)) = lines.next_line().await {
                let addr = listening_on(&line);
                log.lock().expect("log").push(line);
                if addr.is_some() {
                    return addr;
                }
            }
            None
        };
        let addr = tokio::time::timeout(Duration::from_secs(60), listening)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("poolmanager did not start: {:#?}", log.lock().expect("log")));
        let keep = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep.lock().expect("log").push(line);
            }
        });
        ServeProcess {
            api: Api::new(addr),
            addr,
            child,
            log,
        }
    }

    /// The log lines written so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server runs")
    }

    /// SIGKILL, as `kill -9`: no graceful shutdown, no clean-up.
    pub async fn kill_9(mut self) {
        self.child.kill().await.expect("kill -9 poolmanager");
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            let tail = &log[log.len().saturating_sub(40)..];
            eprintln!(
                "--- log of the server at {} ---\n{}",
                self.api.base,
                tail.join("\n")
            );
        }
    }
}

/// The address in the server's "listening" log line, if `line` is that one.
fn listening_on(line: &str) -> Option<SocketAddr> {
    let entry: Value = serde_json::from_str(line).ok()?;
    let fields = &entry["fields"];
    if !fields["message"].as_str()?.starts_with("PoolManager listening") {
        return None;
    }
    fields["addr"].as_str()?.parse().ok()
}

//! Readiness probes: a cluster is `ready` only once the probe of every node that has
//! one has passed, and a made cluster whose probe keeps failing is unhealthy.
//!
//! HTTP and TCP probes run from this server to the node's published endpoint (the
//! address users get), so they work the same on Docker and Swarm; exec probes run in
//! the node's container through its driver ([`HostDriver::exec`]).

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::{lock, Pool};
use crate::driver::{HostDriver, NodeState, ObservedCluster};
use crate::error::{Error, Result};
use crate::model::{Blueprint, Cluster, NodeSpec, Probe, ProbeCheck};

/// Most bytes of an HTTP probe's answer read to find its status line and headers.
const HEAD_MAX: usize = 16 * 1024;

/// One try of `probe` on `node` of `cluster` (made, with its endpoints): `Ok` when it
/// passes, else why not.
pub(super) async fn try_once(
    driver: &dyn HostDriver,
    cluster: &Cluster,
    node: &str,
    probe: &Probe,
) -> std::result::Result<(), String> {
    let limit = Duration::from_secs(u64::from(probe.timeout_seconds));
    let attempt = async {
        match &probe.check {
            ProbeCheck::Http { port, path } => http_get(endpoint(cluster, node, port)?, path).await,
            ProbeCheck::Tcp { port } => {
                let at = endpoint(cluster, node, port)?;
                TcpStream::connect(at)
                    .await
                    .map(drop)
                    .map_err(|e| format!("connecting to {at}: {e}"))
            }
            ProbeCheck::Exec { command } => match driver.exec(cluster, node, command).await {
                Ok(0) => Ok(()),
                Ok(status) => Err(format!("exited with status {status}")),
                Err(e) => Err(e.to_string()),
            },
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("no answer within {} s", probe.timeout_seconds)),
    }
}

/// The published `address:port` of `port` of `node`.
fn endpoint<'a>(cluster: &'a Cluster, node: &str, port: &str) -> std::result::Result<&'a str, String> {
    cluster
        .deployment
        .nodes
        .get(node)
        .and_then(|n| n.endpoints.get(port))
        .map(String::as_str)
        .ok_or_else(|| format!("port {port} of node {node} is not published"))
}

/// GETs `path` from `at`; a status from 200 to 399 passes.
async fn http_get(at: &str, path: &str) -> std::result::Result<(), String> {
    let mut stream = TcpStream::connect(at)
        .await
        .map_err(|e| format!("connecting to {at}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {at}\r\nUser-Agent: poolmanager-probe\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending to {at}: {e}"))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                let code = response.code.unwrap_or(0);
                return if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("GET {path} answered {code}"))
                };
            }
            Ok(httparse::Status::Partial) if head.len() < HEAD_MAX => {}
            Ok(httparse::Status::Partial) => {
                return Err(format!("GET {path}: no end of headers in {HEAD_MAX} bytes"))
            }
            Err(e) => return Err(format!("GET {path}: not an HTTP answer ({e})")),
        }
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading from {at}: {e}"))?;
        if read == 0 {
            return Err(format!("GET {path}: the connection closed before an answer"));
        }
        head.extend_from_slice(&chunk[..read]);
    }
}

/// The nodes of `blueprint` that have a readiness probe.
pub(super) fn probed(blueprint: &Blueprint) -> impl Iterator<Item = (&NodeSpec, &Probe)> {
    blueprint
        .nodes
        .iter()
        .filter_map(|n| n.readiness.as_ref().map(|p| (n, p)))
}

impl Pool {
    /// Waits until the probe of every node of `cluster` (just made or restarted, with
    /// its endpoints) has passed once; a node that has not within its
    /// `start_seconds` is an error naming it and the last failure.
    pub(super) async fn await_ready(
        &self,
        driver: &dyn HostDriver,
        cluster: &Cluster,
        blueprint: &Blueprint,
    ) -> Result<()> {
        let waits = probed(blueprint).map(|(node, probe)| async move {
            let started = Instant::now();
            let deadline = started + Duration::from_secs(u64::from(probe.start_seconds));
            let period = Duration::from_secs(u64::from(probe.period_seconds));
            loop {
                match try_once(driver, cluster, &node.name, probe).await {
                    Ok(()) => {
                        debug!(node = %node.name, waited_ms = started.elapsed().as_millis() as u64, "readiness probe passed");
                        return Ok(());
                    }
                    Err(why) if Instant::now() + period >= deadline => {
                        return Err(Error::unavailable(
                            format!("node {} of cluster {}", node.name, cluster.name),
                            format!(
                                "its readiness probe ({}) did not pass within {} s: {why}",
                                probe.check, probe.start_seconds
                            ),
                        ));
                    }
                    Err(_) => tokio::time::sleep(period).await,
                }
            }
        });
        try_join_all(waits).await.map(drop)
    }

    /// Runs the probes of a made cluster once, as a reconcile pass does, and marks the
    /// nodes whose probe failed `failure_threshold` passes in a row
    /// [`NodeState::Unhealthy`] in `observed`, so that the pass replaces or repairs
    /// them as it does a node whose engine health check fails.
    pub(super) async fn probe_made(
        &self,
        driver: &dyn HostDriver,
        cluster: &Cluster,
        blueprint: &Blueprint,
        observed: &mut ObservedCluster,
    ) {
        for (node, probe) in probed(blueprint) {
            // A node that is down or stopped on purpose is judged by what the engine says.
            if observed.nodes.get(&node.name) != Some(&NodeState::Running) {
                continue;
            }
            let key = (cluster.id.clone(), node.name.clone());
            let outcome = try_once(driver, cluster, &node.name, probe).await;
            let mut failures = lock(&self.inner.readiness_failures);
            match outcome {
                Ok(()) => {
                    failures.remove(&key);
                }
                Err(why) => {
                    let failed = failures.entry(key).or_insert(0);
                    *failed += 1;
                    if *failed >= probe.failure_threshold {
                        info!(cluster_id = %cluster.id, node = %node.name, failures = *failed, "readiness probe keeps failing");
                        observed.nodes.insert(
                            node.name.clone(),
                            NodeState::Unhealthy(format!(
                                "readiness probe failed {} times in a row: {why}",
                                *failed
                            )),
                        );
                    }
                }
            }
        }
    }

    /// Forgets the probe failures counted for `cluster_id`, made anew or gone.
    pub(super) fn forget_probe_failures(&self, cluster_id: &str) {
        lock(&self.inner.readiness_failures).retain(|(id, _), _| id != cluster_id);
    }
}

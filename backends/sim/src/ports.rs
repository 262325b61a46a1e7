//! Published ports of simulated nodes: host port numbers handed out per engine, and for
//! served ports a real listener on `127.0.0.1` that answers HTTP.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use poolcore::{PortSpec, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::error::SimError;

/// What every served port answers, whatever was asked.
const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

/// Longest request head read before answering anyway.
const MAX_HEAD: usize = 16 * 1024;

/// How long a client may take to send its request.
const REQUEST_PATIENCE: Duration = Duration::from_secs(5);

/// Lowest and highest host port handed out without a listener.
const FIRST_PORT: u16 = 1024;
const LAST_PORT: u16 = u16::MAX;

/// The host ports of one engine and the listeners behind them.
#[derive(Debug)]
pub(crate) struct Ports {
    /// Served TCP ports listen for real; otherwise ports are numbers from `numbers`.
    serve: bool,
    numbers: PortNumbers,
    /// Listeners told to stop, whose tasks have not been awaited yet: a caller that
    /// awaits them knows their ports are closed (see [`SimEngine`](crate::SimEngine)).
    pub(crate) closing: Vec<JoinHandle<()>>,
}

/// What one running node publishes: a host port per named port, in the node's order.
#[derive(Debug, Default)]
pub(crate) struct Published(Vec<Port>);

impl Published {
    /// The host ports, in the order of the node's named ports.
    pub(crate) fn host_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().map(Port::number)
    }
}

impl Ports {
    /// Ports of an engine; `serve` makes TCP ports listen.
    pub(crate) fn new(serve: bool) -> Self {
        Ports {
            serve,
            numbers: PortNumbers::default(),
            closing: Vec::new(),
        }
    }

    /// Whether TCP ports listen for real.
    pub(crate) fn serve(&self) -> bool {
        self.serve
    }

    /// Publishes every named port of `node`, each on a host port of its own: the one
    /// `pins` gives for its spec when that is free, else any free one.
    pub(crate) fn publish(
        &mut self,
        node: &str,
        specs: &[(String, PortSpec)],
        pins: &BTreeMap<PortSpec, u16>,
    ) -> Result<Published, SimError> {
        let mut published = Published(Vec::with_capacity(specs.len()));
        for (name, spec) in specs {
            let pin = pins.get(spec).copied();
            match self.publish_one(node, name, *spec, pin) {
                Ok(port) => published.0.push(port),
                Err(e) => {
                    self.unpublish(published);
                    return Err(e);
                }
            }
        }
        Ok(published)
    }

    fn publish_one(
        &mut self,
        node: &str,
        name: &str,
        spec: PortSpec,
        pin: Option<u16>,
    ) -> Result<Port, SimError> {
        if self.serve && spec.protocol == Protocol::Tcp {
            let pinned = pin.and_then(|port| Listener::bind(port).ok());
            let listener = match pinned {
                Some(listener) => listener,
                None => Listener::bind(0).map_err(|source| SimError::Listen {
                    node: node.to_owned(),
                    port: name.to_owned(),
                    source,
                })?,
            };
            return Ok(Port::Served(listener));
        }
        match self.numbers.take(pin) {
            Some(port) => Ok(Port::Number(port)),
            None => Err(SimError::NoFreePort {
                node: node.to_owned(),
                port: name.to_owned(),
            }),
        }
    }

    /// Frees what a node published: its numbers at once, its listeners once their
    /// tasks (now in [`Ports::closing`]) end.
    pub(crate) fn unpublish(&mut self, published: Published) {
        for port in published.0 {
            match port {
                Port::Served(listener) => self.closing.extend(listener.close()),
                Port::Number(port) => self.numbers.release(port),
            }
        }
    }
}

/// One published port.
#[derive(Debug)]
enum Port {
    /// Listening for real.
    Served(Listener),
    /// A number only.
    Number(u16),
}

impl Port {
    fn number(&self) -> u16 {
        match self {
            Port::Served(listener) => listener.port,
            Port::Number(port) => *port,
        }
    }
}

/// Host port numbers in use on one engine, handed out round-robin like an engine's
/// ephemeral range.
#[derive(Debug)]
struct PortNumbers {
    used: HashSet<u16>,
    next: u16,
}

impl Default for PortNumbers {
    fn default() -> Self {
        PortNumbers {
            used: HashSet::new(),
            next: FIRST_PORT,
        }
    }
}

impl PortNumbers {
    /// `wanted` if it is free, else the next free port; `None` when all are taken.
    fn take(&mut self, wanted: Option<u16>) -> Option<u16> {
        if let Some(port) = wanted.filter(|p| *p > 0) {
            if self.used.insert(port) {
                return Some(port);
            }
        }
        for _ in FIRST_PORT..=LAST_PORT {
            let port = self.next;
            self.next = if port == LAST_PORT { FIRST_PORT } else { port + 1 };
            if self.used.insert(port) {
                return Some(port);
            }
        }
        None
    }

    fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }
}

/// One served port: a task answering HTTP on it. Dropping it stops the task.
#[derive(Debug)]
struct Listener {
    port: u16,
    task: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens on `127.0.0.1:port` (0: any free port) and answers every HTTP request
    /// with `200 ok`.
    fn bind(port: u16) -> io::Result<Listener> {
        let socket = TcpSocket::new_v4()?;
        // Answered connections linger in TIME_WAIT on the port; a node published again
        // on it (a repair) must still be able to listen there.
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        let listener = socket.listen(128)?;
        let port = listener.local_addr()?.port();
        Ok(Listener {
            port,
            task: Some(tokio::spawn(serve(listener))),
        })
    }

    /// Stops answering; the task ends (and the port closes) soon after. Returns the
    /// task, to await that.
    fn close(mut self) -> Option<JoinHandle<()>> {
        let task = self.task.take()?;
        task.abort();
        Some(task)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream));
            }
            Err(e) => {
                // Out of file descriptors, most likely: let some connections end.
                debug!(error = %e, "a simulated port cannot accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads the request head, then answers `200 ok` and closes. Reading first matters:
/// closing with unread input resets the connection before the client reads the answer.
async fn answer(mut stream: TcpStream) {
    let mut head = Vec::new();
    let read_head = async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        io::Result::Ok(())
    };
    if let Ok(Err(e)) = tokio::time::timeout(REQUEST_PATIENCE, read_head).await {
        debug!(error = %e, "a simulated port lost a request");
        return;
    }
    if stream.write_all(ANSWER).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_distinct_pinned_when_free_and_run_out() {
        let mut numbers = PortNumbers::default();
        let a = numbers.take(None).unwrap();
        let b = numbers.take(None).unwrap();
        assert_ne!(a, b);
        assert_eq!(numbers.take(Some(40000)), Some(40000));
        let c = numbers.take(Some(40000)).unwrap();
        assert_ne!(c, 40000, "a taken pin gives another port");
        numbers.release(40000);
        assert_eq!(numbers.take(Some(40000)), Some(40000));
        let total = usize::from(LAST_PORT - FIRST_PORT) + 1;
        while numbers.used.len() < total {
            assert!(numbers.take(None).is_some());
        }
        assert_eq!(numbers.take(None), None);
    }
}

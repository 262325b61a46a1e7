//! Serving HTTP(S) to clients that may be hostile: TLS with reload on SIGHUP, a cap on
//! open connections, deadlines for request heads and idle connections, a cap on event
//! subscribers, and an access log without secrets.

mod conn;
mod departures;
mod events;
mod log;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor, TcpAcceptor};
use poem::{Endpoint, EndpointExt, Server};
use tokio::net::TcpSocket;

use self::conn::GuardedAcceptor;
pub use self::departures::Departures;
pub use self::events::{EventSlots, LimitEventSubscribers};
pub use self::log::AccessLog;
use self::tls::Certificate;
pub use self::tls::TlsError;
use crate::config::Config;
use crate::StartError;

/// How long open requests get to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Connections the kernel queues for the server to accept (capped by
/// `net.core.somaxconn`). The default of Rust and tokio, 128, overflows when a few
/// hundred clients connect at once: the others' connection attempts are dropped and
/// retried a second later.
const LISTEN_BACKLOG: u32 = 1024;

/// File descriptors kept free beyond `max_connections`: the store, engine sockets, logs.
const SPARE_FILES: u64 = 256;

/// A bound listener with the limits of the config, ready to serve.
pub struct Listening {
    acceptor: GuardedAcceptor,
    certificate: Option<Arc<Certificate>>,
    idle_timeout: Option<Duration>,
    event_slots: EventSlots,
}

impl Listening {
    /// Binds `config.listen`, with TLS when `tls_cert` and `tls_key` are set (both
    /// files are read now: a bad one stops the start).
    pub async fn bind(config: &Config) -> Result<Listening, StartError> {
        let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        let certificate = config
            .tls_files()
            .map(|(cert, key)| Certificate::load(cert, key))
            .transpose()?;
        let tls = certificate.as_ref().map(Certificate::acceptor).transpose()?;
        raise_open_file_limit(config.max_connections);
        let tcp = bind_tcp(&config.listen).await.map_err(|source| StartError::Io {
            what: "listening on",
            path: config.listen.clone(),
            source,
        })?;
        let acceptor = GuardedAcceptor::new(
            tcp,
            tls,
            seconds(config.header_timeout_seconds),
            config.max_connections,
        );
        Ok(Listening {
            acceptor,
            certificate,
            idle_timeout: seconds(config.idle_timeout_seconds),
            event_slots: EventSlots::new(config.max_event_subscribers),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.certificate.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Serves `app` until `shutdown` completes, then lets open requests finish for a
    /// few seconds. With TLS, SIGHUP reloads the certificate meanwhile.
    pub async fn serve(
        self,
        app: impl Endpoint + 'static,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        #[cfg(unix)]
        let reloader = self.certificate.map(tls::reload_on_hangup).transpose()?;
        let departures = self.acceptor.departures();
        let mut server = Server::new_with_acceptor(self.acceptor);
        if let Some(idle) = self.idle_timeout {
            server = server.idle_timeout(idle);
        }
        let app = app.data(self.event_slots).data(departures);
        let served = server
            .run_with_graceful_shutdown(app, shutdown, Some(SHUTDOWN_GRACE))
            .await;
        #[cfg(unix)]
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        served
    }
}

/// A TCP listener on the first address `listen` resolves to that can be bound.
async fn bind_tcp(listen: &str) -> std::io::Result<TcpAcceptor> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(listen).await? {
        let bound = (|| {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            #[cfg(unix)]
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(LISTEN_BACKLOG)
        })();
        match bound {
            Ok(listener) => return TcpAcceptor::from_tokio(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// Raises the soft limit on open files (up to the hard one) so that `max_connections`
/// fit, and warns when they do not: past the limit, accepting fails instead of the
/// cap closing connections cleanly.
#[cfg(unix)]
fn raise_open_file_limit(max_connections: usize) {
    let wanted = (max_connections as u64).saturating_add(SPARE_FILES);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= wanted {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    let current = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur
    } else {
        limit.rlim_cur
    };
    if current < wanted {
        tracing::warn!(
            open_file_limit = current,
            max_connections,
            "the open-file limit is below max_connections + {SPARE_FILES}: raise it (ulimit -n, \
             LimitNOFILE=) or lower max_connections"
        );
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit(_max_connections: usize) {}

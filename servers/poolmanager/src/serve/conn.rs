//! The connections the server takes: at most `max_connections` open, TLS when
//! configured, and a deadline for each request's headers.
//!
//! poem's `Server` has an idle timeout but no cap on connections and no header-read
//! timeout (hyper has one, but poem neither sets it nor gives access to its builder;
//! and hyper's also closes keep-alive connections after that short time). So the
//! acceptor is wrapped: it closes connections beyond the cap as soon as they are
//! accepted, before reading anything, and hands poem streams that watch their own
//! bytes to tell when a request head is being read. While one is, reads fail once
//! the deadline has passed, and hyper closes the connection. Each connection also tells
//! its handlers when its client goes away ([`Departures`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::departures::{Departure, Departures};

/// How long to wait after a failed accept (out of file descriptors, mostly) before the
/// next one: the listener keeps failing until a connection closes.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Repeated warnings (connections refused, accepts failing) are logged at most this
/// often, with how many happened since the last line.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// An acceptor that caps open connections and guards request heads.
pub struct GuardedAcceptor {
    inner: TcpAcceptor,
    tls: Option<TlsAcceptor>,
    header_timeout: Option<Duration>,
    max_connections: usize,
    open: Arc<AtomicUsize>,
    departures: Departures,
    refused: Throttled,
    failed: Throttled,
}

impl GuardedAcceptor {
    /// Wraps `inner`: TLS with `tls` if given, at most `max_connections` open, request
    /// heads within `header_timeout` if given.
    pub fn new(
        inner: TcpAcceptor,
        tls: Option<TlsAcceptor>,
        header_timeout: Option<Duration>,
        max_connections: usize,
    ) -> GuardedAcceptor {
        GuardedAcceptor {
            inner,
            tls,
            header_timeout,
            max_connections,
            open: Arc::default(),
            departures: Departures::default(),
            refused: Throttled::default(),
            failed: Throttled::default(),
        }
    }

    /// The tokens that tell handlers their client left.
    pub fn departures(&self) -> Departures {
        self.departures.clone()
    }

    /// Counts a slot for a new connection, unless `max_connections` are open.
    fn take_slot(&self) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(&self.open)))
    }
}

impl Acceptor for GuardedAcceptor {
    type Io = Conn;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Conn, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let (stream, local, remote, _) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    if let Some(count) = self.failed.note() {
                        warn!(error = %e, count, "accepting connections fails");
                    }
                    // poem's loop would retry at once, spinning while the cause lasts.
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Some(slot) = self.take_slot() else {
                drop(stream);
                if let Some(count) = self.refused.note() {
                    warn!(
                        max_connections = self.max_connections,
                        count, "connection limit reached; new connections are closed at once"
                    );
                }
                continue;
            };
            let (io, scheme) = match &self.tls {
                Some(tls) => (Transport::Handshake(Box::new(tls.accept(stream))), Scheme::HTTPS),
                None => (Transport::Plain(stream), Scheme::HTTP),
            };
            let mut conn = Conn::new(io, self.header_timeout, slot);
            conn.departure = remote
                .as_socket_addr()
                .map(|client| self.departures.watch(*client));
            return Ok((conn, local, remote, scheme));
        }
    }
}

/// One open connection, counted until it is dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts an event that happens often and says when it is time to log it again.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    /// Counts one; `Some(count since the last line)` when a line is due.
    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        if self.last.is_some_and(|last| last.elapsed() < WARN_EVERY) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.count))
    }
}

/// A connection as poem sees it (over TCP; other streams in tests).
pub struct Conn<S = TcpStream> {
    io: Transport<S>,
    head: HeadWatch,
    /// The server is sending an answer, and the client sent nothing since.
    answering: bool,
    /// The client closed its side while an answer was being sent: it left.
    client_left: bool,
    /// Told when the client closed its end.
    departure: Option<Departure>,
    _slot: Slot,
}

impl<S: Stream> AsyncRead for Conn<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) => {
                let bytes = &buf.filled()[before..];
                // The end of the stream after an answer began: the client left. Before
                // one, it may just have closed its side and wait for the answer.
                let ended = room && bytes.is_empty();
                this.client_left |= ended && this.answering;
                if ended {
                    // Nothing more comes: a handler still at work has nobody to answer.
                    if let Some(departure) = &this.departure {
                        departure.left();
                    }
                }
                this.answering &= bytes.is_empty();
                this.head.read(bytes);
            }
            Poll::Ready(Err(_)) => return polled,
            Poll::Pending => {}
        }
        if this.head.expired(cx) {
            debug!("request headers not received in time; closing the connection");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers not received in time",
            )));
        }
        polled
    }
}

impl<S> Conn<S> {
    fn new(io: Transport<S>, header_timeout: Option<Duration>, slot: Slot) -> Conn<S> {
        Conn {
            io,
            head: HeadWatch::new(header_timeout),
            answering: false,
            client_left: false,
            departure: None,
            _slot: slot,
        }
    }

    /// Follows bytes the server sent: an answer, unless informational (`100 Continue`
    /// comes before the body it asks for).
    fn wrote(&mut self, bytes: &[u8]) {
        if !(bytes.starts_with(b"HTTP/1.1 1") || bytes.starts_with(b"HTTP/1.0 1")) {
            self.answering = true;
            self.head.answered();
        }
    }

    /// Fails writes once the client closed its side.
    ///
    /// hyper notices a client leaving in the middle of a response (an event stream)
    /// when it reads the end of the stream, and ends the connection with an error; but
    /// poem then waits for the connection to shut down gracefully, which only happens
    /// on the next write, an event or a keep-alive comment, seconds later. Failing the
    /// flush hyper does meanwhile ends it at once, and frees the stream's resources.
    fn check_client(&self) -> io::Result<()> {
        if self.client_left {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client closed the connection",
            ));
        }
        Ok(())
    }
}

impl<S: Stream> AsyncWrite for Conn<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_client()?;
        let written = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.wrote(buf);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_client()?;
        let written = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.wrote(first);
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_client()?;
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Where a connection is, as far as its bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request head is being read; `tail` holds its last four bytes, `started` says
    /// whether anything but the empty lines a head may follow came, `first` counts the
    /// connection's first bytes (up to 4), to tell HTTP/2 by its preface.
    Head { tail: u32, started: bool, first: u8 },
    /// The head is in; the request is being handled.
    Request,
    /// The server answered; the next byte starts a new request head.
    Answered,
    /// Not watched: no timeout, or HTTP/2 (whose frames this cannot follow).
    Off,
}

/// Watches a connection's bytes and holds the deadline of the head being read. The
/// first head's deadline runs from the accept (so it covers the TLS handshake), later
/// ones' from their first byte; between requests the idle timeout applies.
struct HeadWatch {
    timeout: Duration,
    phase: Phase,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl HeadWatch {
    fn new(timeout: Option<Duration>) -> HeadWatch {
        match timeout {
            Some(timeout) => HeadWatch {
                timeout,
                phase: Phase::Head {
                    tail: 0,
                    started: false,
                    first: 0,
                },
                deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            },
            None => HeadWatch {
                timeout: Duration::ZERO,
                phase: Phase::Off,
                deadline: None,
            },
        }
    }

    /// Follows bytes the client sent.
    fn read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Answered {
            if let Some(deadline) = &mut self.deadline {
                deadline
                    .as_mut()
                    .reset(tokio::time::Instant::now() + self.timeout);
            }
            self.phase = Phase::Head {
                tail: 0,
                started: false,
                first: 4,
            };
        }
        if let Phase::Head { tail, started, first } = self.phase {
            self.phase = scan_head(tail, started, first, bytes);
        }
    }

    /// The server answered the request.
    fn answered(&mut self) {
        if matches!(self.phase, Phase::Head { .. } | Phase::Request) {
            self.phase = Phase::Answered;
        }
    }

    /// Whether a head is being read past its deadline (registers the waker if not).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        match (&self.phase, &mut self.deadline) {
            (Phase::Head { .. }, Some(deadline)) => deadline.as_mut().poll(cx).is_ready(),
            _ => false,
        }
    }
}

/// The phase after `bytes` of a head whose state was (`tail`, `started`, `first`).
fn scan_head(mut tail: u32, mut started: bool, mut first: u8, bytes: &[u8]) -> Phase {
    const H2_PREFACE: u32 = u32::from_be_bytes(*b"PRI ");
    const END: u32 = u32::from_be_bytes(*b"\r\n\r\n");
    const BARE_END: u32 = u32::from_be_bytes(*b"\0\0\n\n");
    for &byte in bytes {
        tail = tail << 8 | u32::from(byte);
        started |= byte != b'\r' && byte != b'\n';
        if first < 4 {
            first += 1;
            if first == 4 && tail == H2_PREFACE {
                return Phase::Off;
            }
        }
        if started && (tail == END || tail & 0xffff == BARE_END) {
            return Phase::Request;
        }
    }
    Phase::Head { tail, started, first }
}

/// The byte stream under HTTP: plain TCP, or TLS once its handshake is done.
enum Transport<S> {
    Plain(S),
    Handshake(Box<tokio_rustls::Accept<S>>),
    Tls(Box<TlsStream<S>>),
    Failed,
}

impl<S: Stream> Transport<S> {
    /// The stream to read and write, after the TLS handshake if there is one.
    fn poll_stream(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Pin<&mut (dyn Stream + '_)>>> {
        if let Transport::Handshake(accept) = self {
            match ready!(Pin::new(accept.as_mut()).poll(cx)) {
                Ok(tls) => *self = Transport::Tls(Box::new(tls)),
                Err(e) => {
                    debug!(error = %e, "TLS handshake failed");
                    *self = Transport::Failed;
                    return Poll::Ready(Err(e));
                }
            }
        }
        Poll::Ready(match self {
            Transport::Plain(tcp) => Ok(Pin::new(tcp as &mut dyn Stream)),
            Transport::Tls(tls) => Ok(Pin::new(tls.as_mut() as &mut dyn Stream)),
            Transport::Handshake(_) | Transport::Failed => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "TLS handshake failed",
            )),
        })
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(tcp) => tcp.is_write_vectored(),
            Transport::Tls(tls) => tls.is_write_vectored(),
            Transport::Handshake(_) | Transport::Failed => false,
        }
    }
}

/// What the transports have in common.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl<S: Stream> AsyncRead for Transport<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_read(cx, buf)
    }
}

impl<S: Stream> AsyncWrite for Transport<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        Transport::is_write_vectored(self)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.get_mut().poll_stream(cx))?.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn plain<S>(stream: S, header_timeout: Option<Duration>) -> Conn<S> {
        Conn::new(
            Transport::Plain(stream),
            header_timeout,
            Slot(Arc::new(AtomicUsize::new(1))),
        )
    }

    fn head() -> Phase {
        Phase::Head {
            tail: 0,
            started: false,
            first: 0,
        }
    }

    fn after(chunks: &[&[u8]]) -> Phase {
        chunks.iter().fold(head(), |phase, bytes| match phase {
            Phase::Head { tail, started, first } => scan_head(tail, started, first, bytes),
            other => other,
        })
    }

    #[test]
    fn a_head_ends_at_its_empty_line() {
        assert_eq!(after(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]), Phase::Request);
        assert_eq!(
            after(&[b"GET / HTTP/1.1\r\n", b"Host: a\r", b"\n", b"\r\n"]),
            Phase::Request
        );
        assert_eq!(after(&[b"GET / HTTP/1.1\nHost: a\n\n"]), Phase::Request);
        assert!(matches!(
            after(&[b"GET / HTTP/1.1\r\nX-a: 1\r\n"]),
            Phase::Head { .. }
        ));
    }

    #[test]
    fn empty_lines_before_a_head_do_not_end_it() {
        assert!(matches!(after(&[b"\r\n\r\n", b"\r\n"]), Phase::Head { .. }));
        assert!(matches!(
            after(&[b"\r\n\r\nGET / HTTP/1.1\r\n"]),
            Phase::Head { .. }
        ));
    }

    #[test]
    fn http2_is_not_watched() {
        assert_eq!(after(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]), Phase::Off);
        assert_eq!(after(&[b"PR", b"I * HTTP/2.0"]), Phase::Off);
    }

    #[tokio::test]
    async fn answers_reopen_the_watch_and_continues_do_not() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut conn = plain(server, Some(Duration::from_secs(10)));
        let mut buf = [0u8; 256];
        client
            .write_all(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
            .await
            .expect("send");
        let _ = conn.read(&mut buf).await.expect("read");
        assert_eq!(conn.head.phase, Phase::Request);
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(conn.head.phase, Phase::Request, "the body is still to come");
        client.write_all(b"{}").await.expect("send");
        let _ = conn.read(&mut buf).await.expect("read");
        assert_eq!(conn.head.phase, Phase::Request);
        conn.write_all(b"HTTP/1.1 200 OK\r\n").await.expect("write");
        assert_eq!(conn.head.phase, Phase::Answered);
        client.write_all(b"GET").await.expect("send");
        let _ = conn.read(&mut buf).await.expect("read");
        assert!(
            matches!(conn.head.phase, Phase::Head { first: 4, .. }),
            "{:?}",
            conn.head.phase
        );
    }

    #[tokio::test]
    async fn a_client_leaving_an_answer_fails_writes_and_a_half_close_does_not() {
        let mut buf = [0u8; 256];
        let (mut client, server) = tokio::io::duplex(1024);
        let mut waiting = plain(server, None);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("send");
        client.shutdown().await.expect("half-close");
        let _ = waiting.read(&mut buf).await.expect("read");
        assert_eq!(waiting.read(&mut buf).await.expect("end"), 0);
        waiting
            .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
            .await
            .expect("the answer goes out");

        let (mut client, server) = tokio::io::duplex(1024);
        let mut streaming = plain(server, None);
        client
            .write_all(b"GET /events HTTP/1.1\r\n\r\n")
            .await
            .expect("send");
        let _ = streaming.read(&mut buf).await.expect("read");
        streaming
            .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
            .await
            .expect("write");
        drop(client);
        assert_eq!(streaming.read(&mut buf).await.expect("end"), 0);
        assert!(streaming.flush().await.is_err(), "the client left");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_head_expires() {
        let mut watch = HeadWatch::new(Some(Duration::from_secs(2)));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        watch.read(b"GET / HTTP/1.1\r\n");
        assert!(!watch.expired(&mut cx));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(watch.expired(&mut cx));
        let mut off = HeadWatch::new(None);
        off.read(b"GET / HTTP/1.1\r\n");
        assert!(!off.expired(&mut cx));
    }
}

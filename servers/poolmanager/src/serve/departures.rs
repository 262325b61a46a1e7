//! Telling a handler that its client went away.
//!
//! hyper notices a client closing its connection while a request is handled, but poem
//! keeps the connection, and with it the handler, running until the answer is written.
//! A handler that waits (an apply with `wait_seconds`) would hold its place in line for
//! nobody. So each connection has a token, cancelled when the client's end of the
//! stream is read; a handler finds its own by the request's remote address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use poem::Request;
use tokio_util::sync::CancellationToken;

/// The open connections' tokens by the client's address, each with the number of its
/// connection.
type Tokens = HashMap<SocketAddr, (u64, CancellationToken)>;

/// The open connections' tokens.
#[derive(Debug, Clone, Default)]
pub struct Departures {
    tokens: Arc<Mutex<Tokens>>,
    accepted: Arc<AtomicU64>,
}

impl Departures {
    /// Starts watching the connection from `client`.
    pub(super) fn watch(&self, client: SocketAddr) -> Departure {
        let token = CancellationToken::new();
        let number = self.accepted.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(client, (number, token.clone()));
        Departure {
            departures: self.clone(),
            client,
            number,
            token,
        }
    }

    /// Cancelled when the client of `req` goes away; `None` when its connection is not
    /// watched (a request made in process, in tests).
    pub fn of(req: &Request) -> Option<CancellationToken> {
        let client = req.remote_addr().as_socket_addr()?;
        let departures = req.data::<Departures>()?;
        let token = departures.lock().get(client).map(|(_, token)| token.clone());
        token
    }

    fn lock(&self) -> MutexGuard<'_, Tokens> {
        // A map of tokens stays whole whatever panicked while holding it.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's token, forgotten when the connection is dropped.
#[derive(Debug)]
pub(super) struct Departure {
    departures: Departures,
    client: SocketAddr,
    number: u64,
    token: CancellationToken,
}

impl Departure {
    /// The client closed its end: it sends nothing more.
    pub(super) fn left(&self) {
        self.token.cancel();
    }
}

impl Drop for Departure {
    fn drop(&mut self) {
        let mut tokens = self.departures.lock();
        // The address may be another connection's by now, accepted since.
        if tokens.get(&self.client).is_some_and(|(n, _)| *n == self.number) {
            tokens.remove(&self.client);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_forgotten_with_its_connection_and_not_a_later_one() {
        let departures = Departures::default();
        let client: SocketAddr = "127.0.0.1:40000".parse().expect("address");
        let first = departures.watch(client);
        let second = departures.watch(client);
        drop(first);
        assert!(
            departures.lock().contains_key(&client),
            "the later connection's stays"
        );
        second.left();
        assert!(departures.lock()[&client].1.is_cancelled());
        drop(second);
        assert!(departures.lock().is_empty());
    }
}

//! The accept loop shared by every listener of the gateway (SIP TCP/TLS, XMPP s2s,
//! JSON TCP/WebSocket, admin HTTP).
//!
//! [`CappedListener::accept`] returns only admitted connections, each with the
//! [`ConnPermit`] that holds its slot in the listener's [`ConnGate`] (the sans-IO
//! accounting in `cpim_core::connlimit`): the caller keeps the permit alive as long as
//! the connection. A connection past the per-source or total cap is closed at once,
//! before a byte is read; refusals are logged at most once per [`LOG_EVERY`] per
//! listener, with a count.
//!
//! Accept errors: per-connection errors (the peer reset before we accepted it) are
//! skipped. Resource errors (EMFILE, ENFILE, ENOBUFS, ENOMEM) leave the pending
//! connection in the backlog, so the listener stays readable and retrying at once would
//! spin a core; the loop sleeps instead, 10 ms doubling up to 1 s, and the delay falls
//! back after the next successful accept.
//!
//! Why a crate of its own: cpim-core is sans-IO (it holds the counting), the adapters do
//! not depend on one another, and the admin API lives in the gateway; one small tokio
//! crate lets all four use the same loop. The TLS listeners (SIP TLS, XMPP s2s) share
//! their client-certificate handling here too ([`tls`]).

pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use cpim_core::connlimit::{ConnGate, ConnLimits, Refused};
pub use cpim_core::connlimit::{ConnPermit, SourceKey};
use tokio::net::{TcpListener, TcpStream};

/// Refusals are logged at most this often per listener.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// First delay after a resource error on accept.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);

/// Largest delay after repeated resource errors on accept.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A TCP listener that admits connections through a [`ConnGate`].
#[derive(Debug)]
pub struct CappedListener {
    inner: TcpListener,
    gate: ConnGate,
    name: &'static str,
    backoff: Duration,
    refused: u64,
    last_log: Option<tokio::time::Instant>,
    errors: u64,
}

impl CappedListener {
    /// Wraps `inner` with its own gate of `limits`; `name` labels the logs.
    pub fn new(inner: TcpListener, limits: ConnLimits, name: &'static str) -> CappedListener {
        Self::with_gate(inner, ConnGate::new(limits), name)
    }

    /// Wraps `inner` sharing `gate` with other listeners (one count over several
    /// addresses of one service).
    pub fn with_gate(inner: TcpListener, gate: ConnGate, name: &'static str) -> CappedListener {
        CappedListener {
            inner,
            gate,
            name,
            backoff: BACKOFF_MIN,
            refused: 0,
            last_log: None,
            errors: 0,
        }
    }

    /// The gate (for tests and metrics).
    pub fn gate(&self) -> &ConnGate {
        &self.gate
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The next admitted connection. Cancel-safe (a connection accepted and refused is
    /// closed; one accepted and admitted is returned in the same poll).
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, ConnPermit) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = BACKOFF_MIN;
                    match self.gate.admit(peer.ip()) {
                        Ok(permit) => return (stream, peer, permit),
                        Err(why) => {
                            // closed here, before a byte is read or written
                            drop(stream);
                            self.note_refused(why);
                        }
                    }
                }
                Err(e) if is_resource_error(&e) => {
                    self.errors += 1;
                    if self.errors == 1 || self.errors.is_power_of_two() {
                        tracing::warn!(listener = self.name, error = %e, errors = self.errors,
                            "accept failed for lack of resources; backing off");
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
                Err(e) => {
                    // the connection went away before we took it: nothing to do
                    tracing::debug!(listener = self.name, error = %e, "accept error");
                }
            }
        }
    }

    fn note_refused(&mut self, why: Refused) {
        self.refused += 1;
        let now = tokio::time::Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            tracing::warn!(listener = self.name, reason = %why, refused = self.refused,
                "connection refused: over the connection cap");
            self.last_log = Some(now);
            self.refused = 0;
        }
    }
}

/// True for accept errors that mean "out of descriptors or memory": retrying at once
/// cannot succeed and would spin.
pub fn is_resource_error(e: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 (Linux); std has no kinds for all.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12)) || e.kind() == io::ErrorKind::OutOfMemory
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn past_the_per_source_cap_a_connection_is_closed_at_once() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut l = CappedListener::new(
            l,
            ConnLimits {
                per_source: 2,
                total: 10,
            },
            "test",
        );
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let (_s1, _, _p1) = l.accept().await;
        let (_s2, _, _p2) = l.accept().await;
        // the third is refused inside accept(), which then waits for the next one
        let waited = tokio::time::timeout(Duration::from_millis(300), l.accept()).await;
        assert!(
            waited.is_err(),
            "a third connection from one source was admitted"
        );
        let mut b = [0u8; 1];
        let n = clients[2].read(&mut b).await.unwrap_or(0);
        assert_eq!(n, 0, "the refused connection is closed");
        assert_eq!(l.gate().open(), 2);
    }
}

//! SIP transports (RFC 3261 s18): a thin tokio layer.
//!
//! - UDP: one socket per listen address; each datagram is parsed by the receive task.
//! - TCP and TLS (rustls, `ring` provider): a listener per address, one reader and one
//!   writer task per connection; the reader frames by Content-Length
//!   ([`crate::codec::framing`]) within size limits (private module `stream`). A
//!   framing failure (bad or negative Content-Length, head or body over the limit) is
//!   answered and the connection closed (RFC 4475 s3.1.2.3); a message that frames but
//!   does not parse is answered with its 4xx and the connection stays up.
//! - Connections are admitted through one `cpim_listen::CappedListener` gate shared by
//!   the TCP and TLS listeners: at most `max_connections_per_source` per source address
//!   (IPv6: per /64) and `max_connections` in all; past a cap the connection is closed
//!   at once, unanswered. Accept errors for lack of descriptors back off instead of
//!   spinning. A TLS handshake must finish within [`TLS_HANDSHAKE_TIMEOUT`].
//! - Deadlines that trickled bytes do not move: each message (head and body) must be
//!   complete `message_timeout` after its first byte, or the connection is closed; an
//!   idle connection (nothing pending) is closed after `idle_timeout`.
//! - One connection cannot starve the others: each read takes what fits in the
//!   connection's buffer (8 KiB spare, more only after a large message), and the reader
//!   yields to the scheduler after [`READ_BUDGET`] messages in a row.
//! - Malformed requests are answered here (status from
//!   [`crate::codec::ParseError::error_response_code`], reason naming the problem) and
//!   never reach the transaction layer; malformed responses are dropped.
//! - Every stream connection has a [`Connection`] (an id never reused, and for TLS the
//!   domains the peer's client certificate proves, RFC 5922) carried with each message it
//!   delivers ([`peer`]).
//! - [`resolve`]: RFC 3263 target selection with a static override table.

pub mod peer;
pub mod resolve;
mod stream;
pub mod tls;

pub use peer::Connection;
pub use tls::{tls_acceptor_from_pem, tls_connector_from_pem};

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cpim_core::connlimit::{ConnGate, ConnLimits};
use cpim_listen::{CappedListener, ConnPermit};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::codec::framing::Limits;
use crate::codec::{error_response_for, ParseError, SipMessage};
use peer::PeerTrust;
use stream::{Item, StreamReader};

/// Messages a connection's reader hands on in a row before it yields to the scheduler.
pub const READ_BUDGET: usize = 32;

/// How long an incoming TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Stream connection settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamSettings {
    /// Size limits of a message.
    pub limits: Limits,
    /// A connection with nothing pending is closed after this long.
    pub idle_timeout: Duration,
    /// A message must be complete this long after its first byte.
    pub message_timeout: Duration,
    /// Caps on incoming connections (TCP and TLS together).
    pub conn_limits: ConnLimits,
}

/// A SIP transport.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (unreliable: transactions retransmit).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// The Via token (`UDP`, `TCP`, `TLS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The lower-case token of flow identifiers and configuration (`udp`, `tcp`, `tls`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// True for stream transports.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// 5060, or 5061 for TLS.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }

    /// Parses a Via transport or `transport=` URI parameter (case-insensitive).
    pub fn from_token(s: &str) -> Option<Transport> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else if s.eq_ignore_ascii_case("tls") {
            Some(Transport::Tls)
        } else {
            None
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Transport {
    type Err = BadFlow;
    /// Parses a transport token in any case (`udp`, `TCP`, `tls`).
    fn from_str(s: &str) -> Result<Transport, BadFlow> {
        Transport::from_token(s).ok_or_else(|| BadFlow(s.to_owned()))
    }
}

/// A flow (RFC 5626 s3): the transport and the peer's address a request arrived on and a
/// response or later request goes back over. Written `udp:192.0.2.1:5060` or
/// `tcp:[2001:db8::1]:5060`, the form bindings and dialogs are persisted in; parsing accepts
/// what [`Display`](fmt::Display) writes, with the transport token in any case. Flow trust
/// is further bound to the stream's connection id, carried beside the flow by the
/// transaction user's `Source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The transport.
    pub transport: Transport,
    /// The peer's address.
    pub remote: SocketAddr,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.name(), self.remote)
    }
}

impl std::str::FromStr for Flow {
    type Err = BadFlow;
    fn from_str(s: &str) -> Result<Flow, BadFlow> {
        let bad = || BadFlow(s.to_owned());
        let (t, addr) = s.split_once(':').ok_or_else(bad)?;
        Ok(Flow {
            transport: Transport::from_token(t).ok_or_else(bad)?,
            remote: addr.parse().map_err(|_| bad())?,
        })
    }
}

/// A flow or transport token that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad flow {0:?}")]
pub struct BadFlow(pub String);

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Socket error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// TLS configuration problem.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// An error of the TLS library, a PEM file or a handshake, with what was being done.
    #[error("TLS {what}: {source}")]
    TlsSetup {
        /// What was being done (`"certificate"`, `"handshake"`, ...).
        what: &'static str,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No listener for this transport.
    #[error("no {0} transport configured")]
    NotConfigured(Transport),
    /// Could not connect.
    #[error("cannot connect to {0}")]
    Connect(SocketAddr),
}

impl TransportError {
    /// Wraps an error of the TLS library, a PEM file or a handshake: `map_err(TransportError::tls("certificate"))`.
    pub(crate) fn tls<E: std::error::Error + Send + Sync + 'static>(
        what: &'static str,
    ) -> impl FnOnce(E) -> TransportError {
        move |e| TransportError::TlsSetup {
            what,
            source: Box::new(e),
        }
    }
}

/// A message received and parsed by a transport task.
#[derive(Debug)]
pub(crate) struct Received {
    pub msg: SipMessage,
    pub source: SocketAddr,
    pub transport: Transport,
    /// The stream connection it came over (`None` for UDP).
    pub conn: Option<Arc<Connection>>,
}

/// Events from transport tasks to the endpoint.
#[derive(Debug)]
pub(crate) enum TransportEvent {
    Message(Received),
    ConnectFailed {
        transport: Transport,
        addr: SocketAddr,
    },
}

/// Open stream connections by (transport, peer address): the writer queue of each.
pub(crate) type ConnTable = HashMap<(Transport, SocketAddr), mpsc::Sender<Bytes>>;

/// Shared state of the transports.
pub(crate) struct Transports {
    pub udp: Vec<Arc<UdpSocket>>,
    pub local: Vec<(Transport, SocketAddr)>,
    pub conns: Arc<Mutex<ConnTable>>,
    pub limits: Limits,
    pub settings: StreamSettings,
    pub gate: ConnGate,
    pub tls_connector: Option<tokio_rustls::TlsConnector>,
    /// Judges TLS client certificates (RFC 5922); `None`: no name is ever verified.
    pub(crate) peer_trust: Option<Arc<PeerTrust>>,
    /// The next [`Connection::id`].
    next_conn: AtomicU64,
    pub events: mpsc::Sender<TransportEvent>,
}

impl fmt::Debug for Transports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transports")
            .field("local", &self.local)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Parses one datagram or framed message; answers a malformed request through `reply`.
fn parse_and_answer(
    data: Bytes,
    framed: bool,
    limits: &Limits,
) -> Result<SipMessage, (ParseError, Option<Bytes>)> {
    let parsed = if framed {
        SipMessage::parse_framed(data.clone())
    } else {
        SipMessage::parse(data.clone())
    };
    match parsed {
        Ok(msg) => {
            if msg.parts().body().len() > limits.max_body {
                let e = ParseError::BodyTooLarge {
                    size: msg.parts().body().len(),
                    limit: limits.max_body,
                };
                let resp = match msg {
                    SipMessage::Request(_) => error_response_for(&data, &e),
                    SipMessage::Response(_) => None,
                };
                return Err((e, resp));
            }
            Ok(msg)
        }
        Err(e) => {
            let resp = error_response_for(&data, &e);
            Err((e, resp))
        }
    }
}

impl Transports {
    /// Binds every configured listener and spawns the receive tasks.
    #[allow(clippy::too_many_arguments)]
    pub async fn bind(
        udp: &[SocketAddr],
        tcp: &[SocketAddr],
        tls: &[SocketAddr],
        tls_acceptor: Option<tokio_rustls::TlsAcceptor>,
        tls_connector: Option<tokio_rustls::TlsConnector>,
        peer_trust: Option<Arc<PeerTrust>>,
        settings: StreamSettings,
        udp_buffer_bytes: usize,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<Arc<Transports>, TransportError> {
        let mut sockets = Vec::new();
        let mut local = Vec::new();
        for a in udp {
            let s = bind_udp(*a, udp_buffer_bytes)?;
            local.push((Transport::Udp, s.local_addr()?));
            sockets.push(Arc::new(s));
        }
        let mut tcp_listeners = Vec::new();
        for a in tcp {
            let l = TcpListener::bind(a).await?;
            local.push((Transport::Tcp, l.local_addr()?));
            tcp_listeners.push(l);
        }
        let mut tls_listeners = Vec::new();
        if !tls.is_empty() && tls_acceptor.is_none() {
            return Err(TransportError::Tls(
                "TLS listener without certificate".into(),
            ));
        }
        for a in tls {
            let l = TcpListener::bind(a).await?;
            local.push((Transport::Tls, l.local_addr()?));
            tls_listeners.push(l);
        }
        let t = Arc::new(Transports {
            udp: sockets,
            local,
            conns: Arc::new(Mutex::new(HashMap::new())),
            limits: settings.limits,
            settings,
            gate: ConnGate::new(settings.conn_limits),
            tls_connector,
            peer_trust,
            next_conn: AtomicU64::new(1),
            events,
        });
        for s in &t.udp {
            tokio::spawn(udp_loop(s.clone(), t.clone()));
        }
        for l in tcp_listeners {
            let t2 = t.clone();
            let mut l = CappedListener::with_gate(l, t.gate.clone(), "sip-tcp");
            tokio::spawn(async move {
                loop {
                    let (stream, peer, permit) = l.accept().await;
                    let _ = stream.set_nodelay(true);
                    t2.clone()
                        .start_conn(Transport::Tcp, peer, stream, Some(permit), Vec::new());
                }
            });
        }
        if let Some(acceptor) = tls_acceptor {
            for l in tls_listeners {
                let t2 = t.clone();
                let acceptor = acceptor.clone();
                let mut l = CappedListener::with_gate(l, t.gate.clone(), "sip-tls");
                tokio::spawn(async move {
                    loop {
                        let (stream, peer, permit) = l.accept().await;
                        let _ = stream.set_nodelay(true);
                        let acceptor = acceptor.clone();
                        let t3 = t2.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(
                                TLS_HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(tls)) => {
                                    let names = t3.certified_names(&tls);
                                    t3.start_conn(Transport::Tls, peer, tls, Some(permit), names)
                                }
                                _ => tracing::debug!(%peer, "TLS handshake failed"),
                            }
                        });
                    }
                });
            }
        }
        Ok(t)
    }

    /// The local address of the first listener of `transport`.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.local
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// The domains an accepted TLS peer's client certificate proves (RFC 5922 s7.1).
    fn certified_names(&self, tls: &tokio_rustls::server::TlsStream<TcpStream>) -> Vec<String> {
        match (&self.peer_trust, tls.get_ref().1.peer_certificates()) {
            (Some(trust), Some(chain)) => {
                trust.verified_names(chain, rustls::pki_types::UnixTime::now())
            }
            _ => Vec::new(),
        }
    }

    /// Registers a connection under a fresh [`Connection::id`] and spawns its reader and
    /// writer; an incoming connection holds its `permit` (its slot under the connection
    /// caps) until the reader ends. `verified_names`: what the peer's certificate proved.
    fn start_conn<S>(
        self: Arc<Self>,
        transport: Transport,
        peer: SocketAddr,
        stream: S,
        permit: Option<ConnPermit>,
        verified_names: Vec<String>,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let conn = Arc::new(Connection {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            verified_names,
        });
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((transport, peer), tx.clone());
        let (rd, wr) = tokio::io::split(stream);
        tokio::spawn(writer_loop(wr, rx));
        tokio::spawn(async move {
            self.reader_loop(transport, peer, conn, rd, tx).await;
            drop(permit);
        });
    }

    async fn reader_loop<R: AsyncRead + Unpin>(
        self: Arc<Self>,
        transport: Transport,
        peer: SocketAddr,
        conn: Arc<Connection>,
        mut rd: R,
        tx: mpsc::Sender<Bytes>,
    ) {
        let s = self.settings;
        let mut reader = StreamReader::new(s.limits, s.message_timeout);
        let mut handled = 0usize;
        'conn: loop {
            // frame as many messages as the buffer holds
            while let Some(item) = reader.next(now()) {
                match item {
                    Item::Ping => {
                        // RFC 5626 s3.5.1: answer a double-CRLF ping with a single CRLF
                        let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                    }
                    Item::Message(data) => {
                        handled += 1;
                        if handled >= READ_BUDGET {
                            // let the other connections' readers run
                            handled = 0;
                            tokio::task::yield_now().await;
                        }
                        match parse_and_answer(data, true, &self.limits) {
                            Ok(msg) => {
                                let ev = TransportEvent::Message(Received {
                                    msg,
                                    source: peer,
                                    transport,
                                    conn: Some(conn.clone()),
                                });
                                if self.events.send(ev).await.is_err() {
                                    break 'conn;
                                }
                            }
                            Err((e, resp)) => {
                                tracing::debug!(%peer, error = %e, "malformed message on stream");
                                if let Some(r) = resp {
                                    let _ = tx.send(r).await;
                                }
                            }
                        }
                    }
                    Item::Fatal(e) => {
                        // cannot resynchronise: answer (if it is a request) and close
                        tracing::debug!(%peer, error = %e, "stream framing error");
                        let pe = e.to_parse_error();
                        if let Some(r) = error_response_for(reader.buffered(), &pe) {
                            let _ = tx.send(r).await;
                        }
                        break 'conn;
                    }
                }
            }
            let idle = tokio::time::Instant::now() + s.idle_timeout;
            let until = match reader.deadline() {
                Some(d) => tokio::time::Instant::from_std(d).min(idle),
                None => idle,
            };
            match tokio::time::timeout_at(until, rd.read_buf(reader.buffer_mut())).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => reader.received(now()),
                Err(_) => {
                    if reader.deadline().is_some() {
                        tracing::debug!(%peer, "message not complete within its deadline; closing");
                    }
                    break;
                }
            }
        }
        let mut map = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if map
            .get(&(transport, peer))
            .is_some_and(|s| s.same_channel(&tx))
        {
            map.remove(&(transport, peer));
        }
        // dropping `tx` (and the table entry) ends the writer, which shuts the stream down
    }

    /// Sends `data` to `addr` over `transport`; stream transports reuse a connection to
    /// that peer or open one (`server_name` for TLS).
    pub fn send(
        self: &Arc<Self>,
        transport: Transport,
        addr: SocketAddr,
        server_name: Option<Arc<str>>,
        data: Bytes,
    ) {
        match transport {
            Transport::Udp => {
                // `local` lists the UDP sockets first, in the order of `udp`
                let sock = self
                    .udp
                    .iter()
                    .zip(&self.local)
                    .find(|(_, (_, l))| l.is_ipv4() == addr.is_ipv4())
                    .map(|(s, _)| s)
                    .or_else(|| self.udp.first())
                    .cloned();
                if let Some(s) = sock {
                    if let Err(e) = s.try_send_to(&data, addr) {
                        // socket buffer full: fall back to an awaited send
                        let s2 = s.clone();
                        if e.kind() == std::io::ErrorKind::WouldBlock {
                            tokio::spawn(async move {
                                let _ = s2.send_to(&data, addr).await;
                            });
                        } else {
                            tracing::debug!(%addr, error = %e, "UDP send failed");
                        }
                    }
                }
            }
            Transport::Tcp | Transport::Tls => {
                let existing = self
                    .conns
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&(transport, addr))
                    .cloned();
                if let Some(tx) = existing {
                    match tx.try_send(data) {
                        Ok(()) => return,
                        Err(mpsc::error::TrySendError::Full(data)) => {
                            // writer busy: queue behind it rather than open a second connection
                            tokio::spawn(async move {
                                let _ = tx.send(data).await;
                            });
                            return;
                        }
                        Err(mpsc::error::TrySendError::Closed(d)) => {
                            // connection gone: reconnect below
                            return self.reconnect_and_send(transport, addr, server_name, d);
                        }
                    }
                }
                self.reconnect_and_send(transport, addr, server_name, data);
            }
        }
    }

    /// Opens a connection (in a task) and sends `data` over it; a failure is reported as
    /// [`TransportEvent::ConnectFailed`] so pending client transactions fail fast.
    fn reconnect_and_send(
        self: &Arc<Self>,
        transport: Transport,
        addr: SocketAddr,
        server_name: Option<Arc<str>>,
        data: Bytes,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            match me.connect(transport, addr, server_name).await {
                Ok(tx) => {
                    let _ = tx.send(data).await;
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "connect failed");
                    let _ = me
                        .events
                        .send(TransportEvent::ConnectFailed { transport, addr })
                        .await;
                }
            }
        });
    }

    async fn connect(
        self: &Arc<Self>,
        transport: Transport,
        addr: SocketAddr,
        server_name: Option<Arc<str>>,
    ) -> Result<mpsc::Sender<Bytes>, TransportError> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| TransportError::Connect(addr))??;
        let _ = stream.set_nodelay(true);
        match transport {
            Transport::Tcp => {
                self.clone()
                    .start_conn(Transport::Tcp, addr, stream, None, Vec::new());
            }
            Transport::Tls => {
                let connector = self
                    .tls_connector
                    .clone()
                    .ok_or(TransportError::NotConfigured(Transport::Tls))?;
                let name = match server_name {
                    Some(n) => rustls::pki_types::ServerName::try_from(n.to_string())
                        .map_err(TransportError::tls("server name"))?,
                    None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
                };
                let tls =
                    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, stream))
                        .await
                        .map_err(|_| TransportError::Connect(addr))?
                        .map_err(TransportError::tls("handshake"))?;
                self.clone()
                    .start_conn(Transport::Tls, addr, tls, None, Vec::new());
            }
            Transport::Udp => return Err(TransportError::NotConfigured(Transport::Udp)),
        }
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(transport, addr))
            .cloned()
            .ok_or(TransportError::Connect(addr))
    }
}

async fn writer_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(b) = rx.recv().await {
        if wr.write_all(&b).await.is_err() {
            break;
        }
        // batch whatever is already queued before flushing
        while let Ok(b) = rx.try_recv() {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        if wr.flush().await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A UDP socket on `addr`, asking for `buffer` bytes of SO_RCVBUF/SO_SNDBUF (0: the
/// kernel default). The kernel may grant less (capped by `net.core.rmem_max`); that is
/// not an error.
fn bind_udp(addr: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if buffer > 0 {
        if let Err(e) = s.set_recv_buffer_size(buffer) {
            tracing::warn!(%addr, error = %e, "SO_RCVBUF not set");
        }
        if let Err(e) = s.set_send_buffer_size(buffer) {
            tracing::warn!(%addr, error = %e, "SO_SNDBUF not set");
        }
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

async fn udp_loop(sock: Arc<UdpSocket>, t: Arc<Transports>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, source) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => continue, // ICMP errors surface here on some systems
        };
        let data = &buf[..n];
        // keep-alive CRLFs (RFC 5626 s4.4.1 uses STUN on UDP; bare CRLF is just ignored)
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let data = Bytes::copy_from_slice(data);
        match parse_and_answer(data, false, &t.limits) {
            Ok(msg) => {
                let ev = TransportEvent::Message(Received {
                    msg,
                    source,
                    transport: Transport::Udp,
                    conn: None,
                });
                if t.events.send(ev).await.is_err() {
                    return;
                }
            }
            Err((e, resp)) => {
                tracing::debug!(%source, error = %e, "malformed datagram");
                if let Some(r) = resp {
                    let _ = sock.send_to(&r, source).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_text_round_trips() {
        for text in [
            "udp:192.0.2.1:5060",
            "tcp:[2001:db8::1]:5060",
            "tls:127.0.0.1:5061",
        ] {
            let flow: Flow = text.parse().unwrap();
            assert_eq!(flow.to_string(), text);
        }
        let flow: Flow = "TLS:127.0.0.1:5061".parse().unwrap();
        assert_eq!(flow.transport, Transport::Tls);
        assert!("sctp:127.0.0.1:5060".parse::<Flow>().is_err());
        assert!("udp:nowhere".parse::<Flow>().is_err());
        assert_eq!("Tcp".parse::<Transport>(), Ok(Transport::Tcp));
    }
}

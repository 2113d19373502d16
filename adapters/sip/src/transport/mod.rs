//! SIP transports (RFC 3261 s18): a thin tokio layer.
//!
//! - UDP: one socket per listen address; each datagram is parsed by the receive task.
//! - TCP and TLS (rustls, `ring` provider): a listener per address, one reader and one
//!   writer task per connection; the reader frames by Content-Length
//!   ([`crate::codec::framing`]) within size limits. A framing failure (bad or negative
//!   Content-Length, head or body over the limit) is answered and the connection closed
//!   (RFC 4475 s3.1.2.3); a message that frames but does not parse is answered with its
//!   4xx and the connection stays up.
//! - Malformed requests are answered here (status from
//!   [`crate::codec::ParseError::error_response_code`], reason naming the problem) and
//!   never reach the transaction layer; malformed responses are dropped.
//! - [`resolve`]: RFC 3263 target selection with a static override table.

pub mod resolve;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::codec::framing::{Frame, Framer, Limits};
use crate::codec::{error_response_for, ParseError, SipMessage};

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
    /// No listener for this transport.
    #[error("no {0} transport configured")]
    NotConfigured(Transport),
    /// Could not connect.
    #[error("cannot connect to {0}")]
    Connect(SocketAddr),
}

/// A message received and parsed by a transport task.
#[derive(Debug)]
pub(crate) struct Received {
    pub msg: SipMessage,
    pub source: SocketAddr,
    pub transport: Transport,
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
    pub idle_timeout: Duration,
    pub tls_connector: Option<tokio_rustls::TlsConnector>,
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
        limits: Limits,
        idle_timeout: Duration,
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
            limits,
            idle_timeout,
            tls_connector,
            events,
        });
        for s in &t.udp {
            tokio::spawn(udp_loop(s.clone(), t.clone()));
        }
        for l in tcp_listeners {
            let t2 = t.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, peer)) = l.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    t2.clone().start_conn(Transport::Tcp, peer, stream);
                }
            });
        }
        if let Some(acceptor) = tls_acceptor {
            for l in tls_listeners {
                let t2 = t.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok((stream, peer)) = l.accept().await else {
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let acceptor = acceptor.clone();
                        let t3 = t2.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(
                                Duration::from_secs(10),
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(tls)) => t3.start_conn(Transport::Tls, peer, tls),
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

    /// Registers a connection and spawns its reader and writer.
    fn start_conn<S>(self: Arc<Self>, transport: Transport, peer: SocketAddr, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((transport, peer), tx.clone());
        let (rd, wr) = tokio::io::split(stream);
        tokio::spawn(writer_loop(wr, rx));
        tokio::spawn(self.reader_loop(transport, peer, rd, tx));
    }

    async fn reader_loop<R: AsyncRead + Unpin>(
        self: Arc<Self>,
        transport: Transport,
        peer: SocketAddr,
        mut rd: R,
        tx: mpsc::Sender<Bytes>,
    ) {
        let mut buf = BytesMut::with_capacity(8192);
        let mut framer = Framer::new(self.limits);
        'conn: loop {
            // frame as many messages as the buffer holds
            loop {
                match framer.frame(&buf) {
                    Ok(Frame::Incomplete) => break,
                    Ok(Frame::KeepAlive(n)) => {
                        let _ = buf.split_to(n);
                        // RFC 5626 s3.5.1: answer a double-CRLF ping with a single CRLF
                        if n >= 4 {
                            let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                        }
                    }
                    Ok(Frame::Message { len }) => {
                        let data = buf.split_to(len).freeze();
                        match parse_and_answer(data, true, &self.limits) {
                            Ok(msg) => {
                                let ev = TransportEvent::Message(Received {
                                    msg,
                                    source: peer,
                                    transport,
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
                    Err(e) => {
                        // cannot resynchronise: answer (if it is a request) and close
                        tracing::debug!(%peer, error = %e, "stream framing error");
                        let pe = e.to_parse_error();
                        if let Some(r) = error_response_for(&buf, &pe) {
                            let _ = tx.send(r).await;
                        }
                        break 'conn;
                    }
                }
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(8192);
            }
            match tokio::time::timeout(self.idle_timeout, rd.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
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
                self.clone().start_conn(Transport::Tcp, addr, stream);
            }
            Transport::Tls => {
                let connector = self
                    .tls_connector
                    .clone()
                    .ok_or(TransportError::NotConfigured(Transport::Tls))?;
                let name = match server_name {
                    Some(n) => rustls::pki_types::ServerName::try_from(n.to_string())
                        .map_err(|e| TransportError::Tls(e.to_string()))?,
                    None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
                };
                let tls =
                    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, stream))
                        .await
                        .map_err(|_| TransportError::Connect(addr))?
                        .map_err(|e| TransportError::Tls(e.to_string()))?;
                self.clone().start_conn(Transport::Tls, addr, tls);
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

/// Builds a TLS acceptor from PEM certificate chain and key files (ring provider).
pub fn tls_acceptor_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<tokio_rustls::TlsAcceptor, TransportError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| TransportError::Tls(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TransportError::Tls("no certificate in PEM".into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| TransportError::Tls(format!("key: {e}")))?
        .ok_or_else(|| TransportError::Tls("no private key in PEM".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Builds a TLS connector trusting the certificates in `ca_pem` (ring provider).
pub fn tls_connector_from_pem(ca_pem: &[u8]) -> Result<tokio_rustls::TlsConnector, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
        let c = c.map_err(|e| TransportError::Tls(format!("CA certificate: {e}")))?;
        roots
            .add(c)
            .map_err(|e| TransportError::Tls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

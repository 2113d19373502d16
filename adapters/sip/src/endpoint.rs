//! The SIP endpoint: the tokio layer tying transports and transactions together and giving
//! the transaction user (the application layer) a small API.
//!
//! One task owns the sans-IO [`TransactionLayer`]; transport tasks parse what they receive
//! (malformed requests are answered there and never get further) and hand messages to it.
//! New requests pass the UAS checks of RFC 3261 s8.2 ([`Policy`]: 405/501 with Allow, 416,
//! 420 with Unsupported) and then go to the TU's [`RequestSink`]; the TU answers
//! through [`IncomingRequest::respond`]. Retransmissions are absorbed by the transaction
//! layer: the TU sees each request once and the last response is re-sent. Server
//! transactions are capped (`max_server_transactions`, stateless 503 past it) and a
//! refusal (401, 403, a rate-limit 503, ...) ends its transaction at once, leaving only
//! a bounded compact record of its answer ([`crate::transaction::stateless`]).
//!
//! Outgoing requests go through [`Endpoint::send_request`]: the endpoint resolves the
//! target (RFC 3263 with static overrides, or an explicit address), adds its Via with a
//! fresh branch and `rport`, moves requests over 1300 bytes from UDP to TCP (RFC 3261
//! s18.1.1, RFC 3428 s7) and resolves the future with the final response, or with
//! [`SendError::Timeout`] (408) when timer F fires. On a transport failure or a 503 it
//! fails over to the next RFC 3263 target (s4.3). A request whose Request-URI is `sips:`
//! goes over TLS only (RFC 3261 s26.2.2, RFC 5630 s3.1.3): another transport is refused
//! with [`SendError::Invalid`] before anything is sent; a `sips:` request received over
//! UDP or TCP is answered 416 (RFC 3261 s26.2.2, `peer::sips_over_insecure`).
//! Each incoming request carries its [`Connection`] (id, and the domains a TLS client
//! certificate proved, RFC 5922); outgoing TLS presents the listener's certificate.
//!
//! TLS by default: the default configuration listens for TLS on 127.0.0.1:5061. Without
//! `tls_cert`/`tls_key` the endpoint makes a self-signed certificate in memory (the
//! gateway instead keeps one in its store folder, made by [`crate::transport::tls::self_signed`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::codec::framing::Limits;
use crate::codec::{
    new_branch, HeaderName, Method, Policy, Request, Response, Scheme, SipMessage, Uri,
};
use crate::transaction::{LayerEvent, ServerLimits, Timers, TransactionLayer, TxId, TxStats};
use crate::transport::peer;
use crate::transport::resolve::{ResolveError, ResolvedTarget, Resolver};
use crate::transport::{
    Connection, Received, StreamSettings, Transport, TransportError, TransportEvent, Transports,
};
use cpim_core::connlimit::ConnLimits;

mod config;
pub use config::EndpointConfig;

/// Errors setting the endpoint up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// A transport could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A configured file could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The endpoint task has stopped.
    #[error("endpoint stopped")]
    Stopped,
}

/// Why [`Endpoint::send_request`] produced no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Timer F fired (RFC 3261 s17.1.2.2): report as 408.
    #[error("no final response before timer F (Request Timeout)")]
    Timeout,
    /// No target could be determined (RFC 3263).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The transport failed (connection refused, ...).
    #[error("transport failure toward {0}")]
    Transport(SocketAddr),
    /// The request has no usable Request-URI or is otherwise unsendable.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The endpoint task has stopped.
    #[error("endpoint stopped")]
    Stopped,
}

impl SendError {
    /// The SIP status the TU should treat this as (408 for timeouts, 503 otherwise,
    /// RFC 3261 s8.1.3.1; 400 for an invalid request).
    pub fn status_code(&self) -> u16 {
        match self {
            SendError::Timeout => 408,
            SendError::Invalid(_) => 400,
            _ => 503,
        }
    }
}

/// Where to send a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Resolve this URI per RFC 3263 (static overrides first).
    Uri(String),
    /// Send to this address over this transport.
    Addr(Transport, SocketAddr),
}

/// Where a transaction's output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dest {
    transport: Transport,
    addr: SocketAddr,
    server_name: Option<Arc<str>>,
    /// The connection a request came over (`None` for UDP and outgoing requests).
    conn: Option<Arc<Connection>>,
}

#[derive(Debug)]
enum Command {
    Respond {
        id: TxId,
        response: Response,
    },
    Send {
        request: Request,
        dest: Dest,
        reply: oneshot::Sender<Result<Response, SendError>>,
    },
}

/// A handle to answer one server transaction; cheap to clone and `Send`.
#[derive(Clone, Debug)]
pub struct Responder {
    id: TxId,
    cmd: mpsc::UnboundedSender<Command>,
}

impl Responder {
    /// Sends a provisional or final response through the transaction (which re-sends it
    /// on request retransmissions). Build it with [`Response::for_request`].
    pub fn respond(&self, response: Response) -> Result<(), EndpointError> {
        self.cmd
            .send(Command::Respond {
                id: self.id,
                response,
            })
            .map_err(|_| EndpointError::Stopped)
    }
}

/// A new request for the TU.
#[derive(Debug)]
pub struct IncomingRequest {
    /// The request (top Via already carries `received`/`rport`, RFC 3581).
    pub request: Request,
    /// Source address.
    pub source: SocketAddr,
    /// Transport it came over.
    pub transport: Transport,
    /// The stream connection it came over (`None` for UDP): its id and the domains a TLS
    /// peer's certificate proved.
    pub connection: Option<Arc<Connection>>,
    /// Handle to answer it.
    pub responder: Responder,
}

impl IncomingRequest {
    /// Answers the request (see [`Responder::respond`]).
    pub fn respond(&self, response: Response) -> Result<(), EndpointError> {
        self.responder.respond(response)
    }

    /// Answers with `code` and the default reason, built per RFC 3261 s8.2.6.
    pub fn respond_code(&self, code: u16) -> Result<(), EndpointError> {
        let r = Response::for_request(&self.request, code, None)
            .build_response()
            .map_err(|_| EndpointError::Stopped)?;
        self.respond(r)
    }
}

/// Where the endpoint task hands each new request, synchronously and without waiting:
/// the TU's own dispatcher (the SIP adapter starts one task per request from here, so a
/// request crosses one channel, transport to endpoint, on its way in) or the queue of
/// [`IncomingRequests`] (tests and tools).
pub trait RequestSink: Send + 'static {
    /// Takes the request, or gives it back when it cannot take more (full, stopping):
    /// the endpoint then answers 503 with Retry-After. The request comes back by value,
    /// as `mpsc::Sender::try_send` gives it: boxing it would allocate on every refusal.
    #[allow(clippy::result_large_err)]
    fn offer(&mut self, request: IncomingRequest) -> Result<(), IncomingRequest>;
}

impl RequestSink for mpsc::Sender<IncomingRequest> {
    fn offer(&mut self, request: IncomingRequest) -> Result<(), IncomingRequest> {
        self.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
        })
    }
}

/// The queue of new requests, for a TU that pulls them ([`Endpoint::bind`]).
#[derive(Debug)]
pub struct IncomingRequests {
    rx: mpsc::Receiver<IncomingRequest>,
}

impl IncomingRequests {
    /// Next request; `None` once the endpoint has stopped.
    pub async fn recv(&mut self) -> Option<IncomingRequest> {
        self.rx.recv().await
    }
}

#[derive(Debug)]
struct Inner {
    cmd: mpsc::UnboundedSender<Command>,
    transports: Arc<Transports>,
    resolver: Resolver,
    config: EndpointConfig,
    stats: Arc<TxStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The SIP endpoint (cheap to clone).
#[derive(Clone, Debug)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, EndpointError> {
    std::fs::read(path).map_err(|source| EndpointError::File {
        path: path.clone(),
        source,
    })
}

impl Endpoint {
    /// Binds the configured listeners and starts the endpoint task; new requests queue
    /// (at most `tu_queue`) in the returned [`IncomingRequests`].
    pub async fn bind(
        config: EndpointConfig,
    ) -> Result<(Endpoint, IncomingRequests), EndpointError> {
        let (tx, rx) = mpsc::channel(config.tu_queue.max(1));
        let endpoint = Endpoint::bind_to(config, tx).await?;
        Ok((endpoint, IncomingRequests { rx }))
    }

    /// Binds the configured listeners and starts the endpoint task, which offers each new
    /// request to `sink`.
    pub async fn bind_to(
        config: EndpointConfig,
        sink: impl RequestSink,
    ) -> Result<Endpoint, EndpointError> {
        // the listener's certificate (PEM), also the client certificate of outgoing TLS
        let identity: Option<(Vec<u8>, Vec<u8>)> = match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            (Some(_), None) | (None, Some(_)) => {
                return Err(TransportError::Tls("tls_cert and tls_key go together".into()).into())
            }
            _ if !config.tls.is_empty() => {
                let mut names: Vec<String> = config.advertised_host.iter().cloned().collect();
                names.push("localhost".into());
                names.extend(config.tls.iter().map(|a| a.ip().to_string()));
                tracing::warn!("SIP TLS listener without tls_cert/tls_key: using a self-signed certificate made for this run");
                let (c, k) = crate::transport::tls::self_signed(&names)?;
                Some((c.into_bytes(), k.into_bytes()))
            }
            _ => None,
        };
        // outgoing TLS and client certificates: the system trust store plus `tls_ca`
        let ca = match &config.tls_ca {
            Some(ca) => read(ca)?,
            None => Vec::new(),
        };
        let (acceptor, connector, peer_trust) =
            crate::transport::tls::endpoint_tls(identity.as_ref(), &ca)?;
        let limits = Limits {
            max_head: config.max_head_bytes,
            max_body: config.max_body_bytes,
        };
        let (ev_tx, ev_rx) = mpsc::channel(8192);
        let transports = Transports::bind(
            &config.udp,
            &config.tcp,
            &config.tls,
            acceptor,
            Some(connector),
            Some(peer_trust),
            StreamSettings {
                limits,
                idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
                message_timeout: Duration::from_secs(config.message_timeout_secs.max(1)),
                conn_limits: ConnLimits {
                    per_source: config.max_connections_per_source,
                    total: config.max_connections,
                },
            },
            config.udp_buffer_bytes,
            ev_tx,
        )
        .await?;
        let mut enabled: Vec<Transport> = transports.local.iter().map(|(t, _)| *t).collect();
        enabled.dedup();
        let resolver = Resolver::with_dns_servers(
            &config.static_targets,
            config.dns,
            &config.dns_servers,
            enabled,
        );
        let policy = Policy {
            allow: config.allow.iter().map(|m| Method::parse(m)).collect(),
            supported: config.supported.clone(),
            extra_schemes: config.extra_uri_schemes.clone(),
        };
        let timers = Timers {
            t1: Duration::from_millis(config.t1_ms.max(1)),
            t2: Duration::from_millis(config.t2_ms.max(1)),
            t4: Duration::from_millis(config.t4_ms),
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let mut layer = TransactionLayer::new(timers);
        layer.set_limits(ServerLimits {
            max_server_transactions: config.max_server_transactions.max(1),
            stateless_refusals: true,
        });
        let stats = layer.stats();
        let core = Core {
            layer,
            transports: transports.clone(),
            policy,
            tu: Box::new(sink),
            cmd_tx: cmd_tx.clone(),
            pending: HashMap::new(),
        };
        let task = tokio::spawn(core.run(ev_rx, cmd_rx));
        Ok(Endpoint {
            inner: Arc::new(Inner {
                cmd: cmd_tx,
                transports,
                resolver,
                config,
                stats,
                task,
            }),
        })
    }

    /// Counters of the server transactions (held now, peak, refused past the cap).
    pub fn transaction_stats(&self) -> Arc<TxStats> {
        Arc::clone(&self.inner.stats)
    }

    /// Bound listener addresses.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        self.inner.transports.local.clone()
    }

    /// The first bound address of `transport`.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.inner.transports.local_addr(transport)
    }

    /// `host:port` this endpoint advertises for `transport`.
    pub fn sent_by(&self, transport: Transport) -> Option<String> {
        let addr = self
            .local_addr(transport)
            .or_else(|| self.local_addr(Transport::Tcp))
            .or_else(|| self.local_addr(Transport::Udp))?;
        let host = match &self.inner.config.advertised_host {
            Some(h) => h.clone(),
            None if addr.is_ipv6() => format!("[{}]", addr.ip()),
            None => addr.ip().to_string(),
        };
        Some(format!("{host}:{}", addr.port()))
    }

    /// A Contact URI for this endpoint on `transport` (`sip:host:port;transport=tcp`).
    pub fn contact_uri(&self, transport: Transport) -> Option<String> {
        let sb = self.sent_by(transport)?;
        Some(match transport {
            Transport::Udp => format!("sip:{sb}"),
            Transport::Tcp => format!("sip:{sb};transport=tcp"),
            Transport::Tls => format!("sips:{sb}"),
        })
    }

    /// Resolves a URI per RFC 3263 (static overrides first).
    pub async fn resolve(&self, uri: &str) -> Result<Vec<ResolvedTarget>, SendError> {
        let u = Uri::parse(uri).map_err(|e| SendError::Invalid(e.to_string()))?;
        Ok(self.inner.resolver.resolve(&u).await?)
    }

    /// Sends a request and waits for its final response. Any Via in `request` is replaced
    /// by this endpoint's Via (fresh branch, `rport`).
    ///
    /// With [`Target::Uri`] the RFC 3263 targets are tried in order (RFC 3263 s4.3): a
    /// transport failure (connection refused or reset, TLS failure) or a 503 response
    /// (RFC 3261 s21.5.4) moves on to the next target, with a new client transaction
    /// (fresh branch, RFC 3261 s8.1.2). When every target failed the caller gets the last
    /// 503 response, or [`SendError::Transport`] (status 503) when none answered. A timer F
    /// timeout ends the attempt with [`SendError::Timeout`] (408) without trying further
    /// targets: one timer F already spends the 64*T1 budget of the transaction, so a
    /// second one would double the caller's wait. A dead UDP target therefore costs a
    /// timer F (ICMP port unreachable is not reported for unconnected UDP sockets); stream
    /// targets fail fast.
    pub async fn send_request(
        &self,
        request: Request,
        target: Target,
    ) -> Result<Response, SendError> {
        let targets: Vec<ResolvedTarget> = match target {
            Target::Addr(transport, addr) => vec![ResolvedTarget {
                transport,
                addr,
                server_name: None,
            }],
            Target::Uri(u) => {
                let list = self.resolve(&u).await?;
                if list.is_empty() {
                    return Err(SendError::Invalid(format!("no target for {u}")));
                }
                list
            }
        };
        let n = targets.len();
        let mut request = Some(request);
        let mut last: Option<Result<Response, SendError>> = None;
        for (i, t) in targets.into_iter().enumerate() {
            // keep a copy only while further targets remain
            let req = if i + 1 == n {
                request.take()
            } else {
                request.clone()
            };
            let Some(req) = req else { break };
            let result = self.send_once(req, t).await;
            match &result {
                Err(SendError::Transport(addr)) if i + 1 < n => {
                    tracing::debug!(%addr, "transport failure, trying next RFC 3263 target");
                }
                Ok(r) if r.code() == 503 && i + 1 < n => {
                    tracing::debug!("503 received, trying next RFC 3263 target");
                }
                _ => return result,
            }
            last = Some(result);
        }
        last.unwrap_or(Err(SendError::Stopped))
    }

    /// One client transaction toward one target.
    async fn send_once(
        &self,
        mut request: Request,
        target: ResolvedTarget,
    ) -> Result<Response, SendError> {
        let ResolvedTarget {
            mut transport,
            addr,
            server_name,
        } = target;
        if transport == Transport::Udp
            && request.to_bytes().len() + 96 > self.inner.config.udp_max_request_bytes
            && self.local_addr(Transport::Tcp).is_some()
        {
            transport = Transport::Tcp;
        }
        if transport != Transport::Tls && request.uri().is_ok_and(|u| u.scheme == Scheme::Sips) {
            return Err(SendError::Invalid(format!(
                "a sips: Request-URI is sent over TLS only (RFC 3261 s26.2.2), not {transport}"
            )));
        }
        let sent_by = self
            .sent_by(transport)
            .ok_or(SendError::Invalid(format!("no local {transport} address")))?;
        request.remove_headers(HeaderName::Via);
        request.prepend_header(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {sent_by};branch={};rport",
                transport.as_str(),
                new_branch()
            ),
        );
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmd
            .send(Command::Send {
                request,
                dest: Dest {
                    transport,
                    addr,
                    server_name: server_name.map(|s| s.into()),
                    conn: None,
                },
                reply: tx,
            })
            .map_err(|_| SendError::Stopped)?;
        rx.await.map_err(|_| SendError::Stopped)?
    }
}

struct Core {
    layer: TransactionLayer<Dest>,
    transports: Arc<Transports>,
    policy: Policy,
    tu: Box<dyn RequestSink>,
    cmd_tx: mpsc::UnboundedSender<Command>,
    pending: HashMap<TxId, (oneshot::Sender<Result<Response, SendError>>, Dest)>,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Core {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<TransportEvent>,
        mut cmds: mpsc::UnboundedReceiver<Command>,
    ) {
        loop {
            let deadline = self.layer.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(TransportEvent::Message(r)) => self.received(r),
                    Some(TransportEvent::ConnectFailed { transport, addr }) => {
                        let ids: Vec<TxId> = self
                            .pending
                            .iter()
                            .filter(|(_, (_, d))| d.transport == transport && d.addr == addr)
                            .map(|(id, _)| *id)
                            .collect();
                        for id in ids {
                            if let Some((reply, d)) = self.pending.remove(&id) {
                                let _ = reply.send(Err(SendError::Transport(d.addr)));
                            }
                            self.layer.transport_error(id);
                        }
                    }
                    None => break,
                },
                cmd = cmds.recv() => match cmd {
                    Some(Command::Respond { id, response }) => {
                        if let Err(e) = self.layer.respond_final(id, &response, now()) {
                            tracing::debug!(error = %e, "response not sent");
                        }
                    }
                    Some(Command::Send { request, dest, reply }) => {
                        let reliable = dest.transport.is_reliable();
                        match self.layer.send_request(&request, dest.clone(), reliable, now()) {
                            Ok(id) => {
                                self.pending.insert(id, (reply, dest));
                            }
                            Err(e) => {
                                let _ = reply.send(Err(SendError::Invalid(e.to_string())));
                            }
                        }
                    }
                    None => break,
                },
                _ = sleep => self.layer.handle_timeout(now()),
            }
            self.flush();
        }
    }

    fn flush(&mut self) {
        loop {
            let mut progress = false;
            while let Some((d, data)) = self.layer.poll_transmit() {
                progress = true;
                self.transports
                    .send(d.transport, d.addr, d.server_name.clone(), data);
            }
            while let Some(ev) = self.layer.poll_event() {
                progress = true;
                match ev {
                    LayerEvent::Request {
                        id,
                        request,
                        source,
                    } => self.dispatch(id, request, source),
                    LayerEvent::Response { id, response } => {
                        if response.code() >= 200 {
                            if let Some((reply, _)) = self.pending.remove(&id) {
                                let _ = reply.send(Ok(response));
                            }
                        }
                    }
                    LayerEvent::Timeout { id } => {
                        if let Some((reply, _)) = self.pending.remove(&id) {
                            let _ = reply.send(Err(SendError::Timeout));
                        }
                    }
                    LayerEvent::Terminated { id } => {
                        if let Some((reply, d)) = self.pending.remove(&id) {
                            let _ = reply.send(Err(SendError::Transport(d.addr)));
                        }
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn received(&mut self, r: Received) {
        match r.msg {
            SipMessage::Request(mut req) => {
                req.stamp_received(r.source);
                let dest = match r.transport {
                    Transport::Udp => {
                        // RFC 3261 s18.2.2 + RFC 3581 s4: with rport answer the source
                        // port, else the sent-by port at the received address
                        let port = match req.top_via() {
                            Some(v) if v.rport().is_some() => r.source.port(),
                            Some(v) => v.port.unwrap_or(5060),
                            None => r.source.port(),
                        };
                        SocketAddr::new(r.source.ip(), port)
                    }
                    _ => r.source,
                };
                let dest = Dest {
                    transport: r.transport,
                    addr: dest,
                    server_name: None,
                    conn: r.conn,
                };
                let reliable = r.transport.is_reliable();
                self.layer.handle_request(req, dest, reliable, now());
            }
            SipMessage::Response(resp) => {
                if self.layer.handle_response(resp, now()).is_none() {
                    tracing::debug!(source = %r.source, "stray response dropped");
                }
            }
        }
    }

    fn reject(
        &mut self,
        id: TxId,
        request: &Request,
        code: u16,
        reason: &str,
        headers: &[(HeaderName, String)],
    ) {
        // a function of the request (stateless_tag): a retransmission gets the same bytes
        let tag = crate::transaction::stateless_tag(request);
        let mut b = Response::for_request_tagged(request, code, Some(reason), Some(&tag));
        for (n, v) in headers {
            b = b.header(*n, v);
        }
        match b.build_response() {
            Ok(resp) => {
                let _ = self.layer.respond_final(id, &resp, now());
            }
            Err(e) => tracing::warn!(error = %e, "could not build error response"),
        }
    }

    fn dispatch(&mut self, id: TxId, request: Request, source: Dest) {
        if *request.method() == Method::Cancel {
            // no INVITE is ever pending here (RFC 3261 s9.2)
            self.reject(id, &request, 481, "Call/Transaction Does Not Exist", &[]);
            return;
        }
        if peer::sips_over_insecure(&request, source.transport) {
            self.reject(id, &request, 416, "SIPS Request-URI Needs TLS", &[]);
            return;
        }
        if let Err(rej) = self.policy.check(&request) {
            self.reject(id, &request, rej.code, &rej.reason, &rej.headers);
            return;
        }
        let incoming = IncomingRequest {
            request,
            source: source.addr,
            transport: source.transport,
            connection: source.conn,
            responder: Responder {
                id,
                cmd: self.cmd_tx.clone(),
            },
        };
        if let Err(inc) = self.tu.offer(incoming) {
            self.reject(
                id,
                &inc.request,
                503,
                "Service Unavailable (busy or stopping)",
                &[(HeaderName::RetryAfter, "1".to_string())],
            );
        }
    }
}

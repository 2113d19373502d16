//! The tokio layer of s2s mode: a hub task owning every s2s session (sans-IO
//! [`S2sOut`]/[`S2sIn`]), the delivery tracker and the queues, plus one dumb I/O task per
//! TCP connection that only moves bytes and performs the TLS handshake when told.
//!
//! Keeping all protocol state in one task matters for s2s: a ping sent on our outgoing
//! stream to a peer is answered on the peer's stream to us, and a dialback key received on
//! an incoming stream is verified on an outgoing one.
//!
//! Security (issue 10): a dialback verification is remembered with the incoming stream
//! that asked and the outgoing stream (to the claimed domain's authoritative server) it
//! was sent on; an answer counts only when it arrives on that outgoing stream about that
//! (stream id, from, to), anything else is ignored and logged (XEP-0220 s2.4, RFC 6120
//! s13). TLS is required by default and dialback runs only inside it
//! (`require_tls`, `allow_dialback_without_tls`); a remote domain that offered STARTTLS
//! once is never sent plaintext later; deliveries to a peer refused by policy fail with
//! 502 at once. Incoming streams get deadlines for their header and their
//! authentication; SASL EXTERNAL is offered for the domains the peer's TLS client
//! certificate is valid for ([`crate::tls::Trust`]), and our certificate is the client
//! certificate of outgoing streams. Reads reach the hub through a bounded channel (`net`).

use cpim_core::StatusCode;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::Ingress;
use cpim_core::model::{Outcome, Status, TransId};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;
use tracing::{info, warn};

use super::{sleep_until_opt, std_now, Command, Queued, Shared};
use crate::backoff::Backoff;
use crate::config::{Mode, XmppConfig};
use crate::element::Element;
use crate::error::XmppError;
use crate::ids::MessageIds;
use crate::mapping::{self, Origin};
use crate::ns;
use crate::s2s::{Liveness, S2sIn, S2sOut};
use crate::s2s_in::domain_of;
use crate::stream::Limits;
use crate::tracker::{DeliveryTracker, StanzaIds};

mod conn;
mod inbound;
mod net;
mod out;
mod resend;
mod verify;

use net::parse_dns_servers;
use verify::PendingVerify;

/// Remote domains remembered as having offered STARTTLS.
const MAX_TLS_PEERS: usize = 65_536;

enum IoCmd {
    Write(Vec<u8>),
    TlsClient(ServerName<'static>),
    /// Write these bytes (the `<proceed/>`), then accept TLS at once: no read may come
    /// in between, or the peer's ClientHello would be taken for stream data.
    TlsServer(Vec<u8>),
    Close,
}

enum IoEvent {
    Connected(u64, TcpStream),
    /// No connection could be made: the status the waiting deliveries get (see
    /// `Hub::ensure_out`) and why.
    ConnectFailed(u64, StatusCode, String),
    /// An admitted incoming connection and its slot under the connection caps.
    Accepted(TcpStream, SocketAddr, cpim_listen::ConnPermit),
    Data(u64, Vec<u8>),
    /// TLS is up; the certificate chain the peer presented, if any.
    TlsDone(u64, Option<Vec<CertificateDer<'static>>>),
    Closed(u64, String),
}

/// The reconnection state of one outgoing stream, from its first loss on.
struct Retry {
    backoff: Backoff,
    /// When to reconnect, if something waits for the stream.
    at: Option<TokioInstant>,
    /// When it was last seen up: a peer that was up within the delivery timeout and now
    /// refuses connections is restarting, and what waits for it may wait for the
    /// reconnection (until its deadline); any other unreachable peer fails it at once.
    last_up: Option<std::time::Instant>,
}

enum Session {
    Connecting,
    Out(Box<S2sOut>),
    In(Box<S2sIn>),
}

/// An outgoing stream is per (local domain, remote domain): each local domain gets its
/// own stream and its own dialback (simpler than XEP-0220 multiplexing, which not every
/// server accepts, and it keeps one authentication per stream).
type Pair = (String, String);

struct Conn {
    /// Outgoing streams: our domain on the stream header.
    local: Option<String>,
    remote: Option<String>,
    tx: Option<mpsc::UnboundedSender<IoCmd>>,
    session: Session,
    /// An outgoing stream that became ready: when it ends, its peer was up until then.
    was_ready: bool,
    /// XEP-0198, outgoing: (number of a delivery's last stanza, delivery key), oldest
    /// first, until the peer acknowledges that number (see `resend`).
    sm_log: VecDeque<(u32, u64)>,
}

/// A delivery written to a peer (or waiting to be written again), until its outcome.
struct Waiting {
    trans_id: TransId,
    reply: oneshot::Sender<Outcome>,
    deadline: TokioInstant,
    /// The stream it is written on; `None` while it waits in the queue to be resent.
    conn: Option<u64>,
    /// XEP-0198: its stanzas, kept until the peer acknowledges them so that they are
    /// resent with their ids if the stream ends first; `None` once acknowledged, and on
    /// a stream without stream management.
    unacked: Option<Vec<Element>>,
    /// XEP-0198: the peer acknowledged its stanzas.
    acked: bool,
}

#[allow(clippy::large_enum_variant)] // queued operations dominate anyway
enum Pending {
    Op(Queued),
    Raw(Element),
    /// A delivery (key of [`Hub::replies`]) its lost stream did not acknowledge.
    Resend(u64),
}

struct Hub {
    cfg: XmppConfig,
    domains: Vec<String>,
    local: String,
    secret: String,
    /// TLS before anything else on every stream: `require_tls`, or dialback refused
    /// without TLS (the only authentication possible without it).
    require_tls: bool,
    /// Remote domains that offered STARTTLS once: later streams to them require it, so
    /// a message that failed over TLS is never retried in plaintext.
    tls_peers: std::collections::HashSet<String>,
    overrides: std::collections::BTreeMap<String, String>,
    tls_server: Arc<ServerConfig>,
    tls_client: Arc<ClientConfig>,
    /// Judges peers' certificates (outgoing TLS and incoming SASL EXTERNAL).
    trust: Arc<crate::tls::Trust>,
    ingress: Arc<dyn Ingress>,
    shared: Arc<Shared>,
    io_tx: mpsc::Sender<IoEvent>,
    conns: HashMap<u64, Conn>,
    out_by_remote: HashMap<Pair, u64>,
    queues: HashMap<Pair, VecDeque<Pending>>,
    verify_queue: HashMap<Pair, Vec<(String, String, String, String)>>,
    /// Dialback verifications asked of authoritative servers (XEP-0220 s2.1.2), keyed by
    /// (stream id, claimed domain, our domain); see [`PendingVerify`].
    pending_verify: HashMap<(String, String, String), PendingVerify>,
    retry_at: HashMap<Pair, Retry>,
    dns_servers: Vec<SocketAddr>,
    tracker: DeliveryTracker,
    replies: HashMap<u64, Waiting>,
    ids: StanzaIds,
    /// Message stanza ids, keyed by the dialback secret (see [`crate::ids`]).
    message_ids: MessageIds,
    next_key: u64,
    trans: AtomicU64,
    err_tx: mpsc::Sender<(Origin, Status)>,
    /// Inbound presence of one sender to one addressee reaches the core in order.
    lanes: crate::lanes::Lanes,
}

/// Starts s2s mode: binds the listener, spawns the hub, which serves commands from `rx`
/// and reports the state of each peer link in `shared`.
pub(crate) async fn start(
    config: XmppConfig,
    ingress: Arc<dyn Ingress>,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
) -> Result<JoinHandle<()>, XmppError> {
    let Mode::S2s {
        domains,
        listen,
        cert,
        key,
        dialback_secret,
        srv_overrides,
        trust_roots,
        require_tls,
        allow_dialback_without_tls,
    } = config.mode.clone()
    else {
        return Err(XmppError::Config("not s2s mode".into()));
    };
    if domains.is_empty() {
        return Err(XmppError::Config("s2s needs at least one domain".into()));
    }
    if dialback_secret.is_empty() {
        return Err(XmppError::Config("dialback_secret is empty".into()));
    }
    if !require_tls && !allow_dialback_without_tls {
        warn!("xmpp s2s: require_tls = false has no effect without allow_dialback_without_tls = true: dialback still needs TLS");
    }
    let domains: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    let cfg_err = |e: crate::tls::TlsError| XmppError::Config(e.to_string());
    let identity =
        crate::tls::Identity::load(cert.as_deref(), key.as_deref(), &domains).map_err(cfg_err)?;
    let trust = Arc::new(crate::tls::Trust::new(&trust_roots, true).map_err(cfg_err)?);
    let tls_server = crate::tls::server_config(&identity).map_err(cfg_err)?;
    let tls_client = crate::tls::client_config(trust.clone(), &identity).map_err(cfg_err)?;
    let dns_servers = parse_dns_servers(&config.dns_servers)?;
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| XmppError::Config(format!("cannot listen on {listen}: {e}")))?;
    info!(listen = %listen, domains = ?domains, "xmpp s2s: listening");
    // Caps per source and in total, backoff on EMFILE (cpim_listen).
    let mut listener = cpim_listen::CappedListener::new(
        listener,
        cpim_core::connlimit::ConnLimits {
            per_source: config.s2s_max_connections_per_source,
            total: config.s2s_max_connections,
        },
        "xmpp-s2s",
    );
    let (io_tx, io_rx) = mpsc::channel(net::IO_EVENTS);
    let (err_tx, err_rx) = mpsc::channel(256);
    let hub = Hub {
        local: domains[0].clone(),
        domains,
        secret: dialback_secret.clone(),
        require_tls: require_tls || !allow_dialback_without_tls,
        tls_peers: Default::default(),
        overrides: srv_overrides
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        tls_server,
        tls_client,
        trust,
        ingress,
        shared,
        io_tx: io_tx.clone(),
        conns: HashMap::new(),
        out_by_remote: HashMap::new(),
        queues: HashMap::new(),
        verify_queue: HashMap::new(),
        pending_verify: HashMap::new(),
        retry_at: HashMap::new(),
        dns_servers,
        tracker: DeliveryTracker::new(Duration::from_millis(config.grace_ms)),
        replies: HashMap::new(),
        ids: StanzaIds::new(),
        message_ids: MessageIds::new(&dialback_secret),
        next_key: 0,
        trans: AtomicU64::new(1),
        err_tx,
        lanes: crate::lanes::Lanes::default(),
        cfg: config,
    };
    let accept_tx = io_tx;
    let acceptor = tokio::spawn(async move {
        loop {
            let (s, peer, permit) = listener.accept().await;
            if accept_tx
                .send(IoEvent::Accepted(s, peer, permit))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    Ok(tokio::spawn(async move {
        hub.run(rx, io_rx, err_rx).await;
        acceptor.abort();
    }))
}

impl Hub {
    fn limits(&self) -> Limits {
        Limits {
            max_stanza_bytes: self.cfg.max_stanza_bytes,
            ..Limits::default()
        }
    }

    fn keepalive(&self) -> Duration {
        Duration::from_secs(self.cfg.keepalive_secs.max(1))
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            ping_interval: Duration::from_secs(self.cfg.ping_interval_secs.max(1)),
            ping_timeout: Duration::from_secs(self.cfg.ping_timeout_secs.max(1)),
        }
    }

    /// `s2s:<remote>` for the first (main) local domain, `s2s:<local>-><remote>` for the
    /// others.
    fn link_name(&self, pair: &Pair) -> String {
        if self.domains.first() == Some(&pair.0) {
            format!("s2s:{}", pair.1)
        } else {
            format!("s2s:{}->{}", pair.0, pair.1)
        }
    }

    /// The pair an outgoing stanza travels on: its `from` domain when that is ours (else
    /// the main domain) and its `to` domain.
    fn pair_of(&self, el: &Element) -> Pair {
        let from = el.attr("from").map(domain_of).unwrap_or_default();
        let local = if self.domains.contains(&from) {
            from
        } else {
            self.local.clone()
        };
        (local, el.attr("to").map(domain_of).unwrap_or_default())
    }

    fn conn_pair(&self, id: u64) -> Option<Pair> {
        let c = self.conns.get(&id)?;
        Some((c.local.clone()?, c.remote.clone()?))
    }

    fn status(&self, pair: &Pair, up: Option<bool>, err: Option<String>) {
        let queued = self.queues.get(pair).map_or(0, VecDeque::len);
        self.shared.update(&self.link_name(pair), |l| {
            if let Some(u) = up {
                l.up = u;
            }
            l.queued = queued;
            if err.is_some() {
                l.last_error = err;
            }
        });
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut io_rx: mpsc::Receiver<IoEvent>,
        mut err_rx: mpsc::Receiver<(Origin, Status)>,
    ) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Deliver { op, reply, deadline }) => self.deliver(Queued { op: *op, reply, deadline }),
                    Some(Command::Shutdown(done)) => { self.shutdown().await; let _ = done.send(()); return; }
                    None => { self.shutdown().await; return; }
                },
                Some(ev) = io_rx.recv() => self.on_io(ev),
                Some((origin, status)) = err_rx.recv() => {
                    let el = mapping::error_reply(ns::SERVER, &origin, &status);
                    self.send_raw(el);
                }
                _ = sleep_until_opt(wake) => self.on_timer(),
            }
        }
    }

    async fn shutdown(&mut self) {
        let now = std_now();
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                match &mut c.session {
                    Session::Out(o) => o.close(now),
                    Session::In(i) => i.close(now),
                    Session::Connecting => {}
                }
            }
            self.pump(id);
            if let Some(tx) = self.conns.get(&id).and_then(|c| c.tx.clone()) {
                let _ = tx.send(IoCmd::Close);
            }
        }
        for (_, q) in self.queues.drain() {
            for p in q {
                if let Pending::Op(q) = p {
                    let _ = q.reply.send(Outcome::failure(
                        q.op.trans_id(),
                        StatusCode::SERVICE_UNAVAILABLE,
                        "XMPP adapter shut down",
                    ));
                }
            }
        }
        for (_, w) in self.replies.drain() {
            let _ = w.reply.send(Outcome::failure(
                w.trans_id,
                StatusCode::SERVICE_UNAVAILABLE,
                "XMPP adapter shut down",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        info!("xmpp s2s: stopped");
    }

    fn next_wake(&self) -> Option<TokioInstant> {
        let mut t: Option<std::time::Instant> = self.tracker.poll_timeout();
        for c in self.conns.values() {
            let x = match &c.session {
                Session::Out(o) => o.poll_timeout(),
                Session::In(i) => i.poll_timeout(),
                Session::Connecting => None,
            };
            t = match (t, x) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let mut w = t.map(TokioInstant::from_std);
        for r in self.retry_at.values() {
            if let Some(at) = &r.at {
                w = Some(w.map_or(*at, |x| x.min(*at)));
            }
        }
        for q in self.queues.values() {
            for p in q {
                let d = match p {
                    Pending::Op(q) => q.deadline,
                    Pending::Resend(k) => match self.replies.get(k) {
                        Some(x) => x.deadline,
                        None => continue,
                    },
                    Pending::Raw(_) => continue,
                };
                w = Some(w.map_or(d, |x| x.min(d)));
            }
        }
        w
    }

    fn on_timer(&mut self) {
        let now = std_now();
        let tnow = TokioInstant::now();
        for (key, st) in self.tracker.handle_timeout(now) {
            self.resolve(key, st);
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                match &mut c.session {
                    Session::Out(o) => o.handle_timeout(now),
                    Session::In(i) => i.handle_timeout(now),
                    Session::Connecting => {}
                }
            }
            self.pump(id);
        }
        // Queue deadlines.
        let mut late = Vec::new();
        for ((_, remote), q) in self.queues.iter_mut() {
            let mut kept = VecDeque::with_capacity(q.len());
            for p in q.drain(..) {
                match p {
                    Pending::Op(x) if x.deadline <= tnow => {
                        let _ = x.reply.send(Outcome::failure(
                            x.op.trans_id(),
                            StatusCode::REQUEST_TIMEOUT,
                            format!("no s2s link to {remote} in time; not sent"),
                        ));
                    }
                    Pending::Resend(k)
                        if self.replies.get(&k).is_none_or(|x| x.deadline <= tnow) =>
                    {
                        late.push((k, remote.clone()));
                    }
                    other => kept.push_back(other),
                }
            }
            *q = kept;
        }
        for (k, remote) in late {
            let why = format!("s2s link to {remote} lost; not resent in time");
            self.resolve(k, Status::new(StatusCode::REQUEST_TIMEOUT, why));
        }
        // Reconnects due.
        let due: Vec<Pair> = self
            .retry_at
            .iter()
            .filter(|(_, x)| x.at.is_some_and(|a| a <= tnow))
            .map(|(r, _)| r.clone())
            .collect();
        for r in due {
            if let Some(x) = self.retry_at.get_mut(&r) {
                x.at = None;
            }
            let wanted = self.queues.get(&r).is_some_and(|q| !q.is_empty())
                || self.verify_queue.get(&r).is_some_and(|v| !v.is_empty());
            if wanted {
                self.ensure_out(&r);
            }
        }
    }
}

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

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cpim_core::adapter::Ingress;
use cpim_core::model::{Operation, Outcome, Status, TransId};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use tracing::{debug, info, warn};

use crate::adapter::{
    delocalise, localise_source, Command, Queued, Shared, XmppAdapter, XmppError, XmppHandle,
};
use crate::backoff::Backoff;
use crate::config::{Mode, XmppConfig};
use crate::element::{Element, ElementExt};
use crate::mapping::{self, Ctx, Inbound, Origin};
use crate::ns;
use crate::s2s::{Liveness, S2sEvent, S2sIn, S2sOut};
use crate::s2s_in::{domain_of, PeerCert};
use crate::session::CloseReason;
use crate::stream::Limits;
use crate::tracker::{jid_domain, DeliveryTracker, StanzaIds};

#[path = "s2s_net.rs"]
mod net;
#[path = "s2s_verify.rs"]
mod verify;

use net::{io_task, parse_dns_servers, resolve_srv, sleep_until_opt};
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
    ConnectFailed(u64, String),
    /// An admitted incoming connection and its slot under the connection caps.
    Accepted(TcpStream, SocketAddr, cpim_listen::ConnPermit),
    Data(u64, Vec<u8>),
    /// TLS is up; the certificate chain the peer presented, if any.
    TlsDone(u64, Option<Vec<CertificateDer<'static>>>),
    Closed(u64, String),
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
}

#[allow(clippy::large_enum_variant)] // queued operations dominate anyway
enum Pending {
    Op(Queued),
    Raw(Element),
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
    retry_at: HashMap<Pair, (Backoff, Option<TokioInstant>)>,
    dns_servers: Vec<SocketAddr>,
    tracker: DeliveryTracker,
    replies: HashMap<u64, (TransId, oneshot::Sender<Outcome>, Pair)>,
    ids: StanzaIds,
    next_key: u64,
    trans: AtomicU64,
    err_tx: mpsc::Sender<(Origin, Status)>,
    /// Inbound presence of one sender to one addressee reaches the core in order.
    lanes: crate::lanes::Lanes,
}

/// Starts s2s mode: binds the listener, spawns the hub.
pub(crate) async fn start_s2s(
    config: XmppConfig,
    ingress: Arc<dyn Ingress>,
) -> Result<XmppHandle, XmppError> {
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
    let shared = Arc::new(Shared {
        status: Mutex::new(Vec::new()),
    });
    let (tx, rx) = mpsc::channel(1024);
    let adapter = Arc::new(XmppAdapter {
        domains: domains.clone(),
        tx,
        shared: shared.clone(),
        delivery_timeout: Duration::from_secs(config.delivery_timeout_secs),
    });
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
        secret: dialback_secret,
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
    let task = tokio::spawn(async move {
        hub.run(rx, io_rx, err_rx).await;
        acceptor.abort();
    });
    Ok(XmppHandle {
        adapter,
        task: Some(task),
    })
}

fn std_now() -> std::time::Instant {
    TokioInstant::now().into_std()
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
                        503,
                        "XMPP adapter shut down",
                    ));
                }
            }
        }
        for (_, (t, r, _)) in self.replies.drain() {
            let _ = r.send(Outcome::failure(t, 503, "XMPP adapter shut down"));
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
        for (_, at) in self.retry_at.values() {
            if let Some(at) = at {
                w = Some(w.map_or(*at, |x| x.min(*at)));
            }
        }
        for q in self.queues.values() {
            for p in q {
                if let Pending::Op(q) = p {
                    w = Some(w.map_or(q.deadline, |x| x.min(q.deadline)));
                }
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
        for ((_, remote), q) in self.queues.iter_mut() {
            let mut kept = VecDeque::with_capacity(q.len());
            for p in q.drain(..) {
                match p {
                    Pending::Op(x) if x.deadline <= tnow => {
                        let _ = x.reply.send(Outcome::failure(
                            x.op.trans_id(),
                            408,
                            format!("no s2s link to {remote} in time; not sent"),
                        ));
                    }
                    other => kept.push_back(other),
                }
            }
            *q = kept;
        }
        // Reconnects due.
        let due: Vec<Pair> = self
            .retry_at
            .iter()
            .filter(|(_, (_, at))| at.is_some_and(|a| a <= tnow))
            .map(|(r, _)| r.clone())
            .collect();
        for r in due {
            if let Some((_, at)) = self.retry_at.get_mut(&r) {
                *at = None;
            }
            let wanted = self.queues.get(&r).is_some_and(|q| !q.is_empty())
                || self.verify_queue.get(&r).is_some_and(|v| !v.is_empty());
            if wanted {
                self.ensure_out(&r);
            }
        }
    }

    fn deliver(&mut self, q: Queued) {
        let Some(remote) = q.op.destination().map(|d| d.domain.clone()) else {
            let t = q.op.trans_id();
            let _ = q
                .reply
                .send(Outcome::failure(t, 501, "publish is not delivered to XMPP"));
            return;
        };
        if self.domains.contains(&remote) {
            let t = q.op.trans_id();
            let _ = q.reply.send(Outcome::failure(
                t,
                508,
                "destination is one of the gateway's own domains",
            ));
            return;
        }
        // The stream is chosen by the source domain: a source of one of our domains
        // travels on that domain's stream, any other is rewritten to the main domain.
        let op = if self.domains.contains(&q.op.source().domain) {
            q.op
        } else {
            localise_source(&self.local, q.op)
        };
        let pair = (op.source().domain.clone(), remote);
        let q = Queued {
            op,
            reply: q.reply,
            deadline: q.deadline,
        };
        match self.ready_out(&pair) {
            // Nothing may overtake what is queued for the same stream.
            Some(id) if self.queues.get(&pair).is_none_or(VecDeque::is_empty) => {
                self.send_op(id, &pair, q)
            }
            _ => {
                let qlen = self.queues.get(&pair).map_or(0, VecDeque::len);
                if !self.cfg.queue_when_down || qlen >= self.cfg.queue_capacity {
                    let t = q.op.trans_id();
                    let _ = q.reply.send(Outcome::failure(
                        t,
                        503,
                        format!("no s2s link to {} (queue full or queueing off)", pair.1),
                    ));
                    return;
                }
                self.queues
                    .entry(pair.clone())
                    .or_default()
                    .push_back(Pending::Op(q));
                self.status(&pair, None, None);
                self.ensure_out(&pair);
            }
        }
    }

    fn send_raw(&mut self, el: Element) {
        let pair = self.pair_of(&el);
        if pair.1.is_empty() || self.domains.contains(&pair.1) {
            debug!("xmpp s2s: not sending a stanza without a foreign destination");
            return;
        }
        match self.ready_out(&pair) {
            Some(id) if self.queues.get(&pair).is_none_or(VecDeque::is_empty) => {
                if let Some(Conn {
                    session: Session::Out(o),
                    ..
                }) = self.conns.get_mut(&id)
                {
                    o.send_stanza(&el, std_now());
                }
                self.pump(id);
            }
            _ => {
                let q = self.queues.entry(pair.clone()).or_default();
                if q.len() >= self.cfg.queue_capacity {
                    warn!(link = %self.link_name(&pair), "xmpp s2s: queue full, dropping a <{}/> reply", el.name);
                    return;
                }
                q.push_back(Pending::Raw(el));
                self.ensure_out(&pair);
            }
        }
    }

    fn ready_out(&self, pair: &Pair) -> Option<u64> {
        let id = *self.out_by_remote.get(pair)?;
        match &self.conns.get(&id)?.session {
            Session::Out(o) if o.state() == crate::s2s::OutState::Ready => Some(id),
            _ => None,
        }
    }

    fn new_id(&mut self) -> String {
        self.ids.next_id()
    }

    fn send_op(&mut self, conn: u64, pair: &Pair, q: Queued) {
        let now = std_now();
        let trans_id = q.op.trans_id();
        let remote = pair.1.as_str();
        let op = q.op;
        let ids_gen = &mut self.ids;
        let stanzas = match mapping::outbound(ns::SERVER, &op, || ids_gen.next_id()) {
            Ok(v) => v,
            Err(e) => {
                let _ = q.reply.send(Outcome {
                    trans_id,
                    status: e.status(),
                });
                return;
            }
        };
        if stanzas.is_empty() {
            let _ = q.reply.send(Outcome::ok(trans_id));
            return;
        }
        let ping_id = self.new_id();
        let ping = Element::build(ns::SERVER, "iq")
            .attr_set("type", "get")
            .attr_set("from", &pair.0)
            .attr_set("to", remote)
            .attr_set("id", &ping_id)
            .child_add(Element::build(ns::PING, "ping"));
        let mut ids = Vec::new();
        if let Some(Conn {
            session: Session::Out(o),
            ..
        }) = self.conns.get_mut(&conn)
        {
            for el in &stanzas {
                if let Some(id) = el.attr("id") {
                    ids.push(id.to_owned());
                }
                if let Some(n) = o.send_stanza(el, now) {
                    if n > 0 {
                        warn!(
                            "dropped {n} character(s) XML 1.0 forbids from an outgoing <{}/>",
                            el.name
                        );
                    }
                }
            }
            o.send_stanza(&ping, now);
        }
        self.next_key += 1;
        let key = self.next_key;
        let deadline = q.deadline.into_std().max(now + Duration::from_millis(1));
        self.tracker
            .track(key, remote, ids, Some(&ping_id), deadline, now);
        self.replies.insert(key, (trans_id, q.reply, pair.clone()));
        self.pump(conn);
    }

    fn resolve(&mut self, key: u64, status: Status) {
        if let Some((t, r, _)) = self.replies.remove(&key) {
            let _ = r.send(Outcome {
                trans_id: t,
                status,
            });
        }
    }

    /// Opens an outgoing stream for `pair` unless one exists or a retry is pending.
    fn ensure_out(&mut self, pair: &Pair) {
        if self.out_by_remote.contains_key(pair) {
            return;
        }
        if let Some((_, Some(_))) = self.retry_at.get(pair) {
            return;
        }
        self.next_key += 1;
        let id = 1_000_000 + self.next_key;
        self.conns.insert(
            id,
            Conn {
                local: Some(pair.0.clone()),
                remote: Some(pair.1.clone()),
                tx: None,
                session: Session::Connecting,
            },
        );
        self.out_by_remote.insert(pair.clone(), id);
        let target = self.overrides.get(&pair.1).cloned();
        let remote_s = pair.1.clone();
        let io_tx = self.io_tx.clone();
        let dns = self.dns_servers.clone();
        let connect_timeout = self.liveness().ping_timeout;
        info!(link = %self.link_name(pair), "xmpp s2s: connecting");
        tokio::spawn(async move {
            let addrs = match target {
                Some(t) => vec![t],
                None => resolve_srv(&remote_s, &dns).await,
            };
            let mut last = String::from("no address");
            for a in addrs {
                match tokio::time::timeout(connect_timeout, TcpStream::connect(&a)).await {
                    Ok(Ok(s)) => {
                        let _ = io_tx.send(IoEvent::Connected(id, s)).await;
                        return;
                    }
                    Ok(Err(e)) => last = format!("connect to {a}: {e}"),
                    Err(_) => last = format!("connect to {a}: timed out"),
                }
            }
            let _ = io_tx.send(IoEvent::ConnectFailed(id, last)).await;
        });
    }

    /// Spawns the I/O task of a connection; an incoming one holds its `permit` until
    /// the task ends.
    fn spawn_io(
        &mut self,
        id: u64,
        stream: TcpStream,
        permit: Option<cpim_listen::ConnPermit>,
    ) -> mpsc::UnboundedSender<IoCmd> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = stream.set_nodelay(true);
        let task = io_task(
            id,
            stream,
            rx,
            self.io_tx.clone(),
            self.tls_client.clone(),
            self.tls_server.clone(),
        );
        tokio::spawn(async move {
            task.await;
            drop(permit);
        });
        tx
    }

    fn on_io(&mut self, ev: IoEvent) {
        let now = std_now();
        match ev {
            IoEvent::Accepted(stream, peer, permit) => {
                self.next_key += 1;
                let id = self.next_key;
                debug!(%peer, conn = id, "xmpp s2s: incoming connection");
                let tx = self.spawn_io(id, stream, Some(permit));
                let mut s = S2sIn::new(
                    &self.domains,
                    &self.secret,
                    true,
                    self.require_tls,
                    self.limits(),
                    self.keepalive(),
                    now,
                );
                if self.cfg.s2s_idle_timeout_secs > 0 {
                    s = s.with_idle_timeout(Duration::from_secs(self.cfg.s2s_idle_timeout_secs));
                }
                let secs = |n: u64| (n > 0).then(|| Duration::from_secs(n));
                s = s.with_deadlines(
                    secs(self.cfg.s2s_open_timeout_secs),
                    secs(self.cfg.s2s_auth_timeout_secs),
                );
                self.conns.insert(
                    id,
                    Conn {
                        local: None,
                        remote: None,
                        tx: Some(tx),
                        session: Session::In(Box::new(s)),
                    },
                );
            }
            IoEvent::Connected(id, stream) => {
                let Some(pair) = self.conn_pair(id) else {
                    return;
                };
                let tx = self.spawn_io(id, stream, None);
                let mut o = S2sOut::new(
                    &pair.0,
                    &pair.1,
                    &self.secret,
                    self.require_tls || self.tls_peers.contains(&pair.1),
                    self.limits(),
                    self.keepalive(),
                    now,
                )
                .with_liveness(self.liveness());
                o.start(now);
                for (f, t, i, k) in self.verify_queue.remove(&pair).unwrap_or_default() {
                    o.send_verify(&f, &t, &i, &k, now);
                    if let Some(p) = self.pending_verify.get_mut(&(i, t, f)) {
                        p.outgoing = Some(id);
                    }
                }
                if let Some(c) = self.conns.get_mut(&id) {
                    c.tx = Some(tx);
                    c.session = Session::Out(Box::new(o));
                }
                info!(link = %self.link_name(&pair), "xmpp s2s: connected, negotiating");
                self.pump(id);
            }
            IoEvent::ConnectFailed(id, err) => {
                debug!(conn = id, "xmpp s2s: {err}");
                self.conn_gone(id, err);
            }
            IoEvent::Data(id, data) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    match &mut c.session {
                        Session::Out(o) => o.handle_input(&data, now),
                        Session::In(i) => i.handle_input(&data, now),
                        Session::Connecting => {}
                    }
                }
                self.pump(id);
            }
            IoEvent::TlsDone(id, certs) => {
                // XEP-0178: the peer's certificate, judged by our trust store at this
                // moment, for whichever domain the peer claims over SASL EXTERNAL.
                let cert = certs.map(|chain| {
                    let trust = self.trust.clone();
                    let at = rustls::pki_types::UnixTime::now();
                    PeerCert::new(move |domain| trust.valid_for(&chain, domain, at))
                });
                if let Some(c) = self.conns.get_mut(&id) {
                    match &mut c.session {
                        Session::Out(o) => o.tls_established(now),
                        Session::In(i) => i.tls_established_with_cert(cert),
                        Session::Connecting => {}
                    }
                }
                self.pump(id);
            }
            IoEvent::Closed(id, why) => {
                let out_pair = self
                    .conns
                    .get(&id)
                    .filter(|c| matches!(c.session, Session::Out(_)))
                    .and_then(|_| self.conn_pair(id));
                if let (Some(pair), true) = (&out_pair, why.starts_with("TLS handshake failed")) {
                    // E.g. a certificate not valid for the peer's domain: retrying will
                    // not help, and nothing may go out without TLS.
                    self.fail_queue(pair, &format!("s2s to {}: {why}", pair.1));
                }
                if let Some(c) = self.conns.get_mut(&id) {
                    match &mut c.session {
                        Session::Out(o) => o.handle_eof(),
                        Session::In(i) => i.handle_eof(),
                        Session::Connecting => {}
                    }
                }
                debug!(conn = id, "xmpp s2s: transport closed: {why}");
                self.pump(id);
                self.conn_gone(id, why);
            }
        }
    }

    /// Drains a session's output and events. When an incoming session asks for TLS, its
    /// last plaintext (the `<proceed/>`) and the switch to TLS go to the I/O task as one
    /// command (RFC 6120 s5.4.2.3: the TLS negotiation follows the proceed at once).
    fn pump(&mut self, id: u64) {
        let now = std_now();
        let mut events = Vec::new();
        {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let mut bytes = Vec::new();
            loop {
                let b = match &mut c.session {
                    Session::Out(o) => o.poll_transmit(),
                    Session::In(i) => i.poll_transmit(),
                    Session::Connecting => None,
                };
                match b {
                    Some(b) => bytes.push(b),
                    None => break,
                }
            }
            loop {
                let ev = match &mut c.session {
                    Session::Out(o) => o.poll_event(),
                    Session::In(i) => i.poll_event(),
                    Session::Connecting => None,
                };
                match ev {
                    Some(e) => events.push(e),
                    None => break,
                }
            }
            let server_tls =
                matches!(c.session, Session::In(_)) && events.contains(&S2sEvent::StartTls);
            if let Some(tx) = &c.tx {
                if server_tls {
                    let _ = tx.send(IoCmd::TlsServer(bytes.concat()));
                } else {
                    for b in bytes {
                        let _ = tx.send(IoCmd::Write(b));
                    }
                }
            }
        }
        for ev in events {
            self.on_session_event(id, ev, now);
        }
    }

    fn on_session_event(&mut self, id: u64, ev: S2sEvent, now: std::time::Instant) {
        let remote = self.conns.get(&id).and_then(|c| c.remote.clone());
        let pair = self.conn_pair(id);
        let is_out = matches!(
            self.conns.get(&id).map(|c| &c.session),
            Some(Session::Out(_))
        );
        match ev {
            S2sEvent::StartTls => {
                let Some(tx) = self.conns.get(&id).and_then(|c| c.tx.clone()) else {
                    return;
                };
                if is_out {
                    let name = remote.clone().unwrap_or_default();
                    // Bounded: past the cap new domains are simply not remembered.
                    if self.tls_peers.len() < MAX_TLS_PEERS {
                        self.tls_peers.insert(name.clone());
                    }
                    match ServerName::try_from(name) {
                        Ok(n) => {
                            let _ = tx.send(IoCmd::TlsClient(n));
                        }
                        Err(e) => {
                            let _ = tx.send(IoCmd::Close);
                            self.conn_gone(id, format!("bad TLS name: {e}"));
                        }
                    }
                } else {
                    // Incoming: sent by `pump` together with the `<proceed/>`.
                }
            }
            S2sEvent::Ready { method } => {
                let Some(pair) = pair else { return };
                let tls = match &self.conns.get(&id).map(|c| &c.session) {
                    Some(Session::Out(o)) if o.is_tls() => "TLS",
                    _ => "no TLS",
                };
                let queued = self.queues.get(&pair).map_or(0, VecDeque::len);
                info!(link = %self.link_name(&pair), "xmpp s2s: up ({tls}, {method}); sending {queued} queued stanza(s)");
                if let Some((b, _)) = self.retry_at.get_mut(&pair) {
                    b.reset();
                }
                let pending: Vec<Pending> =
                    self.queues.remove(&pair).map(Vec::from).unwrap_or_default();
                for p in pending {
                    match p {
                        Pending::Op(q) => self.send_op(id, &pair, q),
                        Pending::Raw(el) => {
                            if let Some(Conn {
                                session: Session::Out(o),
                                ..
                            }) = self.conns.get_mut(&id)
                            {
                                o.send_stanza(&el, now);
                            }
                        }
                    }
                }
                self.status(&pair, Some(true), None);
                self.pump(id);
            }
            S2sEvent::VerifyKey {
                from,
                to,
                key,
                stream_id,
            } => self.on_verify_key(id, from, to, key, stream_id, now),
            S2sEvent::VerifyAnswer {
                id: sid,
                from,
                to,
                valid,
            } => self.on_verify_answer(id, is_out, pair, (sid, from, to), valid, now),
            S2sEvent::Authenticated { domain } => {
                info!(conn = id, %domain, "xmpp s2s: incoming stream authenticated (SASL EXTERNAL or dialback)");
            }
            S2sEvent::Stanza(el) => self.on_stanza(id, el, now),
            S2sEvent::Closed(reason) => {
                match &reason {
                    CloseReason::AuthFailed(t) => {
                        warn!(conn = id, "xmpp s2s: authentication failed: {t}")
                    }
                    CloseReason::LocalClose => {}
                    other if remote.is_none() => {
                        info!(conn = id, "xmpp s2s: incoming stream closed: {other}")
                    }
                    other => debug!(conn = id, "xmpp s2s: stream closed: {other}"),
                }
                if let Some(tx) = self.conns.get(&id).and_then(|c| c.tx.clone()) {
                    // Let the last bytes go out, then close.
                    let _ = tx.send(IoCmd::Close);
                }
                if let (true, Some(pair), CloseReason::StreamError { condition, .. }) =
                    (is_out, &pair, &reason)
                {
                    if condition == "policy-violation" {
                        // E.g. TLS required and the peer offers no STARTTLS: retrying
                        // will not help, and nothing may go out in plaintext.
                        self.fail_queue(pair, &format!("s2s to {} refused: {reason}", pair.1));
                    }
                }
                self.conn_gone(id, reason.to_string());
            }
        }
    }

    /// Fails every delivery queued for `pair` with 502 and `why`.
    fn fail_queue(&mut self, pair: &Pair, why: &str) {
        let Some(q) = self.queues.remove(pair) else {
            return;
        };
        warn!(link = %self.link_name(pair), "xmpp s2s: {} queued stanza(s) not sent: {why}", q.len());
        for p in q {
            if let Pending::Op(x) = p {
                let _ = x.reply.send(Outcome::failure(x.op.trans_id(), 502, why));
            }
        }
    }

    fn conn_gone(&mut self, id: u64, why: String) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        self.drop_verifications(id);
        if let Some(tx) = c.tx {
            let _ = tx.send(IoCmd::Close);
        }
        let (Some(local), Some(remote)) = (c.local, c.remote) else {
            return;
        };
        let pair = (local, remote);
        if self.out_by_remote.get(&pair) == Some(&id) {
            self.out_by_remote.remove(&pair);
        }
        if why == CloseReason::LocalClose.to_string() {
            info!(link = %self.link_name(&pair), "xmpp s2s: down: {why}");
        } else {
            warn!(link = %self.link_name(&pair), "xmpp s2s: down: {why}");
        }
        // Deliveries written on this stream whose outcome is unknown: 408.
        let keys: Vec<u64> = self
            .replies
            .iter()
            .filter(|(_, (_, _, r))| *r == pair)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.tracker.forget(k);
            self.resolve(
                k,
                Status::new(408, "s2s link lost before the peer confirmed"),
            );
        }
        self.status(&pair, Some(false), Some(why));
        let wanted = self.queues.get(&pair).is_some_and(|q| !q.is_empty())
            || self.verify_queue.get(&pair).is_some_and(|v| !v.is_empty());
        let (initial, max) = (
            Duration::from_millis(self.cfg.reconnect_initial_ms),
            Duration::from_millis(self.cfg.reconnect_max_ms),
        );
        let name = self.link_name(&pair);
        let entry = self
            .retry_at
            .entry(pair)
            .or_insert_with(|| (Backoff::new(initial, max), None));
        let delay = entry.0.next_delay(rand::random::<f64>());
        if wanted {
            entry.1 = Some(TokioInstant::now() + delay);
            info!(link = %name, "xmpp s2s: reconnecting in {} ms", delay.as_millis());
        } else {
            info!(link = %name, "xmpp s2s: idle; reconnects on the next stanza");
        }
    }

    fn on_stanza(&mut self, conn: u64, el: Element, now: std::time::Instant) {
        // Who may speak on this stream: on an incoming one, the domains it authenticated
        // (S2sIn refuses any other `from` with <invalid-from/>); on our outgoing stream,
        // only the peer we connected to, for itself. Outcomes are then matched to the
        // domain each stanza went to (crate::tracker).
        let from = el.attr("from").unwrap_or("").to_owned();
        if let Some(Conn {
            session: Session::Out(_),
            remote: Some(r),
            ..
        }) = self.conns.get(&conn)
        {
            if jid_domain(&from) != jid_domain(r) {
                debug!(conn, %from, "xmpp s2s: ignoring a stanza from another domain on our outgoing stream");
                return;
            }
        }
        if el.name == "iq" && matches!(el.attr("type"), Some("result" | "error")) {
            // An answer from the peer to a request we sent on our stream to it (arriving
            // on the peer's stream to us): our stream is alive.
            let pair = (
                el.attr("to").map(domain_of).unwrap_or_default(),
                el.attr("from").map(domain_of).unwrap_or_default(),
            );
            if let Some(&out) = self.out_by_remote.get(&pair) {
                if let Some(Conn {
                    session: Session::Out(o),
                    ..
                }) = self.conns.get_mut(&out)
                {
                    o.note_alive(now);
                    if el.attr("id").is_some_and(|i| o.is_own_ping(i)) {
                        return;
                    }
                }
            }
        }
        if el.name == "message" && el.attr("type") != Some("error") {
            if let Some(r) = el.child(ns::RECEIPTS, "received") {
                if let Some((key, st)) = r
                    .attr("id")
                    .and_then(|id| self.tracker.on_receipt(id, &from))
                {
                    self.resolve(key, st);
                }
            }
        }
        let now_str = mapping::rfc3339(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        let ctx = Ctx {
            ns: ns::SERVER,
            local_domains: &self.domains,
            software_name: &self.cfg.software_name,
            now_rfc3339: &now_str,
        };
        let trans_id = TransId(self.trans.fetch_add(1, Ordering::Relaxed));
        match mapping::inbound(&ctx, &el, trans_id) {
            Inbound::Op { mut op, origin } => {
                match &mut op {
                    Operation::Message(m) => delocalise(&mut m.destination),
                    Operation::Subscribe(x) | Operation::Unsubscribe(x) => {
                        delocalise(&mut x.target)
                    }
                    Operation::Notify(n) => delocalise(&mut n.watcher),
                    _ => {}
                }
                let ingress = self.ingress.clone();
                let err_tx = self.err_tx.clone();
                let answer = origin.kind == "message";
                let key = crate::lanes::order_key(&origin.kind, &origin.from, &origin.to);
                self.lanes.run(
                    key,
                    Box::pin(async move {
                        let out = ingress.submit("xmpp", op).await;
                        if !out.status.is_success() && answer {
                            let _ = err_tx.send((origin, out.status)).await;
                        }
                    }),
                );
            }
            Inbound::Reply(r) => self.send_raw(r),
            Inbound::Response { id, result } => {
                if let Some((key, st)) = self.tracker.on_response(&id, &from, result, now) {
                    self.resolve(key, st);
                }
            }
            Inbound::Receipt { .. } => {}
            Inbound::Ignore(why) => debug!("ignored stanza: {why}"),
        }
    }
}

//! The XEP-0114 component link: owns the socket of the one stream to the XMPP server,
//! reconnects and queues.
//!
//! One task runs the link. It connects, drives a [`ComponentSession`], and on loss
//! waits out a [`Backoff`] delay before reconnecting. Operations given to the adapter
//! while the link is down wait in a bounded queue (or get 503, per config) and are
//! written, in order, once the next session is ready; a stanza is taken off the queue
//! when it is written, so nothing is sent twice. Operations written whose outcome was
//! not yet known when the link died resolve with 408: the gateway never claims success
//! it could not see. Outcomes are believed only from the domain a stanza went to,
//! matched by an unguessable id ([`crate::tracker`]); a new session starts a new
//! tracker, so nothing answers for a stanza of an earlier link.

use cpim_core::StatusCode;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cpim_core::adapter::Ingress;
use cpim_core::model::{Operation, Outcome, Status, TransId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;
use tracing::{debug, error, info, warn};

use super::{
    delocalise_destination, localise_source, settle_response, sleep_until_opt, std_now, Command,
    Queued, Shared,
};
use crate::backoff::Backoff;
use crate::config::{Mode, XmppConfig};
use crate::element::Element;
use crate::error::XmppError;
use crate::ids::MessageIds;
use crate::lanes::{self, Lanes};
use crate::mapping::{self, Ctx, Inbound, Origin};
use crate::ns;
use crate::session::{CloseReason, ComponentSession, SessionEvent, Timing};
use crate::stream::Limits;
use crate::tracker::DeliveryTracker;

/// Most operations written behind one barrier ping.
const MAX_BATCH: usize = 256;

/// Starts the component link: validates the configuration and spawns the task that
/// connects, serves commands from `rx` and reports its state in `shared`.
pub(crate) fn start(
    config: XmppConfig,
    ingress: Arc<dyn Ingress>,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Command>,
) -> Result<JoinHandle<()>, XmppError> {
    let (server, domain, secret) = match &config.mode {
        Mode::Component {
            server,
            domain,
            secret,
        } => (server.clone(), domain.to_ascii_lowercase(), secret.clone()),
        Mode::S2s { .. } => return Err(XmppError::Config("not component mode".into())),
    };
    if domain.is_empty() || !domain.contains('.') && domain != "localhost" {
        return Err(XmppError::Config(format!(
            "component domain {domain:?} is not a domain name"
        )));
    }
    if secret.is_empty() {
        return Err(XmppError::Config("component secret is empty".into()));
    }
    if server.parse::<SocketAddr>().is_err() && !server.contains(':') {
        return Err(XmppError::Config(format!(
            "server {server:?} is not host:port"
        )));
    }
    let name = format!("xmpp-component:{domain}");
    shared.update(&name, |_| {});
    let link = Link {
        cfg: config,
        server,
        domain,
        message_ids: MessageIds::new(&secret),
        secret,
        name,
        ingress,
        shared,
        queue: VecDeque::new(),
        next_key: 0,
        trans: Arc::new(AtomicU64::new(1)),
        lanes: Lanes::default(),
    };
    Ok(tokio::spawn(link.run(rx)))
}

struct Link {
    cfg: XmppConfig,
    server: String,
    domain: String,
    secret: String,
    /// Message stanza ids, keyed by the secret (see [`crate::ids`]).
    message_ids: MessageIds,
    name: String,
    ingress: Arc<dyn Ingress>,
    shared: Arc<Shared>,
    queue: VecDeque<Queued>,
    next_key: u64,
    trans: Arc<AtomicU64>,
    /// Inbound presence of one sender to one addressee reaches the core in order.
    lanes: Lanes,
}

/// What ended a connected session.
enum Ended {
    Lost,
    Shutdown(Option<oneshot::Sender<()>>),
}

impl Link {
    fn set_status(&self, up: bool, err: Option<String>) {
        let queued = self.queue.len();
        self.shared.update(&self.name, |s| {
            s.up = up;
            s.queued = queued;
            if err.is_some() {
                s.last_error = err;
            }
        });
    }

    fn timing(&self) -> Timing {
        Timing {
            keepalive: Duration::from_secs(self.cfg.keepalive_secs.max(1)),
            ping_interval: Duration::from_secs(self.cfg.ping_interval_secs.max(1)),
            ping_timeout: Duration::from_secs(self.cfg.ping_timeout_secs.max(1)),
            handshake_timeout: Duration::from_secs(15),
        }
    }

    /// A command while no session is ready: queue it or refuse it.
    fn enqueue(&mut self, q: Queued) {
        let trans_id = q.op.trans_id();
        if !self.cfg.queue_when_down {
            let _ = q.reply.send(Outcome::failure(
                trans_id,
                StatusCode::SERVICE_UNAVAILABLE,
                "XMPP link is down",
            ));
        } else if self.queue.len() >= self.cfg.queue_capacity {
            warn!(link = %self.name, "queue full ({}), refusing {}", self.queue.len(), q.op.kind());
            let _ = q.reply.send(Outcome::failure(
                trans_id,
                StatusCode::SERVICE_UNAVAILABLE,
                "XMPP link is down and its queue is full",
            ));
        } else {
            self.queue.push_back(q);
        }
        self.set_status(false, None);
    }

    fn expire_queue(&mut self) {
        let now = TokioInstant::now();
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for q in self.queue.drain(..) {
            if q.deadline <= now {
                let _ = q.reply.send(Outcome::failure(
                    q.op.trans_id(),
                    StatusCode::REQUEST_TIMEOUT,
                    "XMPP link stayed down; not sent",
                ));
            } else {
                kept.push_back(q);
            }
        }
        self.queue = kept;
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.cfg.reconnect_initial_ms),
            Duration::from_millis(self.cfg.reconnect_max_ms),
        );
        loop {
            info!(link = %self.name, server = %self.server, "xmpp link: connecting");
            let connect = TcpStream::connect(self.server.clone());
            tokio::pin!(connect);
            let stream = loop {
                let next_expiry = self.queue.iter().map(|q| q.deadline).min();
                tokio::select! {
                    r = &mut connect => break r,
                    cmd = rx.recv() => match cmd {
                        Some(Command::Deliver { op, reply, deadline }) => self.enqueue(Queued { op: *op, reply, deadline }),
                        Some(Command::Shutdown(done)) => return self.stop(Some(done)),
                        None => return self.stop(None),
                    },
                    _ = sleep_until_opt(next_expiry) => self.expire_queue(),
                }
            };
            let ended = match stream {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    self.session(s, &mut rx, &mut backoff).await
                }
                Err(e) => {
                    let msg = format!("connect to {} failed: {e}", self.server);
                    warn!(link = %self.name, "xmpp link: {msg}");
                    self.set_status(false, Some(msg));
                    Ended::Lost
                }
            };
            if let Ended::Shutdown(done) = ended {
                return self.stop(done);
            }
            let delay = backoff.next_delay(rand::random::<f64>());
            info!(link = %self.name, "xmpp link: down, reconnecting in {} ms", delay.as_millis());
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                let next_expiry = self.queue.iter().map(|q| q.deadline).min();
                tokio::select! {
                    _ = &mut sleep => break,
                    cmd = rx.recv() => match cmd {
                        Some(Command::Deliver { op, reply, deadline }) => self.enqueue(Queued { op: *op, reply, deadline }),
                        Some(Command::Shutdown(done)) => return self.stop(Some(done)),
                        None => return self.stop(None),
                    },
                    _ = sleep_until_opt(next_expiry) => self.expire_queue(),
                }
            }
        }
    }

    fn stop(&mut self, done: Option<oneshot::Sender<()>>) {
        for q in self.queue.drain(..) {
            let _ = q.reply.send(Outcome::failure(
                q.op.trans_id(),
                StatusCode::SERVICE_UNAVAILABLE,
                "XMPP adapter shut down",
            ));
        }
        self.set_status(false, Some("shut down".into()));
        info!(link = %self.name, "xmpp link: stopped");
        if let Some(d) = done {
            let _ = d.send(());
        }
    }

    async fn session(
        &mut self,
        stream: TcpStream,
        rx: &mut mpsc::Receiver<Command>,
        backoff: &mut Backoff,
    ) -> Ended {
        let (mut rd, mut wr) = stream.into_split();
        let limits = Limits {
            max_stanza_bytes: self.cfg.max_stanza_bytes,
            ..Limits::default()
        };
        let mut s =
            ComponentSession::new(&self.domain, &self.secret, self.timing(), limits, std_now());
        s.start(std_now());
        let mut tracker = DeliveryTracker::new(Duration::from_millis(self.cfg.grace_ms));
        let mut replies: std::collections::HashMap<u64, (TransId, oneshot::Sender<Outcome>)> =
            std::collections::HashMap::new();
        let (itx, mut irx) = mpsc::channel::<(Origin, Status)>(256);
        let mut buf = vec![0u8; 16 * 1024];
        let mut ready = false;
        let mut result = Ended::Lost;
        info!(link = %self.name, "xmpp link: connected, handshaking");
        'outer: loop {
            // Handle what the session reports.
            while let Some(ev) = s.poll_event() {
                match ev {
                    SessionEvent::Ready => {
                        ready = true;
                        backoff.reset();
                        info!(link = %self.name, queued = self.queue.len(), "xmpp link: up (handshake accepted)");
                        self.set_status(true, None);
                        let now = std_now();
                        self.expire_queue();
                        let waiting: Vec<Queued> = self.queue.drain(..).collect();
                        self.send_ops(&mut s, &mut tracker, &mut replies, waiting, now);
                        self.set_status(true, None);
                    }
                    SessionEvent::Stanza(el) => {
                        self.on_stanza(&mut s, &mut tracker, &mut replies, el, &itx);
                    }
                    SessionEvent::Closed(reason) => {
                        match &reason {
                            CloseReason::AuthFailed(t) => error!(
                                link = %self.name,
                                "xmpp link: the server refused the component handshake ({t}); check the component secret and domain"
                            ),
                            CloseReason::LocalClose => {}
                            other => warn!(link = %self.name, "xmpp link: closed: {other}"),
                        }
                        self.set_status(false, Some(reason.to_string()));
                        while let Some(bytes) = s.poll_transmit() {
                            let _ = wr.write_all(&bytes).await;
                        }
                        break 'outer;
                    }
                }
            }
            // Flush what the session (and the events just handled) want to write.
            while let Some(bytes) = s.poll_transmit() {
                if let Err(e) = wr.write_all(&bytes).await {
                    warn!(link = %self.name, "xmpp link: write failed: {e}");
                    self.set_status(false, Some(format!("write failed: {e}")));
                    break 'outer;
                }
            }
            let wake = [s.poll_timeout(), tracker.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .map(TokioInstant::from_std);
            let next_expiry = if ready {
                None
            } else {
                self.queue.iter().map(|q| q.deadline).min()
            };
            tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) => s.handle_eof(),
                    Ok(n) => s.handle_input(&buf[..n], std_now()),
                    Err(e) => {
                        warn!(link = %self.name, "xmpp link: read failed: {e}");
                        self.set_status(false, Some(format!("read failed: {e}")));
                        break 'outer;
                    }
                },
                cmd = rx.recv() => match cmd {
                    Some(Command::Deliver { op, reply, deadline }) => {
                        let q = Queued { op: *op, reply, deadline };
                        if ready {
                            // Everything already waiting goes out in the same write,
                            // behind one barrier ping per destination domain.
                            let mut batch = vec![q];
                            let mut stop = None;
                            while batch.len() < MAX_BATCH {
                                match rx.try_recv() {
                                    Ok(Command::Deliver { op, reply, deadline }) => {
                                        batch.push(Queued { op: *op, reply, deadline })
                                    }
                                    Ok(Command::Shutdown(done)) => {
                                        stop = Some(done);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            self.send_ops(&mut s, &mut tracker, &mut replies, batch, std_now());
                            if let Some(done) = stop {
                                close_stream(&mut s, &mut wr).await;
                                result = Ended::Shutdown(Some(done));
                                break 'outer;
                            }
                        } else {
                            self.enqueue(q);
                        }
                    }
                    Some(Command::Shutdown(done)) => {
                        close_stream(&mut s, &mut wr).await;
                        result = Ended::Shutdown(Some(done));
                        break 'outer;
                    }
                    None => {
                        close_stream(&mut s, &mut wr).await;
                        result = Ended::Shutdown(None);
                        break 'outer;
                    }
                },
                Some((origin, status)) = irx.recv() => {
                    if ready {
                        let el = mapping::error_reply(ns::COMPONENT, &origin, &status);
                        self.send_el(&mut s, &el);
                    }
                }
                _ = sleep_until_opt(wake) => {
                    let now = std_now();
                    s.handle_timeout(now);
                    for (key, status) in tracker.handle_timeout(now) {
                        resolve(&mut replies, key, status);
                    }
                }
                _ = sleep_until_opt(next_expiry) => self.expire_queue(),
            }
        }
        let lost = Status::new(
            StatusCode::REQUEST_TIMEOUT,
            "XMPP link lost before the server confirmed",
        );
        for (key, status) in tracker.fail_all(&lost) {
            resolve(&mut replies, key, status);
        }
        for (_, (trans_id, reply)) in replies.drain() {
            let _ = reply.send(Outcome::failure(
                trans_id,
                StatusCode::REQUEST_TIMEOUT,
                "XMPP link lost",
            ));
        }
        self.set_status(false, None);
        let _ = wr.shutdown().await;
        result
    }

    fn send_el(&self, s: &mut ComponentSession, el: &Element) {
        match s.send_stanza(el, std_now()) {
            Ok(0) => {}
            Ok(n) => {
                warn!(link = %self.name, "dropped {n} character(s) XML 1.0 forbids from an outgoing <{}/>", el.name)
            }
            Err(e) => warn!(link = %self.name, "could not send <{}/>: {e}", el.name),
        }
    }

    /// Writes the stanzas of `batch`, then one XEP-0199 ping per destination domain as
    /// the ordering barrier of every operation in the batch bound there (see
    /// [`crate::tracker`]): at high rates one ping covers many messages.
    fn send_ops(
        &mut self,
        s: &mut ComponentSession,
        tracker: &mut DeliveryTracker,
        replies: &mut std::collections::HashMap<u64, (TransId, oneshot::Sender<Outcome>)>,
        batch: Vec<Queued>,
        now: std::time::Instant,
    ) {
        // (barrier domain, deliveries behind it: key, stanza ids, deadline)
        type Behind = Vec<(u64, Vec<String>, std::time::Instant)>;
        let mut barriers: Vec<(String, Behind)> = Vec::new();
        for q in batch {
            let trans_id = q.op.trans_id();
            let op = self.localise_source(q.op);
            let stanzas =
                match mapping::outbound(ns::COMPONENT, &op, &self.message_ids, || s.next_id()) {
                    Ok(v) => v,
                    Err(e) => {
                        debug!(link = %self.name, "refusing {}: {e}", op.kind());
                        let _ = q.reply.send(Outcome {
                            trans_id,
                            status: e.status(),
                        });
                        continue;
                    }
                };
            if stanzas.is_empty() {
                let _ = q.reply.send(Outcome::ok(trans_id));
                continue;
            }
            let mut ids = Vec::with_capacity(stanzas.len());
            for el in &stanzas {
                if let Some(id) = el.attr("id") {
                    ids.push(id.to_owned());
                }
                self.send_el(s, el);
            }
            self.next_key += 1;
            let key = self.next_key;
            let deadline = q.deadline.into_std().max(now + Duration::from_millis(1));
            replies.insert(key, (trans_id, q.reply));
            debug!(link = %self.name, trans = trans_id.0, "sent {} ({} stanza(s))", op.kind(), stanzas.len());
            let domain = op
                .destination()
                .map_or(self.domain.as_str(), |d| d.domain.as_str());
            let entry = (key, ids, deadline);
            match barriers.iter_mut().find(|(d, _)| d == domain) {
                Some((_, v)) => v.push(entry),
                None => barriers.push((domain.to_owned(), vec![entry])),
            }
        }
        for (domain, deliveries) in barriers {
            let ping = s.send_ping(&domain, now).ok();
            debug!(link = %self.name, %domain, n = deliveries.len(), "barrier ping");
            for (key, ids, deadline) in deliveries {
                tracker.track(key, &domain, ids, ping.as_deref(), deadline, now);
            }
        }
    }

    /// In component mode every `from` must be in the component's domain (Prosody 13
    /// refuses anything else). A source on another domain (`sip:carol@sip.example`)
    /// becomes `carol\40sip.example@<component>` (XEP-0106 escaping of the whole address,
    /// reversible by [`super::delocalise_destination`]).
    fn localise_source(&self, op: Operation) -> Operation {
        localise_source(&self.domain, op)
    }

    fn on_stanza(
        &mut self,
        s: &mut ComponentSession,
        tracker: &mut DeliveryTracker,
        replies: &mut std::collections::HashMap<u64, (TransId, oneshot::Sender<Outcome>)>,
        el: Element,
        itx: &mpsc::Sender<(Origin, Status)>,
    ) {
        let now = std_now();
        // Outcomes count only from the domain the stanza went to (see crate::tracker).
        let from = el.attr("from").unwrap_or("").to_owned();
        if el.name == "message" && el.attr("type") != Some("error") {
            if let Some(r) = el.child(ns::RECEIPTS, "received") {
                if let Some((key, st)) = r.attr("id").and_then(|id| tracker.on_receipt(id, &from)) {
                    resolve(replies, key, st);
                }
            }
        }
        let now_str = mapping::rfc3339(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        let domains = [self.domain.clone()];
        let ctx = Ctx {
            ns: ns::COMPONENT,
            local_domains: &domains,
            software_name: &self.cfg.software_name,
            now_rfc3339: &now_str,
            message_ids: &self.message_ids,
        };
        let trans_id = TransId(self.trans.fetch_add(1, Ordering::Relaxed));
        let settle = |id: &str, result| match tracker.on_response(id, &from, result, now) {
            Some((key, st)) => {
                resolve(replies, key, st);
                true
            }
            None => false,
        };
        let Some(inbound) = settle_response(mapping::inbound(&ctx, &el, trans_id), settle) else {
            return;
        };
        match inbound {
            Inbound::Op { mut op, origin } => {
                delocalise_destination(&mut op, &*self.ingress);
                debug!(link = %self.name, trans = trans_id.0, from = %origin.from, to = %origin.to, "inbound {}", op.kind());
                let ingress = self.ingress.clone();
                let itx = itx.clone();
                let name = self.name.clone();
                // Errors are only answered for messages and iqs; a refused presence is
                // not bounced (RFC 6121 s3 clients do not expect presence errors).
                let answer = origin.kind == "message";
                let key = lanes::order_key(&origin.kind, &origin.from, &origin.to);
                self.lanes.run(
                    key,
                    Box::pin(async move {
                        let out = ingress.submit("xmpp", op).await;
                        if !out.status.is_success() {
                            debug!(link = %name, "core refused inbound {} with {}", origin.kind, out.status.code);
                            if answer {
                                let _ = itx.send((origin, out.status)).await;
                            }
                        }
                    }),
                );
            }
            Inbound::Reply(r) => self.send_el(s, &r),
            Inbound::Response { .. } | Inbound::Receipt { .. } => {}
            Inbound::Ignore(why) => debug!(link = %self.name, "ignored stanza: {why}"),
        }
    }
}

/// Closes the stream politely and writes what the session still holds.
async fn close_stream(s: &mut ComponentSession, wr: &mut tokio::net::tcp::OwnedWriteHalf) {
    s.close(std_now());
    while let Some(bytes) = s.poll_transmit() {
        let _ = wr.write_all(&bytes).await;
    }
}

fn resolve(
    replies: &mut std::collections::HashMap<u64, (TransId, oneshot::Sender<Outcome>)>,
    key: u64,
    status: Status,
) {
    if let Some((trans_id, reply)) = replies.remove(&key) {
        let _ = reply.send(Outcome { trans_id, status });
    }
}

//! Connections of the s2s hub: I/O events of the per-connection tasks, the sans-IO
//! session each connection drives, and what the sessions report (STARTTLS per RFC 6120
//! s5.4, readiness, dialback verification, close) up to losing a connection and
//! scheduling its reconnect.

use cpim_core::StatusCode;
use std::collections::VecDeque;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;
use tracing::{debug, info, warn};

use super::net::io_task;
use super::{Conn, Hub, IoCmd, IoEvent, Pending, Retry, Session, MAX_TLS_PEERS};
use crate::backoff::Backoff;
use crate::link::std_now;
use crate::s2s::{S2sEvent, S2sIn, S2sOut};
use crate::s2s_in::PeerCert;
use crate::session::CloseReason;

impl Hub {
    /// Spawns the I/O task of a connection; an incoming one holds its `permit` until
    /// the task ends.
    pub(super) fn spawn_io(
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

    pub(super) fn on_io(&mut self, ev: IoEvent) {
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
                        was_ready: false,
                        sm_log: VecDeque::new(),
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
            IoEvent::ConnectFailed(id, code, err) => {
                debug!(conn = id, "xmpp s2s: {err}");
                // What waits for this stream learns now, not at its deadline, unless the
                // peer was up within the delivery timeout (a restart: wait for it).
                if let Some(pair) = self.conn_pair(id) {
                    let window = Duration::from_secs(self.cfg.delivery_timeout_secs);
                    let restarting = self
                        .retry_at
                        .get(&pair)
                        .and_then(|r| r.last_up)
                        .is_some_and(|t| now.saturating_duration_since(t) < window);
                    if !restarting {
                        self.fail_queue(&pair, code, &format!("s2s to {}: {err}", pair.1));
                    }
                }
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
                    self.fail_queue(
                        pair,
                        StatusCode::BAD_GATEWAY,
                        &format!("s2s to {}: {why}", pair.1),
                    );
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
    pub(super) fn pump(&mut self, id: u64) {
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

    pub(super) fn on_session_event(&mut self, id: u64, ev: S2sEvent, now: std::time::Instant) {
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
                if let Some(r) = self.retry_at.get_mut(&pair) {
                    r.backoff.reset();
                }
                if let Some(c) = self.conns.get_mut(&id) {
                    c.was_ready = true;
                }
                let pending: Vec<Pending> =
                    self.queues.remove(&pair).map(Vec::from).unwrap_or_default();
                for p in pending {
                    match p {
                        Pending::Op(q) => self.send_op(id, &pair, q),
                        Pending::Resend(k) => self.resend(id, &pair, k),
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
            S2sEvent::Acked { h } => self.on_acked(id, h),
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
                        self.fail_queue(
                            pair,
                            StatusCode::BAD_GATEWAY,
                            &format!("s2s to {} refused: {reason}", pair.1),
                        );
                    }
                }
                self.conn_gone(id, reason.to_string());
            }
        }
    }

    pub(super) fn conn_gone(&mut self, id: u64, why: String) {
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
        let sm = matches!(&c.session, Session::Out(o) if o.sm_last_sent().is_some());
        self.settle_lost(id, &pair, sm);
        self.status(&pair, Some(false), Some(why));
        let wanted = self.queues.get(&pair).is_some_and(|q| !q.is_empty())
            || self.verify_queue.get(&pair).is_some_and(|v| !v.is_empty());
        let (initial, max) = (
            Duration::from_millis(self.cfg.reconnect_initial_ms),
            Duration::from_millis(self.cfg.reconnect_max_ms),
        );
        let name = self.link_name(&pair);
        let entry = self.retry_at.entry(pair).or_insert_with(|| Retry {
            backoff: Backoff::new(initial, max),
            at: None,
            last_up: None,
        });
        if c.was_ready {
            entry.last_up = Some(std_now());
        }
        let delay = entry.backoff.next_delay(rand::random::<f64>());
        if wanted {
            entry.at = Some(TokioInstant::now() + delay);
            info!(link = %name, "xmpp s2s: reconnecting in {} ms", delay.as_millis());
        } else {
            info!(link = %name, "xmpp s2s: idle; reconnects on the next stanza");
        }
    }
}

//! Outgoing delivery in the s2s hub: an operation is mapped to stanzas and written on
//! the ready outgoing stream of its (local, remote) domain pair, behind what is already
//! queued there, followed by one XEP-0199 ping as its ordering barrier
//! ([`crate::tracker`]); without a ready stream it is queued and a stream is opened
//! (RFC 6120 s3.2 SRV lookup unless overridden).

use cpim_core::StatusCode;
use std::collections::VecDeque;
use std::time::Duration;

use cpim_core::model::{Outcome, Status};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use super::net::resolve_srv;
use super::resend::MAX_UNACKED;
use super::{Conn, Hub, IoEvent, Pair, Pending, Session, Waiting};
use crate::element::{Element, ElementExt};
use crate::link::{localise_source, std_now, Queued};
use crate::mapping;
use crate::ns;

impl Hub {
    pub(super) fn deliver(&mut self, q: Queued) {
        let Some(remote) = q.op.destination().map(|d| d.domain.clone()) else {
            let t = q.op.trans_id();
            let _ = q.reply.send(Outcome::failure(
                t,
                StatusCode::NOT_IMPLEMENTED,
                "publish is not delivered to XMPP",
            ));
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
                        StatusCode::SERVICE_UNAVAILABLE,
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

    pub(super) fn send_raw(&mut self, el: Element) {
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

    pub(super) fn ready_out(&self, pair: &Pair) -> Option<u64> {
        let id = *self.out_by_remote.get(pair)?;
        match &self.conns.get(&id)?.session {
            Session::Out(o) if o.state() == crate::s2s::OutState::Ready => Some(id),
            _ => None,
        }
    }

    pub(super) fn new_id(&mut self) -> String {
        self.ids.next_id()
    }

    pub(super) fn send_op(&mut self, conn: u64, pair: &Pair, q: Queued) {
        let trans_id = q.op.trans_id();
        let ids_gen = &mut self.ids;
        let stanzas =
            match mapping::outbound(ns::SERVER, &q.op, &self.message_ids, || ids_gen.next_id()) {
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
        self.next_key += 1;
        let key = self.next_key;
        self.replies.insert(
            key,
            Waiting {
                trans_id,
                reply: q.reply,
                deadline: q.deadline,
                conn: None,
                unacked: None,
                acked: false,
            },
        );
        self.write_delivery(conn, pair, key, stanzas);
    }

    /// Writes a delivery's stanzas on `conn`, then its barrier ping, and tracks it; on a
    /// stream with XEP-0198 the stanzas are kept (see `resend`) and an `<r/>` follows.
    pub(super) fn write_delivery(
        &mut self,
        conn: u64,
        pair: &Pair,
        key: u64,
        stanzas: Vec<Element>,
    ) {
        let now = std_now();
        let remote = pair.1.as_str();
        let ping_id = self.new_id();
        let ping = Element::build(ns::SERVER, "iq")
            .attr_set("type", "get")
            .attr_set("from", &pair.0)
            .attr_set("to", remote)
            .attr_set("id", &ping_id)
            .child_add(Element::build(ns::PING, "ping"));
        let mut ids = Vec::new();
        let mut last = None;
        if let Some(Conn {
            session: Session::Out(o),
            sm_log,
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
            last = o.sm_last_sent().filter(|_| sm_log.len() < MAX_UNACKED);
            o.send_stanza(&ping, now);
            o.request_ack(now);
            if let Some(n) = last {
                sm_log.push_back((n, key));
            }
        }
        let Some(w) = self.replies.get_mut(&key) else {
            return;
        };
        w.conn = Some(conn);
        w.unacked = last.map(|_| stanzas);
        let deadline = w.deadline.into_std().max(now + Duration::from_millis(1));
        self.tracker
            .track(key, remote, ids, Some(&ping_id), deadline, now);
        self.pump(conn);
    }

    pub(super) fn resolve(&mut self, key: u64, status: Status) {
        if let Some(w) = self.replies.remove(&key) {
            let _ = w.reply.send(Outcome {
                trans_id: w.trans_id,
                status,
            });
        }
    }

    /// Opens an outgoing stream for `pair` unless one exists or a retry is pending.
    pub(super) fn ensure_out(&mut self, pair: &Pair) {
        if self.out_by_remote.contains_key(pair) {
            return;
        }
        if self.retry_at.get(pair).is_some_and(|r| r.at.is_some()) {
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
                was_ready: false,
                sm_log: VecDeque::new(),
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
            // RFC 7247 s7.1: remote-server-not-found is 404, remote-server-timeout 408; a
            // server that refuses connections is unavailable (503): the gateway's queue
            // decides whether to keep the message (`queue.on_codes`).
            let mut last = format!("no XMPP service for {remote_s} (SRV target \".\")");
            let mut code = StatusCode::NOT_FOUND;
            for a in addrs {
                match tokio::time::timeout(connect_timeout, TcpStream::connect(&a)).await {
                    Ok(Ok(s)) => {
                        let _ = io_tx.send(IoEvent::Connected(id, s)).await;
                        return;
                    }
                    Ok(Err(e)) => {
                        last = format!("connect to {a}: {e}");
                        // A name that does not resolve stays "not found"; a host that
                        // is there but does not answer XMPP is unavailable.
                        use std::io::ErrorKind as K;
                        if matches!(
                            e.kind(),
                            K::ConnectionRefused
                                | K::ConnectionReset
                                | K::HostUnreachable
                                | K::NetworkUnreachable
                                | K::AddrNotAvailable
                        ) {
                            code = StatusCode::SERVICE_UNAVAILABLE;
                        }
                    }
                    Err(_) => {
                        last = format!("connect to {a}: timed out");
                        if code == StatusCode::NOT_FOUND {
                            code = StatusCode::REQUEST_TIMEOUT;
                        }
                    }
                }
            }
            let _ = io_tx.send(IoEvent::ConnectFailed(id, code, last)).await;
        });
    }

    /// Fails every delivery queued for `pair` with `code` and `why`.
    pub(super) fn fail_queue(&mut self, pair: &Pair, code: StatusCode, why: &str) {
        let Some(q) = self.queues.remove(pair) else {
            return;
        };
        warn!(link = %self.link_name(pair), "xmpp s2s: {} queued stanza(s) not sent: {why}", q.len());
        for p in q {
            match p {
                Pending::Op(x) => {
                    let _ = x.reply.send(Outcome::failure(x.op.trans_id(), code, why));
                }
                Pending::Resend(k) => self.resolve(k, Status::new(code, why)),
                Pending::Raw(_) => {}
            }
        }
    }
}

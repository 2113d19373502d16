//! Stanzas received from peers: who may speak on which stream (RFC 6120 s13.7, XEP-0220
//! s2.4), receipts and answers that settle our deliveries ([`crate::tracker`]), and the
//! operations handed to the core in order per sender and addressee.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use cpim_core::model::TransId;
use tracing::debug;

use super::{Conn, Hub, Session};
use crate::element::Element;
use crate::link::{delocalise_destination, settle_response};
use crate::mapping::{self, Ctx, Inbound};
use crate::ns;
use crate::s2s_in::domain_of;
use crate::tracker::jid_domain;

impl Hub {
    pub(super) fn on_stanza(&mut self, conn: u64, el: Element, now: std::time::Instant) {
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
            message_ids: &self.message_ids,
        };
        let trans_id = TransId(self.trans.fetch_add(1, Ordering::Relaxed));
        let inbound = mapping::inbound(&ctx, &el, trans_id);
        let settle = |id: &str, result| match self.tracker.on_response(id, &from, result, now) {
            Some((key, st)) => {
                self.resolve(key, st);
                true
            }
            None => false,
        };
        let Some(inbound) = settle_response(inbound, settle) else {
            return;
        };
        match inbound {
            Inbound::Op { mut op, origin } => {
                delocalise_destination(&mut op, &*self.ingress);
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
            Inbound::Response { .. } | Inbound::Receipt { .. } => {}
            Inbound::Ignore(why) => debug!("ignored stanza: {why}"),
        }
    }
}

//! SUBSCRIBE and NOTIFY.
//!
//! SUBSCRIBE (RFC 6665, RFC 3856): a SIP watcher subscribes to a presentity the core
//! knows (`presence.winfo`, RFC 3857, goes to [`super::winfo`]); the sans-IO notifier ([`crate::app::presence::notifier`]) decides, the core is
//! asked for a new subscription, and the answer carries the dialog's Expires and the
//! gateway's Contact. NOTIFY: the presence agents the gateway subscribed to
//! ([`crate::app::presence::subscriber`]) report state; a NOTIFY outside any dialog gets
//! 481 (RFC 6665 s4.1.3).

use std::sync::Arc;

use cpim_core::model::{Operation, Subscribe};
use cpim_core::pidf;

use crate::codec::{new_tag, HeaderName, Request, Response};

use super::super::identity::Authn;
use super::super::incoming::Incoming;
use super::super::presence::notifier::{is_winfo, SubscribeDecision, SubscribeRequest};
use super::super::presence::subscriber::IncomingNotify;
use super::super::tu::{now_secs, outcome_reply, reply, Reply, Tu};
use super::winfo::ALLOW_EVENTS;

impl Tu {
    pub(in crate::app) async fn on_subscribe(self: &Arc<Self>, inc: &Incoming<'_>) -> Reply {
        let (req, src) = (inc.req, inc.src);
        let now = now_secs();
        let from = match inc.address_of_from() {
            Ok(a) => a,
            Err(r) => return r,
        };
        let to = match inc.address_of_to() {
            Ok(a) => a,
            Err(r) => return r,
        };
        if let Authn::Respond(r) = self.authenticate(req, src, from, false, now) {
            return r;
        }
        let (Some(from_p), Some(to_p)) = (&inc.from, &inc.to) else {
            return reply(req, 400, None);
        };
        let Some(from_tag) = from_p.tag else {
            return reply(req, 400, Some("Missing From Tag"));
        };
        let contact = req
            .contacts()
            .next()
            .and_then(Result::ok)
            .map(|c| c.uri.raw.to_owned());
        // The presentity: the Request-URI names it (To may be the same).
        let presentity = inc.user_request_uri().unwrap_or(to);
        if to_p.tag.is_none() && req.expires() != Some(0) {
            if let Some(r) = self.over_subscription_cap(req, presentity, src) {
                return r;
            }
        }
        let sreq = SubscribeRequest {
            call_id: inc.call_id.to_owned(),
            from_uri: from_p.uri.to_owned(),
            from_tag: from_tag.to_owned(),
            to_uri: to_p.uri.to_owned(),
            to_tag: to_p.tag.map(str::to_owned),
            event: req.header(HeaderName::Event).map(str::to_owned),
            expires: req.expires(),
            cseq: req.cseq().seq,
            contact,
            record_route: req
                .header_all(HeaderName::RecordRoute)
                .flat_map(crate::codec::split_list)
                .map(str::to_owned)
                .collect(),
            flow: Some(src.flow().to_string()),
            watcher: from.bare(),
            presentity: presentity.bare(),
        };
        let local_tag = new_tag();
        if is_winfo(sreq.event.as_deref()) {
            return self.on_winfo_subscribe(req, sreq, &local_tag, now);
        }
        let watcher = sreq.watcher.clone();
        let target = sreq.presentity.clone();
        // RFC 5263 (Accept: application/pidf-diff+xml) and RFC 4660 (a filter body).
        let accept: Vec<&str> = req.header_all(HeaderName::Accept).collect();
        let body = (!req.body().is_empty())
            .then(|| (req.content_type().unwrap_or(""), req.body().as_ref()));
        let decision = self
            .lock()
            .notifier
            .handle_subscribe_with(sreq, &accept, body, &local_tag, now);
        match decision {
            SubscribeDecision::Reject {
                code,
                reason,
                min_expires,
            } => {
                let mut b = refusal(req, code, reason, min_expires);
                if code == 489 {
                    b = b.header(HeaderName::AllowEvents, ALLOW_EVENTS);
                }
                if code == 415 {
                    b = b.header(HeaderName::Accept, cpim_core::filter::CONTENT_TYPE);
                }
                b
            }
            SubscribeDecision::Answer { expires } => self.subscribe_ok(req, 200, expires, None),
            SubscribeDecision::Submit { key, duration } => {
                let op = Operation::Subscribe(Subscribe {
                    trans_id: self.trans_id(),
                    watcher,
                    target,
                    duration,
                });
                let outcome = self.submit(op).await;
                let answered = self.lock().notifier.core_answered(
                    &key,
                    outcome.status.code.as_u16(),
                    now_secs(),
                );
                match answered {
                    Some((code, expires)) if (200..300).contains(&code) => {
                        self.subscribe_ok(req, code, expires, Some(&local_tag))
                    }
                    _ => outcome_reply(req, &outcome),
                }
            }
        }
    }

    pub(in crate::app) fn subscribe_ok(
        &self,
        req: &Request,
        code: u16,
        expires: u32,
        tag: Option<&str>,
    ) -> Reply {
        Response::for_request_tagged(req, code, None, tag)
            .header(HeaderName::Expires, &expires.to_string())
            .header(HeaderName::Contact, &self.contact_header())
    }

    pub(in crate::app) fn on_notify(self: &Arc<Self>, inc: &Incoming<'_>) -> Reply {
        let req = inc.req;
        let to_tag = inc.to.as_ref().and_then(|p| p.tag);
        let from_tag = inc.from.as_ref().and_then(|p| p.tag);
        let (Some(to_tag), Some(from_tag)) = (to_tag, from_tag) else {
            return reply(req, 481, Some("Subscription Does Not Exist"));
        };
        let presence = if req.body().is_empty() {
            None
        } else {
            match pidf::parse(req.body()) {
                Ok(p) => Some(p),
                Err(e) => return reply(req, 400, Some(&format!("Bad PIDF: {e}"))),
            }
        };
        let n = IncomingNotify {
            call_id: inc.call_id.to_owned(),
            to_tag: to_tag.to_owned(),
            from_tag: from_tag.to_owned(),
            cseq: req.cseq().seq,
            event: req.header(HeaderName::Event).map(str::to_owned),
            subscription_state: req.header(HeaderName::SubscriptionState).map(str::to_owned),
            contact: req
                .contacts()
                .next()
                .and_then(Result::ok)
                .map(|c| c.uri.raw.to_owned()),
            presence,
        };
        let (code, reason) = self.lock().subscriber.handle_notify(n, now_secs());
        reply(req, code, Some(reason))
    }
}

/// A SUBSCRIBE refused with `code`, with Min-Expires for a 423 (RFC 6665 s4.2.1.1).
pub(in crate::app) fn refusal(
    req: &Request,
    code: u16,
    reason: &'static str,
    min_expires: Option<u32>,
) -> Reply {
    let b = Response::for_request(req, code, Some(reason));
    match min_expires {
        Some(m) => b.header(HeaderName::MinExpires, &m.to_string()),
        None => b,
    }
}

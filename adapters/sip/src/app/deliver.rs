//! Outbound delivery: core operations to the SIP side.
//!
//! - MESSAGE (RFC 3428): to a local user, forked to every registered binding (the first
//!   2xx wins, RFC 3261 s16.7); elsewhere, to the Request-URI through the outbound proxy
//!   or RFC 3263 resolution. `hops_left` goes out as Max-Forwards as it is: the router
//!   has already counted this hop.
//! - SUBSCRIBE / unsubscribe toward SIP presence agents (RFC 6665) through the sans-IO
//!   subscriber, and the NOTIFYs of the notifier toward SIP watchers (RFC 3856).
//!
//! Challenged requests are answered by the digest client ([`super::auth_client`]).

use cpim_core::StatusCode;
use std::sync::Arc;

use bytes::Bytes;
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Notify, Operation, Outcome, Subscribe, SubscriptionState};
use cpim_core::pidf;

use crate::codec::{new_tag, HeaderName, Method, Request};
use crate::transport::Transport;

use super::auth_client::OutRequest;
use super::message;
use super::method::compose;
use super::presence::notifier::{OutgoingNotify, WINFO_EVENT};
use super::presence::subscriber::{OutgoingSubscribe, SubscriberOutput};
use super::tu::{aor_of, now_secs, NextHop, Tu, WireError};

impl Tu {
    /// Delivers a core operation to the SIP side.
    pub async fn deliver(self: &Arc<Self>, op: Operation) -> Outcome {
        let tid = op.trans_id();
        let out = match op {
            Operation::Message(m) => self.deliver_message(m).await,
            Operation::Subscribe(s) => self.deliver_subscribe(s).await,
            Operation::Unsubscribe(s) => self.deliver_unsubscribe(s).await,
            Operation::Notify(n) => {
                let reached = self.lock().notifier.handle_core_notify(&n, now_secs());
                if reached == 0 {
                    Outcome::failure(
                        tid,
                        StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
                        "Subscription Does Not Exist",
                    )
                } else {
                    Outcome::ok(tid)
                }
            }
            Operation::Publish(_) => Outcome::failure(
                tid,
                StatusCode::NOT_IMPLEMENTED,
                "Publish is not delivered to SIP",
            ),
            _ => Outcome::failure(tid, StatusCode::NOT_IMPLEMENTED, "Not Implemented"),
        };
        self.drain_outputs();
        out
    }

    async fn deliver_message(self: &Arc<Self>, m: cpim_core::model::Message) -> Outcome {
        let tid = m.trans_id;
        let o = match message::outbound(&m, self.config.max_message_size) {
            Ok(o) => o,
            Err(r) => return Outcome::failure(tid, r.code, r.reason),
        };
        let call_id = o
            .call_id
            .clone()
            .unwrap_or_else(|| format!("{}@cpim", new_tag()));
        let from = format!("<{}>;tag={}", o.from, new_tag());
        let mut headers = vec![];
        if let Some(s) = &o.subject {
            headers.push((HeaderName::Subject, s.clone()));
        }
        let bare = Some((o.content_type.clone(), Bytes::from(m.body.clone())));
        let essence = m.mime_type();
        // The CPIM form, made once when some target takes it (see message::wrap).
        let wrapped = std::sync::OnceLock::new();
        let body_for = |cpim: bool| {
            if cpim {
                let b = wrapped.get_or_init(|| {
                    Bytes::from(message::wrap(&m, now_secs(), || {
                        format!("{}@cpim", new_tag())
                    }))
                });
                Some(("message/cpim".to_owned(), b.clone()))
            } else {
                bare.clone()
            }
        };
        let make = |ruri: String, body: Option<(String, Bytes)>| {
            OutRequest {
                method: Method::Message,
                ruri,
                from: from.clone(),
                to: format!("<{}>", o.to),
                call_id: call_id.clone(),
                cseq: self.next_cseq(),
                routes: Vec::new(),
                headers: headers.clone(),
                max_forwards: o.max_forwards,
                body,
            }
            .with_language(o.content_language.as_deref())
        };
        let dest = &m.destination;
        if self.config.is_local_domain(&dest.domain) && !self.config.proxy_mode() {
            // A user the configured user list does not have is not "temporarily"
            // unavailable: 404 (RFC 3261 s21.4.5), so nothing queues for it.
            if !self
                .config
                .user_exists(dest.user.as_deref().unwrap_or(""), &dest.domain)
            {
                return Outcome::failure(tid, StatusCode::NOT_FOUND, "Not Found");
            }
            let aor = aor_of(dest);
            let targets: Vec<(String, Option<String>, bool)> = self
                .lock()
                .registrar
                .lookup(&aor, now_secs())
                .into_iter()
                .map(|b| (b.contact.clone(), b.flow.clone(), b.cpim))
                .collect();
            if targets.is_empty() {
                return Outcome::failure(
                    tid,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "Temporarily Unavailable",
                );
            }
            // Fork to every binding; the first 2xx wins (RFC 3261 s16.7 simplified:
            // otherwise the lowest failure code, a 6xx first).
            let mut set = tokio::task::JoinSet::new();
            let policy = self
                .config
                .cpim_wrap_for(dest.user.as_deref().unwrap_or(""), &dest.domain);
            for (contact, flow, learned) in targets {
                let this = Arc::clone(self);
                let cpim = message::should_wrap(&essence, policy, learned);
                let mut req = make(contact.clone(), body_for(cpim));
                // A UA that refuses the envelope (415, RFC 3428 s7) gets the payload bare;
                // an IMDN has no bare form.
                let retry = (cpim && essence != cpim_core::imdn::CONTENT_TYPE)
                    .then(|| make(contact.clone(), bare.clone()));
                set.spawn(async move {
                    let hop = match flow {
                        Some(f) => NextHop::Flow(f),
                        None => NextHop::Uri(contact),
                    };
                    let first = this.send_authenticated(&mut req, hop.clone()).await;
                    match (first, retry) {
                        (Ok(r), Some(mut bare)) if r.code() == 415 => {
                            this.send_authenticated(&mut bare, hop).await
                        }
                        (first, _) => first,
                    }
                });
            }
            let mut best: Option<(StatusCode, String)> = None;
            while let Some(res) = set.join_next().await {
                let (code, reason) = match res {
                    Ok(Ok(r)) => (StatusCode::new(r.code()), r.reason().to_owned()),
                    Ok(Err(WireError::Timeout)) => {
                        (StatusCode::REQUEST_TIMEOUT, "Request Timeout".to_owned())
                    }
                    Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                    Err(_) => (
                        StatusCode::SERVER_INTERNAL_ERROR,
                        "Server Internal Error".to_owned(),
                    ),
                };
                if code.is_success() {
                    set.abort_all();
                    return Outcome {
                        trans_id: tid,
                        status: cpim_core::model::Status::new(code, reason),
                    };
                }
                let better = match &best {
                    None => true,
                    Some((b, _)) => {
                        (code >= 600 && *b < 600) || (code < *b && (*b < 600 || code >= 600))
                    }
                };
                if better {
                    best = Some((code, reason));
                }
            }
            let (code, reason) = best.unwrap_or((
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "Temporarily Unavailable".into(),
            ));
            return Outcome::failure(tid, code, reason);
        }
        let mut req = make(
            o.to.clone(),
            body_for(message::should_wrap(&essence, self.config.cpim_wrap, false)),
        );
        let hop = self.hop_for(&o.to, &[]);
        match self.send_authenticated(&mut req, hop).await {
            Ok(r) => Outcome {
                trans_id: tid,
                status: cpim_core::model::Status::new(r.code(), r.reason()),
            },
            Err(WireError::Timeout) => {
                Outcome::failure(tid, StatusCode::REQUEST_TIMEOUT, "Request Timeout")
            }
            Err(e) => Outcome::failure(tid, StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }

    async fn deliver_subscribe(self: &Arc<Self>, s: Subscribe) -> Outcome {
        let tid = s.trans_id;
        let now = now_secs();
        if self.config.is_local_domain(&s.target.domain) && !self.config.proxy_mode() {
            // A presentity of our own domain: its state is what it PUBLISHed here.
            let (presence, _) = {
                let st = self.lock();
                compose(&st.publications.documents(&aor_of(&s.target), now))
            };
            let this = Arc::clone(self);
            let n = Notify {
                trans_id: self.trans_id(),
                watcher: s.watcher.clone(),
                target: s.target.clone(),
                state: SubscriptionState::Active {
                    expires: s.duration,
                },
                presence: Some(presence),
            };
            tokio::spawn(async move {
                let _ = this.submit(Operation::Notify(n)).await;
            });
            return Outcome::ok(tid);
        }
        let limits = &self.config.subscription;
        let duration = if s.duration == 0 {
            0
        } else {
            s.duration.clamp(limits.min, limits.max)
        };
        let local_uri = message::sip_uri(&s.watcher.bare());
        let target_uri = message::sip_uri(&s.target.bare());
        let key = self.lock().subscriber.subscribe(
            s.watcher,
            s.target,
            local_uri,
            target_uri,
            duration,
            format!("{}@cpim", new_tag()),
            new_tag(),
            now,
        );
        // The SUBSCRIBE just queued: send it here so the outcome is its response.
        let first = self.take_subscribe(&key);
        let code = match first {
            Some(sub) => self.send_subscribe(sub).await,
            None => 500,
        };
        self.drain_outputs();
        if (200..300).contains(&code) {
            Outcome::ok(tid)
        } else {
            Outcome::failure(tid, code, crate::codec::reason_phrase(code))
        }
    }

    /// Takes the queued SUBSCRIBE of dialog `key` out of the subscriber's output queue,
    /// leaving the other outputs in order.
    fn take_subscribe(&self, key: &str) -> Option<OutgoingSubscribe> {
        let mut st = self.lock();
        let all: Vec<SubscriberOutput> =
            std::iter::from_fn(|| st.subscriber.poll_output()).collect();
        let mut found = None;
        for o in all {
            match o {
                SubscriberOutput::Subscribe(s) if found.is_none() && s.dialog.key() == key => {
                    found = Some(s);
                }
                other => st.subscriber.requeue(other),
            }
        }
        found
    }

    async fn deliver_unsubscribe(self: &Arc<Self>, s: Subscribe) -> Outcome {
        let tid = s.trans_id;
        // Without a subscription there is nothing to end: still a success (the
        // watcher's wish is fulfilled), as RFC 8048 s5 unsubscribe handling expects.
        let _found = self.lock().subscriber.unsubscribe(&s.watcher, &s.target);
        self.drain_outputs();
        Outcome::ok(tid)
    }

    /// Sends a NOTIFY: `body` (media type, text) when given, else the PIDF of its presence.
    pub(super) async fn send_notify(
        &self,
        n: OutgoingNotify,
        body: Option<(&'static str, String)>,
    ) -> u16 {
        let d = &n.dialog;
        let mut b = Request::builder(&Method::Notify, &d.remote_target)
            .header(HeaderName::MaxForwards, "70")
            .header(
                HeaderName::From,
                &format!("<{}>;tag={}", d.local_uri, d.local_tag),
            )
            .header(
                HeaderName::To,
                &format!(
                    "<{}>;tag={}",
                    d.remote_uri,
                    d.remote_tag.as_deref().unwrap_or("")
                ),
            )
            .header(HeaderName::CallId, &d.call_id)
            .header(HeaderName::CSeq, &format!("{} NOTIFY", d.local_cseq))
            .header(HeaderName::Contact, &self.contact_header())
            .header(
                HeaderName::Event,
                if n.winfo.is_some() {
                    WINFO_EVENT
                } else {
                    "presence"
                },
            )
            .header(HeaderName::SubscriptionState, &n.subscription_state);
        for r in &d.route_set {
            b = b.header(HeaderName::Route, r);
        }
        if let Some(xml) = n.winfo.filter(|x| !x.is_empty()) {
            b = b.body(cpim_core::watcherinfo::CONTENT_TYPE, Bytes::from(xml));
        } else if let Some((ct, text)) = body {
            b = b.body(ct, Bytes::from(text));
        } else if let Some(mut p) = n.presence {
            if p.entity.is_none() {
                p.entity = Address::parse(&d.presentity)
                    .ok()
                    .map(|a| a.bare().with_scheme(Scheme::Pres));
            }
            match pidf::encode(&p) {
                Ok(xml) => b = b.body("application/pidf+xml", Bytes::from(xml)),
                Err(e) => tracing::warn!(error = %e, "PIDF encoding failed; NOTIFY without body"),
            }
        }
        let req = match b.build_request() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not build NOTIFY");
                return 500;
            }
        };
        let hop = match &d.flow {
            Some(f) if d.route_set.is_empty() => NextHop::Flow(f.clone()),
            _ => NextHop::Uri(first_hop(&d.route_set, &d.remote_target)),
        };
        match self.wire.send_request(req, hop).await {
            Ok(r) => r.code(),
            Err(WireError::Timeout) => 408,
            Err(_) => 503,
        }
    }

    /// Sends a SUBSCRIBE of the subscriber and feeds its response back; returns the code.
    pub(super) async fn send_subscribe(&self, s: OutgoingSubscribe) -> u16 {
        let d = &s.dialog;
        let key = d.key();
        let mut to = format!("<{}>", d.remote_uri);
        if let Some(t) = &d.remote_tag {
            to.push_str(";tag=");
            to.push_str(t);
        }
        let mut out = OutRequest {
            method: Method::Subscribe,
            ruri: d.remote_target.clone(),
            from: format!("<{}>;tag={}", d.local_uri, d.local_tag),
            to,
            call_id: d.call_id.clone(),
            cseq: d.local_cseq,
            routes: d.route_set.clone(),
            headers: vec![
                (HeaderName::Event, "presence".into()),
                (HeaderName::Expires, s.expires.to_string()),
                (HeaderName::Accept, "application/pidf+xml".into()),
                (HeaderName::Contact, self.contact_header()),
            ],
            max_forwards: 70,
            body: None,
        };
        let hop = self.hop_for(&out.ruri, &d.route_set);
        let resp = self.send_authenticated(&mut out, hop).await;
        let now = now_secs();
        let (code, to_tag, contact, rr, expires) = match &resp {
            Ok(r) => (
                r.code(),
                r.to_tag().map(str::to_owned),
                r.contacts()
                    .next()
                    .and_then(Result::ok)
                    .map(|c| c.uri.raw.to_owned()),
                r.header_all(HeaderName::RecordRoute)
                    .flat_map(crate::codec::split_list)
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
                r.expires(),
            ),
            Err(WireError::Timeout) => (408, None, None, Vec::new(), None),
            Err(_) => (503, None, None, Vec::new(), None),
        };
        if out.cseq != d.local_cseq {
            // An authenticated retry used more CSeq numbers: keep the dialog in step.
            let mut st = self.lock();
            st.subscriber.bump_cseq(&key, out.cseq);
        }
        self.lock().subscriber.handle_response(
            &key,
            code,
            to_tag.as_deref(),
            contact.as_deref(),
            &rr,
            expires,
            now,
        )
    }

    fn hop_for(&self, ruri: &str, routes: &[String]) -> NextHop {
        if let Some(p) = &self.config.outbound_proxy {
            if routes.is_empty() {
                let t = p.transport.unwrap_or(Transport::Udp);
                return NextHop::Uri(format!("sip:{};transport={};lr", p.address, t.name()));
            }
        }
        NextHop::Uri(first_hop(routes, ruri))
    }
}

/// The first hop of a request: the first Route if any (loose routing), else the target.
fn first_hop(routes: &[String], target: &str) -> String {
    routes
        .first()
        .map(|r| {
            r.trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| target.to_owned())
}

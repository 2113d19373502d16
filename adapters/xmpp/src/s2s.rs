//! RFC 6120 server-to-server streams, sans-IO: the outgoing (initiating) and incoming
//! (receiving) state machines, with STARTTLS (s5), SASL EXTERNAL where offered (s6,
//! XEP-0178) and Server Dialback (XEP-0220) with keys per XEP-0185.
//!
//! TLS itself is the transport's job: when a session emits [`S2sEvent::StartTls`] the
//! caller upgrades the connection (client role for an outgoing stream, server role for an
//! incoming one) and calls `tls_established`, after which the session restarts the stream
//! (RFC 6120 s5.4.3.3). Dialback verification against the authoritative server is the
//! caller's job too: an incoming session emits [`S2sEvent::VerifyKey`] and waits for
//! [`S2sIn::verify_done`]; an outgoing session carries `<db:verify/>` requests
//! ([`S2sOut::send_verify`]) and reports their answers ([`S2sEvent::VerifyAnswer`]). The
//! caller must match an answer to the request by the outgoing stream it arrived on and by
//! its (stream id, from, to): see `link::s2s` (XEP-0220 s2.4). The incoming stream lives in
//! [`crate::s2s_in`].
//!
//! TLS policy: an outgoing stream created with `require_tls` sends nothing but STARTTLS to
//! a peer; a peer that does not offer it gets `<policy-violation/>` and no dialback key.
//!
//! An outgoing stream's state is an enum whose variants hold what that state needs: what
//! TLS and SASL secured so far (kept across the restarts of RFC 6120 s5.4.3.3 and
//! s6.4.6), the peer's stream id the dialback key is bound to, the ping awaiting an
//! answer once ready. [`OutState`] is its flat public view.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::element::{Element, ElementExt};
use crate::ns;
pub(crate) use crate::s2s_core::{b64, constant_eq, header, new_id, stream_error_of, Core};
use crate::session::CloseReason;
use crate::sm::{Ack, Sm};
use crate::stream::{Limits, StreamEvent};

/// The server stream namespace, also at [`crate::ns::SERVER`].
pub use crate::ns::SERVER as NS_SERVER;

/// XEP-0185 s3: `HMAC-SHA256(hex(SHA256(secret)), receiving + ' ' + originating + ' ' + id)`,
/// lower-case hex.
pub fn dialback_key(secret: &str, receiving: &str, originating: &str, stream_id: &str) -> String {
    let k = hex::encode(Sha256::digest(secret.as_bytes()));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(k.as_bytes()).expect("any key length");
    mac.update(receiving.as_bytes());
    mac.update(b" ");
    mac.update(originating.as_bytes());
    mac.update(b" ");
    mac.update(stream_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// What an s2s session reports.
#[derive(Clone, Debug, PartialEq)]
pub enum S2sEvent {
    /// Upgrade the transport to TLS now, then call `tls_established`.
    StartTls,
    /// Outgoing: authenticated; stanzas may be sent.
    Ready {
        /// How: `sasl-external` or `dialback`.
        method: &'static str,
    },
    /// Incoming: the peer claims `from` with dialback key `key`; verify it with the
    /// authoritative server of `from` and call [`S2sIn::verify_done`].
    VerifyKey {
        /// The originating (claimed) domain.
        from: String,
        /// Our domain it wants to talk to.
        to: String,
        /// The key.
        key: String,
        /// The id of this incoming stream (part of the key).
        stream_id: String,
    },
    /// Incoming: `domain` is authenticated on this stream.
    Authenticated {
        /// The peer domain.
        domain: String,
    },
    /// Outgoing: the authoritative server's answer to a `<db:verify/>` we sent.
    VerifyAnswer {
        /// The stream id the verify was about.
        id: String,
        /// The domain that answered (authoritative).
        from: String,
        /// Our domain.
        to: String,
        /// `type='valid'`.
        valid: bool,
    },
    /// A stanza.
    Stanza(Element),
    /// Outgoing, XEP-0198: the peer has handled the first `h` stanzas sent since
    /// `<enable/>` (numbers from [`S2sOut::sm_last_sent`]).
    Acked {
        /// The peer's count, modulo 2^32.
        h: u32,
    },
    /// The stream is over.
    Closed(CloseReason),
}

/// State of an outgoing stream, as seen from outside ([`S2sOut::state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutState {
    /// Waiting for the peer's header.
    AwaitHeader,
    /// Waiting for `<stream:features/>`.
    AwaitFeatures,
    /// `<starttls/>` sent.
    AwaitProceed,
    /// The transport is doing TLS.
    TlsPending,
    /// SASL EXTERNAL sent.
    AwaitSasl,
    /// `<db:result/>` sent.
    AwaitDialback,
    /// Authenticated.
    Ready,
    /// Over.
    Closed,
}

/// How far SASL EXTERNAL (RFC 6120 s6, XEP-0178) got on an outgoing stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sasl {
    NotTried,
    /// `<auth/>` sent once: never again on this connection.
    Tried,
    /// `<success/>`: the restarted stream is authenticated.
    Succeeded,
}

/// What an outgoing stream has secured so far; it outlives the stream restarts after
/// TLS (RFC 6120 s5.4.3.3) and SASL (s6.4.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Secured {
    tls: bool,
    sasl: Sasl,
}

/// A stream whose header the peer sent: what is secured, and the id the peer gave the
/// stream, to which the dialback key is bound (XEP-0185).
#[derive(Clone, Debug)]
struct Opened {
    secured: Secured,
    stream_id: Option<String>,
}

/// An authenticated stream and its liveness ping (XEP-0199) awaiting an answer.
#[derive(Clone, Copy, Debug)]
struct Authenticated {
    secured: Secured,
    ping_deadline: Option<Instant>,
}

/// Where an outgoing stream is, each state holding what it needs; the flat public view
/// is [`OutState`].
#[derive(Clone, Debug)]
enum Out {
    AwaitHeader(Secured),
    AwaitFeatures(Opened),
    AwaitProceed(Opened),
    TlsPending(Secured),
    AwaitSasl(Opened),
    AwaitDialback(Opened),
    Ready(Authenticated),
    Closed(Secured),
}

impl Out {
    fn public(&self) -> OutState {
        match self {
            Out::AwaitHeader(_) => OutState::AwaitHeader,
            Out::AwaitFeatures(_) => OutState::AwaitFeatures,
            Out::AwaitProceed(_) => OutState::AwaitProceed,
            Out::TlsPending(_) => OutState::TlsPending,
            Out::AwaitSasl(_) => OutState::AwaitSasl,
            Out::AwaitDialback(_) => OutState::AwaitDialback,
            Out::Ready(_) => OutState::Ready,
            Out::Closed(_) => OutState::Closed,
        }
    }

    fn secured(&self) -> Secured {
        match self {
            Out::AwaitHeader(s) | Out::TlsPending(s) | Out::Closed(s) => *s,
            Out::AwaitFeatures(o)
            | Out::AwaitProceed(o)
            | Out::AwaitSasl(o)
            | Out::AwaitDialback(o) => o.secured,
            Out::Ready(a) => a.secured,
        }
    }

    fn is_ready(&self) -> bool {
        matches!(self, Out::Ready(_))
    }

    fn is_closed(&self) -> bool {
        matches!(self, Out::Closed(_))
    }
}

/// An outgoing s2s stream from `local` to `remote`.
#[derive(Debug)]
pub struct S2sOut {
    local: String,
    remote: String,
    secret: String,
    require_tls: bool,
    core: Core,
    state: Out,
    verifies: Vec<(String, String, String, String)>,
    liveness: Option<Liveness>,
    last_rx: Instant,
    ping_ids: Vec<String>,
    next_ping: u64,
    /// The last features offered XEP-0198 (`<sm xmlns='urn:xmpp:sm:3'/>`).
    sm_offered: bool,
    /// XEP-0198 counters once `<enable/>` is sent (dropped on `<failed/>`).
    sm: Option<Sm>,
}

/// Liveness of an outgoing stream (RFC 6120 s4.6, XEP-0199): after `ping_interval` with
/// no sign of life from the peer a ping goes out; when nothing proves the peer alive
/// within `ping_timeout` the stream is declared dead. Before the stream is ready,
/// `ping_timeout` of silence during negotiation is fatal as well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// Silence before a ping.
    pub ping_interval: Duration,
    /// Time after a ping (or of silence during negotiation) before the stream is dead.
    pub ping_timeout: Duration,
}

impl S2sOut {
    /// A new stream; `require_tls` refuses a peer that offers no STARTTLS.
    pub fn new(
        local: &str,
        remote: &str,
        secret: &str,
        require_tls: bool,
        limits: Limits,
        keepalive: Duration,
        now: Instant,
    ) -> S2sOut {
        S2sOut {
            local: local.to_owned(),
            remote: remote.to_owned(),
            secret: secret.to_owned(),
            require_tls,
            core: Core::new(limits, keepalive, now),
            state: Out::AwaitHeader(Secured {
                tls: false,
                sasl: Sasl::NotTried,
            }),
            verifies: Vec::new(),
            liveness: None,
            last_rx: now,
            ping_ids: Vec::new(),
            next_ping: 0,
            sm_offered: false,
            sm: None,
        }
    }

    /// Turns on pings and the negotiation timeout (off by default).
    pub fn with_liveness(mut self, liveness: Liveness) -> S2sOut {
        self.liveness = Some(liveness);
        self
    }

    /// The peer proved alive outside this stream: an `<iq type='result'/>` or
    /// `type='error'` from the remote domain arrived (on the peer's stream to us), which
    /// answers a request we sent on this stream. Clears an outstanding ping.
    pub fn note_alive(&mut self, now: Instant) {
        self.last_rx = now;
        self.clear_ping();
    }

    fn clear_ping(&mut self) {
        if let Out::Ready(a) = &mut self.state {
            a.ping_deadline = None;
        }
    }

    /// True when `id` is one of this stream's own liveness pings.
    pub fn is_own_ping(&self, id: &str) -> bool {
        self.ping_ids.iter().any(|p| p == id)
    }

    /// The state.
    pub fn state(&self) -> OutState {
        self.state.public()
    }

    /// The remote domain.
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// True once TLS is up.
    pub fn is_tls(&self) -> bool {
        self.state.secured().tls
    }

    /// Sends the header.
    pub fn start(&mut self, now: Instant) {
        let h = header(&self.local, Some(&self.remote), None);
        self.core.push(h, now);
    }

    /// The transport finished the TLS handshake: restart the stream.
    pub fn tls_established(&mut self, now: Instant) {
        let secured = Secured {
            tls: true,
            ..self.state.secured()
        };
        self.last_rx = now;
        self.core.parser.reset();
        self.state = Out::AwaitHeader(secured);
        self.start(now);
    }

    /// Asks the peer (as authoritative server) to verify a key (XEP-0220 s2.1.2). Sent
    /// as soon as the stream allows it.
    pub fn send_verify(&mut self, from: &str, to: &str, id: &str, key: &str, now: Instant) {
        self.verifies.push((
            from.to_owned(),
            to.to_owned(),
            id.to_owned(),
            key.to_owned(),
        ));
        self.flush_verifies(now);
    }

    fn flush_verifies(&mut self, now: Instant) {
        if !matches!(
            self.state,
            Out::AwaitDialback(_) | Out::Ready(_) | Out::AwaitSasl(_)
        ) {
            return;
        }
        for (from, to, id, key) in std::mem::take(&mut self.verifies) {
            let el = Element::build(ns::DIALBACK, "verify")
                .attr_set("from", from)
                .attr_set("to", to)
                .attr_set("id", id)
                .text_add(key);
            self.core.send(&el, now);
        }
    }

    /// Sends a stanza (only when ready). Returns the count of dropped characters.
    pub fn send_stanza(&mut self, el: &Element, now: Instant) -> Option<usize> {
        if !self.state.is_ready() {
            return None;
        }
        let n = el.invalid_chars();
        self.send_counted(el, now);
        Some(n)
    }

    fn send_counted(&mut self, el: &Element, now: Instant) {
        self.core.send(el, now);
        if let Some(sm) = &mut self.sm {
            if crate::sm::is_stanza(el) {
                sm.sent();
            }
        }
    }

    /// XEP-0198: the number of the last stanza sent since `<enable/>` (0 before the
    /// first), or `None` without stream management (not offered, or `<failed/>`).
    pub fn sm_last_sent(&self) -> Option<u32> {
        self.sm.as_ref().map(Sm::last_sent)
    }

    /// XEP-0198 s4: asks the peer for its count, unless nothing was sent since the last
    /// `<r/>` or everything sent is acknowledged.
    pub fn request_ack(&mut self, now: Instant) {
        if let Some(r) = self.sm.as_mut().and_then(Sm::request) {
            self.core.send(&r, now);
        }
    }

    /// XEP-0198 nonzas from the peer.
    fn on_sm(&mut self, el: &Element, now: Instant) {
        let Some(sm) = &mut self.sm else { return };
        match el.name.as_str() {
            "failed" => self.sm = None,
            "r" => {
                let a = sm.answer();
                self.core.send(&a, now);
            }
            "a" => match sm.on_ack(el) {
                Some(Ack::Handled { h, newly }) => {
                    if newly > 0 {
                        self.core.events.push_back(S2sEvent::Acked { h });
                    }
                    self.request_ack(now);
                }
                Some(Ack::TooHigh { h, sent }) => self.core.stream_error(
                    "undefined-condition",
                    &format!("h={h} acknowledges more than the {sent} stanza(s) sent (XEP-0198 handled-count-too-high)"),
                    now,
                ),
                None => self
                    .core
                    .stream_error("invalid-xml", "<a/> without a numeric h", now),
            },
            _ => {}
        }
    }

    /// Authenticated: enables XEP-0198 when the features offered it (s3), then reports.
    fn become_ready(&mut self, secured: Secured, method: &'static str, now: Instant) {
        self.state = Out::Ready(Authenticated {
            secured,
            ping_deadline: None,
        });
        if self.sm_offered {
            self.core.send(&Element::build(ns::SM, "enable"), now);
            self.sm = Some(Sm::default());
        }
        self.core.events.push_back(S2sEvent::Ready { method });
        self.flush_verifies(now);
    }

    /// Closes politely (XEP-0198 s7: with a last `<a/>` when counting).
    pub fn close(&mut self, now: Instant) {
        if !self.state.is_closed() {
            if let Some(sm) = &self.sm {
                let a = sm.answer();
                self.core.send(&a, now);
            }
            self.core.push("</stream:stream>".into(), now);
            self.set_closed();
            self.core.close_with(CloseReason::LocalClose);
        }
    }

    fn set_closed(&mut self) {
        self.state = Out::Closed(self.state.secured());
    }

    /// The transport closed.
    pub fn handle_eof(&mut self) {
        self.set_closed();
        self.core.close_with(CloseReason::PeerClosed);
    }

    /// Bytes from the peer.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.last_rx = now;
        self.clear_ping();
        self.core.parser.feed(data);
        while !self.core.closed {
            let Some(ev) = self.core.parser.next_event() else {
                break;
            };
            match ev {
                Ok(StreamEvent::Header(h)) => {
                    let stream_id = h.attr("id").map(str::to_owned);
                    if h.default_ns != ns::SERVER {
                        self.core
                            .stream_error("invalid-namespace", "expected jabber:server", now);
                    } else {
                        self.state = Out::AwaitFeatures(Opened {
                            secured: self.state.secured(),
                            stream_id,
                        });
                    }
                }
                Ok(StreamEvent::Stanza(el)) => self.on_element(el, now),
                Ok(StreamEvent::End) => {
                    self.core.push("</stream:stream>".into(), now);
                    self.core.close_with(CloseReason::PeerClosed);
                }
                Err(e) => {
                    let t = e.to_string();
                    self.core.stream_error(e.condition(), &t, now);
                }
            }
        }
        if self.core.closed {
            self.set_closed();
        }
    }

    /// XEP-0220 s2.1.1: the dialback key for this stream (bound to the peer's stream id
    /// and to our (local, remote) pair, XEP-0185).
    fn dialback(&mut self, opened: Opened, now: Instant) {
        let Some(id) = opened.stream_id.as_deref() else {
            self.core
                .stream_error("invalid-xml", "stream header without id", now);
            return;
        };
        let key = dialback_key(&self.secret, &self.remote, &self.local, id);
        let el = Element::build(ns::DIALBACK, "result")
            .attr_set("from", &self.local)
            .attr_set("to", &self.remote)
            .text_add(key);
        self.core.send(&el, now);
        self.state = Out::AwaitDialback(opened);
        self.flush_verifies(now);
    }

    /// The peer's features (RFC 6120 s4.3.2): STARTTLS first when offered, TLS required
    /// when configured, then SASL EXTERNAL once when offered over TLS, else dialback.
    fn on_features(&mut self, el: &Element, mut opened: Opened, now: Instant) {
        let secured = opened.secured;
        self.sm_offered = el.child(ns::SM, "sm").is_some();
        let starttls = el.child(ns::TLS, "starttls").is_some();
        if !secured.tls && starttls {
            self.core.send(&Element::build(ns::TLS, "starttls"), now);
            self.state = Out::AwaitProceed(opened);
            return;
        }
        if !secured.tls && self.require_tls {
            self.core.stream_error(
                "policy-violation",
                "TLS is required but the peer does not offer STARTTLS",
                now,
            );
            return;
        }
        if secured.sasl == Sasl::Succeeded {
            self.become_ready(secured, "sasl-external", now);
            return;
        }
        let external = el.child(ns::SASL, "mechanisms").is_some_and(|m| {
            m.elements()
                .any(|x| x.name == "mechanism" && x.trimmed_text() == "EXTERNAL")
        });
        if secured.tls && external && secured.sasl == Sasl::NotTried {
            opened.secured.sasl = Sasl::Tried;
            // RFC 6120 s6.4.2 / XEP-0178: the authorization identity is the
            // domain, base64 of it.
            let auth = Element::build(ns::SASL, "auth")
                .attr_set("mechanism", "EXTERNAL")
                .text_add(b64(self.local.as_bytes()));
            self.core.send(&auth, now);
            self.state = Out::AwaitSasl(opened);
            return;
        }
        self.dialback(opened, now);
    }

    fn on_element(&mut self, el: Element, now: Instant) {
        if el.is(ns::STREAM, "error") {
            let r = stream_error_of(&el);
            let r = if matches!(self.state, Out::AwaitDialback(_) | Out::AwaitSasl(_)) {
                CloseReason::AuthFailed(r.to_string())
            } else {
                r
            };
            self.core.push("</stream:stream>".into(), now);
            self.core.close_with(r);
            return;
        }
        match (&self.state, el.ns.as_str(), el.name.as_str()) {
            (Out::AwaitFeatures(o), ns::STREAM, "features") => {
                let o = o.clone();
                self.on_features(&el, o, now);
            }
            (Out::AwaitProceed(o), ns::TLS, "proceed") => {
                self.state = Out::TlsPending(o.secured);
                self.core.events.push_back(S2sEvent::StartTls);
            }
            (Out::AwaitProceed(_), ns::TLS, "failure") => {
                self.core.push("</stream:stream>".into(), now);
                self.core
                    .close_with(CloseReason::AuthFailed("peer refused STARTTLS".into()));
            }
            (Out::AwaitSasl(o), ns::SASL, "success") => {
                let secured = Secured {
                    sasl: Sasl::Succeeded,
                    ..o.secured
                };
                self.core.parser.reset();
                self.state = Out::AwaitHeader(secured);
                self.start(now);
            }
            (Out::AwaitSasl(o), ns::SASL, "failure") => {
                // Fall back to dialback on the same stream (XEP-0220 s2.1 allows it after
                // a SASL failure).
                let o = o.clone();
                self.dialback(o, now);
            }
            (_, ns::DIALBACK, "result") => {
                let valid = el.attr("type") == Some("valid");
                match &self.state {
                    Out::AwaitDialback(o) if valid => {
                        let secured = o.secured;
                        self.become_ready(secured, "dialback", now);
                    }
                    _ if !valid => {
                        self.core.push("</stream:stream>".into(), now);
                        self.core.close_with(CloseReason::AuthFailed(format!(
                            "dialback refused by {} (type {:?})",
                            self.remote,
                            el.attr("type")
                        )));
                    }
                    _ => {}
                }
            }
            (_, ns::DIALBACK, "verify") => {
                self.core.events.push_back(S2sEvent::VerifyAnswer {
                    id: el.attr("id").unwrap_or("").to_owned(),
                    from: el.attr("from").unwrap_or("").to_owned(),
                    to: el.attr("to").unwrap_or("").to_owned(),
                    valid: el.attr("type") == Some("valid"),
                });
            }
            (Out::Ready(_), ns::SM, _) => self.on_sm(&el, now),
            (Out::Ready(_), _, _) => {
                // RFC 6120 s13 (and XEP-0288 for bidirectional streams): on the stream we
                // opened, the peer speaks only for the domain we connected to, and only to
                // the domain we are on this stream.
                let from = el.attr("from").map(crate::s2s_in::domain_of);
                let to = el.attr("to").map(crate::s2s_in::domain_of);
                let is =
                    |d: Option<String>, want: &str| d.is_some_and(|d| d.eq_ignore_ascii_case(want));
                if is(from, &self.remote) && is(to, &self.local) {
                    if let Some(sm) = &mut self.sm {
                        sm.handled();
                    }
                    self.core.events.push_back(S2sEvent::Stanza(el));
                } else {
                    self.core.stream_error(
                        "invalid-from",
                        &format!(
                            "{} may send only from {} to {} on this stream",
                            self.remote, self.remote, self.local
                        ),
                        now,
                    );
                    self.set_closed();
                }
            }
            _ => {}
        }
    }

    /// Next bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.core.out.pop_front()
    }
    /// Next event.
    pub fn poll_event(&mut self) -> Option<S2sEvent> {
        self.core.events.pop_front()
    }
    /// Next timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.core.closed || self.state.is_closed() {
            return None;
        }
        let live = self.liveness.map(|l| match &self.state {
            Out::Ready(a) => a.ping_deadline.unwrap_or(self.last_rx + l.ping_interval),
            _ => self.last_rx + l.ping_timeout,
        });
        let ka = self
            .state
            .is_ready()
            .then(|| self.core.keepalive_due())
            .flatten();
        match (live, ka) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    /// Timer fired: keep-alive, ping, dead-peer and negotiation timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.core.closed || self.state.is_closed() {
            return;
        }
        if let Some(l) = self.liveness {
            match &self.state {
                Out::Ready(a) => match a.ping_deadline {
                    Some(d) if now >= d => {
                        self.dead(now, "no answer to ping; peer is dead");
                        return;
                    }
                    Some(_) => {}
                    None if now >= self.last_rx + l.ping_interval => self.ping(l, now),
                    None => {}
                },
                _ if now >= self.last_rx + l.ping_timeout => {
                    self.dead(now, "no answer during stream negotiation");
                    return;
                }
                _ => {}
            }
        }
        if self.state.is_ready() {
            self.core.on_timeout(now);
        }
    }

    /// XEP-0199: a liveness ping on a ready stream.
    fn ping(&mut self, l: Liveness, now: Instant) {
        self.next_ping += 1;
        let id = format!("live-{}-{}", self.next_ping, new_id());
        let iq = Element::build(ns::SERVER, "iq")
            .attr_set("type", "get")
            .attr_set("from", &self.local)
            .attr_set("to", &self.remote)
            .attr_set("id", &id)
            .child_add(Element::build(ns::PING, "ping"));
        self.send_counted(&iq, now);
        self.ping_ids.push(id);
        if self.ping_ids.len() > 8 {
            self.ping_ids.remove(0);
        }
        if let Out::Ready(a) = &mut self.state {
            a.ping_deadline = Some(now + l.ping_timeout);
        }
    }

    fn dead(&mut self, now: Instant, why: &'static str) {
        self.core.push("</stream:stream>".into(), now);
        self.set_closed();
        self.core.close_with(CloseReason::Timeout(why));
    }
}

pub use crate::s2s_in::S2sIn;

#[cfg(test)]
#[path = "s2s_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "s2s_sm_tests.rs"]
mod sm_tests;

//! RFC 6120 incoming (receiving) server-to-server stream, sans-IO: STARTTLS offer (s5),
//! SASL EXTERNAL with the peer's TLS certificate (s6.4, XEP-0178), Server Dialback
//! (XEP-0220) as receiving and as authoritative server.
//!
//! Authorization is per (from, to) domain pair (RFC 6120 s13): SASL authorizes the
//! stream's pair, each dialback `<db:result/>` the pair it names once the authoritative
//! server said `valid` ([`S2sIn::verify_done`]). A stanza whose pair was not proven gets
//! `<invalid-from/>`. With TLS required, nothing but STARTTLS is accepted before TLS.
//! Deadlines ([`S2sIn::with_deadlines`]) count from the connection, so a peer trickling
//! bytes cannot stay unauthenticated for long.
//!
//! The stream's state is an enum whose variants hold what that state needs: what TLS
//! and SASL secured (kept across restarts), the id of the current stream, and once the
//! headers are exchanged our domain and the peer's claimed one.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::element::{Element, ElementExt};
use crate::ns;
use crate::s2s::{constant_eq, dialback_key, header, new_id, stream_error_of, Core, S2sEvent};
use crate::session::CloseReason;
use crate::sm::Sm;
use crate::stream::{Limits, StreamEvent};

/// An (originating, receiving) domain pair, lower case.
type Pair = (String, String);

/// Dialback requests one incoming stream may have waiting for the authoritative server;
/// each costs an outgoing connection, so a stream may not ask for many.
pub const MAX_PENDING_DIALBACK: usize = 16;

/// The certificate a peer presented in TLS, as far as SASL EXTERNAL cares: the domains
/// it is valid for, as the caller's trust store decides (RFC 6120 s13.7.2); see
/// [`crate::tls::Trust::valid_for`].
pub struct PeerCert(Box<dyn Fn(&str) -> bool + Send>);

impl PeerCert {
    /// A certificate valid for the domains `valid_for` says yes to.
    pub fn new(valid_for: impl Fn(&str) -> bool + Send + 'static) -> PeerCert {
        PeerCert(Box::new(valid_for))
    }

    fn valid_for(&self, domain: &str) -> bool {
        (self.0)(domain)
    }
}

impl std::fmt::Debug for PeerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerCert")
    }
}

fn b64_decode(t: &str) -> Option<String> {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    String::from_utf8(b).ok()
}

/// The domain of a JID, lower case.
pub(crate) fn domain_of(jid: &str) -> String {
    let bare = jid.split('/').next().unwrap_or("");
    bare.rsplit('@').next().unwrap_or("").to_ascii_lowercase()
}

/// What an incoming stream has secured so far; it outlives the stream restarts after
/// TLS (RFC 6120 s5.4.3.3) and SASL (s6.4.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Secured {
    tls: bool,
    /// SASL EXTERNAL succeeded (once per connection).
    sasl: bool,
}

/// An incoming stream whose headers were exchanged.
#[derive(Debug)]
struct Opened {
    secured: Secured,
    stream_id: String,
    /// Our domain on the stream.
    local: String,
    /// The `from` of the peer's header, lower case.
    peer_from: Option<String>,
}

/// Where an incoming stream is, each state holding what it needs.
#[derive(Debug)]
enum In {
    /// A new or restarted stream: our header (with this id) answers the peer's.
    AwaitHeader { secured: Secured, stream_id: String },
    /// Headers exchanged: STARTTLS, SASL, dialback and stanzas may come.
    Open(Opened),
}

impl In {
    fn secured(&self) -> Secured {
        match self {
            In::AwaitHeader { secured, .. } => *secured,
            In::Open(o) => o.secured,
        }
    }

    fn stream_id(&self) -> &str {
        match self {
            In::AwaitHeader { stream_id, .. } => stream_id,
            In::Open(o) => &o.stream_id,
        }
    }

    fn is_open(&self) -> bool {
        matches!(self, In::Open(_))
    }
}

/// An incoming s2s stream.
#[derive(Debug)]
pub struct S2sIn {
    local_domains: Vec<String>,
    secret: String,
    tls_available: bool,
    require_tls: bool,
    core: Core,
    state: In,
    /// (originating, receiving) pairs proven on this stream (RFC 6120 s13, XEP-0220 s2.4).
    authenticated: HashSet<Pair>,
    /// Pairs with a `<db:result/>` awaiting the authoritative server's answer.
    pending: HashSet<Pair>,
    idle: Option<Duration>,
    last_rx: Instant,
    /// When the connection came; the deadlines count from here.
    born: Instant,
    /// The first stream header must come before `born + open`.
    open: Option<Duration>,
    /// A domain must be authenticated before `born + auth`.
    auth: Option<Duration>,
    /// A stream header came on this connection.
    opened: bool,
    /// The certificate the peer presented in TLS, if any.
    peer_cert: Option<PeerCert>,
    /// XEP-0198 counters once the peer enabled stream management.
    sm: Option<Sm>,
}

impl S2sIn {
    /// A new incoming stream; `tls_available` offers STARTTLS, `require_tls` refuses
    /// dialback before TLS.
    pub fn new(
        local_domains: &[String],
        secret: &str,
        tls_available: bool,
        require_tls: bool,
        limits: Limits,
        keepalive: Duration,
        now: Instant,
    ) -> S2sIn {
        S2sIn {
            local_domains: local_domains.to_vec(),
            secret: secret.to_owned(),
            tls_available,
            require_tls,
            core: Core::new(limits, keepalive, now),
            state: In::AwaitHeader {
                secured: Secured::default(),
                stream_id: new_id(),
            },
            authenticated: HashSet::new(),
            pending: HashSet::new(),
            idle: None,
            last_rx: now,
            born: now,
            open: None,
            auth: None,
            opened: false,
            peer_cert: None,
            sm: None,
        }
    }

    /// Closes the stream with a `<connection-timeout/>` stream error (RFC 6120
    /// s4.9.3.4) after `idle` without any input from the peer (off by default).
    pub fn with_idle_timeout(mut self, idle: Duration) -> S2sIn {
        self.idle = Some(idle);
        self
    }

    /// Deadlines counted from the connection, whatever the peer trickles meanwhile: the
    /// stream header within `open`, an authenticated domain (STARTTLS, SASL or dialback
    /// included) within `auth`. Past either the stream is closed with
    /// `<connection-timeout/>` (RFC 6120 s4.9.3.4). Off by default.
    pub fn with_deadlines(mut self, open: Option<Duration>, auth: Option<Duration>) -> S2sIn {
        self.open = open;
        self.auth = auth;
        self
    }

    fn deadline(&self) -> Option<(Instant, &'static str)> {
        let open = self
            .open
            .filter(|_| !self.opened)
            .map(|d| (self.born + d, "no stream header"));
        let auth = self
            .auth
            .filter(|_| self.authenticated.is_empty())
            .map(|d| (self.born + d, "no domain authenticated"));
        match (open, auth) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The id of the current stream.
    pub fn stream_id(&self) -> &str {
        self.state.stream_id()
    }

    /// The (originating, receiving) domain pairs authenticated on this stream.
    pub fn authenticated(&self) -> impl Iterator<Item = (&str, &str)> {
        self.authenticated
            .iter()
            .map(|(f, t)| (f.as_str(), t.as_str()))
    }

    /// True when TLS is up.
    pub fn is_tls(&self) -> bool {
        self.state.secured().tls
    }

    /// The transport finished TLS: expect a new header.
    pub fn tls_established(&mut self) {
        let secured = Secured {
            tls: true,
            ..self.state.secured()
        };
        self.restart(secured);
    }

    /// The transport finished TLS and the peer presented a certificate: SASL EXTERNAL is
    /// offered for the domains `cert` is valid for (XEP-0178 s3).
    pub fn tls_established_with_cert(&mut self, cert: Option<PeerCert>) {
        self.peer_cert = cert;
        self.tls_established();
    }

    /// RFC 6120 s5.4.3.3 / s6.4.6: after TLS or SASL the peer sends a new header.
    fn restart(&mut self, secured: Secured) {
        self.state = In::AwaitHeader {
            secured,
            stream_id: new_id(),
        };
        self.core.parser.reset();
    }

    /// RFC 6120 s6.4 / XEP-0178 s3: SASL EXTERNAL for the stream's `from` domain, with
    /// the certificate presented in TLS. The authorization identity, when given, must be
    /// that domain. Success authorizes the (from, to) pair and restarts the stream.
    fn on_sasl_auth(&mut self, el: &Element, now: Instant) {
        let fail = |me: &mut S2sIn, cond: &str| {
            me.core.push(
                format!("<failure xmlns='{}'><{cond}/></failure>", ns::SASL),
                now,
            );
        };
        let secured = self.state.secured();
        if !secured.tls || secured.sasl || el.attr("mechanism") != Some("EXTERNAL") {
            return fail(self, "invalid-mechanism");
        }
        let (from, local) = match &self.state {
            In::Open(Opened {
                peer_from: Some(f),
                local,
                ..
            }) => (f.clone(), local.clone()),
            _ => return fail(self, "not-authorized"),
        };
        let authzid = match el.trimmed_text().as_str() {
            "" | "=" => from.clone(),
            t => match b64_decode(t) {
                Some(a) => a.to_ascii_lowercase(),
                None => return fail(self, "incorrect-encoding"),
            },
        };
        if authzid != from {
            return fail(self, "invalid-authzid");
        }
        if !self.peer_cert.as_ref().is_some_and(|c| c.valid_for(&from)) {
            return fail(self, "not-authorized");
        }
        self.core
            .push(format!("<success xmlns='{}'/>", ns::SASL), now);
        self.authenticated.insert((from.clone(), local));
        self.core
            .events
            .push_back(S2sEvent::Authenticated { domain: from });
        self.restart(Secured {
            sasl: true,
            ..secured
        });
    }

    /// The answer of the authoritative server about a key (XEP-0220 s2.1.4). Applies only
    /// to a pair this stream asked for with `<db:result/>` and that is still pending;
    /// returns false (and changes nothing) otherwise. A valid answer authorizes exactly
    /// that (from, to) pair on this stream.
    pub fn verify_done(&mut self, from: &str, to: &str, valid: bool, now: Instant) -> bool {
        let pair = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
        if self.core.closed || !self.pending.remove(&pair) {
            return false;
        }
        let el = Element::build(ns::DIALBACK, "result")
            .attr_set("from", to)
            .attr_set("to", from)
            .attr_set("type", if valid { "valid" } else { "invalid" });
        self.core.send(&el, now);
        if valid {
            self.core.events.push_back(S2sEvent::Authenticated {
                domain: pair.0.clone(),
            });
            self.authenticated.insert(pair);
        }
        true
    }

    /// Closes politely (XEP-0198 s7: with a last `<a/>`, so that the peer resends only
    /// what we did not handle).
    pub fn close(&mut self, now: Instant) {
        if !self.core.closed {
            if let Some(sm) = &self.sm {
                let a = sm.answer();
                self.core.send(&a, now);
            }
            self.core.push("</stream:stream>".into(), now);
            self.core.close_with(CloseReason::LocalClose);
        }
    }

    /// The transport closed.
    pub fn handle_eof(&mut self) {
        self.core.close_with(CloseReason::PeerClosed);
    }

    /// Bytes from the peer.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.last_rx = now;
        self.core.parser.feed(data);
        while !self.core.closed {
            let Some(ev) = self.core.parser.next_event() else {
                break;
            };
            match ev {
                Ok(StreamEvent::Header(h)) => self.on_header(h, now),
                Ok(StreamEvent::Stanza(el)) => self.on_element(el, now),
                Ok(StreamEvent::End) => {
                    self.core.push("</stream:stream>".into(), now);
                    self.core.close_with(CloseReason::PeerClosed);
                }
                Err(e) => {
                    if !self.state.is_open() {
                        let h = header(
                            self.local_domains.first().map_or("", String::as_str),
                            None,
                            Some(self.state.stream_id()),
                        );
                        self.core.push(h, now);
                    }
                    let t = e.to_string();
                    self.core.stream_error(e.condition(), &t, now);
                }
            }
        }
    }

    fn on_header(&mut self, h: crate::stream::StreamHeader, now: Instant) {
        let to = h.attr("to").unwrap_or("").to_ascii_lowercase();
        let from = h.attr("from").map(str::to_owned);
        let peer_from = from.as_deref().map(str::to_ascii_lowercase);
        let local = if self.local_domains.contains(&to) {
            to.clone()
        } else {
            self.local_domains.first().cloned().unwrap_or_default()
        };
        let secured = self.state.secured();
        let stream_id = self.state.stream_id().to_owned();
        self.core
            .push(header(&local, from.as_deref(), Some(&stream_id)), now);
        self.state = In::Open(Opened {
            secured,
            stream_id,
            local,
            peer_from: peer_from.clone(),
        });
        self.opened = true;
        if h.default_ns != ns::SERVER {
            self.core
                .stream_error("invalid-namespace", "expected jabber:server", now);
            return;
        }
        if !to.is_empty() && !self.local_domains.contains(&to) {
            self.core
                .stream_error("host-unknown", &format!("{to} is not served here"), now);
            return;
        }
        let mut f = String::from("<stream:features>");
        if !secured.tls && self.tls_available {
            f.push_str(&format!("<starttls xmlns='{}'>", ns::TLS));
            if self.require_tls {
                f.push_str("<required/>");
            }
            f.push_str("</starttls>");
        }
        let external = secured.tls
            && !secured.sasl
            && peer_from
                .as_deref()
                .zip(self.peer_cert.as_ref())
                .is_some_and(|(d, c)| c.valid_for(d));
        if external {
            f.push_str(&format!(
                "<mechanisms xmlns='{}'><mechanism>EXTERNAL</mechanism></mechanisms>",
                ns::SASL
            ));
        }
        if secured.tls || !self.require_tls {
            f.push_str(&format!(
                "<dialback xmlns='{}'><errors/></dialback>",
                ns::DIALBACK_FEATURE
            ));
        }
        // XEP-0198 s2: offered once the peer is authenticated, which on a stream
        // restarted after SASL it is (a dialback stream's features precede its
        // authentication, as Prosody's do).
        if secured.sasl {
            f.push_str(&format!("<sm xmlns='{}'><optional/></sm>", ns::SM));
        }
        f.push_str("</stream:features>");
        self.core.push(f, now);
    }

    fn on_element(&mut self, el: Element, now: Instant) {
        if el.is(ns::STREAM, "error") {
            let r = stream_error_of(&el);
            self.core.push("</stream:stream>".into(), now);
            self.core.close_with(r);
            return;
        }
        let tls = self.state.secured().tls;
        match (el.ns.as_str(), el.name.as_str()) {
            (ns::SASL, "auth") => self.on_sasl_auth(&el, now),
            (ns::SM, "enable") if self.authenticated.is_empty() || self.sm.is_some() => {
                // XEP-0198 s3: only after authentication, and once.
                let f = Element::build(ns::SM, "failed")
                    .child_add(Element::build(ns::STANZAS, "unexpected-request"));
                self.core.send(&f, now);
            }
            (ns::SM, "enable") => {
                self.sm = Some(Sm::default());
                self.core.send(&Element::build(ns::SM, "enabled"), now);
            }
            (ns::SM, "r") => {
                if let Some(sm) = &self.sm {
                    let a = sm.answer();
                    self.core.send(&a, now);
                }
            }
            // Nothing is sent on an incoming stream but dialback: no count to take.
            (ns::SM, _) => {}
            (ns::TLS, "starttls") => {
                if tls || !self.tls_available {
                    self.core.push(
                        format!("<failure xmlns='{}'/></stream:stream>", ns::TLS),
                        now,
                    );
                    self.core.close_with(CloseReason::StreamError {
                        condition: "starttls refused".into(),
                        text: None,
                    });
                } else {
                    self.core
                        .push(format!("<proceed xmlns='{}'/>", ns::TLS), now);
                    self.core.events.push_back(S2sEvent::StartTls);
                }
            }
            (ns::DIALBACK, "result") => {
                if self.require_tls && !tls {
                    self.core
                        .stream_error("policy-violation", "STARTTLS first", now);
                    return;
                }
                let from = el.attr("from").unwrap_or("").to_ascii_lowercase();
                let to = el.attr("to").unwrap_or("").to_ascii_lowercase();
                if from.is_empty() || !self.local_domains.contains(&to) {
                    // XEP-0220 s2.4: item-not-found for an unknown target domain.
                    let e = Element::build(ns::DIALBACK, "result")
                        .attr_set("from", &to)
                        .attr_set("to", &from)
                        .attr_set("type", "error")
                        .child_add(
                            Element::build(ns::SERVER, "error")
                                .attr_set("type", "cancel")
                                .child_add(Element::build(ns::STANZAS, "item-not-found")),
                        );
                    self.core.send(&e, now);
                    return;
                }
                if self.pending.len() >= MAX_PENDING_DIALBACK
                    && !self.pending.contains(&(from.clone(), to.clone()))
                {
                    self.core.stream_error(
                        "policy-violation",
                        &format!("more than {MAX_PENDING_DIALBACK} dialback requests pending"),
                        now,
                    );
                    return;
                }
                self.pending.insert((from.clone(), to.clone()));
                self.core.events.push_back(S2sEvent::VerifyKey {
                    from,
                    to,
                    key: el.trimmed_text(),
                    stream_id: self.state.stream_id().to_owned(),
                });
            }
            (ns::DIALBACK, "verify") => {
                if self.require_tls && !tls {
                    self.core
                        .stream_error("policy-violation", "STARTTLS first", now);
                    return;
                }
                // We are the authoritative server (XEP-0220 s2.1.3): was this key ours?
                let receiving = el.attr("from").unwrap_or("");
                let originating = el.attr("to").unwrap_or("");
                let id = el.attr("id").unwrap_or("");
                let expected = dialback_key(&self.secret, receiving, originating, id);
                let valid = self
                    .local_domains
                    .iter()
                    .any(|d| d == &originating.to_ascii_lowercase())
                    && constant_eq(expected.as_bytes(), el.trimmed_text().as_bytes());
                let ans = Element::build(ns::DIALBACK, "verify")
                    .attr_set("from", originating)
                    .attr_set("to", receiving)
                    .attr_set("id", id)
                    .attr_set("type", if valid { "valid" } else { "invalid" });
                self.core.send(&ans, now);
            }
            _ => {
                let from_domain = el.attr("from").map(domain_of).unwrap_or_default();
                let to_domain = el.attr("to").map(domain_of).unwrap_or_default();
                if self
                    .authenticated
                    .contains(&(from_domain.clone(), to_domain.clone()))
                {
                    if let Some(sm) = &mut self.sm {
                        sm.handled();
                    }
                    self.core.events.push_back(S2sEvent::Stanza(el));
                } else {
                    // RFC 6120 s4.9.3.9 / s13: a stanza whose (from, to) domain pair was
                    // not proven on this stream.
                    self.core.stream_error(
                        "invalid-from",
                        &format!(
                            "{from_domain:?} is not authenticated for {to_domain:?} on this stream"
                        ),
                        now,
                    );
                }
            }
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
        if self.core.closed {
            return None;
        }
        let ka = (!self.authenticated.is_empty())
            .then(|| self.core.keepalive_due())
            .flatten();
        let idle = self.idle.map(|d| self.last_rx + d);
        [ka, idle, self.deadline().map(|d| d.0)]
            .into_iter()
            .flatten()
            .min()
    }
    /// Timer fired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.core.closed {
            return;
        }
        let why = match (self.idle, self.deadline()) {
            (Some(d), _) if now >= self.last_rx + d => {
                Some(format!("no traffic for {} s", d.as_secs()))
            }
            (_, Some((at, what))) if now >= at => Some(format!(
                "{what} within {} s of connecting",
                (at - self.born).as_secs()
            )),
            _ => None,
        };
        if let Some(why) = why {
            if !self.state.is_open() {
                // Our header first: the stream error closes the stream, nothing follows.
                let h = header(
                    self.local_domains.first().map_or("", String::as_str),
                    None,
                    Some(self.state.stream_id()),
                );
                self.core.push(h, now);
            }
            self.core.stream_error("connection-timeout", &why, now);
            return;
        }
        if !self.authenticated.is_empty() {
            self.core.on_timeout(now);
        }
    }
}

//! The XEP-0114 component session, sans-IO.
//!
//! States: `Init` -> (start) `AwaitHeader` -> (server header with `id`) `AwaitHandshake`
//! -> (`<handshake/>`) `Ready` -> `Closed`. Input comes through [`ComponentSession::handle_input`]
//! and [`ComponentSession::handle_timeout`]; output through `poll_transmit`, `poll_event`
//! and `poll_timeout`. Time is passed in.
//!
//! Liveness (RFC 6120 s4.6, XEP-0199): after `keepalive` of outgoing silence a single
//! space is sent; after `ping_interval` of incoming silence an XEP-0199 ping goes to the
//! server, and if nothing at all arrives within `ping_timeout` the session closes with
//! [`CloseReason::Timeout`].
//!
//! Stanza ids ([`ComponentSession::next_id`]) are 128 random bits, never a counter: the
//! outcome of a delivery is matched by id, so an id must not be guessable.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use crate::element::{Element, ElementExt};
use crate::ns;
use crate::stream::{Limits, StreamError, StreamEvent, StreamParser};
use crate::tracker::StanzaIds;

/// The component stream namespace, also at [`crate::ns::COMPONENT`].
pub use crate::ns::COMPONENT as NS_COMPONENT;

/// Largest output buffer built by joining consecutive writes.
const COALESCE_BYTES: usize = 64 * 1024;

/// Liveness timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Outgoing silence before a whitespace keep-alive.
    pub keepalive: Duration,
    /// Incoming silence before a ping.
    pub ping_interval: Duration,
    /// Time after a ping within which some input must arrive.
    pub ping_timeout: Duration,
    /// Time allowed for the header and handshake.
    pub handshake_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            keepalive: Duration::from_secs(60),
            ping_interval: Duration::from_secs(120),
            ping_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
        }
    }
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The server refused the handshake (wrong secret or unknown component).
    AuthFailed(String),
    /// The server sent a stream error.
    StreamError {
        /// RFC 6120 s4.9.3 condition.
        condition: String,
        /// Its `<text/>`, if any.
        text: Option<String>,
    },
    /// The input could not be parsed; a stream error was sent.
    Parse(StreamError),
    /// Nothing arrived within the ping timeout, or the handshake took too long.
    Timeout(&'static str),
    /// The server closed the stream.
    PeerClosed,
    /// We closed it.
    LocalClose,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::AuthFailed(t) => write!(f, "handshake refused: {t}"),
            CloseReason::StreamError { condition, text } => {
                write!(f, "stream error <{condition}/>")?;
                if let Some(t) = text {
                    write!(f, ": {t}")?;
                }
                Ok(())
            }
            CloseReason::Parse(e) => write!(f, "bad input from server: {e}"),
            CloseReason::Timeout(what) => write!(f, "timeout: {what}"),
            CloseReason::PeerClosed => f.write_str("server closed the stream"),
            CloseReason::LocalClose => f.write_str("closed locally"),
        }
    }
}

/// What the session reports.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// The handshake succeeded: stanzas may flow.
    Ready,
    /// A stanza from the server.
    Stanza(Element),
    /// The session is over; the transport should be closed.
    Closed(CloseReason),
}

/// The state of a component session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Nothing sent yet.
    Init,
    /// Our header is out, waiting for the server's.
    AwaitHeader,
    /// Handshake sent, waiting for the answer.
    AwaitHandshake,
    /// Open for stanzas.
    Ready,
    /// Over.
    Closed,
}

/// Using a session in the wrong state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Stanzas can only be sent once the session is ready.
    #[error("the session is not ready (state {0:?})")]
    NotReady(State),
}

/// One XEP-0114 component session.
#[derive(Debug)]
pub struct ComponentSession {
    domain: String,
    secret: String,
    timing: Timing,
    parser: StreamParser,
    state: State,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    started: Instant,
    last_rx: Instant,
    last_tx: Instant,
    ping_deadline: Option<Instant>,
    own_pings: Vec<String>,
    ids: StanzaIds,
}

impl ComponentSession {
    /// A session for component `domain` with the shared `secret`.
    pub fn new(domain: &str, secret: &str, timing: Timing, limits: Limits, now: Instant) -> Self {
        ComponentSession {
            domain: domain.to_owned(),
            secret: secret.to_owned(),
            timing,
            parser: StreamParser::new(limits),
            state: State::Init,
            out: VecDeque::new(),
            events: VecDeque::new(),
            started: now,
            last_rx: now,
            last_tx: now,
            ping_deadline: None,
            own_pings: Vec::new(),
            ids: StanzaIds::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The component domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Sends the stream header (XEP-0114 s3).
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Init {
            return;
        }
        self.started = now;
        self.last_rx = now;
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' to='{}'>",
            ns::COMPONENT,
            ns::STREAM,
            xml_attr(&self.domain)
        );
        self.push_out(header.into_bytes(), now);
        self.state = State::AwaitHeader;
    }

    /// A fresh stanza id: 128 random bits ([`StanzaIds`]), so that no other party can
    /// guess the id of a stanza it did not see and forge its outcome.
    pub fn next_id(&mut self) -> String {
        self.ids.next_id()
    }

    /// Queues a stanza. Characters XML 1.0 forbids are dropped by the writer; the
    /// returned count says how many (the caller logs it).
    pub fn send_stanza(&mut self, stanza: &Element, now: Instant) -> Result<usize, SessionError> {
        if self.state != State::Ready {
            return Err(SessionError::NotReady(self.state));
        }
        let dropped = stanza.invalid_chars();
        self.push_out(stanza.to_xml().into_bytes(), now);
        Ok(dropped)
    }

    /// Sends an XEP-0199 ping to `to` and returns its id.
    pub fn send_ping(&mut self, to: &str, now: Instant) -> Result<String, SessionError> {
        let id = self.next_id();
        let iq = ping_iq(&self.domain, to, &id);
        self.send_stanza(&iq, now)?;
        Ok(id)
    }

    /// Closes the stream politely.
    pub fn close(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if self.state != State::Init {
            self.push_out(b"</stream:stream>".to_vec(), now);
        }
        self.finish(CloseReason::LocalClose);
    }

    /// Bytes received from the server.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.last_rx = now;
        self.ping_deadline = None;
        self.parser.feed(data);
        while self.state != State::Closed {
            let Some(ev) = self.parser.next_event() else {
                break;
            };
            match ev {
                Ok(StreamEvent::Header(h)) => {
                    if self.state != State::AwaitHeader {
                        continue;
                    }
                    let Some(id) = h.attr("id") else {
                        self.fail_local("invalid-xml", "stream header without id", now);
                        return;
                    };
                    let digest = Sha1::digest(format!("{id}{}", self.secret).as_bytes());
                    let hs = format!("<handshake>{}</handshake>", hex::encode(digest));
                    self.push_out(hs.into_bytes(), now);
                    self.state = State::AwaitHandshake;
                }
                Ok(StreamEvent::Stanza(el)) => self.on_element(el, now),
                Ok(StreamEvent::End) => {
                    self.push_out(b"</stream:stream>".to_vec(), now);
                    self.finish(CloseReason::PeerClosed);
                }
                Err(e) => {
                    let text = e.to_string();
                    self.send_stream_error(e.condition(), &text, now);
                    self.finish(CloseReason::Parse(e));
                }
            }
        }
    }

    /// The transport closed (EOF or error).
    pub fn handle_eof(&mut self) {
        if self.state != State::Closed {
            self.finish(CloseReason::PeerClosed);
        }
    }

    fn on_element(&mut self, el: Element, now: Instant) {
        if el.is(ns::STREAM, "error") {
            let condition = el
                .elements()
                .find(|c| c.ns == ns::STREAM_ERRORS && c.name != "text")
                .map(|c| c.name.clone())
                .unwrap_or_else(|| "undefined-condition".into());
            let text = el
                .child(ns::STREAM_ERRORS, "text")
                .map(|t| t.text().into_owned());
            let reason = if self.state == State::AwaitHandshake || self.state == State::AwaitHeader
            {
                CloseReason::AuthFailed(format!(
                    "<{condition}/>{}",
                    text.as_deref()
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default()
                ))
            } else {
                CloseReason::StreamError { condition, text }
            };
            self.push_out(b"</stream:stream>".to_vec(), now);
            self.finish(reason);
            return;
        }
        match self.state {
            State::AwaitHandshake => {
                if el.name == "handshake" {
                    self.state = State::Ready;
                    self.events.push_back(SessionEvent::Ready);
                } else {
                    self.fail_local("not-authorized", "expected <handshake/>", now);
                }
            }
            State::Ready => {
                if el.name == "iq" {
                    if let Some(id) = el.attr("id") {
                        if let Some(i) = self.own_pings.iter().position(|p| p == id) {
                            self.own_pings.swap_remove(i);
                            return;
                        }
                    }
                }
                self.events.push_back(SessionEvent::Stanza(el));
            }
            _ => {}
        }
    }

    fn fail_local(&mut self, condition: &str, text: &str, now: Instant) {
        self.send_stream_error(condition, text, now);
        self.finish(CloseReason::StreamError {
            condition: condition.to_owned(),
            text: Some(text.to_owned()),
        });
    }

    fn send_stream_error(&mut self, condition: &str, text: &str, now: Instant) {
        let err = Element::build(ns::STREAM, "error")
            .child_add(Element::build(ns::STREAM_ERRORS, condition))
            .child_add(Element::build(ns::STREAM_ERRORS, "text").text_add(text));
        let mut s = err.to_xml();
        // The stream prefix is declared on our header; write it with that prefix.
        s = s.replacen(
            &format!("<error xmlns=\"{}\">", ns::STREAM),
            "<stream:error>",
            1,
        );
        s = s.replacen("</error>", "</stream:error>", 1);
        s.push_str("</stream:stream>");
        self.push_out(s.into_bytes(), now);
    }

    fn finish(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.ping_deadline = None;
        self.events.push_back(SessionEvent::Closed(reason));
    }

    fn push_out(&mut self, bytes: Vec<u8>, now: Instant) {
        self.last_tx = now;
        // Consecutive writes share one buffer (one socket write for a batch of stanzas).
        match self.out.back_mut() {
            Some(last) if last.len() + bytes.len() <= COALESCE_BYTES => {
                last.extend_from_slice(&bytes)
            }
            _ => self.out.push_back(bytes),
        }
    }

    /// The next bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Init | State::Closed => None,
            State::AwaitHeader | State::AwaitHandshake => {
                Some(self.started + self.timing.handshake_timeout)
            }
            State::Ready => {
                let ka = self.last_tx + self.timing.keepalive;
                let ping = match self.ping_deadline {
                    Some(d) => d,
                    None => self.last_rx + self.timing.ping_interval,
                };
                Some(ka.min(ping))
            }
        }
    }

    /// Time passed: keep-alives, pings, timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::AwaitHeader | State::AwaitHandshake => {
                if now >= self.started + self.timing.handshake_timeout {
                    self.finish(CloseReason::Timeout("no handshake answer from the server"));
                }
            }
            State::Ready => {
                if let Some(d) = self.ping_deadline {
                    if now >= d {
                        self.finish(CloseReason::Timeout("no answer to ping; link is dead"));
                        return;
                    }
                } else if now >= self.last_rx + self.timing.ping_interval {
                    let to = self.server_domain();
                    if let Ok(id) = self.send_ping(&to, now) {
                        self.own_pings.push(id);
                        if self.own_pings.len() > 16 {
                            self.own_pings.remove(0);
                        }
                    }
                    self.ping_deadline = Some(now + self.timing.ping_timeout);
                }
                if now >= self.last_tx + self.timing.keepalive {
                    self.push_out(b" ".to_vec(), now);
                }
            }
            State::Init | State::Closed => {}
        }
    }

    /// The server's own domain for pings: the stream header's `from` if the server gave
    /// one different from ours, else our domain without its first label.
    fn server_domain(&self) -> String {
        if let Some(from) = self.parser.header().and_then(|h| h.attr("from")) {
            if from != self.domain {
                return from.to_owned();
            }
        }
        match self.domain.split_once('.') {
            Some((_, parent)) if !parent.is_empty() => parent.to_owned(),
            _ => self.domain.clone(),
        }
    }
}

/// An XEP-0199 ping iq.
pub fn ping_iq(from: &str, to: &str, id: &str) -> Element {
    Element::build(ns::COMPONENT, "iq")
        .attr_set("type", "get")
        .attr_set("from", from)
        .attr_set("to", to)
        .attr_set("id", id)
        .child_add(Element::build(ns::PING, "ping"))
}

fn xml_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    cpim_core::xml::escape_attr_into(&mut out, s);
    out.replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='sip.xmpp.test' id='3BF96D32'>";

    fn drain(s: &mut ComponentSession) -> String {
        let mut out = Vec::new();
        while let Some(b) = s.poll_transmit() {
            out.extend(b);
        }
        String::from_utf8(out).unwrap()
    }

    fn ready(now: Instant, chunk: usize) -> ComponentSession {
        let mut s = ComponentSession::new(
            "sip.xmpp.test",
            "s3cret",
            Timing::default(),
            Limits::default(),
            now,
        );
        s.start(now);
        let hdr = drain(&mut s);
        assert!(hdr.contains("xmlns='jabber:component:accept'"), "{hdr}");
        assert!(hdr.contains("to='sip.xmpp.test'"));
        for c in SERVER_HEADER.as_bytes().chunks(chunk) {
            s.handle_input(c, now);
        }
        // XEP-0114 s3: SHA-1 of stream id + secret, lower-case hex.
        let expected = hex::encode(Sha1::digest(b"3BF96D32s3cret"));
        assert_eq!(drain(&mut s), format!("<handshake>{expected}</handshake>"));
        for c in b"<handshake/>".chunks(chunk) {
            s.handle_input(c, now);
        }
        assert_eq!(s.poll_event(), Some(SessionEvent::Ready));
        assert_eq!(s.state(), State::Ready);
        s
    }

    #[test]
    fn handshake_in_one_byte_chunks() {
        let now = Instant::now();
        let mut s = ready(now, 1);
        let msg = b"<message from='alice@xmpp.test/x' to='bob@sip.xmpp.test' id='m1'><body>hi</body></message>";
        for c in msg.chunks(1) {
            s.handle_input(c, now);
        }
        let Some(SessionEvent::Stanza(m)) = s.poll_event() else {
            panic!()
        };
        assert_eq!(m.attr("id"), Some("m1"));
    }

    #[test]
    fn wrong_secret_is_reported_as_auth_failure() {
        let now = Instant::now();
        let mut s = ComponentSession::new("c.x", "bad", Timing::default(), Limits::default(), now);
        s.start(now);
        s.handle_input(SERVER_HEADER.as_bytes(), now);
        s.handle_input(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>", now);
        match s.poll_event() {
            Some(SessionEvent::Closed(CloseReason::AuthFailed(t))) => {
                assert!(t.contains("not-authorized"), "{t}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.state(), State::Closed);
    }

    #[test]
    fn virtual_time_keepalive_ping_and_dead_link() {
        let t0 = Instant::now();
        let timing = Timing {
            keepalive: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
        };
        let mut s = ComponentSession::new("sip.xmpp.test", "s3cret", timing, Limits::default(), t0);
        s.start(t0);
        s.handle_input(SERVER_HEADER.as_bytes(), t0);
        s.handle_input(b"<handshake/>", t0);
        drain(&mut s);
        assert_eq!(s.poll_event(), Some(SessionEvent::Ready));
        // Keep-alive after 10 s of outgoing silence.
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        s.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(drain(&mut s), " ");
        // Ping after 30 s of incoming silence.
        let t30 = t0 + Duration::from_secs(30);
        s.handle_timeout(t30);
        let out = drain(&mut s);
        assert!(
            out.contains("urn:xmpp:ping") && out.contains("to=\"xmpp.test\""),
            "{out}"
        );
        assert_eq!(
            s.poll_timeout(),
            Some(t30 + Duration::from_secs(5)).min(s.poll_timeout())
        );
        // Any input revives the link.
        s.handle_input(b" ", t30 + Duration::from_secs(1));
        s.handle_timeout(t30 + Duration::from_secs(6));
        assert_eq!(s.state(), State::Ready);
        // Another ping, no answer: dead.
        let t62 = t30 + Duration::from_secs(32);
        s.handle_timeout(t62);
        assert!(drain(&mut s).contains("urn:xmpp:ping"));
        s.handle_timeout(t62 + Duration::from_secs(5));
        assert!(matches!(
            s.poll_event(),
            Some(SessionEvent::Closed(CloseReason::Timeout(_)))
        ));
    }

    #[test]
    fn bad_input_sends_stream_error_and_closes() {
        let now = Instant::now();
        let mut s = ready(now, 64);
        s.handle_input(b"<!DOCTYPE foo>", now);
        let out = drain(&mut s);
        assert!(out.contains("<stream:error><restricted-xml"), "{out}");
        assert!(matches!(
            s.poll_event(),
            Some(SessionEvent::Closed(CloseReason::Parse(_)))
        ));
    }

    #[test]
    fn handshake_timeout() {
        let now = Instant::now();
        let mut s = ComponentSession::new("c.x", "s", Timing::default(), Limits::default(), now);
        s.start(now);
        let t = s.poll_timeout().unwrap();
        s.handle_timeout(t);
        assert!(matches!(
            s.poll_event(),
            Some(SessionEvent::Closed(CloseReason::Timeout(_)))
        ));
    }
}

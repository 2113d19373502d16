//! What the outgoing ([`crate::s2s`]) and incoming ([`crate::s2s_in`]) server-to-server
//! streams share: the output and event queues with the whitespace keep-alive (RFC 6120
//! s4.6.1), the stream header (s4.7), stream errors (s4.9) and small helpers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::element::Element;
use crate::ns;
use crate::s2s::S2sEvent;
use crate::session::CloseReason;
use crate::stream::{Limits, StreamParser};

#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) parser: StreamParser,
    pub(crate) out: VecDeque<Vec<u8>>,
    pub(crate) events: VecDeque<S2sEvent>,
    pub(crate) last_tx: Instant,
    pub(crate) keepalive: Duration,
    pub(crate) closed: bool,
}

impl Core {
    pub(crate) fn new(limits: Limits, keepalive: Duration, now: Instant) -> Core {
        Core {
            parser: StreamParser::new(limits),
            out: VecDeque::new(),
            events: VecDeque::new(),
            last_tx: now,
            keepalive,
            closed: false,
        }
    }

    pub(crate) fn push(&mut self, s: String, now: Instant) {
        self.last_tx = now;
        self.out.push_back(s.into_bytes());
    }

    pub(crate) fn send(&mut self, el: &Element, now: Instant) {
        let mut s = el.to_xml();
        // Dialback elements use the `db:` prefix declared on the stream header (XEP-0220
        // examples; some servers match on the prefix).
        if el.ns == ns::DIALBACK {
            s = s.replacen(
                &format!("<{} xmlns=\"{}\"", el.name, ns::DIALBACK),
                &format!("<db:{}", el.name),
                1,
            );
            if s.ends_with(&format!("</{}>", el.name)) {
                let cut = s.len() - el.name.len() - 3;
                s.truncate(cut);
                s.push_str(&format!("</db:{}>", el.name));
            }
        }
        self.push(s, now);
    }

    pub(crate) fn stream_error(&mut self, condition: &str, text: &str, now: Instant) {
        let s = format!(
            "<stream:error><{condition} xmlns='{errors}'/><text xmlns='{errors}'>{}</text></stream:error></stream:stream>",
            esc(text),
            errors = ns::STREAM_ERRORS,
        );
        self.push(s, now);
        self.close_with(CloseReason::StreamError {
            condition: condition.to_owned(),
            text: Some(text.to_owned()),
        });
    }

    pub(crate) fn close_with(&mut self, r: CloseReason) {
        if !self.closed {
            self.closed = true;
            self.events.push_back(S2sEvent::Closed(r));
        }
    }

    pub(crate) fn keepalive_due(&self) -> Option<Instant> {
        (!self.closed).then(|| self.last_tx + self.keepalive)
    }

    pub(crate) fn on_timeout(&mut self, now: Instant) {
        if !self.closed && now >= self.last_tx + self.keepalive {
            self.push(" ".into(), now);
        }
    }
}

pub(crate) fn esc(s: &str) -> String {
    let mut o = String::new();
    cpim_core::xml::escape_text_into(&mut o, s);
    o
}

pub(crate) fn header(from: &str, to: Option<&str>, id: Option<&str>) -> String {
    let mut s = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' xmlns:db='{}' version='1.0' from='{}'",
        ns::SERVER,
        ns::STREAM,
        ns::DIALBACK,
        esc(from)
    );
    if let Some(t) = to {
        s.push_str(&format!(" to='{}'", esc(t)));
    }
    if let Some(i) = id {
        s.push_str(&format!(" id='{}'", esc(i)));
    }
    s.push('>');
    s
}

pub(crate) fn stream_error_of(el: &Element) -> CloseReason {
    let condition = el
        .elements()
        .find(|c| c.ns == ns::STREAM_ERRORS && c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "undefined-condition".into());
    let text = el
        .child(ns::STREAM_ERRORS, "text")
        .map(|t| t.text().into_owned());
    CloseReason::StreamError { condition, text }
}

pub(crate) fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub(crate) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

//! XEP-0198 Stream Management on a server-to-server stream, sans-IO: the two counters of
//! one stream and the nonzas that carry them, without resumption (Prosody, the one s2s
//! peer offering it, does not resume s2s streams; a lost stream's unacknowledged stanzas
//! are resent by the hub on the next one, see `link::s2s`).
//!
//! - s3: the initiating entity sends `<enable/>` after authentication when the receiving
//!   entity offered `<sm xmlns='urn:xmpp:sm:3'/>`; both count from there.
//! - s4: a stanza is a top-level `<message/>`, `<presence/>` or `<iq/>`; `h` is the
//!   number of stanzas handled, modulo 2^32; `<r/>` asks for it, `<a h='N'/>` gives it,
//!   and an `h` above what was sent is an error (s6, `undefined-condition` stream error
//!   with `<handled-count-too-high/>`).
//! - s7: an `<a/>` sent before a stream closes tells the peer which stanzas were handled,
//!   so only the others are resent.

use crate::element::{Element, ElementExt};
use crate::ns;

/// A stanza in the sense of XEP-0198 s4.
pub(crate) fn is_stanza(el: &Element) -> bool {
    (el.ns == ns::SERVER || el.ns == ns::COMPONENT)
        && matches!(el.name.as_str(), "message" | "presence" | "iq")
}

/// What an `<a/>` meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ack {
    /// The peer has now handled the first `h` stanzas we sent (this many more than before).
    Handled { h: u32, newly: u32 },
    /// `h` is above what we sent (or below what was acknowledged): a stream error.
    TooHigh { h: u32, sent: u32 },
}

/// The counters of one stream with stream management enabled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sm {
    /// Stanzas we sent since `<enable/>`.
    sent: u32,
    /// The peer's last `h`.
    acked: u32,
    /// Stanzas we received and handled since `<enable/>`.
    handled: u32,
    /// `sent` when the last `<r/>` went out.
    requested: u32,
}

impl Sm {
    /// Counts a stanza we send; its number (1 for the first).
    pub(crate) fn sent(&mut self) -> u32 {
        self.sent = self.sent.wrapping_add(1);
        self.sent
    }

    /// Counts a stanza we received and handed on.
    pub(crate) fn handled(&mut self) {
        self.handled = self.handled.wrapping_add(1);
    }

    /// Stanzas sent and not acknowledged.
    pub(crate) fn unacked(&self) -> u32 {
        self.sent.wrapping_sub(self.acked)
    }

    /// The number of the last stanza sent (0 before any).
    pub(crate) fn last_sent(&self) -> u32 {
        self.sent
    }

    /// `<r/>`, unless nothing was sent since the last one or everything is acknowledged.
    /// One per batch of stanzas, not one outstanding at a time: a peer that stops may
    /// have handled what follows an outstanding `<r/>`, and only an `<r/>` right after a
    /// stanza gets it acknowledged before the peer closes (Prosody sends no last `<a/>` on
    /// s2s streams).
    pub(crate) fn request(&mut self) -> Option<Element> {
        if self.requested == self.sent || self.unacked() == 0 {
            return None;
        }
        self.requested = self.sent;
        Some(Element::build(ns::SM, "r"))
    }

    /// The `<a/>` answering the peer's `<r/>`.
    pub(crate) fn answer(&self) -> Element {
        Element::build(ns::SM, "a").attr_set("h", self.handled.to_string())
    }

    /// The peer's `<a h='N'/>`; `None` when `h` is missing or not a number.
    pub(crate) fn on_ack(&mut self, el: &Element) -> Option<Ack> {
        let h: u32 = el.attr("h")?.parse().ok()?;
        let newly = h.wrapping_sub(self.acked);
        if newly > self.unacked() {
            return Some(Ack::TooHigh { h, sent: self.sent });
        }
        self.acked = h;
        Some(Ack::Handled { h, newly })
    }
}

/// True when stanza number `n` is covered by an acknowledged `h` (modulo 2^32, s4:
/// counts wrap; a stanza is covered when it is at most 2^31 behind `h`).
pub(crate) fn covered(n: u32, h: u32) -> bool {
    h.wrapping_sub(n) < 1 << 31
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(h: &str) -> Element {
        Element::build(ns::SM, "a").attr_set("h", h)
    }

    #[test]
    fn counts_requests_once_and_takes_acks_xep0198_s4() {
        let mut sm = Sm::default();
        assert_eq!(sm.request(), None, "nothing to acknowledge yet");
        assert_eq!(sm.sent(), 1);
        assert_eq!(sm.sent(), 2);
        assert_eq!(sm.sent(), 3);
        assert_eq!(sm.request().map(|e| e.name), Some("r".to_owned()));
        assert_eq!(sm.request(), None, "nothing sent since the last <r/>");
        assert_eq!(sm.on_ack(&a("2")), Some(Ack::Handled { h: 2, newly: 2 }));
        assert_eq!(sm.unacked(), 1);
        assert_eq!(sm.request(), None, "stanza 3 is covered by the <r/> out");
        sm.sent();
        assert!(sm.request().is_some(), "a new stanza: ask again");
        assert_eq!(sm.on_ack(&a("4")), Some(Ack::Handled { h: 4, newly: 2 }));
        assert_eq!(sm.on_ack(&a("4")), Some(Ack::Handled { h: 4, newly: 0 }));
        assert_eq!(sm.unacked(), 0);
    }

    #[test]
    fn an_ack_above_what_was_sent_is_refused_xep0198_s6() {
        let mut sm = Sm::default();
        sm.sent();
        assert_eq!(sm.on_ack(&a("5")), Some(Ack::TooHigh { h: 5, sent: 1 }));
        assert_eq!(sm.unacked(), 1, "a refused ack acknowledges nothing");
        assert_eq!(sm.on_ack(&a("x")), None);
        assert_eq!(sm.on_ack(&Element::build(ns::SM, "a")), None);
    }

    #[test]
    fn counts_wrap_at_2_pow_32_xep0198_s4() {
        let mut sm = Sm {
            sent: u32::MAX - 1,
            acked: u32::MAX - 1,
            ..Sm::default()
        };
        assert_eq!(sm.sent(), u32::MAX);
        assert_eq!(sm.sent(), 0);
        assert_eq!(sm.sent(), 1);
        assert_eq!(sm.unacked(), 3);
        assert_eq!(sm.on_ack(&a("0")), Some(Ack::Handled { h: 0, newly: 2 }));
        assert!(covered(u32::MAX, 0));
        assert!(covered(0, 0));
        assert!(!covered(1, 0));
    }

    #[test]
    fn answers_with_what_it_handled() {
        let mut sm = Sm::default();
        assert_eq!(sm.answer().attr("h"), Some("0"));
        sm.handled();
        sm.handled();
        assert_eq!(sm.answer().attr("h"), Some("2"));
        let msg = Element::build(ns::SERVER, "message");
        assert!(is_stanza(&msg));
        assert!(!is_stanza(&Element::build(ns::SM, "r")));
        assert!(!is_stanza(&Element::build(ns::DIALBACK, "result")));
    }
}

//! Stanza ids: unguessable, and for messages the same on every try.
//!
//! Outcomes are bound to stanza ids (see [`crate::tracker`]), so no other party may guess
//! the id of a stanza it did not see. Two generators:
//! - [`StanzaIds`]: 128 random bits, for presence, pings and messages without an id.
//! - [`MessageIds`]: for a message with its own id (the CPIM `imdn.Message-ID`, RFC 5438
//!   s6.3; the SIP Call-ID and CSeq otherwise) the stanza id is `<message id>.<mac>`, the
//!   mac a keyed hash (HMAC-SHA256, 96 bits) of the sender's JID, the recipient's JID and
//!   the message id. A message sent again (a retry from the queue, a retransmission, a
//!   resend after a restart: the key comes from the adapter's persistent secret) gets the
//!   same stanza id, so a client that drops duplicates by id (XEP-0359 s3) sees it once;
//!   a receipt (XEP-0184 s5) or marker (XEP-0333 s4) naming the stanza id maps back to
//!   the message id without a table ([`MessageIds::message_id_of`]), so the IMDN the SIP
//!   sender gets names its own `imdn.Message-ID`. The message id also goes out as the
//!   XEP-0359 `origin-id`. Whether the sender asked for negative delivery notifications
//!   (RFC 5438 s5.1, `imdn.Disposition-Notification: negative-delivery`) is keyed into the
//!   mac too, so that an XMPP error arriving after the message's outcome was given can
//!   become the failure notice the sender asked for, still without a table.

use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Sha256;

/// Unguessable stanza ids: 128 bits from a per-link generator (a CSPRNG seeded from the
/// OS), as 32 lower-case hex digits. An outcome can only be forged by someone who saw
/// the stanza.
pub struct StanzaIds {
    rng: StdRng,
}

impl StanzaIds {
    /// A generator seeded from the operating system.
    pub fn new() -> StanzaIds {
        StanzaIds {
            rng: StdRng::from_entropy(),
        }
    }

    /// A fresh id.
    pub fn next_id(&mut self) -> String {
        format!("{:032x}", self.rng.gen::<u128>())
    }
}

impl Default for StanzaIds {
    fn default() -> Self {
        StanzaIds::new()
    }
}

impl std::fmt::Debug for StanzaIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The generator state must not leak into logs.
        f.write_str("StanzaIds { .. }")
    }
}

/// The longest message id carried inside a stanza id; a longer one gets a random
/// stanza id (its receipts then name that id).
pub const MAX_MESSAGE_ID: usize = 128;

/// Hex digits of the mac (96 bits).
const MAC_HEX: usize = 24;

/// Stanza ids for messages that have their own id (see the module documentation).
#[derive(Clone)]
pub struct MessageIds {
    key: [u8; 32],
}

impl MessageIds {
    /// Keyed by `secret` (the component secret or the dialback secret: persistent and
    /// never sent); an empty secret gets a random key, stable for the process only.
    pub fn new(secret: &str) -> MessageIds {
        let mut key = [0u8; 32];
        if secret.is_empty() {
            StdRng::from_entropy().fill(&mut key);
        } else {
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
            mac.update(b"cpim-xmpp stanza ids");
            key.copy_from_slice(&mac.finalize().into_bytes());
        }
        MessageIds { key }
    }

    fn mac(&self, from: &str, to: &str, message_id: &str, negative: bool) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        for (i, part) in [bare_lower(from), bare_lower(to)].iter().enumerate() {
            if i > 0 {
                mac.update(b"\0");
            }
            mac.update(part.as_bytes());
        }
        mac.update(b"\0");
        mac.update(message_id.as_bytes());
        if negative {
            mac.update(b"\0negative-delivery");
        }
        let mut out = hex::encode(mac.finalize().into_bytes());
        out.truncate(MAC_HEX);
        out
    }

    /// The stanza id of the message `message_id` from `from` to `to` (JIDs as written in
    /// the stanza) that asked for negative delivery notifications or not, or `None` when
    /// the id is empty or longer than [`MAX_MESSAGE_ID`].
    pub fn stanza_id(
        &self,
        from: &str,
        to: &str,
        message_id: &str,
        negative: bool,
    ) -> Option<String> {
        if message_id.is_empty() || message_id.len() > MAX_MESSAGE_ID {
            return None;
        }
        let mac = self.mac(from, to, message_id, negative);
        Some(format!("{message_id}.{mac}"))
    }

    /// The message id inside `stanza_id` when it is one this key made for a message from
    /// `from` to `to`, the addresses of the message it answers (a receipt from the
    /// recipient names them the other way round).
    pub fn message_id_of<'a>(&self, stanza_id: &'a str, from: &str, to: &str) -> Option<&'a str> {
        self.message_of(stanza_id, from, to).map(|(mid, _)| mid)
    }

    /// [`Self::message_id_of`], and whether the message asked for negative delivery
    /// notifications.
    pub fn message_of<'a>(
        &self,
        stanza_id: &'a str,
        from: &str,
        to: &str,
    ) -> Option<(&'a str, bool)> {
        let (mid, mac) = stanza_id.rsplit_once('.')?;
        if mac.len() != MAC_HEX || mid.is_empty() {
            return None;
        }
        // Constant time is not needed: a wrong guess only leaves the id as it is.
        [false, true]
            .into_iter()
            .find(|n| self.mac(from, to, mid, *n) == mac)
            .map(|n| (mid, n))
    }
}

impl std::fmt::Debug for MessageIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageIds { .. }")
    }
}

/// A JID without resource, ASCII lower case (servers fold case, RFC 7622 s3.2-3.3).
fn bare_lower(jid: &str) -> String {
    jid.split('/').next().unwrap_or("").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_stanza_ids_are_stable_and_map_back() {
        let k = MessageIds::new("a strong secret of the link");
        let a = k
            .stanza_id("alice@sip.x", "bob@xmpp.test", "Msg-1", false)
            .unwrap();
        assert!(a.starts_with("Msg-1."), "{a}");
        // The same message on another try: the same id; from another key: another.
        assert_eq!(
            k.stanza_id("alice@sip.x", "bob@xmpp.test", "Msg-1", false),
            Some(a.clone())
        );
        let other = MessageIds::new("another strong secret");
        assert_ne!(
            other.stanza_id("alice@sip.x", "bob@xmpp.test", "Msg-1", false),
            Some(a.clone())
        );
        // Another sender with the same message id gets another stanza id.
        assert_ne!(
            k.stanza_id("carol@sip.x", "bob@xmpp.test", "Msg-1", false),
            Some(a.clone())
        );
        // The receipt's addresses (resource, case) still map back.
        assert_eq!(
            k.message_id_of(&a, "Alice@SIP.x/r1", "bob@xmpp.test/phone"),
            Some("Msg-1")
        );
        // Not for another pair, not for a forged mac, not for an id that is not ours.
        assert_eq!(k.message_id_of(&a, "carol@sip.x", "bob@xmpp.test"), None);
        let forged = format!("Msg-1.{}", "0".repeat(MAC_HEX));
        assert_eq!(
            k.message_id_of(&forged, "alice@sip.x", "bob@xmpp.test"),
            None
        );
        assert_eq!(
            k.message_id_of("client-id-7", "alice@sip.x", "bob@xmpp.test"),
            None
        );
        // Ids with dots keep them.
        let d = k.stanza_id("a@x", "b@y", "a.b.c", false).unwrap();
        assert_eq!(k.message_id_of(&d, "a@x", "b@y"), Some("a.b.c"));
    }

    #[test]
    fn a_request_for_negative_delivery_notices_is_read_back_from_the_id_rfc5438_s5_1() {
        let k = MessageIds::new("a strong secret of the link");
        let plain = k.stanza_id("a@sip.x", "b@xmpp.test", "M", false).unwrap();
        let neg = k.stanza_id("a@sip.x", "b@xmpp.test", "M", true).unwrap();
        assert_ne!(plain, neg);
        assert_eq!(
            k.message_of(&plain, "a@sip.x", "b@xmpp.test"),
            Some(("M", false))
        );
        assert_eq!(
            k.message_of(&neg, "a@sip.x", "b@xmpp.test"),
            Some(("M", true))
        );
        assert_eq!(k.message_id_of(&neg, "a@sip.x", "b@xmpp.test"), Some("M"));
        assert_eq!(k.message_of(&neg, "c@sip.x", "b@xmpp.test"), None);
    }

    #[test]
    fn empty_or_long_message_ids_get_none() {
        let k = MessageIds::new("");
        assert_eq!(k.stanza_id("a@x", "b@y", "", false), None);
        assert_eq!(
            k.stanza_id("a@x", "b@y", &"x".repeat(MAX_MESSAGE_ID + 1), false),
            None
        );
        assert!(k
            .stanza_id("a@x", "b@y", &"x".repeat(MAX_MESSAGE_ID), false)
            .is_some());
    }

    #[test]
    fn key_does_not_leak_into_logs() {
        assert_eq!(
            format!("{:?}", MessageIds::new("s3cr3t-s3cr3t-s3cr3t")),
            "MessageIds { .. }"
        );
    }
}

//! The abstract operations of CPIM (RFC 3860) and CPP (RFC 3859), as the core routes them.
//!
//! Every protocol adapter turns native traffic into an [`Operation`] and hands it to the
//! core; the core hands operations for the adapter's targets back to it. The answer to an
//! operation is an [`Outcome`], whose [`Status`] uses the SIP-style numeric classes RFC 3860
//! s4.2 and RFC 3859 s4 ask for (2xx success, 4xx/5xx/6xx failure). Errors of other
//! protocols are mapped onto these codes by the tables of RFC 7247 s7.

use crate::address::Address;
use crate::presence::Presence;
pub use crate::status::StatusCode;

/// The transaction identifier of RFC 3860/3859: it correlates a response with its request.
/// Assigned by the adapter that accepted the operation; unique within that adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TransId(pub u64);

/// One abstract operation.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Operation {
    /// RFC 3860 s4.1 message.
    Message(Message),
    /// RFC 3859 s4.1 subscribe; a duration of zero is a one-time fetch (an XMPP probe).
    Subscribe(Subscribe),
    /// RFC 3859 unsubscribe: the watcher ends its subscription.
    Unsubscribe(Subscribe),
    /// RFC 3859 s4.2 notify: presence and/or subscription state for one watcher.
    Notify(Notify),
    /// A presentity publishes its own state (SIP PUBLISH, RFC 3903; the JSON protocol);
    /// the core fans it out to the presentity's watchers.
    Publish(Publish),
}

impl Operation {
    /// The transaction identifier of any operation.
    pub fn trans_id(&self) -> TransId {
        match self {
            Operation::Message(m) => m.trans_id,
            Operation::Subscribe(s) | Operation::Unsubscribe(s) => s.trans_id,
            Operation::Notify(n) => n.trans_id,
            Operation::Publish(p) => p.trans_id,
        }
    }

    /// Who the operation comes from: the sender, the watcher, the presentity.
    pub fn source(&self) -> &Address {
        match self {
            Operation::Message(m) => &m.source,
            Operation::Subscribe(s) | Operation::Unsubscribe(s) => &s.watcher,
            Operation::Notify(n) => &n.target,
            Operation::Publish(p) => &p.presentity,
        }
    }

    /// Where it goes: the recipient, the presentity, the watcher. `None` for a publish,
    /// which goes to the core's presence state.
    pub fn destination(&self) -> Option<&Address> {
        match self {
            Operation::Message(m) => Some(&m.destination),
            Operation::Subscribe(s) | Operation::Unsubscribe(s) => Some(&s.target),
            Operation::Notify(n) => Some(&n.watcher),
            Operation::Publish(_) => None,
        }
    }

    /// A short lower-case name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Message(_) => "message",
            Operation::Subscribe(_) => "subscribe",
            Operation::Unsubscribe(_) => "unsubscribe",
            Operation::Notify(_) => "notify",
            Operation::Publish(_) => "publish",
        }
    }
}

/// The kind of an instant message, after XMPP's message types (RFC 6121 s5.2.2); SIP
/// MESSAGE has no such notion and maps to [`MessageKind::Chat`] or, in MSRP, to chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MessageKind {
    /// One-to-one conversation.
    #[default]
    Chat,
    /// A single message outside a conversation.
    Normal,
    /// An alert that expects no reply.
    Headline,
    /// A message in a multi-user chat room.
    Groupchat,
}

/// Disposition notifications the sender asks for (RFC 5438 IMDN; XEP-0184 receipts and
/// XEP-0333 markers on the XMPP side).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DispositionRequest {
    /// positive-delivery / `<request xmlns='urn:xmpp:receipts'/>`
    pub delivery: bool,
    /// display / `<markable xmlns='urn:xmpp:chat-markers:0'/>`
    pub display: bool,
    /// negative-delivery: the sender wants to learn of a failure that comes after it was
    /// told the message was accepted (a queued message that expires). Always set for
    /// XMPP senders, who get error stanzas unasked (RFC 6120 s8.3).
    pub negative: bool,
}

/// RFC 3860 s4.1: an instant message.
///
/// The body is carried as bytes with its MIME type, untouched. A `message/cpim`
/// body keeps its envelope byte for byte (RFC 3862, RFC 3923: signatures survive); chat
/// states travel as `application/im-iscomposing+xml` (RFC 3994), receipts as
/// `message/imdn+xml` (RFC 5438).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// RFC 3860 TransID.
    pub trans_id: TransId,
    /// The sender.
    pub source: Address,
    /// The recipient.
    pub destination: Address,
    /// The MIME type with its parameters, e.g. `text/plain;charset=UTF-8` or `message/cpim`.
    pub content_type: String,
    /// The body, as received.
    pub body: Vec<u8>,
    /// The message's own identifier, stable across retransmissions and gateways: the
    /// CPIM `imdn.Message-ID`, the XMPP stanza `id`, or derived from SIP Call-ID and CSeq.
    /// Used for duplicate suppression and for correlating notifications.
    pub message_id: Option<String>,
    /// Subject (XMPP `<subject/>`, SIP `Subject`, CPIM `Subject`).
    pub subject: Option<String>,
    /// Conversation thread (XMPP `<thread/>`; SIP Call-ID per RFC 7572 s5).
    pub thread: Option<String>,
    /// Language of the body (XMPP `xml:lang`, SIP `Content-Language`).
    pub language: Option<String>,
    /// The kind of message.
    pub kind: MessageKind,
    /// Notifications requested by the sender.
    pub disposition: DispositionRequest,
    /// Hops left before the message is dropped as a loop (SIP Max-Forwards; counted
    /// down by every gateway that forwards it).
    pub hops_left: u8,
}

impl Message {
    /// The default hop budget, as SIP's Max-Forwards (RFC 3261 s8.1.1.6).
    pub const DEFAULT_HOPS: u8 = 70;

    /// A new message with default metadata.
    pub fn new(
        trans_id: TransId,
        source: Address,
        destination: Address,
        content_type: impl Into<String>,
        body: impl Into<Vec<u8>>,
    ) -> Message {
        Message {
            trans_id,
            source,
            destination,
            content_type: content_type.into(),
            body: body.into(),
            message_id: None,
            subject: None,
            thread: None,
            language: None,
            kind: MessageKind::Chat,
            disposition: DispositionRequest::default(),
            hops_left: Self::DEFAULT_HOPS,
        }
    }

    /// The bare MIME type, lower-cased, without parameters (`text/plain`).
    pub fn mime_type(&self) -> String {
        mime_essence(&self.content_type)
    }

    /// The media type of what the message carries: its own, or for a `message/cpim`
    /// envelope (RFC 3862 s3.1) its payload's (`None` when the envelope does not parse).
    pub fn payload_mime_type(&self) -> Option<String> {
        match self.mime_type().as_str() {
            "message/cpim" => crate::cpim::CpimMessage::parse(&self.body)
                .ok()
                .and_then(|c| c.content_type().map(|t| mime_essence(&t))),
            t => Some(t.to_owned()),
        }
    }

    /// True for an isComposing indication (RFC 3994), bare or as the payload of a
    /// `message/cpim` envelope (RFC 3862 s3.1). Its state lasts only its refresh
    /// interval (RFC 3994 s3), so it is never stored to be delivered later.
    pub fn is_composing_indication(&self) -> bool {
        self.payload_mime_type().as_deref() == Some(crate::iscomposing::CONTENT_TYPE)
    }

    /// True for a notification about other messages rather than a message a user wrote:
    /// an isComposing indication (RFC 3994) or a disposition notification (RFC 5438
    /// IMDN, `message/imdn+xml`), bare or in `message/cpim`. Neither is stored for later
    /// delivery: typing is stale at once, and a receipt days late tells its reader
    /// nothing the failure of its own message would not.
    pub fn is_notification(&self) -> bool {
        matches!(
            self.payload_mime_type().as_deref(),
            Some(crate::iscomposing::CONTENT_TYPE | crate::imdn::CONTENT_TYPE)
        )
    }
}

/// The `type/subtype` of a Content-Type value, lower-cased and without parameters.
pub fn mime_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// True for the media types that carry end-to-end security (RFC 3923 signing and
/// encryption): no gateway may rewrap, unwrap or alter them.
pub fn is_end_to_end_secured(essence: &str) -> bool {
    matches!(
        essence,
        "multipart/signed"
            | "application/pkcs7-mime"
            | "application/pkcs7-signature"
            | "multipart/encrypted"
    )
}

/// RFC 3859 s4.1 subscribe (and unsubscribe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// RFC 3859 TransID.
    pub trans_id: TransId,
    /// The subscriber.
    pub watcher: Address,
    /// The presentity watched.
    pub target: Address,
    /// Requested duration in seconds; 0 asks for the current state once (a fetch,
    /// RFC 3856 s3.3; an XMPP probe, RFC 8048 s6).
    pub duration: u32,
}

/// The state of one subscription, as RFC 6665 s4.1.3 Subscription-State carries it and
/// as RFC 8048 maps it onto XMPP subscription stanzas.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionState {
    /// Waiting for the presentity's authorization.
    Pending,
    /// Authorized; `expires` seconds left.
    Active {
        /// Seconds until the subscription ends unless refreshed.
        expires: u32,
    },
    /// Ended.
    Terminated(TerminationReason),
}

/// Why a subscription ended (RFC 6665 s4.1.3 reasons).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// The watcher may subscribe again at once.
    Deactivated,
    /// The watcher may subscribe again later.
    Probation,
    /// The presentity refused (XMPP `unsubscribed`).
    Rejected,
    /// The subscription expired.
    Timeout,
    /// The watcher should not subscribe again.
    Giveup,
    /// The presentity does not exist.
    NoResource,
    /// The state changed in a way that the watcher must re-subscribe to see.
    Invariant,
    /// Any other reason, as given.
    Other(String),
}

impl TerminationReason {
    /// The `reason` token of the Subscription-State header (RFC 6665 s4.1.3, RFC 3265
    /// s3.2.4); `Other` as given.
    pub fn as_str(&self) -> &str {
        match self {
            TerminationReason::Deactivated => "deactivated",
            TerminationReason::Probation => "probation",
            TerminationReason::Rejected => "rejected",
            TerminationReason::Timeout => "timeout",
            TerminationReason::Giveup => "giveup",
            TerminationReason::NoResource => "noresource",
            TerminationReason::Invariant => "invariant",
            TerminationReason::Other(s) => s,
        }
    }
    /// The reason a token names; an unknown token (or an empty one) is kept as `Other`.
    pub fn from_token(token: &str) -> TerminationReason {
        match token {
            "deactivated" => TerminationReason::Deactivated,
            "probation" => TerminationReason::Probation,
            "rejected" => TerminationReason::Rejected,
            "timeout" => TerminationReason::Timeout,
            "giveup" => TerminationReason::Giveup,
            "noresource" => TerminationReason::NoResource,
            "invariant" => TerminationReason::Invariant,
            other => TerminationReason::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for TerminationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TerminationReason {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<TerminationReason, Self::Err> {
        Ok(TerminationReason::from_token(s))
    }
}

/// RFC 3859 s4.2 notify.
#[derive(Clone, Debug, PartialEq)]
pub struct Notify {
    /// RFC 3859 TransID.
    pub trans_id: TransId,
    /// The watcher notified.
    pub watcher: Address,
    /// The presentity whose state this is.
    pub target: Address,
    /// The subscription's state.
    pub state: SubscriptionState,
    /// The presentity's state; `None` when only the subscription state changed (an XMPP
    /// `subscribed`, a pending NOTIFY with no body).
    pub presence: Option<Presence>,
}

/// A presentity publishes its state (RFC 3903 semantics: it lasts `expires` seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct Publish {
    /// Transaction identifier.
    pub trans_id: TransId,
    /// Whose state this is.
    pub presentity: Address,
    /// The state published; an empty document (no tuples) withdraws it.
    pub presence: Presence,
    /// Seconds the state stays valid; 0 removes it.
    pub expires: u32,
}

/// The status of an outcome: a SIP-style three-digit code and a reason phrase.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Status {
    /// 2xx success, 4xx request failure, 5xx server failure, 6xx global failure.
    pub code: StatusCode,
    /// Human-readable reason, passed back to the source where its protocol can carry it.
    pub reason: String,
}

impl Status {
    /// A status with the given code and reason.
    pub fn new(code: impl Into<StatusCode>, reason: impl Into<String>) -> Status {
        Status {
            code: code.into(),
            reason: reason.into(),
        }
    }
    /// 200 OK.
    pub fn ok() -> Status {
        Status::new(StatusCode::OK, "OK")
    }
    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        self.code.is_success()
    }
}

/// The answer to an operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The operation's TransID.
    pub trans_id: TransId,
    /// What happened.
    pub status: Status,
}

impl Outcome {
    /// A success for the given transaction.
    pub fn ok(trans_id: TransId) -> Outcome {
        Outcome {
            trans_id,
            status: Status::ok(),
        }
    }
    /// A failure with the given code and reason.
    pub fn failure(
        trans_id: TransId,
        code: impl Into<StatusCode>,
        reason: impl Into<String>,
    ) -> Outcome {
        Outcome {
            trans_id,
            status: Status::new(code, reason),
        }
    }
}

#[cfg(test)]
mod tests {
    /// RFC 3994 indications are recognised bare and inside message/cpim; a CPIM text
    /// message or one that does not parse is not one.
    #[test]
    fn is_composing_indication_bare_or_in_cpim_rfc3994() {
        use super::*;
        let a = Address::parse("sip:alice@sip.test").unwrap();
        let b = Address::parse("xmpp:bob@xmpp.test").unwrap();
        let doc = crate::iscomposing::encode(&crate::iscomposing::IsComposing::new(
            crate::iscomposing::State::Active,
        ))
        .unwrap()
        .into_bytes();
        let m = |ct: &str, body: Vec<u8>| Message::new(TransId(1), a.clone(), b.clone(), ct, body);
        assert!(m("application/im-iscomposing+xml", doc.clone()).is_composing_indication());
        assert!(
            m("Application/IM-isComposing+XML; charset=utf-8", doc.clone())
                .is_composing_indication()
        );
        let mut cpim = b"From: <sip:alice@sip.test>\r\nTo: <xmpp:bob@xmpp.test>\r\n\r\n\
            Content-Type: application/im-iscomposing+xml\r\n\r\n"
            .to_vec();
        cpim.extend_from_slice(&doc);
        assert!(m("message/cpim", cpim).is_composing_indication());
        let text = b"From: <sip:alice@sip.test>\r\n\r\nContent-Type: text/plain\r\n\r\nhi".to_vec();
        assert!(!m("message/cpim", text).is_composing_indication());
        assert!(!m("message/cpim", b"not cpim".to_vec()).is_composing_indication());
        assert!(!m("text/plain", doc.clone()).is_composing_indication());
        assert!(m("application/im-iscomposing+xml", doc).is_notification());
    }

    /// RFC 5438 IMDNs are notifications too, bare or in CPIM; text is not.
    #[test]
    fn imdn_is_a_notification_bare_or_in_cpim_rfc5438() {
        use super::*;
        let a = Address::parse("sip:alice@sip.test").unwrap();
        let b = Address::parse("xmpp:bob@xmpp.test").unwrap();
        let m = |ct: &str, body: &[u8]| Message::new(TransId(1), a.clone(), b.clone(), ct, body);
        assert!(m("message/imdn+xml", b"<imdn/>").is_notification());
        let cpim = b"From: <sip:alice@sip.test>\r\n\r\nContent-Type: message/imdn+xml\r\nContent-Disposition: notification\r\n\r\n<imdn/>";
        assert!(m("message/cpim", cpim).is_notification());
        assert!(!m("message/cpim", cpim).is_composing_indication());
        assert!(!m("text/plain", b"hi").is_notification());
        assert_eq!(m("message/cpim", b"garbage").payload_mime_type(), None);
    }

    use super::*;

    #[test]
    fn termination_reason_tokens_round_trip() {
        for t in [
            "deactivated",
            "probation",
            "rejected",
            "timeout",
            "giveup",
            "noresource",
            "invariant",
            "x-local",
            "",
        ] {
            let r: TerminationReason = t.parse().unwrap();
            assert_eq!(r.as_str(), t);
            assert_eq!(r.to_string(), t);
        }
        assert_eq!(
            TerminationReason::from_token("noresource"),
            TerminationReason::NoResource
        );
        assert_eq!(
            TerminationReason::from_token("Rejected"),
            TerminationReason::Other("Rejected".into())
        );
    }
}

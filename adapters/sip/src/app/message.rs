//! MESSAGE (RFC 3428) <-> [`cpim_core::model::Message`], after RFC 7572.
//!
//! Inbound ([`inbound`]): source = From; destination = Request-URI when it names a user
//! at a host that is not an IP literal (the target after any retargeting), else To;
//! Subject -> subject; Content-Language -> language; Call-ID -> thread (RFC 7572 maps
//! the Call-ID to the XMPP thread); Max-Forwards -> hops_left as it is (70, RFC 3261
//! s8.1.1.6, when absent); message_id = the CPIM `imdn.Message-ID` for a `message/cpim`
//! body, else `Call-ID` + `CSeq` (stable across retransmissions). The body is passed on
//! byte for byte with its Content-Type, whatever the type.
//!
//! Outbound ([`outbound`]): the mirror image; hops_left -> Max-Forwards as it is; Call-ID
//! from the thread when the thread is a valid Call-ID (so a SIP reply lands in the same
//! XMPP thread), else fresh.
//!
//! The mapping translates and does not police the hop count: the router counts the hop
//! (RFC 3261 s16.6 step 3) and refuses a message with none left with 483 (s16.3 step 3),
//! and refuses a body above its limit with 413, once for every adapter. The one limit
//! kept here is `max_message_size` on what the gateway sends as a MESSAGE: page mode is
//! for small bodies (RFC 3428 s5), and a SIP network may take less than the router's
//! limit for every adapter.

use cpim_core::address::{Address, AddressError, Scheme};
use cpim_core::cpim::{rfc3339, CpimBuilder, CpimMessage};
use cpim_core::imdn;
use cpim_core::model::{mime_essence, DispositionRequest, Message, TransId};

/// A refusal of a MESSAGE, as a SIP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}")]
pub struct Refusal {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(code: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }
}

/// A URI read as an address, or why it is not one.
pub type ParsedUri = Result<Address, AddressError>;

/// The parts of an incoming MESSAGE the mapping reads, its URIs parsed once by the
/// caller.
#[derive(Clone, Copy, Debug)]
pub struct InboundMessage<'a> {
    /// Request-URI.
    pub request_uri: &'a ParsedUri,
    /// From URI (without display name and tag).
    pub from: &'a ParsedUri,
    /// To URI.
    pub to: &'a ParsedUri,
    /// Call-ID.
    pub call_id: &'a str,
    /// CSeq number.
    pub cseq: u32,
    /// Max-Forwards, if present.
    pub max_forwards: Option<u32>,
    /// Subject.
    pub subject: Option<&'a str>,
    /// Content-Language.
    pub content_language: Option<&'a str>,
    /// Content-Type.
    pub content_type: Option<&'a str>,
    /// Body.
    pub body: &'a [u8],
}

fn host_is_ip(addr: &Address) -> bool {
    let d = addr.domain.trim_start_matches('[').trim_end_matches(']');
    d.parse::<std::net::IpAddr>().is_ok()
}

/// A parsed SIP URI as an address, a 400 if it did not parse.
fn address(uri: &ParsedUri, what: &str) -> Result<Address, Refusal> {
    uri.clone()
        .map_err(|e| Refusal::new(400, format!("Bad {what}: {e}")))
}

/// The `message_id` of a SIP MESSAGE (see the module documentation): the envelope's
/// `imdn.Message-ID` when the body is `message/cpim` (`cpim`, parsed once by the caller).
fn message_id(cpim: Option<&CpimMessage<'_>>, call_id: &str, cseq: u32) -> String {
    match cpim.and_then(|c| c.imdn_message_id()) {
        Some(id) => id.into_owned(),
        None => format!("{call_id}-{cseq}"),
    }
}

/// Maps an incoming MESSAGE to the abstract message.
pub fn inbound(m: &InboundMessage<'_>, trans_id: TransId) -> Result<Message, Refusal> {
    let content_type = match m.content_type {
        Some(ct) if !ct.trim().is_empty() => ct.trim(),
        _ if m.body.is_empty() => "text/plain",
        _ => return Err(Refusal::new(400, "Missing Content-Type")),
    };
    let source = address(m.from, "From")?;
    let to = address(m.to, "To")?;
    let ruri = address(m.request_uri, "Request-URI")?;
    let destination = if ruri.user.is_some() && !host_is_ip(&ruri) {
        ruri
    } else {
        to
    };
    if destination.user.is_none() {
        return Err(Refusal::new(404, "Not Found"));
    }
    let hops = m
        .max_forwards
        .map_or(Message::DEFAULT_HOPS, |mf| mf.min(255) as u8);
    let cpim = (mime_essence(content_type) == "message/cpim")
        .then(|| CpimMessage::parse(m.body).ok())
        .flatten();
    let mut msg = Message::new(trans_id, source, destination, content_type, m.body.to_vec());
    msg.message_id = Some(message_id(cpim.as_ref(), m.call_id, m.cseq));
    msg.subject = m
        .subject
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    msg.language = m
        .content_language
        .and_then(|l| l.split(',').next())
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    msg.thread = Some(m.call_id.to_owned());
    msg.hops_left = hops;
    if let Some(d) = cpim
        .as_ref()
        .and_then(|c| c.imdn_disposition_notification())
    {
        msg.disposition = DispositionRequest {
            delivery: d.contains("positive-delivery"),
            display: d.contains("display"),
            negative: d.contains("negative-delivery"),
        };
    }
    Ok(msg)
}

/// The parts of an outgoing MESSAGE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Request-URI and To.
    pub to: String,
    /// From.
    pub from: String,
    /// Call-ID (from the thread when usable), or `None` to make a fresh one.
    pub call_id: Option<String>,
    /// Max-Forwards.
    pub max_forwards: u8,
    /// Subject.
    pub subject: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Content-Type.
    pub content_type: String,
}

/// Characters RFC 3261 `word` allows in a Call-ID.
fn valid_call_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}@".contains(&b))
}

/// A header value with no CR/LF (header injection guard).
fn header_safe(s: &str) -> Option<String> {
    let t: String = s.chars().filter(|c| !c.is_control()).collect();
    let t = t.trim().to_owned();
    (!t.is_empty()).then_some(t)
}

/// The SIP form of an address (scheme `sip` unless already `sips`).
pub fn sip_uri(a: &Address) -> String {
    match a.scheme {
        Scheme::Sip | Scheme::Sips => a.to_string(),
        _ => a.with_scheme(Scheme::Sip).to_string(),
    }
}

/// Maps the abstract message to an outgoing MESSAGE's headers (the body goes as is).
/// `max_size` is the largest body sent as a MESSAGE (see the module documentation).
pub fn outbound(m: &Message, max_size: usize) -> Result<OutboundMessage, Refusal> {
    if m.body.len() > max_size {
        return Err(Refusal::new(413, "Request Entity Too Large"));
    }
    if m.destination.user.is_none() {
        return Err(Refusal::new(404, "Not Found"));
    }
    Ok(OutboundMessage {
        to: sip_uri(&m.destination),
        // A disposition notification comes from the user, not one of its devices: a
        // client finds the message it names among those it sent to that address
        // (liblinphone keeps one chat room per peer URI, `gr` included).
        from: if m.mime_type() == imdn::CONTENT_TYPE {
            sip_uri(&m.source.bare())
        } else {
            sip_uri(&m.source)
        },
        call_id: m
            .thread
            .as_deref()
            .filter(|t| valid_call_id(t))
            .map(str::to_owned),
        max_forwards: m.hops_left,
        subject: m.subject.as_deref().and_then(header_safe),
        content_language: m.language.as_deref().and_then(header_safe),
        content_type: header_safe(&m.content_type).unwrap_or_else(|| "text/plain".into()),
    })
}

/// True if a message of media type `essence` ([`Message::mime_type`]) goes to SIP in
/// `message/cpim` under `policy` for a target whose UA is known to write CPIM itself
/// (`learned`); see [`super::config::CpimWrap`].
pub fn should_wrap(essence: &str, policy: super::config::CpimWrap, learned: bool) -> bool {
    use super::config::CpimWrap;
    if essence == "message/cpim" || cpim_core::model::is_end_to_end_secured(essence) {
        return false;
    }
    match policy {
        CpimWrap::Never => false,
        CpimWrap::Always => true,
        CpimWrap::Learn => learned || essence == imdn::CONTENT_TYPE,
    }
}

/// `m`'s body in a `message/cpim` envelope (RFC 3862 s3-s4, RFC 3922 s4): From and To
/// (the SIP forms of the addresses without instance: the users, not their devices), DateTime (`now_secs`),
/// the RFC 5438 s6 IMDN headers (`imdn.Message-ID` = the message id, or `fresh_id`
/// when it has none; `imdn.Disposition-Notification` from the receipt request), the
/// payload with its Content-Type, and `Content-Disposition: notification` on an IMDN
/// (RFC 5438 s7.1.1.2). The payload is not touched.
pub fn wrap(m: &Message, now_secs: u64, fresh_id: impl FnOnce() -> String) -> Vec<u8> {
    let id = m
        .message_id
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(fresh_id);
    let mut wanted = Vec::new();
    if m.disposition.delivery {
        wanted.push("positive-delivery");
    }
    if m.disposition.negative {
        wanted.push("negative-delivery");
    }
    if m.disposition.display {
        wanted.push("display");
    }
    let disposition = (!wanted.is_empty()).then(|| wanted.join(", "));
    let mut b = CpimBuilder::new()
        .from(&sip_uri(&m.source.bare()), None)
        .to(&sip_uri(&m.destination.bare()), None)
        .datetime(&rfc3339(now_secs))
        .imdn(&id, disposition.as_deref());
    if let Some(subject) = m.subject.as_deref().and_then(header_safe) {
        b = b.subject(&subject, None);
    }
    b = b.content_type(
        &header_safe(&m.content_type).unwrap_or_else(|| "text/plain;charset=UTF-8".into()),
    );
    if m.mime_type() == imdn::CONTENT_TYPE {
        b = b.content_header("Content-Disposition", "notification");
    }
    b.payload(&m.body[..]).build().to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_core::StatusCode;

    /// The URIs of the MESSAGEs below, parsed as the dispatcher parses them.
    struct Uris {
        ruri: ParsedUri,
        from: ParsedUri,
        to: ParsedUri,
    }

    fn uris() -> Uris {
        Uris {
            ruri: Address::parse("sip:romeo@xmpp.test"),
            from: Address::parse("sip:juliet@sip.test"),
            to: Address::parse("sip:romeo@xmpp.test"),
        }
    }

    fn base<'a>(u: &'a Uris, body: &'a [u8], ct: Option<&'a str>) -> InboundMessage<'a> {
        InboundMessage {
            request_uri: &u.ruri,
            from: &u.from,
            to: &u.to,
            call_id: "abc@host",
            cseq: 7,
            max_forwards: Some(70),
            subject: Some("Hi"),
            content_language: Some("en"),
            content_type: ct,
            body,
        }
    }

    #[test]
    fn text_plain_maps_all_fields() {
        let u = uris();
        let m = inbound(
            &base(&u, b"hello", Some("text/plain;charset=UTF-8")),
            TransId(1),
        )
        .unwrap();
        assert_eq!(m.source.to_string(), "sip:juliet@sip.test");
        assert_eq!(m.destination.to_string(), "sip:romeo@xmpp.test");
        assert_eq!(m.content_type, "text/plain;charset=UTF-8");
        assert_eq!(m.body, b"hello");
        assert_eq!(m.subject.as_deref(), Some("Hi"));
        assert_eq!(m.language.as_deref(), Some("en"));
        assert_eq!(m.thread.as_deref(), Some("abc@host"));
        assert_eq!(m.message_id.as_deref(), Some("abc@host-7"));
        assert_eq!(m.hops_left, 70);
    }

    /// Max-Forwards is translated, not enforced: 0 stays 0 (the router answers 483),
    /// absent is 70; a large body passes (the router answers 413). Bad parts are 400.
    #[test]
    fn max_forwards_translated_and_bad_parts_refused() {
        let u = uris();
        for (mf, hops) in [(Some(0), 0), (Some(1), 1), (Some(300), 255), (None, 70)] {
            let mut i = base(&u, b"x", Some("text/plain"));
            i.max_forwards = mf;
            assert_eq!(inbound(&i, TransId(1)).unwrap().hops_left, hops, "{mf:?}");
        }
        let big = [b'a'; 100_000];
        assert_eq!(
            inbound(&base(&u, &big, Some("text/plain")), TransId(1))
                .unwrap()
                .body
                .len(),
            100_000
        );
        assert_eq!(
            inbound(&base(&u, b"x", None), TransId(1)).unwrap_err().code,
            StatusCode::BAD_REQUEST
        );
        let mailto = Address::parse("mailto:x@y");
        let mut i = base(&u, b"x", Some("text/plain"));
        i.from = &mailto;
        let refusal = inbound(&i, TransId(1)).unwrap_err();
        assert_eq!(refusal.code, StatusCode::BAD_REQUEST);
        assert!(refusal.reason.starts_with("Bad From: "), "{refusal}");
    }

    #[test]
    fn cpim_body_passes_untouched_with_imdn_id() {
        let body = b"From: <im:juliet@sip.test>\r\nTo: <im:romeo@xmpp.test>\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: 34jk324j\r\nimdn.Disposition-Notification: positive-delivery\r\n\r\nContent-Type: text/plain\r\n\r\nHello\r\n";
        let u = uris();
        let m = inbound(&base(&u, body, Some("message/cpim")), TransId(1)).unwrap();
        assert_eq!(m.body, body.to_vec());
        assert_eq!(m.message_id.as_deref(), Some("34jk324j"));
        assert!(m.disposition.delivery);
        assert!(!m.disposition.display);
        // Other types are passed through too.
        let m = inbound(
            &base(&u, &[0, 159, 146, 150], Some("application/octet-stream")),
            TransId(2),
        )
        .unwrap();
        assert_eq!(m.body, vec![0, 159, 146, 150]);
    }

    #[test]
    fn destination_falls_back_to_to_for_ip_request_uri() {
        let u = Uris {
            ruri: Address::parse("sip:romeo@127.0.0.1:5070;transport=tcp"),
            ..uris()
        };
        let m = inbound(&base(&u, b"x", Some("text/plain")), TransId(1)).unwrap();
        assert_eq!(m.destination.domain, "xmpp.test");
    }

    #[test]
    fn outbound_round_trip_fields() {
        let mut m = Message::new(
            TransId(3),
            Address::parse("romeo@xmpp.test/balcony").unwrap(),
            Address::parse("sip:juliet@sip.test").unwrap(),
            "text/plain",
            b"hi".to_vec(),
        );
        m.thread = Some("th-1".into());
        m.subject = Some("a\r\nInjected: x".into());
        m.hops_left = 12;
        let o = outbound(&m, 100).unwrap();
        assert_eq!(o.from, "sip:romeo@xmpp.test;gr=balcony");
        assert_eq!(o.to, "sip:juliet@sip.test");
        assert_eq!(o.call_id.as_deref(), Some("th-1"));
        assert_eq!(o.max_forwards, 12);
        assert!(!o.subject.unwrap().contains('\n'));
        m.thread = Some("has space".into());
        assert_eq!(outbound(&m, 100).unwrap().call_id, None);
        // The hop count is the router's: what is left goes out as it is.
        m.hops_left = 0;
        assert_eq!(outbound(&m, 100).unwrap().max_forwards, 0);
        // The SIP side's own limit on what it sends (RFC 3428 s5).
        m.body = vec![b'a'; 101];
        assert_eq!(
            outbound(&m, 100).unwrap_err().code,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    fn xmpp_message(ct: &str, body: &str) -> Message {
        let mut m = Message::new(
            TransId(1),
            Address::parse("xmpp:bob@xmpp.test").unwrap(),
            Address::parse("sip:alice@sip.test").unwrap(),
            ct,
            body.as_bytes().to_vec(),
        );
        m.message_id = Some("bob-7".into());
        m
    }

    /// RFC 3862 s3-s4 with the RFC 5438 s6 headers: the id and the receipt request of
    /// the XMPP message travel in the envelope; the payload is untouched.
    #[test]
    fn wrap_carries_id_disposition_and_payload_rfc3862_rfc5438() {
        let mut m = xmpp_message("text/plain;charset=UTF-8", "hi & <bye>");
        m.disposition.delivery = true;
        m.disposition.display = true;
        let body = wrap(&m, 1_700_000_000, || unreachable!("the message has an id"));
        let c = CpimMessage::parse(&body).unwrap();
        assert_eq!(c.imdn_message_id().as_deref(), Some("bob-7"));
        assert_eq!(
            c.imdn_disposition_notification().as_deref(),
            Some("positive-delivery, display")
        );
        assert_eq!(c.datetime(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(
            c.from().unwrap().address().unwrap().to_string(),
            "sip:bob@xmpp.test"
        );
        assert_eq!(
            c.content_type().as_deref(),
            Some("text/plain;charset=UTF-8")
        );
        assert_eq!(c.payload(), b"hi & <bye>");
        assert!(c.content_header("Content-Disposition").is_none());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn imdn_goes_with_content_disposition_notification_rfc5438_s7() {
        let mut m = xmpp_message(imdn::CONTENT_TYPE, "<imdn/>");
        m.message_id = None;
        let body = wrap(&m, 0, || "fresh-1".into());
        let c = CpimMessage::parse(&body).unwrap();
        assert_eq!(c.imdn_message_id().as_deref(), Some("fresh-1"));
        assert_eq!(
            c.content_header("Content-Disposition").as_deref(),
            Some("notification")
        );
    }

    #[test]
    fn wrap_policy() {
        use crate::app::config::CpimWrap;
        let text = xmpp_message("text/plain", "x");
        let note = xmpp_message(imdn::CONTENT_TYPE, "<imdn/>");
        let cpim = xmpp_message("message/cpim", "From: <sip:a@b>\r\n\r\n\r\nx");
        let signed = xmpp_message("multipart/signed;boundary=x", "x");
        let (text, note) = (text.mime_type(), note.mime_type());
        assert!(!should_wrap(&text, CpimWrap::Learn, false));
        assert!(should_wrap(&text, CpimWrap::Learn, true));
        assert!(
            should_wrap(&note, CpimWrap::Learn, false),
            "IMDNs go in CPIM"
        );
        assert!(should_wrap(&text, CpimWrap::Always, false));
        assert!(!should_wrap(&note, CpimWrap::Never, true));
        for m in [&cpim, &signed] {
            for p in [CpimWrap::Learn, CpimWrap::Always] {
                assert!(!should_wrap(&m.mime_type(), p, true), "{}", m.content_type);
            }
        }
    }
}

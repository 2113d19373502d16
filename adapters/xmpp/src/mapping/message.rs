//! Message stanzas <-> MESSAGE operations (RFC 7572): bodies, `xml:lang`, XEP-0085 chat
//! states as RFC 3994 isComposing, XEP-0184 receipts and XEP-0333 markers as RFC 5438
//! IMDN.

use cpim_core::address::Address;
use cpim_core::errmap::{self, Condition, ErrorType};
use cpim_core::model::{DispositionRequest, Message, MessageKind, Operation, TransId};
use cpim_core::StatusCode;
use cpim_core::{imdn, iscomposing};

use super::{error_stanza, gw_jid, parse_jid, xmpp_jid, Ctx, Inbound, Origin, OutboundError};
use crate::element::{text_el, Element, ElementExt};
use crate::ids::MessageIds;
use crate::jid::{to_jid, Home};
use crate::ns;

pub(super) fn lang_of(el: &Element) -> Option<String> {
    el.attr_ns(ns::XML, "lang").map(str::to_owned)
}

pub(super) fn inbound_message(
    ctx: &Ctx<'_>,
    el: &Element,
    origin: Origin,
    from: Address,
    to: Address,
    trans_id: TransId,
) -> Inbound {
    let ns = ctx.ns;
    let kind = match el.attr("type").unwrap_or("normal") {
        "chat" => MessageKind::Chat,
        "normal" => MessageKind::Normal,
        "headline" => MessageKind::Headline,
        "groupchat" => MessageKind::Groupchat,
        other => {
            return Inbound::Reply(error_stanza(
                ns,
                &origin,
                Condition::BadRequest,
                ErrorType::Modify,
                Some(&format!("unknown message type {other:?}")),
            ))
        }
    };
    // Receipts and markers for messages the gateway sent (XEP-0184 s5, XEP-0333 s4):
    // they name the stanza id, which maps back to the message id it was made from.
    let original_id = |id: &str| -> String {
        let (sender, recipient) = (el.attr("to").unwrap_or(""), el.attr("from").unwrap_or(""));
        ctx.message_ids
            .message_id_of(id, sender, recipient)
            .unwrap_or(id)
            .to_owned()
    };
    if let Some(r) = el.child(ns::RECEIPTS, "received") {
        if el.child(ns, "body").is_none() {
            let id = original_id(r.attr("id").or(origin.id.as_deref()).unwrap_or(""));
            let doc = imdn_doc(
                &id,
                ctx.now_rfc3339,
                &from,
                imdn::NotificationKind::Delivery,
                imdn::Status::Delivered,
            );
            return match doc {
                Some(body) => {
                    let mut m = Message::new(trans_id, from, to, imdn::CONTENT_TYPE, body);
                    m.kind = kind;
                    Inbound::Op {
                        op: Operation::Message(m),
                        origin,
                    }
                }
                None => Inbound::Receipt { id },
            };
        }
    }
    if let Some(d) = el.child(ns::MARKERS, "displayed") {
        if el.child(ns, "body").is_none() {
            let id = original_id(d.attr("id").unwrap_or(""));
            if let Some(body) = imdn_doc(
                &id,
                ctx.now_rfc3339,
                &from,
                imdn::NotificationKind::Display,
                imdn::Status::Displayed,
            ) {
                let mut m = Message::new(trans_id, from, to, imdn::CONTENT_TYPE, body);
                m.kind = kind;
                return Inbound::Op {
                    op: Operation::Message(m),
                    origin,
                };
            }
        }
    }
    let body = el.child(ns, "body");
    let disposition = DispositionRequest {
        delivery: el.child(ns::RECEIPTS, "request").is_some(),
        display: el.child(ns::MARKERS, "markable").is_some(),
        // RFC 6120 s8.3: an XMPP sender learns of a failure by an error stanza, unasked.
        negative: body.is_some(),
    };
    let mut m = match body {
        Some(b) => {
            let mut m = Message::new(
                trans_id,
                from,
                to,
                "text/plain;charset=UTF-8",
                b.text().into_owned().into_bytes(),
            );
            m.language = lang_of(b).or_else(|| lang_of(el));
            m
        }
        None => {
            // XEP-0085 chat state alone -> RFC 3994 isComposing.
            let state = el
                .elements()
                .find(|c| c.ns == ns::CHATSTATES)
                .map(|c| c.name.as_str());
            let Some(state) = state else {
                return Inbound::Ignore("message without body or chat state");
            };
            let st = match state {
                "composing" => iscomposing::State::Active,
                "paused" | "inactive" | "gone" => iscomposing::State::Idle,
                // `active` means "paying attention", not composing: nothing to tell.
                _ => return Inbound::Ignore("chat state active"),
            };
            let mut doc = iscomposing::IsComposing::new(st);
            doc.content_type = Some("text/plain".into());
            match iscomposing::encode(&doc) {
                Ok(xml) => Message::new(
                    trans_id,
                    from,
                    to,
                    iscomposing::CONTENT_TYPE,
                    xml.into_bytes(),
                ),
                Err(_) => return Inbound::Ignore("chat state could not be encoded"),
            }
        }
    };
    m.kind = kind;
    m.message_id = message_id(el, origin.id.as_deref());
    // A gateway ahead of us counted hops already (ns::HOPS); nobody may raise the budget.
    if let Some(left) = el
        .child(ns::HOPS, "hops")
        .and_then(|h| h.attr("left"))
        .and_then(|v| v.parse::<u8>().ok())
    {
        m.hops_left = left.min(Message::DEFAULT_HOPS);
    }
    m.subject = el.child(ns, "subject").map(|s| s.text().into_owned());
    m.thread = el.child(ns, "thread").map(|s| s.text().into_owned());
    m.disposition = disposition;
    Inbound::Op {
        op: Operation::Message(m),
        origin,
    }
}

/// The id of an incoming message: its stanza id, which receipts and markers name
/// (XEP-0184 s5), else its XEP-0359 origin-id. A stanza id a gateway made from the
/// origin-id (`<origin-id>.<mac>`, see [`crate::ids`]) gives the origin-id: the id the
/// first sender chose stays the same across chained gateways, so a copy that arrives by
/// two paths is the same message for the dedupe.
fn message_id(el: &Element, stanza_id: Option<&str>) -> Option<String> {
    let origin_id = el
        .child(ns::SID, "origin-id")
        .and_then(|o| o.attr("id"))
        .filter(|o| !o.is_empty());
    match (stanza_id, origin_id) {
        (Some(s), Some(o)) if s.strip_prefix(o).is_some_and(|r| r.starts_with('.')) => {
            Some(o.to_owned())
        }
        (Some(s), _) => Some(s.to_owned()),
        (None, o) => o.map(str::to_owned),
    }
}

pub(super) fn imdn_doc(
    id: &str,
    datetime: &str,
    recipient: &Address,
    kind: imdn::NotificationKind,
    status: imdn::Status,
) -> Option<Vec<u8>> {
    if id.is_empty() {
        return None;
    }
    let doc = imdn::Imdn::notice(
        id,
        datetime,
        to_jid(&recipient.bare(), Home::Xmpp)
            .ok()
            .map(|j| format!("xmpp:{j}")),
        kind,
        status,
    );
    imdn::encode(&doc).ok().map(String::into_bytes)
}

/// RFC 5438 s7.2.1.2 negative delivery for an XMPP error on a message the gateway sent
/// (RFC 7247 s7: errors are not dropped): the `failed` delivery notification its sender
/// gets when the error comes after the message's outcome was given, e.g. a client
/// refusing it minutes later. Only for a message that asked for it (read back from the
/// stanza id, `crate::ids`) and an error from its recipient, whose address the id's mac
/// binds, so no one else can make the gateway send one.
pub(super) fn late_failure(
    ctx: &Ctx<'_>,
    el: &Element,
    origin: &Origin,
    trans_id: TransId,
) -> Option<(Operation, Origin)> {
    if el.name != "message" {
        return None;
    }
    let (mid, negative) =
        ctx.message_ids
            .message_of(origin.id.as_deref()?, &origin.to, &origin.from)?;
    if !negative {
        return None;
    }
    let recipient = parse_jid(&origin.from, Home::Xmpp).ok()?.bare();
    let sender = parse_jid(&origin.to, Home::Sip).ok()?.bare();
    let body = imdn_doc(
        mid,
        ctx.now_rfc3339,
        &recipient,
        imdn::NotificationKind::Delivery,
        imdn::Status::Failed,
    )?;
    let m = Message::new(trans_id, recipient, sender, imdn::CONTENT_TYPE, body);
    // Refused by the core, it is not answered: an error on an error (RFC 6120 s8.3).
    let mut o = origin.clone();
    o.kind = "late-error".into();
    Some((Operation::Message(m), o))
}

pub(super) fn outbound_message(
    ns: &str,
    m: &Message,
    message_ids: &MessageIds,
    next_id: impl FnOnce() -> String,
) -> Result<Element, OutboundError> {
    let ty = match m.kind {
        MessageKind::Chat => "chat",
        MessageKind::Normal => "normal",
        MessageKind::Headline => "headline",
        MessageKind::Groupchat => "groupchat",
    };
    let (from, to) = (gw_jid(&m.source)?, xmpp_jid(&m.destination)?);
    let id = m
        .message_id
        .as_deref()
        .and_then(|mid| message_ids.stanza_id(&from, &to, mid, m.disposition.negative))
        .unwrap_or_else(next_id);
    let mut el = Element::build(ns, "message")
        .attr_set("type", ty)
        .attr_set("from", from)
        .attr_set("to", to)
        .attr_set("id", &id)
        .lang_set(m.language.as_deref());
    let mime = m.mime_type();
    match mime.as_str() {
        "text/plain" | "" => {
            let body = String::from_utf8(m.body.clone())
                .map_err(|_| OutboundError::BadPayload("text/plain body is not UTF-8".into()))?;
            if let Some(s) = &m.subject {
                el = el.child_add(text_el(ns, "subject", s));
            }
            el = el.child_add(text_el(ns, "body", &body));
            if let Some(t) = &m.thread {
                el = el.child_add(text_el(ns, "thread", t));
            }
            if m.disposition.delivery {
                el = el.child_add(Element::build(ns::RECEIPTS, "request"));
            }
            if m.disposition.display {
                el = el.child_add(Element::build(ns::MARKERS, "markable"));
            }
            // XEP-0359 s3: the id its originator gave it, the same on every try.
            if let Some(mid) = m.message_id.as_deref().filter(|i| !i.is_empty()) {
                el = el.child_add(Element::build(ns::SID, "origin-id").attr_set("id", mid));
            }
            el = el.child_add(
                Element::build(ns::HOPS, "hops").attr_set("left", m.hops_left.to_string()),
            );
            // XEP-0085 s5.1: a content message implies the active state.
            if m.kind == MessageKind::Chat {
                el = el.child_add(Element::build(ns::CHATSTATES, "active"));
            }
            Ok(el)
        }
        "application/im-iscomposing+xml" => {
            let doc = iscomposing::parse(&m.body)
                .map_err(|e| OutboundError::BadPayload(format!("isComposing: {e}")))?;
            let state = match doc.state {
                iscomposing::State::Active => "composing",
                _ => "paused",
            };
            Ok(el
                .attr_set("type", "chat")
                .child_add(Element::build(ns::CHATSTATES, state)))
        }
        "message/imdn+xml" => {
            let doc = imdn::parse(&m.body)
                .map_err(|e| OutboundError::BadPayload(format!("IMDN: {e}")))?;
            let n = doc
                .notification
                .ok_or_else(|| OutboundError::BadPayload("IMDN without notification".into()))?;
            let child = match (n.kind, n.status) {
                (imdn::NotificationKind::Delivery, imdn::Status::Delivered) => {
                    Element::build(ns::RECEIPTS, "received").attr_set("id", &doc.message_id)
                }
                (imdn::NotificationKind::Display, imdn::Status::Displayed) => {
                    Element::build(ns::MARKERS, "displayed").attr_set("id", &doc.message_id)
                }
                // RFC 5438 negative delivery (a queued message that expired): an XMPP
                // sender learns of it as an error for its message's id (RFC 6120 s8.3,
                // RFC 7247 s7: recipient-unavailable, wait).
                (
                    imdn::NotificationKind::Delivery,
                    st @ (imdn::Status::Failed | imdn::Status::Error | imdn::Status::Forbidden),
                ) => {
                    // The SIP status the failure stands for, through RFC 7247 s7.2.
                    let (code, text) = match st {
                        imdn::Status::Forbidden => {
                            (StatusCode::FORBIDDEN, "the recipient refused the message")
                        }
                        _ => (
                            StatusCode::TEMPORARILY_UNAVAILABLE,
                            "the message could not be delivered in time",
                        ),
                    };
                    let (cond, ty) = errmap::sip_to_xmpp(code);
                    let origin = Origin {
                        kind: "message".into(),
                        from: el.attr("to").unwrap_or("").to_owned(),
                        to: el.attr("from").unwrap_or("").to_owned(),
                        id: Some(doc.message_id.clone()),
                    };
                    return Ok(error_stanza(ns, &origin, cond, ty, Some(text)));
                }
                (k, s) => {
                    return Err(OutboundError::BadPayload(format!(
                        "IMDN {k:?}/{} has no XMPP equivalent",
                        s.name()
                    )))
                }
            };
            Ok(el.child_add(child))
        }
        other => Err(OutboundError::UnsupportedType(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::test_support::{ctx, ids, parse, NS};
    use crate::mapping::{inbound, outbound};
    use cpim_core::model::TransId;

    #[test]
    fn chat_message_maps_to_operation_rfc7572() {
        let d = vec!["sip.xmpp.test".to_string()];
        let el = parse("<message from='alice@xmpp.test/r' to='john\\20doe@sip.xmpp.test' type='chat' id='m1' xml:lang='en'><subject>S</subject><body>hi &amp; bye</body><thread>T1</thread><request xmlns='urn:xmpp:receipts'/></message>");
        let Inbound::Op {
            op: Operation::Message(m),
            ..
        } = inbound(&ctx(&d), &el, TransId(7))
        else {
            panic!()
        };
        assert_eq!(m.body, b"hi & bye");
        assert_eq!(m.destination.user.as_deref(), Some("john doe"));
        assert_eq!(m.source.instance.as_deref(), Some("r"));
        assert_eq!(m.subject.as_deref(), Some("S"));
        assert_eq!(m.thread.as_deref(), Some("T1"));
        assert_eq!(m.language.as_deref(), Some("en"));
        assert_eq!(m.message_id.as_deref(), Some("m1"));
        assert!(m.disposition.delivery);
        assert_eq!(m.kind, MessageKind::Chat);
        // And back.
        let out = outbound(NS, &Operation::Message(m), ids(), || "x1".into()).unwrap();
        let xml = out[0].to_xml();
        assert!(xml.contains("to=\"john\\20doe@sip.xmpp.test\""), "{xml}");
        assert!(xml.contains("<body>hi &amp; bye</body>"), "{xml}");
        assert!(xml.contains("from=\"alice@xmpp.test/r\""), "{xml}");
    }

    #[test]
    fn chat_states_map_to_iscomposing_rfc3994() {
        let d = vec!["sip.xmpp.test".to_string()];
        let el = parse("<message from='alice@xmpp.test/r' to='c@sip.xmpp.test' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
        let Inbound::Op {
            op: Operation::Message(m),
            ..
        } = inbound(&ctx(&d), &el, TransId(1))
        else {
            panic!()
        };
        assert_eq!(m.mime_type(), "application/im-iscomposing+xml");
        let out = outbound(NS, &Operation::Message(m), ids(), || "i".into()).unwrap();
        assert!(out[0].child(ns::CHATSTATES, "composing").is_some());
    }

    #[test]
    fn receipts_map_to_imdn_rfc5438() {
        let d = vec!["sip.xmpp.test".to_string()];
        let el = parse("<message from='alice@xmpp.test/r' to='c@sip.xmpp.test'><received xmlns='urn:xmpp:receipts' id='orig1'/></message>");
        let Inbound::Op {
            op: Operation::Message(m),
            ..
        } = inbound(&ctx(&d), &el, TransId(1))
        else {
            panic!()
        };
        assert_eq!(m.mime_type(), "message/imdn+xml");
        let out = outbound(NS, &Operation::Message(m), ids(), || "i".into()).unwrap();
        assert_eq!(
            out[0].child(ns::RECEIPTS, "received").unwrap().attr("id"),
            Some("orig1")
        );
    }

    /// RFC 5438 s6.3 / XEP-0359 s3 / XEP-0184 s5: the message id survives the trip. The
    /// stanza carries it (as origin-id and inside its stanza id, the same on every try),
    /// and the receipt naming the stanza id becomes an IMDN naming the message id.
    #[test]
    fn message_id_survives_to_xmpp_and_back_in_the_receipt() {
        let a = Address::parse("sip:alice@sip.xmpp.test").unwrap();
        let b = Address::parse("xmpp:bob@xmpp.test").unwrap();
        let mut m = Message::new(TransId(1), a, b, "text/plain", "hi");
        m.message_id = Some("LMxzUBVN2WGR".into());
        m.disposition.delivery = true;
        let op = Operation::Message(m);
        let first = outbound(NS, &op, ids(), || "random".into()).unwrap();
        let again = outbound(NS, &op, ids(), || "random2".into()).unwrap();
        let id = first[0].attr("id").unwrap().to_owned();
        assert_eq!(
            again[0].attr("id"),
            Some(id.as_str()),
            "a retry keeps its stanza id"
        );
        assert!(id.starts_with("LMxzUBVN2WGR."), "{id}");
        assert_eq!(
            first[0]
                .child(ns::SID, "origin-id")
                .and_then(|o| o.attr("id")),
            Some("LMxzUBVN2WGR")
        );
        assert!(first[0].child(ns::RECEIPTS, "request").is_some());

        let d = vec!["sip.xmpp.test".to_string()];
        let receipt = parse(&format!("<message from='bob@xmpp.test/phone' to='alice@sip.xmpp.test' id='r1'><received xmlns='urn:xmpp:receipts' id='{id}'/></message>"));
        let Inbound::Op {
            op: Operation::Message(r),
            ..
        } = inbound(&ctx(&d), &receipt, TransId(2))
        else {
            panic!()
        };
        let doc = imdn::parse(&r.body).unwrap();
        assert_eq!(doc.message_id, "LMxzUBVN2WGR");
        // A marker too (XEP-0333 s4).
        let marker = parse(&format!("<message from='bob@xmpp.test/phone' to='alice@sip.xmpp.test' id='r2'><displayed xmlns='urn:xmpp:chat-markers:0' id='{id}'/></message>"));
        let Inbound::Op {
            op: Operation::Message(r),
            ..
        } = inbound(&ctx(&d), &marker, TransId(3))
        else {
            panic!()
        };
        assert_eq!(imdn::parse(&r.body).unwrap().message_id, "LMxzUBVN2WGR");
        // A receipt from someone the message did not go to keeps the id as it is.
        let other = parse(&format!("<message from='eve@xmpp.test/x' to='alice@sip.xmpp.test' id='r3'><received xmlns='urn:xmpp:receipts' id='{id}'/></message>"));
        let Inbound::Op {
            op: Operation::Message(r),
            ..
        } = inbound(&ctx(&d), &other, TransId(4))
        else {
            panic!()
        };
        assert_eq!(imdn::parse(&r.body).unwrap().message_id, id);
    }

    #[test]
    fn origin_id_is_the_message_id_when_the_stanza_has_no_id_xep0359() {
        let d = vec!["sip.xmpp.test".to_string()];
        let el = parse("<message from='bob@xmpp.test/r' to='c@sip.xmpp.test' type='chat'><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='o-9'/></message>");
        let Inbound::Op {
            op: Operation::Message(m),
            ..
        } = inbound(&ctx(&d), &el, TransId(1))
        else {
            panic!()
        };
        assert_eq!(m.message_id.as_deref(), Some("o-9"));
    }

    /// RFC 5438 negative delivery to an XMPP sender: an error stanza for its message's
    /// id (RFC 6120 s8.3), recipient-unavailable/wait, or forbidden/auth.
    #[test]
    fn failed_imdn_becomes_an_error_for_the_original_id() {
        for (status, cond, ty) in [
            (imdn::Status::Failed, "recipient-unavailable", "wait"),
            (imdn::Status::Forbidden, "forbidden", "auth"),
        ] {
            let doc = imdn::Imdn::notice(
                "bob-42",
                "2026-12-07T12:00:00Z",
                None,
                imdn::NotificationKind::Delivery,
                status,
            );
            let m = Message::new(
                TransId(1),
                Address::parse("sip:alice@sip.xmpp.test").unwrap(),
                Address::parse("xmpp:bob@xmpp.test/phone").unwrap(),
                imdn::CONTENT_TYPE,
                imdn::encode(&doc).unwrap().into_bytes(),
            );
            let out = outbound(NS, &Operation::Message(m), ids(), || "i".into()).unwrap();
            let el = &out[0];
            assert_eq!(el.attr("type"), Some("error"));
            assert_eq!(el.attr("id"), Some("bob-42"));
            assert_eq!(el.attr("from"), Some("alice@sip.xmpp.test"));
            assert_eq!(el.attr("to"), Some("bob@xmpp.test/phone"));
            let err = el.child(NS, "error").unwrap();
            assert_eq!(err.attr("type"), Some(ty));
            assert!(err.child(ns::STANZAS, cond).is_some(), "{}", el.to_xml());
        }
    }

    /// The gateway's hop count crosses XMPP (`urn:cpim-gateway:hops:0`, see the mapping
    /// module docs): sent with every content message, read back, never raised above 70.
    #[test]
    fn hops_cross_xmpp_and_are_never_raised() {
        let a = Address::parse("sip:alice@sip.xmpp.test").unwrap();
        let b = Address::parse("xmpp:bob@xmpp.test").unwrap();
        let mut m = Message::new(TransId(1), a, b, "text/plain", "x");
        m.hops_left = 42;
        let out = outbound(NS, &Operation::Message(m), ids(), || "i".into()).unwrap();
        assert_eq!(
            out[0].child(ns::HOPS, "hops").and_then(|h| h.attr("left")),
            Some("42")
        );
        let d = vec!["sip.xmpp.test".to_string()];
        for (left, want) in [("42", 42), ("0", 0), ("255", 70), ("x", 70), ("-1", 70)] {
            let el = parse(&format!("<message from='bob@xmpp.test/r' to='c@sip.xmpp.test' type='chat' id='i1'><body>x</body><hops xmlns='urn:cpim-gateway:hops:0' left='{left}'/></message>"));
            let Inbound::Op {
                op: Operation::Message(m),
                ..
            } = inbound(&ctx(&d), &el, TransId(1))
            else {
                panic!()
            };
            assert_eq!(m.hops_left, want, "left={left}");
        }
    }

    /// A stanza id a gateway made from the origin-id gives the origin-id back, so the
    /// first sender's id survives a chain of gateways; any other stanza id is the id.
    #[test]
    fn the_first_senders_id_survives_chained_gateways() {
        let d = vec!["sip.xmpp.test".to_string()];
        for (id, want) in [
            ("M1.0123456789abcdef01234567", "M1"),
            ("M1", "M1"),
            ("client-7", "client-7"),
            ("M10.x", "M10.x"),
        ] {
            let el = parse(&format!("<message from='bob@xmpp.test/r' to='c@sip.xmpp.test' type='chat' id='{id}'><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='M1'/></message>"));
            let Inbound::Op {
                op: Operation::Message(m),
                ..
            } = inbound(&ctx(&d), &el, TransId(1))
            else {
                panic!()
            };
            assert_eq!(m.message_id.as_deref(), Some(want), "stanza id {id}");
        }
    }

    /// RFC 5438 s7.2.1.2 / RFC 7247 s7: an error on a message that asked for negative
    /// delivery notices carries the sender's failure notice, for when it comes after the
    /// outcome; not for a message that did not ask, nor from anyone but its recipient.
    #[test]
    fn late_error_carries_a_failure_notice_only_when_asked_rfc5438() {
        let a = Address::parse("sip:alice@sip.xmpp.test").unwrap();
        let b = Address::parse("xmpp:bob@xmpp.test").unwrap();
        let d = vec!["sip.xmpp.test".to_string()];
        let error_for = |negative: bool, from: &str| {
            let mut m = Message::new(TransId(1), a.clone(), b.clone(), "text/plain", "hi");
            m.message_id = Some("Neg-1".into());
            m.disposition.negative = negative;
            let out = outbound(NS, &Operation::Message(m), ids(), || "r".into()).unwrap();
            let id = out[0].attr("id").unwrap().to_owned();
            let err = parse(&format!("<message type='error' from='{from}' to='alice@sip.xmpp.test' id='{id}'><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"));
            match inbound(&ctx(&d), &err, TransId(2)) {
                Inbound::Response { result, late, .. } => {
                    assert_eq!(result.unwrap_err().code, 406);
                    late
                }
                other => panic!("{other:?}"),
            }
        };
        let (op, origin) = *error_for(true, "bob@xmpp.test/phone").expect("a notice");
        let Operation::Message(n) = op else { panic!() };
        assert_eq!(n.source.to_string(), "bob@xmpp.test");
        assert_eq!(n.destination.to_string(), "alice@sip.xmpp.test");
        assert!(n.is_notification());
        let doc = imdn::parse(&n.body).unwrap();
        assert_eq!(doc.message_id, "Neg-1");
        assert_eq!(doc.notification.unwrap().status, imdn::Status::Failed);
        assert_ne!(
            origin.kind, "message",
            "an error on an error is never answered"
        );
        assert!(error_for(false, "bob@xmpp.test/phone").is_none());
        assert!(error_for(true, "mallory@xmpp.test").is_none());
    }
}

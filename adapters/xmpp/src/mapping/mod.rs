//! Stanzas <-> CPIM operations (RFC 3922, RFC 7572 messages, RFC 8048 presence), sans-IO.
//!
//! [`inbound`] classifies a stanza from the XMPP side: an operation for the core, a
//! local answer (disco, version, ping, errors), or a response to something the gateway
//! sent. [`outbound`] turns an operation for an XMPP user into stanzas. Both work for
//! any stanza namespace (`jabber:component:accept`, `jabber:server`): the caller passes
//! the stream's.
//!
//! The gateway's own extension, on every content message it sends:
//! `<hops xmlns='urn:cpim-gateway:hops:0' left='N'/>` ([`crate::ns::HOPS`]), the hops the
//! message has left after this gateway counted its own (RFC 3261 s16.6 step 3, as SIP's
//! Max-Forwards). A gateway that receives it continues from N (never above 70, the RFC
//! 3261 s8.1.1.6 default), so gateways chained over XMPP share one budget and a loop ends;
//! other XMPP entities ignore it (RFC 6120 s8.4). With the message id carried as the
//! XEP-0359 origin-id (see [`crate::ids`]) it is what a chain of gateways needs to cut
//! loops and to deliver a message that arrives by two paths once.
//!
//! Each stanza kind has its module (`message`, `presence`, `iq`); this one holds what
//! they share: the context, the error stanzas (RFC 6120 s8.3, mapped per RFC 7247 s7)
//! and the two entry points that dispatch to them.

use cpim_core::address::Address;
use cpim_core::errmap::{self, Condition, ErrorType};
use cpim_core::model::{Operation, Status, TransId};
use cpim_core::StatusCode;

use crate::element::{text_el, Element, ElementExt};
use crate::ids::MessageIds;
use crate::jid::{parse_jid, to_jid, Home};
use crate::ns;

mod iq;
mod message;
mod presence;

use iq::inbound_iq;
use message::{inbound_message, outbound_message};
use presence::{inbound_presence, outbound_notify, presence};

/// The subscription duration given to an XMPP subscription (RFC 8048 s5: the gateway
/// owns refreshes, XMPP subscriptions do not expire).
pub const SUBSCRIPTION_SECS: u32 = 3600;

/// The features advertised in disco#info (XEP-0030).
pub const FEATURES: &[&str] = &[
    ns::DISCO_INFO,
    ns::DISCO_ITEMS,
    ns::PING,
    ns::VERSION,
    ns::RECEIPTS,
    ns::CHATSTATES,
    ns::MARKERS,
];

/// Context of the mapping.
#[derive(Clone, Debug)]
pub struct Ctx<'a> {
    /// The stanza namespace of the stream.
    pub ns: &'a str,
    /// The domains served by the gateway (stanzas to others are refused).
    pub local_domains: &'a [String],
    /// Name for XEP-0092.
    pub software_name: &'a str,
    /// Current time as RFC 3339, for IMDN `datetime`.
    pub now_rfc3339: &'a str,
    /// The stream's message stanza ids: a receipt or marker naming one maps back to the
    /// message id it carries ([`crate::ids`]).
    pub message_ids: &'a MessageIds,
}

/// Where a stanza goes.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // produced and consumed at once, never stored
pub enum Inbound {
    /// An operation for the core; `reply` is the stanza to answer an error on.
    Op {
        /// The operation.
        op: Operation,
        /// What to answer if the core refuses: (kind, from, to, id).
        origin: Origin,
    },
    /// An answer to send at once.
    Reply(Element),
    /// A response (result or error) to a stanza the gateway sent, by id.
    Response {
        /// The stanza id.
        id: String,
        /// `Ok` for a result, else the mapped status.
        result: Result<(), Status>,
        /// For an error on a message that asked for negative delivery notifications: the
        /// failure notice for its sender, to hand to the core when the error comes too
        /// late to be the message's outcome (`message::late_failure`).
        late: Option<Box<(Operation, Origin)>>,
    },
    /// A receipt or marker for a message the gateway sent (XEP-0184 `received`).
    Receipt {
        /// The id of the acknowledged message.
        id: String,
    },
    /// Nothing to do (e.g. an error on an error).
    Ignore(&'static str),
}

/// Where an inbound stanza came from, to answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `message`, `presence` or `iq`.
    pub kind: String,
    /// Its `from`.
    pub from: String,
    /// Its `to`.
    pub to: String,
    /// Its `id`.
    pub id: Option<String>,
}

/// Builds an error stanza answering `origin` (RFC 6120 s8.3) with the condition that
/// RFC 7247 s7.2 maps the SIP code to.
pub fn error_reply(ns: &str, origin: &Origin, status: &Status) -> Element {
    let (cond, ty) = errmap::sip_to_xmpp(status.code);
    error_stanza(ns, origin, cond, ty, Some(&status.reason))
}

/// An error stanza with a condition and optional text.
pub fn error_stanza(
    ns: &str,
    origin: &Origin,
    cond: Condition,
    ty: ErrorType,
    text: Option<&str>,
) -> Element {
    let mut err = Element::build(ns, "error")
        .attr_set("type", ty.as_str())
        .child_add(Element::build(ns::STANZAS, cond.as_str()));
    if let Some(t) = text.filter(|t| !t.is_empty()) {
        err = err.child_add(text_el(ns::STANZAS, "text", t));
    }
    Element::build(ns, &origin.kind)
        .attr_set("type", "error")
        .attr_set("from", &origin.to)
        .attr_set("to", &origin.from)
        .attr_opt("id", origin.id.as_deref())
        .child_add(err)
}

fn origin_of(el: &Element) -> Origin {
    Origin {
        kind: el.name.clone(),
        from: el.attr("from").unwrap_or("").to_owned(),
        to: el.attr("to").unwrap_or("").to_owned(),
        id: el.attr("id").map(str::to_owned),
    }
}

/// The status an error stanza maps to (RFC 7247 s7.1).
///
/// One refinement: a `<message/>` bounced with `<service-unavailable/>` of type `cancel` from
/// a user's address (a `from` with a localpart) is how a server answers for a user it does
/// not have (RFC 6121 s8.5.1; Prosody and ejabberd do exactly this). That is 404 for the sender,
/// not 503: a SIP UA learns that the user does not exist, and the gateway's store-and-forward
/// queue (which retries 503) is not filled with messages that can never be delivered.
pub fn status_of_error(el: &Element) -> Status {
    let err = el.elements().find(|c| c.name == "error");
    let cond = err.and_then(|e| {
        e.elements()
            .find(|c| c.ns == ns::STANZAS && c.name != "text")
    });
    let text = err
        .and_then(|e| e.child(ns::STANZAS, "text"))
        .map(|t| t.text().into_owned());
    match cond {
        Some(c) => {
            let no_such_user = el.name == "message"
                && c.name == "service-unavailable"
                && err.and_then(|e| e.attr("type")) == Some("cancel")
                && el.attr("from").is_some_and(|f| f.contains('@'));
            if no_such_user {
                return Status::new(
                    StatusCode::NOT_FOUND,
                    text.unwrap_or_else(|| {
                        "Not Found: the recipient's server refused the message \
                         (service-unavailable)"
                            .into()
                    }),
                );
            }
            let code = errmap::xmpp_name_to_sip(&c.name);
            Status::new(code, text.unwrap_or_else(|| c.name.clone()))
        }
        None => Status::new(
            StatusCode::SERVER_INTERNAL_ERROR,
            text.unwrap_or_else(|| "error without condition".into()),
        ),
    }
}

/// Classifies one stanza from the XMPP side. `trans_id` is the id the operation gets.
pub fn inbound(ctx: &Ctx<'_>, el: &Element, trans_id: TransId) -> Inbound {
    let origin = origin_of(el);
    let ty = el.attr("type").unwrap_or("");
    if ty == "error" {
        return match &origin.id {
            Some(id) => Inbound::Response {
                id: id.clone(),
                result: Err(status_of_error(el)),
                late: message::late_failure(ctx, el, &origin, trans_id).map(Box::new),
            },
            None => Inbound::Ignore("error stanza without id"),
        };
    }
    // Every answer carries a `from` the server accepts: the address the stanza was sent
    // to when it is a valid JID of ours, else our (first) domain.
    let local = ctx.local_domains.first().map_or("", String::as_str);
    let bad = |cond: Condition, text: &str| {
        let mut o = origin.clone();
        let to_ok =
            parse_jid(&o.to, Home::Sip).is_ok_and(|a| ctx.local_domains.contains(&a.domain));
        if !to_ok {
            o.to = local.to_owned();
        }
        Inbound::Reply(error_stanza(
            ctx.ns,
            &o,
            cond,
            cond.default_type(),
            Some(text),
        ))
    };
    let from = match parse_jid(&origin.from, Home::Xmpp) {
        Ok(a) => a,
        Err(e) => return bad(Condition::JidMalformed, &format!("from: {e}")),
    };
    let to = match parse_jid(&origin.to, Home::Sip) {
        Ok(a) => a,
        Err(e) => return bad(Condition::JidMalformed, &format!("to: {e}")),
    };
    if !ctx.local_domains.contains(&to.domain) {
        return bad(
            Condition::ItemNotFound,
            &format!("{} is not served by this gateway", to.domain),
        );
    }
    match el.name.as_str() {
        "iq" => inbound_iq(ctx, el, &origin, ty),
        "message" => inbound_message(ctx, el, origin, from, to, trans_id),
        "presence" => inbound_presence(ctx, el, origin, from, to, trans_id),
        other => bad(Condition::BadRequest, &format!("unknown stanza <{other}/>")),
    }
}

/// Why an operation cannot go to XMPP.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// A body type this adapter cannot carry (415).
    #[error("unsupported content type {0:?}")]
    UnsupportedType(String),
    /// A malformed payload (400).
    #[error("bad payload: {0}")]
    BadPayload(String),
    /// An address that cannot be written as a JID (RFC 7247 s6.2; 400).
    #[error("address cannot be mapped to a JID: {0}")]
    BadAddress(String),
    /// An operation XMPP has no stanza for (501).
    #[error("operation {0} is not delivered to XMPP")]
    NotImplemented(&'static str),
}

impl OutboundError {
    /// The SIP-style status for the error.
    pub fn status(&self) -> Status {
        let code = match self {
            OutboundError::UnsupportedType(_) => 415,
            OutboundError::BadPayload(_) | OutboundError::BadAddress(_) => 400,
            OutboundError::NotImplemented(_) => 501,
        };
        Status::new(code, self.to_string())
    }
}

/// An operation as stanzas. A message with its own id gets its stanza id from
/// `message_ids` (the same on every try, see [`crate::ids`]); every other stanza gets
/// one from `next_id`. An empty vector means there is nothing to send (e.g. a pending
/// subscription state).
pub fn outbound(
    ns: &str,
    op: &Operation,
    message_ids: &MessageIds,
    mut next_id: impl FnMut() -> String,
) -> Result<Vec<Element>, OutboundError> {
    match op {
        Operation::Message(m) => outbound_message(ns, m, message_ids, next_id).map(|e| vec![e]),
        Operation::Subscribe(s) => {
            let ty = if s.duration == 0 {
                "probe"
            } else {
                "subscribe"
            };
            Ok(vec![presence(
                ns,
                ty,
                &s.watcher.bare(),
                &s.target.bare(),
                next_id(),
            )?])
        }
        Operation::Unsubscribe(s) => Ok(vec![presence(
            ns,
            "unsubscribe",
            &s.watcher.bare(),
            &s.target.bare(),
            next_id(),
        )?]),
        Operation::Notify(n) => outbound_notify(ns, n, next_id),
        Operation::Publish(_) => Err(OutboundError::NotImplemented("publish")),
        _ => Err(OutboundError::NotImplemented("unknown")),
    }
}

/// A gateway user's JID (SIP-homed, RFC 7247 s6.2).
pub(super) fn gw_jid(a: &Address) -> Result<String, OutboundError> {
    to_jid(a, Home::Sip).map_err(|e| OutboundError::BadAddress(format!("{a}: {e}")))
}

/// An XMPP user's JID.
pub(super) fn xmpp_jid(a: &Address) -> Result<String, OutboundError> {
    to_jid(a, Home::Xmpp).map_err(|e| OutboundError::BadAddress(format!("{a}: {e}")))
}

pub use cpim_core::cpim::rfc3339;

#[cfg(test)]
mod test_support {
    use super::*;
    use crate::stream::{StreamEvent, StreamParser};

    pub(super) const NS: &str = "jabber:component:accept";

    pub(super) fn parse(stanza: &str) -> Element {
        let mut p = StreamParser::default();
        p.feed(format!("<stream:stream xmlns='{NS}' xmlns:stream='http://etherx.jabber.org/streams'>{stanza}").as_bytes());
        loop {
            match p.next_event() {
                Some(Ok(StreamEvent::Stanza(e))) => return e,
                Some(Ok(_)) => continue,
                other => panic!("{other:?}"),
            }
        }
    }

    /// The message ids of the tests' stream.
    pub(super) fn ids() -> &'static MessageIds {
        static IDS: std::sync::LazyLock<MessageIds> =
            std::sync::LazyLock::new(|| MessageIds::new("the tests' stream secret"));
        &IDS
    }

    pub(super) fn ctx(domains: &[String]) -> Ctx<'_> {
        Ctx {
            ns: NS,
            local_domains: domains,
            software_name: "test",
            now_rfc3339: "2026-11-21T00:00:00Z",
            message_ids: ids(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{ctx, parse, NS};
    use super::*;
    use cpim_core::iscomposing;
    use cpim_core::model::{Message, Notify, Subscribe, SubscriptionState, TerminationReason};
    use cpim_core::presence::{Basic, Presence, Tuple};

    #[test]
    fn error_stanza_maps_back_rfc7247_s7_1() {
        let d = vec!["sip.xmpp.test".to_string()];
        let el = parse("<message type='error' from='nobody@xmpp.test' to='c@sip.xmpp.test' id='m9'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
        match inbound(&ctx(&d), &el, TransId(1)) {
            Inbound::Response {
                id, result: Err(s), ..
            } => {
                assert_eq!(id, "m9");
                assert_eq!(s.code, 404);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn message_bounced_service_unavailable_by_a_user_is_404() {
        let d = vec!["sip.xmpp.test".to_string()];
        let bounce = |from: &str, kind: &str, ty: &str| {
            parse(&format!("<{kind} type='error' from='{from}' to='c@sip.xmpp.test' id='m1'><error type='{ty}'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></{kind}>"))
        };
        let code = |el: &Element| match inbound(&ctx(&d), el, TransId(1)) {
            Inbound::Response { result: Err(s), .. } => s.code,
            other => panic!("{other:?}"),
        };
        // RFC 6121 s8.5.1: the server's answer for a user it does not have.
        assert_eq!(code(&bounce("nobody@xmpp.test", "message", "cancel")), 404);
        // Otherwise the RFC 7247 s7.1 row: from the server itself, a wait-type error, or
        // not a message.
        assert_eq!(code(&bounce("xmpp.test", "message", "cancel")), 503);
        assert_eq!(code(&bounce("nobody@xmpp.test", "message", "wait")), 503);
        assert_eq!(code(&bounce("nobody@xmpp.test", "presence", "cancel")), 503);
    }

    /// Prosody 13 refuses component stanzas without `from`: every stanza `outbound`
    /// produces has one (and a `to`).
    #[test]
    fn every_outbound_stanza_has_from_and_to() {
        let a = Address::new(cpim_core::Scheme::Xmpp, Some("carol"), "sip.xmpp.test");
        let b = Address::new(cpim_core::Scheme::Xmpp, Some("alice"), "xmpp.test");
        let sub = |d| Subscribe {
            trans_id: TransId(1),
            watcher: a.clone(),
            target: b.clone(),
            duration: d,
        };
        let notify = |state, presence| {
            Operation::Notify(Notify {
                trans_id: TransId(1),
                watcher: b.clone(),
                target: a.clone(),
                state,
                presence,
            })
        };
        let typing =
            iscomposing::encode(&iscomposing::IsComposing::new(iscomposing::State::Active))
                .unwrap();
        let ops = vec![
            Operation::Message(Message::new(
                TransId(1),
                a.clone(),
                b.clone(),
                "text/plain",
                "x",
            )),
            Operation::Message(Message::new(
                TransId(1),
                a.clone(),
                b.clone(),
                iscomposing::CONTENT_TYPE,
                typing,
            )),
            Operation::Subscribe(sub(3600)),
            Operation::Subscribe(sub(0)),
            Operation::Unsubscribe(sub(0)),
            notify(SubscriptionState::Active { expires: 60 }, None),
            notify(
                SubscriptionState::Terminated(TerminationReason::Rejected),
                None,
            ),
            notify(
                SubscriptionState::Active { expires: 60 },
                Some(Presence::default()),
            ),
            notify(
                SubscriptionState::Active { expires: 60 },
                Some(Presence {
                    tuples: vec![Tuple {
                        id: "t1".into(),
                        basic: Some(Basic::Open),
                        ..Tuple::default()
                    }],
                    ..Presence::default()
                }),
            ),
        ];
        for op in ops {
            let out = outbound(NS, &op, test_support::ids(), || "i".into()).unwrap();
            assert!(!out.is_empty(), "{op:?}");
            for el in out {
                assert!(
                    el.attr("from").is_some_and(|f| !f.is_empty()),
                    "{}",
                    el.to_xml()
                );
                assert!(
                    el.attr("to").is_some_and(|f| !f.is_empty()),
                    "{}",
                    el.to_xml()
                );
            }
        }
    }
}

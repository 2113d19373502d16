//! Stanzas <-> CPIM operations (RFC 3922, RFC 7572 messages, RFC 8048 presence), sans-IO.
//!
//! [`inbound`] classifies a stanza from the XMPP side: an operation for the core, a
//! local answer (disco, version, ping, errors), or a response to something the gateway
//! sent. [`outbound`] turns an operation for an XMPP user into stanzas. Both work for
//! any stanza namespace (`jabber:component:accept`, `jabber:server`): the caller passes
//! the stream's.

use cpim_core::address::Address;
use cpim_core::errmap::{self, Condition, ErrorType};
use cpim_core::model::{
    DispositionRequest, Message, MessageKind, Notify, Operation, Status, Subscribe,
    SubscriptionState, TerminationReason, TransId,
};
use cpim_core::presence::{Activity, Basic, Note, Person, Presence, Tuple};
use cpim_core::{imdn, iscomposing};

use crate::element::{text_el, Element, ElementExt};
use crate::jid::{parse_jid, to_jid, Home};
use crate::ns;

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
/// not have (RFC 6121 s8.5.2.2.1; Prosody does exactly this). That is 404 for the sender,
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
                    404,
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
            500,
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

fn inbound_iq(ctx: &Ctx<'_>, el: &Element, origin: &Origin, ty: &str) -> Inbound {
    let Some(id) = origin.id.clone() else {
        return Inbound::Reply(error_stanza(
            ctx.ns,
            origin,
            Condition::BadRequest,
            ErrorType::Modify,
            Some("iq without id"),
        ));
    };
    match ty {
        "result" => return Inbound::Response { id, result: Ok(()) },
        "get" | "set" => {}
        _ => {
            return Inbound::Reply(error_stanza(
                ctx.ns,
                origin,
                Condition::BadRequest,
                ErrorType::Modify,
                Some("iq type must be get, set, result or error"),
            ))
        }
    }
    let payload = el.elements().next();
    let result = || {
        Element::build(ctx.ns, "iq")
            .attr_set("type", "result")
            .attr_set("from", &origin.to)
            .attr_set("to", &origin.from)
            .attr_set("id", &id)
    };
    match (ty, payload.map(|p| (p.ns.as_str(), p.name.as_str()))) {
        ("get", Some((ns::PING, "ping"))) => Inbound::Reply(result()),
        ("get", Some((ns::DISCO_INFO, "query"))) => {
            let mut q = Element::build(ns::DISCO_INFO, "query")
                .attr_opt("node", payload.and_then(|p| p.attr("node")))
                .child_add(
                    Element::build(ns::DISCO_INFO, "identity")
                        .attr_set("category", "gateway")
                        .attr_set("type", "simple")
                        .attr_set("name", ctx.software_name),
                );
            for f in FEATURES {
                q = q.child_add(Element::build(ns::DISCO_INFO, "feature").attr_set("var", *f));
            }
            Inbound::Reply(result().child_add(q))
        }
        ("get", Some((ns::DISCO_ITEMS, "query"))) => Inbound::Reply(
            result().child_add(
                Element::build(ns::DISCO_ITEMS, "query")
                    .attr_opt("node", payload.and_then(|p| p.attr("node"))),
            ),
        ),
        ("get", Some((ns::VERSION, "query"))) => Inbound::Reply(
            result().child_add(
                Element::build(ns::VERSION, "query")
                    .child_add(text_el(ns::VERSION, "name", ctx.software_name))
                    .child_add(text_el(ns::VERSION, "version", env!("CARGO_PKG_VERSION"))),
            ),
        ),
        _ => Inbound::Reply(error_stanza(
            ctx.ns,
            origin,
            Condition::ServiceUnavailable,
            ErrorType::Cancel,
            None,
        )),
    }
}

fn lang_of(el: &Element) -> Option<String> {
    el.attr_ns(ns::XML, "lang").map(str::to_owned)
}

fn inbound_message(
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
    // Receipts and markers for messages the gateway sent (XEP-0184 s5, XEP-0333).
    if let Some(r) = el.child(ns::RECEIPTS, "received") {
        if el.child(ns, "body").is_none() {
            let id = r
                .attr("id")
                .or(origin.id.as_deref())
                .unwrap_or("")
                .to_owned();
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
            let id = d.attr("id").unwrap_or("").to_owned();
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
    m.message_id = origin.id.clone();
    m.subject = el.child(ns, "subject").map(|s| s.text().into_owned());
    m.thread = el.child(ns, "thread").map(|s| s.text().into_owned());
    m.disposition = disposition;
    Inbound::Op {
        op: Operation::Message(m),
        origin,
    }
}

fn imdn_doc(
    id: &str,
    datetime: &str,
    recipient: &Address,
    kind: imdn::NotificationKind,
    status: imdn::Status,
) -> Option<Vec<u8>> {
    if id.is_empty() {
        return None;
    }
    let doc = imdn::Imdn {
        message_id: id.to_owned(),
        datetime: datetime.to_owned(),
        recipient_uri: to_jid(&recipient.bare(), Home::Xmpp)
            .ok()
            .map(|j| format!("xmpp:{j}")),
        original_recipient_uri: None,
        subject: None,
        notification: Some(imdn::Notification {
            kind,
            status,
            status_extensions: Vec::new(),
        }),
        extensions: Vec::new(),
    };
    imdn::encode(&doc).ok().map(String::into_bytes)
}

/// XMPP priority (-128..127) to PIDF contact priority (0..1), RFC 8048 s4.
fn priority_to_pidf(p: i8) -> f32 {
    if p <= 0 {
        0.0
    } else {
        (f32::from(p) / 127.0).min(1.0)
    }
}

fn priority_to_xmpp(p: f32) -> i8 {
    (p.clamp(0.0, 1.0) * 127.0).round() as i8
}

/// RFC 8048 s4 table: `<show/>` to RPID activities.
fn show_to_activity(show: &str) -> Option<Activity> {
    match show {
        "away" | "xa" => Some(Activity::Away),
        "dnd" => Some(Activity::Busy),
        _ => None,
    }
}

fn activity_to_show(a: &[Activity]) -> Option<&'static str> {
    for act in a {
        let s = match act {
            Activity::Away => "away",
            Activity::Busy
            | Activity::OnThePhone
            | Activity::Meeting
            | Activity::Performance
            | Activity::Presentation => "dnd",
            Activity::Vacation
            | Activity::Holiday
            | Activity::PermanentAbsence
            | Activity::Sleeping
            | Activity::Travel => "xa",
            _ => continue,
        };
        return Some(s);
    }
    None
}

fn inbound_presence(
    ctx: &Ctx<'_>,
    el: &Element,
    origin: Origin,
    from: Address,
    to: Address,
    trans_id: TransId,
) -> Inbound {
    let ns = ctx.ns;
    let ty = el.attr("type").unwrap_or("");
    let sub = |duration| Subscribe {
        trans_id,
        watcher: from.bare(),
        target: to.bare(),
        duration,
    };
    let op = match ty {
        // RFC 8048 s5 / RFC 6121 s3.
        "subscribe" => Operation::Subscribe(sub(SUBSCRIPTION_SECS)),
        "unsubscribe" => Operation::Unsubscribe(sub(0)),
        "probe" => Operation::Subscribe(sub(0)),
        "subscribed" | "unsubscribed" => Operation::Notify(Notify {
            trans_id,
            watcher: to.bare(),
            target: from.bare(),
            state: if ty == "subscribed" {
                SubscriptionState::Active {
                    expires: SUBSCRIPTION_SECS,
                }
            } else {
                SubscriptionState::Terminated(TerminationReason::Rejected)
            },
            presence: None,
        }),
        "" | "unavailable" => {
            if to.user.is_none() {
                return Inbound::Ignore("presence to the gateway domain itself");
            }
            let available = ty.is_empty();
            let mut tuple = Tuple {
                id: from.instance.clone().unwrap_or_else(|| "xmpp".into()),
                basic: Some(if available {
                    Basic::Open
                } else {
                    Basic::Closed
                }),
                contact: el.attr("from").map(|f| format!("xmpp:{f}")),
                ..Tuple::default()
            };
            if let Some(p) = el.child(ns, "priority") {
                match p.trimmed_text().parse::<i8>() {
                    Ok(v) => tuple.priority = Some(priority_to_pidf(v)),
                    Err(_) => {
                        return Inbound::Reply(error_stanza(
                            ns,
                            &origin,
                            Condition::BadRequest,
                            ErrorType::Modify,
                            Some("priority must be an integer from -128 to 127"),
                        ))
                    }
                }
            }
            for s in el.elements().filter(|c| c.is(ns, "status")) {
                tuple.notes.push(Note {
                    lang: lang_of(s).or_else(|| lang_of(el)),
                    text: s.text().into_owned(),
                });
            }
            let person = el
                .child(ns, "show")
                .and_then(|s| show_to_activity(s.trimmed_text().as_str()))
                .map(|a| Person {
                    id: "p".into(),
                    activities: vec![a],
                    ..Person::default()
                });
            let presence = Presence {
                entity: Some(from.bare()),
                tuples: vec![tuple],
                person,
                ..Presence::default()
            };
            Operation::Notify(Notify {
                trans_id,
                watcher: to.bare(),
                target: from.bare(),
                state: SubscriptionState::Active {
                    expires: SUBSCRIPTION_SECS,
                },
                presence: Some(presence),
            })
        }
        other => {
            return Inbound::Reply(error_stanza(
                ns,
                &origin,
                Condition::BadRequest,
                ErrorType::Modify,
                Some(&format!("unknown presence type {other:?}")),
            ))
        }
    };
    Inbound::Op { op, origin }
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

/// An operation as stanzas (each gets its `id` from `next_id`). An empty vector means
/// there is nothing to send (e.g. a pending subscription state).
pub fn outbound(
    ns: &str,
    op: &Operation,
    mut next_id: impl FnMut() -> String,
) -> Result<Vec<Element>, OutboundError> {
    match op {
        Operation::Message(m) => outbound_message(ns, m, next_id()).map(|e| vec![e]),
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
fn gw_jid(a: &Address) -> Result<String, OutboundError> {
    to_jid(a, Home::Sip).map_err(|e| OutboundError::BadAddress(format!("{a}: {e}")))
}

/// An XMPP user's JID.
fn xmpp_jid(a: &Address) -> Result<String, OutboundError> {
    to_jid(a, Home::Xmpp).map_err(|e| OutboundError::BadAddress(format!("{a}: {e}")))
}

fn presence(
    ns: &str,
    ty: &str,
    from: &Address,
    to: &Address,
    id: String,
) -> Result<Element, OutboundError> {
    Ok(Element::build(ns, "presence")
        .attr_set("type", ty)
        .attr_set("from", gw_jid(from)?)
        .attr_set("to", xmpp_jid(to)?)
        .attr_set("id", id))
}

fn outbound_notify(
    ns: &str,
    n: &Notify,
    mut next_id: impl FnMut() -> String,
) -> Result<Vec<Element>, OutboundError> {
    let target = n.target.bare();
    let watcher = n.watcher.bare();
    let Some(p) = &n.presence else {
        // RFC 8048 s5: only the subscription state changed.
        return Ok(match &n.state {
            SubscriptionState::Active { .. } => {
                vec![presence(ns, "subscribed", &target, &watcher, next_id())?]
            }
            SubscriptionState::Terminated(
                TerminationReason::Rejected
                | TerminationReason::NoResource
                | TerminationReason::Giveup,
            ) => vec![presence(ns, "unsubscribed", &target, &watcher, next_id())?],
            _ => Vec::new(),
        });
    };
    if let SubscriptionState::Terminated(_) = &n.state {
        return Ok(vec![presence(
            ns,
            "unavailable",
            &target,
            &watcher,
            next_id(),
        )?]);
    }
    let show = p
        .person
        .as_ref()
        .and_then(|person| activity_to_show(&person.activities));
    let watcher_jid = xmpp_jid(&watcher)?;
    let mut out = Vec::new();
    for t in &p.tuples {
        let from = target.clone().with_instance(Some(&t.id));
        // A tuple id that is no valid resource: the bare JID.
        let from_jid = gw_jid(&from).or_else(|_| gw_jid(&target))?;
        let open = t.basic != Some(Basic::Closed);
        let mut el = Element::build(ns, "presence")
            .attr_set("from", from_jid)
            .attr_set("to", watcher_jid.clone())
            .attr_set("id", next_id());
        if !open {
            el = el.attr_set("type", "unavailable");
        } else if let Some(s) = show {
            el = el.child_add(text_el(ns, "show", s));
        }
        let notes = if t.notes.is_empty() {
            &p.notes
        } else {
            &t.notes
        };
        for note in notes {
            el = el.child_add(text_el(ns, "status", &note.text).lang_set(note.lang.as_deref()));
        }
        if open {
            if let Some(pr) = t.priority {
                el = el.child_add(text_el(ns, "priority", &priority_to_xmpp(pr).to_string()));
            }
        }
        out.push(el);
    }
    if out.is_empty() {
        out.push(presence(ns, "unavailable", &target, &watcher, next_id())?);
    }
    Ok(out)
}

fn outbound_message(ns: &str, m: &Message, id: String) -> Result<Element, OutboundError> {
    let ty = match m.kind {
        MessageKind::Chat => "chat",
        MessageKind::Normal => "normal",
        MessageKind::Headline => "headline",
        MessageKind::Groupchat => "groupchat",
    };
    let mut el = Element::build(ns, "message")
        .attr_set("type", ty)
        .attr_set("from", gw_jid(&m.source)?)
        .attr_set("to", xmpp_jid(&m.destination)?)
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

/// RFC 3339 UTC time for a count of seconds since the Unix epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{StreamEvent, StreamParser};

    const NS: &str = "jabber:component:accept";

    fn parse(stanza: &str) -> Element {
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

    fn ctx(domains: &[String]) -> Ctx<'_> {
        Ctx {
            ns: NS,
            local_domains: domains,
            software_name: "test",
            now_rfc3339: "2026-11-21T00:00:00Z",
        }
    }

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
        let out = outbound(NS, &Operation::Message(m), || "x1".into()).unwrap();
        let xml = out[0].to_xml();
        assert!(xml.contains("to=\"john\\20doe@sip.xmpp.test\""), "{xml}");
        assert!(xml.contains("<body>hi &amp; bye</body>"), "{xml}");
        assert!(xml.contains("from=\"alice@xmpp.test/r\""), "{xml}");
    }

    #[test]
    fn bad_jid_gets_jid_malformed_and_unknown_iq_service_unavailable() {
        let d = vec!["sip.xmpp.test".to_string()];
        let el = parse("<message from='alice@xmpp.test' to='a b@sip.xmpp.test' id='z'><body>x</body></message>");
        let Inbound::Reply(r) = inbound(&ctx(&d), &el, TransId(1)) else {
            panic!()
        };
        assert!(r
            .child(NS, "error")
            .unwrap()
            .child(ns::STANZAS, "jid-malformed")
            .is_some());
        // The malformed `to` is not echoed as `from`: our domain is.
        assert_eq!(r.attr("from"), Some("sip.xmpp.test"));
        let el = parse("<iq type='get' from='alice@xmpp.test/r' to='sip.xmpp.test' id='q'><query xmlns='jabber:iq:roster'/></iq>");
        let Inbound::Reply(r) = inbound(&ctx(&d), &el, TransId(1)) else {
            panic!()
        };
        assert!(r.to_xml().contains("service-unavailable"));
        let el = parse("<iq type='get' from='alice@xmpp.test/r' to='sip.xmpp.test' id='q'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
        let Inbound::Reply(r) = inbound(&ctx(&d), &el, TransId(1)) else {
            panic!()
        };
        let x = r.to_xml();
        assert!(
            x.contains("category=\"gateway\"") && x.contains("type=\"simple\""),
            "{x}"
        );
        assert_eq!(r.attr("from"), Some("sip.xmpp.test"));
    }

    #[test]
    fn error_stanza_maps_back_rfc7247_s7_1() {
        let d = vec!["sip.xmpp.test".to_string()];
        let el = parse("<message type='error' from='nobody@xmpp.test' to='c@sip.xmpp.test' id='m9'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
        match inbound(&ctx(&d), &el, TransId(1)) {
            Inbound::Response { id, result: Err(s) } => {
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
        // RFC 6121 s8.5.2.2.1: the server's answer for a user it does not have.
        assert_eq!(code(&bounce("nobody@xmpp.test", "message", "cancel")), 404);
        // Otherwise the RFC 7247 s7.1 row: from the server itself, a wait-type error, or
        // not a message.
        assert_eq!(code(&bounce("xmpp.test", "message", "cancel")), 503);
        assert_eq!(code(&bounce("nobody@xmpp.test", "message", "wait")), 503);
        assert_eq!(code(&bounce("nobody@xmpp.test", "presence", "cancel")), 503);
    }

    #[test]
    fn presence_maps_rfc8048() {
        let d = vec!["sip.xmpp.test".to_string()];
        let el = parse("<presence from='alice@xmpp.test/phone' to='carol@sip.xmpp.test'><show>dnd</show><status xml:lang='en'>busy now</status><priority>5</priority></presence>");
        let Inbound::Op {
            op: Operation::Notify(n),
            ..
        } = inbound(&ctx(&d), &el, TransId(1))
        else {
            panic!()
        };
        let p = n.presence.clone().unwrap();
        assert_eq!(p.tuples[0].id, "phone");
        assert_eq!(p.tuples[0].basic, Some(Basic::Open));
        assert_eq!(p.tuples[0].notes[0].lang.as_deref(), Some("en"));
        assert_eq!(p.person.as_ref().unwrap().activities, vec![Activity::Busy]);
        let out = outbound(NS, &Operation::Notify(n), || "p1".into()).unwrap();
        let x = out[0].to_xml();
        assert!(
            x.contains("<show>dnd</show>")
                && x.contains("busy now")
                && x.contains("<priority>5</priority>"),
            "{x}"
        );
        for (ty, check) in [
            ("subscribe", "sub"),
            ("probe", "probe"),
            ("subscribed", "active"),
            ("unsubscribed", "rejected"),
            ("unsubscribe", "unsub"),
        ] {
            let el = parse(&format!(
                "<presence type='{ty}' from='alice@xmpp.test' to='carol@sip.xmpp.test'/>"
            ));
            let Inbound::Op { op, .. } = inbound(&ctx(&d), &el, TransId(1)) else {
                panic!()
            };
            match (check, &op) {
                ("sub", Operation::Subscribe(s)) => assert!(s.duration > 0),
                ("probe", Operation::Subscribe(s)) => assert_eq!(s.duration, 0),
                ("active", Operation::Notify(n)) => {
                    assert!(matches!(n.state, SubscriptionState::Active { .. }))
                }
                ("rejected", Operation::Notify(n)) => assert_eq!(
                    n.state,
                    SubscriptionState::Terminated(TerminationReason::Rejected)
                ),
                ("unsub", Operation::Unsubscribe(_)) => {}
                _ => panic!("{ty}: {op:?}"),
            }
            // Round trip to the same presence type.
            let out = outbound(NS, &op, || "i".into()).unwrap();
            assert_eq!(out[0].attr("type"), Some(ty), "{ty}");
        }
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
        let out = outbound(NS, &Operation::Message(m), || "i".into()).unwrap();
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
        let out = outbound(NS, &Operation::Message(m), || "i".into()).unwrap();
        assert_eq!(
            out[0].child(ns::RECEIPTS, "received").unwrap().attr("id"),
            Some("orig1")
        );
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
            let out = outbound(NS, &op, || "i".into()).unwrap();
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

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}

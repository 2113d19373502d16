//! Presence stanzas <-> SUBSCRIBE, UNSUBSCRIBE and NOTIFY operations (RFC 8048):
//! subscription states, availability as PIDF with priority, show and status mapped both
//! ways.
//!
//! # Devices and resources
//! One stanza is one resource: inbound, it becomes one tuple whose id is the resource
//! (RFC 8048 s4); the engine composes the resources of a user. Outbound, every tuple of
//! a document is one `<presence/>` from its own resource (RFC 8048 s5), so an XMPP
//! watcher of a SIP user with several devices sees several resources. The resource is
//! the instance of the tuple's `<contact>` when that is a GRUU (`;gr=`) or a full JID
//! (RFC 7247 s6.3: a GRUU maps onto a full JID), else the tuple id; a closed tuple is an
//! `unavailable` from that resource.
//!
//! # Priority
//! XMPP priority is an integer -128..127 (RFC 6121 s4.7.2.3), PIDF's `<contact
//! priority>` a qvalue 0..1 (RFC 3863 s4.1.5). Inbound, 1..127 maps linearly onto
//! p/127 and 0 or a negative priority (never chosen for delivery) onto 0. Outbound, q
//! maps onto round(q * 127), so 1.0 is 127, 0.5 is 64, 0 is 0; XMPP's default 0 and a
//! tuple without priority both say "no preference". Both ways keep the order of
//! devices, and a priority that went XMPP -> PIDF -> XMPP comes back unchanged when it
//! was not negative.

use cpim_core::address::Address;
use cpim_core::errmap::{Condition, ErrorType};
use cpim_core::model::{
    Notify, Operation, Subscribe, SubscriptionState, TerminationReason, TransId,
};
use cpim_core::presence::{Activity, Basic, Note, Person, Presence, Tuple};

use super::message::lang_of;
use super::{
    error_stanza, gw_jid, xmpp_jid, Ctx, Inbound, Origin, OutboundError, SUBSCRIPTION_SECS,
};
use crate::element::{text_el, Element, ElementExt};

/// XMPP priority (-128..127) to PIDF contact priority (0..1), RFC 8048 s4.
pub(super) fn priority_to_pidf(p: i8) -> f32 {
    if p <= 0 {
        0.0
    } else {
        (f32::from(p) / 127.0).min(1.0)
    }
}

pub(super) fn priority_to_xmpp(p: f32) -> i8 {
    (p.clamp(0.0, 1.0) * 127.0).round() as i8
}

/// RFC 8048 s4 table: `<show/>` to RPID activities.
pub(super) fn show_to_activity(show: &str) -> Option<Activity> {
    match show {
        "away" | "xa" => Some(Activity::Away),
        "dnd" => Some(Activity::Busy),
        _ => None,
    }
}

pub(super) fn activity_to_show(a: &[Activity]) -> Option<&'static str> {
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

pub(super) fn inbound_presence(
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

pub(super) fn presence(
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

/// The resource a tuple is shown from: its contact's GRUU or JID resource (RFC 7247
/// s6.3), else its id.
fn resource_of(t: &Tuple) -> String {
    t.contact
        .as_deref()
        .and_then(|c| Address::parse(c).ok())
        .and_then(|a| a.instance)
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| t.id.clone())
}

pub(super) fn outbound_notify(
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
        let from = target.clone().with_instance(Some(&resource_of(t)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::test_support::{ctx, ids, parse, NS};
    use crate::mapping::{inbound, outbound};
    use cpim_core::model::TransId;

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
        let out = outbound(NS, &Operation::Notify(n), ids(), || "p1".into()).unwrap();
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
            let out = outbound(NS, &op, ids(), || "i".into()).unwrap();
            assert_eq!(out[0].attr("type"), Some(ty), "{ty}");
        }
    }

    /// RFC 8048 s5 with RFC 7247 s6.3: a SIP user's devices (tuples) are resources: from
    /// the contact's GRUU when there is one, else the tuple id; `<contact priority>`
    /// (RFC 3863 s4.1.5) maps onto XMPP priority; a closed tuple is an `unavailable` from
    /// its resource.
    #[test]
    fn rfc8048_s5_one_presence_per_device_with_gruu_resource_and_priority() {
        let tuple = |id: &str, open: bool, contact: Option<&str>, prio: Option<f32>| Tuple {
            id: id.into(),
            basic: Some(if open { Basic::Open } else { Basic::Closed }),
            contact: contact.map(str::to_owned),
            priority: prio,
            ..Tuple::default()
        };
        let n = Notify {
            trans_id: TransId(1),
            watcher: Address::parse("romeo@xmpp.test").unwrap(),
            target: Address::parse("sip:carol@sip.xmpp.test").unwrap(),
            state: SubscriptionState::Active { expires: 60 },
            presence: Some(Presence {
                tuples: vec![
                    tuple(
                        "t1",
                        true,
                        Some("sip:carol@sip.xmpp.test;gr=phone"),
                        Some(1.0),
                    ),
                    tuple("desk", true, Some("sip:carol@192.0.2.1:5060"), Some(0.5)),
                    tuple("laptop", false, None, None),
                ],
                ..Presence::default()
            }),
        };
        let out = outbound(NS, &Operation::Notify(n), ids(), || "i".into()).unwrap();
        let got: Vec<_> = out
            .iter()
            .map(|el| {
                (
                    el.attr("from").unwrap_or("").to_owned(),
                    el.attr("type").map(str::to_owned),
                    el.child(NS, "priority").map(|p| p.trimmed_text()),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("carol@sip.xmpp.test/phone".into(), None, Some("127".into())),
                ("carol@sip.xmpp.test/desk".into(), None, Some("64".into())),
                (
                    "carol@sip.xmpp.test/laptop".into(),
                    Some("unavailable".into()),
                    None
                ),
            ]
        );
    }

    /// RFC 6121 s4.7.2.3 / RFC 3863 s4.1.5: the priority mapping both ways.
    #[test]
    fn priority_mapping_keeps_order_and_round_trips() {
        assert_eq!(priority_to_pidf(-5), 0.0);
        assert_eq!(priority_to_pidf(0), 0.0);
        assert_eq!(priority_to_pidf(127), 1.0);
        for p in 0..=127i8 {
            assert_eq!(priority_to_xmpp(priority_to_pidf(p)), p);
        }
        assert_eq!(priority_to_xmpp(0.5), 64);
        assert_eq!(priority_to_xmpp(2.0), 127);
        assert!(priority_to_pidf(10) < priority_to_pidf(11));
    }
}

//! Inbound iq stanzas (RFC 6120 s8.2.3): answered locally for XEP-0199 ping, XEP-0030
//! disco#info and disco#items, XEP-0092 version; results and errors settle what the
//! gateway sent; any other request gets `<service-unavailable/>` (RFC 6120 s8.4).

use cpim_core::errmap::{Condition, ErrorType};

use super::{error_stanza, Ctx, Inbound, Origin, FEATURES};
use crate::element::{text_el, Element, ElementExt};
use crate::ns;

pub(super) fn inbound_iq(ctx: &Ctx<'_>, el: &Element, origin: &Origin, ty: &str) -> Inbound {
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
        "result" => {
            return Inbound::Response {
                id,
                result: Ok(()),
                late: None,
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::inbound;
    use crate::mapping::test_support::{ctx, parse, NS};
    use cpim_core::model::TransId;

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
}

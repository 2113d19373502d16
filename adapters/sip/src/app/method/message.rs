//! MESSAGE (RFC 3428): authenticates the sender (RFC 3261 s22; foreign domains per RFC
//! 5922), learns that a local UA writing `message/cpim` reads it too (`cpim_wrap`),
//! decodes a `Content-Encoding` (RFC 3261 s20.12, [`cpim_core::coding`]), maps the
//! request to the core's message ([`crate::app::message::inbound`]) and answers with the
//! core's outcome.
//!
//! Max-Forwards travels as `hops_left` and the body as it came (decoded): the router
//! refuses a message with no hops left (483) or too large (413), and that refusal is the
//! answer.

use std::sync::Arc;

use cpim_core::coding::CodingError;
use cpim_core::model::{mime_essence, Operation};

use crate::codec::HeaderName;

use super::super::identity::Authn;
use super::super::incoming::Incoming;
use super::super::message::{self, InboundMessage, Refusal};
use super::super::tu::{aor_of, now_secs, outcome_reply, reply, Reply, Tu};

impl Tu {
    pub(in crate::app) async fn on_message(self: &Arc<Self>, inc: &Incoming<'_>) -> Reply {
        let (req, src) = (inc.req, inc.src);
        let now = now_secs();
        let (from_party, from) = match (&inc.from, inc.address_of_from()) {
            (Some(p), Ok(a)) => (p, a),
            (_, Err(r)) => return r,
            (None, Ok(_)) => return reply(req, 400, Some("Bad From")),
        };
        if let Authn::Respond(r) = self.authenticate(req, src, from, false, now) {
            return r;
        }
        // A local UA that writes message/cpim reads it too (`cpim_wrap = "learn"`).
        if req
            .content_type()
            .is_some_and(|ct| mime_essence(ct) == "message/cpim")
            && self.config.is_local_domain(&from.domain)
        {
            let aor = aor_of(from);
            let learned = self
                .lock()
                .registrar
                .learn_cpim(&aor, &src.flow().to_string(), now);
            if let Some(recs) = learned {
                self.persist_bindings(&aor, &recs).await;
            }
        }
        let Some(to_party) = &inc.to else {
            return reply(req, 400, Some("Bad To"));
        };
        // RFC 3261 s20.12: the body as the sender meant it (Linphone deflates its IMDNs);
        // a coding the gateway does not know gets 415 with Accept-Encoding (s21.4.13).
        let codings: Vec<&str> = req.header_all(HeaderName::ContentEncoding).collect();
        let decoded;
        let body: &[u8] = if codings.is_empty() {
            req.body()
        } else {
            match cpim_core::coding::decode(&codings.join(","), req.body()) {
                Ok(b) => {
                    decoded = b;
                    &decoded
                }
                Err(e) => {
                    let r = reply(req, e.status().as_u16(), Some(&e.to_string()));
                    return match e {
                        CodingError::Unsupported(_) => {
                            r.header(HeaderName::AcceptEncoding, cpim_core::coding::ACCEPTED)
                        }
                        _ => r,
                    };
                }
            }
        };
        let inbound = InboundMessage {
            request_uri: &inc.request_uri,
            from: &from_party.address,
            to: &to_party.address,
            call_id: inc.call_id,
            cseq: req.cseq().seq,
            max_forwards: inc.max_forwards,
            subject: req.header(HeaderName::Subject),
            content_language: req.header_str("Content-Language"),
            content_type: req.content_type(),
            body,
        };
        let msg = match message::inbound(&inbound, self.trans_id()) {
            Ok(m) => m,
            Err(Refusal { code, reason }) => return reply(req, code, Some(&reason)),
        };
        let outcome = self.submit(Operation::Message(msg)).await;
        outcome_reply(req, &outcome)
    }
}

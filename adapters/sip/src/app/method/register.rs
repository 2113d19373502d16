//! REGISTER (RFC 3261 s10.3): authenticates the AOR's own user (or a trusted peer),
//! hands the bindings to the sans-IO [`crate::app::registrar`] and persists what changed.

use std::sync::Arc;

use crate::codec::{HeaderName, Response};

use super::super::identity::Authn;
use super::super::incoming::Incoming;
use super::super::registrar::{self, RegisterRequest};
use super::super::store::BindingRecord;
use super::super::tu::{aor_of, now_secs, reply, Reply, Tu};

impl Tu {
    pub(in crate::app) async fn on_register(self: &Arc<Self>, inc: &Incoming<'_>) -> Reply {
        let (req, src) = (inc.req, inc.src);
        if self.config.proxy_mode() {
            return reply(req, 403, Some("Registration Handled By The Proxy"));
        }
        let now = now_secs();
        let aor_addr = match inc.address_of_to() {
            Ok(a) => a,
            Err(r) => return r,
        };
        if aor_addr.user.is_none() {
            return reply(req, 404, Some("Not Found"));
        }
        let user = match self.authenticate(req, src, aor_addr, true, now) {
            Authn::Respond(r) => return r,
            Authn::User(u) => Some(u),
            Authn::Trusted => None,
        };
        let aor = aor_of(aor_addr);
        if let Some(r) = self.over_binding_cap(req, &aor) {
            return r;
        }
        let contact_values: Vec<&str> = req.header_all(HeaderName::Contact).collect();
        let Some(contacts) = registrar::parse_contacts(contact_values) else {
            return reply(req, 400, Some("Bad Contact"));
        };
        let rreq = RegisterRequest {
            aor: aor.clone(),
            contacts,
            expires: req.expires(),
            call_id: inc.call_id.to_owned(),
            cseq: req.cseq().seq,
            flow: Some(src.flow().to_string()),
            connection: src.connection,
            authenticated_user: user,
        };
        let result = self.lock().registrar.handle_register(&rreq, now);
        match result {
            Ok(out) => {
                if out.changed {
                    let recs: Vec<BindingRecord> =
                        out.bindings.iter().map(|(b, _)| b.clone()).collect();
                    self.persist_bindings(&aor, &recs).await;
                }
                let mut b = Response::for_request(req, 200, None);
                for (binding, left) in &out.bindings {
                    b = b.header(
                        HeaderName::Contact,
                        &format!("<{}>;expires={left}", binding.contact),
                    );
                }
                b
            }
            Err(e) => {
                let (code, reason) = e.status();
                let mut b = Response::for_request(req, code, Some(reason));
                if let registrar::RegisterError::IntervalTooBrief(min) = e {
                    b = b.header(HeaderName::MinExpires, &min.to_string());
                }
                b
            }
        }
    }
}

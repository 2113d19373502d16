//! PUBLISH (RFC 3903): the presentity's own user (or a trusted peer) publishes a PIDF
//! document (RFC 3863); the sans-IO [`crate::app::presence::publish`] keeps the entity
//! tags and expiries, the store keeps the documents, and the composition of all live
//! publications of the presentity goes to the core as one presence.

use cpim_core::StatusCode;
use std::sync::Arc;

use cpim_core::model::{Operation, Outcome, Publish, TransId};
use cpim_core::pidf;
use cpim_core::presence::Presence;
use rand::Rng;

use crate::codec::{HeaderName, Response};

use super::super::identity::{self, Authn};
use super::super::incoming::Incoming;
use super::super::presence::publish::{PublishError, PublishKind, PublishRequest};
use super::super::store::PublicationRecord;
use super::super::tu::{aor_of, now_secs, outcome_reply, reply, uri_address, Reply, Tu};

impl Tu {
    pub(in crate::app) async fn on_publish(self: &Arc<Self>, inc: &Incoming<'_>) -> Reply {
        let (req, src) = (inc.req, inc.src);
        let now = now_secs();
        let event = req.header(HeaderName::Event).map(|e| {
            e.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        if event.as_deref() != Some("presence") {
            return Response::for_request(req, 489, None)
                .header(HeaderName::AllowEvents, "presence");
        }
        let presentity = match inc.user_request_uri() {
            Some(a) => a,
            None => match inc.address_of_to() {
                Ok(a) => a,
                Err(r) => return r,
            },
        };
        if !self.config.is_local_domain(&presentity.domain) {
            return reply(req, 403, Some("Not A Local Presentity"));
        }
        // PUBLISH always needs a local identity: the presentity's own user.
        match self.authenticate(req, src, presentity, false, now) {
            Authn::Respond(r) => return r,
            Authn::User(_) | Authn::Trusted => {}
        }
        let from = match inc.address_of_from() {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !identity::is_trusted(&self.config.trusted_peers, src.remote.ip())
            && !from.same_user(presentity)
        {
            return reply(req, 403, Some("Publishing For Another User"));
        }
        let body = if req.body().is_empty() {
            None
        } else {
            let ct = req.content_type().unwrap_or("");
            if cpim_core::model::mime_essence(ct) != "application/pidf+xml" {
                return Response::for_request(req, 415, None)
                    .header(HeaderName::Accept, "application/pidf+xml");
            }
            if let Err(e) = pidf::parse(req.body()) {
                return reply(req, 400, Some(&format!("Bad PIDF: {e}")));
            }
            Some((ct.to_owned(), req.body().to_vec()))
        };
        let aor = aor_of(presentity);
        if req.header(HeaderName::SipIfMatch).is_none() {
            if let Some(r) = self.over_publication_cap(req, &aor) {
                return r;
            }
        }
        let preq = PublishRequest {
            aor: aor.clone(),
            if_match: req
                .header(HeaderName::SipIfMatch)
                .map(|s| s.trim().to_owned()),
            expires: req.expires(),
            body,
        };
        let result = self.lock().publications.handle_publish(preq, now, || {
            hex::encode(rand::thread_rng().gen::<[u8; 10]>())
        });
        let out = match result {
            Ok(o) => o,
            Err(e) => {
                let (code, reason) = e.status();
                let mut b = Response::for_request(req, code, Some(reason));
                if let PublishError::IntervalTooBrief(m) = e {
                    b = b.header(HeaderName::MinExpires, &m.to_string());
                }
                return b;
            }
        };
        match &out.record {
            Some(rec) => {
                if let Err(e) = self
                    .store
                    .put_publication(out.replaced.as_deref(), rec)
                    .await
                {
                    tracing::warn!(error = %e, "could not persist publication");
                }
            }
            None => self.remove_publication(&out.etag).await,
        }
        let outcome = self.submit_composed_publish(&aor, now).await;
        if !outcome.status.is_success() {
            if out.kind == PublishKind::Initial {
                // The core refused the state: do not keep it.
                self.lock().publications.remove(&out.etag);
                self.remove_publication(&out.etag).await;
            }
            return outcome_reply(req, &outcome);
        }
        Response::for_request(req, 200, None)
            .header(HeaderName::SipEtag, &out.etag)
            .header(HeaderName::Expires, &out.expires.to_string())
    }

    /// Composes the live publications of `aor` into one presence and submits it.
    pub(in crate::app) async fn submit_composed_publish(
        self: &Arc<Self>,
        aor: &str,
        now: u64,
    ) -> Outcome {
        let (presence, expires) = {
            let st = self.lock();
            compose(&st.publications.documents(aor, now))
        };
        let Some(presentity) = uri_address(aor) else {
            return Outcome::failure(TransId(0), StatusCode::BAD_REQUEST, "bad AOR");
        };
        let op = Operation::Publish(Publish {
            trans_id: self.trans_id(),
            presentity,
            presence,
            expires,
        });
        self.submit(op).await
    }
}

/// Composes the live publications of a presentity (one per entity tag, RFC 3903 s4)
/// into one document, by recency (RFC 4479 s4 leaves the policy to the compositor):
/// the publications are taken newest first by the time their document was last set
/// (`modified_at`; a refresh does not count; records without one come after, by
/// expiry), and
/// - tuples of all, newest first, one per id (PIDF's `id` is an `xs:ID`, RFC 3863
///   s4.1.2): the newest publication's tuple wins. baresip 1.0, for one, sends two
///   initial PUBLISHes at start-up and then modifies only one of them, so without this
///   its "closed" sat next to a stale "open" under the same id;
/// - the person (RFC 4479 s3.2) of the newest publication that has one;
/// - devices (RFC 4479 s3.4) of all, one per id, the newest first;
/// - presentity notes and other elements of all, newest first.
pub(in crate::app) fn compose(docs: &[(&PublicationRecord, u32)]) -> (Presence, u32) {
    let mut out = Presence::default();
    let mut expires = 0;
    let mut docs: Vec<_> = docs.iter().collect();
    docs.sort_by(|(a, _), (b, _)| {
        (b.modified_at, b.expires_at, &b.etag).cmp(&(a.modified_at, a.expires_at, &a.etag))
    });
    for (rec, left) in docs {
        expires = expires.max(*left);
        let Ok(p) = pidf::parse(&rec.body) else {
            continue;
        };
        if out.entity.is_none() {
            out.entity = p.entity;
        }
        for t in p.tuples {
            if !out.tuples.iter().any(|o| o.id == t.id) {
                out.tuples.push(t);
            }
        }
        if out.person.is_none() {
            out.person = p.person;
        }
        for d in p.devices {
            if !out.devices.iter().any(|o| o.id == d.id) {
                out.devices.push(d);
            }
        }
        out.notes.extend(p.notes);
        out.extensions.extend(p.extensions);
    }
    (out, expires)
}

#[cfg(test)]
mod compose_tests {
    use super::compose;
    use crate::app::store::PublicationRecord;
    use cpim_core::presence::Basic;

    fn rec(etag: &str, expires_at: u64, basic: &str, tuple: &str) -> PublicationRecord {
        PublicationRecord {
            etag: etag.into(),
            aor: "sip:alice@sip.test".into(),
            expires_at,
            modified_at: 0,
            content_type: "application/pidf+xml".into(),
            body: format!(
                "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:alice@sip.test\">\
                 <tuple id=\"{tuple}\"><status><basic>{basic}</basic></status></tuple></presence>"
            )
            .into_bytes(),
        }
    }

    /// Two publications with the same tuple id: one tuple in the result, from the
    /// publication modified last, whatever the order of the entity tags.
    #[test]
    fn same_tuple_id_keeps_the_latest_publication() {
        let stale = rec("zz-first", 100, "open", "t1");
        let fresh = rec("aa-second", 160, "closed", "t1");
        for docs in [
            vec![(&stale, 40), (&fresh, 100)],
            vec![(&fresh, 100), (&stale, 40)],
        ] {
            let (p, expires) = compose(&docs);
            assert_eq!(p.tuples.len(), 1, "{p:?}");
            assert_eq!(p.tuples[0].basic, Some(Basic::Closed));
            assert_eq!(expires, 100);
        }
        // Different ids are all kept.
        let other = rec("mm", 120, "open", "t2");
        let (p, _) = compose(&[(&stale, 40), (&other, 60)]);
        assert_eq!(p.tuples.len(), 2);
    }

    /// Two devices of one user (two entity tags, RFC 3903 s4): two tuples, the one
    /// modified last first and its person wins (RFC 4479 s4), whatever the expiries
    /// say (a refresh extends an old document's expiry without making it newer).
    #[test]
    fn two_devices_newest_modified_first() {
        let mut old = rec("e-old", 5000, "open", "desk");
        old.modified_at = 100;
        old.body = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@sip.test"><tuple id="desk"><status><basic>open</basic></status></tuple><dm:person id="p1"><rpid:activities><rpid:away/></rpid:activities></dm:person></presence>"#.to_vec();
        let mut new = rec("e-new", 400, "open", "phone");
        new.modified_at = 300;
        new.body = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@sip.test"><tuple id="phone"><status><basic>open</basic></status></tuple><dm:person id="p2"><rpid:activities><rpid:busy/></rpid:activities></dm:person></presence>"#.to_vec();
        for docs in [
            vec![(&old, 4000), (&new, 100)],
            vec![(&new, 100), (&old, 4000)],
        ] {
            let (p, expires) = compose(&docs);
            let ids: Vec<_> = p.tuples.iter().map(|t| t.id.as_str()).collect();
            assert_eq!(ids, ["phone", "desk"]);
            assert_eq!(p.person.as_ref().unwrap().id, "p2");
            assert_eq!(expires, 4000);
        }
        // Records written before `modified_at` existed deserialize with 0.
        let json = r#"{"etag":"e","aor":"sip:alice@sip.test","expires_at":9,"content_type":"application/pidf+xml","body":[]}"#;
        let r: PublicationRecord = serde_json::from_str(json).unwrap();
        assert_eq!(r.modified_at, 0);
    }
}

//! The event state compositor side of PUBLISH (RFC 3903 s6): SIP-ETag lifecycle.
//!
//! Sans-IO. [`Publications::handle_publish`] applies one PUBLISH (already authenticated)
//! at time `now` and says what to answer; the caller turns the resulting state of the
//! presentity ([`Publications::documents`]) into an `Operation::Publish` for the core.
//! [`Publications::expire`] drops publications whose time is up.
//!
//! RFC 3903 s6 processing: a request with SIP-If-Match naming no live publication gets
//! 412; a non-zero Expires under the minimum gets 423 with Min-Expires; an initial
//! PUBLISH needs a body (400 otherwise); a refresh has SIP-If-Match and no body; a
//! modify has SIP-If-Match and a body; a removal has SIP-If-Match and Expires: 0. Every
//! accepted PUBLISH except a removal gets a fresh entity tag (s6 step 7).
//!
//! Each publication keeps the time its document was last set (an initial PUBLISH or a
//! modify; a refresh only extends it): the composition of a presentity's publications
//! goes by that recency, not by expiry.

use std::collections::HashMap;

use super::super::config::ExpiryLimits;
use super::super::store::PublicationRecord;

/// A PUBLISH as the compositor needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishRequest {
    /// The presentity's AOR (Request-URI), canonical.
    pub aor: String,
    /// SIP-If-Match.
    pub if_match: Option<String>,
    /// Expires header.
    pub expires: Option<u32>,
    /// Content-Type and body, if the request has a body.
    pub body: Option<(String, Vec<u8>)>,
}

/// What kind of PUBLISH it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishKind {
    /// A new publication.
    Initial,
    /// Extends an existing one (no body).
    Refresh,
    /// Replaces an existing one's document.
    Modify,
    /// Removes one (Expires: 0).
    Remove,
}

/// An accepted PUBLISH.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishOutcome {
    /// Which kind.
    pub kind: PublishKind,
    /// The entity tag to send in SIP-ETag (the removed one for a removal).
    pub etag: String,
    /// The granted expiry to send in Expires.
    pub expires: u32,
    /// The etag the new one replaces (to drop from the store).
    pub replaced: Option<String>,
    /// The publication as stored now (`None` after a removal).
    pub record: Option<PublicationRecord>,
}

/// A refused PUBLISH.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// 412 Conditional Request Failed.
    #[error("412 unknown entity tag {0:?}")]
    UnknownEtag(String),
    /// 423 Interval Too Brief, with Min-Expires.
    #[error("423 Interval Too Brief (Min-Expires {0})")]
    IntervalTooBrief(u32),
    /// 400: initial PUBLISH without a body, or a removal with a body.
    #[error("400 {0}")]
    Bad(&'static str),
    /// 403: the entity tag belongs to another presentity.
    #[error("403 entity tag of another presentity")]
    WrongPresentity,
}

impl PublishError {
    /// The SIP status code and reason.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            PublishError::UnknownEtag(_) => (412, "Conditional Request Failed"),
            PublishError::IntervalTooBrief(_) => (423, "Interval Too Brief"),
            PublishError::Bad(r) => (400, r),
            PublishError::WrongPresentity => (403, "Forbidden"),
        }
    }
}

/// The publications the gateway holds, by entity tag.
#[derive(Debug, Default)]
pub struct Publications {
    limits: ExpiryLimits,
    by_etag: HashMap<String, PublicationRecord>,
}

impl Publications {
    /// An empty compositor with these limits.
    pub fn new(limits: ExpiryLimits) -> Publications {
        Publications {
            limits,
            by_etag: HashMap::new(),
        }
    }

    /// Loads publications read from the store, dropping expired ones.
    pub fn restore(&mut self, records: Vec<PublicationRecord>, now: u64) {
        for r in records {
            if r.expires_at > now {
                self.by_etag.insert(r.etag.clone(), r);
            }
        }
    }

    /// Applies one PUBLISH. `new_etag` gives a fresh unique entity tag.
    pub fn handle_publish(
        &mut self,
        req: PublishRequest,
        now: u64,
        new_etag: impl FnOnce() -> String,
    ) -> Result<PublishOutcome, PublishError> {
        // s6 step 3: the condition first.
        let existing = match &req.if_match {
            Some(tag) => {
                let live = self
                    .by_etag
                    .get(tag)
                    .filter(|p| p.expires_at > now)
                    .ok_or_else(|| PublishError::UnknownEtag(tag.clone()))?;
                if live.aor != req.aor {
                    return Err(PublishError::WrongPresentity);
                }
                Some(tag.clone())
            }
            None => None,
        };
        // s6 step 4: expiry.
        let expires = self
            .limits
            .grant(req.expires)
            .map_err(PublishError::IntervalTooBrief)?;
        match (existing, req.body, expires) {
            (None, None, _) => Err(PublishError::Bad("PUBLISH without body or SIP-If-Match")),
            (None, Some(_), 0) => Err(PublishError::Bad("removal without SIP-If-Match")),
            (Some(tag), Some(_), 0) => {
                let _ = tag;
                Err(PublishError::Bad("removal with a body"))
            }
            (Some(tag), None, 0) => {
                self.by_etag.remove(&tag);
                Ok(PublishOutcome {
                    kind: PublishKind::Remove,
                    etag: tag.clone(),
                    expires: 0,
                    replaced: Some(tag),
                    record: None,
                })
            }
            (None, Some((content_type, body)), e) => {
                let rec = PublicationRecord {
                    etag: new_etag(),
                    aor: req.aor,
                    expires_at: now + u64::from(e),
                    modified_at: now,
                    content_type,
                    body,
                };
                self.by_etag.insert(rec.etag.clone(), rec.clone());
                Ok(PublishOutcome {
                    kind: PublishKind::Initial,
                    etag: rec.etag.clone(),
                    expires: e,
                    replaced: None,
                    record: Some(rec),
                })
            }
            (Some(tag), body, e) => {
                let mut rec = self
                    .by_etag
                    .remove(&tag)
                    .ok_or(PublishError::UnknownEtag(tag.clone()))?;
                let kind = match body {
                    Some((ct, b)) => {
                        rec.content_type = ct;
                        rec.body = b;
                        rec.modified_at = now;
                        PublishKind::Modify
                    }
                    None => PublishKind::Refresh,
                };
                rec.etag = new_etag();
                rec.expires_at = now + u64::from(e);
                self.by_etag.insert(rec.etag.clone(), rec.clone());
                Ok(PublishOutcome {
                    kind,
                    etag: rec.etag.clone(),
                    expires: e,
                    replaced: Some(tag),
                    record: Some(rec),
                })
            }
        }
    }

    /// How many publications there are.
    pub fn len(&self) -> usize {
        self.by_etag.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.by_etag.is_empty()
    }

    /// How many publications `aor` holds (live or not yet expired by a tick).
    pub fn count_for(&self, aor: &str) -> usize {
        self.by_etag.values().filter(|p| p.aor == aor).count()
    }

    /// The live documents of `aor` with their remaining seconds, oldest expiry first;
    /// the caller composes them into one presence state.
    pub fn documents(&self, aor: &str, now: u64) -> Vec<(&PublicationRecord, u32)> {
        let mut v: Vec<_> = self
            .by_etag
            .values()
            .filter(|p| p.aor == aor && p.expires_at > now)
            .map(|p| {
                let left = u32::try_from(p.expires_at - now).unwrap_or(u32::MAX);
                (p, left)
            })
            .collect();
        v.sort_by(|a, b| a.0.etag.cmp(&b.0.etag));
        v
    }

    /// Removes the publication named `etag` (a rollback when the core refused it).
    pub fn remove(&mut self, etag: &str) -> Option<PublicationRecord> {
        self.by_etag.remove(etag)
    }

    /// Drops publications whose time is up; returns them.
    pub fn expire(&mut self, now: u64) -> Vec<PublicationRecord> {
        let gone: Vec<String> = self
            .by_etag
            .values()
            .filter(|p| p.expires_at <= now)
            .map(|p| p.etag.clone())
            .collect();
        gone.iter().filter_map(|t| self.by_etag.remove(t)).collect()
    }

    /// When the next publication expires.
    pub fn next_expiry(&self) -> Option<u64> {
        self.by_etag.values().map(|p| p.expires_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pubs() -> Publications {
        Publications::new(ExpiryLimits {
            min: 60,
            max: 3600,
            default: 3600,
        })
    }

    fn body() -> Option<(String, Vec<u8>)> {
        Some(("application/pidf+xml".into(), b"<presence/>".to_vec()))
    }

    fn req(
        if_match: Option<&str>,
        expires: Option<u32>,
        body: Option<(String, Vec<u8>)>,
    ) -> PublishRequest {
        PublishRequest {
            aor: "sip:alice@sip.test".into(),
            if_match: if_match.map(str::to_owned),
            expires,
            body,
        }
    }

    #[test]
    fn full_lifecycle_in_virtual_time() {
        let mut p = pubs();
        let mut n = 0;
        let mut tag = || {
            n += 1;
            format!("e{n}")
        };
        let a = p
            .handle_publish(req(None, Some(120), body()), 0, &mut tag)
            .unwrap();
        assert_eq!(
            (a.kind, a.etag.as_str(), a.expires),
            (PublishKind::Initial, "e1", 120)
        );
        // Refresh: no body, new tag, old tag gone.
        let b = p
            .handle_publish(req(Some("e1"), Some(120), None), 100, &mut tag)
            .unwrap();
        assert_eq!((b.kind, b.etag.as_str()), (PublishKind::Refresh, "e2"));
        assert_eq!(b.replaced.as_deref(), Some("e1"));
        assert_eq!(
            p.handle_publish(req(Some("e1"), Some(120), None), 101, &mut tag),
            Err(PublishError::UnknownEtag("e1".into()))
        );
        // Modify.
        let c = p
            .handle_publish(
                req(
                    Some("e2"),
                    None,
                    Some(("application/pidf+xml".into(), b"<x/>".to_vec())),
                ),
                150,
                &mut tag,
            )
            .unwrap();
        assert_eq!(c.kind, PublishKind::Modify);
        assert_eq!(c.expires, 3600);
        // RFC 3903 s4: the refresh at 100 kept the document, the modify at 150 set it.
        assert_eq!(b.record.as_ref().unwrap().modified_at, 0);
        assert_eq!(c.record.as_ref().unwrap().modified_at, 150);
        assert_eq!(p.documents("sip:alice@sip.test", 150)[0].0.body, b"<x/>");
        // Remove.
        let d = p
            .handle_publish(req(Some(&c.etag), Some(0), None), 200, &mut tag)
            .unwrap();
        assert_eq!(d.kind, PublishKind::Remove);
        assert!(p.documents("sip:alice@sip.test", 200).is_empty());
    }

    #[test]
    fn expiry_and_late_refresh_gets_412() {
        let mut p = pubs();
        let a = p
            .handle_publish(req(None, Some(60), body()), 0, || "t".into())
            .unwrap();
        assert_eq!(p.next_expiry(), Some(60));
        assert!(p.expire(59).is_empty());
        let gone = p.expire(60);
        assert_eq!(gone.len(), 1);
        assert_eq!(
            p.handle_publish(req(Some(&a.etag), Some(60), None), 61, || "u".into()),
            Err(PublishError::UnknownEtag("t".into()))
        );
    }

    #[test]
    fn refusals() {
        let mut p = pubs();
        assert_eq!(
            p.handle_publish(req(None, Some(10), body()), 0, || "t".into()),
            Err(PublishError::IntervalTooBrief(60))
        );
        assert_eq!(
            p.handle_publish(req(None, Some(100), None), 0, || "t".into())
                .unwrap_err()
                .status()
                .0,
            400
        );
        assert_eq!(
            p.handle_publish(req(Some("nope"), None, None), 0, || "t".into())
                .unwrap_err()
                .status()
                .0,
            412
        );
        p.handle_publish(req(None, None, body()), 0, || "t".into())
            .unwrap();
        let mut other = req(Some("t"), None, None);
        other.aor = "sip:mallory@sip.test".into();
        assert_eq!(
            p.handle_publish(other, 1, || "u".into()),
            Err(PublishError::WrongPresentity)
        );
        assert_eq!(
            p.handle_publish(req(Some("t"), Some(0), body()), 1, || "u".into())
                .unwrap_err()
                .status()
                .0,
            400
        );
    }

    #[test]
    fn two_devices_publish_separately() {
        let mut p = pubs();
        p.handle_publish(req(None, None, body()), 0, || "a".into())
            .unwrap();
        p.handle_publish(req(None, None, body()), 0, || "b".into())
            .unwrap();
        assert_eq!(p.documents("sip:alice@sip.test", 1).len(), 2);
        p.handle_publish(req(Some("a"), Some(0), None), 1, || "c".into())
            .unwrap();
        assert_eq!(p.documents("sip:alice@sip.test", 1).len(), 1);
    }
}

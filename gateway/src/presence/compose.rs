//! Composition of a presentity's several devices into one state (RFC 4479 s3-s4).
//!
//! # Sources
//! A user may be online from several places at once. XMPP says so with one presence
//! stanza per resource (RFC 6121 s4); RFC 8048 s4 maps each resource onto a PIDF tuple
//! (RFC 3863 s4.1.1: one tuple per communication means or instance) whose id is the
//! resource. A notify coming in from a roster-style adapter (XMPP) therefore speaks for
//! one resource only: [`Sources::apply`] replaces that resource's part and leaves the
//! others alone; an `unavailable` (a closed tuple) removes that resource only, and an
//! `unavailable` from the bare JID (RFC 6121 s4.3.2: no resource is available) removes
//! them all. SIP publications are composed per entity tag by the SIP adapter (RFC 3903
//! s4: one publication per entity tag) and reach the engine as one composed document.
//!
//! # Composition policy (RFC 4479 s4: the compositor's policy is its own)
//! - One tuple per live source, newest first: each part keeps the time it was last
//!   modified and the document lists them by that time, most recent first.
//! - Basic status (RFC 3863 s4.1.4): a part is kept only while it is open (or says
//!   nothing), so the user is `open` while any source is; when no source is left the
//!   document is [`super::offline`], one closed tuple.
//! - Person data (RFC 4479 s3.2: activities, notes) and the presentity-level notes come
//!   from the most recently modified source: when two devices disagree, the one the
//!   user touched last wins. Device elements (RFC 4479 s3.4) of all sources are kept,
//!   one per id, the newest first.
//!
//! # Departed devices for roster watchers
//! An XMPP watcher sees one `<presence/>` per tuple (RFC 8048 s5), so a device that is
//! gone must be announced as `unavailable` from its resource: [`Devices::for_watcher`]
//! adds a closed tuple for every id the watcher was shown last time and that the
//! current document no longer has.
//!
//! Caps: at most [`MAX_SOURCES`] sources per subscription (the least recently modified
//! is dropped first); the maps are keyed by subscription and forgotten with it.

use std::collections::HashMap;
use std::time::Instant;

use cpim_core::address::{Address, Scheme};
use cpim_core::presence::{Basic, Presence, Tuple};

use super::offline;

/// Most sources (XMPP resources) kept per subscription.
pub const MAX_SOURCES: usize = 32;

/// One source of a presentity's state: one resource (one tuple) with the person data
/// and notes it came with.
#[derive(Clone, Debug, PartialEq)]
struct Part {
    modified: Instant,
    presence: Presence,
}

impl Part {
    fn id(&self) -> &str {
        self.presence.tuples.first().map_or("", |t| t.id.as_str())
    }
}

/// The live sources of one presentity as seen by one subscription, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sources {
    parts: Vec<Part>,
}

/// True for a closed tuple whose contact is a bare XMPP address: "no resource is
/// available" (RFC 6121 s4.3.2), which ends every resource.
fn is_bare_unavailable(t: &Tuple) -> bool {
    t.basic == Some(Basic::Closed)
        && t.contact
            .as_deref()
            .and_then(|c| Address::parse(c).ok())
            .is_some_and(|a| a.scheme == Scheme::Xmpp && a.instance.is_none())
}

impl Sources {
    /// The sources of an already composed document (restored after a restart): one per
    /// open tuple, in the document's order (newest first), the person and notes with the
    /// first.
    pub fn from_composed(p: &Presence, now: Instant) -> Sources {
        let mut s = Sources::default();
        for (i, t) in p
            .tuples
            .iter()
            .filter(|t| t.basic != Some(Basic::Closed))
            .take(MAX_SOURCES)
            .enumerate()
        {
            let mut part = Presence {
                entity: p.entity.clone(),
                tuples: vec![t.clone()],
                ..Presence::default()
            };
            if i == 0 {
                part.person = p.person.clone();
                part.notes = p.notes.clone();
                part.extensions = p.extensions.clone();
            }
            part.devices = p
                .devices
                .iter()
                .filter(|d| d.device_id.is_some() && d.device_id == t.device_id)
                .cloned()
                .collect();
            s.parts.push(Part {
                modified: now,
                presence: part,
            });
        }
        s
    }

    /// Applies a notify that speaks for the resources of its tuples (see the module
    /// docs). A notify without tuples changes nothing.
    pub fn apply(&mut self, now: Instant, incoming: &Presence) {
        for t in &incoming.tuples {
            if is_bare_unavailable(t) {
                self.parts.clear();
                continue;
            }
            self.parts.retain(|p| p.id() != t.id);
            if t.basic == Some(Basic::Closed) {
                continue;
            }
            let part = Presence {
                entity: incoming.entity.clone(),
                tuples: vec![t.clone()],
                person: incoming.person.clone(),
                notes: incoming.notes.clone(),
                devices: incoming
                    .devices
                    .iter()
                    .filter(|d| t.device_id.is_none() || d.device_id == t.device_id)
                    .cloned()
                    .collect(),
                extensions: incoming.extensions.clone(),
            };
            self.parts.insert(
                0,
                Part {
                    modified: now,
                    presence: part,
                },
            );
        }
        // Newest first; equal times keep their order (the stable sort).
        self.parts.sort_by_key(|p| std::cmp::Reverse(p.modified));
        self.parts.truncate(MAX_SOURCES);
    }

    /// How many sources are live.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// True when no source is live (the user is offline).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The one document for watchers (see the module docs for the policy).
    pub fn compose(&self, presentity: &Address) -> Presence {
        let Some(newest) = self.parts.first() else {
            return offline(presentity);
        };
        let mut out = Presence {
            entity: newest
                .presence
                .entity
                .clone()
                .or_else(|| Some(presentity.bare())),
            person: newest.presence.person.clone(),
            notes: newest.presence.notes.clone(),
            extensions: newest.presence.extensions.clone(),
            ..Presence::default()
        };
        for p in &self.parts {
            out.tuples.extend(p.presence.tuples.iter().cloned());
            for d in &p.presence.devices {
                if !out.devices.iter().any(|o| o.id == d.id) {
                    out.devices.push(d.clone());
                }
            }
        }
        out
    }
}

/// The per-subscription composition state of the engine.
#[derive(Debug, Default)]
pub struct Devices {
    sources: HashMap<String, Sources>,
    /// Per subscription: the open tuples shown last, as (id, contact).
    shown: HashMap<String, Vec<(String, Option<String>)>>,
}

impl Devices {
    /// A notify for subscription `key` from a roster-style adapter: updates the part of
    /// the resource(s) it names and returns the composed document. `last` is the
    /// subscription's last composed state, the seed after a restart.
    pub fn apply(
        &mut self,
        key: &str,
        now: Instant,
        presentity: &Address,
        last: Option<&Presence>,
        incoming: &Presence,
    ) -> Presence {
        let s = self.sources.entry(key.to_owned()).or_insert_with(|| {
            last.map_or_else(Sources::default, |p| Sources::from_composed(p, now))
        });
        s.apply(now, incoming);
        s.compose(presentity)
    }

    /// The document for a roster-style watcher of subscription `key`: `current` with a
    /// closed tuple for every tuple shown last time and gone since, with the contact it
    /// had (which may name its resource, RFC 7247 s6.3). Remembers the open tuples shown
    /// now.
    pub fn for_watcher(&mut self, key: &str, mut current: Presence) -> Presence {
        let open: Vec<(String, Option<String>)> = current
            .tuples
            .iter()
            .filter(|t| t.basic != Some(Basic::Closed))
            .map(|t| (t.id.clone(), t.contact.clone()))
            .take(MAX_SOURCES)
            .collect();
        let before = self.shown.remove(key).unwrap_or_default();
        for (id, contact) in before {
            if !current.tuples.iter().any(|t| t.id == id) {
                current.tuples.push(Tuple {
                    id,
                    basic: Some(Basic::Closed),
                    contact,
                    ..Tuple::default()
                });
            }
        }
        if !open.is_empty() {
            self.shown.insert(key.to_owned(), open);
        }
        current
    }

    /// Forgets subscription `key`.
    pub fn forget(&mut self, key: &str) {
        self.sources.remove(key);
        self.shown.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_core::presence::{Activity, Person};
    use std::time::Duration;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    /// An XMPP presence of `bob@xmpp.test/res` as the XMPP mapping makes it.
    fn stanza(res: Option<&str>, open: bool, act: Option<Activity>) -> Presence {
        let from = match res {
            Some(r) => format!("bob@xmpp.test/{r}"),
            None => "bob@xmpp.test".to_owned(),
        };
        Presence {
            entity: Some(a("xmpp:bob@xmpp.test")),
            tuples: vec![Tuple {
                id: res.unwrap_or("xmpp").to_owned(),
                basic: Some(if open { Basic::Open } else { Basic::Closed }),
                contact: Some(format!("xmpp:{from}")),
                ..Tuple::default()
            }],
            person: act.map(|a| Person {
                id: "p".into(),
                activities: vec![a],
                ..Person::default()
            }),
            ..Presence::default()
        }
    }

    fn ids(p: &Presence) -> Vec<(&str, Option<Basic>)> {
        p.tuples.iter().map(|t| (t.id.as_str(), t.basic)).collect()
    }

    /// RFC 8048 s4 / RFC 3863 s4.1.1: one tuple per resource; an unavailable resource
    /// leaves the others; the newest resource's person data wins (RFC 4479 s4).
    #[test]
    fn rfc8048_s4_one_tuple_per_resource_newest_first() {
        let t0 = Instant::now();
        let bob = a("xmpp:bob@xmpp.test");
        let mut s = Sources::default();
        s.apply(t0, &stanza(Some("phone"), true, Some(Activity::Busy)));
        s.apply(
            t0 + Duration::from_secs(1),
            &stanza(Some("desk"), true, None),
        );
        let p = s.compose(&bob);
        assert_eq!(
            ids(&p),
            vec![("desk", Some(Basic::Open)), ("phone", Some(Basic::Open))]
        );
        assert!(p.person.is_none(), "the newest (desk) has no activity");
        // The desk goes: open with the phone alone, and the phone's activity is back.
        s.apply(
            t0 + Duration::from_secs(2),
            &stanza(Some("desk"), false, None),
        );
        let p = s.compose(&bob);
        assert_eq!(ids(&p), vec![("phone", Some(Basic::Open))]);
        assert_eq!(p.person.unwrap().activities, vec![Activity::Busy]);
        // An update of the phone moves nothing else and keeps one tuple for it.
        s.apply(
            t0 + Duration::from_secs(3),
            &stanza(Some("phone"), true, None),
        );
        assert_eq!(s.len(), 1);
        // The last resource goes: one closed tuple.
        s.apply(
            t0 + Duration::from_secs(4),
            &stanza(Some("phone"), false, None),
        );
        let p = s.compose(&bob);
        assert!(!p.is_available());
        assert_eq!(p.tuples.len(), 1);
        assert_eq!(p.entity, Some(bob.bare()));
    }

    /// RFC 6121 s4.3.2: an unavailable from the bare JID ends every resource.
    #[test]
    fn rfc6121_s4_3_2_bare_unavailable_closes_all() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        s.apply(t0, &stanza(Some("a"), true, None));
        s.apply(t0, &stanza(Some("b"), true, None));
        assert_eq!(s.len(), 2);
        s.apply(t0, &stanza(None, false, None));
        assert!(s.is_empty());
        assert!(!s.compose(&a("xmpp:bob@xmpp.test")).is_available());
    }

    /// A composed document read back (after a restart) gives the same document, and a
    /// later update goes in front of the restored ones.
    #[test]
    fn from_composed_keeps_the_order() {
        let t0 = Instant::now();
        let bob = a("xmpp:bob@xmpp.test");
        let mut s = Sources::default();
        s.apply(t0, &stanza(Some("a"), true, None));
        s.apply(
            t0 + Duration::from_secs(1),
            &stanza(Some("b"), true, Some(Activity::Away)),
        );
        let doc = s.compose(&bob);
        let t1 = t0 + Duration::from_secs(100);
        let mut r = Sources::from_composed(&doc, t1);
        assert_eq!(r.compose(&bob), doc);
        r.apply(t1 + Duration::from_secs(1), &stanza(Some("a"), true, None));
        assert_eq!(
            ids(&r.compose(&bob)),
            vec![("a", Some(Basic::Open)), ("b", Some(Basic::Open))]
        );
        // The offline document seeds nothing.
        assert_eq!(Sources::from_composed(&offline(&bob), t1).len(), 0);
    }

    #[test]
    fn sources_are_capped() {
        let t0 = Instant::now();
        let mut s = Sources::default();
        for i in 0..MAX_SOURCES + 5 {
            let r = format!("r{i}");
            s.apply(
                t0 + Duration::from_secs(i as u64),
                &stanza(Some(&r), true, None),
            );
        }
        assert_eq!(s.len(), MAX_SOURCES);
        let p = s.compose(&a("xmpp:bob@xmpp.test"));
        assert_eq!(p.tuples[0].id, format!("r{}", MAX_SOURCES + 4));
        assert!(
            !p.tuples.iter().any(|t| t.id == "r0"),
            "the oldest went first"
        );
    }

    /// RFC 8048 s5: a device shown to a roster watcher and gone since is announced
    /// closed once.
    #[test]
    fn rfc8048_s5_departed_device_is_announced_closed() {
        let mut d = Devices::default();
        let two = Presence {
            tuples: vec![
                Tuple {
                    id: "d1".into(),
                    basic: Some(Basic::Open),
                    ..Tuple::default()
                },
                Tuple {
                    id: "d2".into(),
                    basic: Some(Basic::Open),
                    contact: Some("sip:carol@sip.test;gr=handset".into()),
                    ..Tuple::default()
                },
            ],
            ..Presence::default()
        };
        assert_eq!(d.for_watcher("k", two.clone()), two);
        let mut one = two.clone();
        one.tuples.remove(1);
        let shown = d.for_watcher("k", one.clone());
        assert_eq!(
            ids(&shown),
            vec![("d1", Some(Basic::Open)), ("d2", Some(Basic::Closed))]
        );
        // With the contact it had: the GRUU that names its resource.
        assert_eq!(
            shown.tuples[1].contact.as_deref(),
            Some("sip:carol@sip.test;gr=handset")
        );
        // Only once.
        assert_eq!(d.for_watcher("k", one.clone()), one);
        d.forget("k");
        assert_eq!(d.for_watcher("k", Presence::default()), Presence::default());
    }
}

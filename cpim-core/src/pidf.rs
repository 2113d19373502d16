//! PIDF (RFC 3863) with RPID activities (RFC 4480) and the presence data model
//! (RFC 4479: person, device, `dm:deviceID`, timestamps), to and from
//! [`Presence`]. CIPID (RFC 4482), capabilities (RFC 5196) and every other extension
//! are kept as XML text in the `extensions` fields.
//!
//! Parsing is lenient: any prefixes, elements in any order (real clients put the
//! person before the tuples, notes before contacts, even `<contact>` inside
//! `<status>`), a missing `entity` or element id. Encoding is strict: elements are
//! written in the order of the RFC schemas (presence: tuple*, note*, then the data-model
//! and other extensions where `##other` allows; tuple: status, deviceID, extensions,
//! contact, note*, timestamp; person: activities, extensions, note*, timestamp;
//! device: extensions, deviceID, note*, timestamp).
//!
//! Normalizations done while parsing, so that parse -> encode -> parse is stable:
//! a missing element id gets a generated one; `priority` is clamped to 0..1 and
//! rounded to the three decimals of the `qvalue` type; `<rpid:unknown/>` next to a
//! known activity is dropped (the RFC 4480 schema allows it only alone); elements in
//! the PIDF, data-model or RPID namespaces that these RFCs do not define are dropped
//! (they could not be written back validly); several `<rpid:activities>` of a person
//! are merged into one; a second person is kept as an extension.
//!
//! A root in another namespace (the pre-RFC `urn:ietf:params:xml:ns:cpim-pidf:`, XPIDF's
//! unqualified `<presence>`) is refused with `DocError::WrongRoot` naming what was found.
//! Property: `parse(encode(parse(x))) == parse(x)` for every accepted `x` (proptests in
//! `tests/xml_roundtrip.rs`, the `pidf` fuzz target).

use crate::address::Address;
use crate::presence::{Activity, Basic, Device, Note, Person, Presence, Tuple};
use crate::xml::{self, ns, DocError, Element, EncodeError, Limits, Writer};

/// The media type (RFC 3863 s8).
pub const CONTENT_TYPE: &str = "application/pidf+xml";

/// Parses a PIDF document with the default limits.
pub fn parse(input: &[u8]) -> Result<Presence, DocError> {
    parse_with(input, &Limits::DEFAULT)
}

/// Parses a PIDF document.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Presence, DocError> {
    let root = xml::parse_with(input, limits)?;
    from_element(&root)
}

/// Reads a `<presence>` element already parsed (e.g. a PIDF body inside another document).
pub fn from_element(root: &Element) -> Result<Presence, DocError> {
    if !root.is(ns::PIDF, "presence") {
        return Err(DocError::wrong_root(ns::PIDF, "presence", root));
    }
    let entity = match root.attr("entity") {
        Some(e) => Some(Address::parse(e).map_err(|_| DocError::invalid("entity", e))?),
        None => None,
    };
    let mut ids = IdGen::new(root);
    let mut p = Presence {
        entity,
        ..Presence::default()
    };
    for el in root.elements() {
        match (el.ns.as_str(), el.name.as_str()) {
            (ns::PIDF, "tuple") => p.tuples.push(tuple(el, &mut ids)),
            (ns::PIDF, "note") => p.notes.push(note(el)),
            (ns::DATA_MODEL, "person") if p.person.is_none() => {
                p.person = Some(person(el, &mut ids));
            }
            (ns::DATA_MODEL, "person") => p.extensions.push(el.to_xml()),
            (ns::DATA_MODEL, "device") => p.devices.push(device(el, &mut ids)),
            (ns::PIDF | ns::DATA_MODEL, _) => {}
            _ => p.extensions.push(el.to_xml()),
        }
    }
    Ok(p)
}

/// Generates ids for elements that lack one, avoiding those the document uses.
struct IdGen {
    taken: Vec<String>,
    next: usize,
}

impl IdGen {
    fn new(root: &Element) -> IdGen {
        let taken = root
            .elements()
            .filter_map(|e| e.attr("id").map(str::to_owned))
            .collect();
        IdGen { taken, next: 0 }
    }

    fn id(&mut self, el: &Element, prefix: &str) -> String {
        if let Some(id) = el.attr("id") {
            return id.to_owned();
        }
        loop {
            let cand = format!("{prefix}{}", self.next);
            self.next += 1;
            if !self.taken.contains(&cand) {
                self.taken.push(cand.clone());
                return cand;
            }
        }
    }
}

fn note(el: &Element) -> Note {
    Note {
        lang: el.lang().map(str::to_owned),
        text: el.text().into_owned(),
    }
}

fn tuple(el: &Element, ids: &mut IdGen) -> Tuple {
    let mut t = Tuple {
        id: ids.id(el, "t"),
        ..Tuple::default()
    };
    for c in el.elements() {
        match (c.ns.as_str(), c.name.as_str()) {
            (ns::PIDF, "status") => {
                for s in c.elements() {
                    match (s.ns.as_str(), s.name.as_str()) {
                        (ns::PIDF, "basic") => {
                            t.basic = match s.trimmed_text().as_str() {
                                "open" => Some(Basic::Open),
                                "closed" => Some(Basic::Closed),
                                _ => None,
                            }
                        }
                        // Lenient: some clients put these inside <status>.
                        (ns::PIDF, "contact" | "note" | "timestamp") => tuple_child(&mut t, s),
                        (ns::PIDF, _) => {}
                        _ => t.status_extensions.push(s.to_xml()),
                    }
                }
            }
            (ns::DATA_MODEL, "deviceID") if t.device_id.is_none() => {
                t.device_id = Some(c.trimmed_text());
            }
            (ns::PIDF, _) => tuple_child(&mut t, c),
            _ => t.extensions.push(c.to_xml()),
        }
    }
    t
}

fn tuple_child(t: &mut Tuple, c: &Element) {
    match c.name.as_str() {
        "contact" if t.contact.is_none() => {
            t.contact = Some(c.trimmed_text());
            t.priority = c.attr("priority").and_then(parse_qvalue);
        }
        "note" => t.notes.push(note(c)),
        "timestamp" if t.timestamp.is_none() => t.timestamp = Some(c.trimmed_text()),
        _ => {}
    }
}

/// A qvalue, clamped and rounded to three decimals (see the module doc).
fn parse_qvalue(s: &str) -> Option<f32> {
    let q: f32 = s.trim().parse().ok()?;
    if q.is_nan() {
        return None;
    }
    let n = (q.clamp(0.0, 1.0) * 1000.0).round();
    Some(n / 1000.0)
}

fn person(el: &Element, ids: &mut IdGen) -> Person {
    let mut p = Person {
        id: ids.id(el, "p"),
        ..Person::default()
    };
    for c in el.elements() {
        match (c.ns.as_str(), c.name.as_str()) {
            // Several <activities> elements are merged into one.
            (ns::RPID, "activities") => activities(&mut p, c),
            (ns::DATA_MODEL | ns::PIDF, "note") => p.notes.push(note(c)),
            (ns::DATA_MODEL | ns::PIDF, "timestamp") if p.timestamp.is_none() => {
                p.timestamp = Some(c.trimmed_text());
            }
            (ns::DATA_MODEL | ns::PIDF, _) => {}
            _ => p.extensions.push(c.to_xml()),
        }
    }
    p
}

fn activities(p: &mut Person, el: &Element) {
    if p.activities_from.is_none() {
        p.activities_from = el.attr("from").map(str::to_owned);
    }
    if p.activities_until.is_none() {
        p.activities_until = el.attr("until").map(str::to_owned);
    }
    for c in el.elements() {
        if c.ns != ns::RPID {
            p.activities_extensions.push(c.to_xml());
            continue;
        }
        match c.name.as_str() {
            "note" => p.activities_notes.push(note(c)),
            "other" => p.activities.push(Activity::Other(c.text().into_owned())),
            name => {
                if let Some(a) = Activity::from_name(name) {
                    p.activities.push(a);
                }
            }
        }
    }
    if p.activities.len() + p.activities_extensions.len() > 1 {
        p.activities.retain(|a| *a != Activity::Unknown);
    }
}

fn device(el: &Element, ids: &mut IdGen) -> Device {
    let mut d = Device {
        id: ids.id(el, "d"),
        ..Device::default()
    };
    for c in el.elements() {
        match (c.ns.as_str(), c.name.as_str()) {
            (ns::DATA_MODEL, "deviceID") if d.device_id.is_none() => {
                d.device_id = Some(c.trimmed_text());
            }
            (ns::DATA_MODEL | ns::PIDF, "note") => d.notes.push(note(c)),
            (ns::DATA_MODEL | ns::PIDF, "timestamp") if d.timestamp.is_none() => {
                d.timestamp = Some(c.trimmed_text());
            }
            (ns::DATA_MODEL | ns::PIDF, _) => {}
            _ => d.extensions.push(c.to_xml()),
        }
    }
    d
}

/// Encodes a presence document in schema order. Fails only if a kept extension is
/// not one well-formed element in another namespace than its container.
pub fn encode(p: &Presence) -> Result<String, EncodeError> {
    let mut w = Writer::new();
    write(&mut w, p)?;
    Ok(w.finish())
}

/// Writes a `<presence>` element with its namespace declarations into `w`.
pub fn write(w: &mut Writer, p: &Presence) -> Result<(), EncodeError> {
    let uses_dm = p.person.is_some()
        || !p.devices.is_empty()
        || p.tuples.iter().any(|t| t.device_id.is_some());
    let uses_rpid = p.person.as_ref().is_some_and(has_activities);
    w.open("presence").attr("xmlns", ns::PIDF);
    if uses_dm {
        w.attr("xmlns:dm", ns::DATA_MODEL);
    }
    if uses_rpid {
        w.attr("xmlns:rpid", ns::RPID);
    }
    let entity = p.entity.as_ref().map(ToString::to_string);
    w.attr_opt("entity", entity.as_deref());
    for t in &p.tuples {
        w.open("tuple").attr("id", &t.id);
        w.open("status");
        if let Some(b) = t.basic {
            w.text_element(
                "basic",
                match b {
                    Basic::Open => "open",
                    Basic::Closed => "closed",
                },
            );
        }
        xml::write_extensions(w, &t.status_extensions, ns::PIDF, "status")?;
        w.close();
        if let Some(d) = &t.device_id {
            w.text_element("dm:deviceID", d);
        }
        xml::write_extensions(w, &t.extensions, ns::PIDF, "tuple")?;
        if let Some(c) = &t.contact {
            w.open("contact");
            if let Some(q) = t.priority {
                w.attr("priority", &xml::format_qvalue(q));
            }
            w.text(c).close();
        }
        write_notes(w, &t.notes, "note");
        if let Some(ts) = &t.timestamp {
            w.text_element("timestamp", ts);
        }
        w.close();
    }
    write_notes(w, &p.notes, "note");
    if let Some(person) = &p.person {
        w.open("dm:person").attr("id", &person.id);
        if has_activities(person) {
            w.open("rpid:activities");
            w.attr_opt("from", person.activities_from.as_deref());
            w.attr_opt("until", person.activities_until.as_deref());
            write_notes(w, &person.activities_notes, "rpid:note");
            let alone = person.activities.len() + person.activities_extensions.len() == 1;
            for a in &person.activities {
                match a {
                    Activity::Other(text) => {
                        w.text_element("rpid:other", text);
                    }
                    Activity::Unknown if !alone => {}
                    a => {
                        w.empty(rpid_name(a));
                    }
                }
            }
            xml::write_extensions(w, &person.activities_extensions, ns::RPID, "activities")?;
            w.close();
        }
        xml::write_extensions(w, &person.extensions, ns::DATA_MODEL, "person")?;
        write_notes(w, &person.notes, "dm:note");
        if let Some(ts) = &person.timestamp {
            w.text_element("dm:timestamp", ts);
        }
        w.close();
    }
    for d in &p.devices {
        w.open("dm:device").attr("id", &d.id);
        xml::write_extensions(w, &d.extensions, ns::DATA_MODEL, "device")?;
        if let Some(id) = &d.device_id {
            w.text_element("dm:deviceID", id);
        }
        write_notes(w, &d.notes, "dm:note");
        if let Some(ts) = &d.timestamp {
            w.text_element("dm:timestamp", ts);
        }
        w.close();
    }
    xml::write_extensions(w, &p.extensions, ns::PIDF, "presence")?;
    w.close();
    Ok(())
}

fn has_activities(p: &Person) -> bool {
    !p.activities.is_empty()
        || !p.activities_notes.is_empty()
        || !p.activities_extensions.is_empty()
        || p.activities_from.is_some()
        || p.activities_until.is_some()
}

fn write_notes(w: &mut Writer, notes: &[Note], qname: &'static str) {
    for n in notes {
        w.open(qname).attr_opt("xml:lang", n.lang.as_deref());
        w.text(&n.text).close();
    }
}

/// `rpid:` element names, static so the writer can keep them.
fn rpid_name(a: &Activity) -> &'static str {
    match a {
        Activity::Appointment => "rpid:appointment",
        Activity::Away => "rpid:away",
        Activity::Breakfast => "rpid:breakfast",
        Activity::Busy => "rpid:busy",
        Activity::Dinner => "rpid:dinner",
        Activity::Holiday => "rpid:holiday",
        Activity::InTransit => "rpid:in-transit",
        Activity::LookingForWork => "rpid:looking-for-work",
        Activity::Meal => "rpid:meal",
        Activity::Meeting => "rpid:meeting",
        Activity::OnThePhone => "rpid:on-the-phone",
        Activity::Performance => "rpid:performance",
        Activity::PermanentAbsence => "rpid:permanent-absence",
        Activity::Playing => "rpid:playing",
        Activity::Presentation => "rpid:presentation",
        Activity::Shopping => "rpid:shopping",
        Activity::Sleeping => "rpid:sleeping",
        Activity::Spectator => "rpid:spectator",
        Activity::Steering => "rpid:steering",
        Activity::Travel => "rpid:travel",
        Activity::Tv => "rpid:tv",
        Activity::Vacation => "rpid:vacation",
        Activity::Working => "rpid:working",
        Activity::Worship => "rpid:worship",
        Activity::Unknown | Activity::Other(_) => "rpid:unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scheme;

    /// RFC 3863 s5.1-style document with a foreign prefix for PIDF itself.
    const PREFIXED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<impp:presence xmlns:impp="urn:ietf:params:xml:ns:pidf" entity="pres:someone@example.com">
  <impp:tuple id="mobile-im">
    <impp:status><impp:basic>open</impp:basic></impp:status>
    <impp:contact priority="0.8">tel:+09012345678</impp:contact>
  </impp:tuple>
</impp:presence>"#;

    #[test]
    fn rfc3863_prefixed_document() {
        let p = parse(PREFIXED.as_bytes()).unwrap();
        let e = p.entity.as_ref().unwrap();
        assert_eq!(
            (e.scheme, e.user.as_deref(), e.domain.as_str()),
            (Scheme::Pres, Some("someone"), "example.com")
        );
        assert_eq!(p.tuples.len(), 1);
        let t = &p.tuples[0];
        assert_eq!(t.id, "mobile-im");
        assert_eq!(t.basic, Some(Basic::Open));
        assert_eq!(t.contact.as_deref(), Some("tel:+09012345678"));
        assert_eq!(t.priority, Some(0.8));
        assert!(p.is_available());
    }

    /// RFC 4480 s3.1 / RFC 4479: person with activities, notes with xml:lang, device,
    /// person placed before the tuple (as Jitsi does), RPID elements kept.
    #[test]
    fn rpid_data_model_and_extensions() {
        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:d="urn:ietf:params:xml:ns:pidf:data-model"
   xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" xmlns:c="urn:ietf:params:xml:ns:pidf:cipid" entity="sip:a@example.com">
  <d:person id="p1">
    <r:activities from="2005-05-30T12:00:00+05:00"><r:note>Far</r:note><r:away/><r:other>brooding</r:other></r:activities>
    <r:mood><r:angry/></r:mood>
    <c:homepage>http://example.com/~a</c:homepage>
    <d:note xml:lang="en">Scoring</d:note>
    <d:timestamp>2005-05-30T16:09:44+05:00</d:timestamp>
  </d:person>
  <tuple id="t1">
    <status><basic>closed</basic></status>
    <note xml:lang="fr">Ne pas déranger</note>
    <contact>sip:a@pc.example.com</contact>
    <d:deviceID>urn:x-mac:0003ba4811e3</d:deviceID>
  </tuple>
  <d:device id="pc147"><r:user-input>idle</r:user-input><d:deviceID>urn:x-mac:0003ba4811e3</d:deviceID></d:device>
</presence>"#;
        let p = parse(doc.as_bytes()).unwrap();
        let person = p.person.as_ref().unwrap();
        assert_eq!(
            person.activities,
            vec![Activity::Away, Activity::Other("brooding".into())]
        );
        assert_eq!(person.activities_notes, vec![Note::new("Far")]);
        assert_eq!(
            person.activities_from.as_deref(),
            Some("2005-05-30T12:00:00+05:00")
        );
        assert_eq!(
            person.notes,
            vec![Note {
                lang: Some("en".into()),
                text: "Scoring".into()
            }]
        );
        assert_eq!(
            person.timestamp.as_deref(),
            Some("2005-05-30T16:09:44+05:00")
        );
        assert_eq!(person.extensions.len(), 2);
        assert!(person.extensions[0].contains("mood") && person.extensions[0].contains(ns::RPID));
        assert!(person.extensions[1].contains(ns::CIPID));
        let t = &p.tuples[0];
        assert_eq!(t.notes[0].lang.as_deref(), Some("fr"));
        assert_eq!(t.device_id.as_deref(), Some("urn:x-mac:0003ba4811e3"));
        assert_eq!(p.devices.len(), 1);
        assert_eq!(
            p.devices[0].extensions,
            vec![format!(
                r#"<r:user-input xmlns:r="{}">idle</r:user-input>"#,
                ns::RPID
            )]
        );

        let out = encode(&p).unwrap();
        // Schema order: tuple before person; in the tuple contact before note.
        assert!(
            out.find("<tuple").unwrap() < out.find("<dm:person").unwrap(),
            "{out}"
        );
        assert!(
            out.find("<contact").unwrap() < out.find("<note").unwrap(),
            "{out}"
        );
        assert_eq!(parse(out.as_bytes()).unwrap(), p);
    }

    #[test]
    fn lenient_contact_inside_status_and_missing_ids() {
        let doc = r#"<pr:presence xmlns:pr="urn:ietf:params:xml:ns:pidf"><pr:tuple><pr:status>
           <pr:basic>open</pr:basic><pr:contact priority="0">sip:j@x.net</pr:contact><pr:note>test</pr:note>
           </pr:status></pr:tuple><pr:tuple><pr:status/></pr:tuple></pr:presence>"#;
        let p = parse(doc.as_bytes()).unwrap();
        assert_eq!(p.entity, None);
        assert_eq!(p.tuples[0].id, "t0");
        assert_eq!(p.tuples[1].id, "t1");
        assert_eq!(p.tuples[0].contact.as_deref(), Some("sip:j@x.net"));
        assert_eq!(p.tuples[0].notes, vec![Note::new("test")]);
        assert_eq!(parse(encode(&p).unwrap().as_bytes()).unwrap(), p);
    }

    #[test]
    fn unknown_activity_only_alone() {
        let doc = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
          xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@b"><dm:person id="p"><rpid:activities>
          <rpid:unknown/><rpid:busy/></rpid:activities></dm:person></presence>"#;
        let p = parse(doc.as_bytes()).unwrap();
        assert_eq!(p.person.unwrap().activities, vec![Activity::Busy]);
    }

    #[test]
    fn wrong_roots_are_named() {
        let err =
            parse(br#"<presence xmlns="urn:ietf:params:xml:ns:cpim-pidf:" entity="pres:a@b"/>"#)
                .unwrap_err();
        assert!(
            matches!(&err, DocError::WrongRoot { found_ns, .. } if found_ns == ns::CPIM_PIDF_DRAFT),
            "{err}"
        );
        let err = parse(b"<presence entity='a'/>").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected root element {urn:ietf:params:xml:ns:pidf}presence"),
            "{err}"
        );
        let err = parse(br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="foo:bar"/>"#)
            .unwrap_err();
        assert!(
            matches!(err, DocError::Invalid { what: "entity", .. }),
            "{err}"
        );
    }

    #[test]
    fn extension_checks_on_encode() {
        let mut p = Presence::default();
        p.extensions.push("<x:a xmlns:x='urn:x'>ok</x:a>".into());
        assert!(encode(&p).is_ok());
        p.extensions.push("<unclosed>".into());
        let err = encode(&p).unwrap_err();
        assert!(
            matches!(err, EncodeError::InvalidExtension { index: 1, .. }),
            "{err}"
        );
        p.extensions.pop();
        p.extensions.push(format!("<note xmlns='{}'/>", ns::PIDF));
        assert!(encode(&p).is_err());
    }

    #[test]
    fn priority_is_normalized_to_qvalue() {
        assert_eq!(parse_qvalue("1.00"), Some(1.0));
        assert_eq!(parse_qvalue("0.12345"), Some(0.123));
        assert_eq!(parse_qvalue("7"), Some(1.0));
        assert_eq!(parse_qvalue("x"), None);
        assert_eq!(parse_qvalue("NaN"), None);
    }
}

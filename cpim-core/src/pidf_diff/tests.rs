use super::*;
use crate::presence::{Activity, Basic, Device, Note, Person, Tuple};
use crate::Address;

fn tuple(id: &str, basic: Basic, contact: &str) -> Tuple {
    Tuple {
        id: id.into(),
        basic: Some(basic),
        contact: Some(contact.into()),
        ..Tuple::default()
    }
}

fn base() -> Presence {
    Presence {
        entity: Some(Address::parse("pres:alice@example.com").unwrap()),
        tuples: vec![
            tuple("t1", Basic::Open, "sip:alice@pc.example.com"),
            tuple("t2", Basic::Closed, "sip:alice@phone.example.com"),
        ],
        person: Some(Person {
            id: "p1".into(),
            activities: vec![Activity::Busy],
            ..Person::default()
        }),
        devices: vec![Device {
            id: "d1".into(),
            device_id: Some("urn:x-mac:0003ba4811e3".into()),
            ..Device::default()
        }],
        ..Presence::default()
    }
}

fn roundtrip(old: &Presence, new: &Presence) -> Diff {
    let ops = diff(old, new).unwrap().expect("expressible by id");
    let d = Diff {
        entity: "pres:alice@example.com".into(),
        version: 2,
        ops,
        prefixes: vec![],
    };
    // Through the wire form, so the encoder and the parser are part of the property.
    let xml = encode(&Document::Diff(d.clone())).unwrap();
    let Document::Diff(parsed) = parse(xml.as_bytes()).unwrap() else {
        panic!("not a diff: {xml}");
    };
    assert_eq!(parsed.ops, d.ops, "{xml}");
    assert_eq!(apply(old, &parsed).unwrap(), *new, "{xml}");
    parsed
}

/// RFC 5262 s3.1: the full-state document is `<pidf-full>` with the content of
/// `<presence>` and a version; it round-trips, kept extensions included.
#[test]
fn rfc5262_s3_1_full_state_roundtrip() {
    let mut p = base();
    p.tuples[0].extensions.push(format!(
        "<c:servcaps xmlns:c=\"{}\"><c:audio>true</c:audio></c:servcaps>",
        ns::CAPS
    ));
    p.notes.push(Note::new("at work"));
    let doc = Document::Full(FullState {
        version: 567,
        presence: p,
    });
    let xml = encode(&doc).unwrap();
    assert!(xml.contains("<p:pidf-full "), "{xml}");
    assert!(xml.contains("version=\"567\""), "{xml}");
    assert!(xml.contains("entity=\"pres:alice@example.com\""), "{xml}");
    assert_eq!(parse(xml.as_bytes()).unwrap(), doc);
}

/// RFC 5262 s3.1 example shape: a `<pidf-full>` written by another implementation,
/// with foreign elements inside the tuple status.
#[test]
fn rfc5262_s3_1_foreign_full_state() {
    let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<p:pidf-full xmlns="urn:ietf:params:xml:ns:pidf" xmlns:p="urn:ietf:params:xml:ns:pidf-diff"
    xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" entity="pres:someone@example.com" version="567">
  <tuple id="sg89ae"><status><basic>open</basic><r:relationship>assistant</r:relationship></status>
    <contact priority="0.8">tel:09012345678</contact></tuple>
  <note xml:lang="en">Full state</note>
</p:pidf-full>"#;
    let Document::Full(f) = parse(doc).unwrap() else {
        panic!("not full state")
    };
    assert_eq!(f.version, 567);
    assert_eq!(f.presence.tuples[0].id, "sg89ae");
    assert_eq!(f.presence.tuples[0].status_extensions.len(), 1);
    let again = encode(&Document::Full(f.clone())).unwrap();
    assert_eq!(parse(again.as_bytes()).unwrap(), Document::Full(f));
}

/// RFC 5262 s3.2 / RFC 5261 s4.3-s4.5: a diff with the three operations, content kept
/// as an element tree (unknown elements included) and text content kept.
#[test]
fn rfc5262_s3_2_diff_document_roundtrip() {
    let doc = br#"<p:pidf-diff xmlns="urn:ietf:params:xml:ns:pidf" xmlns:p="urn:ietf:params:xml:ns:pidf-diff"
    xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" entity="pres:someone@example.com" version="568">
 <p:add sel="presence/note" pos="before"><tuple id="ert4773"><status><basic>open</basic></status>
   <x:y xmlns:x="urn:example:unknown">kept</x:y></tuple></p:add>
 <p:replace sel="*/tuple[@id='r1awd']/status/basic/text()">closed</p:replace>
 <p:remove sel="*/r:person/r:activities/r:busy" ws="after"/>
</p:pidf-diff>"#;
    let Document::Diff(d) = parse(doc).unwrap() else {
        panic!("not a diff")
    };
    assert_eq!(d.version, 568);
    assert_eq!(d.entity, "pres:someone@example.com");
    assert_eq!(d.ops.len(), 3);
    assert!(
        matches!(&d.ops[0], PatchOp::Add { pos: Some(Pos::Before), content, .. }
        if matches!(&content[0], Node::Element(e) if e.to_xml().contains("urn:example:unknown")))
    );
    assert!(matches!(&d.ops[1], PatchOp::Replace { content, .. }
        if content == &vec![Node::Text("closed".into())]));
    assert!(matches!(&d.ops[2], PatchOp::Remove { ws: Some(w), .. } if w == "after"));
    // Bindings the document's elements use are kept for selectors (the reader keeps no
    // declarations, so `r`, used only inside a selector, is not among them).
    assert_eq!(
        d.prefixes,
        vec![("x".to_owned(), "urn:example:unknown".to_owned())]
    );
    let xml = encode(&Document::Diff(d.clone())).unwrap();
    assert_eq!(parse(xml.as_bytes()).unwrap(), Document::Diff(d));
}

#[test]
fn rfc5262_s3_bad_documents_are_named() {
    let missing =
        parse(br#"<pidf-diff xmlns="urn:ietf:params:xml:ns:pidf-diff" entity="pres:a@b"/>"#)
            .unwrap_err();
    assert!(
        matches!(
            missing,
            DocError::Missing {
                what: "attribute version",
                ..
            }
        ),
        "{missing}"
    );
    let bad = parse(
        br#"<pidf-full xmlns="urn:ietf:params:xml:ns:pidf-diff" entity="pres:a@b" version="-1"/>"#,
    )
    .unwrap_err();
    assert!(
        matches!(
            bad,
            DocError::Invalid {
                what: "version",
                ..
            }
        ),
        "{bad}"
    );
    let root = parse(br#"<presence xmlns="urn:ietf:params:xml:ns:pidf"/>"#).unwrap_err();
    assert!(matches!(root, DocError::WrongRoot { .. }), "{root}");
    let nosel = parse(br#"<pidf-diff xmlns="urn:ietf:params:xml:ns:pidf-diff" entity="pres:a@b" version="1"><remove/></pidf-diff>"#)
        .unwrap_err();
    assert!(
        matches!(
            nosel,
            DocError::Missing {
                what: "attribute sel",
                ..
            }
        ),
        "{nosel}"
    );
}

/// RFC 5262 s3.2: a changed tuple is one `<replace>` addressed by its id, and applying
/// it gives the new document.
#[test]
fn rfc5262_s3_2_changed_tuple_is_replace() {
    let old = base();
    let mut new = base();
    new.tuples[1].basic = Some(Basic::Open);
    let d = roundtrip(&old, &new);
    assert_eq!(d.ops.len(), 1);
    assert!(matches!(&d.ops[0], PatchOp::Replace { sel, .. } if sel == "*/tuple[@id='t2']"));
}

/// RFC 5261 s4.3 add (next to its neighbour), s4.5 remove, on tuples, the person and
/// devices.
#[test]
fn rfc5261_add_replace_remove_by_id() {
    let old = base();
    let mut new = base();
    new.tuples.remove(0);
    new.tuples
        .insert(0, tuple("t0", Basic::Open, "xmpp:alice@example.org/home"));
    new.tuples
        .push(tuple("t3", Basic::Closed, "sip:alice@tab.example.com"));
    new.person.as_mut().unwrap().activities = vec![Activity::Away];
    new.devices.push(Device {
        id: "d2".into(),
        device_id: Some("urn:uuid:5bd3bd5c-0b6e-4b23-bb1a-3c2a0e5bbd2e".into()),
        ..Device::default()
    });
    let d = roundtrip(&old, &new);
    let kinds: Vec<&str> = d
        .ops
        .iter()
        .map(|o| match o {
            PatchOp::Add { .. } => "add",
            PatchOp::Replace { .. } => "replace",
            PatchOp::Remove { .. } => "remove",
        })
        .collect();
    assert_eq!(kinds, ["remove", "replace", "add", "add", "add"]);
    assert!(
        matches!(&d.ops[2], PatchOp::Add { sel, pos: Some(Pos::Before), .. } if sel == "*/tuple[@id='t2']")
    );
    assert!(
        matches!(&d.ops[3], PatchOp::Add { sel, pos: Some(Pos::After), .. } if sel == "*/tuple[@id='t2']")
    );
    assert!(
        matches!(&d.ops[4], PatchOp::Add { sel, pos: Some(Pos::After), .. } if sel == "*/dm:device[@id='d1']")
    );

    // Person gone, then back with another id; all tuples replaced by new ones.
    let mut gone = base();
    gone.person = None;
    roundtrip(&old, &gone);
    let mut other = base();
    other.person.as_mut().unwrap().id = "p2".into();
    other.tuples = vec![
        tuple("n1", Basic::Open, "sip:a@x"),
        tuple("n2", Basic::Open, "sip:a@y"),
    ];
    let d = roundtrip(&old, &other);
    assert!(d
        .ops
        .iter()
        .any(|o| matches!(o, PatchOp::Add { sel, pos: Some(Pos::Before), .. } if sel == "*/*[1]")));
    // From nothing at all.
    let empty = Presence {
        entity: old.entity.clone(),
        ..Presence::default()
    };
    roundtrip(&empty, &old);
    roundtrip(&old, &empty);
}

#[test]
fn rfc5262_unchanged_is_empty_and_unaddressable_changes_need_full_state() {
    let old = base();
    assert_eq!(diff(&old, &old).unwrap(), Some(vec![]));
    let mut notes = base();
    notes.notes.push(Note::new("new presentity note"));
    assert_eq!(diff(&old, &notes).unwrap(), None);
    let mut reordered = base();
    reordered.tuples.reverse();
    assert_eq!(diff(&old, &reordered).unwrap(), None);
    let mut entity = base();
    entity.entity = Some(Address::parse("pres:bob@example.com").unwrap());
    assert_eq!(diff(&old, &entity).unwrap(), None);
}

#[test]
fn rfc5261_apply_refuses_what_it_cannot_do() {
    let old = base();
    let d = |op: PatchOp| Diff {
        entity: "pres:alice@example.com".into(),
        version: 1,
        ops: vec![op],
        prefixes: vec![],
    };
    let e = apply(
        &old,
        &d(PatchOp::Remove {
            sel: "*/tuple[@id='nope']".into(),
            ws: None,
        }),
    )
    .unwrap_err();
    assert_eq!(e, PatchError::NoMatch("*/tuple[@id='nope']".into()));
    let e = apply(
        &old,
        &d(PatchOp::Replace {
            sel: "*/tuple[@id='t1']/status/basic/text()".into(),
            content: vec![Node::Text("closed".into())],
        }),
    )
    .unwrap_err();
    assert!(matches!(e, PatchError::UnsupportedSelector(_)), "{e}");
    // A prefix bound to another namespace does not select a data-model element.
    let mut wrong = d(PatchOp::Remove {
        sel: "*/x:person[@id='p1']".into(),
        ws: None,
    });
    wrong
        .prefixes
        .push(("x".into(), "urn:example:other".into()));
    assert!(apply(&old, &wrong).is_err());
}

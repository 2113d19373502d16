use super::*;
use crate::presence::{Activity, Device, Note, Person, Tuple};

fn doc(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter" package="presence">
  <ns-bindings>
    <ns-binding prefix="pidf" urn="urn:ietf:params:xml:ns:pidf"/>
    <ns-binding prefix="dm" urn="urn:ietf:params:xml:ns:pidf:data-model"/>
    <ns-binding prefix="rpid" urn="urn:ietf:params:xml:ns:pidf:rpid"/>
    <ns-binding prefix="x" urn="urn:example:unknown"/>
  </ns-bindings>
  {body}
</filter-set>"#
    )
}

fn compile(body: &str) -> Result<Compiled, FilterError> {
    parse(doc(body).as_bytes())?.compile("presence")
}

fn presence() -> Presence {
    Presence {
        tuples: vec![
            Tuple {
                id: "t1".into(),
                basic: Some(Basic::Open),
                device_id: Some("urn:x-mac:0003ba4811e3".into()),
                extensions: vec![format!(
                    "<c:servcaps xmlns:c=\"{}\"><c:audio>true</c:audio></c:servcaps>",
                    ns::CAPS
                )],
                ..Tuple::default()
            },
            Tuple {
                id: "t2".into(),
                basic: Some(Basic::Closed),
                ..Tuple::default()
            },
        ],
        notes: vec![Note::new("presentity note")],
        person: Some(Person {
            id: "p1".into(),
            activities: vec![Activity::Busy],
            extensions: vec![format!(
                "<c:homepage xmlns:c=\"{}\">http://example.com</c:homepage>",
                ns::CIPID
            )],
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

/// RFC 4661 s3: the document model, attributes and defaults.
#[test]
fn rfc4661_s3_document_is_read() {
    let set = parse(
        doc(r#"<filter id="f1" uri="sip:alice@example.com" enabled="false">
      <what><include type="namespace">urn:ietf:params:xml:ns:pidf:rpid</include>
            <exclude>/pidf:presence/pidf:note</exclude></what>
      <trigger><changed from="open" to="closed">/pidf:presence/pidf:tuple/pidf:status/pidf:basic</changed></trigger>
    </filter>
    <filter id="f0" remove="true"/>"#)
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(set.package.as_deref(), Some("presence"));
    assert_eq!(set.ns_bindings.len(), 4);
    let f = &set.filters[0];
    assert_eq!(
        (f.id.as_deref(), f.uri.as_deref()),
        (Some("f1"), Some("sip:alice@example.com"))
    );
    assert!(!f.enabled && !f.remove);
    let w = f.what.as_ref().unwrap();
    assert_eq!(w.include, vec![Selector::Namespace(ns::RPID.into())]);
    assert_eq!(
        w.exclude,
        vec![Selector::Path("/pidf:presence/pidf:note".into())]
    );
    assert_eq!(
        f.triggers[0].conditions,
        vec![Condition::Changed {
            path: "/pidf:presence/pidf:tuple/pidf:status/pidf:basic".into(),
            from: Some("open".into()),
            to: Some("closed".into()),
            by: None,
        }]
    );
    assert!(set.filters[1].remove);
}

/// RFC 4660 s3.3: a malformed document is 400, an unknown namespace (in
/// `<include type="namespace">`, in a path, as a filter element) and an unsupported
/// feature are 488, a filter-set for another package is 489.
#[test]
fn rfc4660_s3_3_errors_and_their_status() {
    let st = |r: Result<Compiled, FilterError>| r.unwrap_err().status().0;
    assert_eq!(st(parse(b"<filter-set").map(|_| Compiled::default())), 400);
    assert_eq!(
        st(
            parse(b"<other xmlns='urn:ietf:params:xml:ns:simple-filter'/>")
                .map(|_| Compiled::default())
        ),
        400
    );
    assert_eq!(
        st(compile(
            r#"<filter><what><include>/q:presence/q:tuple</include></what></filter>"#
        )),
        400
    );
    let unknown = compile(
        r#"<filter><what><include type="namespace">urn:example:unknown</include></what></filter>"#,
    );
    assert_eq!(
        unknown,
        Err(FilterError::UnknownNamespace("urn:example:unknown".into()))
    );
    assert_eq!(st(unknown), 488);
    assert_eq!(
        st(compile(
            r#"<filter><what><include>/pidf:presence/x:thing</include></what></filter>"#
        )),
        488
    );
    assert_eq!(
        st(compile(
            r#"<filter><x:extension xmlns:x="urn:example:unknown"/></filter>"#
        )),
        488
    );
    assert_eq!(
        st(compile(
            r#"<filter><what><include>/pidf:presence/pidf:tuple[pidf:contact='sip:a@b']</include></what></filter>"#
        )),
        488
    );
    assert_eq!(
        st(compile(
            r#"<filter><trigger><changed by="1">/pidf:presence/pidf:tuple/pidf:status/pidf:basic</changed></trigger></filter>"#
        )),
        488
    );
    assert_eq!(
        st(compile(
            r#"<filter><what><exclude type="namespace">urn:ietf:params:xml:ns:pidf</exclude></what></filter>"#
        )),
        488
    );
    let other =
        parse(b"<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter' package='dialog'/>")
            .unwrap()
            .compile("presence");
    assert_eq!(st(other), 489);
    assert!(parse(&vec![b' '; 20 * 1024]).is_err());
}

/// RFC 4661 s3.4: `<include type="namespace">` keeps PIDF and that namespace only.
#[test]
fn rfc4661_s3_4_include_namespace() {
    let c = compile(r#"<filter><what><include type="namespace">urn:ietf:params:xml:ns:pidf:caps</include></what></filter>"#)
        .unwrap();
    let out = c.apply(&presence());
    assert_eq!(out.tuples.len(), 2);
    assert_eq!(out.tuples[0].extensions.len(), 1, "caps kept");
    assert_eq!(out.tuples[0].device_id, None, "data model dropped");
    assert!(out.person.is_none() && out.devices.is_empty());
    assert_eq!(out.notes, presence().notes);
}

/// RFC 4661 s3.4: `<exclude type="namespace">` of RPID drops the activities only.
#[test]
fn rfc4661_s3_4_exclude_namespace() {
    let c = compile(r#"<filter><what><exclude type="namespace">urn:ietf:params:xml:ns:pidf:rpid</exclude></what></filter>"#)
        .unwrap();
    let out = c.apply(&presence());
    let person = out.person.unwrap();
    assert!(person.activities.is_empty());
    assert_eq!(person.extensions.len(), 1, "CIPID kept");
    assert_eq!(out.devices.len(), 1);
}

/// RFC 4661 s3.4: element selection by path: one tuple by id, no notes.
#[test]
fn rfc4661_s3_4_include_paths() {
    let c = compile(
        r#"<filter><what><include>/pidf:presence/pidf:tuple[@id='t2']</include>
        <include>/pidf:presence/dm:person</include></what></filter>"#,
    )
    .unwrap();
    let out = c.apply(&presence());
    assert_eq!(
        out.tuples.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t2"]
    );
    assert!(out.notes.is_empty() && out.devices.is_empty());
    assert!(out.person.is_some());
    let ex =
        compile(r#"<filter><what><exclude>/pidf:presence/pidf:note</exclude></what></filter>"#)
            .unwrap();
    let out = ex.apply(&presence());
    assert!(out.notes.is_empty());
    assert_eq!(out.tuples.len(), 2);
}

/// RFC 4661 s3.5: `<changed>` on basic status, with `from`/`to`; `<added>`.
#[test]
fn rfc4661_s3_5_triggers() {
    let c = compile(r#"<filter><trigger><changed to="open">/pidf:presence/pidf:tuple/pidf:status/pidf:basic</changed></trigger>
        <trigger><added>/pidf:presence/pidf:tuple</added></trigger></filter>"#)
    .unwrap();
    let old = presence();
    assert!(c.triggered(None, &old), "first state always goes");
    let mut note_only = old.clone();
    note_only.notes.push(Note::new("changed note"));
    assert!(!c.triggered(Some(&old), &note_only));
    let mut closed = old.clone();
    closed.tuples[0].basic = Some(Basic::Closed);
    assert!(!c.triggered(Some(&old), &closed), "to=open not met");
    let mut opened = old.clone();
    opened.tuples[1].basic = Some(Basic::Open);
    assert!(c.triggered(Some(&old), &opened));
    let mut added = old.clone();
    added.tuples.push(Tuple {
        id: "t3".into(),
        ..Tuple::default()
    });
    assert!(c.triggered(Some(&old), &added));
    let none = compile(r#"<filter id="f" enabled="false"><trigger><added>/pidf:presence/pidf:tuple</added></trigger></filter>"#)
        .unwrap();
    assert!(none.is_empty());
    assert!(none.triggered(Some(&old), &note_only));
    let act = compile(r#"<filter><trigger><changed>/pidf:presence/dm:person/rpid:activities</changed></trigger></filter>"#)
        .unwrap();
    let mut away = old.clone();
    away.person.as_mut().unwrap().activities = vec![Activity::Away];
    assert!(act.triggered(Some(&old), &away));
    assert!(!act.triggered(Some(&old), &closed));
}

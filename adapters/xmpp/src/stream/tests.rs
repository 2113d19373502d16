//! Tests of the stream parser.

use super::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='sip.xmpp.test' id='abc'>";

fn run(input: &[u8], chunk: usize) -> Vec<Result<StreamEvent, StreamError>> {
    let mut p = StreamParser::default();
    let mut out = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        p.feed(c);
        while let Some(e) = p.next_event() {
            out.push(e);
        }
    }
    out
}

#[test]
fn header_stanzas_and_end_in_any_chunking() {
    let doc = format!(
        "{HEADER} <message to='a@b' id='1'><body>x &amp; y &#x263A;</body><x xmlns='jabber:x:oob'><![CDATA[<raw>]]></x></message>\n<handshake/></stream:stream>"
    );
    let whole = run(doc.as_bytes(), doc.len());
    for chunk in [1, 2, 3, 7, 64] {
        assert_eq!(run(doc.as_bytes(), chunk), whole, "chunk {chunk}");
    }
    assert_eq!(whole.len(), 4);
    let Ok(StreamEvent::Header(h)) = &whole[0] else {
        panic!("{whole:?}")
    };
    assert_eq!(h.default_ns, "jabber:component:accept");
    assert_eq!(h.attr("id"), Some("abc"));
    let Ok(StreamEvent::Stanza(m)) = &whole[1] else {
        panic!()
    };
    assert!(m.is("jabber:component:accept", "message"));
    assert_eq!(
        m.child("jabber:component:accept", "body").unwrap().text(),
        "x & y \u{263A}"
    );
    assert_eq!(m.child("jabber:x:oob", "x").unwrap().text(), "<raw>");
    assert_eq!(whole[3], Ok(StreamEvent::End));
}

#[test]
fn prefixed_children_resolve_through_the_header() {
    let doc = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'><db:result from='a' to='b'>k</db:result><stream:features/>";
    let ev = run(doc.as_bytes(), 1);
    let Ok(StreamEvent::Stanza(r)) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert!(r.is("jabber:server:dialback", "result"));
    let Ok(StreamEvent::Stanza(f)) = &ev[2] else {
        panic!()
    };
    assert!(f.is(ns::STREAM, "features"));
}

#[test]
fn restricted_xml_is_refused() {
    for bad in [
        "<!DOCTYPE x [<!ENTITY a 'b'>]>",
        "<!-- hi -->",
        "<message><body>&ent;</body></message>",
        "<?php x?>",
        // Found by the fuzzer: `<?>` once panicked the scanner.
        "<message><body>hi<?>/body></message>",
    ] {
        let doc = format!("{HEADER}{bad}");
        let ev = run(doc.as_bytes(), 1);
        let err = ev.into_iter().find_map(|e| e.err()).expect(bad);
        assert!(matches!(err, StreamError::Restricted(_)), "{bad}: {err:?}");
    }
}

#[test]
fn malformed_input_errors() {
    for bad in [
        "<a></b>",
        "<a x='1' x='2'/>",
        "<a x=1/>",
        "<p:a/>",
        "<a>&#0;</a>",
        "<a>\u{1}</a>",
        "text",
        "<a b='<'/>",
    ] {
        let doc = format!("{HEADER}{bad}<z/>");
        let ev = run(doc.as_bytes(), 3);
        assert!(ev.iter().any(|e| e.is_err()), "{bad}: {ev:?}");
    }
    let ev = run(b"<html>", 1);
    assert!(matches!(ev[0], Err(StreamError::BadHeader(_))));
}

#[test]
fn limits_are_enforced() {
    let mut p = StreamParser::new(Limits {
        max_stanza_bytes: 300,
        max_depth: 3,
        max_attributes: 4,
    });
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Some(Ok(StreamEvent::Header(_)))));
    p.feed(b"<a><b><c><d/></c></b></a>");
    assert!(matches!(
        p.next_event(),
        Some(Err(StreamError::TooLarge(_)))
    ));
    let mut p = StreamParser::new(Limits {
        max_stanza_bytes: 300,
        max_depth: 3,
        max_attributes: 4,
    });
    p.feed(HEADER.as_bytes());
    let _ = p.next_event();
    p.feed(b"<message>");
    for _ in 0..40 {
        p.feed(b"0123456789");
    }
    let mut saw = false;
    while let Some(e) = p.next_event() {
        saw |= matches!(e, Err(StreamError::TooLarge(_)));
    }
    assert!(saw);
}

#[test]
fn whitespace_keepalives_between_stanzas_are_ignored() {
    let doc = format!("{HEADER} \n <a/>  \t <b/> ");
    let ev = run(doc.as_bytes(), 1);
    assert_eq!(ev.len(), 3);
    assert!(ev.iter().all(|e| e.is_ok()));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Element> {
        (
            prop::sample::select(vec!["message", "body", "x", "item", "a-b.c"]),
            prop::sample::select(vec!["jabber:client", "urn:x", "urn:y:z"]),
            prop::collection::vec(("[a-z]{1,6}", "\\PC{0,12}"), 0..3),
        )
            .prop_map(|(name, ns, attrs)| {
                let mut e = Element {
                    ns: ns.to_owned(),
                    prefix: None,
                    name: name.to_owned(),
                    attrs: Vec::new(),
                    children: Vec::new(),
                };
                for (n, v) in attrs {
                    if !e.attrs.iter().any(|a| a.name == n) {
                        e.attrs.push(Attribute {
                            ns: String::new(),
                            prefix: None,
                            name: n,
                            value: v,
                        });
                    }
                }
                e
            })
    }

    fn tree() -> impl Strategy<Value = Element> {
        leaf().prop_recursive(4, 24, 4, |inner| {
            (
                leaf(),
                prop::collection::vec(
                    prop_oneof![
                        inner.prop_map(Node::Element),
                        "\\PC{1,10}".prop_map(Node::Text),
                    ],
                    0..4,
                ),
            )
                .prop_map(|(mut e, kids)| {
                    for k in kids {
                        let merge = matches!(
                            (&k, e.children.last()),
                            (Node::Text(_), Some(Node::Text(_)))
                        );
                        if merge {
                            if let (Node::Text(t), Some(Node::Text(prev))) =
                                (&k, e.children.last_mut())
                            {
                                prev.push_str(t);
                            }
                        } else {
                            e.children.push(k);
                        }
                    }
                    e
                })
        })
    }

    proptest! {
        /// Writer -> stream parser is the identity on element trees, in any chunking.
        #[test]
        fn written_trees_parse_back(e in tree(), chunk in 1usize..40) {
            let valid = |s: &str| s.chars().all(is_xml_char);
            fn all_valid(e: &Element, f: &dyn Fn(&str) -> bool) -> bool {
                e.attrs.iter().all(|a| f(&a.value)) && e.children.iter().all(|c| match c {
                    Node::Element(x) => all_valid(x, f),
                    Node::Text(t) => f(t),
                })
            }
            prop_assume!(all_valid(&e, &valid));
            let doc = format!("{HEADER}{}", e.to_xml());
            let ev = run(doc.as_bytes(), chunk);
            prop_assert_eq!(ev.len(), 2, "{:?}", ev);
            prop_assert_eq!(&ev[1], &Ok(StreamEvent::Stanza(e)));
        }

        /// Arbitrary bytes never panic, and chunking never changes the outcome.
        #[test]
        fn arbitrary_bytes_are_handled(data in prop::collection::vec(any::<u8>(), 0..300), chunk in 1usize..16) {
            let mut doc = HEADER.as_bytes().to_vec();
            doc.extend_from_slice(&data);
            prop_assert_eq!(run(&doc, chunk), run(&doc, doc.len().max(1)));
        }
    }
}

/// Feeds `body` one byte per read after the header, checking as it goes that the
/// tokenizer's work stays linear (at most 4 bytes examined per byte received), and
/// returns the events.
fn drip_linear(limits: Limits, body: &[u8]) -> Vec<Result<StreamEvent, StreamError>> {
    let mut p = StreamParser::new(limits);
    p.feed(HEADER.as_bytes());
    assert!(matches!(p.next_event(), Some(Ok(StreamEvent::Header(_)))));
    let mut out = Vec::new();
    let base = p.bytes_scanned();
    for (i, b) in body.iter().enumerate() {
        p.feed(std::slice::from_ref(b));
        while let Some(e) = p.next_event() {
            out.push(e);
        }
        if i % 4096 == 0 || i + 1 == body.len() {
            let work = p.bytes_scanned() - base;
            assert!(
                work <= 4 * (i as u64 + 1),
                "{work} bytes examined after {} bytes received: rescanning",
                i + 1
            );
        }
    }
    out
}

/// The quadratic-scan attack: a 1 MB start tag (and 1 MB of text, and a 1 MB
/// CDATA section) dripped one byte per read costs linear work.
#[test]
fn a_megabyte_token_dripped_byte_by_byte_costs_linear_work() {
    let limits = Limits {
        max_stanza_bytes: 4 << 20,
        ..Limits::default()
    };
    let mb = "v".repeat(1 << 20);
    let doc = format!(
        "<message to='a@b' x='{mb}' y=\"a>b\"><body>{mb}</body><x xmlns='urn:x'><![CDATA[{mb}]]></x></message>"
    );
    let ev = drip_linear(limits, doc.as_bytes());
    assert_eq!(
        ev.len(),
        1,
        "{:?}",
        ev.iter().map(|e| e.is_ok()).collect::<Vec<_>>()
    );
    let Ok(StreamEvent::Stanza(m)) = &ev[0] else {
        panic!("{:?}", ev[0].as_ref().err())
    };
    assert_eq!(m.attr("x").map(str::len), Some(1 << 20));
    assert_eq!(m.attr("y"), Some("a>b"));
}

/// RFC 6120 s4.9.3.12 policy-violation: a start tag that never ends is refused once the
/// bytes buffered for it pass `max_stanza_bytes`, not buffered forever.
#[test]
fn an_unfinished_start_tag_over_the_limit_is_refused_with_policy_violation() {
    let limits = Limits::default();
    let mut body = b"<message to='a@b' x='".to_vec();
    body.resize(limits.max_stanza_bytes + 2, b'v');
    let ev = drip_linear(limits, &body);
    assert_eq!(ev.len(), 1);
    let Err(e) = &ev[0] else { panic!("{ev:?}") };
    assert!(matches!(e, StreamError::TooLarge(_)), "{e:?}");
    assert_eq!(e.condition(), "policy-violation");
    // And at the top level, before any stanza: the same.
    let mut p = StreamParser::new(limits);
    p.feed(HEADER.as_bytes());
    let _ = p.next_event();
    let chunk = vec![b' '; 1024];
    p.feed(b"<message x='");
    let mut fed = 0;
    let err = loop {
        p.feed(&chunk);
        fed += chunk.len();
        if let Some(r) = p.next_event() {
            break r;
        }
        assert!(
            fed <= limits.max_stanza_bytes + chunk.len(),
            "still buffering"
        );
    };
    assert!(matches!(err, Err(StreamError::TooLarge(_))), "{err:?}");
}

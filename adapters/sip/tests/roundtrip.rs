//! Property: build -> serialize -> parse gives back the same fields, and serialising the
//! parsed message again gives the same bytes (RFC 3261 s7 wire form is stable).

use bytes::Bytes;
use cpim_sip::codec::{HeaderName, Method, Request, Response, SipMessage};
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,12}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,8}){0,3}",
        any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn uri() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop::option::of("[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,12}"),
            host(),
            prop::option::of(1u16..),
            prop::option::of("[a-z0-9-]{1,8}(=[a-z0-9.]{1,6})?")
        )
            .prop_map(|(u, h, p, param)| {
                let mut s = String::from("sip:");
                if let Some(u) = u {
                    s.push_str(&u);
                    s.push('@');
                }
                s.push_str(&h);
                if let Some(p) = p {
                    s.push_str(&format!(":{p}"));
                }
                if let Some(param) = param {
                    s.push_str(&format!(";{param}"));
                }
                s
            }),
        "\\+?[0-9]{3,15}".prop_map(|n| format!("tel:{n}")),
    ]
}

fn display() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        "[a-zA-Z]{1,8}( [a-zA-Z]{1,8}){0,2}",
        "[ -!#-\\[\\]-~\u{e9}\u{4e2d}]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "[a-z]{0,4}".prop_map(|s| format!("\"{s}\\\"\\\\\"")),
    ])
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Message),
        Just(Method::Options),
        Just(Method::Register),
        Just(Method::Subscribe),
        Just(Method::Notify),
        Just(Method::Publish),
        "[A-Z][A-Z_-]{2,10}".prop_map(|m| Method::parse(&m)),
    ]
}

fn name_addr(d: &Option<String>, u: &str, tag: &str) -> String {
    match d {
        Some(d) => format!("{d} <{u}>;tag={tag}"),
        None => format!("<{u}>;tag={tag}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn request_round_trip(
        m in method(),
        ruri in uri(),
        from_d in display(),
        from_u in uri(),
        to_u in uri(),
        tag in token(),
        call_id in "[a-zA-Z0-9.!%*_+`'~()<>:\\\\\"/\\[\\]?{}-]{1,20}(@[a-z0-9.]{1,10})?",
        seq in any::<u32>(),
        vias in prop::collection::vec((host(), prop::option::of(1u16..), token()), 1..4),
        ext in prop::collection::vec(("X-[A-Za-z]{1,8}", "[ -~]{0,30}"), 0..4),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let via_line = vias
            .iter()
            .map(|(h, p, b)| match p {
                Some(p) => format!("SIP/2.0/UDP {h}:{p};branch=z9hG4bK{b}"),
                None => format!("SIP/2.0/TCP {h};branch=z9hG4bK{b}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut b = Request::builder(&m, &ruri)
            .header(HeaderName::Via, &via_line)
            .header(HeaderName::From, &name_addr(&from_d, &from_u, &tag))
            .header(HeaderName::To, &format!("<{to_u}>"))
            .header(HeaderName::CallId, &call_id)
            .header(HeaderName::CSeq, &format!("{seq} {m}"))
            .header(HeaderName::MaxForwards, "70");
        for (n, v) in &ext {
            b = b.header(n.as_str(), v.trim());
        }
        let req = b.body("application/octet-stream", body.clone()).build_request().unwrap();
        let wire = req.to_bytes();
        let SipMessage::Request(back) = SipMessage::parse(wire.clone()).unwrap() else { panic!("kind") };
        prop_assert_eq!(back.method(), &m);
        prop_assert_eq!(back.uri_str(), ruri.as_str());
        prop_assert_eq!(back.call_id(), call_id.as_str());
        prop_assert_eq!(back.cseq().seq, seq);
        prop_assert_eq!(back.from_tag(), Some(tag.as_str()));
        prop_assert_eq!(back.from().unwrap().uri.raw, from_u.as_str());
        prop_assert_eq!(back.vias().count(), vias.len());
        for ((h, p, _), v) in vias.iter().zip(back.vias()) {
            prop_assert_eq!(&v.host.to_string(), h);
            prop_assert_eq!(v.port, *p);
        }
        for (n, v) in &ext {
            prop_assert!(back.header_all(HeaderName::Other).any(|x| x == v.trim()), "{} missing", n);
        }
        prop_assert_eq!(back.body().as_ref(), &body[..]);
        prop_assert_eq!(back.to_bytes(), wire);

        // and the response built from it
        let resp = Response::for_request(&back, 200, None).build_response().unwrap();
        let SipMessage::Response(r2) = SipMessage::parse(resp.to_bytes()).unwrap() else { panic!("kind") };
        prop_assert_eq!(r2.code(), 200);
        prop_assert_eq!(r2.call_id(), call_id.as_str());
        prop_assert_eq!(r2.vias().count(), vias.len());
        prop_assert!(r2.to_tag().is_some());
    }

    /// Arbitrary bytes never panic the parser, and whatever parses re-serialises into
    /// something that parses to the same start line and Call-ID.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(m) = SipMessage::parse(Bytes::from(data)) {
            let again = SipMessage::parse(m.to_bytes()).unwrap();
            prop_assert_eq!(again.parts().call_id(), m.parts().call_id());
        }
    }
}

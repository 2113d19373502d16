//! Tests of the s2s state machines (outgoing and incoming, against each other).

use super::*;
use crate::ns::SASL as NS_SASL;

pub(super) fn drain_out(o: &mut S2sOut) -> String {
    let mut s = Vec::new();
    while let Some(b) = o.poll_transmit() {
        s.extend(b);
    }
    String::from_utf8(s).unwrap()
}
pub(super) fn drain_in(o: &mut S2sIn) -> String {
    let mut s = Vec::new();
    while let Some(b) = o.poll_transmit() {
        s.extend(b);
    }
    String::from_utf8(s).unwrap()
}

#[test]
fn xep0185_key_is_deterministic_and_bound_to_all_inputs() {
    let k = dialback_key(
        "s3cr3tf0rd14lb4ck",
        "example.net",
        "example.com",
        "D60000229F",
    );
    assert_eq!(k.len(), 64);
    assert_eq!(
        k,
        dialback_key(
            "s3cr3tf0rd14lb4ck",
            "example.net",
            "example.com",
            "D60000229F"
        )
    );
    assert_ne!(
        k,
        dialback_key(
            "s3cr3tf0rd14lb4ck",
            "example.net",
            "example.com",
            "D60000229G"
        )
    );
    assert_ne!(
        k,
        dialback_key("other", "example.net", "example.com", "D60000229F")
    );
    // The inputs of the XEP-0185 example script (xmpp.org wiki), value computed with
    // Python's hmac/hashlib as an independent implementation.
    assert_eq!(
        dialback_key(
            "s3cr3tf0rd14lb4ck",
            "domain2.tld",
            "domain1.tld",
            "D60000229F"
        ),
        "5e598fae34b90be084fb6a4a8a543ceb33549140bac9d829ef8d734d900616e4"
    );
}

/// Two of our own sessions talk to each other (memory transport, TLS skipped by not
/// offering it): outgoing dialback against incoming, verified by a second pair in
/// the authoritative role; then a bad key is refused.
#[test]
fn dialback_between_our_own_sessions_in_one_byte_chunks() {
    let now = Instant::now();
    let a_domains = vec!["a.test".to_string()];
    let b_domains = vec!["b.test".to_string()];
    let ka = Duration::from_secs(60);
    let mut out = S2sOut::new(
        "a.test",
        "b.test",
        "secret-a",
        false,
        Limits::default(),
        ka,
        now,
    );
    let mut inc = S2sIn::new(
        &b_domains,
        "secret-b",
        false,
        false,
        Limits::default(),
        ka,
        now,
    );
    out.start(now);
    let pump = |out: &mut S2sOut, inc: &mut S2sIn| {
        for _ in 0..10 {
            let o = drain_out(out);
            for c in o.as_bytes().chunks(1) {
                inc.handle_input(c, now);
            }
            let i = drain_in(inc);
            for c in i.as_bytes().chunks(1) {
                out.handle_input(c, now);
            }
            if o.is_empty() && i.is_empty() {
                break;
            }
        }
    };
    pump(&mut out, &mut inc);
    assert_eq!(out.state(), OutState::AwaitDialback);
    let Some(S2sEvent::VerifyKey {
        from,
        to,
        key,
        stream_id,
    }) = inc.poll_event()
    else {
        panic!()
    };
    assert_eq!((from.as_str(), to.as_str()), ("a.test", "b.test"));
    // b asks a (authoritative) through an incoming stream of a's.
    let mut auth = S2sIn::new(
        &a_domains,
        "secret-a",
        false,
        false,
        Limits::default(),
        ka,
        now,
    );
    auth.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='a.test' from='b.test' version='1.0'>", now);
    auth.handle_input(
        format!("<db:verify from='b.test' to='a.test' id='{stream_id}'>{key}</db:verify>")
            .as_bytes(),
        now,
    );
    let ans = drain_in(&mut auth);
    assert!(ans.contains("type=\"valid\""), "{ans}");
    auth.handle_input(
        format!(
            "<db:verify from='b.test' to='a.test' id='{stream_id}'>{}</db:verify>",
            "0".repeat(64)
        )
        .as_bytes(),
        now,
    );
    assert!(drain_in(&mut auth).contains("type=\"invalid\""));
    inc.verify_done(&from, &to, true, now);
    pump(&mut out, &mut inc);
    assert_eq!(
        out.poll_event(),
        Some(S2sEvent::Ready { method: "dialback" })
    );
    assert_eq!(
        inc.poll_event(),
        Some(S2sEvent::Authenticated {
            domain: "a.test".into()
        })
    );
    let msg = Element::build(NS_SERVER, "message")
        .attr_set("from", "x@a.test")
        .attr_set("to", "y@b.test")
        .child_add(Element::build(NS_SERVER, "body").text_add("hi"));
    out.send_stanza(&msg, now).unwrap();
    pump(&mut out, &mut inc);
    let Some(S2sEvent::Stanza(m)) = inc.poll_event() else {
        panic!()
    };
    assert_eq!(m.attr("to"), Some("y@b.test"));
}

#[test]
fn refused_dialback_closes_with_auth_failure_and_unauthenticated_stanzas_are_refused() {
    let now = Instant::now();
    let ka = Duration::from_secs(60);
    let mut out = S2sOut::new("a.test", "b.test", "k", false, Limits::default(), ka, now);
    out.start(now);
    out.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' id='i1' version='1.0'><stream:features/>", now);
    assert!(drain_out(&mut out).contains("<db:result from=\"a.test\" to=\"b.test\">"));
    out.handle_input(
        b"<db:result from='b.test' to='a.test' type='invalid'/>",
        now,
    );
    assert!(matches!(
        out.poll_event(),
        Some(S2sEvent::Closed(CloseReason::AuthFailed(_)))
    ));
    let b = vec!["b.test".to_string()];
    let mut inc = S2sIn::new(&b, "k", false, false, Limits::default(), ka, now);
    inc.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' from='evil.test' version='1.0'><message from='x@evil.test' to='y@b.test'/>", now);
    assert!(drain_in(&mut inc).contains("invalid-from"));
}

#[test]
fn starttls_is_negotiated_then_the_stream_restarts() {
    let now = Instant::now();
    let ka = Duration::from_secs(60);
    let b = vec!["b.test".to_string()];
    let mut out = S2sOut::new("a.test", "b.test", "k", true, Limits::default(), ka, now);
    let mut inc = S2sIn::new(&b, "k", true, true, Limits::default(), ka, now);
    out.start(now);
    inc.handle_input(drain_out(&mut out).as_bytes(), now);
    out.handle_input(drain_in(&mut inc).as_bytes(), now);
    assert_eq!(out.state(), OutState::AwaitProceed);
    inc.handle_input(drain_out(&mut out).as_bytes(), now);
    assert_eq!(inc.poll_event(), Some(S2sEvent::StartTls));
    out.handle_input(drain_in(&mut inc).as_bytes(), now);
    assert_eq!(out.poll_event(), Some(S2sEvent::StartTls));
    inc.tls_established();
    out.tls_established(now);
    inc.handle_input(drain_out(&mut out).as_bytes(), now);
    out.handle_input(drain_in(&mut inc).as_bytes(), now);
    assert!(out.is_tls() && inc.is_tls());
    assert_eq!(out.state(), OutState::AwaitDialback);
}

/// A ping after 30 s of silence, answered within 5 s.
const PING_30S_5S: Liveness = Liveness {
    ping_interval: Duration::from_secs(30),
    ping_timeout: Duration::from_secs(5),
};

/// An outgoing stream a.test -> b.test without TLS, with `liveness`, started at `now`.
fn started_out(now: Instant, liveness: Liveness) -> S2sOut {
    let mut out = S2sOut::new(
        "a.test",
        "b.test",
        "k",
        false,
        Limits::default(),
        Duration::from_secs(60),
        now,
    )
    .with_liveness(liveness);
    out.start(now);
    out
}

fn ready_out(now: Instant, liveness: Liveness) -> S2sOut {
    let mut out = started_out(now, liveness);
    out.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' id='i1' version='1.0'><stream:features/><db:result from='b.test' to='a.test' type='valid'/>", now);
    assert_eq!(out.state(), OutState::Ready);
    assert_eq!(
        out.poll_event(),
        Some(S2sEvent::Ready { method: "dialback" })
    );
    drain_out(&mut out);
    out
}

/// RFC 6120 s4.6 / XEP-0199 on an outgoing s2s stream, in virtual time: a ping after
/// `ping_interval` of silence, the stream declared dead when nothing answers within
/// `ping_timeout`, and an answer (seen on another stream) keeping it alive.
#[test]
fn outgoing_stream_pings_and_detects_a_dead_peer_in_virtual_time() {
    let t0 = Instant::now();
    let mut out = ready_out(t0, PING_30S_5S);
    assert_eq!(out.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    out.handle_timeout(t0 + Duration::from_secs(29));
    assert_eq!(drain_out(&mut out), "");
    let t1 = t0 + Duration::from_secs(30);
    out.handle_timeout(t1);
    let ping = drain_out(&mut out);
    assert!(
        ping.contains("urn:xmpp:ping") && ping.contains("to=\"b.test\""),
        "{ping}"
    );
    let id = ping
        .split("id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(out.is_own_ping(id));
    assert_eq!(out.poll_timeout(), Some(t1 + Duration::from_secs(5)));
    // The answer comes back on the peer's stream to us: the hub reports it.
    out.note_alive(t1 + Duration::from_secs(1));
    out.handle_timeout(t1 + Duration::from_secs(6));
    assert_eq!(out.state(), OutState::Ready);
    assert_eq!(out.poll_event(), None);
    // Next ping, no answer: dead, with a closing tag written.
    let t2 = t1 + Duration::from_secs(31);
    out.handle_timeout(t2);
    assert!(drain_out(&mut out).contains("urn:xmpp:ping"));
    out.handle_timeout(t2 + Duration::from_secs(5));
    assert!(matches!(
        out.poll_event(),
        Some(S2sEvent::Closed(CloseReason::Timeout(_)))
    ));
    assert_eq!(out.state(), OutState::Closed);
    assert!(drain_out(&mut out).ends_with("</stream:stream>"));
    assert_eq!(out.poll_timeout(), None);
}

#[test]
fn outgoing_stream_gives_up_on_a_peer_silent_during_negotiation() {
    let t0 = Instant::now();
    let mut out = started_out(t0, PING_30S_5S);
    assert_eq!(out.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    out.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='i1' version='1.0'>", t0 + Duration::from_secs(4));
    out.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(out.poll_event(), None);
    out.handle_timeout(t0 + Duration::from_secs(9));
    assert!(matches!(
        out.poll_event(),
        Some(S2sEvent::Closed(CloseReason::Timeout(_)))
    ));
}

/// RFC 6120 s4.9.3.4: an incoming stream without traffic is closed with
/// `<connection-timeout/>`; traffic (even whitespace) restarts the clock.
#[test]
fn idle_incoming_stream_is_closed_with_connection_timeout() {
    let t0 = Instant::now();
    let b = vec!["b.test".to_string()];
    let ka = Duration::from_secs(60);
    let mut inc = S2sIn::new(&b, "k", false, false, Limits::default(), ka, t0)
        .with_idle_timeout(Duration::from_secs(100));
    inc.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' from='a.test' version='1.0'>", t0);
    drain_in(&mut inc);
    inc.handle_input(b" ", t0 + Duration::from_secs(90));
    inc.handle_timeout(t0 + Duration::from_secs(100));
    assert_eq!(inc.poll_event(), None);
    assert_eq!(inc.poll_timeout(), Some(t0 + Duration::from_secs(190)));
    inc.handle_timeout(t0 + Duration::from_secs(190));
    let out = drain_in(&mut inc);
    assert!(
        out.contains("connection-timeout") && out.ends_with("</stream:stream>"),
        "{out}"
    );
    assert!(matches!(inc.poll_event(), Some(S2sEvent::Closed(_))));
    // Before any header: ours is written first, so the peer gets a well-formed stream.
    let mut silent = S2sIn::new(&b, "k", false, false, Limits::default(), ka, t0)
        .with_idle_timeout(Duration::from_secs(10));
    silent.handle_timeout(t0 + Duration::from_secs(10));
    let out = drain_in(&mut silent);
    assert!(
        out.starts_with("<?xml") && out.contains("connection-timeout"),
        "{out}"
    );
}

/// Deadlines of an incoming stream in virtual time, against a peer trickling one byte a
/// second (which resets any idle timer): the stream header must come within `open` and a
/// domain must be authenticated within `auth`, counted from the connection; then
/// `<connection-timeout/>` (RFC 6120 s4.9.3.4).
#[test]
fn incoming_deadlines_cut_a_trickling_peer_whatever_it_sends() {
    let t0 = Instant::now();
    let b = vec!["b.test".to_string()];
    let ka = Duration::from_secs(60);
    let mk = || {
        S2sIn::new(&b, "k", false, false, Limits::default(), ka, t0)
            .with_idle_timeout(Duration::from_secs(600))
            .with_deadlines(Some(Duration::from_secs(10)), Some(Duration::from_secs(30)))
    };
    // Drives `inc` one byte a second from `data` (then whitespace), firing due timers;
    // returns the second at which the stream closed.
    let trickle = |inc: &mut S2sIn, data: &[u8], upto: u64| -> Option<u64> {
        for sec in 1..=upto {
            let now = t0 + Duration::from_secs(sec);
            let byte = data.get(sec as usize - 1).copied().unwrap_or(b' ');
            inc.handle_input(&[byte], now);
            if inc.poll_timeout().is_some_and(|t| t <= now) {
                inc.handle_timeout(now);
            }
            while let Some(ev) = inc.poll_event() {
                if let S2sEvent::Closed(CloseReason::StreamError { condition, .. }) = ev {
                    assert_eq!(condition, "connection-timeout");
                    return Some(sec);
                }
            }
        }
        None
    };
    let hdr = b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' from='a.test' version='1.0'>";
    let mut slow_header = mk();
    assert_eq!(trickle(&mut slow_header, hdr, 100), Some(10));
    let out = drain_in(&mut slow_header);
    assert!(
        out.starts_with("<?xml") && out.contains("no stream header"),
        "{out}"
    );
    // Header at once, then whitespace keep-alives and no authentication.
    let mut unauth = mk();
    unauth.handle_input(hdr, t0);
    assert_eq!(trickle(&mut unauth, b"", 100), Some(30));
    assert!(drain_in(&mut unauth).contains("no domain authenticated"));
    // Authenticated in time: only the idle timer applies afterwards.
    let mut ok = mk();
    ok.handle_input(hdr, t0);
    ok.handle_input(
        b"<db:result xmlns:db='jabber:server:dialback' from='a.test' to='b.test'>k</db:result>",
        t0,
    );
    assert!(matches!(ok.poll_event(), Some(S2sEvent::VerifyKey { .. })));
    assert!(ok.verify_done("a.test", "b.test", true, t0 + Duration::from_secs(5)));
    assert_eq!(trickle(&mut ok, b"", 100), None);
    // A verdict for a pair the stream never asked for changes nothing.
    assert!(!ok.verify_done("c.test", "b.test", true, t0));
}

/// RFC 6120 s6.4 / XEP-0178 between our own sessions (TLS simulated): EXTERNAL is offered
/// only for a domain the peer's certificate is valid for, authorizes exactly the stream's
/// (from, to) pair, restarts the stream, and the outgoing side is ready without dialback.
#[test]
fn sasl_external_with_a_valid_certificate_and_refusals_without_one() {
    let now = Instant::now();
    let ka = Duration::from_secs(60);
    let b = vec!["b.test".to_string()];
    let run = |cert_domain: &'static str| {
        let mut out = S2sOut::new("a.test", "b.test", "k", true, Limits::default(), ka, now);
        let mut inc = S2sIn::new(&b, "k", true, true, Limits::default(), ka, now);
        out.start(now);
        let pump = |out: &mut S2sOut, inc: &mut S2sIn| {
            for _ in 0..10 {
                let o = drain_out(out);
                inc.handle_input(o.as_bytes(), now);
                let i = drain_in(inc);
                out.handle_input(i.as_bytes(), now);
                if o.is_empty() && i.is_empty() {
                    break;
                }
            }
        };
        pump(&mut out, &mut inc);
        assert_eq!(inc.poll_event(), Some(S2sEvent::StartTls));
        assert_eq!(out.poll_event(), Some(S2sEvent::StartTls));
        inc.tls_established_with_cert(Some(crate::s2s_in::PeerCert::new(move |d| {
            d == cert_domain
        })));
        out.tls_established(now);
        pump(&mut out, &mut inc);
        (out, inc)
    };
    let (mut out, mut inc) = run("a.test");
    assert_eq!(
        out.poll_event(),
        Some(S2sEvent::Ready {
            method: "sasl-external"
        })
    );
    assert_eq!(
        inc.poll_event(),
        Some(S2sEvent::Authenticated {
            domain: "a.test".into()
        })
    );
    assert_eq!(
        inc.authenticated().collect::<Vec<_>>(),
        vec![("a.test", "b.test")]
    );
    let msg = |from: &str, to: &str| {
        Element::build(NS_SERVER, "message")
            .attr_set("from", from)
            .attr_set("to", to)
    };
    out.send_stanza(&msg("x@a.test", "y@b.test"), now).unwrap();
    inc.handle_input(drain_out(&mut out).as_bytes(), now);
    assert!(matches!(inc.poll_event(), Some(S2sEvent::Stanza(_))));
    // Not valid for a.test: no EXTERNAL offered, dialback instead.
    let (out, _) = run("c.test");
    assert_eq!(out.state(), OutState::AwaitDialback);
    // A peer asking EXTERNAL for another domain than its stream's, or without a
    // certificate for it, gets a SASL failure and nothing authorized.
    let mut inc = S2sIn::new(&b, "k", true, true, Limits::default(), ka, now);
    inc.tls_established_with_cert(Some(crate::s2s_in::PeerCert::new(|d| d == "a.test")));
    inc.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' from='a.test' version='1.0'>", now);
    assert!(drain_in(&mut inc).contains("EXTERNAL"));
    inc.handle_input(
        format!(
            "<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{}</auth>",
            b64(b"c.test")
        )
        .as_bytes(),
        now,
    );
    assert!(drain_in(&mut inc).contains("invalid-authzid"));
    assert_eq!(inc.authenticated().count(), 0);
    let mut inc = S2sIn::new(&b, "k", true, true, Limits::default(), ka, now);
    inc.tls_established_with_cert(Some(crate::s2s_in::PeerCert::new(|d| d == "a.test")));
    inc.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='b.test' from='c.test' version='1.0'>", now);
    assert!(!drain_in(&mut inc).contains("EXTERNAL"));
    inc.handle_input(
        format!("<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>").as_bytes(),
        now,
    );
    assert!(drain_in(&mut inc).contains("not-authorized"));
    assert_eq!(inc.authenticated().count(), 0);
}

/// With TLS required nothing but STARTTLS is taken before TLS, not even a verification
/// request; and one stream may not have more than `MAX_PENDING_DIALBACK` dialback
/// requests waiting (each costs an outgoing connection).
#[test]
fn before_tls_nothing_but_starttls_and_pending_dialback_requests_are_capped() {
    let now = Instant::now();
    let ka = Duration::from_secs(60);
    let b = vec!["b.test".to_string()];
    let hdr = b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.test' from='a.test' version='1.0'>";
    let mut inc = S2sIn::new(&b, "k", true, true, Limits::default(), ka, now);
    inc.handle_input(hdr, now);
    inc.handle_input(
        b"<db:verify from='a.test' to='b.test' id='x'>00</db:verify>",
        now,
    );
    let out = drain_in(&mut inc);
    assert!(
        out.contains("policy-violation") && !out.contains("type=\"valid\""),
        "{out}"
    );

    let mut inc = S2sIn::new(&b, "k", false, false, Limits::default(), ka, now);
    inc.handle_input(hdr, now);
    let max = crate::s2s_in::MAX_PENDING_DIALBACK;
    for n in 0..max {
        inc.handle_input(
            format!("<db:result from='d{n}.test' to='b.test'>00</db:result>").as_bytes(),
            now,
        );
    }
    let mut asked = 0;
    while let Some(ev) = inc.poll_event() {
        assert!(matches!(ev, S2sEvent::VerifyKey { .. }), "{ev:?}");
        asked += 1;
    }
    assert_eq!(asked, max);
    inc.handle_input(
        b"<db:result from='one-more.test' to='b.test'>00</db:result>",
        now,
    );
    assert!(matches!(inc.poll_event(), Some(S2sEvent::Closed(_))));
    assert!(drain_in(&mut inc).contains("policy-violation"));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Pieces an attacker would send, in any order, cut anywhere.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.test' from='a.test' version='1.0'>".to_string()),
            Just("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_string()),
            Just("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>".to_string()),
            Just("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>YS50ZXN0</auth>".to_string()),
            Just("<db:result from='a.test' to='b.test'>00</db:result>".to_string()),
            Just("<db:result from='a.test' to='b.test' type='valid'/>".to_string()),
            Just("<db:verify from='a.test' to='b.test' id='x' type='valid'/>".to_string()),
            Just("<message from='x@a.test' to='y@b.test'><body>hi</body></message>".to_string()),
            Just("<iq from='a.test' to='b.test' type='result' id='1'/>".to_string()),
            Just("</stream:stream>".to_string()),
            "[ -~]{0,40}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        /// RFC 6120 s13: whatever a peer sends, in whatever chunks, nothing is
        /// authenticated and no stanza is delivered unless the authoritative server (or a
        /// certificate) said so; and no input panics the incoming stream.
        #[test]
        fn no_input_alone_authenticates_an_incoming_stream(
            pieces in prop::collection::vec(piece(), 1..12),
            cut in 1usize..64,
            tls in any::<bool>(),
        ) {
            let now = Instant::now();
            let b = vec!["b.test".to_string()];
            let mut inc = S2sIn::new(&b, "k", true, false, Limits::default(), Duration::from_secs(60), now);
            if tls {
                // TLS up, but the certificate is good for no one.
                inc.tls_established_with_cert(Some(crate::s2s_in::PeerCert::new(|_| false)));
            }
            let all = pieces.concat();
            for c in all.as_bytes().chunks(cut) {
                inc.handle_input(c, now);
                while let Some(ev) = inc.poll_event() {
                    prop_assert!(
                        !matches!(ev, S2sEvent::Authenticated { .. } | S2sEvent::Stanza(_)),
                        "{ev:?} from {all}"
                    );
                }
                drain_in(&mut inc);
            }
            prop_assert_eq!(inc.authenticated().count(), 0);
        }
    }
}

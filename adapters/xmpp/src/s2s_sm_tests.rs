//! XEP-0198 between our own outgoing and incoming s2s sessions (TLS simulated, SASL
//! EXTERNAL, as with Prosody, which offers stream management only after authentication).

use super::tests::{drain_in, drain_out};
use super::*;
use crate::s2s_in::PeerCert;

fn pump(out: &mut S2sOut, inc: &mut S2sIn, now: Instant) -> (String, String) {
    let (mut to_in, mut to_out) = (String::new(), String::new());
    for _ in 0..10 {
        let o = drain_out(out);
        inc.handle_input(o.as_bytes(), now);
        let i = drain_in(inc);
        out.handle_input(i.as_bytes(), now);
        to_in.push_str(&o);
        to_out.push_str(&i);
        if o.is_empty() && i.is_empty() {
            break;
        }
    }
    (to_in, to_out)
}

/// A ready pair over SASL EXTERNAL (`external`) or dialback-less plain features.
fn ready_pair(now: Instant) -> (S2sOut, S2sIn) {
    let ka = Duration::from_secs(60);
    let b = vec!["b.test".to_string()];
    let mut out = S2sOut::new("a.test", "b.test", "k", true, Limits::default(), ka, now);
    let mut inc = S2sIn::new(&b, "k", true, true, Limits::default(), ka, now);
    out.start(now);
    pump(&mut out, &mut inc, now);
    assert_eq!(inc.poll_event(), Some(S2sEvent::StartTls));
    assert_eq!(out.poll_event(), Some(S2sEvent::StartTls));
    inc.tls_established_with_cert(Some(PeerCert::new(|d| d == "a.test")));
    out.tls_established(now);
    let (to_in, to_out) = pump(&mut out, &mut inc, now);
    assert!(to_out.contains("<sm xmlns='urn:xmpp:sm:3'>"), "{to_out}");
    assert!(
        to_in.contains("<enable xmlns=\"urn:xmpp:sm:3\"/>"),
        "{to_in}"
    );
    assert!(
        to_out.contains("<enabled xmlns=\"urn:xmpp:sm:3\"/>"),
        "{to_out}"
    );
    assert_eq!(
        out.poll_event(),
        Some(S2sEvent::Ready {
            method: "sasl-external"
        })
    );
    while inc.poll_event().is_some() {}
    (out, inc)
}

fn msg(n: usize) -> Element {
    Element::build(NS_SERVER, "message")
        .attr_set("from", "x@a.test")
        .attr_set("to", "y@b.test")
        .attr_set("id", format!("m{n}"))
}

#[test]
fn stanzas_are_counted_and_acknowledged_after_sasl_external_xep0198_s3_s4() {
    let now = Instant::now();
    let (mut out, mut inc) = ready_pair(now);
    assert_eq!(out.sm_last_sent(), Some(0));
    for n in 1..=3 {
        out.send_stanza(&msg(n), now).unwrap();
    }
    assert_eq!(out.sm_last_sent(), Some(3));
    out.request_ack(now);
    out.request_ack(now);
    let (to_in, to_out) = pump(&mut out, &mut inc, now);
    assert_eq!(
        to_in.matches("<r xmlns").count(),
        1,
        "one <r/> per batch: {to_in}"
    );
    assert!(
        to_out.contains("<a xmlns=\"urn:xmpp:sm:3\" h=\"3\"/>"),
        "{to_out}"
    );
    assert_eq!(out.poll_event(), Some(S2sEvent::Acked { h: 3 }));
    let stanzas = std::iter::from_fn(|| inc.poll_event())
        .filter(|e| matches!(e, S2sEvent::Stanza(_)))
        .count();
    assert_eq!(stanzas, 3);
    // Two more, the incoming side closes: its last <a/> covers them (s7).
    out.send_stanza(&msg(4), now).unwrap();
    out.send_stanza(&msg(5), now).unwrap();
    pump(&mut out, &mut inc, now);
    inc.close(now);
    out.handle_input(drain_in(&mut inc).as_bytes(), now);
    assert_eq!(out.poll_event(), Some(S2sEvent::Acked { h: 5 }));
    assert!(matches!(out.poll_event(), Some(S2sEvent::Closed(_))));
}

#[test]
fn an_ack_for_more_than_was_sent_ends_the_stream_xep0198_s6() {
    let now = Instant::now();
    let (mut out, _inc) = ready_pair(now);
    out.send_stanza(&msg(1), now).unwrap();
    drain_out(&mut out);
    out.handle_input(b"<a xmlns='urn:xmpp:sm:3' h='7'/>", now);
    match out.poll_event() {
        Some(S2sEvent::Closed(CloseReason::StreamError { condition, text })) => {
            assert_eq!(condition, "undefined-condition");
            assert!(text.unwrap().contains("h=7"));
        }
        other => panic!("{other:?}"),
    }
    assert!(drain_out(&mut out).contains("undefined-condition"));
}

#[test]
fn failed_turns_counting_off_and_the_peer_request_is_answered() {
    let now = Instant::now();
    let (mut out, _inc) = ready_pair(now);
    out.handle_input(b"<r xmlns='urn:xmpp:sm:3'/>", now);
    assert!(drain_out(&mut out).contains("h=\"0\""));
    out.handle_input(
        b"<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
        now,
    );
    assert_eq!(out.sm_last_sent(), None);
    out.send_stanza(&msg(1), now).unwrap();
    out.request_ack(now);
    assert!(!drain_out(&mut out).contains("<r "));
}

#[test]
fn the_incoming_side_refuses_enable_before_authentication_and_twice() {
    let now = Instant::now();
    let b = vec!["b.test".to_string()];
    let ka = Duration::from_secs(60);
    let mut inc = S2sIn::new(&b, "k", false, false, Limits::default(), ka, now);
    inc.handle_input(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='a.test' to='b.test' version='1.0'>", now);
    let features = drain_in(&mut inc);
    assert!(
        !features.contains("urn:xmpp:sm:3"),
        "not before authentication: {features}"
    );
    inc.handle_input(b"<enable xmlns='urn:xmpp:sm:3'/>", now);
    assert!(drain_in(&mut inc).contains("<failed xmlns=\"urn:xmpp:sm:3\"><unexpected-request"));
    let (_out, mut inc) = ready_pair(now);
    inc.handle_input(b"<enable xmlns='urn:xmpp:sm:3'/>", now);
    assert!(drain_in(&mut inc).contains("<failed"), "only once");
}

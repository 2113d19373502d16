//! The server-transaction cap and stateless refusals ([`cpim_sip::transaction::stateless`],
//! issue 10: "every standing state an outsider can create has a cap"), sans-IO with a
//! virtual clock. RFC 3261 s8.2.7 (stateless UAS), s17.2.2 (timer J).

use std::time::{Duration, Instant};

use bytes::Bytes;
use cpim_sip::codec::{HeaderName, Request, Response, SipMessage};
use cpim_sip::transaction::{
    Incoming, LayerEvent, ServerLimits, ServerState, Timers, TransactionLayer,
};

fn request(method: &str, branch: &str, pad: usize) -> Request {
    let raw = format!(
        "{method} sip:bob@b.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@a.example>;tag=a1\r\n\
To: <sip:bob@b.example>\r\n\
Call-ID: {branch}@192.0.2.1\r\n\
CSeq: 7 {method}\r\n\
Subject: {}\r\n\
Content-Length: 0\r\n\r\n",
        "x".repeat(pad)
    );
    match SipMessage::parse(Bytes::from(raw)).unwrap() {
        SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

fn layer(max: usize) -> TransactionLayer<u8> {
    let mut l = TransactionLayer::new(Timers::default());
    l.set_limits(ServerLimits {
        max_server_transactions: max,
        stateless_refusals: true,
    });
    l
}

fn answer(req: &Request, code: u16) -> Response {
    Response::for_request(req, code, None)
        .build_response()
        .unwrap()
}

/// Past the cap a new request gets no transaction and a stateless 503 with Retry-After
/// (timer J's length); its retransmission gets the very same bytes (RFC 3261 s8.2.7:
/// the To tag is a function of the request); the held transaction is untouched.
#[test]
fn rfc3261_s8_2_7_past_the_cap_answers_statelessly_and_identically() {
    let now = Instant::now();
    let mut l = layer(1);
    let first = request("OPTIONS", "z9hG4bK-held", 40);
    assert!(matches!(
        l.handle_request(first, 1, false, now),
        Incoming::New(_)
    ));
    let over = request("OPTIONS", "z9hG4bK-over", 40);
    assert_eq!(
        l.handle_request(over.clone(), 2, false, now),
        Incoming::Refused
    );
    assert_eq!(
        l.handle_request(over.clone(), 2, false, now),
        Incoming::Refused
    );
    let (to, a) = l.poll_transmit().expect("a stateless answer");
    let (_, b) = l.poll_transmit().expect("an answer to the retransmission");
    assert_eq!(to, 2);
    assert_eq!(a, b, "a retransmission got a different stateless answer");
    let SipMessage::Response(r) = SipMessage::parse(a.clone()).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(r.code(), 503);
    assert_eq!(r.header(HeaderName::RetryAfter), Some("32"));
    assert!(r.to_tag().is_some(), "no To tag (RFC 3261 s8.2.6.2)");
    assert!(
        a.len() <= over.to_bytes().len(),
        "the answer outweighs the request"
    );
    assert_eq!(l.server_count(), 1);
    let s = l.stats();
    assert_eq!(
        (s.server_transactions(), s.peak_server_transactions()),
        (1, 1)
    );
    assert_eq!(s.refused_over_cap(), 2);
}

/// A request shorter than the 503 it would get is dropped past the cap, not answered: a
/// forged source never receives more bytes than were sent in its name.
#[test]
fn past_the_cap_no_answer_outweighs_its_request() {
    let now = Instant::now();
    let mut l = layer(1);
    assert!(matches!(
        l.handle_request(request("OPTIONS", "z9hG4bK-held", 0), 1, false, now),
        Incoming::New(_)
    ));
    // the long Call-ID is copied into the answer, the request line is shorter than the
    // status line: strip the padding and the answer outweighs the request
    let raw = "OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-tiny\r\n\
               From: <sip:a@b>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
    let SipMessage::Request(tiny) = SipMessage::parse(Bytes::from(raw)).unwrap() else {
        unreachable!()
    };
    assert_eq!(l.handle_request(tiny, 2, false, now), Incoming::Refused);
    assert!(
        l.poll_transmit().is_none(),
        "an answer longer than its request was sent"
    );
}

/// A refusal (401 here) ends a non-INVITE transaction at once: no transaction is held for
/// timer J, only a compact record, so the retransmission still gets the same bytes
/// (RFC 3261 s17.2.2) without reaching the TU. Once timer J has passed it is a new request.
/// A 200 keeps its transaction.
#[test]
fn rfc3261_s17_2_2_refusals_end_their_transaction_at_once() {
    let now = Instant::now();
    let mut l = layer(100);
    let req = request("MESSAGE", "z9hG4bK-refused", 0);
    let Incoming::New(id) = l.handle_request(req.clone(), 1, false, now) else {
        panic!("not new")
    };
    l.respond_final(id, &answer(&req, 401), now).unwrap();
    let (_, first) = l.poll_transmit().unwrap();
    assert_eq!(l.server_count(), 0);
    assert_eq!(l.server_state(id), None);
    assert_eq!(l.stats().records(), 1);
    let later = now + Duration::from_millis(500);
    assert_eq!(
        l.handle_request(req.clone(), 1, false, later),
        Incoming::Retransmission(id)
    );
    assert_eq!(l.poll_transmit(), Some((1, first)));
    assert_eq!(l.server_count(), 0);
    let after_j = now + Duration::from_secs(33);
    assert!(matches!(
        l.handle_request(req, 1, false, after_j),
        Incoming::New(_)
    ));

    let ok = request("MESSAGE", "z9hG4bK-accepted", 0);
    let Incoming::New(id) = l.handle_request(ok.clone(), 1, false, now) else {
        panic!("not new")
    };
    l.respond_final(id, &answer(&ok, 200), now).unwrap();
    assert_eq!(l.server_state(id), Some(ServerState::Completed));
    assert_eq!(
        l.handle_request(ok, 1, false, now + Duration::from_millis(500)),
        Incoming::Retransmission(id)
    );
}

/// The compact records are bounded by the cap too, the oldest forgotten first: a flood of
/// refusals never fills anything that would refuse the next request.
#[test]
fn compact_records_are_bounded_and_never_refuse() {
    let now = Instant::now();
    let mut l = layer(10);
    for i in 0..1_000 {
        let req = request("MESSAGE", &format!("z9hG4bK-r{i}"), 0);
        let Incoming::New(id) = l.handle_request(req.clone(), 1, false, now) else {
            panic!("request {i} was not taken")
        };
        l.respond_final(id, &answer(&req, 403), now).unwrap();
    }
    assert_eq!(l.stats().records(), 10);
    assert_eq!(l.server_count(), 0);
    assert_eq!(l.stats().refused_over_cap(), 0);
}

/// A 503 without Retry-After (a failed delivery, whose outcome must stand) and any answer
/// to an INVITE keep their transaction; so does everything when the option is off.
#[test]
fn only_refusals_to_non_invite_requests_are_stateless() {
    let now = Instant::now();
    let mut l = layer(100);
    let req = request("MESSAGE", "z9hG4bK-delivery", 0);
    let Incoming::New(id) = l.handle_request(req.clone(), 1, false, now) else {
        panic!()
    };
    l.respond_final(id, &answer(&req, 503), now).unwrap();
    assert_eq!(l.server_state(id), Some(ServerState::Completed));

    let inv = request("INVITE", "z9hG4bK-invite", 0);
    let Incoming::New(id) = l.handle_request(inv.clone(), 1, false, now) else {
        panic!()
    };
    l.respond_final(id, &answer(&inv, 403), now).unwrap();
    assert_eq!(l.server_state(id), Some(ServerState::Completed));

    let mut plain: TransactionLayer<u8> = TransactionLayer::new(Timers::default());
    let req = request("MESSAGE", "z9hG4bK-plain", 0);
    let Incoming::New(id) = plain.handle_request(req.clone(), 1, false, now) else {
        panic!()
    };
    plain.respond_final(id, &answer(&req, 401), now).unwrap();
    assert_eq!(plain.server_state(id), Some(ServerState::Completed));
    while let Some(ev) = plain.poll_event() {
        assert!(!matches!(ev, LayerEvent::Terminated { .. }));
    }
}

/// The count falls when transactions end (timer J), and new requests are taken again.
#[test]
fn the_cap_frees_up_when_timer_j_fires() {
    let now = Instant::now();
    let mut l = layer(2);
    for b in ["z9hG4bK-1", "z9hG4bK-2"] {
        let req = request("MESSAGE", b, 40);
        let Incoming::New(id) = l.handle_request(req.clone(), 1, false, now) else {
            panic!()
        };
        l.respond_final(id, &answer(&req, 200), now).unwrap();
    }
    let third = request("MESSAGE", "z9hG4bK-3", 40);
    assert_eq!(
        l.handle_request(third.clone(), 1, false, now),
        Incoming::Refused
    );
    let j = now + Duration::from_secs(32);
    l.handle_timeout(j);
    assert_eq!(l.server_count(), 0);
    assert_eq!(l.stats().server_transactions(), 0);
    assert_eq!(l.stats().peak_server_transactions(), 2);
    assert!(matches!(
        l.handle_request(third, 1, false, j),
        Incoming::New(_)
    ));
}

/// An OPTIONS answer does nothing (RFC 3261 s11), so it holds no transaction, only a
/// compact record: an unauthenticated request leaves no transaction behind.
#[test]
fn rfc3261_s11_options_answers_hold_no_transaction() {
    let now = Instant::now();
    let mut l = layer(100);
    let req = request("OPTIONS", "z9hG4bK-options", 0);
    let Incoming::New(id) = l.handle_request(req.clone(), 1, false, now) else {
        panic!("not new")
    };
    l.respond_final(id, &answer(&req, 200), now).unwrap();
    assert!(l.poll_transmit().is_some());
    assert_eq!(l.server_count(), 0);
    assert_eq!(
        l.handle_request(req, 1, false, now),
        Incoming::Retransmission(id)
    );
    assert!(l.poll_transmit().is_some());
}

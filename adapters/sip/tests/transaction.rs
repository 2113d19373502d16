//! RFC 3261 s17 transactions in virtual time: the test owns the clock (a base `Instant`
//! plus offsets) and drives the sans-IO machines through `handle_*`/`poll_*`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cpim_sip::codec::{Method, Request, Response, SipMessage};
use cpim_sip::transaction::{
    ClientEvent, ClientState, ClientTransaction, Incoming, LayerEvent, ServerState, Timers,
    TransactionLayer,
};

struct Clock {
    base: Instant,
    offset: Duration,
}

impl Clock {
    fn new() -> Self {
        Clock {
            base: Instant::now(),
            offset: Duration::ZERO,
        }
    }
    fn now(&self) -> Instant {
        self.base + self.offset
    }
    fn set(&mut self, t: Instant) {
        self.offset = t - self.base;
    }
    fn ms(&self) -> u128 {
        self.offset.as_millis()
    }
}

fn message(branch: &str) -> Request {
    let raw = format!(
        "MESSAGE sip:bob@b.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@a.example>;tag=a1\r\n\
To: <sip:bob@b.example>\r\n\
Call-ID: c1@192.0.2.1\r\n\
CSeq: 7 MESSAGE\r\n\
Content-Type: text/plain\r\n\
Content-Length: 2\r\n\r\nhi"
    );
    match SipMessage::parse(Bytes::from(raw)).unwrap() {
        SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

fn response(req: &Request, code: u16) -> Response {
    Response::for_request_tagged(req, code, None, Some("b1"))
        .build_response()
        .unwrap()
}

/// Timer E doubles from T1 up to T2 while Trying; timer F fires at 64*T1 with a timeout
/// the TU turns into 408 (s17.1.2.2, s8.1.3.1).
#[test]
fn client_retransmits_with_doubling_to_t2_then_times_out() {
    let timers = Timers::default();
    let mut clock = Clock::new();
    let req = message("z9hG4bKc1");
    let mut tx = ClientTransaction::new(req.to_bytes(), false, timers, clock.now());
    assert!(tx.poll_transmit().is_some(), "initial send");
    let mut sends = Vec::new();
    while let Some(t) = tx.poll_timeout() {
        clock.set(t);
        tx.handle_timeout(clock.now());
        while tx.poll_transmit().is_some() {
            sends.push(clock.ms());
        }
        if let Some(ev) = tx.poll_event() {
            assert!(matches!(ev, ClientEvent::Timeout));
            assert_eq!(clock.ms(), 32_000, "timer F = 64*T1");
            break;
        }
    }
    // 500, 1000, 2000, 4000 (capped at T2), then every 4 s until F
    assert_eq!(
        sends,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(tx.state(), ClientState::Terminated);
    assert_eq!(tx.poll_timeout(), None);
}

/// In Proceeding, E fires every T2 (s17.1.2.2).
#[test]
fn client_proceeding_retransmits_every_t2() {
    let timers = Timers::default();
    let mut clock = Clock::new();
    let req = message("z9hG4bKc2");
    let mut tx = ClientTransaction::new(req.to_bytes(), false, timers, clock.now());
    tx.poll_transmit();
    tx.handle_message(response(&req, 100), clock.now());
    assert_eq!(tx.state(), ClientState::Proceeding);
    assert!(matches!(tx.poll_event(), Some(ClientEvent::Provisional(_))));
    let t = tx.poll_timeout().unwrap();
    clock.set(t);
    tx.handle_timeout(clock.now());
    assert!(tx.poll_transmit().is_some());
    let t2 = tx.poll_timeout().unwrap();
    assert_eq!(t2 - t, timers.t2);
}

/// A final response completes the transaction; retransmitted responses are absorbed;
/// timer K (T4 on UDP) ends it.
#[test]
fn client_final_response_then_timer_k() {
    let timers = Timers::default();
    let mut clock = Clock::new();
    let req = message("z9hG4bKc3");
    let mut tx = ClientTransaction::new(req.to_bytes(), false, timers, clock.now());
    tx.poll_transmit();
    clock.set(clock.now() + Duration::from_millis(100));
    tx.handle_message(response(&req, 200), clock.now());
    assert!(matches!(tx.poll_event(), Some(ClientEvent::Final(r)) if r.code() == 200));
    assert_eq!(tx.state(), ClientState::Completed);
    tx.handle_message(response(&req, 200), clock.now());
    assert!(tx.poll_event().is_none(), "retransmitted 200 absorbed");
    let k = tx.poll_timeout().unwrap();
    assert_eq!(clock.ms() + 5000, (k - clock.base).as_millis());
    clock.set(k);
    tx.handle_timeout(clock.now());
    assert_eq!(tx.state(), ClientState::Terminated);
    assert!(
        tx.poll_transmit().is_none(),
        "no retransmission after the final response"
    );
}

/// Over a reliable transport there is no timer E and timer K is zero.
#[test]
fn client_reliable_has_no_retransmissions() {
    let timers = Timers::default();
    let clock = Clock::new();
    let req = message("z9hG4bKc4");
    let mut tx = ClientTransaction::new(req.to_bytes(), true, timers, clock.now());
    tx.poll_transmit();
    assert_eq!(tx.poll_timeout(), Some(clock.now() + 64 * timers.t1));
    tx.handle_message(response(&req, 200), clock.now());
    tx.handle_timeout(clock.now());
    assert_eq!(tx.state(), ClientState::Terminated);
}

/// A retransmitted MESSAGE is absorbed: the TU sees it once and the same response is
/// re-sent; timer J (64*T1 on UDP) removes the transaction (s17.2.2).
#[test]
fn server_absorbs_retransmission_and_resends_response() {
    let timers = Timers::default();
    let mut clock = Clock::new();
    let mut layer: TransactionLayer<&'static str> = TransactionLayer::new(timers);
    let req = message("z9hG4bKs1");
    let id = match layer.handle_request(req.clone(), "peer", false, clock.now()) {
        Incoming::New(id) => id,
        other => panic!("{other:?}"),
    };
    let Some(LayerEvent::Request { request, .. }) = layer.poll_event() else {
        panic!("no request event")
    };
    assert_eq!(request.call_id(), "c1@192.0.2.1");
    // retransmission before the TU answered: absorbed, nothing sent
    assert_eq!(
        layer.handle_request(req.clone(), "peer", false, clock.now()),
        Incoming::Retransmission(id)
    );
    assert!(layer.poll_event().is_none());
    assert!(layer.poll_transmit().is_none());
    assert_eq!(layer.server_state(id), Some(ServerState::Trying));

    let resp = response(&req, 200);
    layer.respond(id, &resp, clock.now()).unwrap();
    let (to, first) = layer.poll_transmit().unwrap();
    assert_eq!(to, "peer");
    assert_eq!(layer.server_state(id), Some(ServerState::Completed));

    clock.set(clock.now() + Duration::from_millis(500));
    assert_eq!(
        layer.handle_request(req.clone(), "peer", false, clock.now()),
        Incoming::Retransmission(id)
    );
    let (_, again) = layer.poll_transmit().unwrap();
    assert_eq!(again, first, "the same response bytes are re-sent");
    assert!(layer.poll_event().is_none(), "the TU sees the request once");
    assert!(
        layer.respond(id, &resp, clock.now()).is_err(),
        "a second final response is refused"
    );

    // timer J
    let j = layer.poll_timeout().unwrap();
    assert_eq!((j - clock.base).as_millis(), 32_000);
    clock.set(j);
    layer.handle_timeout(clock.now());
    assert!(matches!(layer.poll_event(), Some(LayerEvent::Terminated { id: t }) if t == id));
    assert!(layer.is_empty());
    // after J the same request is a new transaction again
    assert!(matches!(
        layer.handle_request(req, "peer", false, clock.now()),
        Incoming::New(_)
    ));
}

/// A provisional response is re-sent on retransmissions while Proceeding.
#[test]
fn server_resends_provisional_while_proceeding() {
    let mut layer: TransactionLayer<u8> = TransactionLayer::new(Timers::default());
    let clock = Clock::new();
    let req = message("z9hG4bKs2");
    let Incoming::New(id) = layer.handle_request(req.clone(), 1, false, clock.now()) else {
        panic!()
    };
    layer.poll_event();
    layer
        .respond(id, &response(&req, 100), clock.now())
        .unwrap();
    assert!(layer.poll_transmit().is_some());
    assert_eq!(layer.server_state(id), Some(ServerState::Proceeding));
    layer.handle_request(req, 1, false, clock.now());
    let (_, b) = layer.poll_transmit().unwrap();
    assert!(b.starts_with(b"SIP/2.0 100"));
}

/// RFC 2543 fallback: a request without the magic cookie matches by Request-URI, tags,
/// Call-ID, CSeq and top Via.
#[test]
fn rfc2543_matching() {
    let mut layer: TransactionLayer<u8> = TransactionLayer::new(Timers::default());
    let clock = Clock::new();
    let req = message("oldstyle1");
    let Incoming::New(id) = layer.handle_request(req.clone(), 1, false, clock.now()) else {
        panic!()
    };
    assert_eq!(
        layer.handle_request(req, 1, false, clock.now()),
        Incoming::Retransmission(id)
    );
    let other = message("oldstyle2");
    assert!(matches!(
        layer.handle_request(other, 1, false, clock.now()),
        Incoming::New(_)
    ));
}

/// The layer's client side: E retransmissions reach the destination, F produces a timeout
/// event (408 for the TU), and the transaction is removed.
#[test]
fn layer_client_timeout() {
    let timers = Timers::default();
    let mut clock = Clock::new();
    let mut layer: TransactionLayer<&'static str> = TransactionLayer::new(timers);
    let req = message("z9hG4bKl1");
    let id = layer.send_request(&req, "far", false, clock.now()).unwrap();
    assert_eq!(
        layer.poll_transmit().map(|(d, _)| d),
        Some("far"),
        "initial send"
    );
    let mut sent = 0;
    let mut timed_out = false;
    while let Some(t) = layer.poll_timeout() {
        clock.set(t);
        layer.handle_timeout(clock.now());
        while layer.poll_transmit().is_some() {
            sent += 1;
        }
        while let Some(ev) = layer.poll_event() {
            match ev {
                LayerEvent::Timeout { id: t } => {
                    assert_eq!(t, id);
                    timed_out = true;
                }
                LayerEvent::Terminated { .. } => {}
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(timed_out);
    assert_eq!(sent, 10);
    assert_eq!(clock.ms(), 32_000);
    assert!(layer.is_empty());
}

/// The layer matches a response to its client transaction by branch and CSeq method.
#[test]
fn layer_client_matches_response() {
    let mut layer: TransactionLayer<u8> = TransactionLayer::new(Timers::default());
    let clock = Clock::new();
    let req = message("z9hG4bKl2");
    let id = layer.send_request(&req, 9, false, clock.now()).unwrap();
    layer.poll_transmit();
    assert_eq!(
        layer.handle_response(response(&req, 202), clock.now()),
        Some(id)
    );
    assert!(
        matches!(layer.poll_event(), Some(LayerEvent::Response { response, .. }) if response.code() == 202)
    );
    let stray = response(&message("z9hG4bKother"), 200);
    assert_eq!(layer.handle_response(stray, clock.now()), None);
}

/// INVITE server transaction: a final error is retransmitted with timer G until the ACK
/// arrives; the ACK is absorbed and timer I ends the transaction.
#[test]
fn invite_server_error_and_ack() {
    let timers = Timers::default();
    let mut clock = Clock::new();
    let mut layer: TransactionLayer<u8> = TransactionLayer::new(timers);
    let raw = "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKinv1\r\n\
From: <sip:a@a.example>;tag=1\r\nTo: <sip:bob@b.example>\r\nCall-ID: inv1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let SipMessage::Request(inv) = SipMessage::parse(Bytes::from(raw)).unwrap() else {
        panic!()
    };
    let Incoming::New(id) = layer.handle_request(inv.clone(), 1, false, clock.now()) else {
        panic!()
    };
    layer.poll_event();
    let resp = Response::for_request_tagged(&inv, 405, None, Some("x"))
        .header("Allow", "MESSAGE")
        .build_response()
        .unwrap();
    layer.respond(id, &resp, clock.now()).unwrap();
    layer.poll_transmit().unwrap();
    let g = layer.poll_timeout().unwrap();
    clock.set(g);
    layer.handle_timeout(clock.now());
    assert!(
        layer.poll_transmit().is_some(),
        "timer G retransmits the 405"
    );
    let ack_raw = raw
        .replace("INVITE sip", "ACK sip")
        .replace("1 INVITE", "1 ACK");
    let SipMessage::Request(ack) = SipMessage::parse(Bytes::from(ack_raw)).unwrap() else {
        panic!()
    };
    assert_eq!(
        layer.handle_request(ack, 1, false, clock.now()),
        Incoming::Ack(id)
    );
    assert_eq!(layer.server_state(id), Some(ServerState::Confirmed));
    let i = layer.poll_timeout().unwrap();
    clock.set(i);
    layer.handle_timeout(clock.now());
    assert!(layer.is_empty());
    let _ = Method::Ack;
}

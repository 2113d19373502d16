//! Fuzzes the XEP-0114 component session, sans-IO: arbitrary server bytes in arbitrary
//! chunks, interleaved with time steps, stanzas and pings to send, and closes. Asserts
//! no panic, that the session closes at most once, and that nothing is sent after the
//! close was reported.
//! Run: `cargo +nightly fuzz run component -- -max_total_time=60`.
#![no_main]

use std::time::{Duration, Instant};

use cpim_xmpp::element::{Element, ElementExt};
use cpim_xmpp::session::{ComponentSession, SessionEvent, State, Timing, NS_COMPONENT};
use cpim_xmpp::stream::Limits;
use libfuzzer_sys::fuzz_target;

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='sip.xmpp.test' id='3BF96D32'>";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let timing = Timing {
        keepalive: Duration::from_secs(10),
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(5),
    };
    let limits = Limits {
        max_stanza_bytes: 2048,
        max_depth: 8,
        max_attributes: 8,
    };
    let mut s = ComponentSession::new("sip.xmpp.test", "s3cret", timing, limits, now);
    if flags & 1 == 0 {
        s.start(now);
    }
    if flags & 2 != 0 {
        s.handle_input(HEADER, now);
        if flags & 4 != 0 {
            s.handle_input(b"<handshake/>", now);
        }
    }
    let mut closes = 0;
    let drain = |s: &mut ComponentSession, closes: &mut u32| {
        while s.poll_transmit().is_some() {}
        while let Some(ev) = s.poll_event() {
            if let SessionEvent::Closed(_) = ev {
                *closes += 1;
            }
        }
        assert!(*closes <= 1, "closed twice");
        if *closes == 1 {
            assert_eq!(s.state(), State::Closed);
        }
    };
    drain(&mut s, &mut closes);
    while let Some((&op, r)) = rest.split_first() {
        rest = r;
        match op % 8 {
            0..=3 => {
                let n = usize::from(op / 8).min(rest.len());
                let (d, r) = rest.split_at(n);
                rest = r;
                s.handle_input(d, now);
            }
            4 => {
                now += Duration::from_millis(250 * u64::from(op / 8));
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            5 => {
                if let Some(t) = s.poll_timeout() {
                    now = now.max(t);
                    s.handle_timeout(now);
                }
            }
            6 => {
                let id = s.next_id();
                let el = Element::build(NS_COMPONENT, "message")
                    .attr_set("from", "a@sip.xmpp.test")
                    .attr_set("to", "b@xmpp.test")
                    .attr_set("id", &id)
                    .child_add(Element::build(NS_COMPONENT, "body").text_add("x\u{1}y"));
                let _ = s.send_stanza(&el, now);
                let _ = s.send_ping("xmpp.test", now);
            }
            _ => {
                if op & 8 != 0 {
                    s.close(now)
                } else {
                    s.handle_eof()
                }
            }
        }
        let before = closes;
        drain(&mut s, &mut closes);
        if before == 1 {
            // After the close nothing more is written.
            assert!(s.poll_transmit().is_none());
        }
    }
});

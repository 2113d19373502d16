//! Fuzzes the s2s stream state machines (RFC 6120, XEP-0220), sans-IO: an incoming
//! (`S2sIn`) or outgoing (`S2sOut`) session driven by arbitrary bytes in arbitrary
//! chunks, interleaved with time steps, TLS completions, dialback verdicts, stanzas to
//! send and closes. Asserts no panic and that a session whose close was reported writes
//! nothing more.
//! Run: `cargo +nightly fuzz run s2s -- -max_total_time=60`.
#![no_main]

use std::time::{Duration, Instant};

use cpim_xmpp::element::{Element, ElementExt};
use cpim_xmpp::s2s::{Liveness, S2sEvent, S2sIn, S2sOut, NS_SERVER};
use cpim_xmpp::s2s_in::PeerCert;
use cpim_xmpp::stream::Limits;
use libfuzzer_sys::fuzz_target;

const IN_HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='gw.test' from='peer.test' version='1.0'>";
const OUT_HEADER: &[u8] = b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='peer.test' id='s1' version='1.0'><stream:features/>";

enum Session {
    In(Box<S2sIn>),
    Out(Box<S2sOut>),
}

impl Session {
    fn input(&mut self, d: &[u8], now: Instant) {
        match self {
            Session::In(s) => s.handle_input(d, now),
            Session::Out(s) => s.handle_input(d, now),
        }
    }
    fn timeout(&mut self, now: Instant) {
        match self {
            Session::In(s) => s.handle_timeout(now),
            Session::Out(s) => s.handle_timeout(now),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Session::In(s) => s.poll_timeout(),
            Session::Out(s) => s.poll_timeout(),
        }
    }
    /// Drains output and events, answering what the transport would: (the session
    /// reported its close, bytes written). With `cert`, TLS completes with a peer
    /// certificate valid for `peer.test` only (SASL EXTERNAL, XEP-0178).
    fn drain(&mut self, now: Instant, valid: bool, cert: bool) -> (bool, usize) {
        let mut closed = false;
        let mut wrote = 0;
        loop {
            let out = match self {
                Session::In(s) => s.poll_transmit(),
                Session::Out(s) => s.poll_transmit(),
            };
            match out {
                Some(b) => wrote += b.len(),
                None => break,
            }
        }
        loop {
            let ev = match self {
                Session::In(s) => s.poll_event(),
                Session::Out(s) => s.poll_event(),
            };
            let Some(ev) = ev else { break };
            match (self as &mut Session, ev) {
                (Session::In(s), S2sEvent::VerifyKey { from, to, .. }) => {
                    s.verify_done(&from, &to, valid, now);
                }
                (Session::In(s), S2sEvent::StartTls) if cert => {
                    s.tls_established_with_cert(Some(PeerCert::new(|d| d == "peer.test")))
                }
                (Session::In(s), S2sEvent::StartTls) => s.tls_established(),
                (Session::In(_), S2sEvent::Authenticated { domain }) => {
                    // RFC 6120 s13.7.2 / XEP-0220: only the certificate's domain, or one
                    // the authoritative server confirmed, is ever authenticated.
                    assert!(
                        (cert && domain == "peer.test") || valid,
                        "{domain} authenticated without proof"
                    );
                }
                (Session::Out(s), S2sEvent::StartTls) => s.tls_established(now),
                (_, S2sEvent::Closed(_)) => closed = true,
                _ => {}
            }
        }
        (closed, wrote)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let limits = Limits {
        max_stanza_bytes: 2048,
        max_depth: 8,
        max_attributes: 8,
    };
    let domains = vec!["gw.test".to_string(), "gw2.test".to_string()];
    let require_tls = flags & 2 != 0;
    let mut s = if flags & 1 == 0 {
        let mut i = S2sIn::new(
            &domains,
            "secret",
            flags & 4 != 0,
            require_tls,
            limits,
            Duration::from_secs(30),
            now,
        );
        if flags & 8 != 0 {
            i = i
                .with_idle_timeout(Duration::from_secs(60))
                .with_deadlines(Some(Duration::from_secs(10)), Some(Duration::from_secs(30)));
        }
        let mut s = Session::In(Box::new(i));
        if flags & 16 != 0 {
            s.input(IN_HEADER, now);
        }
        s
    } else {
        let mut o = S2sOut::new(
            "gw.test",
            "peer.test",
            "secret",
            require_tls,
            limits,
            Duration::from_secs(30),
            now,
        )
        .with_liveness(Liveness {
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(5),
        });
        o.start(now);
        let mut s = Session::Out(Box::new(o));
        if flags & 16 != 0 {
            s.input(OUT_HEADER, now);
        }
        s
    };
    let valid = flags & 32 != 0;
    let cert = flags & 64 != 0;
    let mut closed = s.drain(now, valid, cert).0;
    // Commands: an op byte, then its operand.
    while let Some((&op, r)) = rest.split_first() {
        rest = r;
        match op % 8 {
            0..=3 => {
                // Input of up to 64 bytes.
                let n = usize::from(op / 8).min(rest.len());
                let (d, r) = rest.split_at(n);
                rest = r;
                s.input(d, now);
            }
            4 => {
                // Time passes: 0..=63 s in quarter seconds.
                now += Duration::from_millis(250 * u64::from(op / 8));
                if let Some(t) = s.poll_timeout() {
                    if t <= now {
                        s.timeout(now);
                    }
                }
            }
            5 => {
                // Jump to the requested timeout.
                if let Some(t) = s.poll_timeout() {
                    now = now.max(t);
                    s.timeout(now);
                }
            }
            6 => {
                let el = Element::build(NS_SERVER, "message")
                    .attr_set("from", "a@gw.test")
                    .attr_set("to", "b@peer.test")
                    .attr_set("id", "m1")
                    .child_add(Element::build(NS_SERVER, "body").text_add("x\u{1}y"));
                if let Session::Out(o) = &mut s {
                    let _ = o.send_stanza(&el, now);
                    o.send_verify("gw.test", "peer.test", "sid", "key", now);
                }
            }
            _ => match &mut s {
                Session::In(i) => {
                    if op & 8 != 0 {
                        i.close(now)
                    } else {
                        i.handle_eof()
                    }
                }
                Session::Out(o) => {
                    if op & 8 != 0 {
                        o.close(now)
                    } else {
                        o.handle_eof()
                    }
                }
            },
        }
        let (c, wrote) = s.drain(now, valid, cert);
        if let Session::In(i) = &s {
            // A domain pair is authenticated only for one of our domains as receiver.
            for (_, to) in i.authenticated() {
                assert!(domains.iter().any(|d| d == to), "authenticated for {to}");
            }
        }
        // Once its close is reported, a session writes nothing more.
        assert!(!closed || wrote == 0, "wrote {wrote} bytes after the close");
        closed |= c;
    }
});

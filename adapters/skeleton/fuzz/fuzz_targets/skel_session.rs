//! Fuzzes one SKEL client session (`cpim_skeleton::session::Session`), sans-IO: arbitrary
//! client bytes in arbitrary chunks, interleaved with time steps, deliveries from the core
//! and outcomes. Asserts no panic, that every line the gateway writes parses as a frame,
//! and that every delivery gets exactly one outcome once the session is over.
//! Run: `scripts/fuzz cpim-skeleton/skel_session`.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cpim_core::model::{Message, Operation, Outcome, TransId};
use cpim_core::Address;
use cpim_skeleton::codec::Frame;
use cpim_skeleton::session::{Event, Session, SessionConfig};
use libfuzzer_sys::fuzz_target;

fn drain(s: &mut Session, delivered: &mut Vec<u64>, submitted: &mut Vec<TransId>) {
    while let Some(out) = s.poll_transmit() {
        for line in out.split_terminator('\n') {
            assert!(Frame::parse(line).is_ok(), "the gateway wrote {line:?}");
        }
    }
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Delivered(key, _) => {
                assert!(!delivered.contains(&key), "two outcomes for delivery {key}");
                delivered.push(key);
            }
            Event::Submit(op) => submitted.push(op.trans_id()),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let cfg = SessionConfig {
        domain: "skel.test".into(),
        accounts: HashMap::from([("alice".into(), "s3cret-s3cret-s3cret".into())]),
        max_line_bytes: 256,
        keepalive: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(10),
        deliver_timeout: Duration::from_secs(20),
        publish_expires_secs: 3600,
    };
    let mut s = Session::new(cfg, 1, now);
    let (mut delivered, mut submitted) = (Vec::new(), Vec::new());
    let mut keys = 0u64;
    let mut rest = data;
    while let Some((&op, r)) = rest.split_first() {
        rest = r;
        match op % 8 {
            0..=3 => {
                let n = usize::from(op / 4).min(rest.len());
                let (d, r) = rest.split_at(n);
                rest = r;
                s.handle_bytes(d, now);
            }
            4 => {
                now += Duration::from_millis(500 * u64::from(op / 8));
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            5 => {
                keys += 1;
                let m = Message::new(
                    TransId(1000 + keys),
                    Address::parse("im:bob@other.test").expect("address"),
                    Address::parse("im:alice@skel.test").expect("address"),
                    if op & 8 != 0 { "text/plain" } else { "text/html" },
                    b"hi\nthere\\".to_vec(),
                );
                s.deliver(keys, &Operation::Message(m), now);
            }
            6 => {
                if let Some(&tid) = submitted.first() {
                    submitted.remove(0);
                    let o = if op & 8 != 0 {
                        Outcome::ok(tid)
                    } else {
                        Outcome::failure(tid, 404, "no\r\nsuch user")
                    };
                    s.handle_outcome(&o);
                }
            }
            _ => s.close("bye"),
        }
        drain(&mut s, &mut delivered, &mut submitted);
    }
    s.close("end");
    drain(&mut s, &mut delivered, &mut submitted);
    assert_eq!(delivered.len() as u64, keys, "a delivery without an outcome");
});

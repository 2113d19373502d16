//! Fuzzes one IRC client connection (`cpim_irc::conn::Conn`, RFC 2812 s3.1 registration,
//! s3.7.2 keepalive, RFC 1459 s8.10 flood control), sans-IO: arbitrary server bytes in
//! arbitrary chunks, interleaved with time steps and the gateway's commands. Asserts no
//! panic, that every line written is at most 512 bytes with no CR/LF/NUL inside, and that
//! every `send_text` gets exactly one outcome (at the latest when the socket is lost).
//! Run: `scripts/fuzz cpim-irc/irc_conn`.
#![no_main]

use std::time::{Duration, Instant};

use cpim_irc::conn::{Conn, ConnEvent, ConnSettings};
use cpim_irc::proto::MAX_LINE;
use libfuzzer_sys::fuzz_target;

fn drain(c: &mut Conn, now: Instant, results: &mut Vec<u64>) {
    let mut out = Vec::new();
    while c.poll_transmit(now, &mut out) {}
    if !out.is_empty() {
        for line in out.split_inclusive(|&b| b == b'\n') {
            assert!(line.len() <= MAX_LINE, "{} byte line", line.len());
            assert!(line.ends_with(b"\r\n"), "unterminated line");
            let body = &line[..line.len() - 2];
            assert!(
                !body.iter().any(|&b| b == b'\r' || b == 0),
                "CR or NUL in a line"
            );
        }
    }
    while let Some(ev) = c.poll_event() {
        if let ConnEvent::SendResult { token, .. } = ev {
            assert!(!results.contains(&token), "two outcomes for send {token}");
            results.push(token);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = Conn::new(
        ConnSettings {
            nick: "gw".into(),
            nick_len: 9,
            user: "cpim".into(),
            realname: "CPIM gateway".into(),
            password: None,
            flood_penalty: Duration::from_secs(2),
            flood_window: Duration::from_secs(10),
            ping_interval: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(20),
            register_timeout: Duration::from_secs(30),
        },
        now,
    );
    let mut results = Vec::new();
    drain(&mut c, now, &mut results);
    let mut rest = data;
    let mut token = 0u64;
    while let Some((&op, r)) = rest.split_first() {
        rest = r;
        match op % 8 {
            0..=3 => {
                let n = usize::from(op / 4).min(rest.len());
                let (d, r) = rest.split_at(n);
                rest = r;
                c.handle_bytes(d, now);
            }
            4 => {
                now += Duration::from_millis(500 * u64::from(op / 8));
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now);
                }
            }
            5 => {
                if let Some(t) = c.poll_timeout() {
                    now = now.max(t);
                    c.handle_timeout(now);
                }
            }
            6 => {
                token += 1;
                // 1 to 8 lines, one of them long enough to be split.
                let text = format!(
                    "{}{}",
                    "x\r\ny\0".repeat(usize::from(op / 32) + 1),
                    "z".repeat(600)
                );
                let target = if op & 8 != 0 { "#room" } else { "bob" };
                c.send_text(target, &text, op & 16 != 0, token, now);
            }
            _ => match op / 8 % 6 {
                0 => c.join("#room"),
                1 => c.userhost(&["bob".into(), "carol".into()]),
                2 => c.whois("bob"),
                3 => c.set_away(Some("away\r\nQUIT")),
                4 => c.quit("bye"),
                _ => c.handle_closed(),
            },
        }
        drain(&mut c, now, &mut results);
    }
    c.handle_closed();
    drain(&mut c, now, &mut results);
    assert_eq!(results.len() as u64, token, "a send without an outcome");
});

//! Fuzzes the IRC line parser and writer (RFC 2812 s2.3.1): any line a server sends is
//! refused or parsed; what `write_line` writes from a parsed message is one line of at
//! most 512 bytes (s2.3) that parses back to the same command and parameters.
//! Run: `scripts/fuzz cpim-irc/irc_message`.
#![no_main]

use cpim_irc::proto::{write_line, IrcMessage, MAX_LINE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = IrcMessage::parse(data) else {
        return;
    };
    let _ = m.nick();
    assert!(!m.command.is_empty());
    // The gateway writes only commands of letters or three digits (RFC 2812 s2.3.1).
    if !m.command.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return;
    }
    let Some((trailing, middle)) = m.params.split_last() else {
        return;
    };
    let middle: Vec<&str> = middle.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    write_line(&mut out, &m.command, &middle, Some(trailing));
    assert!(out.len() <= MAX_LINE, "{} bytes written", out.len());
    assert!(out.ends_with(b"\r\n"));
    let body = &out[..out.len() - 2];
    assert!(
        !body.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
        "line break or NUL inside a written line"
    );
    let again = IrcMessage::parse(&out).expect("a written line parses");
    // A parameter cut at the line limit, or one whose spaces the writer cannot protect
    // (a middle parameter must not contain a space or start with ':'), may come back
    // different; a short clean message must not.
    let clean = middle
        .iter()
        .all(|p| !p.is_empty() && !p.contains(' ') && !p.starts_with(':'))
        && !m.params.iter().any(|p| p.contains(['\r', '\n', '\0']))
        && middle.len() <= 14
        && out.len() + 3 < MAX_LINE; // a cut line ends within 3 bytes of the limit
    if clean {
        assert_eq!(again.command, m.command);
        assert_eq!(again.params, m.params);
    }
});

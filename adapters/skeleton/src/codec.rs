//! The SKEL line protocol: framing and syntax. Sans-IO.
//!
//! One command per line, `\n`-terminated (a `\r` before it is dropped), words separated
//! by one space; the last field of `MSG`/`PRES`/`NOTIFY`/`ERR` is the rest of the line.
//! Every request carries an `id` the answer repeats:
//!
//! ```text
//! client -> gateway   LOGIN <id> <user> <secret>
//!                     MSG <id> <to> <body>          PRES <id> <state> [note]
//!                     OK <id>   ERR <id> <code> <reason>   (answers to the gateway's requests)
//! gateway -> client   MSG <id> <from> <body>        NOTIFY <id> <from> <state> [note]
//!                     OK <id>   ERR <id> <code> <reason>   (answers to the client's requests)
//! both                PING <token>  PONG <token>
//! ```
//!
//! A body or note escapes `\` as `\\` and a line break as `\n`, so any text fits one line.
// ADAPT: this whole module is your protocol's wire format (or a binding to an existing
// parser crate). Keep the split: a framer that never buffers more than the limit, and a
// parser that names what is wrong instead of panicking.

use std::fmt::Write as _;

/// Longest accepted request id or ping token.
pub const MAX_ID_LEN: usize = 64;

/// A presence state as SKEL expresses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresState {
    /// `online`
    Online,
    /// `away`
    Away,
    /// `busy`
    Busy,
    /// `offline`
    Offline,
}

impl PresState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PresState::Online => "online",
            PresState::Away => "away",
            PresState::Busy => "busy",
            PresState::Offline => "offline",
        }
    }
    fn parse(s: &str) -> Option<PresState> {
        Some(match s {
            "online" => PresState::Online,
            "away" => PresState::Away,
            "busy" => PresState::Busy,
            "offline" => PresState::Offline,
            _ => return None,
        })
    }
}

/// One SKEL line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `LOGIN id user secret`
    Login {
        /// Request id.
        id: String,
        /// The user name (becomes `im:user@<domain>`).
        user: String,
        /// The account's secret.
        secret: String,
    },
    /// `MSG id peer body`: `peer` is the recipient from a client, the sender towards one.
    Msg {
        /// Request id.
        id: String,
        /// `to` or `from`.
        peer: String,
        /// The text.
        body: String,
    },
    /// `PRES id state [note]`: the client publishes its state.
    Pres {
        /// Request id.
        id: String,
        /// The state.
        state: PresState,
        /// Free text.
        note: Option<String>,
    },
    /// `NOTIFY id from state [note]`: someone's state, sent to a client.
    Notify {
        /// Request id.
        id: String,
        /// Whose state.
        from: String,
        /// The state.
        state: PresState,
        /// Free text.
        note: Option<String>,
    },
    /// `OK id`
    Ok {
        /// The id answered.
        id: String,
    },
    /// `ERR id code reason`; `id` is `-` when the failed line had none readable.
    Err {
        /// The id answered.
        id: String,
        /// SIP-style status code.
        code: u16,
        /// Why.
        reason: String,
    },
    /// `PING token`
    Ping {
        /// Echoed by PONG.
        token: String,
    },
    /// `PONG token`
    Pong {
        /// The token of the PING answered.
        token: String,
    },
}

/// Why a line is not a valid frame. `id` is the line's request id when it could be read,
/// so that the `ERR` answer names the request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    /// The request id, if readable.
    pub id: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// Framing problems.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A line longer than the limit; it was skipped up to its newline.
    #[error("line longer than {limit} bytes; skipped")]
    Oversize {
        /// The limit in bytes.
        limit: usize,
    },
    /// The line is not UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// The line does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

fn bad(id: Option<&str>, reason: impl Into<String>) -> ParseError {
    ParseError {
        id: id.map(str::to_owned),
        reason: reason.into(),
    }
}

fn check_token<'a>(
    what: &str,
    t: Option<&'a str>,
    id: Option<&str>,
) -> Result<&'a str, ParseError> {
    match t {
        None | Some("") => Err(bad(id, format!("missing {what}"))),
        Some(t) if t.len() > MAX_ID_LEN => {
            Err(bad(id, format!("{what} longer than {MAX_ID_LEN} bytes")))
        }
        Some(t) if t.bytes().any(|b| b.is_ascii_control()) => {
            Err(bad(id, format!("control character in {what}")))
        }
        Some(t) => Ok(t),
    }
}

/// Escapes `\` and line breaks of a free-text field.
pub fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Reverses [`escape`]; an unknown escape or a trailing `\` is an error.
pub fn unescape(text: &str) -> Result<String, &'static str> {
    if !text.contains('\\') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut it = text.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(_) => return Err("unknown escape (only \\\\, \\n, \\r)"),
            None => return Err("trailing backslash"),
        }
    }
    Ok(out)
}

impl Frame {
    /// Parses one line without its terminator.
    pub fn parse(line: &str) -> Result<Frame, ParseError> {
        let mut it = line.splitn(2, ' ');
        let verb = it.next().unwrap_or("");
        let rest = it.next().unwrap_or("");
        let mut words = rest.splitn(2, ' ');
        let first = words.next().filter(|w| !w.is_empty());
        let tail = words.next();
        let text = |id: &str, what: &str, t: &str| {
            unescape(t).map_err(|e| bad(Some(id), format!("{what}: {e}")))
        };
        match verb {
            "PING" | "PONG" => {
                let token = check_token("token", first, None)?.to_owned();
                if tail.is_some() {
                    return Err(bad(None, format!("{verb} takes one token")));
                }
                Ok(if verb == "PING" {
                    Frame::Ping { token }
                } else {
                    Frame::Pong { token }
                })
            }
            "LOGIN" | "MSG" | "PRES" | "NOTIFY" | "OK" | "ERR" => {
                let id = check_token("id", first, None)?;
                let mut f = tail.unwrap_or("").splitn(2, ' ');
                let (a, b) = (f.next().filter(|w| !w.is_empty()), f.next());
                let sid = Some(id);
                let frame = match verb {
                    "OK" if tail.is_none() => Frame::Ok { id: id.into() },
                    "OK" => return Err(bad(sid, "OK takes only an id")),
                    "LOGIN" => Frame::Login {
                        id: id.into(),
                        user: check_token("user", a, sid)?.into(),
                        secret: check_token("secret", b, sid)?.into(),
                    },
                    "MSG" => Frame::Msg {
                        id: id.into(),
                        peer: check_token("address", a, sid)?.into(),
                        body: text(id, "body", b.ok_or_else(|| bad(sid, "missing body"))?)?,
                    },
                    "PRES" => Frame::Pres {
                        id: id.into(),
                        state: a.and_then(PresState::parse).ok_or_else(|| {
                            bad(sid, "state must be online, away, busy or offline")
                        })?,
                        note: b.map(|n| text(id, "note", n)).transpose()?,
                    },
                    "NOTIFY" => {
                        let from = check_token("address", a, sid)?.into();
                        let mut g = b.unwrap_or("").splitn(2, ' ');
                        Frame::Notify {
                            id: id.into(),
                            from,
                            state: g.next().and_then(PresState::parse).ok_or_else(|| {
                                bad(sid, "state must be online, away, busy or offline")
                            })?,
                            note: g.next().map(|n| text(id, "note", n)).transpose()?,
                        }
                    }
                    _ => Frame::Err {
                        id: id.into(),
                        code: a
                            .and_then(|c| c.parse().ok())
                            .filter(|c| (100..700).contains(c))
                            .ok_or_else(|| bad(sid, "code must be a number from 100 to 699"))?,
                        reason: text(id, "reason", b.unwrap_or(""))?,
                    },
                };
                Ok(frame)
            }
            "" => Err(bad(None, "empty line")),
            other => {
                let id = first
                    .filter(|i| i.len() <= MAX_ID_LEN && !i.bytes().any(|b| b.is_ascii_control()));
                Err(bad(
                    id,
                    format!(
                        "unknown command {:?}",
                        other.chars().take(32).collect::<String>()
                    ),
                ))
            }
        }
    }

    /// Appends the line, with its `\n`, to `out`.
    pub fn encode(&self, out: &mut String) {
        // write! into a String cannot fail.
        let _ = match self {
            Frame::Login { id, user, secret } => write!(out, "LOGIN {id} {user} {secret}"),
            Frame::Msg { id, peer, body } => {
                let _ = write!(out, "MSG {id} {peer} ");
                escape(body, out);
                Ok(())
            }
            Frame::Pres { id, state, note } => {
                let _ = write!(out, "PRES {id} {}", state.as_str());
                if let Some(n) = note {
                    out.push(' ');
                    escape(n, out);
                }
                Ok(())
            }
            Frame::Notify {
                id,
                from,
                state,
                note,
            } => {
                let _ = write!(out, "NOTIFY {id} {from} {}", state.as_str());
                if let Some(n) = note {
                    out.push(' ');
                    escape(n, out);
                }
                Ok(())
            }
            Frame::Ok { id } => write!(out, "OK {id}"),
            Frame::Err { id, code, reason } => {
                let _ = write!(out, "ERR {id} {code} ");
                escape(reason, out);
                Ok(())
            }
            Frame::Ping { token } => write!(out, "PING {token}"),
            Frame::Pong { token } => write!(out, "PONG {token}"),
        };
        out.push('\n');
    }
}

/// Splits a byte stream into lines of at most `limit` bytes. An oversize line is reported
/// once and skipped up to its newline without being buffered.
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    limit: usize,
    skipping: bool,
}

impl LineDecoder {
    /// A decoder for lines of at most `limit` bytes (without the terminator).
    pub fn new(limit: usize) -> LineDecoder {
        LineDecoder {
            buf: Vec::new(),
            limit,
            skipping: false,
        }
    }

    /// Feeds bytes; calls `f` with each complete line's frame or error, in order.
    pub fn feed(&mut self, mut data: &[u8], mut f: impl FnMut(Result<Frame, CodecError>)) {
        while !data.is_empty() {
            let nl = data.iter().position(|&b| b == b'\n');
            let (chunk, done) = match nl {
                Some(i) => (&data[..i], true),
                None => (data, false),
            };
            data = if done { &data[chunk.len() + 1..] } else { &[] };
            if self.skipping {
                self.skipping = !done;
                continue;
            }
            if self.buf.len() + chunk.len() > self.limit + 1 {
                // +1: the limit excludes a `\r` terminator that may still follow.
                self.buf.clear();
                self.skipping = !done;
                f(Err(CodecError::Oversize { limit: self.limit }));
                continue;
            }
            self.buf.extend_from_slice(chunk);
            if !done {
                continue;
            }
            let mut line = &self.buf[..];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.len() > self.limit {
                f(Err(CodecError::Oversize { limit: self.limit }));
            } else {
                f(match std::str::from_utf8(line) {
                    Ok(s) => Frame::parse(s).map_err(CodecError::from),
                    Err(_) => Err(CodecError::NotUtf8),
                });
            }
            self.buf.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(limit: usize, input: &[u8]) -> Vec<Result<Frame, CodecError>> {
        let mut d = LineDecoder::new(limit);
        let mut v = Vec::new();
        d.feed(input, |r| v.push(r));
        v
    }

    #[test]
    fn parses_each_command() {
        assert_eq!(
            Frame::parse("LOGIN 1 alice s3cret").unwrap(),
            Frame::Login {
                id: "1".into(),
                user: "alice".into(),
                secret: "s3cret".into()
            }
        );
        assert_eq!(
            Frame::parse("MSG 2 bob@sip.example hello there").unwrap(),
            Frame::Msg {
                id: "2".into(),
                peer: "bob@sip.example".into(),
                body: "hello there".into()
            }
        );
        assert_eq!(
            Frame::parse("PRES 3 away out to lunch").unwrap(),
            Frame::Pres {
                id: "3".into(),
                state: PresState::Away,
                note: Some("out to lunch".into())
            }
        );
        assert_eq!(
            Frame::parse("PRES 3 online").unwrap(),
            Frame::Pres {
                id: "3".into(),
                state: PresState::Online,
                note: None
            }
        );
        assert_eq!(
            Frame::parse("ERR s1 486 busy here").unwrap(),
            Frame::Err {
                id: "s1".into(),
                code: 486,
                reason: "busy here".into()
            }
        );
        assert_eq!(
            Frame::parse("OK s1").unwrap(),
            Frame::Ok { id: "s1".into() }
        );
        assert_eq!(
            Frame::parse("PING 7").unwrap(),
            Frame::Ping { token: "7".into() }
        );
    }

    #[test]
    fn malformed_lines_name_the_problem_and_the_id() {
        let cases = [
            ("", None, "empty line"),
            ("HELLO 5 x", Some("5"), "unknown command"),
            ("MSG", None, "missing id"),
            ("MSG 4 bob", Some("4"), "missing body"),
            ("PRES 4 sleepy", Some("4"), "state must be"),
            ("ERR 4 abc oops", Some("4"), "code must be"),
            ("LOGIN 4 alice", Some("4"), "missing secret"),
            ("MSG 4 bob a\\q", Some("4"), "unknown escape"),
            ("OK 4 extra", Some("4"), "only an id"),
        ];
        for (line, id, reason) in cases {
            let e = Frame::parse(line).unwrap_err();
            assert_eq!(e.id.as_deref(), id, "{line:?}");
            assert!(e.reason.contains(reason), "{line:?}: {}", e.reason);
        }
        let long_id = format!("MSG {} bob hi", "x".repeat(MAX_ID_LEN + 1));
        assert!(Frame::parse(&long_id)
            .unwrap_err()
            .reason
            .contains("longer than"));
    }

    #[test]
    fn oversize_line_is_reported_once_and_skipped() {
        let mut input = b"OK a\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b"\nOK b\r\n");
        let got = decode(16, &input);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], Ok(Frame::Ok { id: "a".into() }));
        assert_eq!(got[1], Err(CodecError::Oversize { limit: 16 }));
        assert_eq!(got[2], Ok(Frame::Ok { id: "b".into() }));
        // Fed byte by byte, the same: the decoder never buffers past the limit.
        let mut d = LineDecoder::new(16);
        let mut v = Vec::new();
        for b in &input {
            d.feed(std::slice::from_ref(b), |r| v.push(r));
            assert!(d.buf.len() <= 17);
        }
        assert_eq!(v, got);
        assert_eq!(decode(4, b"\xff\xfe\n"), vec![Err(CodecError::NotUtf8)]);
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-z\\\\\n\r é]{0,20}"
    }
    fn token() -> impl Strategy<Value = String> {
        "[a-z0-9@.:]{1,12}"
    }

    proptest! {
        #[test]
        fn frames_round_trip(id in token(), peer in token(), body in text(), note in proptest::option::of(text()), code in 100u16..700) {
            let frames = [
                Frame::Msg { id: id.clone(), peer: peer.clone(), body: body.clone() },
                Frame::Notify { id: id.clone(), from: peer.clone(), state: PresState::Busy, note: note.clone() },
                Frame::Pres { id: id.clone(), state: PresState::Offline, note },
                Frame::Err { id: id.clone(), code, reason: body },
                Frame::Login { id, user: peer.clone(), secret: peer },
            ];
            let mut wire = String::new();
            for f in &frames {
                wire.clear();
                f.encode(&mut wire);
                prop_assert_eq!(wire.matches('\n').count(), 1);
                let got = decode(4096, wire.as_bytes());
                prop_assert_eq!(got, vec![Ok(f.clone())]);
            }
        }
    }
}

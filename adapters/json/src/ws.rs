//! A minimal WebSocket (RFC 6455) server side, sans-IO: the opening handshake (s4.2) and
//! the base framing (s5.2) with fragmentation (s5.4), ping/pong (s5.5.2-3) and close
//! (s5.5.1). No extensions, no subprotocols. One text (or binary) message carries one
//! JSON frame.
//!
//! Written here rather than taken from tokio-tungstenite: the server needs about 300
//! lines on top of `sha1` and `base64`, which the workspace already builds, and the
//! decoder then follows the adapter's rule for oversize frames (skip and go on).

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::FrameError;

/// RFC 6455 s1.3 GUID appended to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Longest opening handshake request accepted.
pub const MAX_HANDSHAKE: usize = 8192;

/// Opcodes (RFC 6455 s5.2).
pub mod opcode {
    /// Continuation frame.
    pub const CONTINUATION: u8 = 0x0;
    /// Text frame.
    pub const TEXT: u8 = 0x1;
    /// Binary frame.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// The `Sec-WebSocket-Accept` value for a key (RFC 6455 s4.2.2 item 5.4).
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Reads the client's opening handshake from `buf`. `Ok(None)`: incomplete, read more.
/// `Ok(Some((response, consumed)))`: write `response` and drop `consumed` bytes.
pub fn server_handshake(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, FrameError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HANDSHAKE {
            return Err(FrameError::Handshake("request header too long".into()));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end])
        .map_err(|_| FrameError::Handshake("request header is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or("");
    let mut parts = request.split(' ');
    if parts.next() != Some("GET") || !parts.nth(1).is_some_and(|v| v.starts_with("HTTP/1.1")) {
        return Err(FrameError::Handshake(format!(
            "not a GET HTTP/1.1 request: {request:?}"
        )));
    }
    let (mut upgrade, mut connection, mut key, mut version) = (false, false, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(FrameError::Handshake(format!("bad header line {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade = value.eq_ignore_ascii_case("websocket"),
            "connection" => {
                connection = value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            }
            "sec-websocket-key" => key = Some(value),
            "sec-websocket-version" => version = Some(value),
            _ => {}
        }
    }
    if !upgrade || !connection {
        return Err(FrameError::Handshake(
            "missing Upgrade: websocket / Connection: Upgrade".into(),
        ));
    }
    if version != Some("13") {
        return Err(FrameError::Handshake(
            "Sec-WebSocket-Version must be 13".into(),
        ));
    }
    let key = key.ok_or_else(|| FrameError::Handshake("missing Sec-WebSocket-Key".into()))?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    Ok(Some((response.into_bytes(), end + 4)))
}

/// The answer to a refused handshake.
pub fn handshake_refusal(reason: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}",
        reason.len()
    )
    .into_bytes()
}

/// Appends one frame (FIN set) to `out`; `mask` is for clients (servers never mask).
pub fn encode_frame(op: u8, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    out.push(0x80 | op);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// What the decoder found.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEvent<'a> {
    /// A complete text or binary message.
    Message(&'a [u8]),
    /// A message longer than the limit was skipped.
    TooLarge,
    /// A ping with its payload (answer with a pong).
    Ping(&'a [u8]),
    /// The peer closes, with its status code if given.
    Close(Option<u16>),
    /// A framing violation: the connection must close (status 1002).
    ProtocolError(String),
}

/// Decodes client frames (which RFC 6455 s5.1 requires to be masked).
#[derive(Debug)]
pub struct WsDecoder {
    buf: Vec<u8>,
    max: usize,
    /// The message being reassembled from fragments, and its opcode.
    message: Vec<u8>,
    in_message: bool,
    /// Payload bytes of an oversize frame still to skip; and whether the rest of the
    /// fragmented message is skipped too.
    skip: u64,
    skip_message: bool,
    failed: bool,
}

impl WsDecoder {
    /// A decoder refusing messages longer than `max` bytes.
    pub fn new(max: usize) -> WsDecoder {
        WsDecoder {
            buf: Vec::new(),
            max,
            message: Vec::new(),
            in_message: false,
            skip: 0,
            skip_message: false,
            failed: false,
        }
    }

    /// Bytes of an unfinished frame or fragmented message held (0 between messages):
    /// the driver closes a connection whose message stays unfinished too long.
    pub fn pending(&self) -> usize {
        self.buf.len() + self.message.len()
    }

    /// Feeds bytes; calls `on_event` for each event. After a `ProtocolError` everything
    /// is ignored.
    pub fn feed(&mut self, mut input: &[u8], mut on_event: impl FnMut(WsEvent<'_>)) {
        if self.failed {
            return;
        }
        if self.skip > 0 {
            let n = (self.skip.min(input.len() as u64)) as usize;
            self.skip -= n as u64;
            input = &input[n..];
        }
        self.buf.extend_from_slice(input);
        let mut pos = 0;
        loop {
            if self.skip > 0 {
                let n = (self.skip.min((self.buf.len() - pos) as u64)) as usize;
                self.skip -= n as u64;
                pos += n;
                if self.skip > 0 {
                    break;
                }
            }
            let b = &self.buf[pos..];
            if b.len() < 2 {
                break;
            }
            let (fin, rsv, op) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0F);
            let masked = b[1] & 0x80 != 0;
            let (len, mut hdr) = match b[1] & 0x7F {
                126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 if b.len() >= 10 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap_or_default()),
                    10,
                ),
                126 | 127 => break,
                n => (u64::from(n), 2),
            };
            let fail = |this: &mut Self, why: &str, on_event: &mut dyn FnMut(WsEvent<'_>)| {
                this.failed = true;
                on_event(WsEvent::ProtocolError(why.to_owned()));
            };
            if rsv != 0 {
                return fail(
                    self,
                    "reserved bits set without a negotiated extension",
                    &mut on_event,
                );
            }
            if !masked {
                return fail(
                    self,
                    "client frame not masked (RFC 6455 s5.1)",
                    &mut on_event,
                );
            }
            let control = op & 0x08 != 0;
            if control && (!fin || len > 125) {
                return fail(
                    self,
                    "fragmented or long control frame (RFC 6455 s5.5)",
                    &mut on_event,
                );
            }
            if len >> 63 != 0 {
                return fail(
                    self,
                    "payload length with its most significant bit set (RFC 6455 s5.2)",
                    &mut on_event,
                );
            }
            if !matches!(op, 0 | 1 | 2 | 8 | 9 | 10) {
                return fail(self, "unknown opcode", &mut on_event);
            }
            if op == opcode::CONTINUATION && !self.in_message {
                return fail(self, "continuation without a message", &mut on_event);
            }
            if (op == opcode::TEXT || op == opcode::BINARY) && self.in_message {
                return fail(self, "new message inside a fragmented one", &mut on_event);
            }
            let mask: [u8; 4] = match b.get(hdr..hdr + 4) {
                Some(k) => [k[0], k[1], k[2], k[3]],
                None => break,
            };
            hdr += 4;
            // Oversize data frame: report and skip its payload without buffering it.
            if !control
                && (self.skip_message
                    || len.saturating_add(self.message.len() as u64) > self.max as u64)
            {
                if !self.skip_message {
                    on_event(WsEvent::TooLarge);
                }
                self.message.clear();
                self.in_message = !fin;
                self.skip_message = !fin;
                pos += hdr;
                self.skip = len;
                continue;
            }
            let len = len as usize;
            if b.len() < hdr + len {
                break;
            }
            let payload_at = pos + hdr;
            pos = payload_at + len;
            let payload = &mut self.buf[payload_at..pos];
            for (i, x) in payload.iter_mut().enumerate() {
                *x ^= mask[i % 4];
            }
            let payload = &self.buf[payload_at..pos];
            match op {
                opcode::PING => on_event(WsEvent::Ping(payload)),
                opcode::PONG => {}
                opcode::CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    on_event(WsEvent::Close(code));
                }
                _ => {
                    if fin && !self.in_message {
                        on_event(WsEvent::Message(payload));
                    } else {
                        self.message.extend_from_slice(payload);
                        self.in_message = !fin;
                        if fin {
                            on_event(WsEvent::Message(&self.message));
                            self.message.clear();
                        }
                    }
                }
            }
        }
        self.buf.drain(..pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(d: &mut WsDecoder, input: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        d.feed(input, |e| {
            out.push(match e {
                WsEvent::Message(m) => format!("msg:{}", String::from_utf8_lossy(m)),
                other => format!("{other:?}"),
            })
        });
        out
    }

    #[test]
    fn rfc6455_accept_key_example() {
        // RFC 6455 s1.3 example.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn handshake_complete_incomplete_and_bad() {
        let req = b"GET /cpim HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nrest";
        assert_eq!(server_handshake(&req[..30]).unwrap(), None);
        let (resp, used) = server_handshake(req).unwrap().unwrap();
        assert_eq!(&req[used..], b"rest");
        assert!(String::from_utf8(resp)
            .unwrap()
            .contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        let bad = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            server_handshake(bad),
            Err(FrameError::Handshake(_))
        ));
    }

    #[test]
    fn masked_fragmented_and_control_frames() {
        let mut d = WsDecoder::new(100);
        let mut wire = Vec::new();
        encode_frame(opcode::PING, b"p", Some([1, 2, 3, 4]), &mut wire);
        // "hello" in two fragments with a ping between them
        wire.extend_from_slice(&[0x01, 0x83, 9, 9, 9, 9]);
        wire.extend(b"hel".iter().map(|b| b ^ 9));
        encode_frame(opcode::PING, b"", Some([5, 5, 5, 5]), &mut wire);
        wire.extend_from_slice(&[0x80, 0x82, 7, 7, 7, 7]);
        wire.extend(b"lo".iter().map(|b| b ^ 7));
        let mut got = Vec::new();
        for b in wire.chunks(3) {
            got.extend(events(&mut d, b));
        }
        assert_eq!(got, vec!["Ping([112])", "Ping([])", "msg:hello"]);
    }

    #[test]
    fn oversize_message_is_skipped_and_decoding_continues() {
        let mut d = WsDecoder::new(10);
        let mut wire = Vec::new();
        encode_frame(opcode::TEXT, &[b'a'; 300], Some([1, 1, 1, 1]), &mut wire);
        encode_frame(opcode::TEXT, b"ok", Some([2, 2, 2, 2]), &mut wire);
        let mut got = Vec::new();
        for b in wire.chunks(50) {
            got.extend(events(&mut d, b));
        }
        assert_eq!(got, vec!["TooLarge", "msg:ok"]);
    }

    #[test]
    fn unmasked_frame_is_a_protocol_error() {
        let mut d = WsDecoder::new(10);
        let mut wire = Vec::new();
        encode_frame(opcode::TEXT, b"x", None, &mut wire);
        let got = events(&mut d, &wire);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("ProtocolError"));
        assert!(events(&mut d, &wire).is_empty());
    }

    #[test]
    fn rfc6455_s5_2_huge_lengths_are_refused_without_overflow() {
        // Most significant bit set: a protocol error.
        let mut d = WsDecoder::new(100);
        let mut wire = vec![0x82, 0xFF];
        wire.extend_from_slice(&[0xFF; 8]);
        wire.extend_from_slice(&[1, 2, 3, 4]);
        let ev = events(&mut d, &wire);
        assert!(
            ev.len() == 1 && ev[0].contains("most significant bit"),
            "{ev:?}"
        );
        // The largest legal length after a buffered fragment: too large, skipped, no panic.
        let mut d = WsDecoder::new(100);
        let mut wire = Vec::new();
        encode_frame(opcode::TEXT, b"abc", Some([1, 2, 3, 4]), &mut wire);
        wire[0] &= 0x7F; // not FIN: "abc" stays buffered
        wire.extend_from_slice(&[0x80, 0xFF]);
        wire.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        wire.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(events(&mut d, &wire), vec!["TooLarge".to_string()]);
    }
}

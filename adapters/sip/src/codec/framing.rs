//! Stream framing (RFC 3261 s18.3): on TCP/TLS a message ends `Content-Length` octets after
//! the empty line. Leading CRLFs between messages are keep-alives (RFC 5626 s3.5.1 and
//! RFC 3261 s7.5) and are skipped.
//!
//! A connection frames with a [`Framer`], which keeps its place between reads: while the
//! empty line has not arrived it never re-examines the header bytes it already searched,
//! and once the head is parsed it only waits for the body's length. A peer that drips a
//! request one byte per read costs linear work ([`Framer::bytes_scanned`]); the head
//! limit still applies to an unfinished head.

use super::header::{parse_u32, HeaderName};
use super::skip_leading_crlf;

/// Size limits applied while framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest header section accepted (start line + headers + empty line).
    pub max_head: usize,
    /// Largest body accepted (larger ones get a 413).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// What the framer found at the start of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Need more data.
    Incomplete,
    /// `n` keep-alive octets (CR/LF) to discard.
    KeepAlive(usize),
    /// A whole message of `len` octets (head + body) is available.
    Message {
        /// Total length.
        len: usize,
    },
}

/// A framing failure: the stream cannot be resynchronised and must be closed after the
/// error response (RFC 4475 s3.1.2.3).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// Header section over the limit.
    #[error("message head exceeds {0} bytes")]
    HeadTooLarge(usize),
    /// Content-Length missing its number, negative or not a number.
    #[error("invalid Content-Length: {0}")]
    BadContentLength(&'static str),
    /// Several Content-Length headers.
    #[error("more than one Content-Length header")]
    DuplicateContentLength,
    /// Body over the limit.
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// Declared size.
        size: usize,
        /// Limit.
        limit: usize,
    },
}

impl FramingError {
    /// Status code to answer the offending request with.
    pub fn error_response_code(&self) -> u16 {
        match self {
            FramingError::HeadTooLarge(_) => 513,
            FramingError::BodyTooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// The same problem as a [`super::ParseError`] (for building the error response).
    pub fn to_parse_error(&self) -> super::ParseError {
        match *self {
            FramingError::HeadTooLarge(n) => super::ParseError::HeadTooLarge(n),
            FramingError::BadContentLength(reason) => super::ParseError::Header {
                name: "Content-Length",
                reason,
            },
            FramingError::DuplicateContentLength => super::ParseError::Duplicate("Content-Length"),
            FramingError::BodyTooLarge { size, limit } => {
                super::ParseError::BodyTooLarge { size, limit }
            }
        }
    }
}

/// Looks at the start of a stream buffer and says how long the first message is (one
/// shot; a connection uses a [`Framer`], which does not rescan across reads).
pub fn frame(buf: &[u8], limits: &Limits) -> Result<Frame, FramingError> {
    Framer::new(*limits).frame(buf)
}

/// The framing state of one stream connection.
///
/// Contract: between calls the buffer only grows at its end; after
/// [`Frame::KeepAlive`] or [`Frame::Message`] the caller removes that many bytes from
/// its front before the next call. After an error the stream is over.
#[derive(Clone, Debug)]
pub struct Framer {
    limits: Limits,
    /// Start of the header line being searched for its end.
    line_start: usize,
    /// Bytes of the head already searched for a line end.
    scanned: usize,
    /// The head is complete: its length and the body's.
    head: Option<(usize, usize)>,
    /// Bytes examined in total.
    examined: u64,
}

impl Framer {
    /// A framer for a new connection.
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            line_start: 0,
            scanned: 0,
            head: None,
            examined: 0,
        }
    }

    /// Bytes examined since the connection started: linear in the input, whatever the
    /// reads' sizes (for tests and metrics).
    pub fn bytes_scanned(&self) -> u64 {
        self.examined
    }

    /// Says how long the first message of `buf` is, resuming the previous call's work.
    pub fn frame(&mut self, buf: &[u8]) -> Result<Frame, FramingError> {
        if let Some((head_end, cl)) = self.head {
            if buf.len() < head_end + cl {
                return Ok(Frame::Incomplete);
            }
            *self = Framer::new(self.limits).counted(self.examined);
            return Ok(Frame::Message { len: head_end + cl });
        }
        if self.scanned == 0 {
            let skip = skip_leading_crlf(buf);
            if skip > 0 {
                self.examined += skip as u64;
                return Ok(Frame::KeepAlive(skip));
            }
        }
        if buf.is_empty() {
            return Ok(Frame::Incomplete);
        }
        let head_end = match self.find_head_end(buf) {
            Some(e) => e,
            None if buf.len() > self.limits.max_head => {
                return Err(FramingError::HeadTooLarge(self.limits.max_head))
            }
            None => return Ok(Frame::Incomplete),
        };
        self.examined += head_end as u64;
        let (len, cl) = parse_head(buf, head_end, &self.limits)?;
        if buf.len() < len {
            self.head = Some((head_end, cl));
            return Ok(Frame::Incomplete);
        }
        *self = Framer::new(self.limits).counted(self.examined);
        Ok(Frame::Message { len })
    }

    fn counted(mut self, examined: u64) -> Framer {
        self.examined = examined;
        self
    }

    /// The end of the head (just after the empty line), searching only bytes not yet
    /// searched. Same rule as the codec's `find_head_end`: the first empty line (LF or
    /// CRLF) after the start line.
    fn find_head_end(&mut self, buf: &[u8]) -> Option<usize> {
        loop {
            let from = self.scanned;
            let Some(i) = memchr::memchr(b'\n', &buf[from..]) else {
                self.examined += (buf.len() - from) as u64;
                self.scanned = buf.len();
                return None;
            };
            self.examined += i as u64 + 1;
            let nl = from + i;
            let pos = self.line_start;
            let line_empty = nl == pos || (nl == pos + 1 && buf[pos] == b'\r');
            if line_empty && pos > 0 {
                return Some(nl + 1);
            }
            self.line_start = nl + 1;
            self.scanned = nl + 1;
        }
    }
}

/// Checks the head `buf[..head_end]` and finds the message's length: `(total, body)`.
fn parse_head(
    buf: &[u8],
    head_end: usize,
    limits: &Limits,
) -> Result<(usize, usize), FramingError> {
    if head_end > limits.max_head {
        return Err(FramingError::HeadTooLarge(limits.max_head));
    }
    let head = &buf[..head_end];
    let mut cl: Option<usize> = None;
    let mut pos = 0;
    // first line is the start line
    if let Some(nl) = memchr::memchr(b'\n', head) {
        pos = nl + 1;
    }
    while pos < head.len() {
        let nl = memchr::memchr(b'\n', &head[pos..]).map_or(head.len(), |n| n + pos);
        let line = &head[pos..nl];
        pos = nl + 1;
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        if HeaderName::from_wire(name.trim_end()) != HeaderName::ContentLength {
            continue;
        }
        if cl.is_some() {
            return Err(FramingError::DuplicateContentLength);
        }
        let v = std::str::from_utf8(&line[colon + 1..])
            .map_err(|_| FramingError::BadContentLength("not ASCII"))?
            .trim();
        if v.starts_with('-') {
            return Err(FramingError::BadContentLength("negative"));
        }
        let n = parse_u32(v).ok_or(FramingError::BadContentLength(
            "not a decimal number below 2**32",
        ))?;
        cl = Some(n as usize);
    }
    let cl = cl.unwrap_or(0);
    if cl > limits.max_body {
        return Err(FramingError::BodyTooLarge {
            size: cl,
            limit: limits.max_body,
        });
    }
    Ok((head_end + cl, cl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let l = Limits::default();
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabcNEXT";
        assert_eq!(frame(m, &l), Ok(Frame::Message { len: m.len() - 4 }));
        assert_eq!(frame(&m[..20], &l), Ok(Frame::Incomplete));
        assert_eq!(frame(&m[..m.len() - 6], &l), Ok(Frame::Incomplete));
        assert_eq!(frame(b"\r\n\r\nOPT", &l), Ok(Frame::KeepAlive(4)));
        assert_eq!(
            frame(b"X sip:a SIP/2.0\r\nContent-Length: -999\r\n\r\n", &l),
            Err(FramingError::BadContentLength("negative"))
        );
        assert!(matches!(
            frame(b"X sip:a SIP/2.0\r\nContent-Length: 999999\r\n\r\n", &l),
            Err(FramingError::BodyTooLarge { .. })
        ));
        let big = vec![b'a'; 20000];
        assert_eq!(frame(&big, &l), Err(FramingError::HeadTooLarge(l.max_head)));
    }

    /// Feeds `input` one byte per read to one framer, removing what it frames as the
    /// transport does; checks as it goes that the work stays linear (at most 4 bytes
    /// examined per byte received) and returns the frames.
    fn drip(limits: Limits, input: &[u8]) -> Result<Vec<Frame>, FramingError> {
        let mut f = Framer::new(limits);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for (i, b) in input.iter().enumerate() {
            buf.push(*b);
            loop {
                match f.frame(&buf)? {
                    Frame::Incomplete => break,
                    fr @ (Frame::KeepAlive(n) | Frame::Message { len: n }) => {
                        buf.drain(..n);
                        out.push(fr);
                    }
                }
            }
            if i % 4096 == 0 || i + 1 == input.len() {
                assert!(
                    f.bytes_scanned() <= 4 * (i as u64 + 1),
                    "{} bytes examined after {} received: rescanning",
                    f.bytes_scanned(),
                    i + 1
                );
            }
        }
        Ok(out)
    }

    /// RFC 3261 s18.3 framing of a request dripped one byte per read: a 1 MB header
    /// line and a 1 MB body cost linear work, and the frames are the same as in one read.
    #[test]
    fn a_megabyte_request_dripped_byte_by_byte_costs_linear_work() {
        let limits = Limits {
            max_head: 2 << 20,
            max_body: 2 << 20,
        };
        let mb = "v".repeat(1 << 20);
        let body = "b".repeat(1 << 20);
        let req = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nSubject: {mb}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let bare_lf = "OPTIONS sip:a@b SIP/2.0\nl: 0\n\n";
        let wire = format!("\r\n\r\n{req}{bare_lf}");
        let frames = drip(limits, wire.as_bytes()).unwrap();
        let expect = [
            Frame::KeepAlive(1),
            Frame::KeepAlive(1),
            Frame::KeepAlive(1),
            Frame::KeepAlive(1),
            Frame::Message { len: req.len() },
            Frame::Message { len: bare_lf.len() },
        ];
        assert_eq!(frames, expect);
        assert_eq!(
            frame(req.as_bytes(), &limits),
            Ok(Frame::Message { len: req.len() })
        );
    }

    /// An unfinished head is refused (513) once it passes the limit, however it trickles.
    #[test]
    fn an_unfinished_head_over_the_limit_is_refused() {
        let limits = Limits::default();
        let mut wire = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: ".to_vec();
        wire.resize(limits.max_head + 1, b'v');
        let e = drip(limits, &wire).unwrap_err();
        assert_eq!(e, FramingError::HeadTooLarge(limits.max_head));
        assert_eq!(e.error_response_code(), 513);
    }

    /// Framing errors found after the head waited for more bytes are still reported.
    #[test]
    fn a_head_completed_late_is_checked_once_complete() {
        let l = Limits::default();
        let mut f = Framer::new(l);
        let m = b"X sip:a SIP/2.0\r\nContent-Length: 999999\r\n\r\n";
        assert_eq!(f.frame(&m[..20]), Ok(Frame::Incomplete));
        assert!(matches!(f.frame(m), Err(FramingError::BodyTooLarge { .. })));
        let mut f = Framer::new(l);
        let m = b"X sip:a SIP/2.0\r\nl: 3\r\n\r\nab";
        assert_eq!(f.frame(&m[..10]), Ok(Frame::Incomplete));
        assert_eq!(f.frame(m), Ok(Frame::Incomplete));
        let mut full = m.to_vec();
        full.extend_from_slice(b"cX");
        assert_eq!(f.frame(&full), Ok(Frame::Message { len: m.len() + 1 }));
    }
}

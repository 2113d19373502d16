//! Stream framing (RFC 3261 s18.3): on TCP/TLS a message ends `Content-Length` octets after
//! the empty line. Leading CRLFs between messages are keep-alives (RFC 5626 s3.5.1 and
//! RFC 3261 s7.5) and are skipped.

use super::header::{parse_u32, HeaderName};
use super::{find_head_end, skip_leading_crlf};

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

/// Looks at the start of a stream buffer and says how long the first message is.
pub fn frame(buf: &[u8], limits: &Limits) -> Result<Frame, FramingError> {
    let skip = skip_leading_crlf(buf);
    if skip > 0 {
        return Ok(Frame::KeepAlive(skip));
    }
    if buf.is_empty() {
        return Ok(Frame::Incomplete);
    }
    let head_end = match find_head_end(buf) {
        Some(e) => e,
        None if buf.len() > limits.max_head => {
            return Err(FramingError::HeadTooLarge(limits.max_head))
        }
        None => return Ok(Frame::Incomplete),
    };
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
    if buf.len() < head_end + cl {
        return Ok(Frame::Incomplete);
    }
    Ok(Frame::Message { len: head_end + cl })
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
}

//! Parse errors, the status a UAS answers them with (RFC 4475 s3.1.2), the default
//! reason phrases (RFC 3261 s21) and the best-effort error response to a request that
//! could not be parsed.

use bytes::Bytes;

use super::parse::{find_head_end, skip_leading_crlf};
use super::HeaderName;

/// Why a message could not be parsed. [`ParseError::error_response_code`] gives the
/// status a UAS answers a request with (RFC 4475 s3.1.2); responses that fail are dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but white space.
    #[error("empty message")]
    Empty,
    /// No empty line ends the header section.
    #[error("message head not terminated by an empty line")]
    Unterminated,
    /// The start line and headers are not UTF-8 (RFC 3261 s7.3.1: TEXT-UTF8).
    #[error("message head is not valid UTF-8")]
    NotUtf8,
    /// The request or status line does not follow the grammar.
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// A SIP version other than 2.0 (RFC 3261 s8.2.2.? / RFC 4475 s3.1.2.16: 505).
    #[error("SIP version {0} not supported")]
    Version(String),
    /// The Request-URI is malformed.
    #[error("malformed Request-URI: {0}")]
    RequestUri(&'static str),
    /// Status code not three digits in 100..=699.
    #[error("invalid status code")]
    StatusCode,
    /// A header line without a valid `name:`.
    #[error("malformed header line")]
    HeaderLine,
    /// A header value that does not follow its grammar.
    #[error("invalid {name} header: {reason}")]
    Header {
        /// Header name.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A mandatory header is missing (RFC 3261 s8.1.1).
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A single-valued header appears more than once.
    #[error("more than one {0} header")]
    Duplicate(&'static str),
    /// CSeq method differs from the request method (RFC 4475 s3.1.2.17).
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// Content-Length larger than the data received (RFC 4475 s3.1.2.2, datagram).
    #[error("Content-Length {declared} exceeds the {available} body bytes received")]
    BodyTruncated {
        /// Content-Length value.
        declared: usize,
        /// Bytes present after the head.
        available: usize,
    },
    /// Body larger than the configured limit.
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// Declared size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Header section larger than the configured limit.
    #[error("message head exceeds {0} bytes")]
    HeadTooLarge(usize),
}

impl ParseError {
    /// The status code a UAS answers a request that failed this way with.
    pub fn error_response_code(&self) -> u16 {
        match self {
            ParseError::Version(_) => 505,
            ParseError::BodyTooLarge { .. } => 413,
            ParseError::HeadTooLarge(_) => 513,
            _ => 400,
        }
    }

    /// A reason phrase naming the problem, e.g. `Bad Request (missing Call-ID header)`.
    pub fn reason_phrase(&self) -> String {
        let code = self.error_response_code();
        let mut s = format!("{} ({self})", reason_phrase(code));
        s.retain(|c| c != '\r' && c != '\n');
        s
    }
}

/// The default reason phrase of a status code (RFC 3261 s21 and SIMPLE extensions).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Provisional",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// Builds a best-effort error response to a request that could not be parsed: the status
/// line from [`ParseError::error_response_code`] with a reason naming the problem, and the
/// Via, From, To, Call-ID and CSeq lines copied verbatim when they can be found.
/// Returns `None` if the message looks like a response (those are dropped, not answered)
/// or has no Via (there is nowhere to send an answer).
pub fn error_response_for(raw: &[u8], err: &ParseError) -> Option<Bytes> {
    let start = skip_leading_crlf(raw);
    let raw = &raw[start..];
    if raw.len() >= 4 && raw[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let head_end = find_head_end(raw).unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"SIP/2.0 ");
    out.extend_from_slice(err.error_response_code().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(err.reason_phrase().as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut have_via = false;
    let mut lines = head.split('\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let mut line = line.trim_end_matches('\r').to_string();
        while let Some(next) = lines.peek() {
            if next.starts_with([' ', '\t']) {
                line.push(' ');
                line.push_str(next.trim_end_matches('\r').trim_start());
                lines.next();
            } else {
                break;
            }
        }
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let hn = HeaderName::from_wire(name.trim());
        if matches!(
            hn,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
        ) {
            have_via |= hn == HeaderName::Via;
            let canon = hn.canonical().unwrap_or("X");
            out.extend_from_slice(canon.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.trim().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if !have_via {
        return None;
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::SipMessage;

    #[test]
    fn error_response_copies_headers() {
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let err = SipMessage::parse(Bytes::from_static(raw)).unwrap_err();
        assert_eq!(err, ParseError::Missing("From"));
        let resp = error_response_for(raw, &err).unwrap();
        let s = std::str::from_utf8(&resp).unwrap();
        assert!(
            s.starts_with("SIP/2.0 400 Bad Request (missing From header)\r\n"),
            "{s}"
        );
        assert!(s.contains("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"));
    }
}

//! `message/cpim` (RFC 3862): parse and serialize.
//!
//! A `message/cpim` object is a block of *message headers* (RFC 3862 s3, formal syntax
//! s7), a blank line, and an encapsulated MIME object: its *content headers*
//! (RFC 2045), a blank line, and the payload.
//!
//! ```text
//! From: Alice <im:alice@example.com>        message headers (RFC 3862 s3/s4)
//! To: <im:bob@example.net>
//! NS: imdn <urn:ietf:params:imdn>
//! imdn.Message-ID: 34jk324j
//! DateTime: 2026-11-21T12:00:00Z
//!
//! Content-Type: text/plain; charset=utf-8   content headers (RFC 2045)
//!
//! Hello                                     payload
//! ```
//!
//! # Round trip
//!
//! [`CpimMessage::parse`] borrows from the input: every header keeps the slice of the
//! line(s) it came from, and the blank-line separators keep their exact bytes. A parsed
//! message therefore serializes byte for byte as it came in (`serialize(parse(x)) == x`),
//! also with bare-LF line ends, unusual spacing or escapes, unknown headers and binary
//! payloads. A header built by code (or changed through this API) has no such slice and
//! is written in the canonical form: `Name:;param=value SP value CRLF`. The payload is
//! never rewritten (RFC 3862 s1, RFC 3923: signatures over the inner object survive).
//!
//! # Lenient points (each a decision, kept by the round trip)
//!
//! - A bare LF ends a line like CRLF does; CR elsewhere is an error.
//! - HTAB is accepted inside header values (the grammar's `UCS-no-CTL` excludes it).
//! - A `\` in a header value that does not start a valid escape (s3.2/s7 `Escape`) is
//!   taken literally; inside a quoted `String` it is an error, as the grammar says.
//! - `From: "Name"<uri>` and `From: "Name" <uri>` are both accepted.
//! - A header name is matched case-insensitively by the accessors.
//! - `Content-Length` in the content headers is not enforced: the payload is everything
//!   after the content headers, as framed by the carrying protocol (SIP, MSRP).
//!
//! Strict points: message headers are not folded; `From` and `DateTime` appear at most
//! once (a second `From` would make the sender ambiguous); the values of From, To, cc,
//! DateTime, NS and Require follow their syntax (RFC 3862 s4, s7); undeclared prefixes
//! are kept as unknown headers.

mod builder;
mod escape;
mod grammar;
mod header;
mod message;
mod parse;

pub use builder::CpimBuilder;
pub use escape::{decode_escapes, encode_value};
pub use header::{ContentHeader, Header, NameAddr, Param};
pub use message::CpimMessage;

/// The namespace of IMDN headers (RFC 5438 s6.1): `NS: imdn <urn:ietf:params:imdn>`.
pub const IMDN_NS: &str = "urn:ietf:params:imdn";
/// The namespace unprefixed headers belong to unless an `NS` header without a prefix
/// says otherwise (RFC 3862 s3.3).
pub const CPIM_HEADERS_NS: &str = "urn:ietf:params:cpim-headers:";

/// Guards on input size. The defaults are generous for instant messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message, in bytes.
    pub max_size: usize,
    /// Most headers (message plus content headers).
    pub max_headers: usize,
    /// Longest header line (a folded content header counts all its lines), in bytes.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 4 * 1024 * 1024,
            max_headers: 256,
            max_line: 16 * 1024,
        }
    }
}

/// Why a byte string is not a `message/cpim` object. `line` is 1-based.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpimError {
    /// Larger than [`Limits::max_size`].
    #[error("message/cpim of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More headers than [`Limits::max_headers`].
    #[error("line {line}: more than {max} headers")]
    TooManyHeaders {
        /// Where the limit was crossed.
        line: usize,
        /// The limit.
        max: usize,
    },
    /// A header line longer than [`Limits::max_line`].
    #[error("line {line}: header line longer than {max} bytes")]
    LineTooLong {
        /// The line.
        line: usize,
        /// The limit.
        max: usize,
    },
    /// A header line that is not UTF-8 (RFC 3862 s3.2: headers are UTF-8).
    #[error("line {line}: header is not valid UTF-8")]
    InvalidUtf8 {
        /// The line.
        line: usize,
    },
    /// A control character (other than HTAB) in a header line, e.g. a bare CR.
    #[error("line {line}: control character 0x{byte:02x} in header")]
    ControlChar {
        /// The line.
        line: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The input ends before the blank line that ends a header block.
    #[error("line {line}: input ends inside the {section} headers (no blank line)")]
    UnexpectedEnd {
        /// The line after the last one.
        line: usize,
        /// `"message"` or `"content"`.
        section: &'static str,
    },
    /// A message header line that starts with white space: RFC 3862 headers are not folded.
    #[error("line {line}: message header lines cannot be folded (continuation line)")]
    Folded {
        /// The line.
        line: usize,
    },
    /// No `:` after the header name.
    #[error("line {line}: no ':' after header name")]
    MissingColon {
        /// The line.
        line: usize,
    },
    /// The header name is not `[Name-prefix "."] Name` (RFC 3862 s7).
    #[error("line {line}: invalid header name {name:?}")]
    InvalidHeaderName {
        /// The line.
        line: usize,
        /// The name as written.
        name: String,
    },
    /// A header parameter is malformed (RFC 3862 s7 `Header-parameters`).
    #[error("line {line}: invalid header parameter: {reason}")]
    InvalidParameter {
        /// The line.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The value does not start with the single SP the grammar requires after `:`.
    #[error("line {line}: expected one space before the header value")]
    MissingSpace {
        /// The line.
        line: usize,
    },
    /// The value of a header with a defined syntax (From, To, cc, DateTime, NS, Require)
    /// does not follow it.
    #[error("line {line}: invalid {header} value: {reason}")]
    InvalidValue {
        /// The line.
        line: usize,
        /// The header name.
        header: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A header that may appear once (From, DateTime) appears again.
    #[error("line {line}: duplicate {header} header")]
    Duplicate {
        /// The line of the second occurrence.
        line: usize,
        /// The header name.
        header: &'static str,
    },
}

/// RFC 3339 UTC time (the form of the CPIM `DateTime` header, RFC 3862 s5.4, and of the
/// IMDN `datetime`, RFC 5438 s7.2.1) for a count of seconds since the Unix epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod datetime_tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}

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

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::address::{Address, AddressError};

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

/// One `;name=value` parameter of a message header (RFC 3862 s7 `Parameter`). The
/// value is as written: a token, a number or a quoted string with its quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter name (`lang` for a `Lang-param`).
    pub name: Cow<'a, str>,
    /// The value as written (quoted strings keep their quotes and escapes).
    pub value: Cow<'a, str>,
}

impl Param<'_> {
    /// The value with quotes and escapes removed.
    pub fn decoded_value(&self) -> Cow<'_, str> {
        match self
            .value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
        {
            Some(inner) => decode_escapes(inner),
            None => Cow::Borrowed(&self.value),
        }
    }
}

/// One message header (RFC 3862 s3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    name: Cow<'a, str>,
    params: Vec<Param<'a>>,
    value: Cow<'a, str>,
    /// The exact line(s) it was parsed from, with the line end.
    raw: Option<&'a str>,
}

impl<'a> Header<'a> {
    /// A header built by code. `name` may carry a prefix (`imdn.Message-ID`); `value`
    /// is the *decoded* text: characters that need it are escaped per RFC 3862 s3.2.
    /// An invalid name is caught by [`CpimMessage::validate`] and by the parser on the
    /// way back in.
    pub fn new(name: impl Into<Cow<'a, str>>, value: &str) -> Header<'a> {
        Header {
            name: name.into(),
            params: Vec::new(),
            value: Cow::Owned(encode_value(value).into_owned()),
            raw: None,
        }
    }

    /// A header whose value is already in wire form (e.g. `Alice <im:a@b>`), not escaped again.
    pub fn new_raw_value(
        name: impl Into<Cow<'a, str>>,
        value: impl Into<Cow<'a, str>>,
    ) -> Header<'a> {
        Header {
            name: name.into(),
            params: Vec::new(),
            value: value.into(),
            raw: None,
        }
    }

    /// Adds a parameter; `value` is written as a token if it is one, else as a quoted string.
    pub fn with_param(mut self, name: impl Into<Cow<'a, str>>, value: &str) -> Header<'a> {
        let value = if !value.is_empty() && value.chars().all(is_tokenchar) {
            value.to_owned()
        } else {
            quote_string(value)
        };
        self.params.push(Param {
            name: name.into(),
            value: Cow::Owned(value),
        });
        self.raw = None;
        self
    }

    /// The full header name as written, prefix included (`imdn.Message-ID`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The prefix before the first `.` (`imdn`), if any.
    pub fn prefix(&self) -> Option<&str> {
        self.name.split_once('.').map(|(p, _)| p)
    }

    /// The name without its prefix (`Message-ID`).
    pub fn local_name(&self) -> &str {
        self.name.split_once('.').map_or(&self.name, |(_, n)| n)
    }

    /// The parameters as written.
    pub fn params(&self) -> &[Param<'a>] {
        &self.params
    }

    /// The decoded value of the parameter `name` (case-insensitive), if present.
    pub fn param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(Param::decoded_value)
    }

    /// The `lang` parameter (RFC 3862 s7 `Lang-param`), e.g. on `Subject`.
    pub fn lang(&self) -> Option<Cow<'_, str>> {
        self.param("lang")
    }

    /// The value as written, escapes included.
    pub fn raw_value(&self) -> &str {
        &self.value
    }

    /// The value with the RFC 3862 s3.2 escapes decoded.
    pub fn value(&self) -> Cow<'_, str> {
        decode_escapes(&self.value)
    }

    /// The exact input this header was parsed from (with its line end), if parsed.
    pub fn raw(&self) -> Option<&'a str> {
        self.raw
    }

    /// True if the name (with prefix) equals `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    fn write_canonical(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.as_bytes());
        out.push(b':');
        for p in &self.params {
            out.push(b';');
            out.extend_from_slice(p.name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(p.value.as_bytes());
        }
        out.push(b' ');
        out.extend_from_slice(self.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// An owned copy that borrows nothing.
    pub fn into_owned(self) -> Header<'static> {
        Header {
            name: Cow::Owned(self.name.into_owned()),
            params: self
                .params
                .into_iter()
                .map(|p| Param {
                    name: Cow::Owned(p.name.into_owned()),
                    value: Cow::Owned(p.value.into_owned()),
                })
                .collect(),
            value: Cow::Owned(self.value.into_owned()),
            raw: None,
        }
    }
}

/// One header of the encapsulated MIME object (RFC 2045; may be folded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentHeader<'a> {
    name: Cow<'a, str>,
    value: Cow<'a, str>,
    raw: Option<&'a str>,
}

impl<'a> ContentHeader<'a> {
    /// A content header built by code; written as `Name: value CRLF`.
    pub fn new(name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> ContentHeader<'a> {
        ContentHeader {
            name: name.into(),
            value: value.into(),
            raw: None,
        }
    }

    /// The name as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, unfolded and trimmed of surrounding white space.
    pub fn value(&self) -> Cow<'_, str> {
        let v = self.value.trim_matches([' ', '\t']);
        if v.contains('\n') {
            Cow::Owned(v.replace("\r\n", "").replace('\n', ""))
        } else {
            Cow::Borrowed(v)
        }
    }

    /// The exact input this header was parsed from (with its line end), if parsed.
    pub fn raw(&self) -> Option<&'a str> {
        self.raw
    }

    /// True if the name equals `name`, ignoring ASCII case (MIME names are case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// A display name and a URI: the value of `From`, `To` and `cc` (RFC 3862 s4.1-4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The `Formal-name`, decoded (quotes and escapes removed), if present.
    pub display: Option<Cow<'a, str>>,
    /// The URI between `<` and `>`.
    pub uri: &'a str,
}

impl NameAddr<'_> {
    /// The URI as an [`Address`].
    pub fn address(&self) -> Result<Address, AddressError> {
        Address::parse(self.uri)
    }
}

/// A parsed or built `message/cpim` object. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpimMessage<'a> {
    headers: Vec<Header<'a>>,
    /// The blank line after the message headers, as written (`\r\n` or `\n`).
    sep1: &'a str,
    content_headers: Vec<ContentHeader<'a>>,
    /// The blank line after the content headers, as written.
    sep2: &'a str,
    payload: Cow<'a, [u8]>,
}

impl<'a> CpimMessage<'a> {
    /// Parses with the default [`Limits`].
    pub fn parse(input: &'a [u8]) -> Result<CpimMessage<'a>, CpimError> {
        Self::parse_with(input, &Limits::default())
    }

    /// Parses with the given limits. Borrows every header and the payload from `input`.
    pub fn parse_with(input: &'a [u8], limits: &Limits) -> Result<CpimMessage<'a>, CpimError> {
        if input.len() > limits.max_size {
            return Err(CpimError::TooLarge {
                len: input.len(),
                max: limits.max_size,
            });
        }
        let mut lines = Lines {
            input,
            pos: 0,
            line: 0,
        };
        let mut count = 0usize;
        // Message headers, up to the first blank line.
        let mut headers = Vec::with_capacity(8);
        let mut seen_from = false;
        let mut seen_datetime = false;
        let sep1 = loop {
            let Some((raw, content)) = lines.next_line(limits)? else {
                return Err(CpimError::UnexpectedEnd {
                    line: lines.line + 1,
                    section: "message",
                });
            };
            let line = lines.line;
            if content.is_empty() {
                break raw;
            }
            if content.starts_with([' ', '\t']) {
                return Err(CpimError::Folded { line });
            }
            count += 1;
            if count > limits.max_headers {
                return Err(CpimError::TooManyHeaders {
                    line,
                    max: limits.max_headers,
                });
            }
            let h = parse_message_header(raw, content, line)?;
            if h.is("From") {
                if seen_from {
                    return Err(CpimError::Duplicate {
                        line,
                        header: "From",
                    });
                }
                seen_from = true;
            } else if h.is("DateTime") {
                if seen_datetime {
                    return Err(CpimError::Duplicate {
                        line,
                        header: "DateTime",
                    });
                }
                seen_datetime = true;
            }
            headers.push(h);
        };
        // Content headers (RFC 2045 style, folding allowed), up to the next blank line.
        let mut content_headers: Vec<ContentHeader<'a>> = Vec::with_capacity(4);
        let sep2 = loop {
            let Some((raw, content)) = lines.next_line(limits)? else {
                return Err(CpimError::UnexpectedEnd {
                    line: lines.line + 1,
                    section: "content",
                });
            };
            let line = lines.line;
            if content.is_empty() {
                break raw;
            }
            if content.starts_with([' ', '\t']) {
                // Continuation of the previous content header.
                let Some(prev) = content_headers.last_mut() else {
                    return Err(CpimError::InvalidHeaderName {
                        line,
                        name: content.to_owned(),
                    });
                };
                let prev_raw = prev.raw.unwrap_or("");
                let prev_start = lines.pos - raw.len() - prev_raw.len();
                let joined = utf8_at(input, prev_start, lines.pos, line)?;
                if joined.len() > limits.max_line {
                    return Err(CpimError::LineTooLong {
                        line,
                        max: limits.max_line,
                    });
                }
                let colon = prev.name.len() + 1;
                let value = strip_eol(&joined[colon..]);
                prev.raw = Some(joined);
                prev.value = Cow::Borrowed(value);
                continue;
            }
            count += 1;
            if count > limits.max_headers {
                return Err(CpimError::TooManyHeaders {
                    line,
                    max: limits.max_headers,
                });
            }
            let colon = content.find(':').ok_or(CpimError::MissingColon { line })?;
            let name = &content[..colon];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(CpimError::InvalidHeaderName {
                    line,
                    name: name.to_owned(),
                });
            }
            content_headers.push(ContentHeader {
                name: Cow::Borrowed(name),
                value: Cow::Borrowed(&content[colon + 1..]),
                raw: Some(raw),
            });
        };
        Ok(CpimMessage {
            headers,
            sep1,
            content_headers,
            sep2,
            payload: Cow::Borrowed(&input[lines.pos..]),
        })
    }

    /// A new, empty message (no headers, no payload); see also [`CpimBuilder`].
    pub fn new() -> CpimMessage<'a> {
        CpimMessage {
            headers: Vec::new(),
            sep1: "\r\n",
            content_headers: Vec::new(),
            sep2: "\r\n",
            payload: Cow::Borrowed(&[]),
        }
    }

    /// Appends the message to `out`: parsed headers as they came, others canonically.
    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        for h in &self.headers {
            match h.raw {
                Some(raw) => out.extend_from_slice(raw.as_bytes()),
                None => h.write_canonical(out),
            }
        }
        out.extend_from_slice(self.sep1.as_bytes());
        for h in &self.content_headers {
            match h.raw {
                Some(raw) => out.extend_from_slice(raw.as_bytes()),
                None => {
                    out.extend_from_slice(h.name.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(h.value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out.extend_from_slice(self.sep2.as_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// The message as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.serialize_into(&mut out);
        out
    }

    fn encoded_len_hint(&self) -> usize {
        let h: usize = self
            .headers
            .iter()
            .map(|h| h.raw.map_or(h.name.len() + h.value.len() + 8, str::len))
            .sum();
        let c: usize = self
            .content_headers
            .iter()
            .map(|h| h.raw.map_or(h.name.len() + h.value.len() + 4, str::len))
            .sum();
        h + c + self.payload.len() + 4
    }

    /// Checks a message built by code the way the parser would check it on the way back
    /// in, by serializing and parsing the result.
    pub fn validate(&self) -> Result<(), CpimError> {
        let bytes = self.to_bytes();
        CpimMessage::parse(&bytes).map(|_| ())
    }

    /// The message headers, in order.
    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// The content headers of the encapsulated object, in order.
    pub fn content_headers(&self) -> &[ContentHeader<'a>] {
        &self.content_headers
    }

    /// Every message header named `name` (prefix included, case-insensitive).
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Header<'a>> + 's {
        self.headers.iter().filter(move |h| h.is(name))
    }

    /// The first message header named `name`.
    pub fn header(&self, name: &str) -> Option<&Header<'a>> {
        self.headers.iter().find(|h| h.is(name))
    }

    /// Appends a message header.
    pub fn push_header(&mut self, header: Header<'a>) {
        self.headers.push(header);
    }

    /// Removes every message header named `name`; returns how many.
    pub fn remove_headers(&mut self, name: &str) -> usize {
        let before = self.headers.len();
        self.headers.retain(|h| !h.is(name));
        before - self.headers.len()
    }

    /// Appends a content header.
    pub fn push_content_header(&mut self, header: ContentHeader<'a>) {
        self.content_headers.push(header);
    }

    /// Replaces the payload.
    pub fn set_payload(&mut self, payload: impl Into<Cow<'a, [u8]>>) {
        self.payload = payload.into();
    }

    /// `From` (RFC 3862 s4.1).
    pub fn from(&self) -> Option<NameAddr<'_>> {
        self.header("From")
            .and_then(|h| parse_name_addr(&h.value).ok())
    }

    /// Every `To` (RFC 3862 s4.2), in order.
    pub fn to(&self) -> Vec<NameAddr<'_>> {
        self.name_addrs("To")
    }

    /// Every `cc` (RFC 3862 s4.3), in order.
    pub fn cc(&self) -> Vec<NameAddr<'_>> {
        self.name_addrs("cc")
    }

    fn name_addrs(&self, name: &str) -> Vec<NameAddr<'_>> {
        self.headers
            .iter()
            .filter(|h| h.is(name))
            .filter_map(|h| parse_name_addr(&h.value).ok())
            .collect()
    }

    /// `DateTime` as written (RFC 3862 s4.4; an RFC 3339 `date-time`).
    pub fn datetime(&self) -> Option<&str> {
        self.header("DateTime").map(Header::raw_value)
    }

    /// Every `Subject` (RFC 3862 s4.5) with its `lang` parameter, decoded.
    pub fn subjects(&self) -> Vec<(Cow<'_, str>, Option<Cow<'_, str>>)> {
        self.headers_named("Subject")
            .map(|h| (h.value(), h.lang()))
            .collect()
    }

    /// The first `Subject` without a `lang`, or else the first one.
    pub fn subject(&self) -> Option<Cow<'_, str>> {
        self.headers_named("Subject")
            .find(|h| h.lang().is_none())
            .or_else(|| self.header("Subject"))
            .map(Header::value)
    }

    /// Every `NS` declaration (RFC 3862 s4.6) as (prefix, URI), in order.
    pub fn namespaces(&self) -> Vec<(Option<&str>, &str)> {
        self.headers_named("NS")
            .filter_map(|h| parse_ns(&h.value).ok())
            .collect()
    }

    /// The prefix declared for namespace `uri` (the last declaration wins).
    pub fn prefix_for(&self, uri: &str) -> Option<&str> {
        self.namespaces()
            .into_iter()
            .rev()
            .find_map(|(p, u)| (u == uri).then_some(p).flatten())
    }

    /// The namespace URI of `prefix` (the last declaration wins).
    pub fn namespace_of(&self, prefix: &str) -> Option<&str> {
        self.namespaces()
            .into_iter()
            .rev()
            .find_map(|(p, u)| (p == Some(prefix)).then_some(u))
    }

    /// The value of the header `local` in namespace `uri`, whatever prefix the message
    /// declared for it (`imdn.Message-ID` with `NS: imdn <urn:ietf:params:imdn>`).
    pub fn ns_header(&self, uri: &str, local: &str) -> Option<&Header<'a>> {
        let prefix = self.prefix_for(uri)?;
        self.headers
            .iter()
            .find(|h| h.prefix() == Some(prefix) && h.local_name().eq_ignore_ascii_case(local))
    }

    /// `imdn.Message-ID` (RFC 5438 s6.2).
    pub fn imdn_message_id(&self) -> Option<Cow<'_, str>> {
        self.ns_header(IMDN_NS, "Message-ID").map(Header::value)
    }

    /// `imdn.Disposition-Notification` (RFC 5438 s6.3), e.g. `positive-delivery, display`.
    pub fn imdn_disposition_notification(&self) -> Option<Cow<'_, str>> {
        self.ns_header(IMDN_NS, "Disposition-Notification")
            .map(Header::value)
    }

    /// The `Require` list (RFC 3862 s4.7): header names the recipient must understand.
    pub fn require(&self) -> Vec<&str> {
        self.headers_named("Require")
            .flat_map(|h| h.raw_value().split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The first content header named `name` (case-insensitive), unfolded.
    pub fn content_header(&self, name: &str) -> Option<Cow<'_, str>> {
        self.content_headers
            .iter()
            .find(|h| h.is(name))
            .map(ContentHeader::value)
    }

    /// The content type of the encapsulated object, with its parameters as written.
    pub fn content_type(&self) -> Option<Cow<'_, str>> {
        self.content_header("Content-Type")
    }

    /// The payload: the bytes after the content headers. For a parsed message, a slice of
    /// the input.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The blank-line separators as written (for tests and diagnostics).
    pub fn separators(&self) -> (&str, &str) {
        (self.sep1, self.sep2)
    }
}

impl Default for CpimMessage<'_> {
    fn default() -> Self {
        CpimMessage::new()
    }
}

/// Builds a new envelope around a payload (RFC 3922 s4: an XMPP message becomes
/// `message/cpim`). Values are escaped as RFC 3862 s3.2 requires; the result
/// serializes canonically with CRLF line ends.
#[derive(Debug, Default)]
pub struct CpimBuilder<'a> {
    msg: CpimMessage<'a>,
}

impl<'a> CpimBuilder<'a> {
    /// An empty envelope.
    pub fn new() -> CpimBuilder<'a> {
        CpimBuilder {
            msg: CpimMessage::new(),
        }
    }

    fn name_addr_header(mut self, name: &'static str, uri: &str, display: Option<&str>) -> Self {
        let mut v = String::with_capacity(uri.len() + 16);
        if let Some(d) = display {
            v.push_str(&format_display_name(d));
            v.push(' ');
        }
        v.push('<');
        v.push_str(uri);
        v.push('>');
        self.msg.push_header(Header::new_raw_value(name, v));
        self
    }

    /// `From: [display] <uri>`.
    pub fn from(self, uri: &str, display: Option<&str>) -> Self {
        self.name_addr_header("From", uri, display)
    }

    /// `To: [display] <uri>` (may be repeated).
    pub fn to(self, uri: &str, display: Option<&str>) -> Self {
        self.name_addr_header("To", uri, display)
    }

    /// `cc: [display] <uri>` (may be repeated).
    pub fn cc(self, uri: &str, display: Option<&str>) -> Self {
        self.name_addr_header("cc", uri, display)
    }

    /// `DateTime: <date-time>` (RFC 3339; the caller formats the time).
    pub fn datetime(mut self, date_time: &str) -> Self {
        self.msg.push_header(Header::new("DateTime", date_time));
        self
    }

    /// `Subject:[;lang=..] text` (may be repeated with different languages).
    pub fn subject(mut self, text: &str, lang: Option<&str>) -> Self {
        let mut h = Header::new("Subject", text);
        if let Some(l) = lang {
            h = h.with_param("lang", l);
        }
        self.msg.push_header(h);
        self
    }

    /// `NS: [prefix] <uri>`.
    pub fn ns(mut self, prefix: Option<&str>, uri: &str) -> Self {
        let v = match prefix {
            Some(p) => format!("{p} <{uri}>"),
            None => format!("<{uri}>"),
        };
        self.msg.push_header(Header::new_raw_value("NS", v));
        self
    }

    /// `Require: name, ...`.
    pub fn require(mut self, names: &[&str]) -> Self {
        self.msg
            .push_header(Header::new_raw_value("Require", names.join(",")));
        self
    }

    /// The IMDN headers of RFC 5438 s6: declares `NS: imdn <urn:ietf:params:imdn>` and
    /// adds `imdn.Message-ID` and, if given, `imdn.Disposition-Notification`.
    pub fn imdn(self, message_id: &str, disposition: Option<&str>) -> Self {
        let mut b = self.ns(Some("imdn"), IMDN_NS);
        b.msg
            .push_header(Header::new("imdn.Message-ID", message_id));
        if let Some(d) = disposition {
            b.msg
                .push_header(Header::new("imdn.Disposition-Notification", d));
        }
        b
    }

    /// Any other message header (value escaped).
    pub fn header(mut self, header: Header<'a>) -> Self {
        self.msg.push_header(header);
        self
    }

    /// `Content-Type` of the encapsulated object.
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.msg
            .push_content_header(ContentHeader::new("Content-Type", content_type.to_owned()));
        self
    }

    /// Any other content header (e.g. `Content-ID`, `Content-Disposition`).
    pub fn content_header(mut self, name: &str, value: &str) -> Self {
        self.msg
            .push_content_header(ContentHeader::new(name.to_owned(), value.to_owned()));
        self
    }

    /// The payload, untouched.
    pub fn payload(mut self, payload: impl Into<Cow<'a, [u8]>>) -> Self {
        self.msg.set_payload(payload);
        self
    }

    /// The message. Call [`CpimMessage::validate`] if the inputs are untrusted.
    pub fn build(self) -> CpimMessage<'a> {
        self.msg
    }
}

// ---------------------------------------------------------------------------------
// Lines

struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    /// The next line as (raw with line end, content without it). `None` at end of input
    /// or when the rest has no line end (a header block must end with a blank line).
    fn next_line(&mut self, limits: &Limits) -> Result<Option<(&'a str, &'a str)>, CpimError> {
        if self.pos >= self.input.len() {
            return Ok(None);
        }
        let rest = &self.input[self.pos..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            if rest.len() > limits.max_line {
                return Err(CpimError::LineTooLong {
                    line: self.line + 1,
                    max: limits.max_line,
                });
            }
            return Ok(None);
        };
        self.line += 1;
        if nl > limits.max_line {
            return Err(CpimError::LineTooLong {
                line: self.line,
                max: limits.max_line,
            });
        }
        let raw = utf8_at(self.input, self.pos, self.pos + nl + 1, self.line)?;
        self.pos += nl + 1;
        let content = strip_eol(raw);
        if let Some(b) = content
            .bytes()
            .find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Err(CpimError::ControlChar {
                line: self.line,
                byte: b,
            });
        }
        Ok(Some((raw, content)))
    }
}

fn utf8_at(input: &[u8], start: usize, end: usize, line: usize) -> Result<&str, CpimError> {
    std::str::from_utf8(&input[start..end]).map_err(|_| CpimError::InvalidUtf8 { line })
}

fn strip_eol(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

// ---------------------------------------------------------------------------------
// Grammar (RFC 3862 s7)

/// `NAMECHAR = %x21 / %x23-27 / %x2a-2b / %x2d / %x5e-60 / %x7c / %x7e / ALPHA / DIGIT`
fn is_namechar(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '!' | '#'..='\'' | '*' | '+' | '-' | '^'..='`' | '|' | '~')
}

/// `TOKENCHAR = NAMECHAR / "." / UCS-high`
fn is_tokenchar(c: char) -> bool {
    is_namechar(c) || c == '.' || !c.is_ascii()
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_namechar)
}

/// `Header-name = [ Name-prefix "." ] Name`
fn is_header_name(s: &str) -> bool {
    match s.split_once('.') {
        Some((p, n)) => is_name(p) && is_name(n),
        None => is_name(s),
    }
}

fn parse_message_header<'a>(
    raw: &'a str,
    s: &'a str,
    line: usize,
) -> Result<Header<'a>, CpimError> {
    let name_end = s
        .find(|c: char| !(is_namechar(c) || c == '.'))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    let rest = &s[name_end..];
    let Some(mut rest) = rest.strip_prefix(':') else {
        return Err(match s.split_once(':') {
            Some((bad, _)) => CpimError::InvalidHeaderName {
                line,
                name: bad.to_owned(),
            },
            None => CpimError::MissingColon { line },
        });
    };
    if !is_header_name(name) {
        return Err(CpimError::InvalidHeaderName {
            line,
            name: name.to_owned(),
        });
    }
    let mut params = Vec::new();
    while let Some(r) = rest.strip_prefix(';') {
        let (p, r) = parse_param(r, line)?;
        params.push(p);
        rest = r;
    }
    let value = if rest.is_empty() {
        rest
    } else if let Some(v) = rest.strip_prefix(' ') {
        v
    } else {
        return Err(CpimError::MissingSpace { line });
    };
    let h = Header {
        name: Cow::Borrowed(name),
        params,
        value: Cow::Borrowed(value),
        raw: Some(raw),
    };
    check_known_header(&h, line)?;
    Ok(h)
}

fn parse_param(s: &str, line: usize) -> Result<(Param<'_>, &str), CpimError> {
    let name_end = s.find(|c: char| !is_namechar(c)).unwrap_or(s.len());
    let name = &s[..name_end];
    if name.is_empty() {
        return Err(CpimError::InvalidParameter {
            line,
            reason: "empty parameter name",
        });
    }
    let Some(r) = s[name_end..].strip_prefix('=') else {
        return Err(CpimError::InvalidParameter {
            line,
            reason: "parameter without '='",
        });
    };
    let value_len = if r.starts_with('"') {
        quoted_string_len(r).ok_or(CpimError::InvalidParameter {
            line,
            reason: "unterminated quoted string or invalid escape",
        })?
    } else {
        r.find(|c: char| !is_tokenchar(c)).unwrap_or(r.len())
    };
    if value_len == 0 {
        return Err(CpimError::InvalidParameter {
            line,
            reason: "empty parameter value",
        });
    }
    let value = &r[..value_len];
    if name == "lang" && !is_language_tag(value) {
        return Err(CpimError::InvalidParameter {
            line,
            reason: "lang is not a language tag",
        });
    }
    Ok((
        Param {
            name: Cow::Borrowed(name),
            value: Cow::Borrowed(value),
        },
        &r[value_len..],
    ))
}

/// RFC 3066 `Language-Tag = Primary-subtag *( "-" Subtag )`.
fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    (1..=8).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Length of a `String` (RFC 3862 s7) at the start of `s`, quotes included; `None` if
/// unterminated or with an invalid escape.
fn quoted_string_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += escape_len(&s[i..])?,
            _ => i += 1,
        }
    }
    None
}

/// Length of a valid `Escape` at the start of `s` (which starts with `\`).
fn escape_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    match b.get(1)? {
        b'u' => {
            let hex = b.get(2..6)?;
            hex.iter().all(u8::is_ascii_hexdigit).then_some(6)
        }
        b'b' | b't' | b'n' | b'r' | b'"' | b'\'' | b'\\' => Some(2),
        _ => None,
    }
}

fn check_known_header(h: &Header<'_>, line: usize) -> Result<(), CpimError> {
    let v: &str = &h.value;
    let bad = |header: &'static str, reason: &'static str| CpimError::InvalidValue {
        line,
        header,
        reason,
    };
    if h.is("From") || h.is("To") || h.is("cc") {
        let header = if h.is("From") {
            "From"
        } else if h.is("To") {
            "To"
        } else {
            "cc"
        };
        parse_name_addr(v).map_err(|r| bad(header, r))?;
    } else if h.is("DateTime") {
        if !is_rfc3339_date_time(v) {
            return Err(bad("DateTime", "not an RFC 3339 date-time"));
        }
    } else if h.is("NS") {
        parse_ns(v).map_err(|r| bad("NS", r))?;
    } else if h.is("Require")
        && (v.is_empty() || !v.split(',').all(|n| is_header_name(n.trim_matches(' '))))
    {
        return Err(bad(
            "Require",
            "expected a comma-separated list of header names",
        ));
    }
    Ok(())
}

/// `[ Formal-name ] "<" URI ">"`, `Formal-name = 1*( Token SP ) / String`.
fn parse_name_addr(v: &str) -> Result<NameAddr<'_>, &'static str> {
    let (display, rest) = if v.starts_with('"') {
        let n = quoted_string_len(v).ok_or("unterminated quoted display name or invalid escape")?;
        let d = decode_escapes(&v[1..n - 1]);
        let rest = &v[n..];
        (Some(d), rest.strip_prefix(' ').unwrap_or(rest))
    } else if v.starts_with('<') {
        (None, v)
    } else {
        let lt = v.find('<').ok_or("missing '<' before the URI")?;
        let name = &v[..lt];
        // 1*( Token SP ): tokens separated and followed by single spaces.
        let Some(words) = name.strip_suffix(' ') else {
            return Err("display name must be followed by a space");
        };
        if !words
            .split(' ')
            .all(|t| !t.is_empty() && t.chars().all(is_tokenchar))
        {
            return Err("display name has characters that need a quoted string");
        }
        (Some(Cow::Borrowed(words)), &v[lt..])
    };
    let inner = rest
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .ok_or("URI must be enclosed in '<' and '>' and end the value")?;
    check_uri(inner)?;
    Ok(NameAddr {
        display,
        uri: inner,
    })
}

fn check_uri(u: &str) -> Result<(), &'static str> {
    if u.is_empty() {
        return Err("empty URI");
    }
    if u.chars()
        .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
    {
        return Err("URI contains white space, '<', '>' or '\"'");
    }
    let Some((scheme, _)) = u.split_once(':') else {
        return Err("URI has no scheme");
    };
    let mut sc = scheme.chars();
    if !sc.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err("URI has an invalid scheme");
    }
    Ok(())
}

/// `NS: [ Name-prefix SP ] "<" URI ">"` (RFC 3862 s4.6); returns (prefix, uri).
fn parse_ns(v: &str) -> Result<(Option<&str>, &str), &'static str> {
    let (prefix, rest) = match v.find('<') {
        Some(0) => (None, v),
        Some(i) => {
            let p = v[..i]
                .strip_suffix(' ')
                .ok_or("prefix must be followed by a space")?;
            if !is_name(p) {
                return Err("invalid namespace prefix");
            }
            (Some(p), &v[i..])
        }
        None => return Err("missing '<' before the namespace URI"),
    };
    let uri = rest
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .ok_or("URI must be enclosed in '<' and '>' and end the value")?;
    check_uri(uri)?;
    Ok((prefix, uri))
}

/// RFC 3339 s5.6 `date-time` (T and Z in either case).
fn is_rfc3339_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let num = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    if !(1..=12).contains(&num(5))
        || !(1..=31).contains(&num(8))
        || num(11) > 23
        || num(14) > 59
        || num(17) > 60
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit())
                && (h1 - b'0') * 10 + (h2 - b'0') <= 23
                && (m1 - b'0') * 10 + (m2 - b'0') <= 59
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------
// Escapes (RFC 3862 s3.2)

/// Decodes the escapes of RFC 3862 s3.2 (`\uXXXX`, `\b`, `\t`, `\n`, `\r`, `\"`, `\'`,
/// `\\`); a `\` that starts none of them is kept. UTF-16 surrogate pairs written as two
/// `\u` escapes are combined; a lone surrogate becomes U+FFFD.
pub fn decode_escapes(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        let Some(n) = escape_len(at) else {
            out.push('\\');
            rest = &at[1..];
            continue;
        };
        match at.as_bytes()[1] {
            b'u' => {
                let hi = u32::from_str_radix(&at[2..6], 16).unwrap_or(0xFFFD);
                let mut used = 6;
                let c = if (0xD800..0xDC00).contains(&hi) {
                    let lo = at
                        .get(6..)
                        .filter(|r| r.starts_with("\\u") && escape_len(r) == Some(6))
                        .and_then(|r| u32::from_str_radix(&r[2..6], 16).ok())
                        .filter(|lo| (0xDC00..0xE000).contains(lo));
                    match lo {
                        Some(lo) => {
                            used = 12;
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        }
                        None => None,
                    }
                } else {
                    char::from_u32(hi)
                };
                out.push(c.unwrap_or('\u{FFFD}'));
                rest = &at[used..];
                continue;
            }
            b'b' => out.push('\u{8}'),
            b't' => out.push('\t'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            other => out.push(char::from(other)),
        }
        rest = &at[n..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Escapes `s` for a header value (RFC 3862 s3.2): `\` and control characters.
pub fn encode_value(s: &str) -> Cow<'_, str> {
    encode_with(s, false)
}

fn encode_with(s: &str, quote: bool) -> Cow<'_, str> {
    let needs = |c: char| c == '\\' || c.is_control() || (quote && c == '"');
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' if quote => out.push_str("\\\""),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn quote_string(s: &str) -> String {
    format!("\"{}\"", encode_with(s, true))
}

/// A display name as `1*( Token SP )` when it is made of tokens, else as a `String`.
fn format_display_name(d: &str) -> String {
    if !d.is_empty()
        && d.split(' ')
            .all(|t| !t.is_empty() && t.chars().all(is_tokenchar))
    {
        d.to_owned()
    } else {
        quote_string(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC3862_EXAMPLE: &str = "From: MR SANDERS <im:piglet@100akerwood.com>\r\n\
To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n\
DateTime: 2000-12-13T13:40:00-08:00\r\n\
Subject: the weather will be fine today\r\n\
Subject:;lang=fr beau temps prevu pour aujourd'hui\r\n\
NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n\
Require: MyFeatures.VitalMessageOption\r\n\
MyFeatures.VitalMessageOption: Confirmation-requested\r\n\
MyFeatures.WackyMessageOption: Use-silly-font\r\n\
\r\n\
Content-type: text/xml; charset=utf-8\r\n\
Content-ID: <1234567890@foo.com>\r\n\
\r\n\
<body>\r\n\
Here is the text of my message.\r\n\
</body>\r\n";

    /// After the example of RFC 3862 s6 (as recalled; the search tool gave only the
    /// RFC's first page): prefixed headers, Require, Subject with lang, XML payload.
    #[test]
    fn rfc3862_s6_example_parses_and_round_trips() {
        let m = CpimMessage::parse(RFC3862_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(m.to_bytes(), RFC3862_EXAMPLE.as_bytes());
        let from = m.from().unwrap();
        assert_eq!(from.display.as_deref(), Some("MR SANDERS"));
        assert_eq!(from.uri, "im:piglet@100akerwood.com");
        assert_eq!(from.address().unwrap().user.as_deref(), Some("piglet"));
        assert_eq!(m.to()[0].display.as_deref(), Some("Depressed Donkey"));
        assert_eq!(m.datetime(), Some("2000-12-13T13:40:00-08:00"));
        let subjects = m.subjects();
        assert_eq!(subjects.len(), 2);
        assert_eq!(subjects[1].1.as_deref(), Some("fr"));
        assert_eq!(
            m.subject().as_deref(),
            Some("the weather will be fine today")
        );
        assert_eq!(
            m.namespace_of("MyFeatures"),
            Some("mid:MessageFeatures@id.foo.com")
        );
        assert_eq!(m.require(), vec!["MyFeatures.VitalMessageOption"]);
        assert_eq!(
            m.ns_header("mid:MessageFeatures@id.foo.com", "WackyMessageOption")
                .unwrap()
                .value(),
            "Use-silly-font"
        );
        assert_eq!(m.content_type().as_deref(), Some("text/xml; charset=utf-8"));
        assert_eq!(
            m.content_header("content-id").as_deref(),
            Some("<1234567890@foo.com>")
        );
        assert!(m.payload().starts_with(b"<body>"));
    }

    #[test]
    fn imdn_headers_with_any_prefix() {
        let s = "From: <sip:a@example.com>\r\nTo: <sip:b@example.com>\r\nNS: x <urn:ietf:params:imdn>\r\n\
x.Message-ID: 34jk324j\r\nx.Disposition-Notification: positive-delivery, display\r\n\r\n\
Content-Type: text/plain\r\n\r\nhi";
        let m = CpimMessage::parse(s.as_bytes()).unwrap();
        assert_eq!(m.imdn_message_id().as_deref(), Some("34jk324j"));
        assert_eq!(
            m.imdn_disposition_notification().as_deref(),
            Some("positive-delivery, display")
        );
        assert_eq!(m.payload(), b"hi");
        assert_eq!(m.prefix_for(IMDN_NS), Some("x"));
    }

    #[test]
    fn escapes_decode_per_s3_2() {
        let s = "Subject: a\\u00e9\\tb\\\\c\\\"d \\q\r\nX: \\ud83d\\ude00\r\n\r\n\r\n";
        let m = CpimMessage::parse(s.as_bytes()).unwrap();
        assert_eq!(m.subject().as_deref(), Some("a\u{e9}\tb\\c\"d \\q"));
        assert_eq!(m.header("X").unwrap().value(), "\u{1F600}");
        assert_eq!(m.to_bytes(), s.as_bytes());
    }

    #[test]
    fn quoted_display_name_and_params() {
        let s = "From: \"Alice \\\"A\\\" Smith\" <im:alice@example.com>\r\n\
To:;x-p=\"q v\";n=12 <im:bob@example.com>\r\ncc: <im:c@example.com>\r\ncc: Carol B <im:d@example.com>\r\n\r\n\r\n";
        let m = CpimMessage::parse(s.as_bytes()).unwrap();
        assert_eq!(
            m.from().unwrap().display.as_deref(),
            Some("Alice \"A\" Smith")
        );
        let to = m.header("To").unwrap();
        assert_eq!(to.param("x-p").as_deref(), Some("q v"));
        assert_eq!(to.param("n").as_deref(), Some("12"));
        assert_eq!(m.cc().len(), 2);
        assert_eq!(m.cc()[1].display.as_deref(), Some("Carol B"));
        assert_eq!(m.content_headers().len(), 0);
        assert_eq!(m.payload(), b"");
    }

    #[test]
    fn bare_lf_and_folded_content_header_round_trip() {
        let s = "From: <im:a@b.c>\n\nContent-Type: text/plain;\r\n charset=utf-8\n\nbody\r\n";
        let m = CpimMessage::parse(s.as_bytes()).unwrap();
        assert_eq!(m.separators(), ("\n", "\n"));
        assert_eq!(
            m.content_type().as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(m.to_bytes(), s.as_bytes());
    }

    #[test]
    fn binary_payload_is_borrowed() {
        let mut s =
            b"From: <im:a@b.c>\r\n\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        s.extend_from_slice(&[0, 0xff, 0xfe, b'\r', b'\n', 0x80]);
        let m = CpimMessage::parse(&s).unwrap();
        assert_eq!(m.payload(), &[0, 0xff, 0xfe, b'\r', b'\n', 0x80]);
        assert_eq!(m.payload().as_ptr(), s[s.len() - 6..].as_ptr());
        assert_eq!(m.to_bytes(), s);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, CpimError)] = &[
            (
                "From: <im:a@b>\r\nbroken line\r\n\r\n\r\n",
                CpimError::MissingColon { line: 2 },
            ),
            (
                "From: <im:a@b>\r\n folded\r\n\r\n\r\n",
                CpimError::Folded { line: 2 },
            ),
            (
                "a.b.c: x\r\n\r\n\r\n",
                CpimError::InvalidHeaderName {
                    line: 1,
                    name: "a.b.c".into(),
                },
            ),
            ("X:x\r\n\r\n\r\n", CpimError::MissingSpace { line: 1 }),
            (
                "X:;lang=\"fr\" y\r\n\r\n\r\n",
                CpimError::InvalidParameter {
                    line: 1,
                    reason: "lang is not a language tag",
                },
            ),
            (
                "X:;p y\r\n\r\n\r\n",
                CpimError::InvalidParameter {
                    line: 1,
                    reason: "parameter without '='",
                },
            ),
            (
                "From: <im:a@b>\r\nFrom: <im:c@d>\r\n\r\n\r\n",
                CpimError::Duplicate {
                    line: 2,
                    header: "From",
                },
            ),
            (
                "To: im:a@b\r\n\r\n\r\n",
                CpimError::InvalidValue {
                    line: 1,
                    header: "To",
                    reason: "missing '<' before the URI",
                },
            ),
            (
                "DateTime: yesterday\r\n\r\n\r\n",
                CpimError::InvalidValue {
                    line: 1,
                    header: "DateTime",
                    reason: "not an RFC 3339 date-time",
                },
            ),
            (
                "NS: <>\r\n\r\n\r\n",
                CpimError::InvalidValue {
                    line: 1,
                    header: "NS",
                    reason: "empty URI",
                },
            ),
            (
                "X: a\rb\r\n\r\n\r\n",
                CpimError::ControlChar {
                    line: 1,
                    byte: b'\r',
                },
            ),
            (
                "From: <im:a@b>\r\n",
                CpimError::UnexpectedEnd {
                    line: 2,
                    section: "message",
                },
            ),
            (
                "From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\n",
                CpimError::UnexpectedEnd {
                    line: 4,
                    section: "content",
                },
            ),
            (
                "",
                CpimError::UnexpectedEnd {
                    line: 1,
                    section: "message",
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                CpimMessage::parse(input.as_bytes()).unwrap_err(),
                *want,
                "{input:?}"
            );
        }
        let mut bad = b"X: \xff\r\n\r\n\r\n".to_vec();
        assert_eq!(
            CpimMessage::parse(&bad).unwrap_err(),
            CpimError::InvalidUtf8 { line: 1 }
        );
        bad.clear();
        assert!(CpimError::MissingColon { line: 7 }
            .to_string()
            .contains("line 7"));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_size: 100,
            max_headers: 2,
            max_line: 30,
        };
        let big = vec![b'a'; 101];
        assert!(matches!(
            CpimMessage::parse_with(&big, &limits),
            Err(CpimError::TooLarge { len: 101, max: 100 })
        ));
        let many = "A: 1\r\nB: 2\r\nC: 3\r\n\r\n\r\n";
        assert_eq!(
            CpimMessage::parse_with(many.as_bytes(), &limits).unwrap_err(),
            CpimError::TooManyHeaders { line: 3, max: 2 }
        );
        let long = format!("A: {}\r\n\r\n\r\n", "x".repeat(40));
        assert_eq!(
            CpimMessage::parse_with(long.as_bytes(), &limits).unwrap_err(),
            CpimError::LineTooLong { line: 1, max: 30 }
        );
    }

    #[test]
    fn builder_serializes_canonically_and_parses_back() {
        let m = CpimBuilder::new()
            .from("xmpp:juliet@example.com", Some("Juliet Capulet"))
            .to("sip:romeo@example.net", None)
            .cc("im:nurse@example.com", Some("the \"Nurse\""))
            .datetime("2026-11-21T12:00:00Z")
            .subject("line1\nline2 \\ back", None)
            .subject("salut", Some("fr"))
            .imdn("abc123", Some("positive-delivery"))
            .content_type("text/plain; charset=utf-8")
            .payload(&b"Wherefore art thou?"[..])
            .build();
        let bytes = m.to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(
            text,
            "From: Juliet Capulet <xmpp:juliet@example.com>\r\n\
To: <sip:romeo@example.net>\r\n\
cc: \"the \\\"Nurse\\\"\" <im:nurse@example.com>\r\n\
DateTime: 2026-11-21T12:00:00Z\r\n\
Subject: line1\\nline2 \\\\ back\r\n\
Subject:;lang=fr salut\r\n\
NS: imdn <urn:ietf:params:imdn>\r\n\
imdn.Message-ID: abc123\r\n\
imdn.Disposition-Notification: positive-delivery\r\n\
\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Wherefore art thou?"
        );
        let back = CpimMessage::parse(&bytes).unwrap();
        assert_eq!(back.subject().as_deref(), Some("line1\nline2 \\ back"));
        assert_eq!(back.cc()[0].display.as_deref(), Some("the \"Nurse\""));
        assert_eq!(back.imdn_message_id().as_deref(), Some("abc123"));
        assert_eq!(back.payload(), b"Wherefore art thou?");
        assert!(m.validate().is_ok());
    }

    #[test]
    fn edited_message_keeps_untouched_lines() {
        let s = "From:  <im:a@b.c>\r\nX-Odd:;a=b  spaced\r\n\r\nContent-Type: text/plain\r\n\r\nx";
        // "From:  <" has two spaces: the value starts with a space, so it is not a name-addr.
        assert!(CpimMessage::parse(s.as_bytes()).is_err());
        let s = "From: <im:a@b.c>\r\nX-Odd:;a=b  spaced\r\n\r\nContent-Type: text/plain\r\n\r\nx";
        let mut m = CpimMessage::parse(s.as_bytes()).unwrap();
        m.push_header(Header::new("X-New", "v"));
        assert_eq!(
            m.to_bytes(),
            b"From: <im:a@b.c>\r\nX-Odd:;a=b  spaced\r\nX-New: v\r\n\r\nContent-Type: text/plain\r\n\r\nx"
        );
        assert_eq!(m.remove_headers("x-odd"), 1);
    }

    proptest::proptest! {
        /// Any message built by code parses back to the same values and re-serializes
        /// to the same bytes.
        #[test]
        fn built_message_round_trips(
            from_user in "[a-z0-9.]{1,12}",
            display in proptest::option::of("\\PC{0,20}"),
            subject in "\\PC{0,40}",
            lang in proptest::option::of("[a-z]{2}(-[A-Z]{2})?"),
            extra in "\\PC{0,30}",
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let uri = format!("im:{from_user}@example.com");
            let m = CpimBuilder::new()
                .from(&uri, display.as_deref())
                .to("im:b@example.com", None)
                .subject(&subject, lang.as_deref())
                .header(Header::new("X-Extra", &extra))
                .content_type("application/octet-stream")
                .payload(payload.clone())
                .build();
            let bytes = m.to_bytes();
            let back = CpimMessage::parse(&bytes).unwrap();
            proptest::prop_assert_eq!(back.to_bytes(), bytes.clone());
            let f = back.from().unwrap();
            proptest::prop_assert_eq!(f.uri, uri.as_str());
            let want_display = display.filter(|d| !d.is_empty());
            proptest::prop_assert_eq!(f.display.as_deref().filter(|d| !d.is_empty()), want_display.as_deref());
            let got_subject = back.subject();
            proptest::prop_assert_eq!(got_subject.as_deref(), Some(subject.as_str()));
            proptest::prop_assert_eq!(back.header("X-Extra").unwrap().value(), extra.as_str());
            proptest::prop_assert_eq!(back.payload(), &payload[..]);
        }

        /// Whatever the parser accepts, it gives back byte for byte.
        #[test]
        fn parsed_message_round_trips(
            lines in proptest::collection::vec("[A-Za-z.;=:\" <>@\\\\-]{0,30}", 0..6),
            eol in proptest::sample::select(vec!["\r\n", "\n"]),
            body in "\\PC{0,20}",
        ) {
            let mut s = String::new();
            for l in &lines {
                s.push_str(l);
                s.push_str(eol);
            }
            s.push_str(eol);
            s.push_str("Content-Type: text/plain");
            s.push_str(eol);
            s.push_str(eol);
            s.push_str(&body);
            if let Ok(m) = CpimMessage::parse(s.as_bytes()) {
                proptest::prop_assert_eq!(m.to_bytes(), s.as_bytes());
            }
        }

        #[test]
        fn escape_round_trip(s in "\\PC*|[\\x00-\\x1f\\\\\"]{0,10}") {
            let enc = encode_value(&s);
            proptest::prop_assert_eq!(decode_escapes(&enc), s.as_str());
            let q = quote_string(&s);
            proptest::prop_assert_eq!(quoted_string_len(&q), Some(q.len()));
        }
    }
}

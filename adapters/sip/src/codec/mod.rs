//! SIP message codec (RFC 3261 s7, s20, s25).
//!
//! Parsing is zero-copy: a [`Request`]/[`Response`] keeps the received [`Bytes`] buffer and
//! stores every header name and value as a byte range into it (folded values, which are
//! rare, are the only ones copied, to collapse the folding into one SP). Typed views
//! ([`NameAddr`], [`Via`], [`Uri`]) borrow from the message and are produced on demand;
//! the mandatory headers (Via, From, To, Call-ID, CSeq) and the scalar headers
//! (Content-Length, Max-Forwards, Expires, CSeq) are checked while parsing, so a message
//! that parsed has well-formed versions of them.
//!
//! Serialising writes the start line, the headers in order (known names in their
//! canonical long form), a `Content-Length` computed from the body, and the body.

mod chars;
pub mod framing;
pub mod header;
pub mod method;
pub mod params;
pub mod uri;
pub mod validate;

use std::fmt;

use bytes::Bytes;

use chars::{is_token, is_token_str, is_word, trim_ws};
pub use header::{split_list, CSeq, HeaderName, NameAddr, Via};
pub use method::Method;
pub use params::Params;
pub use uri::{Host, Scheme, Uri};
pub use validate::{Policy, Rejection};

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

/// A range of the message buffer, or an owned replacement value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Text {
    Span(u32, u32),
    Owned(Box<str>),
}

/// One header field: its name and its value (LWS-trimmed, folding collapsed).
#[derive(Clone, Debug)]
struct Header {
    name: HeaderName,
    name_text: Text,
    value: Text,
}

/// Headers and body shared by requests and responses.
#[derive(Clone, Debug)]
pub struct Parts {
    buf: Bytes,
    headers: Vec<Header>,
    body: Bytes,
    cseq: CSeq,
    idx_call_id: u16,
    idx_from: u16,
    idx_to: u16,
}

impl Parts {
    fn text<'a>(&'a self, t: &'a Text) -> &'a str {
        match t {
            Text::Span(s, e) => {
                std::str::from_utf8(&self.buf[*s as usize..*e as usize]).unwrap_or("")
            }
            Text::Owned(s) => s,
        }
    }

    /// All headers in order: `(name, name as written, value)`.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, &str, &str)> + '_ {
        self.headers
            .iter()
            .map(|h| (h.name, self.text(&h.name_text), self.text(&h.value)))
    }

    /// First value of a known header.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.text(&h.value))
    }

    /// All values of a known header, one per header line (not split at commas; use
    /// [`split_list`] or the typed accessors for list headers).
    pub fn header_all(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.text(&h.value))
    }

    /// First value of a header looked up by its name text (any spelling, compact forms and
    /// extension headers included; case-insensitive).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        let known = HeaderName::from_wire(name);
        self.headers
            .iter()
            .find(|h| {
                if known == HeaderName::Other {
                    h.name == HeaderName::Other
                        && self.text(&h.name_text).eq_ignore_ascii_case(name)
                } else {
                    h.name == known
                }
            })
            .map(|h| self.text(&h.value))
    }

    /// The elements of a list header across all its lines (e.g. every Allow token).
    pub fn list(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.header_all(name)
            .flat_map(split_list)
            .filter(|s| !s.is_empty())
    }

    /// Call-ID.
    pub fn call_id(&self) -> &str {
        self.text(&self.headers[self.idx_call_id as usize].value)
    }

    /// CSeq.
    pub fn cseq(&self) -> &CSeq {
        &self.cseq
    }

    /// From (validated while parsing).
    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(self.text(&self.headers[self.idx_from as usize].value)).map_err(|r| {
            ParseError::Header {
                name: "From",
                reason: r,
            }
        })
    }

    /// To (validated while parsing).
    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(self.text(&self.headers[self.idx_to as usize].value)).map_err(|r| {
            ParseError::Header {
                name: "To",
                reason: r,
            }
        })
    }

    /// The From tag.
    pub fn from_tag(&self) -> Option<&str> {
        self.from().ok().and_then(|n| n.tag())
    }

    /// The To tag.
    pub fn to_tag(&self) -> Option<&str> {
        self.to().ok().and_then(|n| n.tag())
    }

    /// All Via values, top first.
    pub fn vias(&self) -> impl Iterator<Item = Via<'_>> + '_ {
        self.list(HeaderName::Via)
            .filter_map(|v| Via::parse(v).ok())
    }

    /// The top Via.
    pub fn top_via(&self) -> Option<Via<'_>> {
        self.vias().next()
    }

    /// Contact values (`*` yields nothing here; check `header(Contact) == Some("*")`).
    pub fn contacts(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.list(HeaderName::Contact)
            .filter(|s| *s != "*")
            .map(|v| {
                NameAddr::parse(v).map_err(|r| ParseError::Header {
                    name: "Contact",
                    reason: r,
                })
            })
    }

    /// Expires header (validated to fit 32 bits while parsing).
    pub fn expires(&self) -> Option<u32> {
        self.header(HeaderName::Expires)
            .and_then(|v| header::parse_u32(trim_ws(v)))
    }

    /// Max-Forwards.
    pub fn max_forwards(&self) -> Option<u32> {
        self.header(HeaderName::MaxForwards)
            .and_then(|v| header::parse_u32(trim_ws(v)))
    }

    /// Content-Type value.
    pub fn content_type(&self) -> Option<&str> {
        self.header(HeaderName::ContentType)
    }

    /// The body (binary-safe, shares the receive buffer).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Replaces the value of the `n`th header (in order) with an owned value.
    fn set_value(&mut self, n: usize, value: String) {
        if let Some(h) = self.headers.get_mut(n) {
            h.value = Text::Owned(value.into_boxed_str());
        }
    }

    fn reindex(&mut self) {
        for (i, h) in self.headers.iter().enumerate() {
            match h.name {
                HeaderName::CallId => self.idx_call_id = i as u16,
                HeaderName::From => self.idx_from = i as u16,
                HeaderName::To => self.idx_to = i as u16,
                _ => {}
            }
        }
    }

    fn encode_headers(&self, out: &mut Vec<u8>) {
        for h in &self.headers {
            if h.name == HeaderName::ContentLength {
                continue;
            }
            let name = h
                .name
                .canonical()
                .unwrap_or_else(|| self.text(&h.name_text));
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.text(&h.value).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Length: ");
        let mut num = itoa_buf(self.body.len() as u64);
        out.extend_from_slice(num.as_bytes());
        num.clear();
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
    }
}

fn itoa_buf(v: u64) -> String {
    v.to_string()
}

/// A SIP request.
#[derive(Clone, Debug)]
pub struct Request {
    method: Method,
    uri: Text,
    parts: Parts,
}

/// A SIP response.
#[derive(Clone, Debug)]
pub struct Response {
    code: u16,
    reason: Text,
    parts: Parts,
}

/// A parsed SIP message.
#[derive(Clone, Debug)]
pub enum SipMessage {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl std::ops::Deref for Request {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl std::ops::Deref for Response {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.parts
    }
}

impl Request {
    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The Request-URI as written.
    pub fn uri_str(&self) -> &str {
        self.parts.text(&self.uri)
    }

    /// The Request-URI (validated while parsing).
    pub fn uri(&self) -> Result<Uri<'_>, ParseError> {
        Uri::parse(self.uri_str()).map_err(ParseError::RequestUri)
    }

    /// Starts building a request.
    pub fn builder(method: &Method, uri: &str) -> MessageBuilder {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(method.as_str().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(uri.as_bytes());
        buf.extend_from_slice(b" SIP/2.0\r\n");
        MessageBuilder {
            buf,
            body: Bytes::new(),
        }
    }

    /// Adds `received` and `rport` to the top Via (RFC 3261 s18.2.1, RFC 3581 s4):
    /// `received` when the sent-by host differs from the source address or `rport` was
    /// asked for; `rport=<port>` when the request carried an empty `rport`.
    pub fn stamp_received(&mut self, source: std::net::SocketAddr) {
        let Some(pos) = self
            .parts
            .headers
            .iter()
            .position(|h| h.name == HeaderName::Via)
        else {
            return;
        };
        let value = self.parts.text(&self.parts.headers[pos].value).to_string();
        // only the first element of the first Via line is the top Via
        let Some(first) = split_list(&value).next() else {
            return;
        };
        let first_len = {
            let off = first.as_ptr() as usize - value.as_ptr() as usize;
            off + first.len()
        };
        let Ok(via) = Via::parse(first) else { return };
        let ip = source.ip();
        let host_matches = via.host.ip() == Some(ip);
        let rport_empty = matches!(via.rport(), Some(None));
        if host_matches && !rport_empty {
            return;
        }
        let mut new_first = String::with_capacity(first.len() + 40);
        let params_start = first.len() - via.params.as_str().len();
        new_first.push_str(&first[..params_start]);
        for (n, v) in via.params.iter() {
            if n.eq_ignore_ascii_case("received") || n.eq_ignore_ascii_case("rport") {
                continue;
            }
            new_first.push(';');
            new_first.push_str(n);
            if let Some(v) = v {
                new_first.push('=');
                new_first.push_str(v);
            }
        }
        if !host_matches || rport_empty {
            new_first.push_str(";received=");
            match ip {
                std::net::IpAddr::V4(a) => new_first.push_str(&a.to_string()),
                std::net::IpAddr::V6(a) => {
                    new_first.push('[');
                    new_first.push_str(&a.to_string());
                    new_first.push(']');
                }
            }
        }
        if let Some(rp) = via.rport() {
            new_first.push_str(";rport");
            match rp {
                None => {
                    new_first.push('=');
                    new_first.push_str(&source.port().to_string());
                }
                Some(v) => {
                    new_first.push('=');
                    new_first.push_str(v);
                }
            }
        }
        new_first.push_str(&value[first_len..]);
        self.parts.set_value(pos, new_first);
    }

    /// Inserts a header before all others (the endpoint uses it to add its Via).
    pub fn prepend_header(&mut self, name: HeaderName, value: String) {
        let name_text = Text::Owned(name.canonical().unwrap_or("X-Unknown").into());
        self.parts.headers.insert(
            0,
            Header {
                name,
                name_text,
                value: Text::Owned(value.into_boxed_str()),
            },
        );
        self.parts.idx_call_id += 1;
        self.parts.idx_from += 1;
        self.parts.idx_to += 1;
    }

    /// Removes every header with this name (e.g. a Via the TU left in by mistake). The
    /// mandatory From, To, Call-ID and CSeq cannot be removed (no-op).
    pub fn remove_headers(&mut self, name: HeaderName) {
        if matches!(
            name,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::Other
        ) {
            return;
        }
        let keep: Vec<Header> = self
            .parts
            .headers
            .drain(..)
            .filter(|h| h.name != name)
            .collect();
        self.parts.headers = keep;
        self.parts.reindex();
    }

    /// Serialises the request.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri_str().as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\n");
        self.parts.encode_headers(out);
    }

    /// Serialises the request into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.parts.buf.len() + 64);
        self.encode(&mut v);
        Bytes::from(v)
    }

    /// The Via branch of the top Via, if any.
    pub fn branch(&self) -> Option<&str> {
        self.top_via().and_then(|v| v.branch())
    }
}

impl Response {
    /// Status code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// Reason phrase.
    pub fn reason(&self) -> &str {
        self.parts.text(&self.reason)
    }

    /// Starts building a response from scratch (for tests and proxies; a UAS normally
    /// uses [`Response::for_request`]).
    pub fn builder(code: u16, reason: &str) -> MessageBuilder {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(b"SIP/2.0 ");
        buf.extend_from_slice(code.to_string().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(sanitize_line(reason).as_bytes());
        buf.extend_from_slice(b"\r\n");
        MessageBuilder {
            buf,
            body: Bytes::new(),
        }
    }

    /// Builds a response to `req` per RFC 3261 s8.2.6: Via (all, in order), From, To,
    /// Call-ID and CSeq are copied; a To tag is added (a fresh random one) unless the
    /// request had one or the code is 100. `reason` defaults to the standard phrase.
    pub fn for_request(req: &Request, code: u16, reason: Option<&str>) -> MessageBuilder {
        Self::for_request_tagged(req, code, reason, None)
    }

    /// Like [`Response::for_request`] with a chosen To tag (used when several responses
    /// of one dialog must carry the same tag).
    pub fn for_request_tagged(
        req: &Request,
        code: u16,
        reason: Option<&str>,
        to_tag: Option<&str>,
    ) -> MessageBuilder {
        let mut b = Response::builder(code, reason.unwrap_or_else(|| reason_phrase(code)));
        for h in &req.parts.headers {
            let value = req.parts.text(&h.value);
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    b = b.header(h.name, value);
                }
                HeaderName::To => {
                    let has_tag = NameAddr::parse(value).ok().and_then(|n| n.tag()).is_some();
                    if has_tag || code == 100 {
                        b = b.header(HeaderName::To, value);
                    } else {
                        let tag = match to_tag {
                            Some(t) => t.to_string(),
                            None => new_tag(),
                        };
                        b = b.header(HeaderName::To, &format!("{value};tag={tag}"));
                    }
                }
                _ => {}
            }
        }
        b
    }

    /// Serialises the response.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(self.code.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason().as_bytes());
        out.extend_from_slice(b"\r\n");
        self.parts.encode_headers(out);
    }

    /// Serialises the response into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.parts.buf.len() + 64);
        self.encode(&mut v);
        Bytes::from(v)
    }
}

impl SipMessage {
    /// Parses a datagram (RFC 3261 s18.3: without Content-Length the body runs to the end
    /// of the datagram; octets past Content-Length are ignored, RFC 4475 s3.1.1.8).
    pub fn parse(buf: Bytes) -> Result<SipMessage, ParseError> {
        parse_message(buf, false, true, true)
    }

    /// Parses one message framed from a stream (missing Content-Length means no body).
    pub fn parse_framed(buf: Bytes) -> Result<SipMessage, ParseError> {
        parse_message(buf, true, true, true)
    }

    /// The common parts.
    pub fn parts(&self) -> &Parts {
        match self {
            SipMessage::Request(r) => &r.parts,
            SipMessage::Response(r) => &r.parts,
        }
    }

    /// Serialises the message.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SipMessage::Request(r) => r.encode(out),
            SipMessage::Response(r) => r.encode(out),
        }
    }

    /// Serialises into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

impl fmt::Display for SipMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// A fresh random tag (RFC 3261 s19.3: at least 32 bits of randomness).
pub fn new_tag() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// A fresh RFC 3261 branch (`z9hG4bK` + 64 random bits).
pub fn new_branch() -> String {
    use rand::Rng;
    format!("z9hG4bK{:016x}", rand::thread_rng().gen::<u64>())
}

fn sanitize_line(s: &str) -> String {
    s.chars().filter(|c| *c != '\r' && *c != '\n').collect()
}

/// Anything usable as a header name in a builder.
pub trait HeaderKey {
    /// The name text to write.
    fn key(&self) -> &str;
}

impl HeaderKey for HeaderName {
    fn key(&self) -> &str {
        self.canonical().unwrap_or("X-Unknown")
    }
}

impl HeaderKey for &str {
    fn key(&self) -> &str {
        self
    }
}

impl HeaderKey for String {
    fn key(&self) -> &str {
        self
    }
}

/// Builds a request or a response: the start line, headers and body are written in wire
/// form and parsed back by [`MessageBuilder::build`], so a built message obeys the same
/// checks as a received one.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    body: Bytes,
}

impl MessageBuilder {
    /// Appends a header (CR/LF in the value are removed; Content-Length is ignored, it is
    /// computed from the body).
    pub fn header(mut self, name: impl HeaderKey, value: &str) -> Self {
        let name = name.key();
        if HeaderName::from_wire(name) == HeaderName::ContentLength {
            return self;
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        for b in value.bytes() {
            if b != b'\r' && b != b'\n' {
                self.buf.push(b);
            }
        }
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(self, content_type: &str, body: impl Into<Bytes>) -> Self {
        let mut s = self.header(HeaderName::ContentType, content_type);
        s.body = body.into();
        s
    }

    /// Finishes: writes Content-Length and parses the result.
    pub fn build(mut self) -> Result<SipMessage, ParseError> {
        self.buf.extend_from_slice(b"Content-Length: ");
        self.buf
            .extend_from_slice(self.body.len().to_string().as_bytes());
        self.buf.extend_from_slice(b"\r\n\r\n");
        self.buf.extend_from_slice(&self.body);
        // A response copies Via/From/To/Call-ID/CSeq from a request that was validated
        // when it was parsed and adds values of our own: only its framing and the
        // headers the rest of the stack reads are checked again. A request may carry
        // values from another protocol and is validated in full.
        let deep = !self.buf.starts_with(b"SIP/");
        parse_message(Bytes::from(self.buf), true, false, deep)
    }

    /// [`MessageBuilder::build`] expecting a request.
    pub fn build_request(self) -> Result<Request, ParseError> {
        match self.build()? {
            SipMessage::Request(r) => Ok(r),
            SipMessage::Response(_) => Err(ParseError::StartLine(
                "built a response, expected a request",
            )),
        }
    }

    /// [`MessageBuilder::build`] expecting a response.
    pub fn build_response(self) -> Result<Response, ParseError> {
        match self.build()? {
            SipMessage::Response(r) => Ok(r),
            SipMessage::Request(_) => Err(ParseError::StartLine(
                "built a request, expected a response",
            )),
        }
    }
}

/// Finds the end of the header section: returns (index of the first header line, index
/// just past the empty line). Accepts CRLF and bare LF line ends.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let nl = memchr::memchr(b'\n', &buf[pos..])? + pos;
        let line_empty = nl == pos || (nl == pos + 1 && buf[pos] == b'\r');
        if line_empty && pos > 0 {
            return Some(nl + 1);
        }
        pos = nl + 1;
    }
}

/// Skips leading CRLFs (RFC 3261 s7.5).
pub(crate) fn skip_leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

/// `deep`: validate the syntax of every header this parser knows (Via, From, To, Contact,
/// Route, Call-ID, Date, option tags); without it only the start line, the framing and the
/// headers the stack reads (CSeq, Content-Length, Max-Forwards, Expires) are checked.
fn parse_message(
    buf: Bytes,
    framed: bool,
    require_via: bool,
    deep: bool,
) -> Result<SipMessage, ParseError> {
    let start = skip_leading_crlf(&buf);
    if start == buf.len() || buf[start..].iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let head_end = find_head_end(&buf[start..]).ok_or(ParseError::Unterminated)? + start;
    let head = std::str::from_utf8(&buf[start..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let base = start;

    // start line
    let first_nl = head.find('\n').unwrap_or(head.len());
    let first = head[..first_nl]
        .strip_suffix('\r')
        .unwrap_or(&head[..first_nl]);
    enum Start {
        Req(Method, Text),
        Resp(u16, Text),
    }
    let span = |s: &str| -> Text {
        let p = s.as_ptr() as usize;
        let h = head.as_ptr() as usize;
        if p < h || p + s.len() > h + head.len() {
            // not a slice of the head (e.g. a missing reason phrase given as "")
            return Text::Owned(s.into());
        }
        let off = p - h + base;
        Text::Span(off as u32, (off + s.len()) as u32)
    };
    let start_line = if first.len() >= 4 && first.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        let mut it = first.splitn(3, ' ');
        let version = it.next().unwrap_or("");
        let code = it
            .next()
            .ok_or(ParseError::StartLine("status line without code"))?;
        let reason = it.next().unwrap_or("");
        check_version(version)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StatusCode);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::StatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StatusCode);
        }
        if reason.bytes().any(|b| b < 0x20 && b != b'\t') {
            return Err(ParseError::StartLine("control character in reason phrase"));
        }
        Start::Resp(code, span(reason))
    } else {
        let mut it = first.split(' ');
        let (m, u, v) = match (it.next(), it.next(), it.next(), it.next()) {
            (Some(m), Some(u), Some(v), None) => (m, u, v),
            _ => {
                return Err(ParseError::StartLine(
                    "request line is not Method SP Request-URI SP SIP-Version",
                ))
            }
        };
        if !is_token_str(m) {
            return Err(ParseError::StartLine("invalid method token"));
        }
        if u.is_empty() || v.is_empty() {
            return Err(ParseError::StartLine("extra white space in request line"));
        }
        check_version(v)?;
        if u.starts_with('<') {
            return Err(ParseError::RequestUri("Request-URI enclosed in <>"));
        }
        let uri = Uri::parse(u).map_err(ParseError::RequestUri)?;
        if uri.headers.is_some() {
            return Err(ParseError::RequestUri(
                "Request-URI must not contain headers (RFC 3261 s19.1.5)",
            ));
        }
        Start::Req(Method::parse(m), span(u))
    };

    // headers
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    let mut rest = &head[(first_nl + 1).min(head.len())..];
    let mut idx: [Option<u16>; 8] = [None; 8]; // via, from, to, call-id, cseq, clen, maxfwd, expires
    let mut content_length: Option<usize> = None;
    let mut cseq: Option<CSeq> = None;
    while !rest.is_empty() {
        // one logical line = physical lines joined while the next starts with SP/HT
        let mut end = 0;
        let mut folded = false;
        let line_end;
        loop {
            let nl = match memchr::memchr(b'\n', &rest.as_bytes()[end..]) {
                Some(n) => end + n,
                None => rest.len(),
            };
            let next = nl + 1;
            if next < rest.len() && matches!(rest.as_bytes()[next], b' ' | b'\t') {
                folded = true;
                end = next;
                continue;
            }
            line_end = nl;
            break;
        }
        let line = &rest[..line_end];
        rest = &rest[(line_end + 1).min(rest.len())..];
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let colon = line.find(':').ok_or(ParseError::HeaderLine)?;
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if !is_token_str(name) {
            return Err(ParseError::HeaderLine);
        }
        let raw_value = trim_ws(&line[colon + 1..]);
        let hn = HeaderName::from_wire(name);
        let value_text = if folded && raw_value.contains(['\r', '\n']) {
            Text::Owned(unfold(raw_value).into_boxed_str())
        } else {
            span(raw_value)
        };
        let n = headers.len();
        if n >= u16::MAX as usize {
            return Err(ParseError::HeadTooLarge(head.len()));
        }
        headers.push(Header {
            name: hn,
            name_text: span(name),
            value: value_text,
        });
        let value: &str = match &headers[n].value {
            Text::Owned(s) => s,
            Text::Span(..) => raw_value,
        };
        let single = |slot: usize, name: &'static str, idx: &mut [Option<u16>; 8]| {
            if idx[slot].is_some() {
                return Err(ParseError::Duplicate(name));
            }
            idx[slot] = Some(n as u16);
            Ok(())
        };
        let bad =
            |name: &'static str| move |reason: &'static str| ParseError::Header { name, reason };
        match hn {
            HeaderName::Via if !deep => {
                idx[0].get_or_insert(n as u16);
            }
            HeaderName::From if !deep => single(1, "From", &mut idx)?,
            HeaderName::To if !deep => single(2, "To", &mut idx)?,
            HeaderName::CallId if !deep => single(3, "Call-ID", &mut idx)?,
            HeaderName::Contact
            | HeaderName::Route
            | HeaderName::RecordRoute
            | HeaderName::Date
            | HeaderName::Require
            | HeaderName::ProxyRequire
            | HeaderName::Supported
            | HeaderName::Unsupported
                if !deep => {}
            HeaderName::Via => {
                if idx[0].is_none() {
                    idx[0] = Some(n as u16);
                }
                for v in split_list(value) {
                    Via::parse(v).map_err(bad("Via"))?;
                }
            }
            HeaderName::From => {
                single(1, "From", &mut idx)?;
                NameAddr::parse(value).map_err(bad("From"))?;
            }
            HeaderName::To => {
                single(2, "To", &mut idx)?;
                NameAddr::parse(value).map_err(bad("To"))?;
            }
            HeaderName::CallId => {
                single(3, "Call-ID", &mut idx)?;
                let ok = match value.split_once('@') {
                    Some((a, b)) => is_word_str(a) && is_word_str(b),
                    None => is_word_str(value),
                };
                if !ok {
                    return Err(ParseError::Header {
                        name: "Call-ID",
                        reason: "not word[@word]",
                    });
                }
            }
            HeaderName::CSeq => {
                single(4, "CSeq", &mut idx)?;
                cseq = Some(CSeq::parse(value).map_err(bad("CSeq"))?);
            }
            HeaderName::ContentLength => {
                single(5, "Content-Length", &mut idx)?;
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::Header {
                        name: "Content-Length",
                        reason: "not a non-negative decimal number",
                    });
                }
                let v = header::parse_u32(value).ok_or(ParseError::Header {
                    name: "Content-Length",
                    reason: "larger than 2**32-1",
                })?;
                content_length = Some(v as usize);
            }
            HeaderName::MaxForwards => {
                single(6, "Max-Forwards", &mut idx)?;
                match header::parse_u32(value) {
                    Some(v) if v <= 255 => {}
                    _ => {
                        return Err(ParseError::Header {
                            name: "Max-Forwards",
                            reason: "not a number in 0..=255",
                        })
                    }
                }
            }
            HeaderName::Expires => {
                single(7, "Expires", &mut idx)?;
                header::parse_u32(value).ok_or(ParseError::Header {
                    name: "Expires",
                    reason: "not a delta-seconds value below 2**32",
                })?;
            }
            HeaderName::Contact if value != "*" => {
                for c in split_list(value) {
                    NameAddr::parse(c).map_err(bad("Contact"))?;
                }
            }
            HeaderName::Route | HeaderName::RecordRoute => {
                let name = if hn == HeaderName::Route {
                    "Route"
                } else {
                    "Record-Route"
                };
                for c in split_list(value) {
                    NameAddr::parse(c).map_err(bad(name))?;
                }
            }
            // rfc1123-date ends in "GMT" (RFC 3261 s20.17)
            HeaderName::Date if !value.ends_with("GMT") => {
                return Err(ParseError::Header {
                    name: "Date",
                    reason: "time zone must be GMT",
                });
            }
            HeaderName::Require
            | HeaderName::ProxyRequire
            | HeaderName::Supported
            | HeaderName::Unsupported => {
                for t in split_list(value) {
                    if !t.is_empty() && !is_token_str(t) {
                        return Err(ParseError::Header {
                            name: "Require/Supported",
                            reason: "option tag is not a token",
                        });
                    }
                }
            }
            _ => {}
        }
    }
    let need = |slot: usize, name: &'static str| idx[slot].ok_or(ParseError::Missing(name));
    if require_via {
        need(0, "Via")?;
    }
    let idx_from = need(1, "From")?;
    let idx_to = need(2, "To")?;
    let idx_call_id = need(3, "Call-ID")?;
    need(4, "CSeq")?;
    let cseq = cseq.ok_or(ParseError::Missing("CSeq"))?;

    let available = buf.len() - head_end;
    let body_len = match content_length {
        Some(cl) if cl > available => {
            return Err(ParseError::BodyTruncated {
                declared: cl,
                available,
            })
        }
        Some(cl) => cl,
        None if framed => 0,
        None => available,
    };
    let body = buf.slice(head_end..head_end + body_len);
    let parts = Parts {
        buf,
        headers,
        body,
        cseq,
        idx_call_id,
        idx_from,
        idx_to,
    };
    Ok(match start_line {
        Start::Req(method, uri) => {
            if parts.cseq.method != method {
                return Err(ParseError::CSeqMismatch);
            }
            SipMessage::Request(Request { method, uri, parts })
        }
        Start::Resp(code, reason) => SipMessage::Response(Response {
            code,
            reason,
            parts,
        }),
    })
}

fn is_word_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_word)
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if v.len() > 4 && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        Err(ParseError::Version(v.chars().take(16).collect()))
    } else {
        Err(ParseError::StartLine("missing SIP version"))
    }
}

/// Collapses folding (CRLF/LF followed by white space) into a single SP.
fn unfold(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.split('\n').peekable();
    while let Some(part) = it.next() {
        let part = part.strip_suffix('\r').unwrap_or(part);
        if out.is_empty() {
            out.push_str(part.trim_end_matches([' ', '\t']));
        } else {
            let p = part.trim_matches([' ', '\t']);
            if !p.is_empty() {
                out.push(' ');
                out.push_str(p);
            }
        }
        let _ = it.peek();
    }
    out
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

#[allow(dead_code)]
fn _assert_token(b: u8) -> bool {
    is_token(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "MESSAGE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP alice.example.com:5060;branch=z9hG4bK776;rport\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=49583\r\n\
To: <sip:bob@biloxi.example.com>\r\n\
Call-ID: asd88asd77a@1.2.3.4\r\n\
CSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\n\
l: 5\r\n\
\r\n\
hello";

    #[test]
    fn parse_and_access() {
        let m = SipMessage::parse(Bytes::from_static(MSG.as_bytes())).unwrap();
        let SipMessage::Request(r) = m else {
            panic!("not a request")
        };
        assert_eq!(r.method(), &Method::Message);
        assert_eq!(r.call_id(), "asd88asd77a@1.2.3.4");
        assert_eq!(r.cseq().seq, 1);
        assert_eq!(r.from_tag(), Some("49583"));
        assert_eq!(r.to_tag(), None);
        assert_eq!(r.body().as_ref(), b"hello");
        assert_eq!(r.branch(), Some("z9hG4bK776"));
        assert_eq!(r.header_str("content-length"), Some("5"));
        assert_eq!(r.uri().unwrap().user, Some("bob"));
    }

    #[test]
    fn response_from_request_adds_to_tag() {
        let SipMessage::Request(r) = SipMessage::parse(Bytes::from_static(MSG.as_bytes())).unwrap()
        else {
            panic!()
        };
        let resp = Response::for_request(&r, 200, None)
            .build_response()
            .unwrap();
        assert_eq!(resp.code(), 200);
        assert_eq!(resp.reason(), "OK");
        assert!(resp.to_tag().is_some());
        assert_eq!(resp.from_tag(), Some("49583"));
        assert_eq!(resp.call_id(), r.call_id());
        assert_eq!(resp.cseq(), r.cseq());
        assert_eq!(resp.top_via().unwrap().branch(), Some("z9hG4bK776"));
        let trying = Response::for_request(&r, 100, None)
            .build_response()
            .unwrap();
        assert_eq!(trying.to_tag(), None);
    }

    #[test]
    fn stamp_received_rport() {
        let SipMessage::Request(mut r) =
            SipMessage::parse(Bytes::from_static(MSG.as_bytes())).unwrap()
        else {
            panic!()
        };
        r.stamp_received("192.0.2.7:40000".parse().unwrap());
        let v = r.top_via().unwrap();
        assert_eq!(v.received(), Some("192.0.2.7"));
        assert_eq!(v.rport(), Some(Some("40000")));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
    }

    #[test]
    fn non_ascii_start_line_is_an_error_not_a_panic() {
        // found by cargo-fuzz: slicing the start line at byte 4 inside a UTF-8 character
        let raw = "SIPю x\r\nVia: SIP/2.0/UDP h\r\n\r\n";
        assert!(SipMessage::parse(Bytes::from(raw)).is_err());
        let raw = "OPTIONS sip:a@b SIPю\r\nVia: SIP/2.0/UDP h\r\n\r\n";
        assert!(SipMessage::parse(Bytes::from(raw)).is_err());
        // found by cargo-fuzz: status line without reason phrase or its separating SP
        let raw = "SIP/2.0 503\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n\r\n";
        let SipMessage::Response(r) = SipMessage::parse(Bytes::from(raw)).unwrap() else {
            panic!()
        };
        assert_eq!((r.code(), r.reason()), (503, ""));
    }

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

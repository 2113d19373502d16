//! SIP requests and responses (RFC 3261 s7.1, s7.2): accessors, the edits a proxy
//! or UAS makes (received/rport stamping, RFC 3261 s18.2.1, RFC 3581 s4), responses
//! built for a request (RFC 3261 s8.2.6) and serialisation.

use std::fmt;

use bytes::Bytes;

use super::builder::MessageBuilder;
use super::parse::parse_message;
use super::parts::{Header, Parts, Text};
use super::{reason_phrase, split_list, HeaderName, Method, NameAddr, ParseError, Uri, Via};

/// A SIP request.
#[derive(Clone, Debug)]
pub struct Request {
    pub(super) method: Method,
    pub(super) uri: Text,
    pub(super) parts: Parts,
}

/// A SIP response.
#[derive(Clone, Debug)]
pub struct Response {
    pub(super) code: u16,
    pub(super) reason: Text,
    pub(super) parts: Parts,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::MSG;

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
}

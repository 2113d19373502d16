//! Building a request or a response in wire form, checked by parsing it back.

use bytes::Bytes;

use super::parse::parse_message;
use super::{HeaderName, ParseError, Request, Response, SipMessage};

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
    pub(super) buf: Vec<u8>,
    pub(super) body: Bytes,
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

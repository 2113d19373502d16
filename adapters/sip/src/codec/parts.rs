//! The headers and body shared by requests and responses: each header a byte range
//! into the received buffer (or an owned value), its typed accessors, and the encoding
//! of the header section with a computed Content-Length (RFC 3261 s7.3, s20.14).

use bytes::Bytes;

use super::chars::trim_ws;
use super::{header, split_list, CSeq, HeaderName, NameAddr, ParseError, Via};

/// A range of the message buffer, or an owned replacement value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Text {
    Span(u32, u32),
    Owned(Box<str>),
}

/// One header field: its name and its value (LWS-trimmed, folding collapsed).
#[derive(Clone, Debug)]
pub(super) struct Header {
    pub(super) name: HeaderName,
    pub(super) name_text: Text,
    pub(super) value: Text,
}

/// Headers and body shared by requests and responses.
#[derive(Clone, Debug)]
pub struct Parts {
    pub(super) buf: Bytes,
    pub(super) headers: Vec<Header>,
    pub(super) body: Bytes,
    pub(super) cseq: CSeq,
    pub(super) idx_call_id: u16,
    pub(super) idx_from: u16,
    pub(super) idx_to: u16,
}

impl Parts {
    pub(super) fn text<'a>(&'a self, t: &'a Text) -> &'a str {
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
    pub(super) fn set_value(&mut self, n: usize, value: String) {
        if let Some(h) = self.headers.get_mut(n) {
            h.value = Text::Owned(value.into_boxed_str());
        }
    }

    pub(super) fn reindex(&mut self) {
        for (i, h) in self.headers.iter().enumerate() {
            match h.name {
                HeaderName::CallId => self.idx_call_id = i as u16,
                HeaderName::From => self.idx_from = i as u16,
                HeaderName::To => self.idx_to = i as u16,
                _ => {}
            }
        }
    }

    pub(super) fn encode_headers(&self, out: &mut Vec<u8>) {
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

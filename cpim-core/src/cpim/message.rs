//! The `message/cpim` object: its headers and payload, the accessors for the headers
//! RFC 3862 s4 defines (and the IMDN headers of RFC 5438 s6), and serialization.

use std::borrow::Cow;

use super::grammar::{parse_name_addr, parse_ns};
use super::header::{ContentHeader, Header, NameAddr};
use super::{CpimError, IMDN_NS};

/// A parsed or built `message/cpim` object. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpimMessage<'a> {
    pub(super) headers: Vec<Header<'a>>,
    /// The blank line after the message headers, as written (`\r\n` or `\n`).
    pub(super) sep1: &'a str,
    pub(super) content_headers: Vec<ContentHeader<'a>>,
    /// The blank line after the content headers, as written.
    pub(super) sep2: &'a str,
    pub(super) payload: Cow<'a, [u8]>,
}

impl<'a> CpimMessage<'a> {
    /// A new, empty message (no headers, no payload); see also [`CpimBuilder`](super::CpimBuilder).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

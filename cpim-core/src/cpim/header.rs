//! The headers of a `message/cpim` object: message headers with their parameters
//! (RFC 3862 s3, s7), the content headers of the encapsulated MIME object (RFC 2045),
//! and the name-addr value of From, To and cc (RFC 3862 s4.1-4.3).

use std::borrow::Cow;

use super::escape::{decode_escapes, encode_value, quote_string};
use super::grammar::is_tokenchar;
use crate::address::{Address, AddressError};

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
    pub(super) name: Cow<'a, str>,
    pub(super) params: Vec<Param<'a>>,
    pub(super) value: Cow<'a, str>,
    /// The exact line(s) it was parsed from, with the line end.
    pub(super) raw: Option<&'a str>,
}

impl<'a> Header<'a> {
    /// A header built by code. `name` may carry a prefix (`imdn.Message-ID`); `value`
    /// is the *decoded* text: characters that need it are escaped per RFC 3862 s3.2.
    /// An invalid name is caught by [`CpimMessage::validate`](super::CpimMessage::validate) and by the parser on the
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

    pub(super) fn write_canonical(&self, out: &mut Vec<u8>) {
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
    pub(super) name: Cow<'a, str>,
    pub(super) value: Cow<'a, str>,
    pub(super) raw: Option<&'a str>,
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

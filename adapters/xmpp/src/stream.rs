//! An incremental parser for XMPP streams (RFC 6120 s4, restricted XML of s11).
//!
//! Bytes are fed in chunks of any size ([`StreamParser::feed`]); [`StreamParser::next_event`]
//! yields the stream header, each complete first-level element (a stanza, `stream:features`,
//! `stream:error`, a handshake ...) as an [`Element`] tree, and the stream end.
//!
//! Restricted XML (RFC 6120 s11.1): no DTD, no comments, no processing instructions other
//! than the XML declaration before the stream header, no entity other than the five
//! predefined ones and character references. Every character must be an XML 1.0 `Char`.
//! A stanza larger than [`Limits::max_stanza_bytes`] or deeper than [`Limits::max_depth`]
//! is an error (`policy-violation`). After an error the parser stays failed: the stream
//! cannot be resynchronised.
//!
//! The tokenizer (`scan`) is our own rather than quick-xml's: it must keep a partial
//! token across `feed` calls and enforce the limits before it buffers, and the grammar of
//! a restricted stream is small (tags, attributes, text, CDATA, five entities). It
//! resumes an unfinished token where the previous read stopped, so a peer that drips a
//! huge start tag byte by byte costs linear work, not quadratic
//! ([`StreamParser::bytes_scanned`]); the size limit applies to the unfinished token too,
//! so it is refused with `policy-violation` once over [`Limits::max_stanza_bytes`].

use std::collections::VecDeque;

use cpim_core::xml::{is_xml_char, Attribute, Element, Node};

use crate::ns;

mod scan;
use scan::{Scanner, Token};

/// Bounds on what the parser buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest first-level element, in bytes as received.
    pub max_stanza_bytes: usize,
    /// Deepest nesting inside the stream element (a stanza is depth 1).
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
        }
    }
}

/// The opening `<stream:stream>` tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// Its attributes (`from`, `to`, `id`, `version`, `xml:lang`).
    pub attrs: Vec<(String, String)>,
    /// The default namespace declared on it (`jabber:component:accept`, `jabber:server`, ...).
    pub default_ns: String,
    /// Other prefixes declared on it (e.g. `db` -> `jabber:server:dialback`).
    pub prefixes: Vec<(String, String)>,
}

impl StreamHeader {
    /// The value of an attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the parser found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream header.
    Header(StreamHeader),
    /// A complete first-level element.
    Stanza(Element),
    /// `</stream:stream>`.
    End,
}

/// Why the stream cannot be parsed further. The variants name the RFC 6120 s4.9.3
/// stream error condition to send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Malformed XML (`not-well-formed`).
    #[error("not well-formed XML: {0}")]
    NotWellFormed(String),
    /// XML the protocol forbids: DTD, comment, PI, undefined entity (`restricted-xml`).
    #[error("restricted XML: {0}")]
    Restricted(String),
    /// Limit exceeded (`policy-violation`).
    #[error("limit exceeded: {0}")]
    TooLarge(String),
    /// The first element is not `<stream:stream>` (`invalid-namespace`).
    #[error("invalid stream header: {0}")]
    BadHeader(String),
    /// A prefix without a declaration (`invalid-namespace`).
    #[error("undeclared namespace prefix {0:?}")]
    UnboundPrefix(String),
}

impl StreamError {
    /// The RFC 6120 s4.9.3 condition for this error.
    pub fn condition(&self) -> &'static str {
        match self {
            StreamError::NotWellFormed(_) => "not-well-formed",
            StreamError::Restricted(_) => "restricted-xml",
            StreamError::TooLarge(_) => "policy-violation",
            StreamError::BadHeader(_) | StreamError::UnboundPrefix(_) => "invalid-namespace",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Prolog,
    InStream,
    Ended,
    Failed,
}

struct Open {
    element: Element,
    qname: String,
    decls: Vec<(String, String)>,
    default_ns: Option<String>,
}

/// The incremental stream parser.
pub struct StreamParser {
    limits: Limits,
    buf: Vec<u8>,
    pos: usize,
    state: State,
    header: Option<StreamHeader>,
    stream_qname: String,
    open: Vec<Open>,
    stanza_bytes: usize,
    events: VecDeque<StreamEvent>,
    scanner: Scanner,
}

impl std::fmt::Debug for StreamParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamParser")
            .field("state", &self.state)
            .field("buffered", &(self.buf.len() - self.pos))
            .field("depth", &self.open.len())
            .finish()
    }
}

impl Default for StreamParser {
    fn default() -> Self {
        StreamParser::new(Limits::default())
    }
}

impl StreamParser {
    /// A parser with the given limits.
    pub fn new(limits: Limits) -> StreamParser {
        StreamParser {
            limits,
            buf: Vec::new(),
            pos: 0,
            state: State::Prolog,
            header: None,
            stream_qname: String::new(),
            open: Vec::new(),
            stanza_bytes: 0,
            events: VecDeque::new(),
            scanner: Scanner::default(),
        }
    }

    /// Forgets everything: for a stream restart after STARTTLS or SASL (RFC 6120 s4.3.3).
    pub fn reset(&mut self) {
        *self = StreamParser::new(self.limits);
    }

    /// Input bytes the tokenizer examined since the parser was created (or reset): at
    /// most about twice the input, however it is chunked (`scan`). For tests and
    /// metrics.
    pub fn bytes_scanned(&self) -> u64 {
        self.scanner.examined()
    }

    /// The header of the current stream, once seen.
    pub fn header(&self) -> Option<&StreamHeader> {
        self.header.as_ref()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if matches!(self.state, State::Failed | State::Ended) {
            return;
        }
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next event, `None` when more bytes are needed (or the stream is over).
    pub fn next_event(&mut self) -> Option<Result<StreamEvent, StreamError>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(Ok(e));
            }
            if matches!(self.state, State::Failed | State::Ended) {
                return None;
            }
            match self.step() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => {
                    self.state = State::Failed;
                    self.buf = Vec::new();
                    self.pos = 0;
                    self.open.clear();
                    return Some(Err(e));
                }
            }
        }
    }

    /// Scans and processes one token. `Ok(false)`: need more bytes.
    fn step(&mut self) -> Result<bool, StreamError> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return Ok(false);
        }
        let limit = self.limits.max_stanza_bytes;
        let in_stanza = !self.open.is_empty();
        let (len, token) = match self.scanner.scan(rest)? {
            Some(t) => t,
            None => {
                let pending = rest.len() + if in_stanza { self.stanza_bytes } else { 0 };
                if pending > limit {
                    return Err(StreamError::TooLarge(format!(
                        "element larger than {limit} bytes"
                    )));
                }
                return Ok(false);
            }
        };
        if in_stanza || matches!(token, Token::Start(..)) {
            self.stanza_bytes += len;
            if self.stanza_bytes > limit {
                return Err(StreamError::TooLarge(format!(
                    "element larger than {limit} bytes"
                )));
            }
        }
        let base = self.pos;
        self.pos += len;
        // Take the buffer out so that the token can borrow it while `self` changes.
        let buf = std::mem::take(&mut self.buf);
        let result = self.process(&buf[base..base + len], token);
        self.buf = buf;
        result?;
        Ok(true)
    }

    fn process(&mut self, raw: &[u8], token: Token) -> Result<(), StreamError> {
        match token {
            Token::Decl => {
                if self.state != State::Prolog {
                    return Err(StreamError::Restricted(
                        "processing instruction inside the stream".into(),
                    ));
                }
                Ok(())
            }
            Token::Text(r) => self.text(&raw[r], false),
            Token::CData(r) => self.text(&raw[r], true),
            Token::Start(r, empty) => self.start(&raw[r], empty),
            Token::End(r) => self.end(&raw[r]),
        }
    }

    fn text(&mut self, t: &[u8], cdata: bool) -> Result<(), StreamError> {
        let s = utf8(t)?;
        match self.open.last_mut() {
            None => {
                if cdata || !s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
                    return Err(StreamError::NotWellFormed(
                        "character data outside a stanza".into(),
                    ));
                }
                Ok(())
            }
            Some(open) => {
                let text = if cdata {
                    check_chars(s)?;
                    s.to_owned()
                } else {
                    unescape(s)?
                };
                if let Some(Node::Text(prev)) = open.element.children.last_mut() {
                    prev.push_str(&text);
                } else if !text.is_empty() {
                    open.element.children.push(Node::Text(text));
                }
                Ok(())
            }
        }
    }

    fn lookup(&self, prefix: &str) -> Option<String> {
        if prefix == "xml" {
            return Some(ns::XML.to_owned());
        }
        for o in self.open.iter().rev() {
            if let Some((_, u)) = o.decls.iter().find(|(p, _)| p == prefix) {
                return Some(u.clone());
            }
        }
        self.header
            .as_ref()
            .and_then(|h| h.prefixes.iter().find(|(p, _)| p == prefix))
            .map(|(_, u)| u.clone())
    }

    fn default_ns(&self) -> String {
        for o in self.open.iter().rev() {
            if let Some(d) = &o.default_ns {
                return d.clone();
            }
        }
        self.header
            .as_ref()
            .map(|h| h.default_ns.clone())
            .unwrap_or_default()
    }

    fn start(&mut self, t: &[u8], empty: bool) -> Result<(), StreamError> {
        let s = utf8(t)?;
        let (qname, attrs) = parse_tag(s, self.limits.max_attributes)?;
        let mut decls = Vec::new();
        let mut default_ns = None;
        let mut plain = Vec::with_capacity(attrs.len());
        for (n, v) in attrs {
            if n == "xmlns" {
                default_ns = Some(v);
            } else if let Some(p) = n.strip_prefix("xmlns:") {
                if p.is_empty() || v.is_empty() {
                    return Err(StreamError::NotWellFormed(format!(
                        "bad namespace declaration {n:?}"
                    )));
                }
                decls.push((p.to_owned(), v));
            } else {
                plain.push((n, v));
            }
        }
        match self.state {
            State::Prolog => {
                let (prefix, local) = split_qname(&qname);
                let ns = match prefix {
                    Some(p) => decls.iter().find(|(dp, _)| dp == p).map(|(_, u)| u.clone()),
                    None => default_ns.clone(),
                };
                if local != "stream" || ns.as_deref() != Some(ns::STREAM) {
                    return Err(StreamError::BadHeader(format!(
                        "expected <stream:stream xmlns:stream='{}'>, got <{qname}>",
                        ns::STREAM
                    )));
                }
                if empty {
                    return Err(StreamError::BadHeader("empty stream element".into()));
                }
                for (p, _) in &plain {
                    if let (Some(pre), _) = split_qname(p) {
                        if pre != "xml" && !decls.iter().any(|(d, _)| d == pre) {
                            return Err(StreamError::UnboundPrefix(pre.to_owned()));
                        }
                    }
                }
                let header = StreamHeader {
                    attrs: plain,
                    default_ns: default_ns.unwrap_or_default(),
                    prefixes: decls,
                };
                self.stream_qname = qname;
                self.header = Some(header.clone());
                self.state = State::InStream;
                self.stanza_bytes = 0;
                self.events.push_back(StreamEvent::Header(header));
                Ok(())
            }
            State::InStream => {
                if self.open.len() + 1 > self.limits.max_depth {
                    return Err(StreamError::TooLarge(format!(
                        "nesting deeper than {}",
                        self.limits.max_depth
                    )));
                }
                let open = Open {
                    element: Element::default(),
                    qname,
                    decls,
                    default_ns,
                };
                self.open.push(open);
                // Resolve names with the new declarations in scope.
                let (prefix, local) = {
                    let o = self.open.last().expect("just pushed");
                    let (p, l) = split_qname(&o.qname);
                    (p.map(str::to_owned), l.to_owned())
                };
                let ns = match &prefix {
                    Some(p) => self
                        .lookup(p)
                        .ok_or_else(|| StreamError::UnboundPrefix(p.clone()))?,
                    None => self.default_ns(),
                };
                let mut attributes = Vec::with_capacity(plain.len());
                for (n, value) in plain {
                    let (p, l) = split_qname(&n);
                    let ans = match p {
                        Some(p) => self
                            .lookup(p)
                            .ok_or_else(|| StreamError::UnboundPrefix(p.to_owned()))?,
                        None => String::new(),
                    };
                    attributes.push(Attribute {
                        ns: ans,
                        prefix: p.map(str::to_owned),
                        name: l.to_owned(),
                        value,
                    });
                }
                let o = self.open.last_mut().expect("just pushed");
                o.element.name = local;
                o.element.ns = ns;
                o.element.prefix = prefix;
                o.element.attrs = attributes;
                if empty {
                    self.close_top();
                }
                Ok(())
            }
            State::Ended | State::Failed => Ok(()),
        }
    }

    fn close_top(&mut self) {
        let done = self.open.pop().expect("an open element");
        match self.open.last_mut() {
            Some(parent) => parent.element.children.push(Node::Element(done.element)),
            None => {
                self.stanza_bytes = 0;
                self.events.push_back(StreamEvent::Stanza(done.element));
            }
        }
    }

    fn end(&mut self, t: &[u8]) -> Result<(), StreamError> {
        let name = utf8(t)?.trim_end_matches([' ', '\t', '\r', '\n']);
        match self.open.last() {
            Some(o) => {
                if o.qname != name {
                    return Err(StreamError::NotWellFormed(format!(
                        "</{name}> closes <{}>",
                        o.qname
                    )));
                }
                self.close_top();
                Ok(())
            }
            None => {
                if self.state != State::InStream || name != self.stream_qname {
                    return Err(StreamError::NotWellFormed(format!(
                        "unexpected end tag </{name}>"
                    )));
                }
                self.state = State::Ended;
                self.events.push_back(StreamEvent::End);
                Ok(())
            }
        }
    }
}

fn utf8(b: &[u8]) -> Result<&str, StreamError> {
    std::str::from_utf8(b).map_err(|_| StreamError::NotWellFormed("invalid UTF-8".into()))
}

fn check_chars(s: &str) -> Result<(), StreamError> {
    match s.chars().find(|&c| !is_xml_char(c)) {
        Some(c) => Err(StreamError::NotWellFormed(format!(
            "character U+{:04X} is not allowed in XML 1.0",
            c as u32
        ))),
        None => Ok(()),
    }
}

fn split_qname(q: &str) -> (Option<&str>, &str) {
    match q.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, q),
    }
}

fn is_name_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '<' | '>' | '&' | '\'' | '"' | '=' | '/' | '?' | '!'))
        && is_xml_char(c)
}

fn check_name(n: &str) -> Result<(), StreamError> {
    let first_ok = n
        .chars()
        .next()
        .is_some_and(|c| !c.is_ascii_digit() && !matches!(c, '-' | '.' | ':'));
    if !first_ok || !n.chars().all(is_name_char) || n.ends_with(':') || n.matches(':').count() > 1 {
        return Err(StreamError::NotWellFormed(format!("invalid name {n:?}")));
    }
    Ok(())
}

/// Parses `name attr='v' ...` (the inside of a start tag).
fn parse_tag(s: &str, max_attrs: usize) -> Result<(String, Vec<(String, String)>), StreamError> {
    let s = s.trim_end_matches([' ', '\t', '\r', '\n']);
    let name_end = s.find([' ', '\t', '\r', '\n']).unwrap_or(s.len());
    let name = &s[..name_end];
    check_name(name)?;
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut rest = &s[name_end..];
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        if trimmed.len() == rest.len() {
            return Err(StreamError::NotWellFormed(format!(
                "missing whitespace before attribute in <{name}>"
            )));
        }
        let eq = trimmed.find('=').ok_or_else(|| {
            StreamError::NotWellFormed(format!("attribute without value in <{name}>"))
        })?;
        let aname = trimmed[..eq].trim_end_matches([' ', '\t', '\r', '\n']);
        check_name(aname)?;
        let after = trimmed[eq + 1..].trim_start_matches([' ', '\t', '\r', '\n']);
        let q = after.chars().next().ok_or_else(|| {
            StreamError::NotWellFormed(format!("attribute {aname:?} has no value"))
        })?;
        if q != '\'' && q != '"' {
            return Err(StreamError::NotWellFormed(format!(
                "attribute {aname:?} value is not quoted"
            )));
        }
        let close = after[1..].find(q).ok_or_else(|| {
            StreamError::NotWellFormed(format!("attribute {aname:?} value is not closed"))
        })?;
        let raw = &after[1..1 + close];
        if attrs.iter().any(|(n, _)| n == aname) {
            return Err(StreamError::NotWellFormed(format!(
                "duplicate attribute {aname:?}"
            )));
        }
        if attrs.len() >= max_attrs {
            return Err(StreamError::TooLarge(format!(
                "more than {max_attrs} attributes"
            )));
        }
        let mut value = unescape(raw)?;
        // Attribute-value normalisation (XML 1.0 s3.3.3) for literal whitespace.
        if value.contains(['\t', '\r', '\n']) {
            value = value.replace(['\t', '\r', '\n'], " ");
        }
        attrs.push((aname.to_owned(), value));
        rest = &after[1 + close + 1..];
    }
    Ok((name.to_owned(), attrs))
}

/// Decodes the five predefined entities and character references; every other
/// reference is refused (no entity expansion).
pub fn unescape(s: &str) -> Result<String, StreamError> {
    check_chars(s)?;
    if !s.contains('&') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let semi = after
            .find(';')
            .filter(|&n| n <= 12)
            .ok_or_else(|| StreamError::NotWellFormed("unterminated entity reference".into()))?;
        let name = &after[..semi];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ if name.starts_with("#x") => char_ref(&name[2..], 16)?,
            _ if name.starts_with('#') => char_ref(&name[1..], 10)?,
            _ => {
                return Err(StreamError::Restricted(format!(
                    "undefined entity &{name};"
                )))
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn char_ref(digits: &str, radix: u32) -> Result<char, StreamError> {
    let bad = || StreamError::NotWellFormed(format!("bad character reference {digits:?}"));
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(bad());
    }
    let n = u32::from_str_radix(digits, radix).map_err(|_| bad())?;
    let c = char::from_u32(n).ok_or_else(bad)?;
    if !is_xml_char(c) {
        return Err(StreamError::NotWellFormed(format!(
            "character reference to U+{n:04X}, which XML 1.0 forbids"
        )));
    }
    Ok(c)
}

#[cfg(test)]
mod tests;

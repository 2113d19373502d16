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
//! The tokenizer is our own rather than quick-xml's: it must keep a partial token across
//! `feed` calls and enforce the limits before it buffers, and the grammar of a restricted
//! stream is small (tags, attributes, text, CDATA, five entities).

use std::collections::VecDeque;
use std::ops::Range;

use cpim_core::xml::{is_xml_char, Attribute, Element, Node};

/// `http://etherx.jabber.org/streams`
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// The namespace bound to the `xml` prefix.
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

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

/// A token found by [`scan`]; ranges are relative to the scanned slice.
enum Token {
    Text(Range<usize>),
    CData(Range<usize>),
    Decl,
    Start(Range<usize>, bool),
    End(Range<usize>),
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
        }
    }

    /// Forgets everything: for a stream restart after STARTTLS or SASL (RFC 6120 s4.3.3).
    pub fn reset(&mut self) {
        *self = StreamParser::new(self.limits);
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
        let (len, token) = match scan(rest)? {
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
            return Some(NS_XML.to_owned());
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
                if local != "stream" || ns.as_deref() != Some(NS_STREAM) {
                    return Err(StreamError::BadHeader(format!(
                        "expected <stream:stream xmlns:stream='{NS_STREAM}'>, got <{qname}>"
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

/// Finds the next complete token at the start of `b`: `(length, token)`, or `None` if
/// more bytes are needed.
fn scan(b: &[u8]) -> Result<Option<(usize, Token)>, StreamError> {
    if b[0] != b'<' {
        let end = memchr_lt(b).unwrap_or(b.len());
        if end == b.len() {
            // Text is only complete at the next '<'.
            return Ok(None);
        }
        return Ok(Some((end, Token::Text(0..end))));
    }
    if b.len() < 2 {
        return Ok(None);
    }
    match b[1] {
        b'?' => {
            // Only the XML declaration is allowed: refuse anything else at once rather
            // than waiting for a `?>` that may never come.
            let n = b.len().min(5);
            if b[2..n] != b"xml"[..n - 2] {
                return Err(StreamError::Restricted(
                    "processing instructions are not allowed".into(),
                ));
            }
            // Search after `<?`: in `<?>` the `?` must not close its own opening.
            let Some(end) = find(&b[2..], b"?>").map(|i| i + 2) else {
                return Ok(None);
            };
            let body = &b[2..end];
            if !(body.starts_with(b"xml ") || body == b"xml") {
                return Err(StreamError::Restricted(
                    "processing instructions are not allowed".into(),
                ));
            }
            Ok(Some((end + 2, Token::Decl)))
        }
        b'!' => {
            const CDATA: &[u8] = b"<![CDATA[";
            let n = b.len().min(CDATA.len());
            if b[..n] == CDATA[..n] {
                if b.len() < CDATA.len() {
                    return Ok(None);
                }
                let Some(end) = find(&b[CDATA.len()..], b"]]>") else {
                    return Ok(None);
                };
                let start = CDATA.len();
                return Ok(Some((start + end + 3, Token::CData(start..start + end))));
            }
            if b.len() >= 4 && &b[..4] == b"<!--" {
                return Err(StreamError::Restricted("comments are not allowed".into()));
            }
            if b.len() < 4 && b"<!--".starts_with(b) {
                return Ok(None);
            }
            Err(StreamError::Restricted(
                "document type declarations are not allowed".into(),
            ))
        }
        b'/' => {
            let Some(end) = b.iter().position(|&c| c == b'>') else {
                return Ok(None);
            };
            Ok(Some((end + 1, Token::End(2..end))))
        }
        _ => {
            let mut quote = 0u8;
            for (i, &c) in b.iter().enumerate().skip(1) {
                if quote != 0 {
                    if c == quote {
                        quote = 0;
                    } else if c == b'<' {
                        return Err(StreamError::NotWellFormed(
                            "'<' in an attribute value".into(),
                        ));
                    }
                    continue;
                }
                match c {
                    b'"' | b'\'' => quote = c,
                    b'<' => return Err(StreamError::NotWellFormed("'<' inside a tag".into())),
                    b'>' => {
                        let empty = b[i - 1] == b'/' && i >= 2;
                        let inner = if empty { 1..i - 1 } else { 1..i };
                        return Ok(Some((i + 1, Token::Start(inner, empty))));
                    }
                    _ => {}
                }
            }
            Ok(None)
        }
    }
}

fn memchr_lt(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'<')
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='sip.xmpp.test' id='abc'>";

    fn run(input: &[u8], chunk: usize) -> Vec<Result<StreamEvent, StreamError>> {
        let mut p = StreamParser::default();
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            p.feed(c);
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn header_stanzas_and_end_in_any_chunking() {
        let doc = format!(
            "{HEADER} <message to='a@b' id='1'><body>x &amp; y &#x263A;</body><x xmlns='jabber:x:oob'><![CDATA[<raw>]]></x></message>\n<handshake/></stream:stream>"
        );
        let whole = run(doc.as_bytes(), doc.len());
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(run(doc.as_bytes(), chunk), whole, "chunk {chunk}");
        }
        assert_eq!(whole.len(), 4);
        let Ok(StreamEvent::Header(h)) = &whole[0] else {
            panic!("{whole:?}")
        };
        assert_eq!(h.default_ns, "jabber:component:accept");
        assert_eq!(h.attr("id"), Some("abc"));
        let Ok(StreamEvent::Stanza(m)) = &whole[1] else {
            panic!()
        };
        assert!(m.is("jabber:component:accept", "message"));
        assert_eq!(
            m.child("jabber:component:accept", "body").unwrap().text(),
            "x & y \u{263A}"
        );
        assert_eq!(m.child("jabber:x:oob", "x").unwrap().text(), "<raw>");
        assert_eq!(whole[3], Ok(StreamEvent::End));
    }

    #[test]
    fn prefixed_children_resolve_through_the_header() {
        let doc = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'><db:result from='a' to='b'>k</db:result><stream:features/>";
        let ev = run(doc.as_bytes(), 1);
        let Ok(StreamEvent::Stanza(r)) = &ev[1] else {
            panic!("{ev:?}")
        };
        assert!(r.is("jabber:server:dialback", "result"));
        let Ok(StreamEvent::Stanza(f)) = &ev[2] else {
            panic!()
        };
        assert!(f.is(NS_STREAM, "features"));
    }

    #[test]
    fn restricted_xml_is_refused() {
        for bad in [
            "<!DOCTYPE x [<!ENTITY a 'b'>]>",
            "<!-- hi -->",
            "<message><body>&ent;</body></message>",
            "<?php x?>",
            // Found by the fuzzer: `<?>` once panicked the scanner.
            "<message><body>hi<?>/body></message>",
        ] {
            let doc = format!("{HEADER}{bad}");
            let ev = run(doc.as_bytes(), 1);
            let err = ev.into_iter().find_map(|e| e.err()).expect(bad);
            assert!(matches!(err, StreamError::Restricted(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn malformed_input_errors() {
        for bad in [
            "<a></b>",
            "<a x='1' x='2'/>",
            "<a x=1/>",
            "<p:a/>",
            "<a>&#0;</a>",
            "<a>\u{1}</a>",
            "text",
            "<a b='<'/>",
        ] {
            let doc = format!("{HEADER}{bad}<z/>");
            let ev = run(doc.as_bytes(), 3);
            assert!(ev.iter().any(|e| e.is_err()), "{bad}: {ev:?}");
        }
        let ev = run(b"<html>", 1);
        assert!(matches!(ev[0], Err(StreamError::BadHeader(_))));
    }

    #[test]
    fn limits_are_enforced() {
        let mut p = StreamParser::new(Limits {
            max_stanza_bytes: 300,
            max_depth: 3,
            max_attributes: 4,
        });
        p.feed(HEADER.as_bytes());
        assert!(matches!(p.next_event(), Some(Ok(StreamEvent::Header(_)))));
        p.feed(b"<a><b><c><d/></c></b></a>");
        assert!(matches!(
            p.next_event(),
            Some(Err(StreamError::TooLarge(_)))
        ));
        let mut p = StreamParser::new(Limits {
            max_stanza_bytes: 300,
            max_depth: 3,
            max_attributes: 4,
        });
        p.feed(HEADER.as_bytes());
        let _ = p.next_event();
        p.feed(b"<message>");
        for _ in 0..40 {
            p.feed(b"0123456789");
        }
        let mut saw = false;
        while let Some(e) = p.next_event() {
            saw |= matches!(e, Err(StreamError::TooLarge(_)));
        }
        assert!(saw);
    }

    #[test]
    fn whitespace_keepalives_between_stanzas_are_ignored() {
        let doc = format!("{HEADER} \n <a/>  \t <b/> ");
        let ev = run(doc.as_bytes(), 1);
        assert_eq!(ev.len(), 3);
        assert!(ev.iter().all(|e| e.is_ok()));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn leaf() -> impl Strategy<Value = Element> {
            (
                prop::sample::select(vec!["message", "body", "x", "item", "a-b.c"]),
                prop::sample::select(vec!["jabber:client", "urn:x", "urn:y:z"]),
                prop::collection::vec(("[a-z]{1,6}", "\\PC{0,12}"), 0..3),
            )
                .prop_map(|(name, ns, attrs)| {
                    let mut e = Element {
                        ns: ns.to_owned(),
                        prefix: None,
                        name: name.to_owned(),
                        attrs: Vec::new(),
                        children: Vec::new(),
                    };
                    for (n, v) in attrs {
                        if !e.attrs.iter().any(|a| a.name == n) {
                            e.attrs.push(Attribute {
                                ns: String::new(),
                                prefix: None,
                                name: n,
                                value: v,
                            });
                        }
                    }
                    e
                })
        }

        fn tree() -> impl Strategy<Value = Element> {
            leaf().prop_recursive(4, 24, 4, |inner| {
                (
                    leaf(),
                    prop::collection::vec(
                        prop_oneof![
                            inner.prop_map(Node::Element),
                            "\\PC{1,10}".prop_map(Node::Text),
                        ],
                        0..4,
                    ),
                )
                    .prop_map(|(mut e, kids)| {
                        for k in kids {
                            let merge = matches!(
                                (&k, e.children.last()),
                                (Node::Text(_), Some(Node::Text(_)))
                            );
                            if merge {
                                if let (Node::Text(t), Some(Node::Text(prev))) =
                                    (&k, e.children.last_mut())
                                {
                                    prev.push_str(t);
                                }
                            } else {
                                e.children.push(k);
                            }
                        }
                        e
                    })
            })
        }

        proptest! {
            /// Writer -> stream parser is the identity on element trees, in any chunking.
            #[test]
            fn written_trees_parse_back(e in tree(), chunk in 1usize..40) {
                let valid = |s: &str| s.chars().all(is_xml_char);
                fn all_valid(e: &Element, f: &dyn Fn(&str) -> bool) -> bool {
                    e.attrs.iter().all(|a| f(&a.value)) && e.children.iter().all(|c| match c {
                        Node::Element(x) => all_valid(x, f),
                        Node::Text(t) => f(t),
                    })
                }
                prop_assume!(all_valid(&e, &valid));
                let doc = format!("{HEADER}{}", e.to_xml());
                let ev = run(doc.as_bytes(), chunk);
                prop_assert_eq!(ev.len(), 2, "{:?}", ev);
                prop_assert_eq!(&ev[1], &Ok(StreamEvent::Stanza(e)));
            }

            /// Arbitrary bytes never panic, and chunking never changes the outcome.
            #[test]
            fn arbitrary_bytes_are_handled(data in prop::collection::vec(any::<u8>(), 0..300), chunk in 1usize..16) {
                let mut doc = HEADER.as_bytes().to_vec();
                doc.extend_from_slice(&data);
                prop_assert_eq!(run(&doc, chunk), run(&doc, doc.len().max(1)));
            }
        }
    }
}

//! XML helpers for every XML payload of the project (PIDF, IMDN, isComposing,
//! watcherinfo, RLMI here; the XMPP adapter reuses them).
//!
//! - [`parse`]: a restricted, namespace-aware reader over quick-xml's `NsReader`. It
//!   refuses any document type declaration (`<!DOCTYPE`), expands no entity except the
//!   five predefined ones and numeric character references (XML 1.0 s4.6, s4.1), bounds
//!   input size, nesting depth, element count and attributes per element ([`Limits`]),
//!   accepts only UTF-8, rejects characters outside the XML 1.0 `Char` production
//!   (s2.2) and undeclared prefixes, and reports every refusal with the byte offset,
//!   line and column ([`XmlError`]).
//! - [`Element`]: a small owned tree (expanded name, original prefix, attributes,
//!   children, text). [`Element::to_xml`] writes a subtree back as self-contained XML
//!   text that declares every namespace it uses: this is how documents keep elements
//!   their codec does not model.
//! - [`Writer`]: an escaping writer for the codecs' output.
//! - [`is_xml_char`], [`find_invalid_char`], [`strip_invalid_chars`]: the `Char`
//!   production, so that nothing forbidden is ever sent.
//! - [`ns`]: every namespace name the codecs use.

use std::borrow::Cow;
use std::fmt;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use quick_xml::XmlVersion;

/// Namespace names (one place for all of them).
pub mod ns {
    /// RFC 3863 PIDF.
    pub const PIDF: &str = "urn:ietf:params:xml:ns:pidf";
    /// RFC 4480 RPID.
    pub const RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";
    /// RFC 4479 data model.
    pub const DATA_MODEL: &str = "urn:ietf:params:xml:ns:pidf:data-model";
    /// RFC 4482 CIPID.
    pub const CIPID: &str = "urn:ietf:params:xml:ns:pidf:cipid";
    /// RFC 5196 capabilities.
    pub const CAPS: &str = "urn:ietf:params:xml:ns:pidf:caps";
    /// Pre-RFC 3863 draft namespace of PIDF (refused: no schema, not interoperable).
    pub const CPIM_PIDF_DRAFT: &str = "urn:ietf:params:xml:ns:cpim-pidf:";
    /// RFC 5438 IMDN.
    pub const IMDN: &str = "urn:ietf:params:xml:ns:imdn";
    /// RFC 3994 isComposing.
    pub const ISCOMPOSING: &str = "urn:ietf:params:xml:ns:im-iscomposing";
    /// RFC 3858 watcherinfo.
    pub const WATCHERINFO: &str = "urn:ietf:params:xml:ns:watcherinfo";
    /// RFC 4662 RLMI.
    pub const RLMI: &str = "urn:ietf:params:xml:ns:rlmi";
    /// The misspelling RFC 4662's own examples use (`rmli`); accepted on input.
    pub const RLMI_MISSPELLED: &str = "urn:ietf:params:xml:ns:rmli";
    /// The `xml:` prefix (xml:lang).
    pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
}

/// Bounds the reader enforces. The defaults fit every SIMPLE payload seen in the
/// corpora with a wide margin (the largest is a few kB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting (the root is depth 1).
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
    /// Most attributes on one element (namespace declarations included).
    pub max_attributes: usize,
}

impl Limits {
    /// 256 KiB, depth 32, 10 000 elements, 64 attributes per element.
    pub const DEFAULT: Limits = Limits {
        max_bytes: 256 * 1024,
        max_depth: 32,
        max_elements: 10_000,
        max_attributes: 64,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Why the reader refused a document.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XmlErrorKind {
    /// The input is not UTF-8.
    NotUtf8,
    /// The XML declaration names an encoding other than UTF-8.
    UnsupportedEncoding(String),
    /// `<!DOCTYPE ...>`: DTDs are refused (entity expansion attacks, external fetches).
    DoctypeRefused,
    /// A reference to an entity other than the five predefined ones.
    EntityRefused(String),
    /// A character the XML 1.0 `Char` production forbids (literal or by reference).
    InvalidChar(u32),
    /// Larger than [`Limits::max_bytes`].
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Nested deeper than [`Limits::max_depth`].
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More elements than [`Limits::max_elements`].
    TooManyElements {
        /// The limit.
        limit: usize,
    },
    /// More attributes on one element than [`Limits::max_attributes`].
    TooManyAttributes {
        /// The limit.
        limit: usize,
    },
    /// A prefix with no namespace declaration in scope.
    UnboundPrefix(String),
    /// No root element.
    NoRoot,
    /// Content after the root element that is not whitespace, a comment or a PI.
    TrailingContent,
    /// The document ends inside an element.
    Truncated,
    /// Any other well-formedness error, as quick-xml describes it.
    Syntax(String),
}

impl fmt::Display for XmlErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XmlErrorKind::NotUtf8 => f.write_str("input is not UTF-8"),
            XmlErrorKind::UnsupportedEncoding(e) => {
                write!(f, "encoding {e:?} is not supported (only UTF-8)")
            }
            XmlErrorKind::DoctypeRefused => {
                f.write_str("document type declarations (<!DOCTYPE) are refused")
            }
            XmlErrorKind::EntityRefused(n) => write!(
                f,
                "entity reference &{n}; refused (only the five predefined entities and character references are expanded)"
            ),
            XmlErrorKind::InvalidChar(c) => {
                write!(f, "character U+{c:04X} is not allowed in XML 1.0")
            }
            XmlErrorKind::TooLarge { limit } => {
                write!(f, "document larger than the limit of {limit} bytes")
            }
            XmlErrorKind::TooDeep { limit } => {
                write!(f, "elements nested deeper than the limit of {limit}")
            }
            XmlErrorKind::TooManyElements { limit } => {
                write!(f, "more than the limit of {limit} elements")
            }
            XmlErrorKind::TooManyAttributes { limit } => {
                write!(f, "more than the limit of {limit} attributes on one element")
            }
            XmlErrorKind::UnboundPrefix(p) => write!(f, "namespace prefix {p:?} is not declared"),
            XmlErrorKind::NoRoot => f.write_str("no root element"),
            XmlErrorKind::TrailingContent => f.write_str("content after the root element"),
            XmlErrorKind::Truncated => f.write_str("document ends before the root element is closed"),
            XmlErrorKind::Syntax(s) => write!(f, "not well-formed: {s}"),
        }
    }
}

/// A refused document: what and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("XML error at line {line}, column {column} (byte {offset}): {kind}")]
pub struct XmlError {
    /// Byte offset into the input.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The reason.
    pub kind: XmlErrorKind,
}

impl XmlError {
    fn at(input: &str, offset: usize, kind: XmlErrorKind) -> XmlError {
        let mut offset = offset.min(input.len());
        while !input.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &input[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        XmlError {
            offset,
            line,
            column,
            kind,
        }
    }

    fn plain(kind: XmlErrorKind) -> XmlError {
        XmlError {
            offset: 0,
            line: 1,
            column: 1,
            kind,
        }
    }
}

/// Errors of the document codecs (PIDF, IMDN, isComposing, watcherinfo, RLMI).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The XML itself was refused.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The root element is not the one this codec reads.
    #[error("expected root element {{{expected_ns}}}{expected}, found {{{found_ns}}}{found}")]
    WrongRoot {
        /// Expected namespace.
        expected_ns: &'static str,
        /// Expected local name.
        expected: &'static str,
        /// Namespace found.
        found_ns: String,
        /// Local name found.
        found: String,
    },
    /// A required element or attribute is absent.
    #[error("missing {what} in <{parent}>")]
    Missing {
        /// What is missing (`<message-id>`, `attribute version`).
        what: &'static str,
        /// The element that should contain it.
        parent: &'static str,
    },
    /// A value that cannot be read.
    #[error("invalid {what}: {value:?}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// The value as written (cut to 64 characters).
        value: String,
    },
}

impl DocError {
    pub(crate) fn invalid(what: &'static str, value: &str) -> DocError {
        DocError::Invalid {
            what,
            value: value.chars().take(64).collect(),
        }
    }

    pub(crate) fn wrong_root(
        expected_ns: &'static str,
        expected: &'static str,
        found: &Element,
    ) -> DocError {
        DocError::WrongRoot {
            expected_ns,
            expected,
            found_ns: found.ns.clone(),
            found: found.name.clone(),
        }
    }
}

/// Errors of the document encoders.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An extension string (kept XML of an unmodelled element) is not one well-formed
    /// element, or is in the namespace of the element it would be placed in (where the
    /// schema's `##other` wildcard does not allow it).
    #[error("extension {index} of <{context}> cannot be written: {reason}")]
    InvalidExtension {
        /// Where it would go.
        context: &'static str,
        /// Its index in the list.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// An attribute of an [`Element`]; namespace declarations are not attributes here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// Namespace name, empty for an unqualified attribute.
    pub ns: String,
    /// The prefix it was written with (kept for re-encoding).
    pub prefix: Option<String>,
    /// Local name.
    pub name: String,
    /// The value, entities expanded and normalized (XML 1.0 s3.3.3).
    pub value: String,
}

/// A child of an [`Element`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (references expanded, CDATA sections merged in).
    Text(String),
}

/// An element with its expanded name and content.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace name; empty when the element is in no namespace.
    pub ns: String,
    /// The prefix it was written with (kept for re-encoding).
    pub prefix: Option<String>,
    /// Local name.
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<Attribute>,
    /// Children in document order; adjacent text is merged into one node, and
    /// whitespace-only text in an element that has child elements is not kept.
    pub children: Vec<Node>,
}

impl Element {
    /// True if the element has this namespace and local name.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// The child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this expanded name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, name))
    }

    /// The text content of this element's own text children (not of descendants).
    pub fn text(&self) -> Cow<'_, str> {
        let mut texts = self.children.iter().filter_map(|n| match n {
            Node::Text(t) => Some(t.as_str()),
            Node::Element(_) => None,
        });
        match (texts.next(), texts.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(t), None) => Cow::Borrowed(t),
            (Some(a), Some(b)) => {
                let mut s = String::from(a);
                s.push_str(b);
                texts.for_each(|t| s.push_str(t));
                Cow::Owned(s)
            }
        }
    }

    /// The text with XML whitespace trimmed at both ends (for tokens, URIs, dates).
    pub fn trimmed_text(&self) -> String {
        self.text()
            .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
            .to_owned()
    }

    /// An unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attr_ns("", name)
    }

    /// An attribute by expanded name.
    pub fn attr_ns(&self, ns: &str, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name && a.ns == ns)
            .map(|a| a.value.as_str())
    }

    /// `xml:lang` of this element.
    pub fn lang(&self) -> Option<&str> {
        self.attr_ns(ns::XML, "lang")
    }

    /// Writes this subtree as self-contained XML text: every namespace the subtree
    /// uses is declared inside it (on the subtree's root, or lower where a prefix is
    /// rebound), whatever the context it came from. Original prefixes are kept.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(128);
        // The sentinel makes an unprefixed root always declare its default namespace
        // (`xmlns=""` included), so the text keeps its meaning wherever it is pasted.
        let mut scope: Vec<(Option<String>, String)> = vec![(None, "\u{0}".to_owned())];
        self.write_into(&mut out, &mut scope);
        out
    }

    fn write_into(&self, out: &mut String, scope: &mut Vec<(Option<String>, String)>) {
        let mark = scope.len();
        fn bound<'a>(scope: &'a [(Option<String>, String)], p: &Option<String>) -> Option<&'a str> {
            scope
                .iter()
                .rev()
                .find(|(sp, _)| sp == p)
                .map(|(_, n)| n.as_str())
        }
        let mut decls: Vec<(Option<String>, String)> = Vec::new();
        let mut need =
            |prefix: &Option<String>, nsname: &str, scope: &[(Option<String>, String)]| {
                if prefix.as_deref() == Some("xml") {
                    return;
                }
                let current = bound(scope, prefix).unwrap_or("");
                let declared = decls.iter().any(|(p, _)| p == prefix);
                if current != nsname && !declared {
                    decls.push((prefix.clone(), nsname.to_owned()));
                }
            };
        need(&self.prefix, &self.ns, scope);
        for a in &self.attrs {
            if !a.ns.is_empty() {
                need(&a.prefix, &a.ns, scope);
            }
        }
        out.push('<');
        push_qname(out, &self.prefix, &self.name);
        for (p, n) in &decls {
            match p {
                Some(p) => {
                    out.push_str(" xmlns:");
                    out.push_str(p);
                }
                None => out.push_str(" xmlns"),
            }
            out.push_str("=\"");
            escape_attr_into(out, n);
            out.push('"');
        }
        scope.extend(decls);
        for a in &self.attrs {
            out.push(' ');
            let p = if a.ns.is_empty() { &None } else { &a.prefix };
            push_qname(out, p, &a.name);
            out.push_str("=\"");
            escape_attr_into(out, &a.value);
            out.push('"');
        }
        if self.children.is_empty() {
            out.push_str("/>");
        } else {
            out.push('>');
            for c in &self.children {
                match c {
                    Node::Element(e) => e.write_into(out, scope),
                    Node::Text(t) => escape_text_into(out, t),
                }
            }
            out.push_str("</");
            push_qname(out, &self.prefix, &self.name);
            out.push('>');
        }
        scope.truncate(mark);
    }
}

fn push_qname(out: &mut String, prefix: &Option<String>, name: &str) {
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(name);
}

/// The XML 1.0 `Char` production (s2.2):
/// `#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`.
#[inline]
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// The byte offset and value of the first character XML 1.0 forbids, if any.
pub fn find_invalid_char(s: &str) -> Option<(usize, char)> {
    // Fast path on bytes: forbidden characters are C0 controls other than tab, LF and
    // CR (bytes below 0x20) and U+FFFE/U+FFFF (EF BF BE / EF BF BF).
    let bytes = s.as_bytes();
    // A branch-free pass the compiler vectorizes; the exact scan runs only when it
    // finds a candidate (a control character, or 0xEF which also starts U+F000-U+FFFD).
    let candidate = bytes.iter().fold(false, |acc, &b| {
        acc | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0xEF)
    });
    if !candidate {
        return None;
    }
    for (i, &b) in bytes.iter().enumerate() {
        if (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
            || (b == 0xEF
                && bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)))
        {
            let c = s[i..].chars().next().unwrap_or('\0');
            return Some((i, c));
        }
    }
    None
}

/// `s` without the characters XML 1.0 forbids (borrowed when there are none).
pub fn strip_invalid_chars(s: &str) -> Cow<'_, str> {
    if find_invalid_char(s).is_none() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

/// Appends `s` escaped as character data. Characters XML 1.0 forbids are dropped;
/// `\r` is written as `&#xD;` so that it survives end-of-line normalization.
pub fn escape_text_into(out: &mut String, s: &str) {
    escape_into(out, s, false);
}

/// Appends `s` escaped for a double-quoted attribute value. Tab, LF and CR are
/// written as character references so that attribute normalization keeps them.
pub fn escape_attr_into(out: &mut String, s: &str) {
    escape_into(out, s, true);
}

fn escape_into(out: &mut String, s: &str, attr: bool) {
    // Fast path: most text has nothing to escape or drop. One pass over the bytes that
    // the compiler vectorizes; the character loop below runs only when it finds a
    // candidate (markup, a control character, or 0xEF, which starts U+FFFE/U+FFFF).
    let special = s.as_bytes().iter().fold(false, |acc, &b| {
        acc | (b == b'&') | (b == b'<') | (b == b'>') | (b == b'"') | (b < 0x20) | (b == 0xEF)
    });
    if !special {
        out.push_str(s);
        return;
    }
    let mut last = 0;
    for (i, c) in s.char_indices() {
        let rep = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' if attr => "&quot;",
            '\t' if attr => "&#x9;",
            '\n' if attr => "&#xA;",
            '\r' => "&#xD;",
            c if !is_xml_char(c) => "",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + c.len_utf8();
    }
    out.push_str(&s[last..]);
}

/// Parses a complete document with the default [`Limits`].
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    parse_with(input, &Limits::DEFAULT)
}

/// Parses a complete document into its root [`Element`], enforcing `limits`.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    if input.len() > limits.max_bytes {
        return Err(XmlError::plain(XmlErrorKind::TooLarge {
            limit: limits.max_bytes,
        }));
    }
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            let valid = std::str::from_utf8(&input[..e.valid_up_to()]).unwrap_or("");
            let mut err = XmlError::at(valid, valid.len(), XmlErrorKind::NotUtf8);
            err.offset = e.valid_up_to();
            return Err(err);
        }
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if let Some((i, c)) = find_invalid_char(text) {
        return Err(XmlError::at(text, i, XmlErrorKind::InvalidChar(c as u32)));
    }
    Parser {
        input: text,
        limits,
    }
    .run()
}

struct Parser<'a> {
    input: &'a str,
    limits: &'a Limits,
}

impl<'a> Parser<'a> {
    fn err(&self, offset: u64, kind: XmlErrorKind) -> XmlError {
        XmlError::at(self.input, offset as usize, kind)
    }

    fn run(self) -> Result<Element, XmlError> {
        let mut reader = NsReader::from_str(self.input);
        {
            let cfg = reader.config_mut();
            cfg.check_end_names = true;
            cfg.expand_empty_elements = false;
            cfg.trim_text(false);
        }
        let mut stack: Vec<Element> = Vec::with_capacity(8);
        let mut root: Option<Element> = None;
        let mut elements = 0usize;
        loop {
            let before = reader.buffer_position();
            let event = match reader.read_event() {
                Ok(ev) => ev,
                Err(e) => {
                    return Err(
                        self.err(reader.error_position(), XmlErrorKind::Syntax(e.to_string()))
                    )
                }
            };
            match event {
                Event::Decl(d) => {
                    if let Some(enc) = d.encoding() {
                        let enc =
                            enc.map_err(|e| self.err(before, XmlErrorKind::Syntax(e.to_string())))?;
                        if !enc.eq_ignore_ascii_case("utf-8") && !enc.eq_ignore_ascii_case("utf8") {
                            return Err(self
                                .err(before, XmlErrorKind::UnsupportedEncoding(enc.into_owned())));
                        }
                    }
                }
                Event::DocType(_) => return Err(self.err(before, XmlErrorKind::DoctypeRefused)),
                Event::Start(ref s) | Event::Empty(ref s) => {
                    if root.is_some() {
                        return Err(self.err(before, XmlErrorKind::TrailingContent));
                    }
                    elements += 1;
                    if elements > self.limits.max_elements {
                        return Err(self.err(
                            before,
                            XmlErrorKind::TooManyElements {
                                limit: self.limits.max_elements,
                            },
                        ));
                    }
                    if stack.len() + 1 > self.limits.max_depth {
                        return Err(self.err(
                            before,
                            XmlErrorKind::TooDeep {
                                limit: self.limits.max_depth,
                            },
                        ));
                    }
                    let el = self.element(&reader, s, before)?;
                    if matches!(event, Event::Start(_)) {
                        stack.push(el);
                    } else {
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(Node::Element(el)),
                            None => root = Some(el),
                        }
                    }
                }
                Event::End(_) => {
                    // quick-xml checks that the name matches.
                    let Some(mut el) = stack.pop() else {
                        return Err(
                            self.err(before, XmlErrorKind::Syntax("unmatched end tag".into()))
                        );
                    };
                    // In element content, whitespace-only text is layout, not data.
                    if el.children.len() > 1
                        && el.children.iter().any(|n| matches!(n, Node::Element(_)))
                    {
                        el.children
                            .retain(|n| !matches!(n, Node::Text(t) if is_xml_space(t)));
                    }
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(el)),
                        None => root = Some(el),
                    }
                }
                Event::Text(t) => {
                    let content = t.xml10_content();
                    self.push_text(&mut stack, root.is_some(), &content, before)?;
                }
                Event::CData(t) => {
                    let content = t.xml10_content();
                    if stack.is_empty() {
                        return Err(self.err(before, XmlErrorKind::TrailingContent));
                    }
                    self.push_text(&mut stack, false, &content, before)?;
                }
                Event::GeneralRef(r) => {
                    let resolved: Cow<'_, str> = if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) if is_xml_char(c) => {
                                let mut b = [0u8; 4];
                                Cow::Owned(c.encode_utf8(&mut b).to_owned())
                            }
                            Ok(Some(c)) => {
                                return Err(self.err(before, XmlErrorKind::InvalidChar(c as u32)))
                            }
                            Ok(None) | Err(_) => {
                                return Err(self.err(
                                    before,
                                    XmlErrorKind::Syntax(format!(
                                        "invalid character reference &{};",
                                        &*r
                                    )),
                                ))
                            }
                        }
                    } else {
                        match predefined_entity(&r) {
                            Some(v) => Cow::Borrowed(v),
                            None => {
                                return Err(self.err(
                                    before,
                                    XmlErrorKind::EntityRefused(r.chars().take(64).collect()),
                                ))
                            }
                        }
                    };
                    if stack.is_empty() {
                        return Err(self.err(before, XmlErrorKind::TrailingContent));
                    }
                    self.push_text(&mut stack, false, &resolved, before)?;
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => {
                    if !stack.is_empty() {
                        return Err(self.err(reader.buffer_position(), XmlErrorKind::Truncated));
                    }
                    return root.ok_or_else(|| self.err(0, XmlErrorKind::NoRoot));
                }
            }
        }
    }

    fn push_text(
        &self,
        stack: &mut [Element],
        after_root: bool,
        content: &str,
        at: u64,
    ) -> Result<(), XmlError> {
        match stack.last_mut() {
            Some(parent) => {
                if let Some(Node::Text(prev)) = parent.children.last_mut() {
                    prev.push_str(content);
                } else if !content.is_empty() {
                    parent.children.push(Node::Text(content.to_owned()));
                }
                Ok(())
            }
            None => {
                if content
                    .bytes()
                    .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                {
                    Ok(())
                } else if after_root {
                    Err(self.err(at, XmlErrorKind::TrailingContent))
                } else {
                    Err(self.err(
                        at,
                        XmlErrorKind::Syntax("text before the root element".into()),
                    ))
                }
            }
        }
    }

    fn element(
        &self,
        reader: &NsReader<&'a [u8]>,
        start: &BytesStart<'_>,
        at: u64,
    ) -> Result<Element, XmlError> {
        let resolver = reader.resolver();
        let qname = start.name();
        if qname.prefix().is_some_and(|p| p.into_inner() == "xmlns") {
            // Namespaces in XML 1.0 s3: element names must not have the prefix xmlns.
            return Err(self.err(
                at,
                XmlErrorKind::Syntax("element name with the reserved prefix xmlns".into()),
            ));
        }
        let (res, local) = resolver.resolve_element(qname);
        let ns = match res {
            ResolveResult::Bound(n) => self.namespace_name(n.into_inner(), at)?,
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => return Err(self.err(at, XmlErrorKind::UnboundPrefix(p))),
        };
        let mut el = Element {
            ns,
            prefix: qname.prefix().map(|p| p.into_inner().to_owned()),
            name: local.into_inner().to_owned(),
            attrs: Vec::new(),
            children: Vec::new(),
        };
        let mut count = 0usize;
        for attr in start.attributes() {
            let attr = attr.map_err(|e| self.err(at, XmlErrorKind::Syntax(e.to_string())))?;
            count += 1;
            if count > self.limits.max_attributes {
                return Err(self.err(
                    at,
                    XmlErrorKind::TooManyAttributes {
                        limit: self.limits.max_attributes,
                    },
                ));
            }
            if attr.key.as_namespace_binding().is_some() {
                continue;
            }
            let (res, local) = resolver.resolve_attribute(attr.key);
            let ns = match res {
                ResolveResult::Bound(n) => self.namespace_name(n.into_inner(), at)?,
                ResolveResult::Unbound => String::new(),
                ResolveResult::Unknown(p) => {
                    return Err(self.err(at, XmlErrorKind::UnboundPrefix(p)))
                }
            };
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| self.attr_error(&attr.value, e, at))?;
            if let Some((_, c)) = find_invalid_char(&value) {
                return Err(self.err(at, XmlErrorKind::InvalidChar(c as u32)));
            }
            el.attrs.push(Attribute {
                ns,
                prefix: attr.key.prefix().map(|p| p.into_inner().to_owned()),
                name: local.into_inner().to_owned(),
                value: value.into_owned(),
            });
        }
        Ok(el)
    }

    /// A namespace name as declared, normalized like any attribute value (quick-xml's
    /// resolver keeps the raw text): `xmlns:p="a&amp;b"` names `a&b`.
    fn namespace_name(&self, raw: &str, at: u64) -> Result<String, XmlError> {
        if !raw.contains(['&', '\t', '\n', '\r']) {
            return Ok(raw.to_owned());
        }
        let spaced = raw.replace("\r\n", " ").replace(['\t', '\n', '\r'], " ");
        let value = quick_xml::escape::unescape(&spaced)
            .map_err(|e| self.attr_error(raw, quick_xml::Error::Escape(e), at))?;
        if let Some((_, c)) = find_invalid_char(&value) {
            return Err(self.err(at, XmlErrorKind::InvalidChar(c as u32)));
        }
        Ok(value.into_owned())
    }

    fn attr_error(&self, raw: &str, e: quick_xml::Error, at: u64) -> XmlError {
        // Name the entity when an unknown one was the cause.
        if let Some(start) = raw.find('&') {
            let rest = &raw[start + 1..];
            if let Some(end) = rest.find(';') {
                let name = &rest[..end];
                if !name.starts_with('#') && predefined_entity(name).is_none() {
                    return self.err(
                        at,
                        XmlErrorKind::EntityRefused(name.chars().take(64).collect()),
                    );
                }
            }
        }
        self.err(at, XmlErrorKind::Syntax(e.to_string()))
    }
}

fn is_xml_space(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => return None,
    })
}

/// An escaping writer for the codecs. Elements are opened with [`Writer::open`],
/// attributes added with [`Writer::attr`], and closed with [`Writer::close`]; a start
/// tag is finished lazily, so an element without content becomes `<x/>`.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    open: Vec<&'static str>,
    tag_pending: bool,
}

impl Writer {
    /// A writer that starts with the XML declaration.
    pub fn new() -> Writer {
        let mut out = String::with_capacity(512);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        Writer {
            out,
            open: Vec::with_capacity(8),
            tag_pending: false,
        }
    }

    fn finish_tag(&mut self) {
        if self.tag_pending {
            self.out.push('>');
            self.tag_pending = false;
        }
    }

    /// Opens element `qname` (written as given, e.g. `dm:person`).
    pub fn open(&mut self, qname: &'static str) -> &mut Self {
        self.finish_tag();
        self.out.push('<');
        self.out.push_str(qname);
        self.open.push(qname);
        self.tag_pending = true;
        self
    }

    /// Adds an attribute to the element just opened.
    pub fn attr(&mut self, qname: &str, value: &str) -> &mut Self {
        debug_assert!(self.tag_pending, "attribute after content");
        self.out.push(' ');
        self.out.push_str(qname);
        self.out.push_str("=\"");
        escape_attr_into(&mut self.out, value);
        self.out.push('"');
        self
    }

    /// Adds an attribute if `value` is `Some`.
    pub fn attr_opt(&mut self, qname: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.attr(qname, v);
        }
        self
    }

    /// Writes escaped text.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.finish_tag();
        escape_text_into(&mut self.out, text);
        self
    }

    /// Writes markup that the caller guarantees is well-formed (a checked extension).
    pub fn raw(&mut self, xml: &str) -> &mut Self {
        self.finish_tag();
        self.out.push_str(xml);
        self
    }

    /// Closes the innermost open element.
    pub fn close(&mut self) -> &mut Self {
        let name = self.open.pop().unwrap_or("");
        if self.tag_pending {
            self.out.push_str("/>");
            self.tag_pending = false;
        } else {
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
        self
    }

    /// `<qname>text</qname>`.
    pub fn text_element(&mut self, qname: &'static str, text: &str) -> &mut Self {
        self.open(qname).text(text).close()
    }

    /// `<qname/>`.
    pub fn empty(&mut self, qname: &'static str) -> &mut Self {
        self.open(qname).close()
    }

    /// Closes everything still open and returns the document.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

/// Checks that `xml` (a kept extension) is exactly one well-formed element outside
/// namespace `container_ns` (any namespace if it is empty), so it can be written where
/// a `##other` (or `##any`) wildcard is.
pub(crate) fn check_extension(
    xml: &str,
    container_ns: &str,
    context: &'static str,
    index: usize,
) -> Result<(), EncodeError> {
    let fail = |reason: String| EncodeError::InvalidExtension {
        context,
        index,
        reason,
    };
    if xml.trim_start().starts_with("<?xml") {
        return Err(fail(
            "an XML declaration is not allowed in an extension".into(),
        ));
    }
    let el = parse(xml.as_bytes()).map_err(|e| fail(e.to_string()))?;
    if !container_ns.is_empty() && el.ns == container_ns {
        return Err(fail(format!(
            "element {} is in the namespace of <{context}> itself",
            el.name
        )));
    }
    Ok(())
}

/// Writes checked extensions.
pub(crate) fn write_extensions(
    w: &mut Writer,
    exts: &[String],
    container_ns: &str,
    context: &'static str,
) -> Result<(), EncodeError> {
    for (i, x) in exts.iter().enumerate() {
        check_extension(x, container_ns, context, i)?;
        w.raw(x);
    }
    Ok(())
}

/// Formats a qvalue (`0` to `1` with at most three decimals; RFC 3863 `qvalue`).
pub(crate) fn format_qvalue(q: f32) -> String {
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    let mut s = format!("{q:.3}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(input: &str) -> XmlErrorKind {
        parse(input.as_bytes()).unwrap_err().kind
    }

    #[test]
    fn namespaces_resolve_whatever_the_prefix() {
        let a =
            parse(br#"<p:a xmlns:p="urn:x"><p:b q:c="1" xmlns:q="urn:y">t</p:b></p:a>"#).unwrap();
        let b = parse(br#"<a xmlns="urn:x"><b xmlns:z="urn:y" z:c="1">t</b></a>"#).unwrap();
        assert!(a.is("urn:x", "a") && b.is("urn:x", "a"));
        let (ab, bb) = (
            a.child("urn:x", "b").unwrap(),
            b.child("urn:x", "b").unwrap(),
        );
        assert_eq!(ab.attr_ns("urn:y", "c"), Some("1"));
        assert_eq!(bb.attr_ns("urn:y", "c"), Some("1"));
        assert_eq!(ab.text(), "t");
    }

    #[test]
    fn predefined_entities_and_char_refs_expand() {
        let e = parse(br#"<a x="&lt;&#x41;&quot;">&amp;&#66;&apos;<![CDATA[<c>]]></a>"#).unwrap();
        assert_eq!(e.attr("x"), Some("<A\""));
        assert_eq!(e.text(), "&B'<c>");
    }

    #[test]
    fn doctype_is_refused_with_position() {
        let err = parse(b"<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>")
            .unwrap_err();
        assert_eq!(err.kind, XmlErrorKind::DoctypeRefused);
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("DOCTYPE"), "{err}");
    }

    #[test]
    fn billion_laughs_is_refused() {
        let doc = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>"#;
        assert_eq!(kind(doc), XmlErrorKind::DoctypeRefused);
    }

    #[test]
    fn undeclared_entity_is_refused() {
        assert_eq!(
            kind("<a>&nbsp;</a>"),
            XmlErrorKind::EntityRefused("nbsp".into())
        );
        assert_eq!(
            kind(r#"<a b="&ext;"/>"#),
            XmlErrorKind::EntityRefused("ext".into())
        );
    }

    #[test]
    fn forbidden_chars_are_refused_literal_or_referenced() {
        assert_eq!(kind("<a>\u{1}</a>"), XmlErrorKind::InvalidChar(1));
        let nul = kind("<a>&#x0;</a>");
        assert!(
            matches!(&nul, XmlErrorKind::Syntax(s) if s.contains("&#x0;")),
            "{nul:?}"
        );
        assert_eq!(kind("<a>&#8;</a>"), XmlErrorKind::InvalidChar(8));
        assert_eq!(kind("<a>&#xFFFE;</a>"), XmlErrorKind::InvalidChar(0xFFFE));
        assert_eq!(kind("<a b='&#x1B;'/>"), XmlErrorKind::InvalidChar(0x1B));
    }

    #[test]
    fn depth_bomb_is_refused() {
        let doc = "<a>".repeat(10_000);
        let err = parse(doc.as_bytes()).unwrap_err();
        assert_eq!(err.kind, XmlErrorKind::TooDeep { limit: 32 });
        assert_eq!(err.offset, 32 * 3, "the 33rd start tag");
    }

    #[test]
    fn oversize_and_too_many_attributes_are_refused() {
        let big = format!("<a>{}</a>", "x".repeat(300 * 1024));
        assert_eq!(kind(&big), XmlErrorKind::TooLarge { limit: 256 * 1024 });
        let attrs: String = (0..65).map(|i| format!(" a{i}='1'")).collect();
        assert_eq!(
            kind(&format!("<a{attrs}/>")),
            XmlErrorKind::TooManyAttributes { limit: 64 }
        );
        let many = format!("<a>{}</a>", "<b/>".repeat(10_000));
        assert_eq!(kind(&many), XmlErrorKind::TooManyElements { limit: 10_000 });
    }

    #[test]
    fn malformed_inputs_are_refused_not_panicking() {
        assert_eq!(kind(""), XmlErrorKind::NoRoot);
        assert_eq!(kind("<a>"), XmlErrorKind::Truncated);
        assert_eq!(kind("<a/><b/>"), XmlErrorKind::TrailingContent);
        assert_eq!(kind("<p:a/>"), XmlErrorKind::UnboundPrefix("p".into()));
        assert!(matches!(kind("<a></b>"), XmlErrorKind::Syntax(_)));
        assert_eq!(
            kind("<?xml version='1.0' encoding='ISO-8859-1'?><a/>"),
            XmlErrorKind::UnsupportedEncoding("ISO-8859-1".into())
        );
        assert_eq!(
            parse(b"<a>\xff</a>").unwrap_err().kind,
            XmlErrorKind::NotUtf8
        );
        assert!(matches!(kind("<a b='1' b='2'/>"), XmlErrorKind::Syntax(_)));
        // Found by the watcherinfo fuzz target.
        assert!(matches!(kind("<a><xmlns:b/></a>"), XmlErrorKind::Syntax(_)));
    }

    #[test]
    fn subtree_to_xml_declares_what_it_needs() {
        let doc = parse(
            br#"<r xmlns="urn:r" xmlns:g="urn:g" xmlns:h="urn:h"><g:x h:a="1&amp;"><y>t&lt;</y><g:z/></g:x></r>"#,
        )
        .unwrap();
        let x = doc.elements().next().unwrap();
        let s = x.to_xml();
        assert_eq!(
            s,
            r#"<g:x xmlns:g="urn:g" xmlns:h="urn:h" h:a="1&amp;"><y xmlns="urn:r">t&lt;</y><g:z/></g:x>"#
        );
        // Re-parsing the captured text yields the same subtree, and capturing it again
        // the same text.
        let again = parse(s.as_bytes()).unwrap();
        assert_eq!(&again, x);
        assert_eq!(again.to_xml(), s);
    }

    #[test]
    fn unqualified_subtree_keeps_no_namespace_when_pasted() {
        let doc = parse(br#"<r xmlns="urn:r"><x xmlns=""><y/></x><z/></r>"#).unwrap();
        let mut it = doc.elements();
        assert_eq!(it.next().unwrap().to_xml(), r#"<x xmlns=""><y/></x>"#);
        assert_eq!(it.next().unwrap().to_xml(), r#"<z xmlns="urn:r"/>"#);
    }

    #[test]
    fn namespace_names_are_normalized() {
        let e = parse(br#"<p:a xmlns:p="urn:a&amp;b&#x41;"><p:b xmlns:p="urn:a&amp;bA"/></p:a>"#)
            .unwrap();
        assert_eq!(e.ns, "urn:a&bA");
        let b = e.elements().next().unwrap();
        assert_eq!(b.ns, "urn:a&bA");
        let s = e.to_xml();
        assert_eq!(parse(s.as_bytes()).unwrap(), e);
        assert_eq!(
            kind("<p:a xmlns:p='urn:&bad;'/>"),
            XmlErrorKind::EntityRefused("bad".into())
        );
    }

    #[test]
    fn layout_whitespace_is_dropped_by_whole_text_node() {
        // Found by the pidf fuzz target: the decision must not depend on how the
        // reader splits text around references.
        let a = parse(b"<r><x/>\n  >\n  <y/> \n</r>").unwrap();
        let b = parse(b"<r><x/>\n  &gt;\n  <y/>&#x20;\n</r>").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_xml(), "<r xmlns=\"\"><x/>\n  &gt;\n  <y/></r>");
        assert_eq!(parse(a.to_xml().as_bytes()).unwrap(), a);
    }

    #[test]
    fn xml_lang_is_the_xml_namespace() {
        let e = parse(br#"<n xml:lang="fr">x</n>"#).unwrap();
        assert_eq!(e.lang(), Some("fr"));
        assert_eq!(e.to_xml(), r#"<n xmlns="" xml:lang="fr">x</n>"#);
    }

    #[test]
    fn char_checks_and_escaping() {
        assert!(is_xml_char('\t') && is_xml_char('\u{10FFFF}') && is_xml_char('\u{E000}'));
        assert!(
            !is_xml_char('\u{0}')
                && !is_xml_char('\u{1F}')
                && !is_xml_char('\u{FFFE}')
                && !is_xml_char('\u{FFFF}')
        );
        assert_eq!(find_invalid_char("ab\u{7}c"), Some((2, '\u{7}')));
        assert_eq!(find_invalid_char("a\u{FFFF}"), Some((1, '\u{FFFF}')));
        assert_eq!(find_invalid_char("é\u{FFFD}\n"), None);
        assert_eq!(strip_invalid_chars("a\u{0}b\u{FFFE}c"), "abc");
        let mut s = String::new();
        escape_text_into(&mut s, "a<b>&c\r\n\u{1}\"");
        assert_eq!(s, "a&lt;b&gt;&amp;c&#xD;\n\"");
        let mut s = String::new();
        escape_attr_into(&mut s, "\"x\"\t\n");
        assert_eq!(s, "&quot;x&quot;&#x9;&#xA;");
        // The fast path (nothing to escape) and the cases that must leave it: 0xEF starts
        // both allowed characters (U+F000) and forbidden ones (U+FFFE).
        let mut s = String::from("<");
        escape_text_into(&mut s, "plain é \u{F000} 'quoted' text");
        assert_eq!(s, "<plain é \u{F000} 'quoted' text");
        let mut s = String::new();
        escape_text_into(&mut s, "a\u{FFFE}b\u{F000}");
        assert_eq!(s, "ab\u{F000}");
        let mut s = String::new();
        escape_attr_into(&mut s, "tab\there");
        assert_eq!(s, "tab&#x9;here");
        // What the writer escapes, the reader restores.
        let mut w = Writer::new();
        w.open("a")
            .attr("v", " \t\r\n\"<&'")
            .text("x\r\ny<&>]]>")
            .close();
        let e = parse(w.finish().as_bytes()).unwrap();
        assert_eq!(e.attr("v"), Some(" \t\r\n\"<&'"));
        assert_eq!(e.text(), "x\r\ny<&>]]>");
    }

    #[test]
    fn qvalues_match_the_pidf_pattern() {
        assert_eq!(format_qvalue(0.8), "0.8");
        assert_eq!(format_qvalue(1.0), "1");
        assert_eq!(format_qvalue(0.0), "0");
        assert_eq!(format_qvalue(0.1234), "0.123");
        assert_eq!(format_qvalue(7.0), "1");
        assert_eq!(format_qvalue(f32::NAN), "0");
    }
}

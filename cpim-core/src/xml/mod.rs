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

mod chars;
mod element;
mod error;
mod reader;
mod writer;

pub use chars::{
    escape_attr_into, escape_text_into, find_invalid_char, is_xml_char, strip_invalid_chars,
};
pub use element::{Attribute, Element, Node};
pub use error::{DocError, EncodeError, XmlError, XmlErrorKind};
pub use reader::{parse, parse_with};
pub use writer::Writer;
pub(crate) use writer::{check_extension, format_qvalue, write_extensions};

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
    /// RFC 5262 partial PIDF (`<pidf-full>`, `<pidf-diff>`).
    pub const PIDF_DIFF: &str = "urn:ietf:params:xml:ns:pidf-diff";
    /// RFC 4661 event notification filters.
    pub const SIMPLE_FILTER: &str = "urn:ietf:params:xml:ns:simple-filter";
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

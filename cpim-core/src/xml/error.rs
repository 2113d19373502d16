//! The errors of the XML reader (with the position of every refusal) and of the
//! document codecs built on it.

use std::fmt;

use super::Element;

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
    /// Larger than [`Limits::max_bytes`](super::Limits::max_bytes).
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Nested deeper than [`Limits::max_depth`](super::Limits::max_depth).
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More elements than [`Limits::max_elements`](super::Limits::max_elements).
    TooManyElements {
        /// The limit.
        limit: usize,
    },
    /// More attributes on one element than [`Limits::max_attributes`](super::Limits::max_attributes).
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
    pub(super) fn at(input: &str, offset: usize, kind: XmlErrorKind) -> XmlError {
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

    pub(super) fn plain(kind: XmlErrorKind) -> XmlError {
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

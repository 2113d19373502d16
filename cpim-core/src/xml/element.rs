//! The owned element tree the reader builds, and how a subtree is written back as
//! self-contained XML text that declares every namespace it uses.

use std::borrow::Cow;

use super::chars::{escape_attr_into, escape_text_into};
use super::ns;

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

#[cfg(test)]
mod tests {
    use crate::xml::parse;

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
}

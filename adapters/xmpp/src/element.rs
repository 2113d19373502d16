//! Builders and output checks on `cpim_core::xml::Element`, the project's one element
//! tree (its escaping writer and XML 1.0 character filter live in `cpim_core::xml`).
//!
//! Outgoing stanzas are written with [`Element::to_xml`], which declares every
//! namespace the subtree uses; a stanza thus carries `xmlns='jabber:component:accept'`
//! (or `jabber:server`) explicitly, which is the stream default anyway.

use cpim_core::xml::{find_invalid_char, ns};
pub use cpim_core::xml::{Attribute, Element, Node};

/// Builder methods for [`Element`].
pub trait ElementExt: Sized {
    /// A new element without attributes or children.
    fn build(ns: &str, name: &str) -> Self;
    /// Sets an unqualified attribute (replacing one of the same name).
    fn attr_set(self, name: &str, value: impl Into<String>) -> Self;
    /// Sets the attribute if `value` is `Some`.
    fn attr_opt(self, name: &str, value: Option<&str>) -> Self;
    /// Sets `xml:lang`.
    fn lang_set(self, lang: Option<&str>) -> Self;
    /// Appends a child.
    fn child_add(self, child: Element) -> Self;
    /// Appends text.
    fn text_add(self, text: impl Into<String>) -> Self;
    /// Counts characters XML 1.0 forbids in attribute values and text (the writer
    /// drops them; the caller logs the count).
    fn invalid_chars(&self) -> usize;
}

impl ElementExt for Element {
    fn build(ns: &str, name: &str) -> Element {
        Element {
            ns: ns.to_owned(),
            prefix: None,
            name: name.to_owned(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    fn attr_set(mut self, name: &str, value: impl Into<String>) -> Element {
        let value = value.into();
        if let Some(a) = self
            .attrs
            .iter_mut()
            .find(|a| a.ns.is_empty() && a.name == name)
        {
            a.value = value;
        } else {
            self.attrs.push(Attribute {
                ns: String::new(),
                prefix: None,
                name: name.to_owned(),
                value,
            });
        }
        self
    }

    fn attr_opt(self, name: &str, value: Option<&str>) -> Element {
        match value {
            Some(v) => self.attr_set(name, v),
            None => self,
        }
    }

    fn lang_set(mut self, lang: Option<&str>) -> Element {
        if let Some(l) = lang {
            self.attrs
                .retain(|a| !(a.ns == ns::XML && a.name == "lang"));
            self.attrs.push(Attribute {
                ns: ns::XML.to_owned(),
                prefix: Some("xml".to_owned()),
                name: "lang".to_owned(),
                value: l.to_owned(),
            });
        }
        self
    }

    fn child_add(mut self, child: Element) -> Element {
        self.children.push(Node::Element(child));
        self
    }

    fn text_add(mut self, text: impl Into<String>) -> Element {
        self.children.push(Node::Text(text.into()));
        self
    }

    fn invalid_chars(&self) -> usize {
        fn count(s: &str) -> usize {
            if find_invalid_char(s).is_none() {
                0
            } else {
                s.chars()
                    .filter(|&c| !cpim_core::xml::is_xml_char(c))
                    .count()
            }
        }
        let mut n = self.attrs.iter().map(|a| count(&a.value)).sum();
        for c in &self.children {
            n += match c {
                Node::Element(e) => e.invalid_chars(),
                Node::Text(t) => count(t),
            };
        }
        n
    }
}

/// A text-only child: `<name>text</name>`.
pub fn text_el(ns: &str, name: &str, text: &str) -> Element {
    Element::build(ns, name).text_add(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_output_is_escaped_and_filtered() {
        let e = Element::build("jabber:component:accept", "message")
            .attr_set("to", "a'b\"@x")
            .child_add(text_el("jabber:component:accept", "body", "1 < 2 & \u{0}3"))
            .child_add(Element::build("urn:xmpp:receipts", "request"));
        assert_eq!(e.invalid_chars(), 1);
        let s = e.to_xml();
        assert!(
            s.starts_with("<message xmlns=\"jabber:component:accept\" to=\"a'b&quot;@x\">"),
            "{s}"
        );
        assert!(s.contains("<body>1 &lt; 2 &amp; 3</body>"), "{s}");
        assert!(s.contains("<request xmlns=\"urn:xmpp:receipts\"/>"), "{s}");
    }
}

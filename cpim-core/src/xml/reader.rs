//! The restricted, namespace-aware reader: no document type declaration, no entity
//! but the predefined ones and character references (XML 1.0 s4.1, s4.6), bounded
//! size, depth and element count.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use quick_xml::XmlVersion;

use super::chars::{find_invalid_char, is_xml_char};
use super::element::{Attribute, Element, Node};
use super::error::{XmlError, XmlErrorKind};
use super::Limits;

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
}

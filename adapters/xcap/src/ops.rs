//! Element and attribute operations on a parsed document (RFC 4825 s7.3-s7.9,
//! s8.2): GET returns the selected element (`application/xcap-el+xml`) or
//! attribute value (`application/xcap-att+xml`); PUT replaces the selected element
//! or attribute, or inserts it under the selected parent (s8.2.3: with a position
//! `[n]` after the (n-1)th sibling passing the name test, else as the last child)
//! and refuses it with `cannot-insert` if the request URI would not then select it
//! (s8.2.3, s8.2.4); DELETE removes it and refuses with `cannot-delete` if the URI
//! would still select something (s8.2.5). An element body inherits the namespace
//! bindings in scope at its parent (s7.4).

use cpim_core::xml::{
    escape_attr_into, parse_with, Attribute, Element, Limits, Node, XmlErrorKind,
};

use crate::error::{Condition, XcapError};
use crate::select::{bindings_at, element_at, element_at_mut, locate, step_matches};
use crate::uri::{percent_encode_selector, NodeSelector};

/// `application/xcap-el+xml` (RFC 4825 s15.2.1).
pub const EL_MIME: &str = "application/xcap-el+xml";
/// `application/xcap-att+xml` (RFC 4825 s15.2.2).
pub const ATT_MIME: &str = "application/xcap-att+xml";

/// Why an operation failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Fail {
    /// Nothing selected (404).
    NotFound,
    /// Wrong body type (415).
    UnsupportedMediaType,
    /// A 409 with an `<xcap-error>`.
    Conflict(XcapError),
}

impl From<XcapError> for Fail {
    fn from(e: XcapError) -> Fail {
        Fail::Conflict(e)
    }
}

/// Maps a reader refusal to its XCAP condition (RFC 4825 s11.2).
pub fn xml_condition(kind: &XmlErrorKind, what: Condition, detail: String) -> XcapError {
    match kind {
        XmlErrorKind::NotUtf8 | XmlErrorKind::UnsupportedEncoding(_) => {
            XcapError::with(Condition::NotUtf8, detail)
        }
        XmlErrorKind::TooDeep { .. }
        | XmlErrorKind::TooManyElements { .. }
        | XmlErrorKind::TooManyAttributes { .. }
        | XmlErrorKind::TooLarge { .. } => XcapError::constraint(detail),
        _ => XcapError::with(what, detail),
    }
}

/// GET of an element or attribute: the body and its MIME type.
pub fn get(root: &Element, sel: &NodeSelector) -> Result<(String, &'static str), Fail> {
    let l = locate(root, &sel.steps);
    if l.matched != sel.steps.len() {
        return Err(Fail::NotFound);
    }
    let e = element_at(root, &l.path).ok_or(Fail::NotFound)?;
    match &sel.attribute {
        None => Ok((e.to_xml(), EL_MIME)),
        Some(a) => {
            let v = e.attr_ns(&a.ns, &a.local).ok_or(Fail::NotFound)?;
            let mut out = String::new();
            escape_attr_into(&mut out, v);
            Ok((out, ATT_MIME))
        }
    }
}

/// The `<ancestor>` of a no-parent error: the document URI and the steps that
/// selected something.
fn ancestor(doc_uri: &str, sel: &NodeSelector, matched: usize) -> String {
    if matched == 0 {
        return doc_uri.to_owned();
    }
    let steps: Vec<&str> = sel.steps[..matched]
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    format!("{doc_uri}/~~/{}", percent_encode_selector(&steps.join("/")))
}

/// PUT of an element or attribute into `root`; true if it was created.
pub fn put(
    root: &mut Element,
    sel: &NodeSelector,
    content_type: &str,
    body: &[u8],
    limits: &Limits,
    doc_uri: &str,
    root_decls: &[(Option<String>, String)],
) -> Result<bool, Fail> {
    let l = locate(root, &sel.steps);
    let n = sel.steps.len();
    match &sel.attribute {
        Some(a) => {
            if content_type != ATT_MIME {
                return Err(Fail::UnsupportedMediaType);
            }
            if l.matched != n {
                let err = Condition::NoParent(Some(ancestor(doc_uri, sel, l.matched)));
                return Err(XcapError::new(err).into());
            }
            let value = attribute_value(body, limits)?;
            let e = element_at_mut(root, &l.path).ok_or(Fail::NotFound)?;
            let created = match e
                .attrs
                .iter_mut()
                .find(|x| x.ns == a.ns && x.name == a.local)
            {
                Some(x) => {
                    x.value = value.clone();
                    false
                }
                None => {
                    e.attrs.push(Attribute {
                        ns: a.ns.clone(),
                        prefix: if a.ns.is_empty() {
                            None
                        } else {
                            a.prefix.clone()
                        },
                        name: a.local.clone(),
                        value: value.clone(),
                    });
                    true
                }
            };
            let again = locate(root, &sel.steps);
            let still = again.matched == n
                && element_at(root, &again.path).and_then(|e| e.attr_ns(&a.ns, &a.local))
                    == Some(value.as_str());
            if !still {
                return Err(XcapError::with(
                    Condition::CannotInsert,
                    "the request URI would not select the attribute afterwards",
                )
                .into());
            }
            Ok(created)
        }
        None => {
            if content_type != EL_MIME {
                return Err(Fail::UnsupportedMediaType);
            }
            let parent_path: &[usize] = if l.matched == n {
                &l.path[..l.path.len().saturating_sub(1)]
            } else {
                &l.path
            };
            if l.matched + 1 < n {
                let err = Condition::NoParent(Some(ancestor(doc_uri, sel, l.matched)));
                return Err(XcapError::new(err).into());
            }
            let (tree_prefixes, mut default) = bindings_at(root, parent_path);
            let mut prefixes: Vec<(String, String)> = root_decls
                .iter()
                .filter_map(|(p, v)| p.clone().map(|p| (p, v.clone())))
                .collect();
            prefixes.extend(tree_prefixes);
            if default.is_empty() {
                if let Some((_, v)) = root_decls.iter().find(|(p, _)| p.is_none()) {
                    default = v.clone();
                }
            }
            let new = element_body(body, &prefixes, &default, limits)?;
            let last = &sel.steps[n - 1];
            if !step_matches(last, &new) {
                return Err(XcapError::with(
                    Condition::CannotInsert,
                    "the element does not match the last step of the request URI",
                )
                .into());
            }
            let (created, want) = if l.matched == n {
                if l.path.is_empty() {
                    *root = new;
                    return Ok(false);
                }
                let parent = element_at_mut(root, parent_path).ok_or(Fail::NotFound)?;
                let i = *l.path.last().expect("not the root");
                parent.children[i] = Node::Element(new);
                (false, l.path.clone())
            } else if l.matched == 0 {
                return Err(XcapError::with(
                    Condition::CannotInsert,
                    "the first step does not select the root element",
                )
                .into());
            } else {
                let parent = element_at_mut(root, parent_path).ok_or(Fail::NotFound)?;
                let at = insert_index(parent, last.name.as_ref(), last.position)?;
                parent.children.insert(at, Node::Element(new));
                let mut want = parent_path.to_vec();
                want.push(at);
                (true, want)
            };
            let again = locate(root, &sel.steps);
            if again.matched != n || again.path != want {
                return Err(XcapError::with(
                    Condition::CannotInsert,
                    "the request URI would not select the element afterwards",
                )
                .into());
            }
            Ok(created)
        }
    }
}

/// Where an element goes under `parent` (RFC 4825 s8.2.3).
fn insert_index(
    parent: &Element,
    name: Option<&crate::uri::QName>,
    position: Option<usize>,
) -> Result<usize, Fail> {
    let passing: Vec<usize> = parent
        .children
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c {
            Node::Element(e) if name.is_none_or(|q| e.ns == q.ns && e.name == q.local) => Some(i),
            _ => None,
        })
        .collect();
    match position {
        None => Ok(parent.children.len()),
        Some(1) => Ok(passing.first().copied().unwrap_or(parent.children.len())),
        Some(p) => match passing.get(p - 2) {
            Some(&i) => Ok(i + 1),
            None => Err(XcapError::with(
                Condition::CannotInsert,
                format!(
                    "there are fewer than {} siblings before position {p}",
                    p - 1
                ),
            )
            .into()),
        },
    }
}

/// Parses an element PUT body: one element, in the namespace context `prefixes`
/// and `default` (RFC 4825 s7.4, s8.2.3).
fn element_body(
    body: &[u8],
    prefixes: &[(String, String)],
    default: &str,
    limits: &Limits,
) -> Result<Element, XcapError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| XcapError::with(Condition::NotUtf8, "the element is not UTF-8"))?;
    let mut wrapped = String::with_capacity(text.len() + 128);
    wrapped.push_str("<xcap-body xmlns=\"");
    escape_attr_into(&mut wrapped, default);
    wrapped.push('"');
    let mut done: Vec<&str> = Vec::new();
    for (p, ns) in prefixes.iter().rev() {
        if !done.contains(&p.as_str()) {
            done.push(p);
            wrapped.push_str(" xmlns:");
            wrapped.push_str(p);
            wrapped.push_str("=\"");
            escape_attr_into(&mut wrapped, ns);
            wrapped.push('"');
        }
    }
    wrapped.push('>');
    wrapped.push_str(text);
    wrapped.push_str("</xcap-body>");
    let limits = Limits {
        max_bytes: limits.max_bytes.saturating_add(wrapped.len() - text.len()),
        max_depth: limits.max_depth.saturating_add(1),
        ..*limits
    };
    let outer = parse_with(wrapped.as_bytes(), &limits)
        .map_err(|e| xml_condition(&e.kind, Condition::NotWellFormed, e.kind.to_string()))?;
    let mut elements = Vec::new();
    for c in outer.children {
        match c {
            Node::Element(e) => elements.push(e),
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(_) => {
                return Err(XcapError::with(
                    Condition::NotXmlFrag,
                    "text around the element",
                ))
            }
        }
    }
    match (elements.pop(), elements.is_empty()) {
        (Some(e), true) => Ok(e),
        _ => Err(XcapError::with(
            Condition::NotXmlFrag,
            "the body is not exactly one element",
        )),
    }
}

/// Parses an attribute PUT body (the value as written between quotes, RFC 4825 s7.5).
fn attribute_value(body: &[u8], limits: &Limits) -> Result<String, XcapError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| XcapError::with(Condition::NotUtf8, "the value is not UTF-8"))?;
    let bad = || XcapError::with(Condition::NotXmlAttValue, "not a valid attribute value");
    if text.contains(['"', '<']) {
        return Err(bad());
    }
    let wrapped = format!("<a v=\"{text}\"/>");
    let limits = Limits {
        max_bytes: limits.max_bytes.saturating_add(8),
        ..*limits
    };
    let e = parse_with(wrapped.as_bytes(), &limits).map_err(|_| bad())?;
    Ok(e.attr("v").unwrap_or("").to_owned())
}

/// DELETE of an element or attribute.
pub fn delete(root: &mut Element, sel: &NodeSelector) -> Result<(), Fail> {
    let l = locate(root, &sel.steps);
    let n = sel.steps.len();
    if l.matched != n {
        return Err(Fail::NotFound);
    }
    match &sel.attribute {
        Some(a) => {
            let e = element_at_mut(root, &l.path).ok_or(Fail::NotFound)?;
            let before = e.attrs.len();
            e.attrs.retain(|x| !(x.ns == a.ns && x.name == a.local));
            if e.attrs.len() == before {
                return Err(Fail::NotFound);
            }
            let again = locate(root, &sel.steps);
            let reselected = again.matched == n
                && element_at(root, &again.path)
                    .is_some_and(|e| e.attr_ns(&a.ns, &a.local).is_some());
            if reselected {
                return Err(XcapError::new(Condition::CannotDelete).into());
            }
        }
        None => {
            let Some((&i, parent_path)) = l.path.split_last() else {
                return Err(XcapError::with(
                    Condition::CannotDelete,
                    "the root element cannot be deleted (delete the document)",
                )
                .into());
            };
            let parent = element_at_mut(root, parent_path).ok_or(Fail::NotFound)?;
            parent.children.remove(i);
            if locate(root, &sel.steps).matched == n {
                return Err(XcapError::with(
                    Condition::CannotDelete,
                    "the request URI would select another element afterwards",
                )
                .into());
            }
        }
    }
    Ok(())
}

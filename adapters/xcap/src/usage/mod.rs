//! The application usages this server serves (RFC 4825 s5): for each, its AUID
//! (s5.1), MIME type (s5.3), default document namespace (s5.2) and the validation
//! of a document (s5.3 schema, s5.4 data constraints) run after every change, with
//! a few shared schema checks. The XSDs are not evaluated by an engine: their
//! structure and key constraints are checked in code, and the tests check every
//! document the server emits against the schemas themselves.

use cpim_core::xml::{Element, Node};

use crate::error::XcapError;
use crate::store::{DocKey, Store};

pub mod pres_rules;
pub mod resource_lists;
pub mod rls_services;
pub mod xcap_caps;

/// What a validator may look at besides the document.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The XCAP root path (e.g. `/xcap-root`).
    pub root: &'a str,
    /// The document being written.
    pub key: &'a DocKey,
    /// The other documents.
    pub store: &'a Store,
}

/// One application usage.
#[derive(Debug)]
pub struct Usage {
    /// The AUID (RFC 4825 s5.1).
    pub auid: &'static str,
    /// The MIME type of its documents (s5.3).
    pub mime: &'static str,
    /// The default document namespace (s5.2).
    pub default_ns: &'static str,
    /// Documents exist only in the global tree and are generated (xcap-caps).
    pub read_only: bool,
    /// Checks a whole document after a change.
    pub validate: fn(&Element, &Ctx<'_>) -> Result<(), XcapError>,
}

/// Every usage served, in the order xcap-caps lists them.
pub static USAGES: [Usage; 4] = [
    resource_lists::USAGE,
    rls_services::USAGE,
    pres_rules::USAGE,
    xcap_caps::USAGE,
];

/// The usage of an AUID.
pub fn by_auid(auid: &str) -> Option<&'static Usage> {
    USAGES.iter().find(|u| u.auid == auid)
}

/// The default namespace of an AUID (the empty namespace if unknown).
pub fn default_ns(auid: &str) -> &'static str {
    by_auid(auid).map_or("", |u| u.default_ns)
}

/// The root element must be `{ns}name`.
pub fn expect_root(root: &Element, ns: &str, name: &str) -> Result<(), XcapError> {
    if root.is(ns, name) {
        Ok(())
    } else {
        Err(XcapError::schema(format!(
            "root element is {{{}}}{}, expected {{{ns}}}{name}",
            root.ns, root.name
        )))
    }
}

/// Non-whitespace text directly inside an element-only element is invalid.
pub fn no_text(e: &Element) -> Result<(), XcapError> {
    let text = e.children.iter().any(|n| match n {
        Node::Text(t) => !t.trim().is_empty(),
        Node::Element(_) => false,
    });
    if text {
        Err(XcapError::schema(format!("text inside <{}>", e.name)))
    } else {
        Ok(())
    }
}

/// Text-only element (no child elements).
pub fn text_only(e: &Element) -> Result<(), XcapError> {
    if e.elements().next().is_some() {
        Err(XcapError::schema(format!("elements inside <{}>", e.name)))
    } else {
        Ok(())
    }
}

/// Attributes: the unqualified ones must be in `allowed`, the `required` ones
/// present; qualified ones are allowed (`anyAttribute namespace="##other"`) except
/// in the element's own namespace.
pub fn check_attrs(e: &Element, allowed: &[&str], required: &[&str]) -> Result<(), XcapError> {
    for a in &e.attrs {
        if a.ns.is_empty() {
            if !allowed.contains(&a.name.as_str()) {
                return Err(XcapError::schema(format!(
                    "attribute {:?} not allowed on <{}>",
                    a.name, e.name
                )));
            }
        } else if a.ns == e.ns {
            return Err(XcapError::schema(format!(
                "attribute {}:{} not allowed on <{}>",
                a.prefix.as_deref().unwrap_or(""),
                a.name,
                e.name
            )));
        }
    }
    for r in required {
        if e.attr(r).is_none() {
            return Err(XcapError::schema(format!(
                "<{}> lacks the required attribute {r:?}",
                e.name
            )));
        }
    }
    Ok(())
}

/// The 1-based position of `child` among its parent's elements with its name (for
/// the `field` of a uniqueness failure).
pub fn position_among(parent: &Element, child_index: usize) -> usize {
    let mut n = 0;
    for (i, c) in parent.children.iter().enumerate() {
        if let Node::Element(e) = c {
            if let Some(Node::Element(target)) = parent.children.get(child_index) {
                if e.name == target.name && e.ns == target.ns {
                    n += 1;
                }
            }
        }
        if i == child_index {
            break;
        }
    }
    n
}

/// A suggested replacement for a duplicate URI: `-2`, `-3`... added to the user
/// part (or at the end), the first not in `taken`.
pub fn alt_uri(uri: &str, taken: &dyn Fn(&str) -> bool) -> Option<String> {
    let (head, tail) = match uri.find('@') {
        Some(i) => uri.split_at(i),
        None => (uri, ""),
    };
    (2..100)
        .map(|n| format!("{head}-{n}{tail}"))
        .find(|c| !taken(c))
}

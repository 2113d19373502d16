//! The `resource-lists` application usage (RFC 4826 s3): the schema's structure
//! (s3.2: `<resource-lists>` of `<list>`s holding `<display-name>`, `<list>`,
//! `<external>`, `<entry>`, `<entry-ref>`, then `##other` elements) and the data
//! constraints of s3.4: an entry's `uri` is unique within its list, a list's `name`
//! among its sibling lists, an `<entry-ref>`'s `ref` and an `<external>`'s `anchor`
//! within their list; a `ref` is a relative path reference under the XCAP root and
//! points to an `<entry>`, an `anchor` an absolute HTTP URI under the XCAP root
//! pointing to a `<list>`; and no list may contain, directly or through the lists
//! its references point to, a reference to itself (refused as a constraint
//! failure: an RLS expanding it would never end). References are followed only
//! into the writer's own documents (references into other users' documents are
//! accepted unresolved), so that refusals reveal nothing of another user's lists.

use std::collections::{HashMap, HashSet};

use cpim_core::xml::{parse_with, Element, Limits, Node};

use super::{alt_uri, check_attrs, expect_root, no_text, position_among, text_only, Ctx, Usage};
use crate::error::{Condition, Exists, XcapError};
use crate::select::{element_at, locate};
use crate::store::DocKey;
use crate::uri::{self, Step};

/// RFC 4826 s3.2 namespace, the default document namespace (s3.3).
pub const NS: &str = "urn:ietf:params:xml:ns:resource-lists";

/// RFC 4826 s3.1 AUID, s3.2 MIME type.
pub const USAGE: Usage = Usage {
    auid: "resource-lists",
    mime: "application/resource-lists+xml",
    default_ns: NS,
    read_only: false,
    validate,
};

/// Most references followed when looking for a cycle.
const MAX_REFERENCES_FOLLOWED: usize = 10_000;

fn validate(root: &Element, ctx: &Ctx<'_>) -> Result<(), XcapError> {
    expect_root(root, NS, "resource-lists")?;
    check_attrs(root, &[], &[])?;
    no_text(root)?;
    let mut n = 0;
    for e in root.elements() {
        if !e.is(NS, "list") {
            return Err(XcapError::schema(format!(
                "<{}> inside <resource-lists>",
                e.name
            )));
        }
        n += 1;
        check_list(e, &format!("resource-lists/list[{n}]"), ctx.root)?;
    }
    unique_names(root, "resource-lists")?;
    check_cycles(root, ctx)
}

/// Checks a `listType` element (RFC 4826 s3.2) and its s3.4 constraints; `field` is
/// its node selector, for error reports. Used by rls-services for its `<list>` too.
pub fn check_list(list: &Element, field: &str, root: &str) -> Result<(), XcapError> {
    check_attrs(list, &["name"], &[])?;
    no_text(list)?;
    // 0: display-name allowed; 1: members; 2: only ##other.
    let mut stage = 0;
    let mut seen: [HashMap<String, usize>; 3] = Default::default();
    for (i, node) in list.children.iter().enumerate() {
        let Node::Element(e) = node else { continue };
        if e.ns != NS {
            stage = 2;
            continue;
        }
        if stage == 2 {
            return Err(XcapError::schema(format!(
                "<{}> after an extension element in {field}",
                e.name
            )));
        }
        let pos = position_among(list, i);
        let here = format!("{field}/{}[{pos}]", e.name);
        let (slot, key, attr) = match e.name.as_str() {
            "display-name" if stage == 0 => {
                display_name(e)?;
                stage = 1;
                continue;
            }
            "list" => {
                check_list(e, &here, root)?;
                stage = 1;
                continue;
            }
            "entry" => {
                check_attrs(e, &["uri"], &["uri"])?;
                leaf_children(e)?;
                (0, e.attr("uri"), "uri")
            }
            "entry-ref" => {
                check_attrs(e, &["ref"], &["ref"])?;
                leaf_children(e)?;
                let r = e.attr("ref").unwrap_or("");
                if !is_relative_path(r) {
                    return Err(XcapError::constraint(format!(
                        "entry-ref {r:?} is not a relative path reference under the XCAP root"
                    )));
                }
                (1, e.attr("ref"), "ref")
            }
            "external" => {
                check_attrs(e, &["anchor"], &[])?;
                leaf_children(e)?;
                if let Some(a) = e.attr("anchor") {
                    if anchor_path(a, root).is_none() {
                        return Err(XcapError::constraint(format!(
                            "external anchor {a:?} is not an HTTP URI under the XCAP root"
                        )));
                    }
                }
                (2, e.attr("anchor"), "anchor")
            }
            other => {
                return Err(XcapError::schema(format!(
                    "<{other}> not allowed in {field}"
                )));
            }
        };
        stage = 1;
        if let Some(k) = key {
            if seen[slot].insert(k.to_owned(), pos).is_some() {
                let taken = |c: &str| seen[slot].contains_key(c);
                let alt = if slot == 0 { alt_uri(k, &taken) } else { None };
                return Err(XcapError::with(
                    Condition::UniquenessFailure(vec![Exists {
                        field: format!("{here}/@{attr}"),
                        alt_values: alt.into_iter().collect(),
                    }]),
                    format!("{attr} {k:?} is already in the list (RFC 4826 s3.4)"),
                ));
            }
        }
    }
    unique_names(list, field)
}

/// Sibling `<list>`s have distinct names (RFC 4826 s3.4).
fn unique_names(parent: &Element, field: &str) -> Result<(), XcapError> {
    let mut names = HashSet::new();
    for (i, node) in parent.children.iter().enumerate() {
        let Node::Element(e) = node else { continue };
        if !e.is(NS, "list") {
            continue;
        }
        if let Some(name) = e.attr("name") {
            if !names.insert(name) {
                let pos = position_among(parent, i);
                return Err(XcapError::with(
                    Condition::UniquenessFailure(vec![Exists {
                        field: format!("{field}/list[{pos}]/@name"),
                        alt_values: (2..100)
                            .map(|n| format!("{name}-{n}"))
                            .find(|c| !names.contains(c.as_str()))
                            .into_iter()
                            .collect(),
                    }]),
                    format!("list name {name:?} is already used by a sibling (RFC 4826 s3.4)"),
                ));
            }
        }
    }
    Ok(())
}

fn display_name(e: &Element) -> Result<(), XcapError> {
    check_attrs(e, &[], &[])?;
    text_only(e)
}

/// An optional `<display-name>` first, then only `##other` elements.
fn leaf_children(e: &Element) -> Result<(), XcapError> {
    no_text(e)?;
    for (i, c) in e.elements().enumerate() {
        if c.ns == NS {
            if i == 0 && c.name == "display-name" {
                display_name(c)?;
            } else {
                return Err(XcapError::schema(format!(
                    "<{}> inside <{}>",
                    c.name, e.name
                )));
            }
        }
    }
    Ok(())
}

/// RFC 4826 s3.2.2: a relative path reference (no scheme, no authority, not
/// absolute), not climbing out of the root.
fn is_relative_path(r: &str) -> bool {
    let first = r.split('/').next().unwrap_or("");
    !r.is_empty()
        && !r.starts_with('/')
        && !first.contains(':')
        && !r.split(['/', '?']).any(|s| s == "..")
}

/// The path of an `http:`/`https:` anchor if it is under the XCAP root.
pub fn anchor_path<'a>(anchor: &'a str, root: &str) -> Option<&'a str> {
    let rest = anchor
        .strip_prefix("http://")
        .or_else(|| anchor.strip_prefix("https://"))?;
    let path = &rest[rest.find('/')?..];
    let under = path.strip_prefix(root.trim_end_matches('/'))?;
    (under.starts_with('/') && !under.split(['/', '?']).any(|s| s == "..")).then_some(path)
}

/// A reference found in a document: where it is, and what it points to.
struct Reference {
    path: Vec<usize>,
    target: Option<(DocKey, Vec<Step>)>,
}

fn references(root: &Element, xcap_root: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(root, &mut path, &mut |e, p| {
        let target = if e.is(NS, "external") {
            e.attr("anchor")
                .and_then(|a| anchor_path(a, xcap_root))
                .map(str::to_owned)
        } else if e.is(NS, "entry-ref") {
            e.attr("ref")
                .filter(|r| is_relative_path(r))
                .map(|r| format!("{}/{r}", xcap_root.trim_end_matches('/')))
        } else {
            return;
        };
        let target = target.and_then(|t| {
            let u = uri::parse(xcap_root, &t, super::default_ns).ok()?;
            Some((
                DocKey::from_uri(&u),
                u.node.map(|n| n.steps).unwrap_or_default(),
            ))
        });
        out.push(Reference {
            path: p.to_vec(),
            target,
        });
    });
    out
}

fn walk(e: &Element, path: &mut Vec<usize>, f: &mut dyn FnMut(&Element, &[usize])) {
    f(e, path);
    for (i, c) in e.children.iter().enumerate() {
        if let Node::Element(c) = c {
            path.push(i);
            walk(c, path, f);
            path.pop();
        }
    }
}

struct CycleSearch<'a, 'c> {
    ctx: &'a Ctx<'c>,
    docs: HashMap<DocKey, Option<(Element, Vec<Reference>)>>,
    grey: HashSet<(DocKey, Vec<usize>)>,
    black: HashSet<(DocKey, Vec<usize>)>,
    followed: usize,
}

impl CycleSearch<'_, '_> {
    fn load(&mut self, key: &DocKey) {
        if self.docs.contains_key(key) {
            return;
        }
        // Only the writer's own documents are followed: what another user's lists
        // hold must not show through the answers to this one's PUTs.
        if key.auid != USAGE.auid || key.tree != self.ctx.key.tree {
            self.docs.insert(key.clone(), None);
            return;
        }
        let limits = Limits {
            max_bytes: usize::MAX,
            ..Limits::DEFAULT
        };
        let doc = self
            .ctx
            .store
            .text(key)
            .and_then(|t| parse_with(t.as_bytes(), &limits).ok())
            .map(|root| {
                let refs = references(&root, self.ctx.root);
                (root, refs)
            });
        self.docs.insert(key.clone(), doc);
    }

    /// Depth-first from the reference at `path` in `key`; `Err` on a cycle.
    fn visit(&mut self, key: &DocKey, path: &[usize]) -> Result<(), XcapError> {
        let node = (key.clone(), path.to_vec());
        if self.black.contains(&node) {
            return Ok(());
        }
        if !self.grey.insert(node.clone()) {
            return Err(XcapError::constraint(
                "a list refers to itself through its references (RFC 4826 s3.4)",
            ));
        }
        self.followed += 1;
        if self.followed > MAX_REFERENCES_FOLLOWED {
            return Err(XcapError::constraint("too many references to follow"));
        }
        let target = self.docs[key].as_ref().and_then(|(_, refs)| {
            refs.iter()
                .find(|r| r.path == path)
                .and_then(|r| r.target.clone())
        });
        if let Some((tkey, steps)) = target {
            self.load(&tkey);
            let inner: Vec<Vec<usize>> = match self.docs.get(&tkey) {
                Some(Some((troot, refs))) => {
                    let l = locate(troot, &steps);
                    if l.matched == steps.len() && !steps.is_empty() {
                        let reached = element_at(troot, &l.path).expect("located");
                        let from = element_at(&self.docs[key].as_ref().unwrap().0, path);
                        let want = if from.is_some_and(|f| f.name == "entry-ref") {
                            "entry"
                        } else {
                            "list"
                        };
                        if !reached.is(NS, want) {
                            return Err(XcapError::constraint(format!(
                                "a reference points to <{}>, not to <{want}> (RFC 4826 s3.2)",
                                reached.name
                            )));
                        }
                        refs.iter()
                            .filter(|r| r.path.starts_with(&l.path))
                            .map(|r| r.path.clone())
                            .collect()
                    } else {
                        Vec::new()
                    }
                }
                _ => Vec::new(),
            };
            for p in inner {
                self.visit(&tkey, &p)?;
            }
        }
        self.grey.remove(&node);
        self.black.insert(node);
        Ok(())
    }
}

fn check_cycles(root: &Element, ctx: &Ctx<'_>) -> Result<(), XcapError> {
    let refs = references(root, ctx.root);
    if refs.is_empty() {
        return Ok(());
    }
    let starts: Vec<Vec<usize>> = refs.iter().map(|r| r.path.clone()).collect();
    let mut search = CycleSearch {
        ctx,
        docs: HashMap::new(),
        grey: HashSet::new(),
        black: HashSet::new(),
        followed: 0,
    };
    search
        .docs
        .insert(ctx.key.clone(), Some((root.clone(), refs)));
    for p in starts {
        search.visit(ctx.key, &p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ref_must_be_a_relative_path_under_the_root_rfc4826_s3_2_2() {
        assert!(is_relative_path(
            "resource-lists/users/sip:a@x/index/~~/resource-lists/list%5b@name=%22l%22%5d/entry%5b1%5d"
        ));
        assert!(!is_relative_path("/resource-lists/users/a/index"));
        assert!(!is_relative_path("http://evil/x"));
        assert!(!is_relative_path("resource-lists/../../etc"));
        assert!(!is_relative_path(""));
    }

    #[test]
    fn external_anchor_must_be_http_under_the_root_rfc4826_s3_2_3() {
        let a = "http://xcap.example.com/xcap-root/resource-lists/users/sip:a@x/index/~~/resource-lists/list%5b@name=%22l%22%5d";
        assert!(anchor_path(a, "/xcap-root")
            .unwrap()
            .starts_with("/xcap-root/resource-lists"));
        assert!(anchor_path("https://h/other/resource-lists/users/a/i", "/xcap-root").is_none());
        assert!(anchor_path("sip:a@x", "/xcap-root").is_none());
        assert!(anchor_path("http://h/xcap-root/../x", "/xcap-root").is_none());
    }
}

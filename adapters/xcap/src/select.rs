//! Evaluating a node selector over a document tree (RFC 4825 s6.3): each step
//! selects exactly one child element of the element the previous step selected
//! (the first step the root itself); a step that selects none or more than one
//! selects nothing. Results are paths of indices into [`Element::children`].

use cpim_core::xml::{Element, Node};

use crate::uri::{QName, Step};

/// Where evaluation stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// Child indices from the root to the deepest element selected.
    pub path: Vec<usize>,
    /// How many steps selected an element (`steps.len()` when all did).
    pub matched: usize,
}

fn name_matches(test: &Option<QName>, e: &Element) -> bool {
    match test {
        None => true,
        Some(q) => e.ns == q.ns && e.name == q.local,
    }
}

fn attr_matches(test: &Option<(QName, String)>, e: &Element) -> bool {
    match test {
        None => true,
        Some((q, v)) => e.attr_ns(&q.ns, &q.local) == Some(v.as_str()),
    }
}

/// Whether `e` passes the step's tests other than the position.
pub fn step_matches(step: &Step, e: &Element) -> bool {
    name_matches(&step.name, e) && attr_matches(&step.attr, e)
}

/// The child (index into `children`) of `parent` that `step` selects, if exactly one.
pub fn select_child(parent: &Element, step: &Step) -> Option<usize> {
    let named = parent
        .children
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n {
            Node::Element(e) if name_matches(&step.name, e) => Some((i, e)),
            _ => None,
        });
    let mut hits: Vec<usize> = match step.position {
        Some(p) => named
            .skip(p - 1)
            .take(1)
            .filter(|(_, e)| attr_matches(&step.attr, e))
            .map(|(i, _)| i)
            .collect(),
        None => named
            .filter(|(_, e)| attr_matches(&step.attr, e))
            .map(|(i, _)| i)
            .take(2)
            .collect(),
    };
    if hits.len() == 1 {
        hits.pop()
    } else {
        None
    }
}

/// Evaluates `steps` from the document's root element.
pub fn locate(root: &Element, steps: &[Step]) -> Located {
    let mut located = Located {
        path: Vec::new(),
        matched: 0,
    };
    let Some(first) = steps.first() else {
        return located;
    };
    if !step_matches(first, root) || first.position.is_some_and(|p| p != 1) {
        return located;
    }
    located.matched = 1;
    let mut cur = root;
    for step in &steps[1..] {
        let Some(i) = select_child(cur, step) else {
            break;
        };
        located.path.push(i);
        located.matched += 1;
        cur = element_at(root, &located.path).expect("path just built");
    }
    located
}

/// The element at `path`.
pub fn element_at<'a>(root: &'a Element, path: &[usize]) -> Option<&'a Element> {
    let mut cur = root;
    for &i in path {
        cur = match cur.children.get(i)? {
            Node::Element(e) => e,
            Node::Text(_) => return None,
        };
    }
    Some(cur)
}

/// The element at `path`, mutably.
pub fn element_at_mut<'a>(root: &'a mut Element, path: &[usize]) -> Option<&'a mut Element> {
    let mut cur = root;
    for &i in path {
        cur = match cur.children.get_mut(i)? {
            Node::Element(e) => e,
            Node::Text(_) => return None,
        };
    }
    Some(cur)
}

/// The namespace bindings an element PUT body under `path` inherits (RFC 4825
/// s7.4): the tree keeps prefixes but not declarations, so the prefixes used
/// anywhere in the document are taken, those on the elements from the root to
/// `path` winning (innermost last); and the default namespace of the nearest
/// unprefixed element on that chain (else of any unprefixed element).
pub fn bindings_at(root: &Element, path: &[usize]) -> (Vec<(String, String)>, String) {
    fn note(e: &Element, prefixes: &mut Vec<(String, String)>, default: &mut Option<String>) {
        match &e.prefix {
            Some(p) if p != "xml" => prefixes.push((p.clone(), e.ns.clone())),
            Some(_) => {}
            None => *default = Some(e.ns.clone()),
        }
        for a in &e.attrs {
            if let Some(p) = &a.prefix {
                if !a.ns.is_empty() && p != "xml" {
                    prefixes.push((p.clone(), a.ns.clone()));
                }
            }
        }
    }
    fn all(e: &Element, prefixes: &mut Vec<(String, String)>, default: &mut Option<String>) {
        let mut d = None;
        note(e, prefixes, &mut d);
        if default.is_none() {
            *default = d;
        }
        for c in e.elements() {
            all(c, prefixes, default);
        }
    }
    let mut prefixes = Vec::new();
    let mut any_default = None;
    all(root, &mut prefixes, &mut any_default);
    let mut chain_default = None;
    let mut cur = root;
    note(cur, &mut prefixes, &mut chain_default);
    for &i in path {
        if let Some(Node::Element(e)) = cur.children.get(i) {
            note(e, &mut prefixes, &mut chain_default);
            cur = e;
        }
    }
    let default = chain_default.or(any_default).unwrap_or_default();
    (prefixes, default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::parse;
    use cpim_core::xml::parse as xml;

    const RL: &str = "urn:ietf:params:xml:ns:resource-lists";
    const DOC: &[u8] = br#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
      <list name="friends"><entry uri="sip:a@x"/><entry uri="sip:b@x"/></list>
      <list name="work"><entry uri="sip:c@x"/></list>
    </resource-lists>"#;

    fn steps(sel: &str) -> Vec<Step> {
        parse(
            "/r",
            &format!("/r/resource-lists/users/u/index/~~/{sel}"),
            |_| RL,
        )
        .unwrap()
        .node
        .unwrap()
        .steps
    }

    fn found<'a>(root: &'a Element, sel: &str) -> Option<&'a Element> {
        let s = steps(sel);
        let l = locate(root, &s);
        (l.matched == s.len()).then(|| element_at(root, &l.path).unwrap())
    }

    #[test]
    fn steps_select_one_element_each_rfc4825_s6_3() {
        let root = xml(DOC).unwrap();
        let e = found(&root, "resource-lists/list[@name=\"work\"]/entry").unwrap();
        assert_eq!(e.attr("uri"), Some("sip:c@x"));
        let e = found(&root, "resource-lists/list[1]/entry[2]").unwrap();
        assert_eq!(e.attr("uri"), Some("sip:b@x"));
        let e = found(&root, "*/*[2]/*[1][@uri=\"sip:c@x\"]").unwrap();
        assert_eq!(e.attr("uri"), Some("sip:c@x"));
        // Two candidates: selects nothing.
        assert!(found(&root, "resource-lists/list/entry").is_none());
        // Position then attribute test: the 1st entry is not b.
        assert!(found(&root, "resource-lists/list[1]/entry[1][@uri=\"sip:b@x\"]").is_none());
        let l = locate(&root, &steps("resource-lists/list[@name=\"x\"]/entry"));
        assert_eq!(l.matched, 1);
        assert_eq!(locate(&root, &steps("other")).matched, 0);
    }
}

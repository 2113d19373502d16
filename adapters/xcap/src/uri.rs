//! XCAP URIs (RFC 4825 s6): the document selector under the XCAP root
//! (`<auid>/users/<xui>/<document>` or `<auid>/global/<document>`, s6.2), the
//! node selector after the `~~` separator (s6.3: element steps by name, `*`,
//! `[n]` position, `[@attr="value"]` attribute test, a final `@attr` attribute
//! step), and the namespace bindings of the query component (`xmlns(p=ns)`,
//! s6.4). Every component is percent-decoded (s6).

use std::fmt;

/// Why a request URI is not an XCAP URI this server can serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriError {
    /// Not under the XCAP root.
    NotUnderRoot,
    /// Malformed (bad escape, empty segment, bad step syntax...).
    Malformed(&'static str),
    /// A prefix used in the node selector has no `xmlns()` binding (s6.4).
    UnboundPrefix(String),
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriError::NotUnderRoot => f.write_str("not under the XCAP root"),
            UriError::Malformed(w) => write!(f, "malformed XCAP URI: {w}"),
            UriError::UnboundPrefix(p) => write!(f, "namespace prefix {p:?} is not bound"),
        }
    }
}

/// Which tree of an application usage a document is in (s6.2).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// `users/<XUI>/`.
    User(String),
    /// `global/`.
    Global,
}

/// An expanded name as the node selector names it: namespace (empty for none)
/// and local name; `None` for the `*` wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QName {
    /// Namespace name; empty for no namespace.
    pub ns: String,
    /// The prefix as written (kept so an inserted attribute gets one).
    pub prefix: Option<String>,
    /// Local name.
    pub local: String,
}

/// One element step of a node selector (s6.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The name test; `None` is `*`.
    pub name: Option<QName>,
    /// `[n]`, 1-based, among the siblings that pass the name test.
    pub position: Option<usize>,
    /// `[@attr="value"]`.
    pub attr: Option<(QName, String)>,
    /// The step as written (decoded), for the `<ancestor>` of a no-parent error.
    pub text: String,
}

/// The last part of a node selector: an element, or an attribute of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSelector {
    /// The element steps, the first one naming the root element.
    pub steps: Vec<Step>,
    /// The final `@attr` step, if the selector selects an attribute.
    pub attribute: Option<QName>,
}

/// A parsed XCAP URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XcapUri {
    /// The application unique ID (s6.2).
    pub auid: String,
    /// Users' or global tree.
    pub tree: Tree,
    /// The document path inside the tree (`index`, `dir/doc`).
    pub document: String,
    /// The node selector, if any.
    pub node: Option<NodeSelector>,
    /// The document selector as received (still percent-encoded), without the root.
    pub document_path: String,
}

/// Parses `target` (path and query) relative to `root` (e.g. `/xcap-root`);
/// unprefixed element names in the node selector are in `default_ns`, which the
/// caller looks up from the AUID (s6.4: the default document namespace).
pub fn parse(
    root: &str,
    target: &str,
    default_ns: impl Fn(&str) -> &'static str,
) -> Result<XcapUri, UriError> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let root = root.trim_end_matches('/');
    let rest = path
        .strip_prefix(root)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(UriError::NotUnderRoot)?;
    let (doc_part, node_part) = match rest.find("/~~/") {
        Some(i) => (&rest[..i], Some(&rest[i + 4..])),
        None => (rest.strip_suffix("/~~").unwrap_or(rest), None),
    };
    let mut segs = Vec::new();
    for s in doc_part.split('/') {
        let d = percent_decode(s)?;
        if d.is_empty() || d == "." || d == ".." || d.contains('/') {
            return Err(UriError::Malformed(
                "empty or dot segment in document selector",
            ));
        }
        segs.push(d);
    }
    if segs.len() < 3 {
        return Err(UriError::Malformed("document selector too short"));
    }
    let auid = segs.remove(0);
    let tree = match segs.remove(0).as_str() {
        "users" => {
            if segs.len() < 2 {
                return Err(UriError::Malformed("no document after the XUI"));
            }
            Tree::User(segs.remove(0))
        }
        "global" => Tree::Global,
        _ => return Err(UriError::Malformed("tree is neither users nor global")),
    };
    let document = segs.join("/");
    let bindings = match query {
        Some(q) => parse_bindings(q)?,
        None => Vec::new(),
    };
    let node = match node_part {
        Some(n) => Some(parse_node_selector(
            &percent_decode(n)?,
            &bindings,
            default_ns(&auid),
        )?),
        None => None,
    };
    Ok(XcapUri {
        auid,
        tree,
        document,
        node,
        document_path: doc_part.to_owned(),
    })
}

/// Decodes `%XX` escapes; the result must be UTF-8 (`cpim_core::address::percent_decode`).
pub fn percent_decode(s: &str) -> Result<String, UriError> {
    cpim_core::address::percent_decode(s)
        .map_err(|_| UriError::Malformed("bad % escape, or escapes that do not decode to UTF-8"))
}

/// Escapes what cannot stay literal in a node selector path component.
pub fn percent_encode_selector(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            b':' | b'@' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';'
            | b'=' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `xmlns(p=urn:x)xmlns(q=urn:y)` (s6.4), percent-decoded.
fn parse_bindings(query: &str) -> Result<Vec<(String, String)>, UriError> {
    let q = percent_decode(query)?;
    let mut rest = q.trim();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let body = rest.strip_prefix("xmlns(").ok_or(UriError::Malformed(
            "query is not a list of xmlns() bindings",
        ))?;
        let end = body
            .find(')')
            .ok_or(UriError::Malformed("unclosed xmlns("))?;
        let (prefix, ns) = body[..end]
            .split_once('=')
            .ok_or(UriError::Malformed("xmlns() without ="))?;
        let prefix = prefix.trim();
        if !is_ncname(prefix) {
            return Err(UriError::Malformed("bad prefix in xmlns()"));
        }
        out.push((prefix.to_owned(), ns.trim().to_owned()));
        rest = body[end + 1..].trim_start();
    }
    Ok(out)
}

/// Splits on `/` outside of `[...]` and quotes.
fn split_steps(s: &str) -> Result<Vec<&str>, UriError> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0usize, None::<char>, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if depth > 0 => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(UriError::Malformed("unbalanced ]"))?
            }
            (None, '/') if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() || depth != 0 {
        return Err(UriError::Malformed("unclosed predicate or quote"));
    }
    out.push(&s[start..]);
    Ok(out)
}

fn parse_node_selector(
    s: &str,
    bindings: &[(String, String)],
    default_ns: &str,
) -> Result<NodeSelector, UriError> {
    let parts = split_steps(s)?;
    let mut steps = Vec::new();
    let mut attribute = None;
    for (i, part) in parts.iter().enumerate() {
        if let Some(a) = part.strip_prefix('@') {
            if i + 1 != parts.len() {
                return Err(UriError::Malformed("attribute step is not the last step"));
            }
            attribute = Some(qname(a, bindings, "")?);
            continue;
        }
        if part.starts_with("namespace::") {
            return Err(UriError::Malformed("namespace selectors are not supported"));
        }
        steps.push(parse_step(part, bindings, default_ns)?);
    }
    if steps.is_empty() {
        return Err(UriError::Malformed("node selector has no element step"));
    }
    Ok(NodeSelector { steps, attribute })
}

fn parse_step(s: &str, bindings: &[(String, String)], default_ns: &str) -> Result<Step, UriError> {
    let name_end = s.find('[').unwrap_or(s.len());
    let name_text = &s[..name_end];
    let name = if name_text == "*" {
        None
    } else {
        Some(qname(name_text, bindings, default_ns)?)
    };
    let mut rest = &s[name_end..];
    let (mut position, mut attr) = (None, None);
    while !rest.is_empty() {
        let inner_end = closing_bracket(rest)?;
        let inner = &rest[1..inner_end];
        if let Some(test) = inner.strip_prefix('@') {
            if attr.is_some() {
                return Err(UriError::Malformed("two attribute tests in one step"));
            }
            let (an, av) = test
                .split_once('=')
                .ok_or(UriError::Malformed("attribute test without ="))?;
            let av = av.trim();
            let q = av.chars().next().filter(|c| *c == '"' || *c == '\'');
            let value = match q {
                Some(q) if av.len() >= 2 && av.ends_with(q) => &av[1..av.len() - 1],
                _ => return Err(UriError::Malformed("attribute test value is not quoted")),
            };
            attr = Some((qname(an.trim(), bindings, "")?, value.to_owned()));
        } else {
            // RFC 4825 s6.3: the position comes before the attribute test.
            if position.is_some() || attr.is_some() {
                return Err(UriError::Malformed("misplaced position predicate"));
            }
            let n: usize = inner
                .trim()
                .parse()
                .map_err(|_| UriError::Malformed("bad position"))?;
            if n == 0 {
                return Err(UriError::Malformed("positions start at 1"));
            }
            position = Some(n);
        }
        rest = &rest[inner_end + 1..];
    }
    Ok(Step {
        name,
        position,
        attr,
        text: s.to_owned(),
    })
}

/// Index of the `]` closing the predicate `s` starts with (`s[0] == '['`).
fn closing_bracket(s: &str) -> Result<usize, UriError> {
    if !s.starts_with('[') {
        return Err(UriError::Malformed("text after a predicate"));
    }
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, ']') => return Ok(i),
            _ => {}
        }
    }
    Err(UriError::Malformed("unclosed predicate"))
}

fn qname(s: &str, bindings: &[(String, String)], default_ns: &str) -> Result<QName, UriError> {
    match s.split_once(':') {
        Some((p, l)) => {
            if !is_ncname(p) || !is_ncname(l) {
                return Err(UriError::Malformed("bad name in step"));
            }
            let ns = bindings
                .iter()
                .rev()
                .find(|(bp, _)| bp == p)
                .map(|(_, n)| n.clone())
                .ok_or_else(|| UriError::UnboundPrefix(p.to_owned()))?;
            Ok(QName {
                ns,
                prefix: Some(p.to_owned()),
                local: l.to_owned(),
            })
        }
        None if is_ncname(s) => Ok(QName {
            ns: default_ns.to_owned(),
            prefix: None,
            local: s.to_owned(),
        }),
        None => Err(UriError::Malformed("bad name in step")),
    }
}

/// A rough NCName test (XML Namespaces s3): no colon, no space, not starting with
/// a digit, `-` or `.`.
pub fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '\u{B7}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RL: &str = "urn:ietf:params:xml:ns:resource-lists";

    fn p(t: &str) -> Result<XcapUri, UriError> {
        parse("/xcap-root", t, |_| RL)
    }

    #[test]
    fn document_selector_users_and_global_rfc4825_s6_2() {
        let u = p("/xcap-root/resource-lists/users/sip:bill%40example.com/index").unwrap();
        assert_eq!(u.auid, "resource-lists");
        assert_eq!(u.tree, Tree::User("sip:bill@example.com".into()));
        assert_eq!(u.document, "index");
        assert!(u.node.is_none());
        let g = p("/xcap-root/xcap-caps/global/index").unwrap();
        assert_eq!(g.tree, Tree::Global);
        assert_eq!(
            p("/other/xcap-caps/global/index"),
            Err(UriError::NotUnderRoot)
        );
        assert!(p("/xcap-root/resource-lists/users/bill").is_err());
        assert!(p("/xcap-root/resource-lists/users/bill/../x").is_err());
        assert!(p("/xcap-root/resource-lists/friends/bill/index").is_err());
    }

    #[test]
    fn node_selector_steps_position_attribute_rfc4825_s6_3() {
        let u = p("/xcap-root/resource-lists/users/sip:bill@example.com/index/~~/resource-lists/list%5b@name=%22friends%22%5d/entry%5B2%5D/@uri").unwrap();
        let n = u.node.unwrap();
        assert_eq!(n.steps.len(), 3);
        assert_eq!(n.steps[0].name.as_ref().unwrap().local, "resource-lists");
        assert_eq!(n.steps[0].name.as_ref().unwrap().ns, RL);
        let (an, av) = n.steps[1].attr.clone().unwrap();
        assert_eq!(
            (an.local.as_str(), an.ns.as_str(), av.as_str()),
            ("name", "", "friends")
        );
        assert_eq!(n.steps[2].position, Some(2));
        assert_eq!(n.attribute.unwrap().local, "uri");
        // A slash inside a quoted attribute value does not split the step.
        let u = p("/xcap-root/resource-lists/users/b/index/~~/resource-lists/list/entry[@uri=\"http://x/y\"]").unwrap();
        assert_eq!(
            u.node.unwrap().steps[2].attr.as_ref().unwrap().1,
            "http://x/y"
        );
        let u = p("/xcap-root/resource-lists/users/b/index/~~/*/*[3][@name='a']").unwrap();
        let s = &u.node.unwrap().steps[1];
        assert_eq!((s.name.is_none(), s.position), (true, Some(3)));
    }

    #[test]
    fn prefixes_bound_in_query_rfc4825_s6_4() {
        let u =
            p("/xcap-root/resource-lists/users/b/index/~~/r:resource-lists/r:list?xmlns(r=urn:x)")
                .unwrap();
        assert_eq!(u.node.unwrap().steps[1].name.clone().unwrap().ns, "urn:x");
        assert_eq!(
            p("/xcap-root/resource-lists/users/b/index/~~/q:resource-lists"),
            Err(UriError::UnboundPrefix("q".into()))
        );
    }

    #[test]
    fn malformed_node_selectors_are_refused() {
        for bad in [
            "/~~/resource-lists/list[0]",
            "/~~/resource-lists/list[@name=friends]",
            "/~~/resource-lists/@name/list",
            "/~~/resource-lists/list[@name=\"a\"][1]",
            "/~~/resource-lists/list[1",
            "/~~/resource-lists/namespace::*",
            "/~~/",
            "/~~/resource-lists/%zz",
        ] {
            let t = format!("/xcap-root/resource-lists/users/b/index{bad}");
            assert!(p(&t).is_err(), "{bad}");
        }
    }
}

//! Partial PIDF, `application/pidf-diff+xml` (RFC 5262): the full-state document
//! (`<pidf-full>`, RFC 5262 s3.1, a PIDF `<presence>` with a `version`) and the diff
//! document (`<pidf-diff>`, RFC 5262 s3.2) whose patch operations are those of the XML
//! patch framework (RFC 5261 s4: `<add>`, `<replace>`, `<remove>` with a `sel`
//! selector).
//!
//! - [`parse`] / [`encode`]: the two documents. Operation content is kept as an element
//!   tree ([`Node`]), so content this module does not model survives a round trip.
//! - [`diff`]: the operations turning one presence document into another, by element
//!   id (RFC 5262 s3.2: tuples, `dm:person` and `dm:device` are addressed by their
//!   `id`): an element that appears is an `<add>`, one that changed a `<replace>`, one
//!   that went a `<remove>`. Changes outside those elements (presentity notes,
//!   unmodelled top-level elements, the entity) or a reordering of elements have no id
//!   to address them by: the answer is then `None`, the notifier sends full state.
//! - [`apply`]: applies operations of the selector subset [`diff`] emits (RFC 5261
//!   s4.1; `*` or `presence` for the root, then one step `name[@id='x']` or `*[1]`) to a
//!   presence document; anything else is a [`PatchError`].
//!
//! Selectors follow RFC 5261 s4.2.3: unprefixed names are in the patch document's
//! default namespace, which the encoder sets to PIDF; the data-model prefix `dm` is
//! declared on the root. Property: `apply(old, diff(old, new)) == new` whenever `diff`
//! answers.

use crate::pidf;
use crate::presence::Presence;
use crate::xml::{self, ns, Attribute, DocError, Element, EncodeError, Limits, Node, Writer};

/// The media type (RFC 5262 s6).
pub const CONTENT_TYPE: &str = "application/pidf-diff+xml";

/// A partial PIDF document.
#[derive(Clone, Debug, PartialEq)]
// Built once per NOTIFY and encoded at once; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Document {
    /// `<pidf-full>`: the whole state (RFC 5262 s3.1).
    Full(FullState),
    /// `<pidf-diff>`: changes to the state of the previous version (RFC 5262 s3.2).
    Diff(Diff),
}

/// A full-state document with its version.
#[derive(Clone, Debug, PartialEq)]
pub struct FullState {
    /// The `version` attribute (RFC 5262 s3.1: `xs:unsignedInt`).
    pub version: u32,
    /// The presence state (the entity is the root's `entity`).
    pub presence: Presence,
}

/// A diff document.
#[derive(Clone, Debug, PartialEq)]
pub struct Diff {
    /// The presentity (`entity`, as written).
    pub entity: String,
    /// The `version` attribute.
    pub version: u32,
    /// The operations in document order.
    pub ops: Vec<PatchOp>,
    /// Namespace prefixes the selectors use, other than the default namespace (PIDF)
    /// and `dm` (the data model), which the encoder always declares.
    pub prefixes: Vec<(String, String)>,
}

/// Where `<add>` puts its content relative to the selected element (RFC 5261 s4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pos {
    /// Before it, as a sibling.
    Before,
    /// After it, as a sibling.
    After,
    /// As its first child.
    Prepend,
}

impl Pos {
    fn as_str(self) -> &'static str {
        match self {
            Pos::Before => "before",
            Pos::After => "after",
            Pos::Prepend => "prepend",
        }
    }
}

/// One patch operation (RFC 5261 s4.3-s4.5).
#[derive(Clone, Debug, PartialEq)]
pub enum PatchOp {
    /// `<add sel pos? type?>content</add>`.
    Add {
        /// The selector.
        sel: String,
        /// `pos`; absent appends as the last child.
        pos: Option<Pos>,
        /// `type` (adding an attribute or a namespace declaration), as written.
        attr_type: Option<String>,
        /// The content: elements, or text.
        content: Vec<Node>,
    },
    /// `<replace sel>content</replace>`.
    Replace {
        /// The selector.
        sel: String,
        /// The replacement.
        content: Vec<Node>,
    },
    /// `<remove sel ws?/>`.
    Remove {
        /// The selector.
        sel: String,
        /// `ws` (`before`, `after`, `both`), as written.
        ws: Option<String>,
    },
}

/// Why a diff could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// A selector outside the supported subset (RFC 5261 s5 `<invalid-xpath>` /
    /// `<unsupported-xml-id>` territory).
    #[error("unsupported selector {0:?}")]
    UnsupportedSelector(String),
    /// The selector matches no element (RFC 5261 s5 `<no-match>`).
    #[error("selector {0:?} matches nothing")]
    NoMatch(String),
    /// The content is not what the selected place can hold.
    #[error("invalid content for {0:?}: {1}")]
    BadContent(String, String),
}

/// Parses either document with the default limits.
pub fn parse(input: &[u8]) -> Result<Document, DocError> {
    parse_with(input, &Limits::DEFAULT)
}

/// Parses either document.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Document, DocError> {
    let root = xml::parse_with(input, limits)?;
    if root.is(ns::PIDF_DIFF, "pidf-full") {
        let version = version(&root, "pidf-full")?;
        // The root has the content model of <presence> (RFC 5262 s4): read it as one.
        let presence = pidf::from_element(&Element {
            ns: ns::PIDF.to_owned(),
            name: "presence".to_owned(),
            prefix: None,
            attrs: root
                .attrs
                .iter()
                .filter(|a| a.name != "version")
                .cloned()
                .collect(),
            children: root.children.clone(),
        })?;
        return Ok(Document::Full(FullState { version, presence }));
    }
    if !root.is(ns::PIDF_DIFF, "pidf-diff") {
        return Err(DocError::wrong_root(ns::PIDF_DIFF, "pidf-diff", &root));
    }
    let version = version(&root, "pidf-diff")?;
    let entity = root
        .attr("entity")
        .ok_or(DocError::Missing {
            what: "attribute entity",
            parent: "pidf-diff",
        })?
        .to_owned();
    let mut ops = Vec::new();
    for el in root.elements().filter(|e| e.ns == ns::PIDF_DIFF) {
        let sel = || {
            el.attr("sel").map(str::to_owned).ok_or(DocError::Missing {
                what: "attribute sel",
                parent: "patch operation",
            })
        };
        let content = || el.children.clone();
        ops.push(match el.name.as_str() {
            "add" => PatchOp::Add {
                sel: sel()?,
                pos: match el.attr("pos") {
                    None => None,
                    Some("before") => Some(Pos::Before),
                    Some("after") => Some(Pos::After),
                    Some("prepend") => Some(Pos::Prepend),
                    Some(other) => return Err(DocError::invalid("pos", other)),
                },
                attr_type: el.attr("type").map(str::to_owned),
                content: content(),
            },
            "replace" => PatchOp::Replace {
                sel: sel()?,
                content: content(),
            },
            "remove" => PatchOp::Remove {
                sel: sel()?,
                ws: el.attr("ws").map(str::to_owned),
            },
            _ => continue,
        });
    }
    let mut prefixes = Vec::new();
    collect_prefixes(&root, &mut prefixes);
    prefixes.retain(|(p, n)| !(p == "dm" && n == ns::DATA_MODEL) && n != ns::PIDF_DIFF);
    Ok(Document::Diff(Diff {
        entity,
        version,
        ops,
        prefixes,
    }))
}

fn version(root: &Element, parent: &'static str) -> Result<u32, DocError> {
    let v = root.attr("version").ok_or(DocError::Missing {
        what: "attribute version",
        parent,
    })?;
    v.trim()
        .parse()
        .map_err(|_| DocError::invalid("version", v))
}

/// The prefix bindings the document's elements and attributes use (the reader does
/// not keep declarations, so a prefix declared but used only inside a selector is
/// resolved by [`apply`] leniently, by local name).
fn collect_prefixes(el: &Element, out: &mut Vec<(String, String)>) {
    let mut add = |p: &Option<String>, n: &str| {
        if let Some(p) = p {
            if p != "xml" && !out.iter().any(|(q, _)| q == p) {
                out.push((p.clone(), n.to_owned()));
            }
        }
    };
    add(&el.prefix, &el.ns);
    for a in &el.attrs {
        if !a.ns.is_empty() {
            add(&a.prefix, &a.ns);
        }
    }
    for c in el.elements() {
        collect_prefixes(c, out);
    }
}

/// Encodes a document. Fails only as [`pidf::encode`] does (a kept extension that is
/// not one well-formed element).
pub fn encode(doc: &Document) -> Result<String, EncodeError> {
    let mut w = Writer::new();
    match doc {
        Document::Full(f) => {
            let children = top_level(&f.presence)?;
            let entity = f.presence.entity.as_ref().map(ToString::to_string);
            w.open("p:pidf-full")
                .attr("xmlns", ns::PIDF)
                .attr("xmlns:p", ns::PIDF_DIFF);
            w.attr_opt("entity", entity.as_deref());
            w.attr("version", &f.version.to_string());
            for c in &children {
                w.raw(&c.to_xml());
            }
            w.close();
        }
        Document::Diff(d) => {
            w.open("p:pidf-diff")
                .attr("xmlns", ns::PIDF)
                .attr("xmlns:p", ns::PIDF_DIFF)
                .attr("xmlns:dm", ns::DATA_MODEL);
            for (p, n) in &d.prefixes {
                w.attr(&format!("xmlns:{p}"), n);
            }
            w.attr("entity", &d.entity)
                .attr("version", &d.version.to_string());
            for op in &d.ops {
                match op {
                    PatchOp::Add {
                        sel,
                        pos,
                        attr_type,
                        content,
                    } => {
                        w.open("p:add").attr("sel", sel);
                        w.attr_opt("pos", pos.map(Pos::as_str));
                        w.attr_opt("type", attr_type.as_deref());
                        write_content(&mut w, content);
                    }
                    PatchOp::Replace { sel, content } => {
                        w.open("p:replace").attr("sel", sel);
                        write_content(&mut w, content);
                    }
                    PatchOp::Remove { sel, ws } => {
                        w.open("p:remove").attr("sel", sel);
                        w.attr_opt("ws", ws.as_deref());
                    }
                }
                w.close();
            }
            w.close();
        }
    }
    Ok(w.finish())
}

fn write_content(w: &mut Writer, content: &[Node]) {
    for n in content {
        match n {
            Node::Element(e) => w.raw(&e.to_xml()),
            Node::Text(t) => w.text(t),
        };
    }
}

/// The top-level elements of `p` as [`pidf::encode`] writes them.
fn top_level(p: &Presence) -> Result<Vec<Element>, EncodeError> {
    let xml = pidf::encode(p)?;
    let root = xml::parse(xml.as_bytes()).map_err(|e| EncodeError::InvalidExtension {
        context: "presence",
        index: 0,
        reason: e.to_string(),
    })?;
    Ok(root.elements().cloned().collect())
}

/// The one element `p` (holding a single tuple, person or device) encodes to.
fn single(p: Presence) -> Result<Element, EncodeError> {
    top_level(&p)?
        .into_iter()
        .next()
        .ok_or_else(|| EncodeError::InvalidExtension {
            context: "presence",
            index: 0,
            reason: "nothing to encode".into(),
        })
}

/// A selector `*/qname[@id='id']`; `None` if the id cannot be quoted.
fn id_sel(qname: &str, id: &str) -> Option<String> {
    if !id.contains('\'') {
        Some(format!("*/{qname}[@id='{id}']"))
    } else if !id.contains('"') {
        Some(format!("*/{qname}[@id=\"{id}\"]"))
    } else {
        None
    }
}

/// True if the elements present in both lists are in the same relative order.
fn same_order(old: &[&str], new: &[&str]) -> bool {
    let a: Vec<&&str> = old.iter().filter(|i| new.contains(i)).collect();
    let b: Vec<&&str> = new.iter().filter(|i| old.contains(i)).collect();
    a == b
}

/// Operations turning `old` into `new` (see the module doc), or `None` when a change
/// cannot be addressed by element id and full state must be sent instead. Empty when
/// nothing changed.
pub fn diff(old: &Presence, new: &Presence) -> Result<Option<Vec<PatchOp>>, EncodeError> {
    if old.entity != new.entity || old.notes != new.notes || old.extensions != new.extensions {
        return Ok(None);
    }
    let old_t: Vec<&str> = old.tuples.iter().map(|t| t.id.as_str()).collect();
    let new_t: Vec<&str> = new.tuples.iter().map(|t| t.id.as_str()).collect();
    let old_d: Vec<&str> = old.devices.iter().map(|d| d.id.as_str()).collect();
    let new_d: Vec<&str> = new.devices.iter().map(|d| d.id.as_str()).collect();
    let dup = |v: &[&str]| (1..v.len()).any(|i| v[..i].contains(&v[i]));
    if !same_order(&old_t, &new_t)
        || !same_order(&old_d, &new_d)
        || dup(&old_t)
        || dup(&new_t)
        || dup(&old_d)
        || dup(&new_d)
    {
        return Ok(None);
    }
    let mut ops = Vec::new();
    let el = |p: Presence| single(p).map(|e| vec![Node::Element(e)]);
    // Removals first, then replacements, then additions in the new order.
    for t in &old.tuples {
        if !new_t.contains(&t.id.as_str()) {
            let Some(sel) = id_sel("tuple", &t.id) else {
                return Ok(None);
            };
            ops.push(PatchOp::Remove { sel, ws: None });
        }
    }
    let person_kept = matches!((&old.person, &new.person), (Some(a), Some(b)) if a.id == b.id);
    if let Some(op) = &old.person {
        if !person_kept {
            let Some(sel) = id_sel("dm:person", &op.id) else {
                return Ok(None);
            };
            ops.push(PatchOp::Remove { sel, ws: None });
        }
    }
    for d in &old.devices {
        if !new_d.contains(&d.id.as_str()) {
            let Some(sel) = id_sel("dm:device", &d.id) else {
                return Ok(None);
            };
            ops.push(PatchOp::Remove { sel, ws: None });
        }
    }
    for t in &new.tuples {
        if let Some(o) = old.tuples.iter().find(|o| o.id == t.id) {
            if o != t {
                let Some(sel) = id_sel("tuple", &t.id) else {
                    return Ok(None);
                };
                let content = el(Presence {
                    tuples: vec![t.clone()],
                    ..Presence::default()
                })?;
                ops.push(PatchOp::Replace { sel, content });
            }
        }
    }
    if let (Some(o), Some(n), true) = (&old.person, &new.person, person_kept) {
        if o != n {
            let Some(sel) = id_sel("dm:person", &n.id) else {
                return Ok(None);
            };
            let content = el(Presence {
                person: Some(n.clone()),
                ..Presence::default()
            })?;
            ops.push(PatchOp::Replace { sel, content });
        }
    }
    for d in &new.devices {
        if let Some(o) = old.devices.iter().find(|o| o.id == d.id) {
            if o != d {
                let Some(sel) = id_sel("dm:device", &d.id) else {
                    return Ok(None);
                };
                let content = el(Presence {
                    devices: vec![d.clone()],
                    ..Presence::default()
                })?;
                ops.push(PatchOp::Replace { sel, content });
            }
        }
    }
    // Additions. Tuples go where the PIDF schema wants them (before any other child of
    // <presence>), next to their neighbour in the new document.
    let first_kept_tuple = new.tuples.iter().find(|t| old_t.contains(&t.id.as_str()));
    let other_children = !new.notes.is_empty()
        || person_kept
        || new.devices.iter().any(|d| old_d.contains(&d.id.as_str()))
        || !new.extensions.is_empty();
    for (i, t) in new.tuples.iter().enumerate() {
        if old_t.contains(&t.id.as_str()) {
            continue;
        }
        let (sel, pos) = if i > 0 {
            (id_sel("tuple", &new.tuples[i - 1].id), Some(Pos::After))
        } else if let Some(k) = first_kept_tuple {
            (id_sel("tuple", &k.id), Some(Pos::Before))
        } else if other_children {
            (Some("*/*[1]".to_owned()), Some(Pos::Before))
        } else {
            (Some("*".to_owned()), None)
        };
        let Some(sel) = sel else { return Ok(None) };
        let content = el(Presence {
            tuples: vec![t.clone()],
            ..Presence::default()
        })?;
        ops.push(PatchOp::Add {
            sel,
            pos,
            attr_type: None,
            content,
        });
    }
    if let (Some(n), false) = (&new.person, person_kept) {
        let content = el(Presence {
            person: Some(n.clone()),
            ..Presence::default()
        })?;
        ops.push(PatchOp::Add {
            sel: "*".to_owned(),
            pos: None,
            attr_type: None,
            content,
        });
    }
    let first_kept_device = new.devices.iter().find(|d| old_d.contains(&d.id.as_str()));
    for (i, d) in new.devices.iter().enumerate() {
        if old_d.contains(&d.id.as_str()) {
            continue;
        }
        let (sel, pos) = if i > 0 {
            (
                id_sel("dm:device", &new.devices[i - 1].id),
                Some(Pos::After),
            )
        } else if let Some(k) = first_kept_device {
            (id_sel("dm:device", &k.id), Some(Pos::Before))
        } else {
            (Some("*".to_owned()), None)
        };
        let Some(sel) = sel else { return Ok(None) };
        let content = el(Presence {
            devices: vec![d.clone()],
            ..Presence::default()
        })?;
        ops.push(PatchOp::Add {
            sel,
            pos,
            attr_type: None,
            content,
        });
    }
    Ok(Some(ops))
}

/// What a selector of the supported subset designates.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Root,
    FirstChild,
    Tuple(String),
    Person(String),
    Device(String),
}

fn parse_sel(sel: &str, prefixes: &[(String, String)]) -> Result<Target, PatchError> {
    let bad = || PatchError::UnsupportedSelector(sel.to_owned());
    let s = sel.trim().strip_prefix('/').unwrap_or(sel.trim());
    let (root, rest) = match s.split_once('/') {
        Some((r, rest)) => (r, Some(rest)),
        None => (s, None),
    };
    let root_local = root.rsplit(':').next().unwrap_or(root);
    if root != "*" && root_local != "presence" {
        return Err(bad());
    }
    let Some(step) = rest else {
        return Ok(Target::Root);
    };
    if step == "*[1]" {
        return Ok(Target::FirstChild);
    }
    let (qname, pred) = step.split_once('[').ok_or_else(bad)?;
    let pred = pred.strip_suffix(']').ok_or_else(bad)?;
    let val = pred
        .strip_prefix("@id=")
        .and_then(|v| {
            v.strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
        })
        .ok_or_else(bad)?
        .to_owned();
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, qname),
    };
    // A known prefix must name the namespace the element lives in.
    let ns_ok = |want: &str| match prefix {
        None => true,
        Some("dm") => want == ns::DATA_MODEL,
        Some(p) => prefixes
            .iter()
            .find(|(q, _)| q == p)
            .is_none_or(|(_, n)| n == want),
    };
    match local {
        "tuple" if ns_ok(ns::PIDF) => Ok(Target::Tuple(val)),
        "person" if ns_ok(ns::DATA_MODEL) => Ok(Target::Person(val)),
        "device" if ns_ok(ns::DATA_MODEL) => Ok(Target::Device(val)),
        _ => Err(bad()),
    }
}

/// Reads operation content as children of `<presence>`.
fn content_as_presence(sel: &str, content: &[Node]) -> Result<Presence, PatchError> {
    let children = content
        .iter()
        .filter(|n| matches!(n, Node::Element(_)))
        .cloned()
        .collect();
    pidf::from_element(&Element {
        ns: ns::PIDF.to_owned(),
        name: "presence".to_owned(),
        prefix: None,
        attrs: Vec::<Attribute>::new(),
        children,
    })
    .map_err(|e| PatchError::BadContent(sel.to_owned(), e.to_string()))
}

/// Applies the operations of `d` to `doc` (see the module doc for the subset).
pub fn apply(doc: &Presence, d: &Diff) -> Result<Presence, PatchError> {
    let mut p = doc.clone();
    for op in &d.ops {
        match op {
            PatchOp::Remove { sel, .. } => {
                let t = parse_sel(sel, &d.prefixes)?;
                let nomatch = || PatchError::NoMatch(sel.clone());
                match t {
                    Target::Tuple(id) => {
                        let i = p
                            .tuples
                            .iter()
                            .position(|x| x.id == id)
                            .ok_or_else(nomatch)?;
                        p.tuples.remove(i);
                    }
                    Target::Person(id) => {
                        if p.person.as_ref().is_none_or(|x| x.id != id) {
                            return Err(nomatch());
                        }
                        p.person = None;
                    }
                    Target::Device(id) => {
                        let i = p
                            .devices
                            .iter()
                            .position(|x| x.id == id)
                            .ok_or_else(nomatch)?;
                        p.devices.remove(i);
                    }
                    _ => return Err(PatchError::UnsupportedSelector(sel.clone())),
                }
            }
            PatchOp::Replace { sel, content } => {
                let t = parse_sel(sel, &d.prefixes)?;
                let c = content_as_presence(sel, content)?;
                let one = |n: usize| {
                    if n == 1 {
                        Ok(())
                    } else {
                        Err(PatchError::BadContent(
                            sel.clone(),
                            "not one element".into(),
                        ))
                    }
                };
                let nomatch = || PatchError::NoMatch(sel.clone());
                match t {
                    Target::Tuple(id) => {
                        one(c.tuples.len())?;
                        let x = p
                            .tuples
                            .iter_mut()
                            .find(|x| x.id == id)
                            .ok_or_else(nomatch)?;
                        *x = c.tuples.into_iter().next().unwrap_or_default();
                    }
                    Target::Person(id) => {
                        one(usize::from(c.person.is_some()))?;
                        if p.person.as_ref().is_none_or(|x| x.id != id) {
                            return Err(nomatch());
                        }
                        p.person = c.person;
                    }
                    Target::Device(id) => {
                        one(c.devices.len())?;
                        let x = p
                            .devices
                            .iter_mut()
                            .find(|x| x.id == id)
                            .ok_or_else(nomatch)?;
                        *x = c.devices.into_iter().next().unwrap_or_default();
                    }
                    _ => return Err(PatchError::UnsupportedSelector(sel.clone())),
                }
            }
            PatchOp::Add {
                sel,
                pos,
                attr_type,
                content,
            } => {
                if attr_type.is_some() {
                    return Err(PatchError::UnsupportedSelector(sel.clone()));
                }
                let t = parse_sel(sel, &d.prefixes)?;
                let c = content_as_presence(sel, content)?;
                add(&mut p, sel, &t, *pos, c)?;
            }
        }
    }
    Ok(p)
}

fn add(
    p: &mut Presence,
    sel: &str,
    t: &Target,
    pos: Option<Pos>,
    c: Presence,
) -> Result<(), PatchError> {
    let nomatch = || PatchError::NoMatch(sel.to_owned());
    let unsupported = || PatchError::UnsupportedSelector(sel.to_owned());
    match (t, pos) {
        // Appended to <presence>, or before its first child: in the model each kind of
        // element has its own list, so only the position within that list matters.
        (Target::Root, None | Some(Pos::Prepend)) | (Target::FirstChild, Some(Pos::Before)) => {
            let front = pos.is_some() || *t == Target::FirstChild;
            if *t == Target::FirstChild
                && p.tuples.is_empty()
                && p.notes.is_empty()
                && p.person.is_none()
                && p.devices.is_empty()
                && p.extensions.is_empty()
            {
                return Err(nomatch());
            }
            if front {
                p.tuples.splice(0..0, c.tuples);
                p.devices.splice(0..0, c.devices);
                p.notes.splice(0..0, c.notes);
                p.extensions.splice(0..0, c.extensions);
            } else {
                p.tuples.extend(c.tuples);
                p.devices.extend(c.devices);
                p.notes.extend(c.notes);
                p.extensions.extend(c.extensions);
            }
            if c.person.is_some() {
                if p.person.is_some() {
                    return Err(PatchError::BadContent(
                        sel.to_owned(),
                        "a second person".into(),
                    ));
                }
                p.person = c.person;
            }
        }
        (Target::Tuple(id), Some(pos @ (Pos::Before | Pos::After))) => {
            if c.tuples.is_empty() || c.person.is_some() || !c.devices.is_empty() {
                return Err(PatchError::BadContent(
                    sel.to_owned(),
                    "tuples expected".into(),
                ));
            }
            let i = p.tuples.iter().position(|x| &x.id == id);
            insert_beside(&mut p.tuples, i.ok_or_else(nomatch)?, pos, c.tuples);
        }
        (Target::Device(id), Some(pos @ (Pos::Before | Pos::After))) => {
            if c.devices.is_empty() || c.person.is_some() || !c.tuples.is_empty() {
                return Err(PatchError::BadContent(
                    sel.to_owned(),
                    "devices expected".into(),
                ));
            }
            let i = p.devices.iter().position(|x| &x.id == id);
            insert_beside(&mut p.devices, i.ok_or_else(nomatch)?, pos, c.devices);
        }
        _ => return Err(unsupported()),
    }
    Ok(())
}

/// RFC 5261 s4.3 `pos="before"`/`"after"`: `items` go in beside element `i` of `v`.
fn insert_beside<T>(v: &mut Vec<T>, i: usize, pos: Pos, items: Vec<T>) {
    let at = if pos == Pos::After { i + 1 } else { i };
    v.splice(at..at, items);
}

#[cfg(test)]
mod tests;

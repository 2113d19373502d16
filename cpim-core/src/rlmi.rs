//! Resource List Meta-Information (RFC 4662 s5): the root part of a NOTIFY for a
//! list subscription (`application/rlmi+xml`).
//!
//! The examples of RFC 4662 itself (and implementations that copied them) use the
//! misspelled namespace `urn:ietf:params:xml:ns:rmli`; it is accepted on input and
//! never written. Attributes RFC 4662 does not define (the `name` attribute of early
//! drafts, attributes in other namespaces) are kept; encoding writes them back.

use crate::presence::Note;
use crate::xml::{self, ns, DocError, Element, EncodeError, Limits, Writer};

/// The media type (RFC 4662 s5).
pub const CONTENT_TYPE: &str = "application/rlmi+xml";

/// A `<name>` with its `xml:lang`.
pub type Name = Note;

/// The `<list>` element.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct List {
    /// `uri` of the list.
    pub uri: String,
    /// `version`, increasing per notification.
    pub version: u32,
    /// `fullState`: complete state or changes only.
    pub full_state: bool,
    /// `cid` of the list's own body part, if any.
    pub cid: Option<String>,
    /// `<name>` elements.
    pub names: Vec<Name>,
    /// `<resource>` elements.
    pub resources: Vec<Resource>,
    /// Attributes RFC 4662 does not define.
    pub extra_attributes: Vec<ExtraAttribute>,
}

/// A `<resource>`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Resource {
    /// `uri` of the resource.
    pub uri: String,
    /// `<name>` elements.
    pub names: Vec<Name>,
    /// `<instance>` elements (one per subscription to the resource).
    pub instances: Vec<Instance>,
    /// Attributes RFC 4662 does not define.
    pub extra_attributes: Vec<ExtraAttribute>,
}

/// An `<instance>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// `id`, unique within the resource.
    pub id: String,
    /// `state` of the subscription to the resource.
    pub state: InstanceState,
    /// `reason` when terminated (RFC 6665 reasons: `rejected`, `noresource`, ...).
    pub reason: Option<String>,
    /// `cid`: Content-ID of the body part with the resource's state.
    pub cid: Option<String>,
    /// Child elements (any are allowed), kept as XML text.
    pub extensions: Vec<String>,
    /// Attributes RFC 4662 does not define.
    pub extra_attributes: Vec<ExtraAttribute>,
}

/// `state` of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InstanceState {
    /// active
    Active,
    /// pending
    Pending,
    /// terminated
    Terminated,
    /// Another value, as written.
    Other(String),
}

impl InstanceState {
    /// The attribute value.
    pub fn as_str(&self) -> &str {
        match self {
            InstanceState::Active => "active",
            InstanceState::Pending => "pending",
            InstanceState::Terminated => "terminated",
            InstanceState::Other(s) => s,
        }
    }

    fn from_text(s: &str) -> InstanceState {
        match s {
            "active" => InstanceState::Active,
            "pending" => InstanceState::Pending,
            "terminated" => InstanceState::Terminated,
            other => InstanceState::Other(other.to_owned()),
        }
    }
}

/// An attribute kept by expanded name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraAttribute {
    /// Namespace name, empty for an unqualified attribute.
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Parses an RLMI document with the default limits.
pub fn parse(input: &[u8]) -> Result<List, DocError> {
    parse_with(input, &Limits::DEFAULT)
}

/// Parses an RLMI document.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<List, DocError> {
    let root = xml::parse_with(input, limits)?;
    from_element(&root)
}

/// The attribute `name` of `el`, a `<parent>` element, which the document's schema
/// requires (RFC 4662 s5.2, RFC 3858 s4): missing, it is an error naming both.
pub(crate) fn required<'a>(
    el: &'a Element,
    name: &'static str,
    parent: &'static str,
) -> Result<&'a str, DocError> {
    el.attr(name)
        .ok_or(DocError::Missing { what: name, parent })
}

fn extras(el: &Element, known: &[&str]) -> Vec<ExtraAttribute> {
    el.attrs
        .iter()
        .filter(|a| !(a.ns.is_empty() && known.contains(&a.name.as_str())))
        .map(|a| ExtraAttribute {
            ns: a.ns.clone(),
            name: a.name.clone(),
            value: a.value.clone(),
        })
        .collect()
}

fn name(el: &Element) -> Name {
    Note {
        lang: el.lang().map(str::to_owned),
        text: el.text().into_owned(),
    }
}

/// Reads a `<list>` element (RFC 4662 namespace or its `rmli` misspelling).
pub fn from_element(root: &Element) -> Result<List, DocError> {
    let list_ns = root.ns.as_str();
    if root.name != "list" || !(list_ns == ns::RLMI || list_ns == ns::RLMI_MISSPELLED) {
        return Err(DocError::wrong_root(ns::RLMI, "list", root));
    }
    let version = required(root, "version", "list")?;
    let full_state = required(root, "fullState", "list")?;
    let mut l = List {
        uri: required(root, "uri", "list")?.to_owned(),
        version: version
            .trim()
            .parse()
            .map_err(|_| DocError::invalid("version", version))?,
        full_state: match full_state.trim() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(DocError::invalid("fullState", full_state)),
        },
        cid: root.attr("cid").map(str::to_owned),
        extra_attributes: extras(root, &["uri", "version", "fullState", "cid"]),
        ..List::default()
    };
    for c in root.elements().filter(|c| c.ns == list_ns) {
        match c.name.as_str() {
            "name" => l.names.push(name(c)),
            "resource" => {
                let mut r = Resource {
                    uri: required(c, "uri", "resource")?.to_owned(),
                    extra_attributes: extras(c, &["uri"]),
                    ..Resource::default()
                };
                for rc in c.elements().filter(|e| e.ns == list_ns) {
                    match rc.name.as_str() {
                        "name" => r.names.push(name(rc)),
                        "instance" => r.instances.push(Instance {
                            id: required(rc, "id", "instance")?.to_owned(),
                            state: InstanceState::from_text(required(rc, "state", "instance")?),
                            reason: rc.attr("reason").map(str::to_owned),
                            cid: rc.attr("cid").map(str::to_owned),
                            extensions: rc.elements().map(Element::to_xml).collect(),
                            extra_attributes: extras(rc, &["id", "state", "reason", "cid"]),
                        }),
                        _ => {}
                    }
                }
                l.resources.push(r);
            }
            _ => {}
        }
    }
    Ok(l)
}

fn write_extras(w: &mut Writer, extras: &[ExtraAttribute]) {
    let mut qname = String::new();
    for (i, a) in extras.iter().enumerate() {
        qname.clear();
        if a.ns == ns::XML {
            qname.push_str("xml:");
        } else if !a.ns.is_empty() {
            let prefix = format!("a{i}");
            w.attr(&format!("xmlns:{prefix}"), &a.ns);
            qname.push_str(&prefix);
            qname.push(':');
        }
        qname.push_str(&a.name);
        w.attr(&qname, &a.value);
    }
}

fn write_names(w: &mut Writer, names: &[Name]) {
    for n in names {
        w.open("name").attr_opt("xml:lang", n.lang.as_deref());
        w.text(&n.text).close();
    }
}

/// Encodes an RLMI document (always in the RFC 4662 namespace).
pub fn encode(l: &List) -> Result<String, EncodeError> {
    let mut w = Writer::new();
    w.open("list")
        .attr("xmlns", ns::RLMI)
        .attr("uri", &l.uri)
        .attr("version", &l.version.to_string())
        .attr("fullState", if l.full_state { "true" } else { "false" })
        .attr_opt("cid", l.cid.as_deref());
    write_extras(&mut w, &l.extra_attributes);
    write_names(&mut w, &l.names);
    for r in &l.resources {
        w.open("resource").attr("uri", &r.uri);
        write_extras(&mut w, &r.extra_attributes);
        write_names(&mut w, &r.names);
        for i in &r.instances {
            w.open("instance")
                .attr("id", &i.id)
                .attr("state", i.state.as_str())
                .attr_opt("reason", i.reason.as_deref())
                .attr_opt("cid", i.cid.as_deref());
            write_extras(&mut w, &i.extra_attributes);
            for (n, x) in i.extensions.iter().enumerate() {
                xml::check_extension(x, "", "instance", n)?;
                w.raw(x);
            }
            w.close();
        }
        w.close();
    }
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4662 s5.5 example 1 as the RFC prints it (with the `rmli` misspelling).
    const EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<list xmlns="urn:ietf:params:xml:ns:rmli" uri="sip:adam-friends@pres.example.com" version="1" fullState="true">
  <name xml:lang="en">Buddy List at COM</name>
  <resource uri="sip:bob@example.com">
    <name>Bob Smith</name>
    <instance id="juwigmtboe" state="active" cid="bUZBsM@pres.example.com"/>
  </resource>
  <resource uri="sip:ed@example.net">
    <instance id="sdlkmeopdf" state="terminated" reason="rejected"/>
  </resource>
</list>"#;

    #[test]
    fn rfc4662_example_misspelled_namespace() {
        let l = parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(
            (l.uri.as_str(), l.version, l.full_state),
            ("sip:adam-friends@pres.example.com", 1, true)
        );
        assert_eq!(l.names[0].lang.as_deref(), Some("en"));
        assert_eq!(l.resources.len(), 2);
        assert_eq!(
            l.resources[0].instances[0].cid.as_deref(),
            Some("bUZBsM@pres.example.com")
        );
        let t = &l.resources[1].instances[0];
        assert_eq!(
            (&t.state, t.reason.as_deref()),
            (&InstanceState::Terminated, Some("rejected"))
        );
        let out = encode(&l).unwrap();
        assert!(out.contains(ns::RLMI) && !out.contains(ns::RLMI_MISSPELLED));
        assert_eq!(parse(out.as_bytes()).unwrap(), l);
    }

    #[test]
    fn extra_attributes_kept() {
        let doc = r#"<list xmlns="urn:ietf:params:xml:ns:rlmi" xmlns:x="urn:x" uri="u" version="3" fullState="0" name="Buddy" x:k="v">
          <resource uri="r" name="R"><instance id="1" state="pending"><x:e/></instance></resource></list>"#;
        let l = parse(doc.as_bytes()).unwrap();
        assert!(!l.full_state);
        assert_eq!(l.extra_attributes.len(), 2);
        assert_eq!(
            l.extra_attributes[1],
            ExtraAttribute {
                ns: "urn:x".into(),
                name: "k".into(),
                value: "v".into()
            }
        );
        assert_eq!(
            l.resources[0].instances[0].extensions,
            vec![r#"<x:e xmlns:x="urn:x"/>"#.to_string()]
        );
        assert_eq!(parse(encode(&l).unwrap().as_bytes()).unwrap(), l);
    }

    #[test]
    fn errors_are_named() {
        let e = parse(
            br#"<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="u" version="x" fullState="true"/>"#,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                DocError::Invalid {
                    what: "version",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse(br#"<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="u" version="1"/>"#)
            .unwrap_err();
        assert_eq!(e.to_string(), "missing fullState in <list>");
        let e = parse(br#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>"#)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("expected root element {urn:ietf:params:xml:ns:rlmi}list"),
            "{e}"
        );
    }
}

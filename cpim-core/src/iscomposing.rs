//! isComposing (RFC 3994): the message composition indication
//! (`application/im-iscomposing+xml`, RFC 3994 s5).
//!
//! Parsing is lenient about element order (clients commonly write `<contenttype>`
//! before `<lastactive>`, which the schema does not allow); encoding follows the
//! schema: state, lastactive, contenttype, refresh, then extensions.

use crate::xml::{self, ns, DocError, Element, EncodeError, Limits, Writer};

/// The media type (RFC 3994 s8).
pub const CONTENT_TYPE: &str = "application/im-iscomposing+xml";

/// An isComposing document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsComposing {
    /// `<state>`.
    pub state: State,
    /// `<lastactive>` as written (RFC 3339 date-time).
    pub last_active: Option<String>,
    /// `<contenttype>`: the media type being composed.
    pub content_type: Option<String>,
    /// `<refresh>` in seconds (a positive integer).
    pub refresh: Option<u32>,
    /// Extension elements, kept as XML text.
    pub extensions: Vec<String>,
}

impl IsComposing {
    /// A document with only a state.
    pub fn new(state: State) -> IsComposing {
        IsComposing {
            state,
            last_active: None,
            content_type: None,
            refresh: None,
            extensions: Vec::new(),
        }
    }
}

/// The composition state (RFC 3994 s3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// `active`: the user is composing.
    Active,
    /// `idle`: the user stopped composing.
    Idle,
    /// Any other value, as written.
    Other(String),
}

impl State {
    /// The text of `<state>`.
    pub fn as_str(&self) -> &str {
        match self {
            State::Active => "active",
            State::Idle => "idle",
            State::Other(s) => s,
        }
    }

    /// The state for a text (`active`, `idle`, else `Other`).
    pub fn from_text(s: &str) -> State {
        match s {
            "active" => State::Active,
            "idle" => State::Idle,
            other => State::Other(other.to_owned()),
        }
    }
}

/// Parses an isComposing document with the default limits.
pub fn parse(input: &[u8]) -> Result<IsComposing, DocError> {
    parse_with(input, &Limits::DEFAULT)
}

/// Parses an isComposing document.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<IsComposing, DocError> {
    let root = xml::parse_with(input, limits)?;
    from_element(&root)
}

/// Reads an `<isComposing>` element.
pub fn from_element(root: &Element) -> Result<IsComposing, DocError> {
    if !root.is(ns::ISCOMPOSING, "isComposing") {
        return Err(DocError::wrong_root(ns::ISCOMPOSING, "isComposing", root));
    }
    let mut state = None;
    let mut d = IsComposing::new(State::Idle);
    for c in root.elements() {
        if c.ns != ns::ISCOMPOSING {
            d.extensions.push(c.to_xml());
            continue;
        }
        match c.name.as_str() {
            "state" => state = Some(State::from_text(&c.trimmed_text())),
            "lastactive" => d.last_active = Some(c.trimmed_text()),
            "contenttype" => d.content_type = Some(c.trimmed_text()),
            "refresh" => {
                let t = c.trimmed_text();
                match t.parse::<u32>() {
                    Ok(n) if n > 0 => d.refresh = Some(n),
                    _ => return Err(DocError::invalid("refresh", &t)),
                }
            }
            _ => {}
        }
    }
    d.state = state.ok_or(DocError::Missing {
        what: "<state>",
        parent: "isComposing",
    })?;
    Ok(d)
}

/// Encodes an isComposing document. A `refresh` of 0 is not written (the schema
/// requires a positive integer).
pub fn encode(d: &IsComposing) -> Result<String, EncodeError> {
    let mut w = Writer::new();
    w.open("isComposing").attr("xmlns", ns::ISCOMPOSING);
    w.text_element("state", d.state.as_str());
    if let Some(t) = &d.last_active {
        w.text_element("lastactive", t);
    }
    if let Some(t) = &d.content_type {
        w.text_element("contenttype", t);
    }
    if let Some(r) = d.refresh.filter(|&r| r > 0) {
        w.text_element("refresh", &r.to_string());
    }
    xml::write_extensions(&mut w, &d.extensions, ns::ISCOMPOSING, "isComposing")?;
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3994_fields_in_client_order() {
        // contenttype before lastactive, as clients write it (RFC 3994 s5 orders them
        // the other way round).
        let doc = r#"<?xml version="1.0" encoding="utf-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">
  <state>active</state><contenttype>text/plain</contenttype>
  <lastactive>2012-02-22T17:53:49.000Z</lastactive><refresh>60</refresh></isComposing>"#;
        let d = parse(doc.as_bytes()).unwrap();
        assert_eq!(d.state, State::Active);
        assert_eq!(d.content_type.as_deref(), Some("text/plain"));
        assert_eq!(d.last_active.as_deref(), Some("2012-02-22T17:53:49.000Z"));
        assert_eq!(d.refresh, Some(60));
        let out = encode(&d).unwrap();
        assert!(
            out.find("<lastactive>").unwrap() < out.find("<contenttype>").unwrap(),
            "{out}"
        );
        assert_eq!(parse(out.as_bytes()).unwrap(), d);
    }

    #[test]
    fn errors_are_named() {
        let e =
            parse(br#"<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"/>"#).unwrap_err();
        assert_eq!(e.to_string(), "missing <state> in <isComposing>");
        let e = parse(br#"<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state><refresh>0</refresh></isComposing>"#).unwrap_err();
        assert!(
            matches!(
                e,
                DocError::Invalid {
                    what: "refresh",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse(br#"<isComposing xmlns="urn:ietf:params:xml:ns:im-composing"><state>idle</state></isComposing>"#).unwrap_err();
        assert!(matches!(e, DocError::WrongRoot { .. }), "{e}");
    }

    #[test]
    fn other_state_and_extension_round_trip() {
        let mut d = IsComposing::new(State::Other("typing-fast".into()));
        d.extensions.push(r#"<x:y xmlns:x="urn:x">1</x:y>"#.into());
        assert_eq!(parse(encode(&d).unwrap().as_bytes()).unwrap(), d);
    }
}

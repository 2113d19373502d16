//! The XCAP error conditions (RFC 4825 s11) and their `application/xcap-error+xml`
//! body (s11.2): one child of `<xcap-error>` naming the condition, with an optional
//! `phrase`; `<no-parent>` carries the closest existing `<ancestor>` (s11.1), and
//! `<uniqueness-failure>` one `<exists field=...>` per offending value with
//! suggested `<alt-value>`s.

use cpim_core::xml::Writer;

/// The namespace of `<xcap-error>` (RFC 4825 s11.2).
pub const XCAP_ERROR_NS: &str = "urn:ietf:params:xml:ns:xcap-error";
/// Its MIME type (RFC 4825 s15.2.3).
pub const XCAP_ERROR_MIME: &str = "application/xcap-error+xml";

/// A value that must be unique and is not (RFC 4825 s11.2 `<exists>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exists {
    /// Node selector (relative to the document) of the offending element or attribute.
    pub field: String,
    /// Values the client may use instead.
    pub alt_values: Vec<String>,
}

/// An error condition of RFC 4825 s11; each becomes a 409 with an `<xcap-error>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The body is not well-formed XML.
    NotWellFormed,
    /// The body is not UTF-8.
    NotUtf8,
    /// An element PUT whose body is not exactly one element.
    NotXmlFrag,
    /// An attribute PUT whose body is not a valid attribute value.
    NotXmlAttValue,
    /// The parent of the element or document to create does not exist; the path of
    /// the closest existing ancestor.
    NoParent(Option<String>),
    /// The inserted element would not be selected by the request URI.
    CannotInsert,
    /// After the DELETE the request URI would still select something.
    CannotDelete,
    /// Values that must be unique are not.
    UniquenessFailure(Vec<Exists>),
    /// A constraint of the application usage other than the schema fails.
    ConstraintFailure,
    /// The document would not be valid against the usage's schema.
    SchemaValidationError,
}

/// A 409 condition with the human-readable phrase sent with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XcapError {
    /// The condition.
    pub condition: Condition,
    /// Why, in words.
    pub phrase: Option<String>,
}

impl XcapError {
    /// A condition without a phrase.
    pub fn new(condition: Condition) -> XcapError {
        XcapError {
            condition,
            phrase: None,
        }
    }

    /// A condition with a phrase.
    pub fn with(condition: Condition, phrase: impl Into<String>) -> XcapError {
        XcapError {
            condition,
            phrase: Some(phrase.into()),
        }
    }

    /// Shorthand for a schema-validation-error.
    pub fn schema(phrase: impl Into<String>) -> XcapError {
        XcapError::with(Condition::SchemaValidationError, phrase)
    }

    /// Shorthand for a constraint-failure.
    pub fn constraint(phrase: impl Into<String>) -> XcapError {
        XcapError::with(Condition::ConstraintFailure, phrase)
    }

    /// The element name of the condition.
    pub fn element_name(&self) -> &'static str {
        match self.condition {
            Condition::NotWellFormed => "not-well-formed",
            Condition::NotUtf8 => "not-utf-8",
            Condition::NotXmlFrag => "not-xml-frag",
            Condition::NotXmlAttValue => "not-xml-att-value",
            Condition::NoParent(_) => "no-parent",
            Condition::CannotInsert => "cannot-insert",
            Condition::CannotDelete => "cannot-delete",
            Condition::UniquenessFailure(_) => "uniqueness-failure",
            Condition::ConstraintFailure => "constraint-failure",
            Condition::SchemaValidationError => "schema-validation-error",
        }
    }

    /// The `application/xcap-error+xml` document (RFC 4825 s11.2).
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new();
        w.open("xcap-error").attr("xmlns", XCAP_ERROR_NS);
        w.open(self.element_name());
        if let Some(p) = &self.phrase {
            w.attr("phrase", p);
        }
        match &self.condition {
            Condition::NoParent(Some(a)) => {
                w.text_element("ancestor", a);
            }
            Condition::UniquenessFailure(list) => {
                for e in list {
                    w.open("exists").attr("field", &e.field);
                    for v in &e.alt_values {
                        w.text_element("alt-value", v);
                    }
                    w.close();
                }
            }
            _ => {}
        }
        w.close().close();
        w.finish()
    }
}

impl std::fmt::Display for XcapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.element_name())?;
        if let Some(p) = &self.phrase {
            write!(f, ": {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_core::xml::parse;

    #[test]
    fn no_parent_names_the_ancestor_rfc4825_s11_2() {
        let e = XcapError::new(Condition::NoParent(Some(
            "/xcap-root/a/users/b/index".into(),
        )));
        let doc = parse(e.to_xml().as_bytes()).unwrap();
        assert!(doc.is(XCAP_ERROR_NS, "xcap-error"));
        let np = doc.child(XCAP_ERROR_NS, "no-parent").unwrap();
        assert_eq!(
            np.child(XCAP_ERROR_NS, "ancestor").unwrap().text(),
            "/xcap-root/a/users/b/index"
        );
    }

    #[test]
    fn uniqueness_failure_lists_fields_and_alternatives_rfc4825_s11_2() {
        let e = XcapError::with(
            Condition::UniquenessFailure(vec![Exists {
                field: "rls-services/service[2]/@uri".into(),
                alt_values: vec!["sip:f-2@x".into()],
            }]),
            "duplicate \"uri\"",
        );
        let doc = parse(e.to_xml().as_bytes()).unwrap();
        let uf = doc.child(XCAP_ERROR_NS, "uniqueness-failure").unwrap();
        assert_eq!(uf.attr("phrase"), Some("duplicate \"uri\""));
        let ex = uf.child(XCAP_ERROR_NS, "exists").unwrap();
        assert_eq!(ex.attr("field"), Some("rls-services/service[2]/@uri"));
        assert_eq!(
            ex.child(XCAP_ERROR_NS, "alt-value").unwrap().text(),
            "sip:f-2@x"
        );
    }
}

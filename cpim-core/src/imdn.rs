//! IMDN (RFC 5438): delivery, display and processing notifications
//! (`message/imdn+xml`, RFC 5438 s7).
//!
//! Parsing is lenient (any prefixes, any element order); encoding follows the schema
//! order: message-id, datetime, recipient-uri, original-recipient-uri, subject, the
//! notification, then extensions in other namespaces. The schema shipped with the
//! shared corpus requires `recipient-uri` and `original-recipient-uri` together; the
//! encoder writes what the value holds, so set both or neither for a valid document.

use crate::xml::{self, ns, DocError, Element, EncodeError, Limits, Writer};

/// The media type (RFC 5438 s10).
pub const CONTENT_TYPE: &str = "message/imdn+xml";

/// An IMDN document.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Imdn {
    /// `<message-id>`: the `imdn.Message-ID` of the message notified about.
    pub message_id: String,
    /// `<datetime>` of the original message, as written.
    pub datetime: String,
    /// `<recipient-uri>`.
    pub recipient_uri: Option<String>,
    /// `<original-recipient-uri>`.
    pub original_recipient_uri: Option<String>,
    /// `<subject>` of the original message.
    pub subject: Option<String>,
    /// The notification and its status; `None` if the document carries none.
    pub notification: Option<Notification>,
    /// Extension elements of `<imdn>`, kept as XML text.
    pub extensions: Vec<String>,
}

impl Imdn {
    /// A notification of `kind` with `status` about the message `message_id`, at
    /// `datetime`, from `recipient_uri` (RFC 5438 s7.2.1).
    pub fn notice(
        message_id: &str,
        datetime: &str,
        recipient_uri: Option<String>,
        kind: NotificationKind,
        status: Status,
    ) -> Imdn {
        Imdn {
            message_id: message_id.to_owned(),
            datetime: datetime.to_owned(),
            recipient_uri,
            notification: Some(Notification {
                kind,
                status,
                status_extensions: Vec::new(),
            }),
            ..Imdn::default()
        }
    }
}

/// Which notification (RFC 5438 s7.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// delivery, display or processing.
    pub kind: NotificationKind,
    /// The status inside it.
    pub status: Status,
    /// Extension elements inside `<status>`, kept as XML text.
    pub status_extensions: Vec<String>,
}

/// The notification element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    /// `<delivery-notification>`
    Delivery,
    /// `<display-notification>`
    Display,
    /// `<processing-notification>`
    Processing,
}

impl NotificationKind {
    fn element(self) -> &'static str {
        match self {
            NotificationKind::Delivery => "delivery-notification",
            NotificationKind::Display => "display-notification",
            NotificationKind::Processing => "processing-notification",
        }
    }
}

/// A notification status (RFC 5438 s7.2.1.1 to s7.2.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// `<delivered/>`
    Delivered,
    /// `<failed/>`
    Failed,
    /// `<forbidden/>`
    Forbidden,
    /// `<error/>`
    Error,
    /// `<displayed/>`
    Displayed,
    /// `<processed/>`
    Processed,
    /// `<stored/>`
    Stored,
    /// Another element in the IMDN namespace, by local name.
    Other(String),
}

impl Status {
    /// The element name.
    pub fn name(&self) -> &str {
        match self {
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Forbidden => "forbidden",
            Status::Error => "error",
            Status::Displayed => "displayed",
            Status::Processed => "processed",
            Status::Stored => "stored",
            Status::Other(s) => s,
        }
    }

    fn from_name(name: &str) -> Status {
        match name {
            "delivered" => Status::Delivered,
            "failed" => Status::Failed,
            "forbidden" => Status::Forbidden,
            "error" => Status::Error,
            "displayed" => Status::Displayed,
            "processed" => Status::Processed,
            "stored" => Status::Stored,
            other => Status::Other(other.to_owned()),
        }
    }
}

/// Parses an IMDN document with the default limits.
pub fn parse(input: &[u8]) -> Result<Imdn, DocError> {
    parse_with(input, &Limits::DEFAULT)
}

/// Parses an IMDN document.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Imdn, DocError> {
    let root = xml::parse_with(input, limits)?;
    from_element(&root)
}

/// Reads an `<imdn>` element.
pub fn from_element(root: &Element) -> Result<Imdn, DocError> {
    if !root.is(ns::IMDN, "imdn") {
        return Err(DocError::wrong_root(ns::IMDN, "imdn", root));
    }
    let mut d = Imdn::default();
    let (mut id, mut dt) = (None, None);
    for c in root.elements() {
        if c.ns != ns::IMDN {
            d.extensions.push(c.to_xml());
            continue;
        }
        match c.name.as_str() {
            "message-id" => id = Some(c.trimmed_text()),
            "datetime" => dt = Some(c.trimmed_text()),
            "recipient-uri" => d.recipient_uri = Some(c.trimmed_text()),
            "original-recipient-uri" => d.original_recipient_uri = Some(c.trimmed_text()),
            "subject" => d.subject = Some(c.text().into_owned()),
            "delivery-notification" | "display-notification" | "processing-notification"
                if d.notification.is_none() =>
            {
                let kind = match c.name.as_str() {
                    "delivery-notification" => NotificationKind::Delivery,
                    "display-notification" => NotificationKind::Display,
                    _ => NotificationKind::Processing,
                };
                d.notification = Some(notification(kind, c)?);
            }
            _ => {}
        }
    }
    d.message_id = id.ok_or(DocError::Missing {
        what: "<message-id>",
        parent: "imdn",
    })?;
    d.datetime = dt.ok_or(DocError::Missing {
        what: "<datetime>",
        parent: "imdn",
    })?;
    Ok(d)
}

fn notification(kind: NotificationKind, el: &Element) -> Result<Notification, DocError> {
    let status_el = el.child(ns::IMDN, "status").ok_or(DocError::Missing {
        what: "<status>",
        parent: "notification",
    })?;
    let mut status = None;
    let mut status_extensions = Vec::new();
    for s in status_el.elements() {
        if s.ns != ns::IMDN {
            status_extensions.push(s.to_xml());
        } else if status.is_none() {
            if !is_ncname(&s.name) {
                return Err(DocError::invalid("status", &s.name));
            }
            status = Some(Status::from_name(&s.name));
        }
    }
    let status = status.ok_or(DocError::Missing {
        what: "status value",
        parent: "status",
    })?;
    Ok(Notification {
        kind,
        status,
        status_extensions,
    })
}

/// Encodes an IMDN document.
pub fn encode(d: &Imdn) -> Result<String, EncodeError> {
    let mut w = Writer::new();
    w.open("imdn").attr("xmlns", ns::IMDN);
    w.text_element("message-id", &d.message_id);
    w.text_element("datetime", &d.datetime);
    if let Some(r) = &d.recipient_uri {
        w.text_element("recipient-uri", r);
    }
    if let Some(r) = &d.original_recipient_uri {
        w.text_element("original-recipient-uri", r);
    }
    if let Some(s) = &d.subject {
        w.text_element("subject", s);
    }
    if let Some(n) = &d.notification {
        w.open(n.kind.element()).open("status");
        match &n.status {
            Status::Other(name) if !is_ncname(name) => {
                return Err(EncodeError::InvalidExtension {
                    context: "status",
                    index: 0,
                    reason: format!("{name:?} is not an element name"),
                })
            }
            Status::Other(name) => {
                w.raw("<");
                w.raw(name);
                w.raw("/>");
            }
            s => {
                w.empty(static_status(s));
            }
        }
        xml::write_extensions(&mut w, &n.status_extensions, ns::IMDN, "status")?;
        w.close().close();
    }
    xml::write_extensions(&mut w, &d.extensions, ns::IMDN, "imdn")?;
    Ok(w.finish())
}

fn static_status(s: &Status) -> &'static str {
    match s {
        Status::Delivered => "delivered",
        Status::Failed => "failed",
        Status::Forbidden => "forbidden",
        Status::Error => "error",
        Status::Displayed => "displayed",
        Status::Processed => "processed",
        Status::Stored | Status::Other(_) => "stored",
    }
}

/// An XML NCName (ASCII subset is enough for status names; others are refused).
pub(crate) fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5438 s7.2.1.1-style delivery notification with every optional element.
    const DELIVERY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<imdn xmlns="urn:ietf:params:xml:ns:imdn">
  <message-id>34jk324j</message-id>
  <datetime>2008-04-04T12:16:49-05:00</datetime>
  <recipient-uri>im:bob@example.com</recipient-uri>
  <original-recipient-uri>im:bob@example.com</original-recipient-uri>
  <subject>Weekly report</subject>
  <delivery-notification><status><delivered/></status></delivery-notification>
</imdn>"#;

    #[test]
    fn delivery_notification() {
        let d = parse(DELIVERY.as_bytes()).unwrap();
        assert_eq!(d.message_id, "34jk324j");
        assert_eq!(d.datetime, "2008-04-04T12:16:49-05:00");
        assert_eq!(d.recipient_uri.as_deref(), Some("im:bob@example.com"));
        assert_eq!(d.subject.as_deref(), Some("Weekly report"));
        let n = d.notification.as_ref().unwrap();
        assert_eq!(
            (n.kind, &n.status),
            (NotificationKind::Delivery, &Status::Delivered)
        );
        assert_eq!(parse(encode(&d).unwrap().as_bytes()).unwrap(), d);
    }

    #[test]
    fn prefixed_out_of_order_with_extension() {
        let doc = r#"<i:imdn xmlns:i="urn:ietf:params:xml:ns:imdn" xmlns:x="urn:x">
          <i:processing-notification><i:status><i:stored/><x:why>queue</x:why></i:status></i:processing-notification>
          <i:datetime>2008-04-04T12:16:49Z</i:datetime><x:ext a="1"/><i:message-id> abc </i:message-id></i:imdn>"#;
        let d = parse(doc.as_bytes()).unwrap();
        assert_eq!(d.message_id, "abc");
        let n = d.notification.as_ref().unwrap();
        assert_eq!(
            (n.kind, &n.status),
            (NotificationKind::Processing, &Status::Stored)
        );
        assert_eq!(
            n.status_extensions,
            vec![r#"<x:why xmlns:x="urn:x">queue</x:why>"#.to_string()]
        );
        assert_eq!(
            d.extensions,
            vec![r#"<x:ext xmlns:x="urn:x" a="1"/>"#.to_string()]
        );
        let out = encode(&d).unwrap();
        assert!(out.find("<message-id>").unwrap() < out.find("<processing-notification>").unwrap());
        assert_eq!(parse(out.as_bytes()).unwrap(), d);
    }

    #[test]
    fn missing_parts_are_named() {
        let e =
            parse(br#"<imdn xmlns="urn:ietf:params:xml:ns:imdn"><datetime>x</datetime></imdn>"#)
                .unwrap_err();
        assert_eq!(e.to_string(), "missing <message-id> in <imdn>");
        let e = parse(br#"<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>1</message-id><datetime>x</datetime><display-notification/></imdn>"#).unwrap_err();
        assert!(
            matches!(
                e,
                DocError::Missing {
                    what: "<status>",
                    ..
                }
            ),
            "{e}"
        );
        let e = parse(b"<imdn/>").unwrap_err();
        assert!(matches!(e, DocError::WrongRoot { .. }), "{e}");
    }

    #[test]
    fn other_status_round_trips() {
        let d = Imdn {
            message_id: "m".into(),
            datetime: "2008-04-04T12:16:49Z".into(),
            notification: Some(Notification {
                kind: NotificationKind::Display,
                status: Status::Other("blurred".into()),
                status_extensions: vec![],
            }),
            ..Imdn::default()
        };
        assert_eq!(parse(encode(&d).unwrap().as_bytes()).unwrap(), d);
        let bad = Imdn {
            notification: Some(Notification {
                kind: NotificationKind::Display,
                status: Status::Other("a b".into()),
                status_extensions: vec![],
            }),
            ..d
        };
        assert!(encode(&bad).is_err());
    }
}

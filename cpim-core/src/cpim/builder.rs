//! Building a new `message/cpim` envelope by code (RFC 3862 s3-s4, RFC 3922 s4).

use std::borrow::Cow;

use super::escape::format_display_name;
use super::header::{ContentHeader, Header};
use super::message::CpimMessage;
use super::IMDN_NS;

/// Builds a new envelope around a payload (RFC 3922 s4: an XMPP message becomes
/// `message/cpim`). Values are escaped as RFC 3862 s3.2 requires; the result
/// serializes canonically with CRLF line ends.
#[derive(Debug, Default)]
pub struct CpimBuilder<'a> {
    msg: CpimMessage<'a>,
}

impl<'a> CpimBuilder<'a> {
    /// An empty envelope.
    pub fn new() -> CpimBuilder<'a> {
        CpimBuilder {
            msg: CpimMessage::new(),
        }
    }

    fn name_addr_header(mut self, name: &'static str, uri: &str, display: Option<&str>) -> Self {
        let mut v = String::with_capacity(uri.len() + 16);
        if let Some(d) = display {
            v.push_str(&format_display_name(d));
            v.push(' ');
        }
        v.push('<');
        v.push_str(uri);
        v.push('>');
        self.msg.push_header(Header::new_raw_value(name, v));
        self
    }

    /// `From: [display] <uri>`.
    pub fn from(self, uri: &str, display: Option<&str>) -> Self {
        self.name_addr_header("From", uri, display)
    }

    /// `To: [display] <uri>` (may be repeated).
    pub fn to(self, uri: &str, display: Option<&str>) -> Self {
        self.name_addr_header("To", uri, display)
    }

    /// `cc: [display] <uri>` (may be repeated).
    pub fn cc(self, uri: &str, display: Option<&str>) -> Self {
        self.name_addr_header("cc", uri, display)
    }

    /// `DateTime: <date-time>` (RFC 3339; the caller formats the time).
    pub fn datetime(mut self, date_time: &str) -> Self {
        self.msg.push_header(Header::new("DateTime", date_time));
        self
    }

    /// `Subject:[;lang=..] text` (may be repeated with different languages).
    pub fn subject(mut self, text: &str, lang: Option<&str>) -> Self {
        let mut h = Header::new("Subject", text);
        if let Some(l) = lang {
            h = h.with_param("lang", l);
        }
        self.msg.push_header(h);
        self
    }

    /// `NS: [prefix] <uri>`.
    pub fn ns(mut self, prefix: Option<&str>, uri: &str) -> Self {
        let v = match prefix {
            Some(p) => format!("{p} <{uri}>"),
            None => format!("<{uri}>"),
        };
        self.msg.push_header(Header::new_raw_value("NS", v));
        self
    }

    /// `Require: name, ...`.
    pub fn require(mut self, names: &[&str]) -> Self {
        self.msg
            .push_header(Header::new_raw_value("Require", names.join(",")));
        self
    }

    /// The IMDN headers of RFC 5438 s6: declares `NS: imdn <urn:ietf:params:imdn>` and
    /// adds `imdn.Message-ID` and, if given, `imdn.Disposition-Notification`.
    pub fn imdn(self, message_id: &str, disposition: Option<&str>) -> Self {
        let mut b = self.ns(Some("imdn"), IMDN_NS);
        b.msg
            .push_header(Header::new("imdn.Message-ID", message_id));
        if let Some(d) = disposition {
            b.msg
                .push_header(Header::new("imdn.Disposition-Notification", d));
        }
        b
    }

    /// Any other message header (value escaped).
    pub fn header(mut self, header: Header<'a>) -> Self {
        self.msg.push_header(header);
        self
    }

    /// `Content-Type` of the encapsulated object.
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.msg
            .push_content_header(ContentHeader::new("Content-Type", content_type.to_owned()));
        self
    }

    /// Any other content header (e.g. `Content-ID`, `Content-Disposition`).
    pub fn content_header(mut self, name: &str, value: &str) -> Self {
        self.msg
            .push_content_header(ContentHeader::new(name.to_owned(), value.to_owned()));
        self
    }

    /// The payload, untouched.
    pub fn payload(mut self, payload: impl Into<Cow<'a, [u8]>>) -> Self {
        self.msg.set_payload(payload);
        self
    }

    /// The message. Call [`CpimMessage::validate`] if the inputs are untrusted.
    pub fn build(self) -> CpimMessage<'a> {
        self.msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_serializes_canonically_and_parses_back() {
        let m = CpimBuilder::new()
            .from("xmpp:juliet@example.com", Some("Juliet Capulet"))
            .to("sip:romeo@example.net", None)
            .cc("im:nurse@example.com", Some("the \"Nurse\""))
            .datetime("2026-11-21T12:00:00Z")
            .subject("line1\nline2 \\ back", None)
            .subject("salut", Some("fr"))
            .imdn("abc123", Some("positive-delivery"))
            .content_type("text/plain; charset=utf-8")
            .payload(&b"Wherefore art thou?"[..])
            .build();
        let bytes = m.to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(
            text,
            "From: Juliet Capulet <xmpp:juliet@example.com>\r\n\
To: <sip:romeo@example.net>\r\n\
cc: \"the \\\"Nurse\\\"\" <im:nurse@example.com>\r\n\
DateTime: 2026-11-21T12:00:00Z\r\n\
Subject: line1\\nline2 \\\\ back\r\n\
Subject:;lang=fr salut\r\n\
NS: imdn <urn:ietf:params:imdn>\r\n\
imdn.Message-ID: abc123\r\n\
imdn.Disposition-Notification: positive-delivery\r\n\
\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Wherefore art thou?"
        );
        let back = CpimMessage::parse(&bytes).unwrap();
        assert_eq!(back.subject().as_deref(), Some("line1\nline2 \\ back"));
        assert_eq!(back.cc()[0].display.as_deref(), Some("the \"Nurse\""));
        assert_eq!(back.imdn_message_id().as_deref(), Some("abc123"));
        assert_eq!(back.payload(), b"Wherefore art thou?");
        assert!(m.validate().is_ok());
    }

    proptest::proptest! {
        /// Any message built by code parses back to the same values and re-serializes
        /// to the same bytes.
        #[test]
        fn built_message_round_trips(
            from_user in "[a-z0-9.]{1,12}",
            display in proptest::option::of("\\PC{0,20}"),
            subject in "\\PC{0,40}",
            lang in proptest::option::of("[a-z]{2}(-[A-Z]{2})?"),
            extra in "\\PC{0,30}",
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let uri = format!("im:{from_user}@example.com");
            let m = CpimBuilder::new()
                .from(&uri, display.as_deref())
                .to("im:b@example.com", None)
                .subject(&subject, lang.as_deref())
                .header(Header::new("X-Extra", &extra))
                .content_type("application/octet-stream")
                .payload(payload.clone())
                .build();
            let bytes = m.to_bytes();
            let back = CpimMessage::parse(&bytes).unwrap();
            proptest::prop_assert_eq!(back.to_bytes(), bytes.clone());
            let f = back.from().unwrap();
            proptest::prop_assert_eq!(f.uri, uri.as_str());
            let want_display = display.filter(|d| !d.is_empty());
            proptest::prop_assert_eq!(f.display.as_deref().filter(|d| !d.is_empty()), want_display.as_deref());
            let got_subject = back.subject();
            proptest::prop_assert_eq!(got_subject.as_deref(), Some(subject.as_str()));
            proptest::prop_assert_eq!(back.header("X-Extra").unwrap().value(), extra.as_str());
            proptest::prop_assert_eq!(back.payload(), &payload[..]);
        }
    }
}

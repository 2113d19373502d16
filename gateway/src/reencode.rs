//! Re-encoding a message for its target adapter.
//!
//! - A `message/cpim` body to an adapter that [`carries_cpim`](cpim_core::adapter::Adapter::carries_cpim)
//!   goes through byte for byte (RFC 3862 s1: the gateway does not rewrite the object).
//! - A `message/cpim` body to one that cannot (plain XMPP) is unwrapped: the payload and
//!   its content type become the message body, and the envelope headers are mapped onto
//!   the message's fields as RFC 3922 s4 maps them to XMPP: `Subject` to the subject,
//!   `imdn.Message-ID` to the message id (the stanza id), `imdn.Disposition-Notification`
//!   to the receipt/marker request (RFC 5438 s6.3). `From` must name the sender the
//!   router authorized; `Require` may only name headers that survive the mapping.
//! - `multipart/signed` and `application/pkcs7-mime` (RFC 3923 end-to-end signing and
//!   encryption), at the top level or inside the envelope, are never altered: if the
//!   target cannot carry them intact the message fails with 415 Unsupported Media Type.

use cpim_core::cpim::{CpimMessage, IMDN_NS};
use cpim_core::model::{mime_essence, Message, Status};
use cpim_core::StatusCode;

pub use cpim_core::model::is_end_to_end_secured as is_secured;

/// What [`reencode`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reencoding {
    /// The body goes as it came.
    Unchanged,
    /// The CPIM envelope was taken off and mapped.
    Unwrapped,
}

/// Prepares `msg` for a target that does (or does not) carry `message/cpim`.
pub fn reencode(msg: &mut Message, target_carries_cpim: bool) -> Result<Reencoding, Status> {
    let essence = msg.mime_type();
    if target_carries_cpim {
        return Ok(Reencoding::Unchanged);
    }
    if is_secured(&essence) {
        return Err(unsupported(&essence));
    }
    if essence != "message/cpim" {
        return Ok(Reencoding::Unchanged);
    }
    let (content_type, payload, subject, message_id, disposition) = {
        let cpim = CpimMessage::parse(&msg.body).map_err(|e| {
            Status::new(
                StatusCode::BAD_REQUEST,
                format!("Bad Request: invalid message/cpim: {e}"),
            )
        })?;
        if let Some(from) = cpim.from() {
            match from.address() {
                Ok(a) if a.same_user(&msg.source) => {}
                Ok(a) => {
                    return Err(Status::new(
                        StatusCode::FORBIDDEN,
                        format!(
                            "message/cpim From {a} is not the sender {}",
                            msg.source.bare()
                        ),
                    ))
                }
                Err(e) => {
                    return Err(Status::new(
                        StatusCode::BAD_REQUEST,
                        format!("Bad Request: CPIM From: {e}"),
                    ))
                }
            }
        }
        for name in cpim.require() {
            let lower = name.to_ascii_lowercase();
            let mapped = matches!(
                lower.as_str(),
                "from" | "to" | "subject" | "datetime" | "cc"
            ) || lower.starts_with("imdn.");
            if !mapped {
                return Err(Status::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("Unsupported Media Type: CPIM Require: {name} cannot be carried"),
                ));
            }
        }
        let ct = cpim
            .content_type()
            .map(|c| c.into_owned())
            .unwrap_or_else(|| "text/plain".to_owned());
        if is_secured(&mime_essence(&ct)) {
            return Err(unsupported(&mime_essence(&ct)));
        }
        let mid = cpim
            .ns_header(IMDN_NS, "Message-ID")
            .map(|h| h.value().into_owned());
        let disp = cpim
            .ns_header(IMDN_NS, "Disposition-Notification")
            .map(|h| h.value().to_ascii_lowercase());
        let payload = match cpim.content_header("Content-Encoding") {
            None => cpim.payload().to_vec(),
            Some(enc) => decode(&enc, cpim.payload())?,
        };
        (
            ct,
            payload,
            cpim.subject().map(|s| s.into_owned()),
            mid,
            disp,
        )
    };
    msg.content_type = content_type;
    msg.body = payload;
    if msg.subject.is_none() {
        msg.subject = subject;
    }
    if msg.message_id.is_none() {
        msg.message_id = message_id;
    }
    if let Some(d) = disposition {
        msg.disposition.delivery |= d.contains("positive-delivery");
        msg.disposition.display |= d.contains("display");
    }
    Ok(Reencoding::Unwrapped)
}

/// The payload of an envelope whose content headers name a `Content-Encoding` (RFC 3862
/// s3.3), decoded for a target that takes no envelope ([`cpim_core::coding`]: 415 for an
/// unknown coding, 413 for a bomb, 400 for bad data).
fn decode(encoding: &str, payload: &[u8]) -> Result<Vec<u8>, Status> {
    cpim_core::coding::decode(encoding, payload)
        .map_err(|e| Status::new(e.status(), format!("CPIM payload: {e}")))
}

fn unsupported(essence: &str) -> Status {
    Status::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("Unsupported Media Type: {essence} cannot be carried intact to the target"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_core::model::TransId;
    use cpim_core::Address;

    const CPIM: &[u8] = b"From: Alice <im:alice@sip.test>\r\nTo: <im:romeo@xmpp.test>\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: abc123\r\nimdn.Disposition-Notification: positive-delivery\r\nSubject: greeting\r\n\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello";

    fn message(ct: &str, body: &[u8]) -> Message {
        Message::new(
            TransId(1),
            Address::parse("sip:alice@sip.test").unwrap(),
            Address::parse("romeo@xmpp.test").unwrap(),
            ct,
            body.to_vec(),
        )
    }

    #[test]
    fn cpim_passes_byte_for_byte_to_a_cpim_carrier() {
        let mut m = message("message/cpim", CPIM);
        assert_eq!(reencode(&mut m, true), Ok(Reencoding::Unchanged));
        assert_eq!(m.body, CPIM);
        assert_eq!(m.content_type, "message/cpim");
    }

    /// RFC 3922 s4: the envelope is mapped onto the XMPP message.
    #[test]
    fn cpim_unwrapped_for_plain_xmpp() {
        let mut m = message("message/cpim", CPIM);
        assert_eq!(reencode(&mut m, false), Ok(Reencoding::Unwrapped));
        assert_eq!(m.body, b"Hello");
        assert_eq!(m.content_type, "text/plain; charset=utf-8");
        assert_eq!(m.subject.as_deref(), Some("greeting"));
        assert_eq!(m.message_id.as_deref(), Some("abc123"));
        assert!(m.disposition.delivery);
    }

    #[test]
    fn forged_cpim_from_is_refused() {
        let body = String::from_utf8_lossy(CPIM).replace("im:alice@", "im:mallory@");
        let mut m = message("message/cpim", body.as_bytes());
        assert_eq!(
            reencode(&mut m, false).unwrap_err().code,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn signed_content_is_never_altered() {
        let mut m = message("multipart/signed; boundary=x", b"--x\r\n...");
        assert_eq!(
            reencode(&mut m, false).unwrap_err().code,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(m.body, b"--x\r\n...");
        let mut m = message("application/pkcs7-mime", b"\x30\x80");
        assert_eq!(reencode(&mut m, true), Ok(Reencoding::Unchanged));
        // Signed payload inside the envelope: unwrapping would break the signature.
        let inner = b"From: <im:alice@sip.test>\r\n\r\nContent-Type: multipart/signed; boundary=b\r\n\r\n--b\r\n";
        let mut m = message("message/cpim", inner);
        assert_eq!(
            reencode(&mut m, false).unwrap_err().code,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(m.body, inner);
    }

    #[test]
    fn unmappable_require_is_refused_and_bad_cpim_is_400() {
        let body =
            b"From: <im:alice@sip.test>\r\nRequire: Foo\r\n\r\nContent-Type: text/plain\r\n\r\nx";
        let mut m = message("message/cpim", body);
        assert_eq!(
            reencode(&mut m, false).unwrap_err().code,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let mut m = message("message/cpim", b"no blank line");
        assert_eq!(
            reencode(&mut m, false).unwrap_err().code,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn plain_text_is_untouched() {
        let mut m = message("text/plain", b"hi");
        assert_eq!(reencode(&mut m, false), Ok(Reencoding::Unchanged));
        assert_eq!(m.body, b"hi");
    }

    fn envelope(encoding: &str, payload: &[u8]) -> Vec<u8> {
        let mut v = format!("From: <sip:alice@sip.test>\r\nTo: <im:romeo@xmpp.test>\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: n1\r\n\r\nContent-Type: message/imdn+xml\r\nContent-Disposition: notification\r\nContent-Encoding: {encoding}\r\n\r\n").into_bytes();
        v.extend_from_slice(payload);
        v
    }

    /// RFC 5438 IMDNs as Linphone sends them: the payload deflated (zlib) inside CPIM.
    #[test]
    fn deflated_payload_is_inflated_for_a_plain_target() {
        let xml = b"<imdn xmlns=\"urn:ietf:params:xml:ns:imdn\"><message-id>x1</message-id></imdn>";
        for compressed in [
            miniz_oxide::deflate::compress_to_vec_zlib(xml, 6),
            miniz_oxide::deflate::compress_to_vec(xml, 6),
        ] {
            let mut m = message("message/cpim", &envelope("deflate", &compressed));
            assert_eq!(reencode(&mut m, false), Ok(Reencoding::Unwrapped));
            assert_eq!(m.body, xml);
            assert_eq!(m.mime_type(), "message/imdn+xml");
        }
        // A target that carries CPIM gets the envelope as it came.
        let body = envelope(
            "deflate",
            &miniz_oxide::deflate::compress_to_vec_zlib(xml, 6),
        );
        let mut m = message("message/cpim", &body);
        assert_eq!(reencode(&mut m, true), Ok(Reencoding::Unchanged));
        assert_eq!(m.body, body);
    }

    #[test]
    fn bad_bomb_or_unknown_encodings_are_refused() {
        let mut m = message("message/cpim", &envelope("deflate", b"not deflate at all"));
        assert_eq!(reencode(&mut m, false).unwrap_err().code, 400);
        let bomb = miniz_oxide::deflate::compress_to_vec_zlib(
            &vec![b'a'; cpim_core::coding::MAX_DECODED_BYTES + 1],
            9,
        );
        let mut m = message("message/cpim", &envelope("deflate", &bomb));
        assert_eq!(reencode(&mut m, false).unwrap_err().code, 413);
        let mut m = message("message/cpim", &envelope("br", b"x"));
        assert_eq!(reencode(&mut m, false).unwrap_err().code, 415);
    }
}

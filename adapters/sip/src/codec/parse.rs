//! Parsing a SIP message (RFC 3261 s7, s25): framing of the head, the start line, the
//! header fields with folding collapsed, and the checks on the mandatory and scalar
//! headers.

use bytes::Bytes;

use super::chars::{is_token_str, is_word, trim_ws};
use super::message::{Request, Response};
use super::parts::{Header, Parts, Text};
use super::{
    header, split_list, CSeq, HeaderName, Method, NameAddr, ParseError, SipMessage, Uri, Via,
};

/// Finds the end of the header section: returns (index of the first header line, index
/// just past the empty line). Accepts CRLF and bare LF line ends.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let nl = memchr::memchr(b'\n', &buf[pos..])? + pos;
        let line_empty = nl == pos || (nl == pos + 1 && buf[pos] == b'\r');
        if line_empty && pos > 0 {
            return Some(nl + 1);
        }
        pos = nl + 1;
    }
}

/// Skips leading CRLFs (RFC 3261 s7.5).
pub(crate) fn skip_leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

/// `deep`: validate the syntax of every header this parser knows (Via, From, To, Contact,
/// Route, Call-ID, Date, option tags); without it only the start line, the framing and the
/// headers the stack reads (CSeq, Content-Length, Max-Forwards, Expires) are checked.
pub(super) fn parse_message(
    buf: Bytes,
    framed: bool,
    require_via: bool,
    deep: bool,
) -> Result<SipMessage, ParseError> {
    let start = skip_leading_crlf(&buf);
    if start == buf.len() || buf[start..].iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let head_end = find_head_end(&buf[start..]).ok_or(ParseError::Unterminated)? + start;
    let head = std::str::from_utf8(&buf[start..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let base = start;

    // start line
    let first_nl = head.find('\n').unwrap_or(head.len());
    let first = head[..first_nl]
        .strip_suffix('\r')
        .unwrap_or(&head[..first_nl]);
    enum Start {
        Req(Method, Text),
        Resp(u16, Text),
    }
    let span = |s: &str| -> Text {
        let p = s.as_ptr() as usize;
        let h = head.as_ptr() as usize;
        if p < h || p + s.len() > h + head.len() {
            // not a slice of the head (e.g. a missing reason phrase given as "")
            return Text::Owned(s.into());
        }
        let off = p - h + base;
        Text::Span(off as u32, (off + s.len()) as u32)
    };
    let start_line = if first.len() >= 4 && first.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        let mut it = first.splitn(3, ' ');
        let version = it.next().unwrap_or("");
        let code = it
            .next()
            .ok_or(ParseError::StartLine("status line without code"))?;
        let reason = it.next().unwrap_or("");
        check_version(version)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StatusCode);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::StatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StatusCode);
        }
        if reason.bytes().any(|b| b < 0x20 && b != b'\t') {
            return Err(ParseError::StartLine("control character in reason phrase"));
        }
        Start::Resp(code, span(reason))
    } else {
        let mut it = first.split(' ');
        let (m, u, v) = match (it.next(), it.next(), it.next(), it.next()) {
            (Some(m), Some(u), Some(v), None) => (m, u, v),
            _ => {
                return Err(ParseError::StartLine(
                    "request line is not Method SP Request-URI SP SIP-Version",
                ))
            }
        };
        if !is_token_str(m) {
            return Err(ParseError::StartLine("invalid method token"));
        }
        if u.is_empty() || v.is_empty() {
            return Err(ParseError::StartLine("extra white space in request line"));
        }
        check_version(v)?;
        if u.starts_with('<') {
            return Err(ParseError::RequestUri("Request-URI enclosed in <>"));
        }
        let uri = Uri::parse(u).map_err(ParseError::RequestUri)?;
        if uri.headers.is_some() {
            return Err(ParseError::RequestUri(
                "Request-URI must not contain headers (RFC 3261 s19.1.5)",
            ));
        }
        Start::Req(Method::parse(m), span(u))
    };

    // headers
    let mut headers: Vec<Header> = Vec::with_capacity(16);
    let mut rest = &head[(first_nl + 1).min(head.len())..];
    let mut idx: [Option<u16>; 8] = [None; 8]; // via, from, to, call-id, cseq, clen, maxfwd, expires
    let mut content_length: Option<usize> = None;
    let mut cseq: Option<CSeq> = None;
    while !rest.is_empty() {
        // one logical line = physical lines joined while the next starts with SP/HT
        let mut end = 0;
        let mut folded = false;
        let line_end;
        loop {
            let nl = match memchr::memchr(b'\n', &rest.as_bytes()[end..]) {
                Some(n) => end + n,
                None => rest.len(),
            };
            let next = nl + 1;
            if next < rest.len() && matches!(rest.as_bytes()[next], b' ' | b'\t') {
                folded = true;
                end = next;
                continue;
            }
            line_end = nl;
            break;
        }
        let line = &rest[..line_end];
        rest = &rest[(line_end + 1).min(rest.len())..];
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let colon = line.find(':').ok_or(ParseError::HeaderLine)?;
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if !is_token_str(name) {
            return Err(ParseError::HeaderLine);
        }
        let raw_value = trim_ws(&line[colon + 1..]);
        let hn = HeaderName::from_wire(name);
        let value_text = if folded && raw_value.contains(['\r', '\n']) {
            Text::Owned(unfold(raw_value).into_boxed_str())
        } else {
            span(raw_value)
        };
        let n = headers.len();
        if n >= u16::MAX as usize {
            return Err(ParseError::HeadTooLarge(head.len()));
        }
        headers.push(Header {
            name: hn,
            name_text: span(name),
            value: value_text,
        });
        let value: &str = match &headers[n].value {
            Text::Owned(s) => s,
            Text::Span(..) => raw_value,
        };
        let single = |slot: usize, name: &'static str, idx: &mut [Option<u16>; 8]| {
            if idx[slot].is_some() {
                return Err(ParseError::Duplicate(name));
            }
            idx[slot] = Some(n as u16);
            Ok(())
        };
        let bad =
            |name: &'static str| move |reason: &'static str| ParseError::Header { name, reason };
        match hn {
            HeaderName::Via if !deep => {
                idx[0].get_or_insert(n as u16);
            }
            HeaderName::From if !deep => single(1, "From", &mut idx)?,
            HeaderName::To if !deep => single(2, "To", &mut idx)?,
            HeaderName::CallId if !deep => single(3, "Call-ID", &mut idx)?,
            HeaderName::Contact
            | HeaderName::Route
            | HeaderName::RecordRoute
            | HeaderName::Date
            | HeaderName::Require
            | HeaderName::ProxyRequire
            | HeaderName::Supported
            | HeaderName::Unsupported
                if !deep => {}
            HeaderName::Via => {
                if idx[0].is_none() {
                    idx[0] = Some(n as u16);
                }
                for v in split_list(value) {
                    Via::parse(v).map_err(bad("Via"))?;
                }
            }
            HeaderName::From => {
                single(1, "From", &mut idx)?;
                NameAddr::parse(value).map_err(bad("From"))?;
            }
            HeaderName::To => {
                single(2, "To", &mut idx)?;
                NameAddr::parse(value).map_err(bad("To"))?;
            }
            HeaderName::CallId => {
                single(3, "Call-ID", &mut idx)?;
                let ok = match value.split_once('@') {
                    Some((a, b)) => is_word_str(a) && is_word_str(b),
                    None => is_word_str(value),
                };
                if !ok {
                    return Err(ParseError::Header {
                        name: "Call-ID",
                        reason: "not word[@word]",
                    });
                }
            }
            HeaderName::CSeq => {
                single(4, "CSeq", &mut idx)?;
                cseq = Some(CSeq::parse(value).map_err(bad("CSeq"))?);
            }
            HeaderName::ContentLength => {
                single(5, "Content-Length", &mut idx)?;
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::Header {
                        name: "Content-Length",
                        reason: "not a non-negative decimal number",
                    });
                }
                let v = header::parse_u32(value).ok_or(ParseError::Header {
                    name: "Content-Length",
                    reason: "larger than 2**32-1",
                })?;
                content_length = Some(v as usize);
            }
            HeaderName::MaxForwards => {
                single(6, "Max-Forwards", &mut idx)?;
                match header::parse_u32(value) {
                    Some(v) if v <= 255 => {}
                    _ => {
                        return Err(ParseError::Header {
                            name: "Max-Forwards",
                            reason: "not a number in 0..=255",
                        })
                    }
                }
            }
            HeaderName::Expires => {
                single(7, "Expires", &mut idx)?;
                header::parse_u32(value).ok_or(ParseError::Header {
                    name: "Expires",
                    reason: "not a delta-seconds value below 2**32",
                })?;
            }
            HeaderName::Contact if value != "*" => {
                for c in split_list(value) {
                    NameAddr::parse(c).map_err(bad("Contact"))?;
                }
            }
            HeaderName::Route | HeaderName::RecordRoute => {
                let name = if hn == HeaderName::Route {
                    "Route"
                } else {
                    "Record-Route"
                };
                for c in split_list(value) {
                    NameAddr::parse(c).map_err(bad(name))?;
                }
            }
            // rfc1123-date ends in "GMT" (RFC 3261 s20.17)
            HeaderName::Date if !value.ends_with("GMT") => {
                return Err(ParseError::Header {
                    name: "Date",
                    reason: "time zone must be GMT",
                });
            }
            HeaderName::Require
            | HeaderName::ProxyRequire
            | HeaderName::Supported
            | HeaderName::Unsupported => {
                for t in split_list(value) {
                    if !t.is_empty() && !is_token_str(t) {
                        return Err(ParseError::Header {
                            name: "Require/Supported",
                            reason: "option tag is not a token",
                        });
                    }
                }
            }
            _ => {}
        }
    }
    let need = |slot: usize, name: &'static str| idx[slot].ok_or(ParseError::Missing(name));
    if require_via {
        need(0, "Via")?;
    }
    let idx_from = need(1, "From")?;
    let idx_to = need(2, "To")?;
    let idx_call_id = need(3, "Call-ID")?;
    need(4, "CSeq")?;
    let cseq = cseq.ok_or(ParseError::Missing("CSeq"))?;

    let available = buf.len() - head_end;
    let body_len = match content_length {
        Some(cl) if cl > available => {
            return Err(ParseError::BodyTruncated {
                declared: cl,
                available,
            })
        }
        Some(cl) => cl,
        None if framed => 0,
        None => available,
    };
    let body = buf.slice(head_end..head_end + body_len);
    let parts = Parts {
        buf,
        headers,
        body,
        cseq,
        idx_call_id,
        idx_from,
        idx_to,
    };
    Ok(match start_line {
        Start::Req(method, uri) => {
            if parts.cseq.method != method {
                return Err(ParseError::CSeqMismatch);
            }
            SipMessage::Request(Request { method, uri, parts })
        }
        Start::Resp(code, reason) => SipMessage::Response(Response {
            code,
            reason,
            parts,
        }),
    })
}

fn is_word_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_word)
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if v.len() > 4 && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        Err(ParseError::Version(v.chars().take(16).collect()))
    } else {
        Err(ParseError::StartLine("missing SIP version"))
    }
}

/// Collapses folding (CRLF/LF followed by white space) into a single SP.
fn unfold(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.split('\n').peekable();
    while let Some(part) = it.next() {
        let part = part.strip_suffix('\r').unwrap_or(part);
        if out.is_empty() {
            out.push_str(part.trim_end_matches([' ', '\t']));
        } else {
            let p = part.trim_matches([' ', '\t']);
            if !p.is_empty() {
                out.push(' ');
                out.push_str(p);
            }
        }
        let _ = it.peek();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::MSG;

    #[test]
    fn parse_and_access() {
        let m = SipMessage::parse(Bytes::from_static(MSG.as_bytes())).unwrap();
        let SipMessage::Request(r) = m else {
            panic!("not a request")
        };
        assert_eq!(r.method(), &Method::Message);
        assert_eq!(r.call_id(), "asd88asd77a@1.2.3.4");
        assert_eq!(r.cseq().seq, 1);
        assert_eq!(r.from_tag(), Some("49583"));
        assert_eq!(r.to_tag(), None);
        assert_eq!(r.body().as_ref(), b"hello");
        assert_eq!(r.branch(), Some("z9hG4bK776"));
        assert_eq!(r.header_str("content-length"), Some("5"));
        assert_eq!(r.uri().unwrap().user, Some("bob"));
    }

    #[test]
    fn non_ascii_start_line_is_an_error_not_a_panic() {
        // found by cargo-fuzz: slicing the start line at byte 4 inside a UTF-8 character
        let raw = "SIPю x\r\nVia: SIP/2.0/UDP h\r\n\r\n";
        assert!(SipMessage::parse(Bytes::from(raw)).is_err());
        let raw = "OPTIONS sip:a@b SIPю\r\nVia: SIP/2.0/UDP h\r\n\r\n";
        assert!(SipMessage::parse(Bytes::from(raw)).is_err());
        // found by cargo-fuzz: status line without reason phrase or its separating SP
        let raw = "SIP/2.0 503\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n\r\n";
        let SipMessage::Response(r) = SipMessage::parse(Bytes::from(raw)).unwrap() else {
            panic!()
        };
        assert_eq!((r.code(), r.reason()), (503, ""));
    }
}

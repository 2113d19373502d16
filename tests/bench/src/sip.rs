//! The SIP bytes the generator sends and reads (RFC 3261 s7, s8.2.6, s18.3).
//!
//! Not a SIP stack: requests come from [`Template`]s, responses are read for their
//! status code and the tag in the Call-ID, and the responder copies the five headers
//! RFC 3261 s8.2.6.2 says a response must copy. Everything works on byte slices.

use crate::template::{find_tag, padded, Template};

/// Marker before the tag in the Call-ID of generated requests.
pub const CALL_ID_MARK: &[u8] = b"cpc";
/// Marker before the tag in generated message bodies (SIP and XMPP).
pub const BODY_MARK: &[u8] = b"cpb";

/// Transport of a SIP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Transport {
    /// RFC 768.
    Udp,
    /// RFC 793, framed by Content-Length (RFC 3261 s18.3).
    Tcp,
}

impl Transport {
    /// `UDP` / `TCP` as in a Via header.
    pub fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// What a MESSAGE template needs.
#[derive(Debug, Clone)]
pub struct MessageSpec<'a> {
    /// Request-URI.
    pub request_uri: &'a str,
    /// From URI (a `tag` parameter is added).
    pub from: &'a str,
    /// To URI.
    pub to: &'a str,
    /// Transport for the Via.
    pub transport: Transport,
    /// `host:port` of the sender, for the Via.
    pub local: &'a str,
    /// Body size in bytes (at least the marker and tag).
    pub body_len: usize,
}

/// A MESSAGE (RFC 3428) template; the tag goes into the branch, Call-ID and body.
pub fn message_template(s: &MessageSpec<'_>) -> Template {
    let body = padded("cpb{tag} ", s.body_len.max(16) + 5 - 12);
    let body_bytes = body.len() - "{tag}".len() + crate::template::TAG_WIDTH;
    Template::new(&format!(
        "MESSAGE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/{tp} {local};branch=z9hG4bK.b{{tag}}\r\n\
         Max-Forwards: 70\r\n\
         From: <{from}>;tag=cpimbench\r\n\
         To: <{to}>\r\n\
         Call-ID: cpc{{tag}}@cpim.bench\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {body_bytes}\r\n\
         \r\n{body}",
        ruri = s.request_uri,
        tp = s.transport.via(),
        local = s.local,
        from = s.from,
        to = s.to,
    ))
}

/// A REGISTER (RFC 3261 s10.2) binding `user@domain` to `contact_host` (host:port).
pub fn register_request(
    user: &str,
    domain: &str,
    transport: Transport,
    local: &str,
    cseq: u32,
    expires: u32,
) -> Vec<u8> {
    format!(
        "REGISTER sip:{domain} SIP/2.0\r\n\
         Via: SIP/2.0/{tp} {local};branch=z9hG4bK.reg{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{domain}>;tag=reg\r\n\
         To: <sip:{user}@{domain}>\r\n\
         Call-ID: reg-{user}@cpim.bench\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{local}{tpp}>\r\n\
         Expires: {expires}\r\n\
         Content-Length: 0\r\n\r\n",
        tp = transport.via(),
        tpp = if transport == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        },
    )
    .into_bytes()
}

/// A SUBSCRIBE (RFC 6665, event `presence`, RFC 3856) from `watcher` to `target`.
pub fn subscribe_request(
    watcher: &str,
    target: &str,
    local: &str,
    n: u64,
    expires: u32,
) -> Vec<u8> {
    format!(
        "SUBSCRIBE {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK.s{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <{watcher}>;tag=w{n}\r\n\
         To: <{target}>\r\n\
         Call-ID: sub{n}@cpim.bench\r\n\
         CSeq: 1 SUBSCRIBE\r\n\
         Contact: <sip:w{n}@{local}>\r\n\
         Event: presence\r\n\
         Accept: application/pidf+xml\r\n\
         Expires: {expires}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A PUBLISH (RFC 3903) of an `open` PIDF document (RFC 3863) for `entity`; the tag goes
/// into the Call-ID, branch and the note.
pub fn publish_template(entity: &str, local: &str) -> Template {
    let pidf = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\">\r\n\
         <tuple id=\"t1\"><status><basic>open</basic></status><note>cpb{{tag}}</note></tuple>\r\n\
         </presence>\r\n"
    );
    let len = pidf.len() - "{tag}".len() + crate::template::TAG_WIDTH;
    Template::new(&format!(
        "PUBLISH {entity} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK.p{{tag}}\r\n\
         Max-Forwards: 70\r\n\
         From: <{entity}>;tag=pub\r\n\
         To: <{entity}>\r\n\
         Call-ID: cpc{{tag}}@cpim.bench\r\n\
         CSeq: 1 PUBLISH\r\n\
         Event: presence\r\n\
         Expires: 3600\r\n\
         Content-Type: application/pidf+xml\r\n\
         Content-Length: {len}\r\n\r\n{pidf}"
    ))
}

/// A response's status code (`SIP/2.0 200 OK` -> 200).
pub fn status_code(msg: &[u8]) -> Option<u16> {
    let rest = msg.strip_prefix(b"SIP/2.0 ")?;
    let d = rest.get(..3)?;
    if !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0u16, |a, &b| a * 10 + u16::from(b - b'0')))
}

/// True for a response (status line), false for a request.
pub fn is_response(msg: &[u8]) -> bool {
    msg.starts_with(b"SIP/2.0 ")
}

/// The tag in the Call-ID of a response to a generated request.
pub fn response_tag(msg: &[u8]) -> Option<u64> {
    find_tag(msg, CALL_ID_MARK)
}

/// The offset of the body (after the blank line), if the header section is complete.
pub fn body_start(msg: &[u8]) -> Option<usize> {
    memchr::memmem::find(msg, b"\r\n\r\n").map(|i| i + 4)
}

/// The tag in the body of a request (sent by the generator at the other end).
pub fn body_tag(msg: &[u8]) -> Option<u64> {
    let b = body_start(msg)?;
    find_tag(&msg[b..], BODY_MARK)
}

/// A hash of the first `branch=` parameter (the top Via's), 0 when there is none.
pub fn branch_hash(msg: &[u8]) -> u64 {
    let head = &msg[..body_start(msg).unwrap_or(msg.len())];
    let Some(at) = memchr::memmem::find(head, b"branch=") else {
        return 0;
    };
    let v = &head[at + 7..];
    let end = v
        .iter()
        .position(|b| matches!(b, b';' | b',' | b'\r' | b'\n' | b' ' | b'\t'))
        .unwrap_or(v.len());
    // FNV-1a
    v[..end].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1
}

/// The method of a request.
pub fn method(msg: &[u8]) -> &[u8] {
    let end = memchr::memchr(b' ', msg).unwrap_or(msg.len());
    &msg[..end]
}

fn header_name(line: &[u8]) -> Option<&[u8]> {
    let colon = memchr::memchr(b':', line)?;
    let name = &line[..colon];
    let end = name.iter().rposition(|b| !b.is_ascii_whitespace())? + 1;
    Some(&name[..end])
}

fn is_copied(name: &[u8]) -> Option<bool> {
    // Some(is_to)
    const COPY: [&[u8]; 8] = [
        b"via", b"v", b"from", b"f", b"call-id", b"i", b"cseq", b"to",
    ];
    if name.eq_ignore_ascii_case(b"to") || name.eq_ignore_ascii_case(b"t") {
        return Some(true);
    }
    COPY.iter()
        .any(|c| name.eq_ignore_ascii_case(c))
        .then_some(false)
}

/// Why the responder could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SipError {
    /// No blank line ends the header section.
    #[error("request has no end of header section")]
    Incomplete,
    /// A response, or an ACK (never answered).
    #[error("not a request that takes a response")]
    NotAnswerable,
    /// Content-Length is not a number.
    #[error("bad Content-Length")]
    BadLength,
}

/// Writes the response `code reason` to `req` into `out` (cleared first): Via, From, To
/// (with a tag added when missing), Call-ID and CSeq copied (RFC 3261 s8.2.6.2), no body.
pub fn write_response(
    req: &[u8],
    code: u16,
    reason: &str,
    out: &mut Vec<u8>,
) -> Result<(), SipError> {
    out.clear();
    if is_response(req) || method(req) == b"ACK" {
        return Err(SipError::NotAnswerable);
    }
    let head_end = memchr::memmem::find(req, b"\r\n\r\n").ok_or(SipError::Incomplete)?;
    let head = &req[..head_end + 2];
    out.extend_from_slice(b"SIP/2.0 ");
    let mut c = [0u8; 3];
    c[0] = b'0' + (code / 100 % 10) as u8;
    c[1] = b'0' + (code / 10 % 10) as u8;
    c[2] = b'0' + (code % 10) as u8;
    out.extend_from_slice(&c);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut lines = memchr::memmem::find_iter(head, b"\r\n");
    let mut start = match lines.next() {
        Some(i) => i + 2, // skip the request line
        None => return Err(SipError::Incomplete),
    };
    let mut copying = false;
    let mut to_pending = false;
    for end in lines {
        let line = &head[start..end];
        start = end + 2;
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            // folded continuation of the previous header
            if copying {
                if to_pending {
                    out.truncate(out.len() - 2);
                }
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
            continue;
        }
        if to_pending {
            close_to(out);
            to_pending = false;
        }
        match header_name(line).and_then(is_copied) {
            Some(is_to) => {
                copying = true;
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
                to_pending = is_to;
            }
            None => copying = false,
        }
    }
    if to_pending {
        close_to(out);
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Ok(())
}

/// Adds `;tag=` to the To line just written (ending in CRLF) when it has none.
fn close_to(out: &mut Vec<u8>) {
    let line_start = memchr::memmem::rfind(&out[..out.len() - 2], b"\r\n").map_or(0, |i| i + 2);
    let line = &out[line_start..out.len() - 2];
    let has_tag = line.windows(5).any(|w| w.eq_ignore_ascii_case(b";tag="));
    if !has_tag {
        out.truncate(out.len() - 2);
        out.extend_from_slice(b";tag=cpimbenchuas\r\n");
    }
}

/// One step of stream framing (RFC 3261 s18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Skip this many bytes of CRLF keep-alive.
    Skip(usize),
    /// A complete message of this many bytes.
    Complete(usize),
    /// More bytes needed.
    Partial,
}

/// Frames the next message at the start of `buf` by its Content-Length (absent = 0).
pub fn frame(buf: &[u8]) -> Result<Frame, SipError> {
    let ws = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if ws > 0 {
        return Ok(Frame::Skip(ws));
    }
    let Some(head_end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return Ok(Frame::Partial);
    };
    let head = &buf[..head_end + 2];
    let mut len = 0usize;
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(name) = header_name(line) {
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                let colon = memchr::memchr(b':', line).unwrap_or(0);
                let v = std::str::from_utf8(&line[colon + 1..])
                    .map_err(|_| SipError::BadLength)?
                    .trim();
                len = v.parse().map_err(|_| SipError::BadLength)?;
            }
        }
    }
    let total = head_end + 4 + len;
    if buf.len() >= total {
        Ok(Frame::Complete(total))
    } else {
        Ok(Frame::Partial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::tag;

    fn spec() -> MessageSpec<'static> {
        MessageSpec {
            request_uri: "sip:bob@xmpp.test",
            from: "sip:alice@sip.test",
            to: "sip:bob@xmpp.test",
            transport: Transport::Udp,
            local: "127.0.0.1:5999",
            body_len: 100,
        }
    }

    #[test]
    fn message_template_frames_and_carries_the_tag() {
        let mut t = message_template(&spec());
        let m = t.patch(tag(7, 123)).to_vec();
        let b = body_start(&m).unwrap();
        assert_eq!(m.len() - b, 100);
        assert_eq!(frame(&m).unwrap(), Frame::Complete(m.len()));
        assert_eq!(body_tag(&m), Some(tag(7, 123)));
        assert_eq!(response_tag(&m), Some(tag(7, 123)));
        let s = std::str::from_utf8(&m).unwrap();
        assert!(s.starts_with("MESSAGE sip:bob@xmpp.test SIP/2.0\r\n"));
        assert!(s.contains("branch=z9hG4bK.b070000000123\r\n"));
        assert!(s.contains("Content-Length: 100\r\n"));
    }

    #[test]
    fn responder_copies_the_required_headers_and_adds_a_to_tag() {
        let mut t = message_template(&spec());
        let req = t.patch(tag(1, 5)).to_vec();
        let mut out = Vec::new();
        write_response(&req, 200, "OK", &mut out).unwrap();
        let s = std::str::from_utf8(&out).unwrap();
        assert!(s.starts_with("SIP/2.0 200 OK\r\n"), "{s}");
        assert!(s.contains("Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK.b010000000005\r\n"));
        assert!(s.contains("From: <sip:alice@sip.test>;tag=cpimbench\r\n"));
        assert!(s.contains("To: <sip:bob@xmpp.test>;tag=cpimbenchuas\r\n"));
        assert!(s.contains("Call-ID: cpc010000000005@cpim.bench\r\n"));
        assert!(s.contains("CSeq: 1 MESSAGE\r\n"));
        assert!(!s.contains("Content-Type"));
        assert!(s.ends_with("Content-Length: 0\r\n\r\n"));
        assert_eq!(status_code(&out), Some(200));
        assert_eq!(response_tag(&out), Some(tag(1, 5)));
        assert_eq!(frame(&out).unwrap(), Frame::Complete(out.len()));
    }

    #[test]
    fn responder_keeps_an_existing_to_tag_and_compact_forms() {
        let req = b"NOTIFY sip:w@h SIP/2.0\r\nv: SIP/2.0/UDP a;branch=z9hG4bKx\r\nv: SIP/2.0/UDP b;branch=z9hG4bKy\r\nf: <sip:p@h>;tag=1\r\nt: <sip:w@h>;tag=2\r\ni: abc\r\nCSeq: 2 NOTIFY\r\nSubscription-State: active\r\nl: 0\r\n\r\n";
        let mut out = Vec::new();
        write_response(req, 200, "OK", &mut out).unwrap();
        let s = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            s,
            "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP a;branch=z9hG4bKx\r\nv: SIP/2.0/UDP b;branch=z9hG4bKy\r\nf: <sip:p@h>;tag=1\r\nt: <sip:w@h>;tag=2\r\ni: abc\r\nCSeq: 2 NOTIFY\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(
            write_response(b"ACK sip:x SIP/2.0\r\n\r\n", 200, "OK", &mut out),
            Err(SipError::NotAnswerable)
        );
        assert_eq!(
            write_response(b"SIP/2.0 200 OK\r\n\r\n", 200, "OK", &mut out),
            Err(SipError::NotAnswerable)
        );
        assert_eq!(
            write_response(b"MESSAGE sip:x SIP/2.0\r\nVia: x\r\n", 200, "OK", &mut out),
            Err(SipError::Incomplete)
        );
    }

    #[test]
    fn branch_hash_reads_the_top_via() {
        let a = b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa;rport\r\nVia: SIP/2.0/UDP g;branch=z9hG4bKb\r\n\r\n";
        let b = b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKb\r\n\r\n";
        let c =
            b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;rport;branch=z9hG4bKa\r\n\r\nbranch=zz";
        assert_ne!(branch_hash(a), branch_hash(b));
        assert_eq!(branch_hash(a), branch_hash(c));
        assert_eq!(branch_hash(b"MESSAGE sip:x SIP/2.0\r\n\r\nbranch=x"), 0);
        assert_ne!(branch_hash(a), 0);
    }

    #[test]
    fn stream_framing() {
        assert_eq!(frame(b"\r\n\r\nSIP").unwrap(), Frame::Skip(4));
        assert_eq!(
            frame(b"SIP/2.0 200 OK\r\nl: 3\r\n\r\nab").unwrap(),
            Frame::Partial
        );
        assert_eq!(
            frame(b"SIP/2.0 200 OK\r\nl: 3\r\n\r\nabcSIP").unwrap(),
            Frame::Complete(27)
        );
        assert_eq!(
            frame(b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(SipError::BadLength)
        );
        assert_eq!(
            frame(b"SIP/2.0 200 OK\r\nTo: x\r\n").unwrap(),
            Frame::Partial
        );
        assert_eq!(status_code(b"SIP/2.0 486 Busy"), Some(486));
        assert_eq!(status_code(b"SIP/2.0 4x6 Busy"), None);
    }

    #[test]
    fn register_publish_subscribe_are_framed() {
        let r = register_request("u1", "sip.test", Transport::Udp, "127.0.0.1:1", 1, 3600);
        assert_eq!(frame(&r).unwrap(), Frame::Complete(r.len()));
        let s = subscribe_request("sip:w1@sip.test", "sip:p1@sip.test", "127.0.0.1:1", 1, 3600);
        assert_eq!(frame(&s).unwrap(), Frame::Complete(s.len()));
        let mut p = publish_template("sip:p1@sip.test", "127.0.0.1:1");
        let m = p.patch(77).to_vec();
        assert_eq!(frame(&m).unwrap(), Frame::Complete(m.len()));
        assert_eq!(body_tag(&m), Some(77));
    }
}

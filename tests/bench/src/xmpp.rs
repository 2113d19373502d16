//! The XMPP end of the generator: an XEP-0114 component *server* (the gateway connects to
//! it as it would to Prosody), the matching client for self-tests, and a top-level element
//! splitter that finds stanza boundaries without building a tree.
//!
//! XEP-0114 s3: the component opens `<stream:stream xmlns='jabber:component:accept'
//! to='DOMAIN'>`, the server answers with a stream header carrying an `id`, the component
//! sends `<handshake>` with the lower-case hex SHA-1 of `id + secret`, and the server
//! answers `<handshake/>` (or a `not-authorized` stream error).

use sha1::{Digest, Sha1};

/// XEP-0114 s3 handshake value: lower-case hex SHA-1 of the stream id followed by the secret.
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// A stream error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmppError {
    /// Something that is not a stream header where one was due.
    #[error("expected a stream header")]
    NoHeader,
    /// The handshake did not match.
    #[error("handshake does not match (wrong secret)")]
    NotAuthorized,
    /// The peer sent a stream error.
    #[error("stream error from the peer: {0}")]
    StreamError(String),
    /// Markup this splitter does not accept (comment, PI, DTD inside the stream).
    #[error("restricted XML: {0}")]
    Restricted(&'static str),
    /// A stanza above the size limit.
    #[error("stanza larger than {0} bytes")]
    TooBig(usize),
}

/// One step of the splitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// A complete top-level element at `start..end` of the buffer.
    Element(usize, usize),
    /// `</stream:stream>` at this offset.
    StreamEnd,
    /// More bytes needed; skip this many leading bytes (whitespace) first.
    Partial(usize),
}

/// Finds the `>` that ends the tag starting at `from` (quotes respected).
fn tag_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut quote = 0u8;
    for (i, &b) in buf[from..].iter().enumerate() {
        if quote != 0 {
            if b == quote {
                quote = 0;
            }
        } else if b == b'\'' || b == b'"' {
            quote = b;
        } else if b == b'>' {
            return Some(from + i);
        }
    }
    None
}

/// Finds the next complete first-level element in `buf` (which starts inside the stream,
/// after the header). Whitespace between stanzas (keep-alives) is skipped.
pub fn split(buf: &[u8], max: usize) -> Result<Split, XmppError> {
    let start = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if start == buf.len() {
        return Ok(Split::Partial(start));
    }
    if buf[start] != b'<' {
        return Err(XmppError::Restricted("text at stream level"));
    }
    if buf[start..].starts_with(b"</") {
        return match tag_end(buf, start) {
            Some(_) => Ok(Split::StreamEnd),
            None => Ok(Split::Partial(start)),
        };
    }
    let mut depth = 0usize;
    let mut i = start;
    while let Some(lt) = memchr::memchr(b'<', &buf[i..]).map(|k| i + k) {
        match buf.get(lt + 1) {
            None => break,
            Some(b'?') => return Err(XmppError::Restricted("processing instruction")),
            Some(b'!') => return Err(XmppError::Restricted("comment, CDATA or DTD")),
            Some(b'/') => {
                let Some(gt) = tag_end(buf, lt) else { break };
                depth = depth.saturating_sub(1);
                i = gt + 1;
            }
            Some(_) => {
                let Some(gt) = tag_end(buf, lt) else { break };
                if buf[gt - 1] != b'/' {
                    depth += 1;
                }
                i = gt + 1;
            }
        }
        if depth == 0 {
            return Ok(Split::Element(start, i));
        }
    }
    if buf.len() - start > max {
        return Err(XmppError::TooBig(max));
    }
    Ok(Split::Partial(start))
}

/// The start tag of an element (up to its first `>`).
pub fn start_tag(el: &[u8]) -> &[u8] {
    match tag_end(el, 0) {
        Some(gt) => &el[..=gt],
        None => el,
    }
}

/// The element name of a start tag (`<message ...` -> `message`).
pub fn name(el: &[u8]) -> &[u8] {
    let s = el.strip_prefix(b"<").unwrap_or(el);
    let end = s
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
        .unwrap_or(s.len());
    &s[..end]
}

/// The raw (still escaped) value of attribute `attr` in a start tag.
pub fn attr<'a>(tag: &'a [u8], attr: &str) -> Option<&'a [u8]> {
    let a = attr.as_bytes();
    let mut i = 0;
    while let Some(k) = memchr::memmem::find(&tag[i..], a) {
        let at = i + k;
        i = at + a.len();
        let before_ok = at > 0 && tag[at - 1].is_ascii_whitespace();
        let mut j = at + a.len();
        while tag.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if !before_ok || tag.get(j) != Some(&b'=') {
            continue;
        }
        j += 1;
        while tag.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        let q = *tag.get(j)?;
        if q != b'\'' && q != b'"' {
            return None;
        }
        let end = memchr::memchr(q, &tag[j + 1..])?;
        return Some(&tag[j + 1..j + 1 + end]);
    }
    None
}

/// Writes the XEP-0199 answer to a ping `iq` (from and to swapped, same id).
pub fn write_iq_result(iq_tag: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"<iq type='result'");
    if let Some(id) = attr(iq_tag, "id") {
        out.extend_from_slice(b" id='");
        out.extend_from_slice(id);
        out.push(b'\'');
    }
    if let Some(to) = attr(iq_tag, "to") {
        out.extend_from_slice(b" from='");
        out.extend_from_slice(to);
        out.push(b'\'');
    }
    if let Some(from) = attr(iq_tag, "from") {
        out.extend_from_slice(b" to='");
        out.extend_from_slice(from);
        out.push(b'\'');
    }
    out.extend_from_slice(b"/>");
}

/// What the server makes of a stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `<message>` (not an error).
    Message,
    /// A `<message type='error'>` or `<presence type='error'>` or error iq.
    Error,
    /// `<presence>`.
    Presence,
    /// An `<iq type='get'>` or `set` (answered).
    IqRequest,
    /// An `<iq type='result'>`.
    IqResult,
    /// Anything else.
    Other,
}

/// Classifies a stanza by its start tag.
pub fn kind(el: &[u8]) -> Kind {
    let tag = start_tag(el);
    let ty = attr(tag, "type");
    if ty == Some(b"error") {
        return Kind::Error;
    }
    match name(tag) {
        b"message" => Kind::Message,
        b"presence" => Kind::Presence,
        b"iq" => match ty {
            Some(b"get") | Some(b"set") => Kind::IqRequest,
            _ => Kind::IqResult,
        },
        _ => Kind::Other,
    }
}

/// Server-side session state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the component's stream header.
    AwaitHeader,
    /// Header answered; waiting for `<handshake>`.
    AwaitHandshake,
    /// Stanzas flow.
    Ready,
    /// Closed (after an error or the stream end).
    Closed,
}

/// The server side of one component connection (sans-IO). Bytes go in through
/// [`ServerSession::handle_input`]; what to send back is appended to `out`; stanzas are
/// handed to the callback once the handshake is done.
#[derive(Debug)]
pub struct ServerSession {
    domain: String,
    secret: String,
    stream_id: String,
    state: State,
    buf: Vec<u8>,
    max_stanza: usize,
}

impl ServerSession {
    /// A session for the component `domain` with `secret`; `stream_id` goes in the header.
    pub fn new(domain: &str, secret: &str, stream_id: &str) -> Self {
        ServerSession {
            domain: domain.to_owned(),
            secret: secret.to_owned(),
            stream_id: stream_id.to_owned(),
            state: State::AwaitHeader,
            buf: Vec::with_capacity(64 * 1024),
            max_stanza: 256 * 1024,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Feeds bytes; appends replies to `out`; calls `on_stanza` for each stanza after the
    /// handshake (with `out`, so the callback can answer).
    pub fn handle_input(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        mut on_stanza: impl FnMut(&[u8], &mut Vec<u8>),
    ) -> Result<(), XmppError> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let r = loop {
            let rest = &self.buf[pos..];
            match self.state {
                State::AwaitHeader => {
                    let Some(at) = memchr::memmem::find(rest, b"<stream:stream") else {
                        if rest.len() > 4096 {
                            break Err(XmppError::NoHeader);
                        }
                        break Ok(());
                    };
                    let Some(gt) = tag_end(rest, at) else {
                        break Ok(());
                    };
                    let tag = &rest[at..=gt];
                    let to = attr(tag, "to").map(<[u8]>::to_vec);
                    pos += gt + 1;
                    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' id='");
                    out.extend_from_slice(self.stream_id.as_bytes());
                    out.extend_from_slice(b"' from='");
                    out.extend_from_slice(to.as_deref().unwrap_or(self.domain.as_bytes()));
                    out.extend_from_slice(b"'>");
                    self.state = State::AwaitHandshake;
                }
                State::AwaitHandshake => match split(rest, 4096)? {
                    Split::Partial(_) => break Ok(()),
                    Split::StreamEnd => {
                        break Err(XmppError::StreamError(
                            "stream closed before the handshake".into(),
                        ))
                    }
                    Split::Element(s, e) => {
                        let el = &rest[s..e];
                        pos += e;
                        let expected = handshake_digest(&self.stream_id, &self.secret);
                        let got = el
                            .strip_prefix(b"<handshake>")
                            .and_then(|x| x.strip_suffix(b"</handshake>"))
                            .map(|x| x.trim_ascii());
                        if got.is_some_and(|g| g.eq_ignore_ascii_case(expected.as_bytes())) {
                            out.extend_from_slice(b"<handshake/>");
                            self.state = State::Ready;
                        } else {
                            out.extend_from_slice(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>");
                            break Err(XmppError::NotAuthorized);
                        }
                    }
                },
                State::Ready => match split(rest, self.max_stanza)? {
                    Split::Partial(skip) => {
                        pos += skip;
                        break Ok(());
                    }
                    Split::StreamEnd => {
                        out.extend_from_slice(b"</stream:stream>");
                        self.state = State::Closed;
                        break Ok(());
                    }
                    Split::Element(s, e) => {
                        on_stanza(&rest[s..e], out);
                        pos += e;
                    }
                },
                State::Closed => break Ok(()),
            }
        };
        if r.is_err() {
            self.state = State::Closed;
        }
        self.buf.drain(..pos);
        r
    }
}

/// The client side of the handshake (for the generator's self-test).
#[derive(Debug)]
pub struct ClientHandshake {
    secret: String,
    buf: Vec<u8>,
    sent_handshake: bool,
}

impl ClientHandshake {
    /// Starts: returns the handshake state and the stream header to send.
    pub fn start(domain: &str, secret: &str) -> (Self, Vec<u8>) {
        let header = format!("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>");
        (
            ClientHandshake {
                secret: secret.to_owned(),
                buf: Vec::new(),
                sent_handshake: false,
            },
            header.into_bytes(),
        )
    }

    /// Feeds bytes from the server; appends what to send to `out`; `Ok(true)` once the
    /// server accepted the handshake.
    pub fn handle_input(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<bool, XmppError> {
        self.buf.extend_from_slice(data);
        if !self.sent_handshake {
            let Some(at) = memchr::memmem::find(&self.buf, b"<stream:stream") else {
                return Ok(false);
            };
            let Some(gt) = tag_end(&self.buf, at) else {
                return Ok(false);
            };
            let tag = &self.buf[at..=gt];
            let id = attr(tag, "id").ok_or(XmppError::NoHeader)?;
            let id = String::from_utf8_lossy(id).into_owned();
            self.buf.drain(..=gt);
            out.extend_from_slice(b"<handshake>");
            out.extend_from_slice(handshake_digest(&id, &self.secret).as_bytes());
            out.extend_from_slice(b"</handshake>");
            self.sent_handshake = true;
        }
        match split(&self.buf, 4096)? {
            Split::Element(s, e) => {
                let el = &self.buf[s..e];
                if name(el) == b"handshake" {
                    self.buf.drain(..e);
                    Ok(true)
                } else {
                    Err(XmppError::StreamError(
                        String::from_utf8_lossy(el).into_owned(),
                    ))
                }
            }
            Split::StreamEnd => Err(XmppError::StreamError("closed".into())),
            Split::Partial(_) => Ok(false),
        }
    }
}

/// A `<message>` template from `from` to `to` with the tag in its id and body.
pub fn message_template(from: &str, to: &str, body_len: usize) -> crate::template::Template {
    let body = crate::template::padded("cpb{tag} ", body_len.max(16) + 5 - 12);
    crate::template::Template::new(&format!(
        "<message from='{from}' to='{to}' type='chat' id='m{{tag}}'><body>{body}</body></message>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_digest_is_hex_sha1_of_id_and_secret() {
        // sha1("3BF96D32" + "sesame"): the XEP-0114 example values
        assert_eq!(handshake_digest("3BF96D32", "sesame"), {
            let mut h = Sha1::new();
            h.update(b"3BF96D32sesame");
            hex::encode(h.finalize())
        });
        assert_eq!(handshake_digest("", "").len(), 40);
        assert_eq!(
            handshake_digest("", ""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    fn run_handshake(
        server_secret: &str,
        client_secret: &str,
        chunk: usize,
    ) -> (Result<(), XmppError>, bool, ServerSession) {
        let mut server = ServerSession::new("sip.xmpp.test", server_secret, "abc123");
        let (mut client, header) = ClientHandshake::start("sip.xmpp.test", client_secret);
        let mut to_server = header;
        let mut ok = false;
        for _ in 0..10 {
            let mut to_client = Vec::new();
            let data = std::mem::take(&mut to_server);
            for c in data.chunks(chunk.max(1)) {
                if let Err(e) = server.handle_input(c, &mut to_client, |_, _| {}) {
                    return (Err(e), ok, server);
                }
            }
            for c in to_client.chunks(chunk.max(1)) {
                match client.handle_input(c, &mut to_server) {
                    Ok(true) => ok = true,
                    Ok(false) => {}
                    Err(e) => return (Err(e), ok, server),
                }
            }
            if ok {
                break;
            }
        }
        (Ok(()), ok, server)
    }

    #[test]
    fn handshake_succeeds_with_the_right_secret_in_any_chunking() {
        for chunk in [1, 3, 7, 1000] {
            let (r, ok, server) = run_handshake("s3cret", "s3cret", chunk);
            assert_eq!(r, Ok(()));
            assert!(ok, "chunk {chunk}");
            assert_eq!(server.state(), State::Ready);
        }
    }

    #[test]
    fn wrong_secret_is_not_authorized() {
        let (r, ok, server) = run_handshake("s3cret", "wrong", 1000);
        assert_eq!(r, Err(XmppError::NotAuthorized));
        assert!(!ok);
        assert_eq!(server.state(), State::Closed);
    }

    #[test]
    fn stanzas_are_split_across_chunks_and_pings_answered() {
        let mut server = ServerSession::new("c.test", "s", "id1");
        let mut out = Vec::new();
        let hs = format!(
            "<stream:stream xmlns='jabber:component:accept' to='c.test'><handshake>{}</handshake>",
            handshake_digest("id1", "s")
        );
        server
            .handle_input(hs.as_bytes(), &mut out, |_, _| {})
            .unwrap();
        assert!(out.ends_with(b"<handshake/>"));
        let mut t = message_template("a@c.test", "b@x.test", 40);
        let mut stream = Vec::new();
        stream.extend_from_slice(t.patch(1));
        stream.extend_from_slice(b" \n<iq type='get' id='p1' from='c.test' to='x.test'><ping xmlns='urn:xmpp:ping'/></iq>");
        stream.extend_from_slice(t.patch(2));
        stream.extend_from_slice(b"<message type='error' from='b@x.test' to='a@c.test' id='m1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
        stream.extend_from_slice(b"<presence from='a@x' to='b@c' attr='a>b'/>");
        for chunk in [1usize, 5, 64, 4096] {
            let mut s = ServerSession::new("c.test", "s", "id1");
            let mut o = Vec::new();
            s.handle_input(hs.as_bytes(), &mut o, |_, _| {}).unwrap();
            o.clear();
            let mut seen = Vec::new();
            for c in stream.chunks(chunk) {
                s.handle_input(c, &mut o, |el, out| {
                    let k = kind(el);
                    if k == Kind::IqRequest {
                        write_iq_result(start_tag(el), out);
                    }
                    seen.push((k, crate::template::find_tag(el, b"cpb")));
                })
                .unwrap();
            }
            assert_eq!(
                seen,
                vec![
                    (Kind::Message, Some(1)),
                    (Kind::IqRequest, None),
                    (Kind::Message, Some(2)),
                    (Kind::Error, None),
                    (Kind::Presence, None)
                ],
                "chunk {chunk}"
            );
            assert_eq!(o, b"<iq type='result' id='p1' from='x.test' to='c.test'/>");
            s.handle_input(b"</stream:stream>", &mut o, |_, _| {})
                .unwrap();
            assert_eq!(s.state(), State::Closed);
        }
    }

    #[test]
    fn restricted_xml_and_size_limits() {
        assert_eq!(
            split(b"<!-- x -->", 100),
            Err(XmppError::Restricted("comment, CDATA or DTD"))
        );
        assert_eq!(
            split(b"<a><?pi?></a>", 100),
            Err(XmppError::Restricted("processing instruction"))
        );
        assert_eq!(
            split(b"text", 100),
            Err(XmppError::Restricted("text at stream level"))
        );
        assert_eq!(
            split(b"<a><b>xxxxxxxxxxxxxxxx", 8),
            Err(XmppError::TooBig(8))
        );
        assert_eq!(split(b"  <a x='1'/>", 100), Ok(Split::Element(2, 12)));
        assert_eq!(split(b"  ", 100), Ok(Split::Partial(2)));
        assert_eq!(attr(b"<iq xid='1' id=\"2\">", "id"), Some(&b"2"[..]));
        assert_eq!(attr(b"<iq id = '2'>", "id"), Some(&b"2"[..]));
        assert_eq!(attr(b"<iq>", "id"), None);
    }
}

//! Header names (RFC 3261 s20, compact forms s7.3.3) and typed views of header values:
//! name-addr / addr-spec (s20.10, s20.20, s20.39), Via (s20.42), CSeq (s20.16).

use std::fmt;

use super::chars::{is_token, is_token_str, is_ws, trim_ws};
use super::method::Method;
use super::params::{find_unquoted, quoted_end, validate_header_params, Params};
use super::uri::{parse_hostport, Host, Uri};

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header name. Known names are recognised case-insensitively, including their
        /// compact forms; anything else is [`HeaderName::Other`] (the text is kept in the
        /// message).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( #[doc = $canon] $variant, )*
            /// An extension header (compare its text).
            Other,
        }

        impl HeaderName {
            /// The canonical (long) spelling, or `None` for [`HeaderName::Other`].
            pub const fn canonical(self) -> Option<&'static str> {
                match self {
                    $( HeaderName::$variant => Some($canon), )*
                    HeaderName::Other => None,
                }
            }

            /// Recognises a header name as written in a message (long or compact form).
            pub fn from_wire(name: &str) -> HeaderName {
                if name.len() == 1 {
                    let c = name.as_bytes()[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                    return HeaderName::Other;
                }
                $( if name.len() == $canon.len() && name.eq_ignore_ascii_case($canon) {
                    return HeaderName::$variant;
                } )*
                HeaderName::Other
            }
        }
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    ContentEncoding => "Content-Encoding", b'e';
    ContentDisposition => "Content-Disposition";
    Contact => "Contact", b'm';
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Route => "Route";
    RecordRoute => "Record-Route";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Supported => "Supported", b'k';
    Unsupported => "Unsupported";
    Allow => "Allow";
    AllowEvents => "Allow-Events", b'u';
    Accept => "Accept";
    AcceptEncoding => "Accept-Encoding";
    Event => "Event", b'o';
    SubscriptionState => "Subscription-State";
    SipEtag => "SIP-ETag";
    SipIfMatch => "SIP-If-Match";
    WwwAuthenticate => "WWW-Authenticate";
    Authorization => "Authorization";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    AuthenticationInfo => "Authentication-Info";
    UserAgent => "User-Agent";
    Server => "Server";
    Date => "Date";
    Subject => "Subject", b's';
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    RetryAfter => "Retry-After";
    Warning => "Warning";
    Timestamp => "Timestamp";
    Path => "Path";
    AcceptContact => "Accept-Contact", b'a';
    SessionExpires => "Session-Expires", b'x';
}

impl HeaderName {
    /// Headers that RFC 3261 s7.3.1 allows to be combined as a comma-separated list and
    /// whose values never contain an unquoted comma inside one element.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::AllowEvents
                | HeaderName::Accept
                | HeaderName::AcceptEncoding
                | HeaderName::ContentEncoding
                | HeaderName::Path
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical().unwrap_or("(extension header)"))
    }
}

/// Splits a list header value at top-level commas (outside quotes and `<>`), trimming LWS.
/// Empty elements are returned as empty strings so that validators can refuse them.
pub fn split_list(value: &str) -> ListIter<'_> {
    ListIter { rest: Some(value) }
}

/// Iterator returned by [`split_list`].
#[derive(Clone, Debug)]
pub struct ListIter<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let b = s.as_bytes();
        let mut i = 0;
        let mut quoted = false;
        let mut angle = false;
        while i < b.len() {
            let c = b[i];
            if quoted {
                if c == b'\\' {
                    i += 1;
                } else if c == b'"' {
                    quoted = false;
                }
            } else if angle {
                if c == b'>' {
                    angle = false;
                }
            } else if c == b'"' {
                quoted = true;
            } else if c == b'<' {
                angle = true;
            } else if c == b',' {
                self.rest = Some(&s[i + 1..]);
                return Some(trim_ws(&s[..i]));
            }
            i += 1;
        }
        self.rest = None;
        Some(trim_ws(s))
    }
}

/// `name-addr` / `addr-spec` followed by header parameters (From, To, Contact, Route, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name as written (quoted strings keep their quotes; see [`NameAddr::display_name`]).
    pub display: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// Header parameters after the URI (`;tag=..`, `;expires=..`, ...).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one element. `list` says the header is a comma list (callers split first).
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, &'static str> {
        let s = trim_ws(s);
        if s.is_empty() {
            return Err("empty address");
        }
        let b = s.as_bytes();
        let mut display = None;
        let mut i = 0;
        let bracketed;
        if b[0] == b'"' {
            let end = quoted_end(s).ok_or("unterminated quoted display name")?;
            display = Some(&s[..end]);
            i = end;
            while i < b.len() && is_ws(b[i]) {
                i += 1;
            }
            if i >= b.len() || b[i] != b'<' {
                return Err("quoted display name not followed by <URI>");
            }
            bracketed = true;
        } else if b[0] == b'<' {
            bracketed = true;
        } else {
            // display-name tokens followed by '<', or an addr-spec
            let mut j = 0;
            let mut seen_ws = false;
            loop {
                while j < b.len() && is_token(b[j]) {
                    j += 1;
                }
                let ws_start = j;
                while j < b.len() && is_ws(b[j]) {
                    j += 1;
                }
                if j > ws_start {
                    seen_ws = true;
                }
                if j >= b.len() {
                    break;
                }
                if b[j] == b'<' {
                    break;
                }
                if !is_token(b[j]) {
                    break;
                }
            }
            if j < b.len() && b[j] == b'<' {
                if j > 0 {
                    display = Some(trim_ws(&s[..j]));
                }
                i = j;
                bracketed = true;
            } else if j < b.len() && b[j] == b':' && !seen_ws {
                bracketed = false;
            } else {
                return Err("display name is not a token list or quoted string");
            }
        }
        let (uri_s, after) = if bracketed {
            let close = s[i..].find('>').ok_or("missing '>'")? + i;
            (&s[i + 1..close], &s[close + 1..])
        } else {
            // addr-spec: the URI ends at the first ';' (header params) or white space
            let end = s
                .bytes()
                .position(|c| c == b';' || is_ws(c))
                .unwrap_or(s.len());
            let u = &s[..end];
            if u.contains('?') || u.contains(',') {
                return Err("URI with '?' or ',' must be enclosed in <>");
            }
            (u, &s[end..])
        };
        if uri_s.bytes().any(is_ws) {
            return Err("white space inside <URI>");
        }
        let uri = Uri::parse(uri_s)?;
        validate_header_params(after)?;
        Ok(NameAddr {
            display,
            uri,
            params: Params::new(after),
        })
    }

    /// The display name with quotes and quoted-pair escapes removed.
    pub fn display_name(&self) -> Option<String> {
        let d = self.display?;
        if let Some(inner) = d.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
            let mut out = String::with_capacity(inner.len());
            let mut esc = false;
            for c in inner.chars() {
                if esc {
                    out.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else {
                    out.push(c);
                }
            }
            Some(out)
        } else {
            Some(d.to_string())
        }
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

/// One Via value (`sent-protocol LWS sent-by *( SEMI via-params )`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport (`UDP`, `TCP`, `TLS`, `SCTP`, or an extension), as written.
    pub transport: &'a str,
    /// sent-by host.
    pub host: Host<'a>,
    /// sent-by port.
    pub port: Option<u16>,
    /// via-params.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via element (already split off a comma list).
    pub fn parse(s: &'a str) -> Result<Via<'a>, &'static str> {
        let s = trim_ws(s);
        if s.is_empty() {
            return Err("empty Via element");
        }
        // protocol-name SLASH protocol-version SLASH transport, LWS allowed around '/'
        let mut rest = s;
        let mut parts = [""; 3];
        for (k, part) in parts.iter_mut().enumerate() {
            let r = trim_ws(rest);
            let end = r.bytes().position(|b| !is_token(b)).unwrap_or(r.len());
            *part = &r[..end];
            rest = trim_ws(&r[end..]);
            if k < 2 {
                rest = rest.strip_prefix('/').ok_or("malformed sent-protocol")?;
            }
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" || parts[2].is_empty() {
            return Err("sent-protocol is not SIP/2.0/<transport>");
        }
        // sent-by up to ';' (params) or end
        let end = find_unquoted(rest, b';').unwrap_or(rest.len());
        let sent_by: &str = trim_ws(&rest[..end]);
        let sent_by_nows: &str = sent_by;
        if sent_by_nows.bytes().any(is_ws) {
            // LWS around ':' in sent-by is allowed by the grammar (COLON); accept "host : port"
            let (h, p) = sent_by
                .split_once(':')
                .ok_or("white space inside sent-by")?;
            let (h, p) = (trim_ws(h), trim_ws(p));
            if h.bytes().any(is_ws) || p.bytes().any(is_ws) {
                return Err("white space inside sent-by");
            }
            let host = Host::parse(h)?;
            let port = p.parse::<u16>().map_err(|_| "invalid Via port")?;
            validate_header_params(&rest[end..])?;
            return Ok(Via {
                transport: parts[2],
                host,
                port: Some(port),
                params: Params::new(&rest[end..]),
            });
        }
        let (host, port) = parse_hostport(sent_by)?;
        let params = &rest[end..];
        validate_header_params(params)?;
        Ok(Via {
            transport: parts[2],
            host,
            port,
            params: Params::new(params),
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// The `rport` parameter: `Some(None)` when present without value.
    pub fn rport(&self) -> Option<Option<&'a str>> {
        self.params.get("rport")
    }

    /// `host[:port]` as written.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

/// CSeq (`1*DIGIT LWS Method`); the number fits 32 bits (RFC 3261 s8.1.1.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number.
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses a CSeq value.
    pub fn parse(s: &str) -> Result<CSeq, &'static str> {
        let s = trim_ws(s);
        let end = s
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(s.len());
        if end == 0 {
            return Err("CSeq number missing");
        }
        let seq = parse_u32(&s[..end]).ok_or("CSeq number larger than 2**32-1")?;
        let m = trim_ws(&s[end..]);
        if m.len() == s.len() - end {
            return Err("no white space between CSeq number and method");
        }
        if !is_token_str(m) {
            return Err("invalid CSeq method");
        }
        Ok(CSeq {
            seq,
            method: Method::parse(m),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Parses a decimal number (leading zeros allowed) that must fit in 32 bits.
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = s.trim_start_matches('0');
    if t.len() > 10 {
        return None;
    }
    if t.is_empty() {
        return Some(0);
    }
    t.parse::<u64>().ok().and_then(|v| u32::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(HeaderName::from_wire("v"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_wire("MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_wire("i"), HeaderName::CallId);
        assert_eq!(HeaderName::from_wire("X-Foo"), HeaderName::Other);
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.tag(), Some("98asjd8"));
        assert_eq!(n.display_name().as_deref(), Some("J Rosenberg \\\""));
        let n = NameAddr::parse("sip:j.user@example.com;tag=1").unwrap();
        assert_eq!(n.uri.raw, "sip:j.user@example.com");
        assert_eq!(n.tag(), Some("1"));
        let n = NameAddr::parse("Bob Smith <sip:bob@b.example>").unwrap();
        assert_eq!(n.display, Some("Bob Smith"));
        assert!(NameAddr::parse("Bell, Alexander <sip:a@b>").is_err());
        assert!(NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(NameAddr::parse("< sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
        assert!(NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;").is_err());
    }

    #[test]
    fn via_forms() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.rport(), Some(None));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
    }

    #[test]
    fn cseq() {
        assert_eq!(CSeq::parse("0009\r\n  INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("4294967295 MESSAGE").is_ok());
        assert!(CSeq::parse("4294967296 MESSAGE").is_err());
    }
}

//! URIs: `sip:`/`sips:` (RFC 3261 s19.1, s25.1), `tel:` (RFC 3966) and any other scheme
//! (`absoluteURI`, kept opaque). Borrowed views over the message text.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::chars::{all_escaped, is_password, is_unreserved, is_uri_header, is_uri_param, is_user};
use super::params::Params;

/// Why a URI was refused.
pub type UriError = &'static str;

/// The scheme of a URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other syntactically valid scheme (e.g. `im:`, `pres:`, `soap.beep:`).
    Other(&'a str),
}

impl Scheme<'_> {
    /// The scheme name as written (lower case for the known ones).
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A host: a domain name, an IPv4 address or a bracketed IPv6 reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A host name (not resolved, case preserved).
    Domain(&'a str),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written `[..]`).
    V6(Ipv6Addr),
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl<'a> Host<'a> {
    /// Parses `host` (RFC 3261 s25.1: hostname / IPv4address / IPv6reference).
    pub fn parse(s: &'a str) -> Result<Host<'a>, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or("unterminated IPv6 reference")?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::V6)
                .map_err(|_| "invalid IPv6 address");
        }
        if s.is_empty() {
            return Err("empty host");
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            if let Ok(a) = s.parse::<Ipv4Addr>() {
                return Ok(Host::V4(a));
            }
        }
        if s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            Ok(Host::Domain(s))
        } else {
            Err("invalid character in host name")
        }
    }

    /// The IP address if the host is a literal address.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::V4(a) => Some((*a).into()),
            Host::V6(a) => Some((*a).into()),
        }
    }
}

/// Splits `host[:port]`, handling IPv6 references.
pub(crate) fn parse_hostport(s: &str) -> Result<(Host<'_>, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => {
                let rest = &s[end + 1..];
                let port = match rest.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if rest.is_empty() => None,
                    None => return Err("garbage after IPv6 reference"),
                };
                (&s[..=end], port)
            }
            None => return Err("unterminated IPv6 reference"),
        }
    } else {
        match s.rfind(':') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err("invalid port");
            }
            Some(p.parse::<u16>().map_err(|_| "port out of range")?)
        }
        None => None,
    };
    Ok((Host::parse(host)?, port))
}

/// Splits `host[:port]` (public form for the resolver's static table).
pub fn parse_hostport_pub(s: &str) -> Option<(Host<'_>, Option<u16>)> {
    parse_hostport(s).ok()
}

/// A parsed URI borrowing from the message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The whole URI as written.
    pub raw: &'a str,
    /// Its scheme.
    pub scheme: Scheme<'a>,
    /// `user` of a SIP URI (still %-escaped) or the number of a `tel:` URI.
    pub user: Option<&'a str>,
    /// `password` of a SIP URI.
    pub password: Option<&'a str>,
    /// Host of a SIP URI (None for tel: and other schemes).
    pub host: Option<Host<'a>>,
    /// Port of a SIP URI.
    pub port: Option<u16>,
    /// URI parameters (`;name=value` list, sip and tel).
    pub params: Params<'a>,
    /// URI headers (the text after `?`), sip only.
    pub headers: Option<&'a str>,
    /// For other schemes: everything after the colon.
    pub opaque: &'a str,
}

impl<'a> Uri<'a> {
    /// Parses a URI. `sip`/`sips`/`tel` are checked against their grammar; other schemes only
    /// need a valid scheme name and no white space.
    pub fn parse(raw: &'a str) -> Result<Uri<'a>, UriError> {
        let colon = raw.find(':').ok_or("URI without scheme")?;
        let scheme_s = &raw[..colon];
        let rest = &raw[colon + 1..];
        if scheme_s.is_empty()
            || !scheme_s.as_bytes()[0].is_ascii_alphabetic()
            || !scheme_s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err("invalid URI scheme");
        }
        if raw
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b == b'<' || b == b'>' || b == b'"')
        {
            return Err("white space, control character, quote or angle bracket in URI");
        }
        let scheme = if scheme_s.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_s.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_s.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_s)
        };
        let mut uri = Uri {
            raw,
            scheme,
            user: None,
            password: None,
            host: None,
            port: None,
            params: Params::empty(),
            headers: None,
            opaque: rest,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => {
                let (userinfo, hostpart) = match rest.find('@') {
                    Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
                    None => (None, rest),
                };
                if let Some(ui) = userinfo {
                    let (user, pw) = match ui.find(':') {
                        Some(i) => (&ui[..i], Some(&ui[i + 1..])),
                        None => (ui, None),
                    };
                    if user.is_empty() || !all_escaped(user, is_user) {
                        return Err("invalid user part in SIP URI");
                    }
                    if let Some(pw) = pw {
                        if !all_escaped(pw, is_password) {
                            return Err("invalid password in SIP URI");
                        }
                    }
                    uri.user = Some(user);
                    uri.password = pw;
                }
                let (before_q, headers) = match hostpart.find('?') {
                    Some(q) => (&hostpart[..q], Some(&hostpart[q + 1..])),
                    None => (hostpart, None),
                };
                let (hp, params) = match before_q.find(';') {
                    Some(s) => (&before_q[..s], &before_q[s..]),
                    None => (before_q, ""),
                };
                let (host, port) = parse_hostport(hp)?;
                uri.host = Some(host);
                uri.port = port;
                uri.params = parse_uri_params(params)?;
                if let Some(h) = headers {
                    for hv in h.split('&') {
                        let (n, v) = hv.split_once('=').ok_or("URI header without '='")?;
                        if n.is_empty()
                            || !all_escaped(n, is_uri_header)
                            || !all_escaped(v, is_uri_header)
                        {
                            return Err("invalid URI header");
                        }
                    }
                    uri.headers = Some(h);
                }
            }
            Scheme::Tel => {
                let (num, params) = match rest.find(';') {
                    Some(s) => (&rest[..s], &rest[s..]),
                    None => (rest, ""),
                };
                let digits = num.strip_prefix('+').unwrap_or(num);
                if digits.is_empty()
                    || !digits.bytes().all(|b| {
                        b.is_ascii_hexdigit()
                            || matches!(b, b'*' | b'#' | b'-' | b'.' | b'(' | b')' | b'p' | b'w')
                    })
                {
                    return Err("invalid tel: number");
                }
                uri.user = Some(num);
                uri.params = parse_uri_params(params)?;
            }
            Scheme::Other(_) => {
                if rest.is_empty() {
                    return Err("empty URI after scheme");
                }
            }
        }
        Ok(uri)
    }

    /// A URI parameter: `Some(None)` for a flag (`;lr`), `Some(Some(v))` for `;name=v`.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params.get(name)
    }

    /// `transport` parameter, lower-cased comparison left to the caller.
    pub fn transport_param(&self) -> Option<&'a str> {
        self.param("transport").flatten()
    }

    /// `user@host` (or the number for tel:, the opaque part otherwise), without params.
    pub fn address_of_record(&self) -> String {
        match (self.scheme, self.user, self.host) {
            (Scheme::Sip | Scheme::Sips, Some(u), Some(h)) => format!("{u}@{h}"),
            (Scheme::Sip | Scheme::Sips, None, Some(h)) => h.to_string(),
            (Scheme::Tel, Some(u), _) => u.to_string(),
            _ => self.opaque.to_string(),
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// Checks `*( ";" uri-parameter )` and returns it as [`Params`].
fn parse_uri_params(s: &str) -> Result<Params<'_>, UriError> {
    if s.is_empty() {
        return Ok(Params::empty());
    }
    for p in s[1..].split(';') {
        let (n, v) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        if n.is_empty() || !all_escaped(n, is_uri_param) {
            return Err("invalid URI parameter name");
        }
        if let Some(v) = v {
            // values may be IPv6 references (maddr=[::1])
            if !all_escaped(v, |b| is_uri_param(b) || is_unreserved(b)) {
                return Err("invalid URI parameter value");
            }
        }
    }
    Ok(Params::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sip:alice:pw@[2001:db8::10]:5070;transport=tcp;lr?Subject=hi").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, Some(Host::V6("2001:db8::10".parse().unwrap())));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport_param(), Some("tcp"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers, Some("Subject=hi"));
    }

    #[test]
    fn tel_and_other() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(u.param("phone-context"), Some(Some("example.com")));
        let o = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(o.scheme, Scheme::Other("soap.beep"));
        assert!(Uri::parse("1abc:x").is_err());
        assert!(Uri::parse("sip:a b@c").is_err());
        assert!(Uri::parse("sip:user@[::1").is_err());
        assert!(Uri::parse("sip:user@host:99999").is_err());
        assert!(Uri::parse("sip:user@host;;").is_err());
    }
}

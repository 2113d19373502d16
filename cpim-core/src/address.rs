//! Addresses of the abstract model and of the protocols it maps onto.
//!
//! An [`Address`] names one user (optionally one instance of that user) in a
//! scheme-neutral way: the user part is kept *decoded* (no percent escapes, no
//! XEP-0106 escapes), so that the same identity compares equal whatever protocol it
//! came in by. Turning it back into the wire form of a protocol (percent-encoding for
//! SIP, XEP-0106 escaping for XMPP) is the job of the address-mapping module, which
//! implements RFC 7247 section 6.
//!
//! - `im:user@domain` (RFC 3860), `pres:user@domain` (RFC 3859)
//! - `sip:user@domain;gr=instance`, `sips:...` (RFC 3261, GRUU RFC 5627)
//! - `xmpp:local@domain/resource` (RFC 5122) and bare or full JIDs written without a scheme.

use std::fmt;

/// The URI scheme an address was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `im:` (RFC 3860)
    Im,
    /// `pres:` (RFC 3859)
    Pres,
    /// `sip:` (RFC 3261)
    Sip,
    /// `sips:` (RFC 3261)
    Sips,
    /// `xmpp:` (RFC 5122), or a JID written without a scheme
    Xmpp,
}

impl Scheme {
    /// The scheme name as written before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Im => "im",
            Scheme::Pres => "pres",
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Xmpp => "xmpp",
        }
    }

    fn from_name(name: &str) -> Option<Scheme> {
        Some(match name.to_ascii_lowercase().as_str() {
            "im" => Scheme::Im,
            "pres" => Scheme::Pres,
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "xmpp" => Scheme::Xmpp,
            _ => return None,
        })
    }
}

/// Why a string is not an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The scheme is not one of im, pres, sip, sips, xmpp.
    #[error("unsupported URI scheme {0:?}")]
    UnsupportedScheme(String),
    /// There is no domain after the `@` (or no domain at all).
    #[error("address has no domain")]
    MissingDomain,
    /// The domain contains characters no host name may contain.
    #[error("invalid domain {0:?}")]
    InvalidDomain(String),
    /// A percent escape is malformed or decodes to invalid UTF-8.
    #[error("invalid percent escape in {0:?}")]
    InvalidEscape(String),
    /// The user part is empty (`sip:@example.com`).
    #[error("empty user part")]
    EmptyUser,
    /// Longer than the limit this crate applies to any address (see [`MAX_ADDRESS_LEN`]).
    #[error("address longer than {MAX_ADDRESS_LEN} bytes")]
    TooLong,
}

/// Upper bound on the length of an address in any form, as a guard on input.
pub const MAX_ADDRESS_LEN: usize = 3071; // RFC 7622 s3.1: 1023 per part

/// One user, or one instance of one user, of an IM and presence system.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// The scheme it was written in.
    pub scheme: Scheme,
    /// The user part, decoded (no percent or XEP-0106 escapes). `None` for a
    /// domain-only address such as a server JID.
    pub user: Option<String>,
    /// The domain in the canonical form of [`crate::domain::canonical`] (lower case, no
    /// trailing dot, IDNA A-labels), so equal domains compare equal however written.
    pub domain: String,
    /// The instance: an XMPP resource or a SIP GRUU `gr` parameter (RFC 7247 s6.3).
    pub instance: Option<String>,
}

impl Address {
    /// A new address; the domain is put in canonical form ([`crate::domain`]; a value
    /// that is no domain is only lower-cased).
    pub fn new(scheme: Scheme, user: Option<&str>, domain: &str) -> Address {
        Address {
            scheme,
            user: user.map(str::to_owned),
            domain: crate::domain::canonical_or_raw(domain),
            instance: None,
        }
    }

    /// This address with the given instance (resource or GRUU).
    pub fn with_instance(mut self, instance: Option<&str>) -> Address {
        self.instance = instance.map(str::to_owned);
        self
    }

    /// The same identity without an instance (a bare JID, an address of record).
    pub fn bare(&self) -> Address {
        Address {
            instance: None,
            ..self.clone()
        }
    }

    /// The same identity in another scheme (e.g. `sip:` to `im:`).
    pub fn with_scheme(&self, scheme: Scheme) -> Address {
        Address {
            scheme,
            ..self.clone()
        }
    }

    /// True if both name the same user, ignoring scheme and instance.
    pub fn same_user(&self, other: &Address) -> bool {
        self.user == other.user && self.domain == other.domain
    }

    /// Parses `scheme:user@domain...`, or a JID without a scheme.
    ///
    /// SIP URI parameters other than `gr` and any SIP URI headers are dropped: an
    /// address names a user, not a route. The user part is percent-decoded for the
    /// URI schemes; a scheme-less JID is taken as it is (XEP-0106 unescaping belongs to
    /// the address mapping, which knows where the JID is homed).
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        if s.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        let s = s.trim();
        let s = s
            .strip_prefix('<')
            .and_then(|r| r.strip_suffix('>'))
            .unwrap_or(s);
        let (scheme, rest) = match s.split_once(':') {
            Some((name, rest)) if !name.contains('@') && !name.contains('/') => {
                match Scheme::from_name(name) {
                    Some(sc) => (sc, rest),
                    None => return Err(AddressError::UnsupportedScheme(name.to_owned())),
                }
            }
            _ => return parse_jid(s, Scheme::Xmpp),
        };
        match scheme {
            Scheme::Xmpp => {
                // RFC 5122: xmpp:node@domain/resource, optionally with an authority
                // (xmpp://auth@host/node@domain) and a query; percent-encoded.
                let rest = rest.strip_prefix("//").map_or(rest, |r| {
                    r.split_once('/').map(|(_, path)| path).unwrap_or("")
                });
                let rest = rest.split(['?', '#']).next().unwrap_or("");
                let decoded = percent_decode(rest)?;
                parse_jid(&decoded, Scheme::Xmpp)
            }
            Scheme::Im | Scheme::Pres => {
                // RFC 3860/3859: im:user@domain, optionally with ?headers.
                let rest = rest.split('?').next().unwrap_or("");
                let (user, domain) = split_user_domain(rest);
                finish(scheme, user.map(percent_decode).transpose()?, domain, None)
            }
            Scheme::Sip | Scheme::Sips => {
                let rest = rest.split('?').next().unwrap_or("");
                // The user part may itself contain ';' (RFC 4475 semiuri): split the
                // user off at the last '@' before any URI parameter of the host part.
                let (user, hostpart) = match rest.rfind('@') {
                    Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
                    None => (None, rest),
                };
                let mut params = hostpart.split(';');
                let hostport = params.next().unwrap_or("");
                let gr = params
                    .filter_map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        k.eq_ignore_ascii_case("gr").then_some(v)
                    })
                    .next()
                    .map(percent_decode)
                    .transpose()?;
                let host = strip_port(hostport);
                finish(scheme, user.map(percent_decode).transpose()?, host, gr)
            }
        }
    }
}

fn split_user_domain(s: &str) -> (Option<&str>, &str) {
    match s.rfind('@') {
        Some(i) => (Some(&s[..i]), &s[i + 1..]),
        None => (None, s),
    }
}

fn strip_port(hostport: &str) -> &str {
    if let Some(v6) = hostport.strip_prefix('[') {
        // Up to and including the ']'; an unclosed '[' is left as it is (no panic).
        return v6.find(']').map_or(hostport, |end| &hostport[..end + 2]);
    }
    match hostport.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hostport,
    }
}

fn parse_jid(s: &str, scheme: Scheme) -> Result<Address, AddressError> {
    // RFC 7622 s3.1: the domain ends at the first '/', the localpart at the first '@'
    // before that.
    let (without_res, resource) = match s.split_once('/') {
        Some((a, r)) => (a, Some(r.to_owned())),
        None => (s, None),
    };
    let (user, domain) = match without_res.split_once('@') {
        Some((u, d)) => (Some(u.to_owned()), d),
        None => (None, without_res),
    };
    finish(scheme, user, domain, resource)
}

fn finish(
    scheme: Scheme,
    user: Option<String>,
    domain: &str,
    instance: Option<String>,
) -> Result<Address, AddressError> {
    if domain.is_empty() {
        return Err(AddressError::MissingDomain);
    }
    if domain.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '@' | '/' | '<' | '>' | '"' | '\\')
    }) {
        return Err(AddressError::InvalidDomain(domain.to_owned()));
    }
    if user.as_deref() == Some("") {
        return Err(AddressError::EmptyUser);
    }
    let domain = crate::domain::canonical(domain)
        .map_err(|_| AddressError::InvalidDomain(domain.to_owned()))?
        .into_owned();
    Ok(Address {
        scheme,
        user,
        domain,
        instance: instance.filter(|i| !i.is_empty()),
    })
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String, AddressError> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| AddressError::InvalidEscape(s.to_owned()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| AddressError::InvalidEscape(s.to_owned()))
}

/// Percent-encodes every byte of `s` that `allowed` rejects (RFC 3986 style, upper-case hex).
pub fn percent_encode(s: &str, allowed: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if allowed(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(
                char::from_digit(u32::from(b >> 4), 16)
                    .unwrap()
                    .to_ascii_uppercase(),
            );
            out.push(
                char::from_digit(u32::from(b & 15), 16)
                    .unwrap()
                    .to_ascii_uppercase(),
            );
        }
    }
    out
}

/// The bytes written unescaped in a SIP `user`: RFC 3261 s25.1 unreserved and
/// user-unreserved, less `?` (which readers take as the start of URI headers).
pub fn sip_user_allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b';'
                | b'/'
        )
}

impl Address {
    /// The address as [`Display`](fmt::Display) writes it, without the instance (the
    /// text of [`Address::bare`], with no copy made).
    pub fn bare_display(&self) -> impl fmt::Display + '_ {
        struct Bare<'a>(&'a Address);
        impl fmt::Display for Bare<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write_to(f, false)
            }
        }
        Bare(self)
    }

    fn write_to(&self, f: &mut fmt::Formatter<'_>, with_instance: bool) -> fmt::Result {
        let instance = self.instance.as_ref().filter(|_| with_instance);
        match self.scheme {
            Scheme::Xmpp => {
                if let Some(u) = &self.user {
                    write!(f, "{u}@")?;
                }
                f.write_str(&self.domain)?;
                if let Some(r) = instance {
                    write!(f, "/{r}")?;
                }
                Ok(())
            }
            scheme => {
                write!(f, "{}:", scheme.as_str())?;
                if let Some(u) = &self.user {
                    write!(f, "{}@", percent_encode(u, sip_user_allowed))?;
                }
                f.write_str(&self.domain)?;
                if let Some(gr) = instance {
                    write!(
                        f,
                        ";gr={}",
                        percent_encode(gr, |b| b.is_ascii_alphanumeric()
                            || matches!(b, b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\''))
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Address {
    /// The canonical URI form. For `xmpp:` the JID is written without the scheme and
    /// without escaping; for the others the user part is percent-encoded where RFC 3261
    /// requires it and an instance is written as a `gr` parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f, true)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_display_writes_the_bare_address() {
        for s in [
            "sip:a%40b@sip.test;gr=urn:uuid:1",
            "xmpp:juliet@xmpp.test/balcony phone",
            "im:alice@sip.test",
            "xmpp:xmpp.test",
        ] {
            let a: Address = s.parse().unwrap();
            assert_eq!(a.bare_display().to_string(), a.bare().to_string(), "{s}");
            assert!(a.instance.is_none() || a.bare_display().to_string() != a.to_string());
        }
    }

    /// Issue 10: `sip.test.`, `SIP.Test` and the U-label of an IDN are one domain, so no
    /// spelling gets past a local-domain or anti-forging check.
    #[test]
    fn domain_spellings_parse_to_one_canonical_form() {
        for s in [
            "sip:eve@sip.test.",
            "sip:eve@SIP.Test:5060",
            "sip:eve@sip.test.:5060;transport=udp",
            "xmpp:eve@sip.test./r",
            "eve@SIP.TEST.",
            "im:eve@sip.test.",
        ] {
            assert_eq!(Address::parse(s).unwrap().domain, "sip.test", "{s}");
        }
        assert_eq!(
            Address::parse("xmpp:r@bücher.test").unwrap().domain,
            "xn--bcher-kva.test"
        );
        assert!(Address::parse("sip:eve@sip.test..").is_err());
        assert!(Address::parse("eve@.").is_err());
    }

    #[test]
    fn parses_each_scheme() {
        let a = Address::parse("im:fred@example.com").unwrap();
        assert_eq!(
            (a.scheme, a.user.as_deref(), a.domain.as_str()),
            (Scheme::Im, Some("fred"), "example.com")
        );
        let a = Address::parse("pres:fred@Example.COM").unwrap();
        assert_eq!(a.domain, "example.com");
        let a = Address::parse(
            "<sip:Juliet%20Capulet@example.com:5061;transport=tcp;gr=balcony?Subject=x>",
        )
        .unwrap();
        assert_eq!(a.scheme, Scheme::Sip);
        assert_eq!(a.user.as_deref(), Some("Juliet Capulet"));
        assert_eq!(a.instance.as_deref(), Some("balcony"));
        assert_eq!(a.domain, "example.com");
        let a = Address::parse("juliet@example.com/balcony").unwrap();
        assert_eq!(
            (a.scheme, a.instance.as_deref()),
            (Scheme::Xmpp, Some("balcony"))
        );
        let a = Address::parse("xmpp:romeo@montague.net/orchard").unwrap();
        assert_eq!(a.user.as_deref(), Some("romeo"));
        let a = Address::parse("sips:[2001:db8::10]:5061").unwrap();
        assert_eq!((a.user, a.domain.as_str()), (None, "[2001:db8::10]"));
    }

    #[test]
    fn sip_user_with_semicolon_and_at() {
        // RFC 4475 3.1.1.9: user part "user;par=u@example.net"
        let a = Address::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(a.user.as_deref(), Some("user;par=u@example.net"));
        assert_eq!(a.to_string(), "sip:user;par=u%40example.net@example.com");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            Address::parse("mailto:a@b"),
            Err(AddressError::UnsupportedScheme("mailto".into()))
        );
        assert_eq!(
            Address::parse("sip:alice@"),
            Err(AddressError::MissingDomain)
        );
        assert_eq!(
            Address::parse("sip:@example.com"),
            Err(AddressError::EmptyUser)
        );
        assert!(matches!(
            Address::parse("sip:a%zz@b"),
            Err(AddressError::InvalidEscape(_))
        ));
        assert!(matches!(
            Address::parse("sip:a@b c"),
            Err(AddressError::InvalidDomain(_))
        ));
        assert_eq!(
            Address::parse(&"a".repeat(5000)),
            Err(AddressError::TooLong)
        );
    }

    proptest::proptest! {
        #[test]
        fn sip_display_parse_round_trip(user in "\\PC{1,40}", gr in proptest::option::of("[a-zA-Z0-9 :@/]{1,10}")) {
            let a = Address::new(Scheme::Sip, Some(&user), "example.com").with_instance(gr.as_deref());
            let back = Address::parse(&a.to_string()).unwrap();
            proptest::prop_assert_eq!(back, a);
        }
    }
}

//! The canonical form of a domain name: the one spelling every authorization decision
//! compares in (is this one of the gateway's domains, which adapter owns it, may this
//! source speak for it).
//!
//! Spellings that name the same DNS domain must compare equal, or a peer gets past a
//! check by writing `SIP.Test`, `sip.test.` (RFC 1034 s3.1: the fully qualified form with
//! the root label) or a Unicode form of an IDN. The canonical form is:
//!
//! - ASCII lower case (RFC 4343: DNS names compare without case);
//! - one trailing dot removed (`sip.test.` is `sip.test`); a name that is only a dot, or
//!   ends in two, is refused;
//! - internationalized names in A-labels (IDNA2008 with UTS #46 mapping, RFC 5891 s5 /
//!   RFC 7622 s3.2: `bücher.test` becomes `xn--bcher-kva.test`), through the `idna` crate;
//!   the result then obeys the rules above (UTS #46 maps `。` to a dot, so `bücher.test。` is
//!   `xn--bcher-kva.test` and `bücher..test` is refused): the form is a fixed point;
//! - IPv4 addresses (`192.0.2.1`) kept as they are; IPv6 literals (`[2001:DB8:0::1]`) in
//!   their RFC 5952 form (`[2001:db8::1]`); anything else in brackets is refused.
//!
//! [`crate::Address`] stores its domain in this form, so every comparison of parsed
//! addresses is canonical; configured domain lists go through [`canonical`] once at
//! start ([`canonical_or_raw`] when an error is not wanted).

use std::borrow::Cow;

/// Why a string is not a domain name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// Empty, a lone dot, an empty label or a trailing `..`.
    #[error("empty domain or label in {0:?}")]
    Empty(String),
    /// Starts with `[` but is not an IPv6 address in brackets (RFC 3986 s3.2.2).
    #[error("not an IPv6 literal: {0:?}")]
    IpLiteral(String),
    /// IDNA processing (RFC 5891 / UTS #46) refused it.
    #[error("not a valid internationalized domain name: {0:?}")]
    Idna(String),
}

/// The canonical form of `domain` (see the module docs).
pub fn canonical(domain: &str) -> Result<Cow<'_, str>, DomainError> {
    let trimmed = domain.strip_suffix('.').unwrap_or(domain);
    if trimmed.is_empty() || trimmed.ends_with('.') || trimmed.starts_with('.') {
        return Err(DomainError::Empty(domain.to_owned()));
    }
    if let Some(inner) = trimmed.strip_prefix('[') {
        // An IPv6 literal (RFC 3986 s3.2.2 IP-literal): no labels, no IDNA; written in
        // the RFC 5952 form, so `[2001:DB8:0::1]` is `[2001:db8::1]`. Anything else in
        // brackets is not a domain (found by the `domain` fuzz target: `[` followed by
        // any text, non-ASCII included, was kept as it was).
        return inner
            .strip_suffix(']')
            .and_then(|a| a.parse::<std::net::Ipv6Addr>().ok())
            .map(|a| Cow::Owned(format!("[{a}]")))
            .ok_or_else(|| DomainError::IpLiteral(domain.to_owned()));
    }
    if trimmed.is_ascii() {
        if trimmed.contains("..") {
            return Err(DomainError::Empty(domain.to_owned()));
        }
        // ASCII names (including A-labels written as such) only fold case: IDNA
        // processing of an ASCII name would reject names DNS allows (underscores).
        return Ok(lower(trimmed, domain.len() != trimmed.len()));
    }
    let ascii = idna::domain_to_ascii(trimmed).map_err(|_| DomainError::Idna(domain.to_owned()))?;
    // UTS #46 maps other full stops (U+3002...) to '.' and keeps empty labels: the A-label
    // form goes through the ASCII rules too, so that the canonical form is a fixed point
    // (canonical(canonical(x)) == canonical(x)) and never holds an empty label.
    match canonical(&ascii) {
        Ok(c) => Ok(Cow::Owned(c.into_owned())),
        Err(_) => Err(DomainError::Empty(domain.to_owned())),
    }
}

fn lower(s: &str, changed: bool) -> Cow<'_, str> {
    if changed || s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// [`canonical`], or `domain` ASCII-lower-cased when it is not a valid domain (such a
/// value then matches nothing a parsed [`crate::Address`] can hold).
pub fn canonical_or_raw(domain: &str) -> String {
    canonical(domain).map_or_else(|_| domain.to_ascii_lowercase(), Cow::into_owned)
}

/// True if `a` and `b` name the same domain in canonical form; false if either is not a
/// domain.
pub fn same(a: &str, b: &str) -> bool {
    match (canonical(a), canonical(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_trailing_dot_fold_to_one_spelling() {
        for s in ["sip.test", "SIP.Test", "sip.test.", "Sip.TEST."] {
            assert_eq!(canonical(s).unwrap(), "sip.test", "{s}");
        }
        assert!(same("xmpp.test.", "XMPP.test"));
        assert!(!same("xmpp.test", "xmpp.test.evil"));
    }

    #[test]
    fn empty_labels_are_refused() {
        for s in ["", ".", "sip.test..", ".sip.test", "sip..test"] {
            assert!(canonical(s).is_err(), "{s:?}");
        }
        assert!(!same(".", "."));
    }

    /// RFC 5891 s5 / RFC 7622 s3.2: a U-label compares as its A-label.
    #[test]
    fn idn_becomes_a_labels() {
        assert_eq!(canonical("bücher.test").unwrap(), "xn--bcher-kva.test");
        assert_eq!(canonical("BÜCHER.test.").unwrap(), "xn--bcher-kva.test");
        assert!(same("bücher.test", "XN--BCHER-KVA.test"));
    }

    /// Found by the `domain` fuzz target: IDNA processing of a non-ASCII name with an
    /// empty label gave `!..xn-- \np-vjc`, a form the ASCII rules refuse (not a fixed
    /// point); and an ideographic full stop at the end became a trailing dot.
    #[test]
    fn idn_output_obeys_the_ascii_rules() {
        assert!(canonical("!.. \n\u{338}P").is_err());
        assert!(canonical("b\u{fc}cher..test").is_err());
        assert_eq!(
            canonical("b\u{fc}cher.test\u{3002}").unwrap(),
            "xn--bcher-kva.test"
        );
        assert!(canonical("b\u{fc}cher.test\u{3002}\u{3002}").is_err());
        for s in ["b\u{fc}cher.test", "x\u{3002}y", "\u{338}P"] {
            if let Ok(c) = canonical(s) {
                assert_eq!(canonical(&c).unwrap(), c, "{s:?}");
            }
        }
    }

    #[test]
    fn ip_literals_pass() {
        assert_eq!(canonical("192.0.2.1").unwrap(), "192.0.2.1");
        assert_eq!(canonical("[2001:DB8::1]").unwrap(), "[2001:db8::1]");
        assert_eq!(canonical("[2001:DB8:0:0::1]").unwrap(), "[2001:db8::1]");
        assert!(same("[::1]", "[0:0::1]."));
    }

    /// Found by the `domain` fuzz target: `[@\u{738}P~&` was kept as a "literal", non-ASCII
    /// and all.
    #[test]
    fn brackets_hold_an_ipv6_address_or_nothing() {
        for s in [
            "[@\u{738}P~&",
            "[",
            "[]",
            "[::1",
            "[evil.test]",
            "[192.0.2.1]",
            "[::1]x",
        ] {
            assert!(canonical(s).is_err(), "{s:?}");
        }
    }
}

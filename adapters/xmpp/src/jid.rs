//! JIDs on the wire and [`Address`]es in the model: XEP-0106 escaping of the localpart
//! (RFC 7247 s6.2 asks for it on every address the gateway maps into XMPP).
//!
//! `Address.user` holds the decoded user (`"john doe"`), the JID on the wire the escaped
//! form (`john\20doe@sip.example`).

use cpim_core::address::{Address, Scheme};

/// Why a JID is refused (answered with `<jid-malformed/>`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JidError {
    /// Empty, or an empty part (`@x`, `a@`, `x/`).
    #[error("empty JID part in {0:?}")]
    Empty(String),
    /// A part longer than 1023 bytes (RFC 7622 s3.1).
    #[error("JID part longer than 1023 bytes")]
    TooLong,
    /// A character the localpart or domainpart may not contain.
    #[error("invalid character {1:?} in JID {0:?}")]
    InvalidChar(String, char),
}

/// The characters XEP-0106 s4.2 escapes, with their escape.
const ESCAPES: [(char, &str); 10] = [
    (' ', "\\20"),
    ('"', "\\22"),
    ('&', "\\26"),
    ('\'', "\\27"),
    ('/', "\\2f"),
    (':', "\\3a"),
    ('<', "\\3c"),
    ('>', "\\3e"),
    ('@', "\\40"),
    ('\\', "\\5c"),
];

/// XEP-0106 s4.2: escapes a localpart. A backslash is only escaped where it would
/// otherwise start one of the ten escape sequences (s4.3).
pub fn escape_node(user: &str) -> String {
    let mut out = String::with_capacity(user.len() + 8);
    for (i, c) in user.char_indices() {
        if c == '\\' {
            if starts_escape(&user[i..]) {
                out.push_str("\\5c");
            } else {
                out.push('\\');
            }
            continue;
        }
        match ESCAPES.iter().find(|(e, _)| *e == c) {
            Some((_, esc)) => out.push_str(esc),
            None => out.push(c),
        }
    }
    out
}

fn starts_escape(s: &str) -> bool {
    ESCAPES
        .iter()
        .any(|(_, esc)| s.len() >= 3 && s[..3].eq_ignore_ascii_case(esc))
}

/// XEP-0106 s4.3: unescapes a localpart (only the ten defined sequences).
pub fn unescape_node(node: &str) -> String {
    let mut out = String::with_capacity(node.len());
    let mut i = 0;
    let b = node.as_bytes();
    while i < node.len() {
        if b[i] == b'\\' && i + 3 <= node.len() && node.is_char_boundary(i + 3) {
            if let Some((c, _)) = ESCAPES
                .iter()
                .find(|(_, esc)| node[i..i + 3].eq_ignore_ascii_case(esc))
            {
                out.push(*c);
                i += 3;
                continue;
            }
        }
        let c = node[i..].chars().next().expect("in bounds");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Parses a JID from the wire (`local@domain/resource`) into an `xmpp:` address with
/// the localpart unescaped and the domain lower-cased.
pub fn parse_jid(s: &str) -> Result<Address, JidError> {
    if s.is_empty() {
        return Err(JidError::Empty(s.to_owned()));
    }
    let (bare, resource) = match s.split_once('/') {
        Some((b, r)) => (b, Some(r)),
        None => (s, None),
    };
    let (local, domain) = match bare.split_once('@') {
        Some((l, d)) => (Some(l), d),
        None => (None, bare),
    };
    if domain.is_empty() || local == Some("") || resource == Some("") {
        return Err(JidError::Empty(s.to_owned()));
    }
    if [local.unwrap_or(""), domain, resource.unwrap_or("")]
        .iter()
        .any(|p| p.len() > 1023)
    {
        return Err(JidError::TooLong);
    }
    if let Some(l) = local {
        // RFC 7622 s3.3.1: these never appear unescaped in a localpart.
        if let Some(c) = l.chars().find(|c| {
            matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
                || c.is_control()
                || c.is_whitespace()
        }) {
            return Err(JidError::InvalidChar(s.to_owned(), c));
        }
    }
    if let Some(c) = domain.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '@' | '/' | '\\' | '<' | '>' | '"' | '\'' | '&')
    }) {
        return Err(JidError::InvalidChar(s.to_owned(), c));
    }
    if let Some(c) = resource.and_then(|r| r.chars().find(|c| c.is_control())) {
        return Err(JidError::InvalidChar(s.to_owned(), c));
    }
    let user = local.map(unescape_node);
    Ok(Address::new(Scheme::Xmpp, user.as_deref(), domain).with_instance(resource))
}

/// Writes an address as a JID: localpart XEP-0106-escaped, the instance as resource.
pub fn to_jid(a: &Address) -> String {
    let mut s = String::with_capacity(a.domain.len() + 32);
    if let Some(u) = &a.user {
        s.push_str(&escape_node(u));
        s.push('@');
    }
    s.push_str(&a.domain);
    if let Some(r) = &a.instance {
        s.push('/');
        s.push_str(r);
    }
    s
}

/// The bare JID of an address.
pub fn to_bare_jid(a: &Address) -> String {
    to_jid(&a.bare())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xep0106_examples() {
        // XEP-0106 s5 table (a selection).
        assert_eq!(escape_node("space cadet"), "space\\20cadet");
        assert_eq!(
            escape_node("call me \"ishmael\""),
            "call\\20me\\20\\22ishmael\\22"
        );
        assert_eq!(escape_node("at&t guy"), "at\\26t\\20guy");
        assert_eq!(escape_node("d'artagnan"), "d\\27artagnan");
        assert_eq!(escape_node("/.fanboy"), "\\2f.fanboy");
        assert_eq!(escape_node("::foo::"), "\\3a\\3afoo\\3a\\3a");
        assert_eq!(escape_node("<foo>"), "\\3cfoo\\3e");
        assert_eq!(escape_node("user@host"), "user\\40host");
        assert_eq!(escape_node("c:\\net"), "c\\3a\\net");
        assert_eq!(escape_node("c:\\\\net"), "c\\3a\\\\net");
        assert_eq!(escape_node("c:\\cool stuff"), "c\\3a\\cool\\20stuff");
        assert_eq!(escape_node("c:\\5commas"), "c\\3a\\5c5commas");
        assert_eq!(unescape_node("c\\3a\\5c5commas"), "c:\\5commas");
        assert_eq!(unescape_node("space\\20cadet"), "space cadet");
    }

    #[test]
    fn jid_parse_and_write() {
        let a = parse_jid("john\\20doe@SIP.Example/res 1").unwrap();
        assert_eq!(a.user.as_deref(), Some("john doe"));
        assert_eq!(a.domain, "sip.example");
        assert_eq!(a.instance.as_deref(), Some("res 1"));
        assert_eq!(to_jid(&a), "john\\20doe@sip.example/res 1");
        assert!(parse_jid("a b@x").is_err());
        assert!(parse_jid("@x").is_err());
        assert!(parse_jid("a@").is_err());
        assert!(parse_jid("a@x/").is_err());
        assert_eq!(parse_jid("x.test").unwrap().user, None);
    }

    proptest! {
        #[test]
        fn escape_round_trips(user in "[a-z \"&'/:<>@\\\\0-9]{1,20}") {
            let esc = escape_node(&user);
            prop_assert_eq!(unescape_node(&esc), user.clone());
            let a = Address::new(Scheme::Xmpp, Some(&user), "sip.example");
            let back = parse_jid(&to_jid(&a)).unwrap();
            prop_assert_eq!(back.user, Some(user));
        }
    }
}

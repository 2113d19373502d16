//! Character classes of the RFC 3261 s25.1 ABNF.

/// `token` characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
#[inline]
pub(crate) const fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// `unreserved` = alphanum / mark.
#[inline]
pub(crate) const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Characters allowed (unescaped) in the `user` part of a SIP URI.
#[inline]
pub(crate) const fn is_user(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// Characters allowed (unescaped) in the `password` part of a SIP URI.
#[inline]
pub(crate) const fn is_password(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

/// `paramchar` minus the escape: param-unreserved / unreserved.
#[inline]
pub(crate) const fn is_uri_param(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hnv-unreserved` / unreserved (URI header names and values).
#[inline]
pub(crate) const fn is_uri_header(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// `word` characters (Call-ID).
#[inline]
pub(crate) const fn is_word(b: u8) -> bool {
    is_token(b)
        || matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        )
}

/// Checks a run of characters of class `f` where `%HH` escapes are also allowed.
pub(crate) fn all_escaped(s: &str, f: fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else if f(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// Linear white space inside a header value (folding has been collapsed already, but CR
/// and LF are accepted too so that raw values also parse).
#[inline]
pub(crate) const fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn trim_ws(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_ws(c as u8))
}

pub(crate) fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert!(all_escaped("a%20b", is_user));
        assert!(!all_escaped("a%2", is_user));
        assert!(!all_escaped("a%", is_user));
        assert!(!all_escaped("a%zz", is_user));
        assert!(!all_escaped("a b", is_user));
    }
}

//! The escapes of RFC 3862 s3.2 in header values and quoted strings.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::grammar::{escape_len, is_tokenchar};

/// Decodes the escapes of RFC 3862 s3.2 (`\uXXXX`, `\b`, `\t`, `\n`, `\r`, `\"`, `\'`,
/// `\\`); a `\` that starts none of them is kept. UTF-16 surrogate pairs written as two
/// `\u` escapes are combined; a lone surrogate becomes U+FFFD.
pub fn decode_escapes(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        let Some(n) = escape_len(at) else {
            out.push('\\');
            rest = &at[1..];
            continue;
        };
        match at.as_bytes()[1] {
            b'u' => {
                let hi = u32::from_str_radix(&at[2..6], 16).unwrap_or(0xFFFD);
                let mut used = 6;
                let c = if (0xD800..0xDC00).contains(&hi) {
                    let lo = at
                        .get(6..)
                        .filter(|r| r.starts_with("\\u") && escape_len(r) == Some(6))
                        .and_then(|r| u32::from_str_radix(&r[2..6], 16).ok())
                        .filter(|lo| (0xDC00..0xE000).contains(lo));
                    match lo {
                        Some(lo) => {
                            used = 12;
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        }
                        None => None,
                    }
                } else {
                    char::from_u32(hi)
                };
                out.push(c.unwrap_or('\u{FFFD}'));
                rest = &at[used..];
                continue;
            }
            b'b' => out.push('\u{8}'),
            b't' => out.push('\t'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            other => out.push(char::from(other)),
        }
        rest = &at[n..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Escapes `s` for a header value (RFC 3862 s3.2): `\` and control characters.
pub fn encode_value(s: &str) -> Cow<'_, str> {
    encode_with(s, false)
}

fn encode_with(s: &str, quote: bool) -> Cow<'_, str> {
    let needs = |c: char| c == '\\' || c.is_control() || (quote && c == '"');
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' if quote => out.push_str("\\\""),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

pub(super) fn quote_string(s: &str) -> String {
    format!("\"{}\"", encode_with(s, true))
}

/// A display name as `1*( Token SP )` when it is made of tokens, else as a `String`.
pub(super) fn format_display_name(d: &str) -> String {
    if !d.is_empty()
        && d.split(' ')
            .all(|t| !t.is_empty() && t.chars().all(is_tokenchar))
    {
        d.to_owned()
    } else {
        quote_string(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpim::grammar::quoted_string_len;
    use crate::cpim::CpimMessage;

    #[test]
    fn escapes_decode_per_s3_2() {
        let s = "Subject: a\\u00e9\\tb\\\\c\\\"d \\q\r\nX: \\ud83d\\ude00\r\n\r\n\r\n";
        let m = CpimMessage::parse(s.as_bytes()).unwrap();
        assert_eq!(m.subject().as_deref(), Some("a\u{e9}\tb\\c\"d \\q"));
        assert_eq!(m.header("X").unwrap().value(), "\u{1F600}");
        assert_eq!(m.to_bytes(), s.as_bytes());
    }

    proptest::proptest! {
        #[test]
        fn escape_round_trip(s in "\\PC*|[\\x00-\\x1f\\\\\"]{0,10}") {
            let enc = encode_value(&s);
            proptest::prop_assert_eq!(decode_escapes(&enc), s.as_str());
            let q = quote_string(&s);
            proptest::prop_assert_eq!(quoted_string_len(&q), Some(q.len()));
        }
    }
}

//! The grammar of RFC 3862 s7: name and token characters, quoted strings and escapes,
//! and the values of the headers with a defined syntax (From, To, cc, DateTime, NS,
//! Require; RFC 3862 s4).

use std::borrow::Cow;

use super::escape::decode_escapes;
use super::header::{Header, NameAddr};
use super::CpimError;

/// `NAMECHAR = %x21 / %x23-27 / %x2a-2b / %x2d / %x5e-60 / %x7c / %x7e / ALPHA / DIGIT`
pub(super) fn is_namechar(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '!' | '#'..='\'' | '*' | '+' | '-' | '^'..='`' | '|' | '~')
}

/// `TOKENCHAR = NAMECHAR / "." / UCS-high`
pub(super) fn is_tokenchar(c: char) -> bool {
    is_namechar(c) || c == '.' || !c.is_ascii()
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_namechar)
}

/// `Header-name = [ Name-prefix "." ] Name`
pub(super) fn is_header_name(s: &str) -> bool {
    match s.split_once('.') {
        Some((p, n)) => is_name(p) && is_name(n),
        None => is_name(s),
    }
}

/// RFC 3066 `Language-Tag = Primary-subtag *( "-" Subtag )`.
pub(super) fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first = parts.next().unwrap_or("");
    (1..=8).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Length of a `String` (RFC 3862 s7) at the start of `s`, quotes included; `None` if
/// unterminated or with an invalid escape.
pub(super) fn quoted_string_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += escape_len(&s[i..])?,
            _ => i += 1,
        }
    }
    None
}

/// Length of a valid `Escape` at the start of `s` (which starts with `\`).
pub(super) fn escape_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    match b.get(1)? {
        b'u' => {
            let hex = b.get(2..6)?;
            hex.iter().all(u8::is_ascii_hexdigit).then_some(6)
        }
        b'b' | b't' | b'n' | b'r' | b'"' | b'\'' | b'\\' => Some(2),
        _ => None,
    }
}

pub(super) fn check_known_header(h: &Header<'_>, line: usize) -> Result<(), CpimError> {
    let v: &str = &h.value;
    let bad = |header: &'static str, reason: &'static str| CpimError::InvalidValue {
        line,
        header,
        reason,
    };
    if h.is("From") || h.is("To") || h.is("cc") {
        let header = if h.is("From") {
            "From"
        } else if h.is("To") {
            "To"
        } else {
            "cc"
        };
        parse_name_addr(v).map_err(|r| bad(header, r))?;
    } else if h.is("DateTime") {
        if !is_rfc3339_date_time(v) {
            return Err(bad("DateTime", "not an RFC 3339 date-time"));
        }
    } else if h.is("NS") {
        parse_ns(v).map_err(|r| bad("NS", r))?;
    } else if h.is("Require")
        && (v.is_empty() || !v.split(',').all(|n| is_header_name(n.trim_matches(' '))))
    {
        return Err(bad(
            "Require",
            "expected a comma-separated list of header names",
        ));
    }
    Ok(())
}

/// `[ Formal-name ] "<" URI ">"`, `Formal-name = 1*( Token SP ) / String`.
pub(super) fn parse_name_addr(v: &str) -> Result<NameAddr<'_>, &'static str> {
    let (display, rest) = if v.starts_with('"') {
        let n = quoted_string_len(v).ok_or("unterminated quoted display name or invalid escape")?;
        let d = decode_escapes(&v[1..n - 1]);
        let rest = &v[n..];
        (Some(d), rest.strip_prefix(' ').unwrap_or(rest))
    } else if v.starts_with('<') {
        (None, v)
    } else {
        let lt = v.find('<').ok_or("missing '<' before the URI")?;
        let name = &v[..lt];
        // 1*( Token SP ): tokens separated and followed by single spaces.
        let Some(words) = name.strip_suffix(' ') else {
            return Err("display name must be followed by a space");
        };
        if !words
            .split(' ')
            .all(|t| !t.is_empty() && t.chars().all(is_tokenchar))
        {
            return Err("display name has characters that need a quoted string");
        }
        (Some(Cow::Borrowed(words)), &v[lt..])
    };
    let inner = rest
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .ok_or("URI must be enclosed in '<' and '>' and end the value")?;
    check_uri(inner)?;
    Ok(NameAddr {
        display,
        uri: inner,
    })
}

fn check_uri(u: &str) -> Result<(), &'static str> {
    if u.is_empty() {
        return Err("empty URI");
    }
    if u.chars()
        .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
    {
        return Err("URI contains white space, '<', '>' or '\"'");
    }
    let Some((scheme, _)) = u.split_once(':') else {
        return Err("URI has no scheme");
    };
    let mut sc = scheme.chars();
    if !sc.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !sc.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err("URI has an invalid scheme");
    }
    Ok(())
}

/// `NS: [ Name-prefix SP ] "<" URI ">"` (RFC 3862 s4.6); returns (prefix, uri).
pub(super) fn parse_ns(v: &str) -> Result<(Option<&str>, &str), &'static str> {
    let (prefix, rest) = match v.find('<') {
        Some(0) => (None, v),
        Some(i) => {
            let p = v[..i]
                .strip_suffix(' ')
                .ok_or("prefix must be followed by a space")?;
            if !is_name(p) {
                return Err("invalid namespace prefix");
            }
            (Some(p), &v[i..])
        }
        None => return Err("missing '<' before the namespace URI"),
    };
    let uri = rest
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .ok_or("URI must be enclosed in '<' and '>' and end the value")?;
    check_uri(uri)?;
    Ok((prefix, uri))
}

/// RFC 3339 s5.6 `date-time` (T and Z in either case).
fn is_rfc3339_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let num = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    if !(1..=12).contains(&num(5))
        || !(1..=31).contains(&num(8))
        || num(11) > 23
        || num(14) > 59
        || num(17) > 60
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit())
                && (h1 - b'0') * 10 + (h2 - b'0') <= 23
                && (m1 - b'0') * 10 + (m2 - b'0') <= 59
        }
        _ => false,
    }
}

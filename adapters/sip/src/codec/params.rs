//! `;name[=value]` parameter lists (URI parameters and header parameters, RFC 3261 s25.1).

use super::chars::{is_token, trim_ws};

/// A borrowed parameter list, as written, starting with `;` (or empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    pub(crate) const fn empty() -> Params<'static> {
        Params { raw: "" }
    }

    pub(crate) fn new(raw: &'a str) -> Params<'a> {
        Params { raw }
    }

    /// The list as written (starts with `;` unless empty).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// True if there is no parameter.
    pub fn is_empty(&self) -> bool {
        trim_ws(self.raw).is_empty()
    }

    /// Iterates `(name, value)`; white space around names and values is removed, quoted
    /// values keep their quotes.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter { rest: self.raw }
    }

    /// Looks a parameter up by name (case-insensitive): `Some(None)` for a flag.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Iterator over a [`Params`] list.
#[derive(Clone, Debug)]
pub struct ParamIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = trim_ws(self.rest);
            let s = s.strip_prefix(';')?;
            let end = find_unquoted(s, b';').unwrap_or(s.len());
            let item = &s[..end];
            self.rest = &s[end..];
            let item = trim_ws(item);
            if item.is_empty() {
                continue;
            }
            return Some(match item.find('=') {
                Some(eq) => (trim_ws(&item[..eq]), Some(trim_ws(&item[eq + 1..]))),
                None => (item, None),
            });
        }
    }
}

/// Position of the first `needle` outside a quoted string (quoted-pair aware).
pub(crate) fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quoted = false;
    while i < b.len() {
        let c = b[i];
        if quoted {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                quoted = false;
            }
        } else if c == b'"' {
            quoted = true;
        } else if c == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Validates a header parameter list (`*( SEMI generic-param )`), where
/// `generic-param = token [ EQUAL gen-value ]`, `gen-value = token / host / quoted-string`.
pub(crate) fn validate_header_params(s: &str) -> Result<(), &'static str> {
    let mut rest = trim_ws(s);
    while !rest.is_empty() {
        let r = rest
            .strip_prefix(';')
            .ok_or("expected ';' before parameter")?;
        let end = find_unquoted(r, b';').unwrap_or(r.len());
        let item = trim_ws(&r[..end]);
        rest = trim_ws(&r[end..]);
        if item.is_empty() {
            return Err("empty parameter");
        }
        let (name, value) = match item.find('=') {
            Some(eq) => (trim_ws(&item[..eq]), Some(trim_ws(&item[eq + 1..]))),
            None => (item, None),
        };
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err("invalid parameter name");
        }
        if let Some(v) = value {
            if v.starts_with('"') {
                let end = quoted_end(v).ok_or("unterminated quoted string in parameter")?;
                if end != v.len() {
                    return Err("garbage after quoted parameter value");
                }
            } else if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| is_token(b) || matches!(b, b'[' | b']' | b':'))
            {
                return Err("invalid parameter value");
            }
        }
    }
    Ok(())
}

/// Given text starting with `"`, returns the index just past the closing quote.
pub(crate) fn quoted_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    debug_assert!(b.first() == Some(&b'"'));
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterate_and_get() {
        let p = Params::new(" ;  tag    = 1918 ; lr ;x=\"a;b\"");
        let v: Vec<_> = p.iter().collect();
        assert_eq!(
            v,
            vec![("tag", Some("1918")), ("lr", None), ("x", Some("\"a;b\""))]
        );
        assert_eq!(p.get("TAG"), Some(Some("1918")));
        assert_eq!(p.get("nope"), None);
    }

    #[test]
    fn validate() {
        assert!(validate_header_params(";branch=z9hG4bK1;rport").is_ok());
        assert!(validate_header_params(";received=[2001:db8::1]").is_ok());
        assert_eq!(validate_header_params(";;"), Err("empty parameter"));
        assert!(validate_header_params(";a=\"unterminated").is_err());
    }
}

//! The reversible mapping between CPIM user parts and IRC nicknames.
//!
//! A CPIM user shown on IRC (a "puppet") needs a nickname. IRC allows only
//! `letter / special` first and `letter / digit / special / "-"` after (RFC 2812
//! s2.3.1), compares case-insensitively with `{}|^` equal to `[]\~` (s2.2), and limits the
//! length. [`escape`] keeps ASCII letters, digits, `-` and `_` and writes every other
//! byte of the UTF-8 user part as `` ` `` followed by two lower-case hex digits; a digit
//! or `-` in first position is escaped too. The bracket-like specials are escaped
//! because they are case-equivalent to each other, which would merge users that differ
//! only in them. [`unescape`] reverses it (hex digits in either case, since the server
//! may hand the nickname back in another case).
//!
//! The one loss IRC imposes: users that differ only in ASCII letter case map to nicks
//! IRC considers equal. The adapter then gives the later one no puppet: its messages go
//! through the relay bot (see `adapter.rs`).

const ESC: char = '`';

/// The nickname body for a user part (no length check; see [`escape_within`]).
pub fn escape(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for (i, c) in user.char_indices() {
        let plain =
            c.is_ascii_alphabetic() || c == '_' || (i > 0 && (c.is_ascii_digit() || c == '-'));
        if plain {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push(ESC);
                out.push(hex(b >> 4));
                out.push(hex(b & 15));
            }
        }
    }
    out
}

/// [`escape`], or `None` when the nickname would be longer than `max_len`.
pub fn escape_within(user: &str, max_len: usize) -> Option<String> {
    let n = escape(user);
    (!n.is_empty() && n.len() <= max_len).then_some(n)
}

fn hex(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// The user part for a nickname made by [`escape`]; `None` if it is not such a
/// nickname (a bad escape, or bytes that are not UTF-8).
pub fn unescape(nick: &str) -> Option<String> {
    let b = nick.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == ESC as u8 {
            let h = b.get(i + 1..i + 3)?;
            let h = std::str::from_utf8(h).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{casefold, is_valid_nick};
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("j.doe"), "j`2edoe");
        assert_eq!(escape("1st"), "`31st");
        assert_eq!(escape("a[b]"), "a`5bb`5d");
        assert_eq!(escape("x`y"), "x`60y");
        assert_eq!(escape("é"), "`c3`a9");
        assert_eq!(unescape("J`2EDOE").as_deref(), Some("J.DOE"));
        assert_eq!(unescape("bad`z"), None);
        assert_eq!(unescape("bad`ff"), None); // not UTF-8
        assert_eq!(escape_within("averyveryverylongname", 9), None);
    }

    proptest! {
        #[test]
        fn escape_round_trips_and_is_a_valid_nick(user in "\\PC{1,12}") {
            let n = escape(&user);
            prop_assert!(is_valid_nick(&n, usize::MAX), "{n:?} is not a valid nick");
            prop_assert_eq!(unescape(&n), Some(user.clone()));
            // IRC may hand it back case-folded: unescaping still recovers it up to ASCII case.
            let back = unescape(&casefold(&n)).unwrap();
            prop_assert!(back.eq_ignore_ascii_case(&user));
        }

        #[test]
        fn casefold_collisions_only_between_ascii_case_variants(a in "[a-zA-Z0-9.\\[\\]{}|^~\\\\-]{1,8}", b in "[a-zA-Z0-9.\\[\\]{}|^~\\\\-]{1,8}") {
            if casefold(&escape(&a)) == casefold(&escape(&b)) {
                prop_assert!(a.eq_ignore_ascii_case(&b));
            }
        }
    }
}

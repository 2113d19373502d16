//! The XML 1.0 `Char` production (s2.2) and escaping of character data and attribute
//! values, so that nothing forbidden is ever sent.

use std::borrow::Cow;

/// The XML 1.0 `Char` production (s2.2):
/// `#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]`.
#[inline]
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// The byte offset and value of the first character XML 1.0 forbids, if any.
pub fn find_invalid_char(s: &str) -> Option<(usize, char)> {
    // Fast path on bytes: forbidden characters are C0 controls other than tab, LF and
    // CR (bytes below 0x20) and U+FFFE/U+FFFF (EF BF BE / EF BF BF).
    let bytes = s.as_bytes();
    // A branch-free pass the compiler vectorizes; the exact scan runs only when it
    // finds a candidate (a control character, or 0xEF which also starts U+F000-U+FFFD).
    let candidate = bytes.iter().fold(false, |acc, &b| {
        acc | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0xEF)
    });
    if !candidate {
        return None;
    }
    for (i, &b) in bytes.iter().enumerate() {
        if (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
            || (b == 0xEF
                && bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)))
        {
            let c = s[i..].chars().next().unwrap_or('\0');
            return Some((i, c));
        }
    }
    None
}

/// `s` without the characters XML 1.0 forbids (borrowed when there are none).
pub fn strip_invalid_chars(s: &str) -> Cow<'_, str> {
    if find_invalid_char(s).is_none() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

/// Appends `s` escaped as character data. Characters XML 1.0 forbids are dropped;
/// `\r` is written as `&#xD;` so that it survives end-of-line normalization.
pub fn escape_text_into(out: &mut String, s: &str) {
    escape_into(out, s, false);
}

/// Appends `s` escaped for a double-quoted attribute value. Tab, LF and CR are
/// written as character references so that attribute normalization keeps them.
pub fn escape_attr_into(out: &mut String, s: &str) {
    escape_into(out, s, true);
}

fn escape_into(out: &mut String, s: &str, attr: bool) {
    // Fast path: most text has nothing to escape or drop. One pass over the bytes that
    // the compiler vectorizes; the character loop below runs only when it finds a
    // candidate (markup, a control character, or 0xEF, which starts U+FFFE/U+FFFF).
    let special = s.as_bytes().iter().fold(false, |acc, &b| {
        acc | (b == b'&') | (b == b'<') | (b == b'>') | (b == b'"') | (b < 0x20) | (b == 0xEF)
    });
    if !special {
        out.push_str(s);
        return;
    }
    let mut last = 0;
    for (i, c) in s.char_indices() {
        let rep = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' if attr => "&quot;",
            '\t' if attr => "&#x9;",
            '\n' if attr => "&#xA;",
            '\r' => "&#xD;",
            c if !is_xml_char(c) => "",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + c.len_utf8();
    }
    out.push_str(&s[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{parse, Writer};

    #[test]
    fn char_checks_and_escaping() {
        assert!(is_xml_char('\t') && is_xml_char('\u{10FFFF}') && is_xml_char('\u{E000}'));
        assert!(
            !is_xml_char('\u{0}')
                && !is_xml_char('\u{1F}')
                && !is_xml_char('\u{FFFE}')
                && !is_xml_char('\u{FFFF}')
        );
        assert_eq!(find_invalid_char("ab\u{7}c"), Some((2, '\u{7}')));
        assert_eq!(find_invalid_char("a\u{FFFF}"), Some((1, '\u{FFFF}')));
        assert_eq!(find_invalid_char("é\u{FFFD}\n"), None);
        assert_eq!(strip_invalid_chars("a\u{0}b\u{FFFE}c"), "abc");
        let mut s = String::new();
        escape_text_into(&mut s, "a<b>&c\r\n\u{1}\"");
        assert_eq!(s, "a&lt;b&gt;&amp;c&#xD;\n\"");
        let mut s = String::new();
        escape_attr_into(&mut s, "\"x\"\t\n");
        assert_eq!(s, "&quot;x&quot;&#x9;&#xA;");
        // The fast path (nothing to escape) and the cases that must leave it: 0xEF starts
        // both allowed characters (U+F000) and forbidden ones (U+FFFE).
        let mut s = String::from("<");
        escape_text_into(&mut s, "plain é \u{F000} 'quoted' text");
        assert_eq!(s, "<plain é \u{F000} 'quoted' text");
        let mut s = String::new();
        escape_text_into(&mut s, "a\u{FFFE}b\u{F000}");
        assert_eq!(s, "ab\u{F000}");
        let mut s = String::new();
        escape_attr_into(&mut s, "tab\there");
        assert_eq!(s, "tab&#x9;here");
        // What the writer escapes, the reader restores.
        let mut w = Writer::new();
        w.open("a")
            .attr("v", " \t\r\n\"<&'")
            .text("x\r\ny<&>]]>")
            .close();
        let e = parse(w.finish().as_bytes()).unwrap();
        assert_eq!(e.attr("v"), Some(" \t\r\n\"<&'"));
        assert_eq!(e.text(), "x\r\ny<&>]]>");
    }
}

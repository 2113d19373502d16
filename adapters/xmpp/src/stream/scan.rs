//! The tokenizer of [`super::StreamParser`]: finds where the next token of a restricted
//! XML stream ends, resuming where the previous call stopped.
//!
//! A token arrives in pieces (a peer may send a start tag one byte per read). The scan
//! state of an unfinished token (how far it was examined, and inside a start tag which
//! quote is open) is kept between calls, so every byte is examined a bounded number of
//! times whatever the chunking: the work is linear in the input, never quadratic
//! ([`Scanner::examined`] counts it). The caller must only append to the pending input
//! between calls that returned `Ok(None)`, and must consume the token returned otherwise.

use std::ops::Range;

use super::StreamError;

/// A token; ranges are relative to the scanned slice.
pub(super) enum Token {
    Text(Range<usize>),
    CData(Range<usize>),
    Decl,
    Start(Range<usize>, bool),
    End(Range<usize>),
}

const CDATA: &[u8] = b"<![CDATA[";

/// Resumable scan state of the token at the start of the pending input.
#[derive(Debug, Default)]
pub(super) struct Scanner {
    /// Bytes of the unfinished token already examined (offset into the pending input).
    resume: usize,
    /// Inside an unfinished start tag: the quote of the open attribute value, or 0.
    quote: u8,
    /// Bytes examined in total since the parser was created.
    examined: u64,
}

impl Scanner {
    /// Bytes examined in total: linear in the input.
    pub(super) fn examined(&self) -> u64 {
        self.examined
    }

    /// Finds the next complete token at the start of `b` (not empty): `(length, token)`,
    /// or `None` if more bytes are needed.
    pub(super) fn scan(&mut self, b: &[u8]) -> Result<Option<(usize, Token)>, StreamError> {
        let r = self.scan_from(b);
        if !matches!(r, Ok(None)) {
            self.resume = 0;
            self.quote = 0;
        }
        r
    }

    /// Looks for `needle` in `b`, starting at `from` but never re-examining what an
    /// earlier call examined (except the `needle.len() - 1` bytes a match may straddle).
    fn find(&mut self, b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
        let start = from.max(self.resume.saturating_sub(needle.len() - 1));
        if start >= b.len() {
            return None;
        }
        let hay = &b[start..];
        let found = memchr::memmem::find(hay, needle);
        self.examined += found.map_or(hay.len(), |i| i + needle.len()) as u64;
        if found.is_none() {
            self.resume = b.len();
        }
        found.map(|i| start + i)
    }

    fn scan_from(&mut self, b: &[u8]) -> Result<Option<(usize, Token)>, StreamError> {
        if b[0] != b'<' {
            // Text is only complete at the next '<'.
            let Some(end) = self.find(b, 0, b"<") else {
                return Ok(None);
            };
            return Ok(Some((end, Token::Text(0..end))));
        }
        if b.len() < 2 {
            return Ok(None);
        }
        match b[1] {
            b'?' => {
                // Only the XML declaration is allowed: refuse anything else at once rather
                // than waiting for a `?>` that may never come.
                let n = b.len().min(5);
                if b[2..n] != b"xml"[..n - 2] {
                    return Err(StreamError::Restricted(
                        "processing instructions are not allowed".into(),
                    ));
                }
                // Search after `<?`: in `<?>` the `?` must not close its own opening.
                let Some(end) = self.find(b, 2, b"?>") else {
                    return Ok(None);
                };
                let body = &b[2..end];
                if !(body.starts_with(b"xml ") || body == b"xml") {
                    return Err(StreamError::Restricted(
                        "processing instructions are not allowed".into(),
                    ));
                }
                Ok(Some((end + 2, Token::Decl)))
            }
            b'!' => {
                let n = b.len().min(CDATA.len());
                if b[..n] == CDATA[..n] {
                    if b.len() < CDATA.len() {
                        return Ok(None);
                    }
                    let Some(end) = self.find(b, CDATA.len(), b"]]>") else {
                        return Ok(None);
                    };
                    return Ok(Some((end + 3, Token::CData(CDATA.len()..end))));
                }
                if b.len() >= 4 && &b[..4] == b"<!--" {
                    return Err(StreamError::Restricted("comments are not allowed".into()));
                }
                if b.len() < 4 && b"<!--".starts_with(b) {
                    return Ok(None);
                }
                Err(StreamError::Restricted(
                    "document type declarations are not allowed".into(),
                ))
            }
            b'/' => {
                let Some(end) = self.find(b, 2, b">") else {
                    return Ok(None);
                };
                Ok(Some((end + 1, Token::End(2..end))))
            }
            _ => self.start_tag(b),
        }
    }

    /// A start tag: ends at the first `>` outside a quoted attribute value.
    fn start_tag(&mut self, b: &[u8]) -> Result<Option<(usize, Token)>, StreamError> {
        let from = self.resume.max(1);
        let mut quote = self.quote;
        for (i, &c) in b.iter().enumerate().skip(from) {
            self.examined += 1;
            if quote != 0 {
                if c == quote {
                    quote = 0;
                } else if c == b'<' {
                    return Err(StreamError::NotWellFormed(
                        "'<' in an attribute value".into(),
                    ));
                }
                continue;
            }
            match c {
                b'"' | b'\'' => quote = c,
                b'<' => return Err(StreamError::NotWellFormed("'<' inside a tag".into())),
                b'>' => {
                    let empty = b[i - 1] == b'/' && i >= 2;
                    let inner = if empty { 1..i - 1 } else { 1..i };
                    return Ok(Some((i + 1, Token::Start(inner, empty))));
                }
                _ => {}
            }
        }
        self.resume = b.len();
        self.quote = quote;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` one byte at a time, as the parser does (the pending input grows, a
    /// found token is consumed), and returns the tokens' lengths and the work done.
    fn drip(input: &[u8]) -> (Vec<usize>, u64) {
        let mut s = Scanner::default();
        let mut start = 0;
        let mut lens = Vec::new();
        for end in 1..=input.len() {
            while start < end {
                match s.scan(&input[start..end]).expect("valid input") {
                    Some((n, _)) => {
                        lens.push(n);
                        start += n;
                    }
                    None => break,
                }
            }
        }
        (lens, s.examined())
    }

    #[test]
    fn tokens_split_anywhere_are_found_with_linear_work() {
        let big = "v".repeat(100_000);
        let cases = [
            format!("<a x='{big}' y=\"1>2\">"),
            format!("<a x='1'{}/>", " ".repeat(100_000)),
            format!("{big}<"),
            format!("<![CDATA[{big}]]]>"),
            format!("</{big}>"),
            format!("<?xml version='1.0' {big}?>"),
        ];
        for c in &cases {
            let (lens, work) = drip(c.as_bytes());
            let expect = if c.ends_with('<') {
                c.len() - 1
            } else {
                c.len()
            };
            assert_eq!(lens.first(), Some(&expect), "{}", &c[..20]);
            // At worst a byte is examined once per byte of the needle a match could
            // straddle (`]]>`): three times.
            assert!(
                work <= 3 * c.len() as u64,
                "{} bytes examined for a {}-byte token",
                work,
                c.len()
            );
        }
    }

    #[test]
    fn a_quote_open_across_reads_keeps_hiding_gt() {
        let input = b"<a x='>>>' y=\">'>\">rest";
        let (lens, _) = drip(input);
        assert_eq!(lens.first(), Some(&(input.len() - 4)));
    }
}

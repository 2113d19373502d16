//! Newline-delimited JSON framing (sans-IO).
//!
//! A frame is the bytes up to a `\n` (a `\r` before it is dropped). A line longer than
//! the limit is reported once as [`FrameError::TooLarge`] and skipped up to its newline,
//! after which decoding goes on: an oversize frame does not cost the session.

use crate::FrameError;

/// Splits a byte stream into lines, with a length limit per line.
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    max: usize,
    /// Skipping the rest of an oversize line.
    discarding: bool,
}

impl LineDecoder {
    /// A decoder refusing lines longer than `max` bytes (without the newline).
    pub fn new(max: usize) -> LineDecoder {
        LineDecoder {
            buf: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// Feeds `input` and calls `on_frame` for each complete line (empty lines are
    /// skipped) or oversize line.
    pub fn feed(&mut self, input: &[u8], mut on_frame: impl FnMut(Result<&[u8], FrameError>)) {
        let mut rest = input;
        while !rest.is_empty() {
            match memchr_nl(rest) {
                Some(i) => {
                    let (line, tail) = (&rest[..i], &rest[i + 1..]);
                    rest = tail;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if self.buf.len() + line.len() > self.max + 1 {
                        self.buf.clear();
                        on_frame(Err(FrameError::TooLarge { limit: self.max }));
                        continue;
                    }
                    let whole: &[u8] = if self.buf.is_empty() {
                        line
                    } else {
                        self.buf.extend_from_slice(line);
                        &self.buf
                    };
                    let whole = whole.strip_suffix(b"\r").unwrap_or(whole);
                    if whole.len() > self.max {
                        on_frame(Err(FrameError::TooLarge { limit: self.max }));
                    } else if !whole.iter().all(u8::is_ascii_whitespace) {
                        on_frame(Ok(whole));
                    }
                    self.buf.clear();
                }
                None => {
                    if !self.discarding {
                        if self.buf.len() + rest.len() > self.max + 1 {
                            self.buf.clear();
                            self.discarding = true;
                            on_frame(Err(FrameError::TooLarge { limit: self.max }));
                        } else {
                            self.buf.extend_from_slice(rest);
                        }
                    }
                    rest = &[];
                }
            }
        }
    }

    /// Bytes of an incomplete line held back.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(d: &mut LineDecoder, input: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
        let mut out = Vec::new();
        d.feed(input, |r| out.push(r.map(<[u8]>::to_vec)));
        out
    }

    #[test]
    fn splits_lines_across_reads() {
        let mut d = LineDecoder::new(100);
        assert!(collect(&mut d, b"{\"a\"").is_empty());
        let out = collect(&mut d, b":1}\r\n\n{}\n{");
        assert_eq!(out, vec![Ok(b"{\"a\":1}".to_vec()), Ok(b"{}".to_vec())]);
        assert_eq!(d.pending(), 1);
    }

    #[test]
    fn oversize_line_is_reported_once_and_skipped() {
        let mut d = LineDecoder::new(8);
        let mut out = collect(&mut d, &[b'x'; 20]);
        out.extend(collect(&mut d, &[b'y'; 20]));
        out.extend(collect(&mut d, b"zz\n{}\n"));
        assert_eq!(
            out,
            vec![Err(FrameError::TooLarge { limit: 8 }), Ok(b"{}".to_vec())]
        );
        // in one piece
        let out = collect(&mut d, b"0123456789abc\nok\n");
        assert_eq!(
            out,
            vec![Err(FrameError::TooLarge { limit: 8 }), Ok(b"ok".to_vec())]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_chunking_gives_the_same_lines(lines in proptest::collection::vec("[a-z{}\":]{1,20}", 1..8), cut in 1usize..30) {
            let mut stream = Vec::new();
            for l in &lines { stream.extend_from_slice(l.as_bytes()); stream.push(b'\n'); }
            let mut d = LineDecoder::new(64);
            let mut got = Vec::new();
            for chunk in stream.chunks(cut) {
                d.feed(chunk, |r| got.push(String::from_utf8(r.unwrap().to_vec()).unwrap()));
            }
            proptest::prop_assert_eq!(got, lines);
        }
    }
}

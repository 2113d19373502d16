//! Parsing a `message/cpim` object (RFC 3862 s3, formal syntax s7): the line reader,
//! the message header block and the RFC 2045 content header block.

use std::borrow::Cow;

use super::grammar::{
    check_known_header, is_header_name, is_language_tag, is_namechar, is_tokenchar,
    quoted_string_len,
};
use super::header::{ContentHeader, Header, Param};
use super::message::CpimMessage;
use super::{CpimError, Limits};

impl<'a> CpimMessage<'a> {
    /// Parses with the default [`Limits`].
    pub fn parse(input: &'a [u8]) -> Result<CpimMessage<'a>, CpimError> {
        Self::parse_with(input, &Limits::default())
    }

    /// Parses with the given limits. Borrows every header and the payload from `input`.
    pub fn parse_with(input: &'a [u8], limits: &Limits) -> Result<CpimMessage<'a>, CpimError> {
        if input.len() > limits.max_size {
            return Err(CpimError::TooLarge {
                len: input.len(),
                max: limits.max_size,
            });
        }
        let mut lines = Lines {
            input,
            pos: 0,
            line: 0,
        };
        let mut count = 0usize;
        // Message headers, up to the first blank line.
        let mut headers = Vec::with_capacity(8);
        let mut seen_from = false;
        let mut seen_datetime = false;
        let sep1 = loop {
            let Some((raw, content)) = lines.next_line(limits)? else {
                return Err(CpimError::UnexpectedEnd {
                    line: lines.line + 1,
                    section: "message",
                });
            };
            let line = lines.line;
            if content.is_empty() {
                break raw;
            }
            if content.starts_with([' ', '\t']) {
                return Err(CpimError::Folded { line });
            }
            count += 1;
            if count > limits.max_headers {
                return Err(CpimError::TooManyHeaders {
                    line,
                    max: limits.max_headers,
                });
            }
            let h = parse_message_header(raw, content, line)?;
            if h.is("From") {
                if seen_from {
                    return Err(CpimError::Duplicate {
                        line,
                        header: "From",
                    });
                }
                seen_from = true;
            } else if h.is("DateTime") {
                if seen_datetime {
                    return Err(CpimError::Duplicate {
                        line,
                        header: "DateTime",
                    });
                }
                seen_datetime = true;
            }
            headers.push(h);
        };
        // Content headers (RFC 2045 style, folding allowed), up to the next blank line.
        let mut content_headers: Vec<ContentHeader<'a>> = Vec::with_capacity(4);
        let sep2 = loop {
            let Some((raw, content)) = lines.next_line(limits)? else {
                return Err(CpimError::UnexpectedEnd {
                    line: lines.line + 1,
                    section: "content",
                });
            };
            let line = lines.line;
            if content.is_empty() {
                break raw;
            }
            if content.starts_with([' ', '\t']) {
                // Continuation of the previous content header.
                let Some(prev) = content_headers.last_mut() else {
                    return Err(CpimError::InvalidHeaderName {
                        line,
                        name: content.to_owned(),
                    });
                };
                let prev_raw = prev.raw.unwrap_or("");
                let prev_start = lines.pos - raw.len() - prev_raw.len();
                let joined = utf8_at(input, prev_start, lines.pos, line)?;
                if joined.len() > limits.max_line {
                    return Err(CpimError::LineTooLong {
                        line,
                        max: limits.max_line,
                    });
                }
                let colon = prev.name.len() + 1;
                let value = strip_eol(&joined[colon..]);
                prev.raw = Some(joined);
                prev.value = Cow::Borrowed(value);
                continue;
            }
            count += 1;
            if count > limits.max_headers {
                return Err(CpimError::TooManyHeaders {
                    line,
                    max: limits.max_headers,
                });
            }
            let colon = content.find(':').ok_or(CpimError::MissingColon { line })?;
            let name = &content[..colon];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(CpimError::InvalidHeaderName {
                    line,
                    name: name.to_owned(),
                });
            }
            content_headers.push(ContentHeader {
                name: Cow::Borrowed(name),
                value: Cow::Borrowed(&content[colon + 1..]),
                raw: Some(raw),
            });
        };
        Ok(CpimMessage {
            headers,
            sep1,
            content_headers,
            sep2,
            payload: Cow::Borrowed(&input[lines.pos..]),
        })
    }
}

struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    /// The next line as (raw with line end, content without it). `None` at end of input
    /// or when the rest has no line end (a header block must end with a blank line).
    fn next_line(&mut self, limits: &Limits) -> Result<Option<(&'a str, &'a str)>, CpimError> {
        if self.pos >= self.input.len() {
            return Ok(None);
        }
        let rest = &self.input[self.pos..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            if rest.len() > limits.max_line {
                return Err(CpimError::LineTooLong {
                    line: self.line + 1,
                    max: limits.max_line,
                });
            }
            return Ok(None);
        };
        self.line += 1;
        if nl > limits.max_line {
            return Err(CpimError::LineTooLong {
                line: self.line,
                max: limits.max_line,
            });
        }
        let raw = utf8_at(self.input, self.pos, self.pos + nl + 1, self.line)?;
        self.pos += nl + 1;
        let content = strip_eol(raw);
        if let Some(b) = content
            .bytes()
            .find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Err(CpimError::ControlChar {
                line: self.line,
                byte: b,
            });
        }
        Ok(Some((raw, content)))
    }
}

fn utf8_at(input: &[u8], start: usize, end: usize, line: usize) -> Result<&str, CpimError> {
    std::str::from_utf8(&input[start..end]).map_err(|_| CpimError::InvalidUtf8 { line })
}

fn strip_eol(s: &str) -> &str {
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

fn parse_message_header<'a>(
    raw: &'a str,
    s: &'a str,
    line: usize,
) -> Result<Header<'a>, CpimError> {
    let name_end = s
        .find(|c: char| !(is_namechar(c) || c == '.'))
        .unwrap_or(s.len());
    let name = &s[..name_end];
    let rest = &s[name_end..];
    let Some(mut rest) = rest.strip_prefix(':') else {
        return Err(match s.split_once(':') {
            Some((bad, _)) => CpimError::InvalidHeaderName {
                line,
                name: bad.to_owned(),
            },
            None => CpimError::MissingColon { line },
        });
    };
    if !is_header_name(name) {
        return Err(CpimError::InvalidHeaderName {
            line,
            name: name.to_owned(),
        });
    }
    let mut params = Vec::new();
    while let Some(r) = rest.strip_prefix(';') {
        let (p, r) = parse_param(r, line)?;
        params.push(p);
        rest = r;
    }
    let value = if rest.is_empty() {
        rest
    } else if let Some(v) = rest.strip_prefix(' ') {
        v
    } else {
        return Err(CpimError::MissingSpace { line });
    };
    let h = Header {
        name: Cow::Borrowed(name),
        params,
        value: Cow::Borrowed(value),
        raw: Some(raw),
    };
    check_known_header(&h, line)?;
    Ok(h)
}

fn parse_param(s: &str, line: usize) -> Result<(Param<'_>, &str), CpimError> {
    let name_end = s.find(|c: char| !is_namechar(c)).unwrap_or(s.len());
    let name = &s[..name_end];
    if name.is_empty() {
        return Err(CpimError::InvalidParameter {
            line,
            reason: "empty parameter name",
        });
    }
    let Some(r) = s[name_end..].strip_prefix('=') else {
        return Err(CpimError::InvalidParameter {
            line,
            reason: "parameter without '='",
        });
    };
    let value_len = if r.starts_with('"') {
        quoted_string_len(r).ok_or(CpimError::InvalidParameter {
            line,
            reason: "unterminated quoted string or invalid escape",
        })?
    } else {
        r.find(|c: char| !is_tokenchar(c)).unwrap_or(r.len())
    };
    if value_len == 0 {
        return Err(CpimError::InvalidParameter {
            line,
            reason: "empty parameter value",
        });
    }
    let value = &r[..value_len];
    if name == "lang" && !is_language_tag(value) {
        return Err(CpimError::InvalidParameter {
            line,
            reason: "lang is not a language tag",
        });
    }
    Ok((
        Param {
            name: Cow::Borrowed(name),
            value: Cow::Borrowed(value),
        },
        &r[value_len..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpim::IMDN_NS;

    const RFC3862_EXAMPLE: &str = "From: MR SANDERS <im:piglet@100akerwood.com>\r\n\
To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n\
DateTime: 2000-12-13T13:40:00-08:00\r\n\
Subject: the weather will be fine today\r\n\
Subject:;lang=fr beau temps prevu pour aujourd'hui\r\n\
NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n\
Require: MyFeatures.VitalMessageOption\r\n\
MyFeatures.VitalMessageOption: Confirmation-requested\r\n\
MyFeatures.WackyMessageOption: Use-silly-font\r\n\
\r\n\
Content-type: text/xml; charset=utf-8\r\n\
Content-ID: <1234567890@foo.com>\r\n\
\r\n\
<body>\r\n\
Here is the text of my message.\r\n\
</body>\r\n";

    /// After the example of RFC 3862 s6: prefixed headers, Require, Subject with lang,
    /// XML payload.
    #[test]
    fn rfc3862_s6_example_parses_and_round_trips() {
        let m = CpimMessage::parse(RFC3862_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(m.to_bytes(), RFC3862_EXAMPLE.as_bytes());
        let from = m.from().unwrap();
        assert_eq!(from.display.as_deref(), Some("MR SANDERS"));
        assert_eq!(from.uri, "im:piglet@100akerwood.com");
        assert_eq!(from.address().unwrap().user.as_deref(), Some("piglet"));
        assert_eq!(m.to()[0].display.as_deref(), Some("Depressed Donkey"));
        assert_eq!(m.datetime(), Some("2000-12-13T13:40:00-08:00"));
        let subjects = m.subjects();
        assert_eq!(subjects.len(), 2);
        assert_eq!(subjects[1].1.as_deref(), Some("fr"));
        assert_eq!(
            m.subject().as_deref(),
            Some("the weather will be fine today")
        );
        assert_eq!(
            m.namespace_of("MyFeatures"),
            Some("mid:MessageFeatures@id.foo.com")
        );
        assert_eq!(m.require(), vec!["MyFeatures.VitalMessageOption"]);
        assert_eq!(
            m.ns_header("mid:MessageFeatures@id.foo.com", "WackyMessageOption")
                .unwrap()
                .value(),
            "Use-silly-font"
        );
        assert_eq!(m.content_type().as_deref(), Some("text/xml; charset=utf-8"));
        assert_eq!(
            m.content_header("content-id").as_deref(),
            Some("<1234567890@foo.com>")
        );
        assert!(m.payload().starts_with(b"<body>"));
    }

    #[test]
    fn imdn_headers_with_any_prefix() {
        let s = "From: <sip:a@example.com>\r\nTo: <sip:b@example.com>\r\nNS: x <urn:ietf:params:imdn>\r\n\
x.Message-ID: 34jk324j\r\nx.Disposition-Notification: positive-delivery, display\r\n\r\n\
Content-Type: text/plain\r\n\r\nhi";
        let m = CpimMessage::parse(s.as_bytes()).unwrap();
        assert_eq!(m.imdn_message_id().as_deref(), Some("34jk324j"));
        assert_eq!(
            m.imdn_disposition_notification().as_deref(),
            Some("positive-delivery, display")
        );
        assert_eq!(m.payload(), b"hi");
        assert_eq!(m.prefix_for(IMDN_NS), Some("x"));
    }

    #[test]
    fn quoted_display_name_and_params() {
        let s = "From: \"Alice \\\"A\\\" Smith\" <im:alice@example.com>\r\n\
To:;x-p=\"q v\";n=12 <im:bob@example.com>\r\ncc: <im:c@example.com>\r\ncc: Carol B <im:d@example.com>\r\n\r\n\r\n";
        let m = CpimMessage::parse(s.as_bytes()).unwrap();
        assert_eq!(
            m.from().unwrap().display.as_deref(),
            Some("Alice \"A\" Smith")
        );
        let to = m.header("To").unwrap();
        assert_eq!(to.param("x-p").as_deref(), Some("q v"));
        assert_eq!(to.param("n").as_deref(), Some("12"));
        assert_eq!(m.cc().len(), 2);
        assert_eq!(m.cc()[1].display.as_deref(), Some("Carol B"));
        assert_eq!(m.content_headers().len(), 0);
        assert_eq!(m.payload(), b"");
    }

    #[test]
    fn bare_lf_and_folded_content_header_round_trip() {
        let s = "From: <im:a@b.c>\n\nContent-Type: text/plain;\r\n charset=utf-8\n\nbody\r\n";
        let m = CpimMessage::parse(s.as_bytes()).unwrap();
        assert_eq!(m.separators(), ("\n", "\n"));
        assert_eq!(
            m.content_type().as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(m.to_bytes(), s.as_bytes());
    }

    #[test]
    fn binary_payload_is_borrowed() {
        let mut s =
            b"From: <im:a@b.c>\r\n\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        s.extend_from_slice(&[0, 0xff, 0xfe, b'\r', b'\n', 0x80]);
        let m = CpimMessage::parse(&s).unwrap();
        assert_eq!(m.payload(), &[0, 0xff, 0xfe, b'\r', b'\n', 0x80]);
        assert_eq!(m.payload().as_ptr(), s[s.len() - 6..].as_ptr());
        assert_eq!(m.to_bytes(), s);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, CpimError)] = &[
            (
                "From: <im:a@b>\r\nbroken line\r\n\r\n\r\n",
                CpimError::MissingColon { line: 2 },
            ),
            (
                "From: <im:a@b>\r\n folded\r\n\r\n\r\n",
                CpimError::Folded { line: 2 },
            ),
            (
                "a.b.c: x\r\n\r\n\r\n",
                CpimError::InvalidHeaderName {
                    line: 1,
                    name: "a.b.c".into(),
                },
            ),
            ("X:x\r\n\r\n\r\n", CpimError::MissingSpace { line: 1 }),
            (
                "X:;lang=\"fr\" y\r\n\r\n\r\n",
                CpimError::InvalidParameter {
                    line: 1,
                    reason: "lang is not a language tag",
                },
            ),
            (
                "X:;p y\r\n\r\n\r\n",
                CpimError::InvalidParameter {
                    line: 1,
                    reason: "parameter without '='",
                },
            ),
            (
                "From: <im:a@b>\r\nFrom: <im:c@d>\r\n\r\n\r\n",
                CpimError::Duplicate {
                    line: 2,
                    header: "From",
                },
            ),
            (
                "To: im:a@b\r\n\r\n\r\n",
                CpimError::InvalidValue {
                    line: 1,
                    header: "To",
                    reason: "missing '<' before the URI",
                },
            ),
            (
                "DateTime: yesterday\r\n\r\n\r\n",
                CpimError::InvalidValue {
                    line: 1,
                    header: "DateTime",
                    reason: "not an RFC 3339 date-time",
                },
            ),
            (
                "NS: <>\r\n\r\n\r\n",
                CpimError::InvalidValue {
                    line: 1,
                    header: "NS",
                    reason: "empty URI",
                },
            ),
            (
                "X: a\rb\r\n\r\n\r\n",
                CpimError::ControlChar {
                    line: 1,
                    byte: b'\r',
                },
            ),
            (
                "From: <im:a@b>\r\n",
                CpimError::UnexpectedEnd {
                    line: 2,
                    section: "message",
                },
            ),
            (
                "From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\n",
                CpimError::UnexpectedEnd {
                    line: 4,
                    section: "content",
                },
            ),
            (
                "",
                CpimError::UnexpectedEnd {
                    line: 1,
                    section: "message",
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                CpimMessage::parse(input.as_bytes()).unwrap_err(),
                *want,
                "{input:?}"
            );
        }
        let mut bad = b"X: \xff\r\n\r\n\r\n".to_vec();
        assert_eq!(
            CpimMessage::parse(&bad).unwrap_err(),
            CpimError::InvalidUtf8 { line: 1 }
        );
        bad.clear();
        assert!(CpimError::MissingColon { line: 7 }
            .to_string()
            .contains("line 7"));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_size: 100,
            max_headers: 2,
            max_line: 30,
        };
        let big = vec![b'a'; 101];
        assert!(matches!(
            CpimMessage::parse_with(&big, &limits),
            Err(CpimError::TooLarge { len: 101, max: 100 })
        ));
        let many = "A: 1\r\nB: 2\r\nC: 3\r\n\r\n\r\n";
        assert_eq!(
            CpimMessage::parse_with(many.as_bytes(), &limits).unwrap_err(),
            CpimError::TooManyHeaders { line: 3, max: 2 }
        );
        let long = format!("A: {}\r\n\r\n\r\n", "x".repeat(40));
        assert_eq!(
            CpimMessage::parse_with(long.as_bytes(), &limits).unwrap_err(),
            CpimError::LineTooLong { line: 1, max: 30 }
        );
    }

    proptest::proptest! {
        /// Whatever the parser accepts, it gives back byte for byte.
        #[test]
        fn parsed_message_round_trips(
            lines in proptest::collection::vec("[A-Za-z.;=:\" <>@\\\\-]{0,30}", 0..6),
            eol in proptest::sample::select(vec!["\r\n", "\n"]),
            body in "\\PC{0,20}",
        ) {
            let mut s = String::new();
            for l in &lines {
                s.push_str(l);
                s.push_str(eol);
            }
            s.push_str(eol);
            s.push_str("Content-Type: text/plain");
            s.push_str(eol);
            s.push_str(eol);
            s.push_str(&body);
            if let Ok(m) = CpimMessage::parse(s.as_bytes()) {
                proptest::prop_assert_eq!(m.to_bytes(), s.as_bytes());
            }
        }
    }
}

//! IRC message syntax (RFC 2812 s2.3.1), nickname rules and case mapping (RFC 2812 s2.2).
//! Sans-IO.

use std::fmt::Write as _;

/// Longest line including CR LF (RFC 2812 s2.3).
pub const MAX_LINE: usize = 512;

/// One parsed IRC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrcMessage {
    /// `nick!user@host` or a server name, without the colon.
    pub prefix: Option<String>,
    /// The command or three-digit numeric, upper-cased.
    pub command: String,
    /// Middle parameters and the trailing one, in order.
    pub params: Vec<String>,
}

/// Why a line is not an IRC message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but a prefix or tags.
    #[error("line has no command")]
    NoCommand,
    /// Not UTF-8 (and not decodable as Latin-1 either would be wrong to guess).
    #[error("line is not UTF-8")]
    NotUtf8,
}

impl IrcMessage {
    /// Parses one line (without or with its CR LF). IRCv3 message tags are skipped.
    /// Bytes that are not UTF-8 are replaced (IRC has no charset; most clients send UTF-8).
    pub fn parse(line: &[u8]) -> Result<IrcMessage, ParseError> {
        let line = String::from_utf8_lossy(line);
        let mut rest = line.trim_end_matches(['\r', '\n']);
        if let Some(tagged) = rest.strip_prefix('@') {
            rest = tagged.split_once(' ').map_or("", |(_, r)| r);
        }
        rest = rest.trim_start_matches(' ');
        let prefix = match rest.strip_prefix(':') {
            Some(p) => {
                let (pfx, r) = p.split_once(' ').unwrap_or((p, ""));
                rest = r.trim_start_matches(' ');
                Some(pfx.to_owned())
            }
            None => None,
        };
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(ParseError::NoCommand);
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(t) = rest.strip_prefix(':') {
                params.push(t.to_owned());
                break;
            }
            // RFC 2812: at most 14 middle parameters; the 15th takes the rest.
            if params.len() == 14 {
                params.push(rest.to_owned());
                break;
            }
            let (p, r) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(p.to_owned());
            rest = r;
        }
        Ok(IrcMessage {
            prefix,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    /// The nickname in the prefix (`nick` of `nick!user@host`).
    pub fn nick(&self) -> Option<&str> {
        self.prefix
            .as_deref()
            .map(|p| p.split(['!', '@']).next().unwrap_or(p))
    }

    /// Parameter `i`, or "".
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }
}

/// Appends `COMMAND p1 p2 :trailing\r\n`; CR, LF and NUL in any parameter become spaces
/// (they would end or corrupt the line), and the line is cut to [`MAX_LINE`] at a
/// character boundary.
pub fn write_line(out: &mut Vec<u8>, command: &str, params: &[&str], trailing: Option<&str>) {
    let mut s = String::with_capacity(64);
    s.push_str(command);
    for p in params {
        s.push(' ');
        s.push_str(p);
    }
    if let Some(t) = trailing {
        let _ = write!(s, " :{t}");
    }
    let mut s: String = s
        .chars()
        .map(|c| {
            if matches!(c, '\r' | '\n' | '\0') {
                ' '
            } else {
                c
            }
        })
        .collect();
    if s.len() > MAX_LINE - 2 {
        let mut cut = MAX_LINE - 2;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// RFC 2812 s2.2 case mapping: `{}|^` are the lower-case forms of `[]\~`.
pub fn irc_lower(c: char) -> char {
    match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        '[' => '{',
        ']' => '}',
        '\\' => '|',
        '~' => '^',
        c => c,
    }
}

/// The case-folded form of a nickname or channel name, for comparisons and map keys.
pub fn casefold(s: &str) -> String {
    s.chars().map(irc_lower).collect()
}

/// True if `a` and `b` are the same nickname under RFC 2812 s2.2.
pub fn nick_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.chars()
            .zip(b.chars())
            .all(|(x, y)| irc_lower(x) == irc_lower(y))
}

/// RFC 2812 s2.3.1 `special`: `[ ] \ ` _ ^ { | }`.
pub fn is_special(c: char) -> bool {
    matches!(c, '\x5B'..='\x60' | '\x7B'..='\x7D')
}

/// RFC 2812 s2.3.1: `nickname = ( letter / special ) *( letter / digit / special / "-" )`,
/// at most `max_len` characters (RFC 2812 says 9; servers allow more).
pub fn is_valid_nick(nick: &str, max_len: usize) -> bool {
    let mut chars = nick.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || is_special(c) => {}
        _ => return false,
    }
    nick.len() <= max_len && chars.all(|c| c.is_ascii_alphanumeric() || is_special(c) || c == '-')
}

/// RFC 2812 s1.3 channel names: `#`, `&`, `+` or `!` first, no space, comma, BEL.
pub fn is_channel(name: &str) -> bool {
    name.starts_with(['#', '&', '+', '!'])
        && name.len() > 1
        && name.len() <= 50
        && !name.contains([' ', ',', '\x07', ':'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefix_command_params_trailing() {
        let m = IrcMessage::parse(b":nick!user@host PRIVMSG #chan :hello there\r\n").unwrap();
        assert_eq!(m.nick(), Some("nick"));
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, vec!["#chan", "hello there"]);
        let m = IrcMessage::parse(b"PING :irc.example.net").unwrap();
        assert_eq!(
            (m.prefix.as_deref(), m.command.as_str(), m.param(0)),
            (None, "PING", "irc.example.net")
        );
        let m = IrcMessage::parse(b"@time=x :srv 401 me ghost :No such nick").unwrap();
        assert_eq!(m.command, "401");
        assert_eq!(m.params, vec!["me", "ghost", "No such nick"]);
        assert_eq!(
            IrcMessage::parse(b":only-prefix"),
            Err(ParseError::NoCommand)
        );
        assert_eq!(IrcMessage::parse(b""), Err(ParseError::NoCommand));
    }

    #[test]
    fn write_line_strips_line_breaks_and_limits_length() {
        let mut out = Vec::new();
        write_line(&mut out, "PRIVMSG", &["bob"], Some("a\r\nQUIT :x"));
        assert_eq!(out, b"PRIVMSG bob :a  QUIT :x\r\n");
        out.clear();
        write_line(&mut out, "PRIVMSG", &["bob"], Some(&"\u{e9}".repeat(600)));
        assert!(out.len() <= MAX_LINE);
        assert!(std::str::from_utf8(&out).is_ok());
    }

    #[test]
    fn rfc2812_casemapping_and_nick_syntax() {
        assert!(nick_eq("Foo[]\\~", "foo{}|^"));
        assert!(!nick_eq("foo", "fo"));
        assert!(is_valid_nick("[away]", 9));
        assert!(is_valid_nick("a-b_c`d", 9));
        assert!(!is_valid_nick("1abc", 9));
        assert!(!is_valid_nick("-abc", 9));
        assert!(!is_valid_nick("abcdefghij", 9));
        assert!(!is_valid_nick("a b", 9));
        assert!(is_channel("#test") && !is_channel("test") && !is_channel("#a,b"));
    }

    proptest::proptest! {
        #[test]
        fn write_then_parse_round_trips(
            cmd in "[A-Z]{3,8}",
            params in proptest::collection::vec("[!-9;-~][!-~]{0,10}", 0..5),
            trailing in proptest::option::of("[^\r\n\x00]{0,60}"),
        ) {
            let refs: Vec<&str> = params.iter().map(String::as_str).collect();
            let mut out = Vec::new();
            write_line(&mut out, &cmd, &refs, trailing.as_deref());
            let m = IrcMessage::parse(&out).unwrap();
            let mut want = params.clone();
            want.extend(trailing);
            proptest::prop_assert_eq!(m.command, cmd);
            proptest::prop_assert_eq!(m.params, want);
        }
    }
}

//! Pre-built requests with fixed-width number slots patched in place per message.
//!
//! A template is built once from text in which [`SLOT`] marks where the per-message tag
//! goes (Call-ID, Via branch, body, stanza id). Every slot is [`TAG_WIDTH`] digits wide, so
//! lengths (Content-Length) never change and patching is a copy of 12 bytes per slot:
//! no allocation, no formatting per message.

/// The placeholder in template text.
pub const SLOT: &str = "{tag}";
/// The placeholder for the conversation number: the sequence number modulo the
/// template's [`Template::with_pairs`] count, [`PAIR_WIDTH`] digits.
pub const PAIR_SLOT: &str = "{pair}";
/// Digits of a conversation number.
pub const PAIR_WIDTH: usize = 4;
/// Digits of a tag.
pub const TAG_WIDTH: usize = 12;
/// Digits of the sequence number inside a tag (the two leading digits are the step).
pub const SEQ_DIGITS: u32 = 10;
const SEQ_MOD: u64 = 10u64.pow(SEQ_DIGITS);

/// A step id (0..=99) and a sequence number (< 10^10) as one tag.
pub fn tag(step: u8, seq: u64) -> u64 {
    u64::from(step % 100) * SEQ_MOD + seq % SEQ_MOD
}

/// The (step, sequence number) of a tag.
pub fn split_tag(tag: u64) -> (u8, u64) {
    (((tag / SEQ_MOD) % 100) as u8, tag % SEQ_MOD)
}

/// Writes `n` as [`TAG_WIDTH`] zero-padded decimal digits.
pub fn write_tag(out: &mut [u8; TAG_WIDTH], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Reads [`TAG_WIDTH`] decimal digits at the start of `s`.
pub fn read_tag(s: &[u8]) -> Option<u64> {
    let d = s.get(..TAG_WIDTH)?;
    let mut n = 0u64;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// Finds `marker` in `hay` and reads the tag right after it.
pub fn find_tag(hay: &[u8], marker: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(hay, marker)?;
    read_tag(&hay[at + marker.len()..])
}

/// A byte template with tag slots.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    slots: Vec<usize>,
    pair_slots: Vec<usize>,
    pairs: u64,
}

impl Template {
    /// Builds a template from `text`, each [`SLOT`] becoming a slot of [`TAG_WIDTH`] zeros
    /// and each [`PAIR_SLOT`] one of [`PAIR_WIDTH`] zeros.
    pub fn new(text: &str) -> Template {
        let mut bytes = Vec::with_capacity(text.len() + 32);
        let mut slots = Vec::new();
        let mut pair_slots = Vec::new();
        let mut rest = text;
        loop {
            let tag_at = rest.find(SLOT);
            let pair_at = rest.find(PAIR_SLOT);
            let (i, is_pair) = match (tag_at, pair_at) {
                (Some(t), Some(p)) if p < t => (p, true),
                (Some(t), _) => (t, false),
                (None, Some(p)) => (p, true),
                (None, None) => break,
            };
            bytes.extend_from_slice(&rest.as_bytes()[..i]);
            if is_pair {
                pair_slots.push(bytes.len());
                bytes.extend_from_slice(&[b'0'; PAIR_WIDTH]);
                rest = &rest[i + PAIR_SLOT.len()..];
            } else {
                slots.push(bytes.len());
                bytes.extend_from_slice(&[b'0'; TAG_WIDTH]);
                rest = &rest[i + SLOT.len()..];
            }
        }
        bytes.extend_from_slice(rest.as_bytes());
        Template {
            bytes,
            slots,
            pair_slots,
            pairs: 1,
        }
    }

    /// Spreads messages over `pairs` conversations (1..=10^4): message `seq` gets
    /// conversation `seq % pairs` in its [`PAIR_SLOT`]s.
    pub fn with_pairs(mut self, pairs: u64) -> Template {
        self.pairs = pairs.clamp(1, 10u64.pow(PAIR_WIDTH as u32));
        self
    }

    /// Writes `tag` into every slot (and its conversation number into every pair slot)
    /// and returns the message.
    pub fn patch(&mut self, tag: u64) -> &[u8] {
        let mut digits = [0u8; TAG_WIDTH];
        write_tag(&mut digits, tag);
        for &at in &self.slots {
            self.bytes[at..at + TAG_WIDTH].copy_from_slice(&digits);
        }
        if !self.pair_slots.is_empty() {
            let mut pair = [0u8; TAG_WIDTH];
            write_tag(&mut pair, split_tag(tag).1 % self.pairs);
            let pair = &pair[TAG_WIDTH - PAIR_WIDTH..];
            for &at in &self.pair_slots {
                self.bytes[at..at + PAIR_WIDTH].copy_from_slice(pair);
            }
        }
        &self.bytes
    }

    /// The current bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }
}

/// Text of `len` bytes that starts with `prefix` (padded with `x`, or `prefix` unchanged
/// when it is longer): message bodies of a chosen size.
pub fn padded(prefix: &str, len: usize) -> String {
    let mut s = prefix.to_owned();
    while s.len() < len {
        s.push('x');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slots_are_patched_in_place_and_length_is_fixed() {
        let mut t = Template::new("Call-ID: c{tag}@h\r\nbody b{tag}!");
        assert_eq!(t.slots(), 2);
        let len = t.bytes().len();
        let m = t.patch(tag(3, 42)).to_vec();
        assert_eq!(m.len(), len);
        assert_eq!(
            std::str::from_utf8(&m).unwrap(),
            "Call-ID: c030000000042@h\r\nbody b030000000042!"
        );
        let m = t.patch(tag(99, 9_999_999_999)).to_vec();
        assert_eq!(
            std::str::from_utf8(&m).unwrap(),
            "Call-ID: c999999999999@h\r\nbody b999999999999!"
        );
        assert_eq!(find_tag(&m, b"body b"), Some(999_999_999_999));
        assert_eq!(find_tag(b"body b12", b"body b"), None);
        assert_eq!(find_tag(b"body b12345678901x", b"body b"), None);
    }

    #[test]
    fn template_without_slots_is_unchanged() {
        let mut t = Template::new("OPTIONS");
        assert_eq!(t.patch(5), b"OPTIONS");
        assert_eq!(padded("ab", 5), "abxxx");
        assert_eq!(padded("abcdef", 3), "abcdef");
    }

    #[test]
    fn pair_slots_cycle_through_the_conversations() {
        let mut t = Template::new("from='b{pair}@x' id='m{tag}'").with_pairs(3);
        let texts: Vec<String> = (0..4)
            .map(|seq| String::from_utf8(t.patch(tag(7, seq)).to_vec()).unwrap())
            .collect();
        assert_eq!(texts[0], "from='b0000@x' id='m070000000000'");
        assert_eq!(texts[1], "from='b0001@x' id='m070000000001'");
        assert_eq!(texts[2], "from='b0002@x' id='m070000000002'");
        assert_eq!(texts[3], "from='b0000@x' id='m070000000003'");
        // without with_pairs every message is conversation 0
        let mut one = Template::new("{pair}-{tag}");
        assert_eq!(one.patch(tag(1, 5)), b"0000-010000000005");
    }

    proptest! {
        #[test]
        fn tag_round_trip(step in 0u8..100, seq in 0u64..10_000_000_000) {
            let t = tag(step, seq);
            let mut d = [0u8; TAG_WIDTH];
            write_tag(&mut d, t);
            prop_assert_eq!(read_tag(&d), Some(t));
            prop_assert_eq!(split_tag(t), (step, seq));
        }
    }
}

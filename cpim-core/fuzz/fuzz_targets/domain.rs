#![no_main]
//! The canonical domain form (`cpim_core::domain`; RFC 4343 case, RFC 1034 s3.1 trailing
//! dot, RFC 5891 / UTS #46 A-labels): no panic on any string, the canonical form is a
//! fixed point (canonicalizing it again changes nothing), it is ASCII without upper case
//! or a trailing dot, and `same` agrees with comparing canonical forms.

use cpim_core::domain::{canonical, canonical_or_raw, same};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Two strings: split at the first NUL, so that `same` sees unrelated pairs too.
    let (a, b) = s.split_once('\0').unwrap_or((s, s));
    let ca = canonical(a);
    if let Ok(c) = &ca {
        assert!(c.is_ascii(), "{a:?} -> {c:?} is not ASCII");
        assert!(!c.bytes().any(|b| b.is_ascii_uppercase()), "{a:?} -> {c:?}");
        assert!(!c.is_empty() && !c.ends_with('.'), "{a:?} -> {c:?}");
        let again = canonical(c).expect("a canonical form is a domain");
        assert_eq!(again, *c, "canonical form of {a:?} is not a fixed point");
        assert!(same(a, c), "{a:?} is not the same as its canonical form");
        assert_eq!(canonical_or_raw(a), c.as_ref());
    } else {
        assert!(!same(a, a), "{a:?} is refused but same() holds");
    }
    let cb = canonical(b);
    match (ca, cb) {
        (Ok(x), Ok(y)) => assert_eq!(same(a, b), x == y),
        _ => assert!(!same(a, b)),
    }
});

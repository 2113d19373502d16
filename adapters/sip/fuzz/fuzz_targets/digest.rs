//! Fuzzes the RFC 3261 s22.4 / RFC 8760 digest header parsers on arbitrary input (they
//! read `Authorization`/`Proxy-Authorization` from unauthenticated requests and
//! `WWW-Authenticate` from peers): no panic, and whatever parses as credentials or as a
//! challenge writes back to a header that parses to the same value.
//! Run: `scripts/fuzz cpim-sip/digest`.
#![no_main]

use cpim_sip::app::digest::{parse_params, Challenge, Credentials};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_params(s);
    if let Ok(c) = Credentials::parse(s) {
        let h = c.to_header();
        let again = Credentials::parse(&h).expect("written credentials parse");
        assert_eq!(again, c, "credentials changed through {h:?}");
    }
    if let Ok(c) = Challenge::parse(s) {
        let h = c.to_header();
        let again = Challenge::parse(&h).expect("written challenge parses");
        assert_eq!(again, c, "challenge changed through {h:?}");
    }
});

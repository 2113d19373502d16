//! Fuzzes JIDs read from the wire (RFC 7622, XEP-0106 escaping, RFC 7247 s6 mapping,
//! both homes): no panic, and whatever parses writes back to a JID that parses to the
//! same address.
//! Run: `scripts/fuzz cpim-xmpp/jid`.
#![no_main]

use cpim_xmpp::jid::{parse_jid, to_jid, Home};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for home in [Home::Sip, Home::Xmpp] {
        if let Ok(a) = parse_jid(s, home) {
            let jid = to_jid(&a, home).expect("a parsed JID writes back");
            let again = parse_jid(&jid, home).expect("a written JID parses");
            assert_eq!(again, a, "{s:?} -> {jid:?} ({home:?})");
        }
    }
});

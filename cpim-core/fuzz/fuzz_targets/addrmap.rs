#![no_main]
//! Address parse and SIP <-> JID mapping (RFC 7247 s6, XEP-0106): no panic, and the
//! mapping round trip holds for whatever maps.

use cpim_core::address::Address;
use cpim_core::addrmap::{self, Home};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Any string as an address.
    if let Ok(a) = Address::parse(s) {
        for home in [Home::Sip, Home::Xmpp] {
            if let Ok(jid) = addrmap::to_jid(&a, home) {
                let back = addrmap::from_jid(&jid, home).expect("own JID does not read back");
                assert!(
                    back.same_user(&a) && back.instance == a.instance,
                    "{a:?} -> {jid} -> {back:?}"
                );
                if home == Home::Sip {
                    // Survives the XMPP server's case folding of the localpart.
                    // (RFC 7622 s3.1: the localpart ends at the first '@' before any '/'.)
                    let bare_end = jid.find('/').unwrap_or(jid.len());
                    let folded = match jid[..bare_end].split_once('@') {
                        Some((l, _)) => format!("{}{}", l.to_lowercase(), &jid[l.len()..]),
                        None => jid.clone(),
                    };
                    assert_eq!(addrmap::from_jid(&folded, home).unwrap(), back);
                }
            }
        }
        let _ = addrmap::to_sip_uri(&a);
    }
    // Any string as a user part homed on SIP: sip -> jid -> sip.
    if !s.is_empty() && s.len() < 300 {
        let a = Address::new(cpim_core::Scheme::Sip, Some(s), "example.com");
        let uri = addrmap::to_sip_uri(&a);
        let jid = addrmap::sip_uri_to_jid(&uri, Home::Sip).expect("SIP-homed user must map");
        assert_eq!(addrmap::jid_to_sip_uri(&jid, Home::Sip).unwrap(), uri);
    }
    // Any string as a JID, both homes.
    for home in [Home::Sip, Home::Xmpp] {
        let _ = addrmap::jid_to_sip_uri(s, home);
    }
});

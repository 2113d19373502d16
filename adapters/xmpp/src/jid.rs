//! JIDs on the wire and [`Address`]es in the model: RFC 7247 s6 address mapping with
//! XEP-0106 escaping, as `cpim_core::addrmap` implements it (one implementation for the
//! whole project).
//!
//! Which side an identity is homed on decides its escaping ([`Home`]): the gateway's own
//! users (the SIP side, in the component or s2s domains) are [`Home::Sip`], so that their
//! case and every character survive the XMPP server's case folding; XMPP users are
//! [`Home::Xmpp`] (plain XEP-0106). Inbound, `from` is an XMPP user and `to` one of ours;
//! outbound the other way round.

use cpim_core::address::Address;
pub use cpim_core::addrmap::{Home, MapError};

/// Reads a JID from the wire into an `xmpp:` address with the localpart unescaped.
pub fn parse_jid(s: &str, home: Home) -> Result<Address, MapError> {
    cpim_core::addrmap::from_jid(s, home)
}

/// Writes an address as a JID (localpart escaped, instance as resource).
pub fn to_jid(a: &Address, home: Home) -> Result<String, MapError> {
    cpim_core::addrmap::to_jid(a, home)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_core::address::Scheme;
    use proptest::prelude::*;

    #[test]
    fn xep0106_on_xmpp_homed_and_case_kept_on_sip_homed() {
        let a = parse_jid("john\\20doe@SIP.Example/res 1", Home::Xmpp).unwrap();
        assert_eq!(a.user.as_deref(), Some("john doe"));
        assert_eq!(a.domain, "sip.example");
        assert_eq!(a.instance.as_deref(), Some("res 1"));
        assert_eq!(
            to_jid(&a, Home::Xmpp).unwrap(),
            "john\\20doe@sip.example/res 1"
        );
        // A SIP user with capitals keeps them across the server's case folding.
        let b = Address::new(Scheme::Xmpp, Some("Bob Smith@sip.example"), "gw.test");
        let j = to_jid(&b, Home::Sip).unwrap();
        assert_eq!(j, j.to_lowercase(), "{j}");
        assert_eq!(parse_jid(&j, Home::Sip).unwrap().user, b.user);
        assert!(parse_jid("a b@x", Home::Xmpp).is_err());
        assert!(parse_jid("@x", Home::Xmpp).is_err());
        assert!(parse_jid("a@x/", Home::Xmpp).is_err());
        assert_eq!(parse_jid("x.test", Home::Xmpp).unwrap().user, None);
    }

    proptest! {
        #[test]
        fn sip_homed_users_round_trip(user in "[A-Za-z \\\"&'/:<>@\\\\0-9._-]{1,20}") {
            let a = Address::new(Scheme::Xmpp, Some(&user), "gw.test");
            let back = parse_jid(&to_jid(&a, Home::Sip).unwrap(), Home::Sip).unwrap();
            prop_assert_eq!(back.user, Some(user));
        }
    }
}

#![no_main]
//! message/cpim: whatever parses serializes back to the input and parses again.

use cpim_core::cpim::CpimMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = CpimMessage::parse(data) {
        let out = m.to_bytes();
        assert_eq!(out, data, "serialize(parse(x)) != x");
        let again = CpimMessage::parse(&out).expect("re-parse of serialized message failed");
        assert_eq!(again, m);
        // Accessors must not panic either.
        let _ = (
            m.from(),
            m.to(),
            m.cc(),
            m.subjects(),
            m.namespaces(),
            m.require(),
        );
        let _ = (m.imdn_message_id(), m.content_type(), m.payload().len());
    }
});

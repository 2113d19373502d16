//! Fuzz the pidf codec: arbitrary input is refused or parsed; what parses encodes, and
//! the encoding parses back to the same value.
#![no_main]

use cpim_core::pidf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = pidf::parse(data) {
        let doc = pidf::encode(&value).expect("a parsed value encodes");
        let again = pidf::parse(doc.as_bytes()).expect("an encoded value parses");
        assert_eq!(again, value, "encode/parse changed the value:\n{doc}");
    }
});

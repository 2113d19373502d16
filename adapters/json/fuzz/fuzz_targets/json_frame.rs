//! Fuzzes the JSON protocol's frame parser (`PROTOCOL.md`, `cpim_json::frame`): any
//! bytes a client sends on a line are refused or parsed; what parses serializes, and the
//! serialization parses back to the same frame.
//! Run: `scripts/fuzz cpim-json/json_frame`.
#![no_main]

use cpim_json::frame::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = serde_json::from_slice::<Frame>(data) {
        let _ = f.type_name();
        let wire = serde_json::to_vec(&f).expect("a parsed frame serializes");
        let again: Frame = serde_json::from_slice(&wire).expect("a serialized frame parses");
        assert_eq!(
            again,
            f,
            "frame changed through {}",
            String::from_utf8_lossy(&wire)
        );
    }
});

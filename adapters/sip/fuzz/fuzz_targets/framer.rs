//! Fuzzes the SIP stream framer (RFC 3261 s18.3) as a connection uses it: arbitrary bytes
//! in arbitrary reads, framed messages and keep-alives removed from the front.
//! Differential: at every step the resumable `Framer` answers what the one-shot
//! `frame` answers for the same buffer, and its work stays linear in the input.
//! Run: `cargo +nightly fuzz run framer -- -max_total_time=60`.
#![no_main]

use cpim_sip::codec::framing::{frame, Frame, Framer, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 31) + 1;
    // Small limits so that the limit paths are reached.
    let limits = Limits {
        max_head: 64 + usize::from(first >> 5) * 64,
        max_body: 128,
    };
    let mut f = Framer::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    'reads: for c in rest.chunks(chunk) {
        buf.extend_from_slice(c);
        loop {
            let got = f.frame(&buf);
            assert_eq!(
                got,
                frame(&buf, &limits),
                "framer and frame disagree on {buf:?}"
            );
            match got {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::KeepAlive(n)) | Ok(Frame::Message { len: n }) => {
                    assert!(n > 0 && n <= buf.len());
                    buf.drain(..n);
                }
                Err(_) => break 'reads,
            }
        }
    }
    let fed = rest.len() as u64;
    assert!(
        f.bytes_scanned() <= 4 * fed + 4,
        "{} scanned for {fed}",
        f.bytes_scanned()
    );
});

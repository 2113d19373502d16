//! Fuzzes the SKEL line protocol's framing and syntax (`cpim_skeleton::codec`): any byte
//! stream, cut anywhere, is split into lines of at most the limit, each refused or
//! parsed; what parses encodes to one line that parses back to the same frame.
//! Run: `scripts/fuzz cpim-skeleton/skel_frame`.
#![no_main]

use cpim_skeleton::codec::{Frame, LineDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let mut d = LineDecoder::new(256);
    let cut = usize::from(cut).min(data.len());
    let mut frames = Vec::new();
    for part in [&data[..cut], &data[cut..]] {
        d.feed(part, |r| {
            if let Ok(f) = r {
                frames.push(f)
            }
        });
    }
    for f in frames {
        let mut line = String::new();
        f.encode(&mut line);
        let body = line.strip_suffix('\n').expect("an encoded frame ends its line");
        assert!(!body.contains('\n'), "line break inside {line:?}");
        let again = Frame::parse(body).expect("an encoded frame parses");
        assert_eq!(again, f, "frame changed through {line:?}");
    }
});

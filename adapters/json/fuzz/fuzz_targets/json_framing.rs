//! Fuzzes the JSON adapter's two framings, sans-IO: newline-delimited lines
//! (`LineDecoder`) and RFC 6455 s5 WebSocket frames (`WsDecoder`), plus the s4.2.1
//! opening handshake. Differential: the events of the input fed in arbitrary chunks are
//! those of the whole input fed at once; no panic; the bytes held stay bounded.
//! Run: `scripts/fuzz cpim-json/json_framing`.
#![no_main]

use cpim_json::codec::LineDecoder;
use cpim_json::ws::{server_handshake, WsDecoder, WsEvent};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64;

fn lines(chunks: &mut dyn Iterator<Item = &[u8]>) -> Vec<Result<Vec<u8>, String>> {
    let mut d = LineDecoder::new(MAX);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, |r| {
            out.push(r.map(<[u8]>::to_vec).map_err(|e| e.to_string()))
        });
        assert!(d.pending() <= MAX + 1, "line decoder holds {}", d.pending());
    }
    out
}

fn ws(chunks: &mut dyn Iterator<Item = &[u8]>) -> Vec<String> {
    let mut d = WsDecoder::new(MAX);
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, |ev| {
            out.push(match ev {
                WsEvent::Message(m) => format!("message {m:?}"),
                other => format!("{other:?}"),
            })
        });
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 23) + 1;
    assert_eq!(
        lines(&mut rest.chunks(chunk)),
        lines(&mut std::iter::once(rest)),
        "lines in chunks of {chunk}"
    );
    assert_eq!(
        ws(&mut rest.chunks(chunk)),
        ws(&mut std::iter::once(rest)),
        "websocket frames in chunks of {chunk}"
    );
    if let Ok(Some((resp, used))) = server_handshake(rest) {
        assert!(used <= rest.len());
        assert!(resp.starts_with(b"HTTP/1.1 "));
    }
});

//! Fuzzes the SIP parser: datagram and stream parsing, framing, the error response built
//! for a malformed request, the UAS checks, and parse -> serialize -> parse stability.
#![no_main]

use bytes::Bytes;
use cpim_sip::codec::framing::{frame, Frame, Limits};
use cpim_sip::codec::{error_response_for, Policy, SipMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(Frame::Message { len }) = frame(data, &limits) {
        assert!(len <= data.len());
        let _ = SipMessage::parse_framed(Bytes::copy_from_slice(&data[..len]));
    }
    match SipMessage::parse(Bytes::copy_from_slice(data)) {
        Ok(msg) => {
            if let SipMessage::Request(r) = &msg {
                let _ = Policy::default().check(r);
                let _ = r.uri();
                let _: Vec<_> = r.contacts().collect();
            }
            let p = msg.parts();
            let _ = (p.from(), p.to(), p.top_via(), p.expires());
            let wire = msg.to_bytes();
            let again = SipMessage::parse(wire.clone()).expect("serialized message must parse");
            assert_eq!(again.parts().call_id(), p.call_id());
            assert_eq!(again.parts().cseq(), p.cseq());
            assert_eq!(again.parts().body(), p.body());
            assert_eq!(again.to_bytes(), wire, "serialization is stable");
        }
        Err(e) => {
            let _ = e.error_response_code();
            if let Some(resp) = error_response_for(data, &e) {
                assert!(resp.starts_with(b"SIP/2.0 "));
            }
        }
    }
});

//! Fuzzes the incremental stream parser (any bytes, any chunking) and the stanza
//! mapping of whatever it yields. Differential: the events of a chunked parse are those
//! of a parse of the whole input (the tokenizer resumes an unfinished token where it
//! stopped, so chunking must not change the result), and its work stays linear.
//! Run: `cargo +nightly fuzz run stream -- -max_total_time=60`.
#![no_main]

use cpim_core::model::TransId;
use cpim_xmpp::ids::MessageIds;
use cpim_xmpp::mapping::{inbound, Ctx};
use cpim_xmpp::stream::{StreamEvent, StreamParser};
use libfuzzer_sys::fuzz_target;

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='x'>";

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 17) + 1;
    let domains = vec!["sip.xmpp.test".to_string()];
    let ids = MessageIds::new("fuzz stream secret");
    let ctx = Ctx {
        ns: "jabber:component:accept",
        local_domains: &domains,
        software_name: "fuzz",
        now_rfc3339: "2026-01-01T00:00:00Z",
        message_ids: &ids,
    };
    let mut p = StreamParser::default();
    let mut whole = StreamParser::default();
    // Half the inputs get a valid header first so that stanzas are reached.
    if first & 0x80 != 0 {
        p.feed(HEADER);
        whole.feed(HEADER);
    }
    let mut events = Vec::new();
    // An empty chunk at the end drains what the header alone yields.
    for c in rest.chunks(chunk).chain([&[][..]]) {
        p.feed(c);
        while let Some(ev) = p.next_event() {
            if let Ok(StreamEvent::Stanza(el)) = &ev {
                let _ = inbound(&ctx, el, TransId(1));
                let _ = el.to_xml();
            }
            events.push(ev);
        }
    }
    whole.feed(rest);
    let expected: Vec<_> = std::iter::from_fn(|| whole.next_event()).collect();
    assert_eq!(events, expected, "chunks of {chunk} parse differently");
    let fed = (rest.len() + HEADER.len()) as u64;
    assert!(
        p.bytes_scanned() <= 4 * fed,
        "{} scanned for {fed}",
        p.bytes_scanned()
    );
});

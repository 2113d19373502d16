//! The 496 stanzas of the xmpp-parsers 0.23 test suite (shared corpus
//! `xmpp-parsers-test-stanzas`, all well-formed XML) go through the stream parser,
//! whole and in 1-byte chunks, with the same result and no panic.

use std::path::PathBuf;

use cpim_xmpp::stream::{StreamEvent, StreamParser};

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/corpora/xmpp-parsers-test-stanzas/xmpp-parsers-0.23.0-test-xml.jsonl",
    );
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: corpus not found at {}", p.display());
        None
    }
}

fn run(doc: &[u8], chunk: usize) -> Vec<Result<StreamEvent, String>> {
    let mut p = StreamParser::default();
    let mut out = Vec::new();
    for c in doc.chunks(chunk) {
        p.feed(c);
        while let Some(e) = p.next_event() {
            out.push(e.map_err(|e| e.to_string()));
        }
    }
    out
}

#[test]
fn xmpp_parsers_corpus_through_the_stream_parser() {
    let Some(path) = corpus() else { return };
    let text = std::fs::read_to_string(path).unwrap();
    let mut total = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let xml = v["xml"].as_str().unwrap();
        total += 1;
        let doc = format!(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>{xml}</stream:stream>"
        );
        let whole = run(doc.as_bytes(), doc.len());
        let bytewise = run(doc.as_bytes(), 1);
        assert_eq!(whole, bytewise, "chunking changed the result for {xml}");
        let ok = whole.len() == 3
            && matches!(whole[1], Ok(StreamEvent::Stanza(_)))
            && whole[2] == Ok(StreamEvent::End);
        if !ok {
            failures.push(format!(
                "{}::{}: {:?}",
                v["module"],
                v["test"],
                whole.last()
            ));
        }
    }
    assert_eq!(total, 496);
    // Every string of the corpus is well-formed XML (SOURCE.txt): none may be refused.
    assert!(
        failures.is_empty(),
        "{} refused:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

//! Parse and encode of the XML payloads: PIDF (RFC 3863 + RPID + data model), IMDN
//! (RFC 5438), isComposing (RFC 3994), watcherinfo (RFC 3858), RLMI (RFC 4662); and
//! the bare restricted reader on the PIDF document.

use std::hint::black_box;

use cpim_core::{imdn, iscomposing, pidf, rlmi, watcherinfo, xml};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A typical client PUBLISH body: one tuple, a person with an activity and a note.
const PIDF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
  xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@example.com">
  <tuple id="t8642">
    <status><basic>open</basic></status>
    <contact priority="0.8">sip:alice@pc33.example.com</contact>
    <note xml:lang="en">Online</note>
    <timestamp>2021-06-07T13:30:35Z</timestamp>
  </tuple>
  <dm:person id="p719">
    <rpid:activities><rpid:busy/></rpid:activities>
    <dm:note>In a meeting</dm:note>
  </dm:person>
</presence>"#;

const IMDN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<imdn xmlns="urn:ietf:params:xml:ns:imdn">
  <message-id>34jk324j</message-id>
  <datetime>2008-04-04T12:16:49-05:00</datetime>
  <display-notification><status><displayed/></status></display-notification>
</imdn>"#;

const ISCOMPOSING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">
  <state>active</state>
  <lastactive>2012-02-22T17:53:49Z</lastactive>
  <contenttype>text/plain</contenttype>
  <refresh>60</refresh>
</isComposing>"#;

const WATCHERINFO: &str = r#"<?xml version="1.0"?>
<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="full">
  <watcher-list resource="sip:professor@example.net" package="presence">
    <watcher status="active" id="8ajksjda7s" duration-subscribed="509" event="approved">sip:userA@example.net</watcher>
    <watcher status="pending" id="hh8juja87s997-ass7" display-name="Mr. Subscriber" event="subscribe">sip:userB@example.org</watcher>
  </watcher-list>
</watcherinfo>"#;

const RLMI: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:adam-friends@pres.example.com" version="1" fullState="true">
  <name xml:lang="en">Buddy List at COM</name>
  <resource uri="sip:bob@example.com"><name>Bob Smith</name>
    <instance id="juwigmtboe" state="active" cid="bUZBsM@pres.example.com"/></resource>
  <resource uri="sip:dave@example.com"><name>Dave Jones</name>
    <instance id="hqzsuxtfyq" state="active" cid="ZvSvkz@pres.example.com"/></resource>
  <resource uri="sip:ed@example.net"><instance id="sdlkmeopdf" state="pending"/></resource>
</list>"#;

macro_rules! codec {
    ($c:expr, $name:literal, $module:ident, $doc:expr) => {{
        let mut g = $c.benchmark_group($name);
        g.throughput(Throughput::Bytes($doc.len() as u64));
        g.bench_function("parse", |b| {
            b.iter(|| $module::parse(black_box($doc.as_bytes())).unwrap())
        });
        let value = $module::parse($doc.as_bytes()).unwrap();
        g.bench_function("encode", |b| {
            b.iter(|| $module::encode(black_box(&value)).unwrap())
        });
        g.finish();
    }};
}

fn codecs(c: &mut Criterion) {
    {
        let mut g = c.benchmark_group("xml");
        g.throughput(Throughput::Bytes(PIDF.len() as u64));
        g.bench_function("quick-xml-events/pidf", |b| {
            b.iter(|| {
                let mut r = quick_xml::NsReader::from_str(black_box(PIDF));
                let mut n = 0usize;
                loop {
                    match r.read_resolved_event().unwrap() {
                        (_, quick_xml::events::Event::Eof) => break,
                        _ => n += 1,
                    }
                }
                n
            })
        });
        g.bench_function("reader-tree/pidf", |b| {
            b.iter(|| xml::parse(black_box(PIDF.as_bytes())).unwrap())
        });
        g.finish();
    }
    codec!(c, "pidf", pidf, PIDF);
    codec!(c, "imdn", imdn, IMDN);
    codec!(c, "iscomposing", iscomposing, ISCOMPOSING);
    codec!(c, "watcherinfo", watcherinfo, WATCHERINFO);
    codec!(c, "rlmi", rlmi, RLMI);
}

criterion_group!(benches, codecs);
criterion_main!(benches);

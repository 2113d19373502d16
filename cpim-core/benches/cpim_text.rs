//! message/cpim parse and serialize, and address mapping (RFC 7247 s6).

use std::hint::black_box;

use cpim_core::addrmap::{self, Home};
use cpim_core::cpim::{CpimBuilder, CpimMessage};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const MSG: &[u8] = b"From: Alice Liddell <sip:alice@example.com>\r\n\
To: <sip:bob@example.net>\r\n\
NS: imdn <urn:ietf:params:imdn>\r\n\
imdn.Message-ID: ae6926cfcffa40a89e44252ce9e970a2\r\n\
DateTime: 2016-03-24T08:51:42+01:00\r\n\
imdn.Disposition-Notification: positive-delivery, display\r\n\
Subject:;lang=en Hello\r\n\
\r\n\
Content-Type: text/plain;charset=utf-8\r\n\
Content-Length: 28\r\n\
\r\n\
Hello Bob, this is a message";

fn cpim(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpim");
    g.throughput(Throughput::Bytes(MSG.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| CpimMessage::parse(black_box(MSG)).unwrap())
    });
    let parsed = CpimMessage::parse(MSG).unwrap();
    let mut out = Vec::with_capacity(1024);
    g.bench_function("serialize", |b| {
        b.iter(|| {
            out.clear();
            black_box(&parsed).serialize_into(&mut out);
            out.len()
        })
    });
    g.bench_function("parse+accessors", |b| {
        b.iter(|| {
            let m = CpimMessage::parse(black_box(MSG)).unwrap();
            (
                m.from().map(|f| f.uri.len()),
                m.imdn_message_id().map(|i| i.len()),
                m.payload().len(),
            )
        })
    });
    g.bench_function("build+serialize", |b| {
        b.iter(|| {
            CpimBuilder::new()
                .from("xmpp:juliet@example.com", Some("Juliet"))
                .to("sip:romeo@example.net", None)
                .datetime("2026-11-21T12:00:00Z")
                .imdn("abc123", Some("positive-delivery"))
                .content_type("text/plain; charset=utf-8")
                .payload(black_box(&b"Wherefore art thou?"[..]))
                .build()
                .to_bytes()
        })
    });
    g.finish();
}

fn addr(c: &mut Criterion) {
    let mut g = c.benchmark_group("addrmap");
    g.bench_function("sip_to_jid/plain", |b| {
        b.iter(|| {
            addrmap::sip_uri_to_jid(black_box("sip:alice@example.com;gr=phone"), Home::Sip).unwrap()
        })
    });
    g.bench_function("sip_to_jid/escaped", |b| {
        b.iter(|| {
            addrmap::sip_uri_to_jid(
                black_box("sip:Alice%20Liddell%40wonder@example.com"),
                Home::Sip,
            )
            .unwrap()
        })
    });
    g.bench_function("jid_to_sip/escaped", |b| {
        b.iter(|| {
            addrmap::jid_to_sip_uri(
                black_box("\\41lice\\20\\4ciddell\\40wonder@example.com"),
                Home::Sip,
            )
            .unwrap()
        })
    });
    g.bench_function("jid_to_sip/xmpp_home", |b| {
        b.iter(|| {
            addrmap::jid_to_sip_uri(black_box("juliet@example.com/balcony"), Home::Xmpp).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, cpim, addr);
criterion_main!(benches);

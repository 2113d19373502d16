//! Parse + serialize of a ~600 B SIP MESSAGE (RFC 3428), and building the 200 answer.

use bytes::Bytes;
use cpim_sip::codec::{Response, SipMessage};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const MESSAGE: &str = "MESSAGE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP alicepc.atlanta.example.com:5060;branch=z9hG4bK776sgdkse;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Liddell\" <sip:alice@atlanta.example.com>;tag=49583\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: asd88asd77a@1.2.3.4\r\n\
CSeq: 1 MESSAGE\r\n\
Contact: <sip:alice@alicepc.atlanta.example.com;transport=tcp>\r\n\
User-Agent: cpim-bench/1.0\r\n\
Accept: text/plain, message/cpim\r\n\
Date: Sat, 21 Nov 2026 14:00:00 GMT\r\n\
Content-Type: text/plain\r\n\
Content-Length: 170\r\n\
\r\n\
Watson, come here. I want to see you. This line is padded so that the whole message is about six hundred bytes long, which is typical for a SIP MESSAGE. ok done now......\r\n";

fn bench(c: &mut Criterion) {
    let wire = Bytes::from_static(MESSAGE.as_bytes());
    let mut g = c.benchmark_group("sip_codec");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("parse_message_600B", |b| {
        b.iter(|| SipMessage::parse(black_box(wire.clone())).unwrap())
    });
    let msg = SipMessage::parse(wire.clone()).unwrap();
    let mut out = Vec::with_capacity(1024);
    g.bench_function("serialize_message_600B", |b| {
        b.iter(|| {
            out.clear();
            black_box(&msg).encode(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("parse_and_serialize_600B", |b| {
        b.iter(|| {
            let m = SipMessage::parse(black_box(wire.clone())).unwrap();
            out.clear();
            m.encode(&mut out);
            black_box(out.len())
        })
    });
    let SipMessage::Request(req) = msg else {
        unreachable!()
    };
    g.bench_function("build_200_for_request", |b| {
        b.iter(|| {
            Response::for_request(black_box(&req), 200, None)
                .build_response()
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

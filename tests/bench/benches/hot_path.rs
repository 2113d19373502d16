//! The P1 hot path in process, without sockets: parse a SIP MESSAGE with cpim-sip's codec,
//! map it to an `Operation`, route it through the gateway's router pipeline
//! (`cpim_gateway::gateway::Gateway::start_with` with two no-op adapters, so authorize,
//! size, rate, hops, dedupe, journal, timeout and dispatch all run), and encode the XMPP stanza the
//! component would write.
//!
//! `cargo bench -p cpim-bench --features hot-path --bench hot_path`

use cpim_core::StatusCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::address::Address;
use cpim_core::model::{Operation, Outcome, TransId};
use cpim_gateway::config::{Config, Route};
use cpim_gateway::gateway::Gateway;
use cpim_sip::app::message::{inbound, InboundMessage};
use cpim_sip::codec::SipMessage;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const MESSAGE: &str = "MESSAGE sip:bob@xmpp.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK.b010000000042\r\n\
Max-Forwards: 70\r\n\
From: <sip:u1@sip.test>;tag=cpimbench\r\n\
To: <sip:bob@xmpp.test>\r\n\
Call-ID: cpc010000000042@cpim.bench\r\n\
CSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\n\
Content-Length: 64\r\n\
\r\n\
cpb010000000042 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn to_operation(wire: &Bytes, id: u64) -> Operation {
    let SipMessage::Request(req) = SipMessage::parse(wire.clone()).expect("parse") else {
        panic!("not a request")
    };
    let from = Address::parse(req.from().expect("From").uri.raw);
    let to = Address::parse(req.to().expect("To").uri.raw);
    let ruri = Address::parse(req.uri_str());
    let m = InboundMessage {
        request_uri: &ruri,
        from: &from,
        to: &to,
        call_id: req.call_id(),
        cseq: req.cseq().seq,
        max_forwards: req.max_forwards(),
        subject: None,
        content_language: None,
        content_type: req.content_type(),
        body: req.body(),
    };
    let mut msg = inbound(&m, TransId(id)).expect("map");
    // a fresh id per iteration, or the dedupe layer answers the repeat
    msg.message_id = Some(format!("bench-{id}"));
    Operation::Message(msg)
}

fn to_stanza(op: &Operation) -> String {
    static IDS: std::sync::LazyLock<cpim_xmpp::ids::MessageIds> =
        std::sync::LazyLock::new(|| cpim_xmpp::ids::MessageIds::new("bench stream secret"));
    let els = cpim_xmpp::mapping::outbound(cpim_xmpp::session::NS_COMPONENT, op, &IDS, || {
        "i1".to_owned()
    })
    .expect("stanza");
    els[0].to_xml()
}

/// An adapter that accepts everything; the XMPP one encodes the stanza first.
#[derive(Debug)]
struct Noop {
    name: &'static str,
    domain: &'static str,
    encode: bool,
    bytes: AtomicU64,
}

impl Adapter for Noop {
    fn name(&self) -> &str {
        self.name
    }
    fn serves(&self, a: &Address) -> bool {
        a.domain == self.domain
    }
    /// As the real adapters: SIP answers its sender only with the outcome, so it needs no
    /// write-ahead record (otherwise every iteration waits for an fsync).
    fn acknowledges_messages(&self) -> bool {
        self.name == "sip"
    }
    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome> {
        if self.encode {
            self.bytes
                .fetch_add(to_stanza(&op).len() as u64, Ordering::Relaxed);
        }
        let id = op.trans_id();
        Box::pin(async move { Outcome::ok(id) })
    }
}

fn bench(c: &mut Criterion) {
    let wire = Bytes::from_static(MESSAGE.as_bytes());
    let mut g = c.benchmark_group("p1_hot_path");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sip_parse", |b| {
        b.iter(|| SipMessage::parse(black_box(wire.clone())).unwrap())
    });
    let mut n = 0u64;
    g.bench_function("sip_parse_and_map", |b| {
        b.iter(|| {
            n += 1;
            to_operation(black_box(&wire), n)
        })
    });
    let op = to_operation(&wire, 0);
    g.bench_function("xmpp_encode_stanza", |b| {
        b.iter(|| to_stanza(black_box(&op)))
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("cpim-bench-hot-path-{}", std::process::id()));
    let mut cfg = Config {
        adapters: Vec::new(),
        routes: vec![
            Route {
                domain: "sip.test".into(),
                adapter: "sip".into(),
            },
            Route {
                domain: "xmpp.test".into(),
                adapter: "xmpp".into(),
            },
        ],
        ..Config::default()
    };
    cfg.admin.enabled = false;
    cfg.queue.enabled = false;
    cfg.store.path = dir.clone();
    cfg.limits.rate_per_source = 1e12;
    cfg.limits.burst_per_source = 1e12;
    let xmpp = Arc::new(Noop {
        name: "xmpp",
        domain: "xmpp.test",
        encode: true,
        bytes: AtomicU64::new(0),
    });
    let sip = Arc::new(Noop {
        name: "sip",
        domain: "sip.test",
        encode: false,
        bytes: AtomicU64::new(0),
    });
    let gw = rt
        .block_on(Gateway::start_with(
            cfg,
            vec![sip as Arc<dyn Adapter>, xmpp.clone() as Arc<dyn Adapter>],
        ))
        .expect("gateway");
    let ingress = gw.ingress.clone();
    // one call first: the route must accept it
    let first = rt.block_on(ingress.submit("sip", to_operation(&wire, u64::MAX)));
    assert_eq!(
        first.status.code,
        StatusCode::OK,
        "router refused the benchmark message: {:?}",
        first.status
    );
    let mut n = 1u64 << 32;
    g.bench_function("sip_parse_map_route_encode", |b| {
        b.iter(|| {
            n += 1;
            let op = to_operation(&wire, n);
            let out = rt.block_on(ingress.submit("sip", op));
            debug_assert_eq!(out.status.code, StatusCode::OK);
            out
        })
    });
    g.finish();
    rt.block_on(gw.shutdown());
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);

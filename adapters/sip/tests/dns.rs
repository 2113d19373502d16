//! RFC 3263 over real DNS: the testkit's DNS responder on 127.0.0.1 (`cpim_testkit::dns`,
//! also used by the XMPP adapter's s2s test) answers NAPTR, SRV and A for test domains, and
//! endpoints configured with `dns_servers` pointing at it must
//!
//! - honour NAPTR order/preference and SRV priority/weight (RFC 3263 s4.1, s4.2),
//! - fall back from NAPTR to SRV and from SRV to A with the default port (s4.1, s4.2),
//! - deliver `sip:user@domain` to the endpoint DNS designates,
//! - fail over to the next target on a transport failure or a 503 (RFC 3263 s4.3,
//!   RFC 3261 s21.5.4), and report 503 when every target is dead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use cpim_sip::codec::{HeaderName, Method, Request, Response};
use cpim_sip::endpoint::{Endpoint, EndpointConfig, IncomingRequests, SendError, Target};
use cpim_sip::transport::resolve::ResolvedTarget;
use cpim_sip::transport::Transport;
use cpim_testkit::dns::{a_localhost as a_lo, name, naptr, responder as dns_responder, srv, Zone};
use hickory_resolver::proto::rr::RecordType;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn cfg(dns: SocketAddr, udp: bool) -> EndpointConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    EndpointConfig {
        udp: if udp { vec![any] } else { Vec::new() },
        tcp: vec![any],
        tls: Vec::new(),
        dns: true,
        dns_servers: vec![dns],
        static_targets: HashMap::new(),
        ..EndpointConfig::default()
    }
}

/// An endpoint without DNS whose TU answers every request with `code` and reports
/// `(label, transport)`.
async fn peer(
    label: &'static str,
    code: u16,
    seen: mpsc::UnboundedSender<(&'static str, Transport)>,
) -> Endpoint {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (ep, inc) = Endpoint::bind(EndpointConfig {
        udp: vec![any],
        tcp: vec![any],
        tls: Vec::new(),
        dns: false,
        static_targets: HashMap::new(),
        ..EndpointConfig::default()
    })
    .await
    .unwrap();
    answer(inc, label, code, seen);
    ep
}

fn answer(
    mut inc: IncomingRequests,
    label: &'static str,
    code: u16,
    seen: mpsc::UnboundedSender<(&'static str, Transport)>,
) {
    tokio::spawn(async move {
        while let Some(r) = inc.recv().await {
            let _ = seen.send((label, r.transport));
            let resp = Response::for_request(&r.request, code, None)
                .build_response()
                .unwrap();
            r.respond(resp).unwrap();
        }
    });
}

fn message(to: &str) -> Request {
    Request::builder(&Method::Message, to)
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, "<sip:alice@a.example>;tag=t1")
        .header(HeaderName::To, &format!("<{to}>"))
        .header(HeaderName::CallId, &cpim_sip::codec::new_tag())
        .header(HeaderName::CSeq, "1 MESSAGE")
        .body("text/plain", b"hi".to_vec())
        .build_request()
        .unwrap()
}

fn lo(t: Transport, port: u16) -> (Transport, SocketAddr) {
    (t, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn plain(list: &[ResolvedTarget]) -> Vec<(Transport, SocketAddr)> {
    list.iter().map(|t| (t.transport, t.addr)).collect()
}

/// A TCP port on 127.0.0.1 with nothing listening (connection refused).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// RFC 3263 s4.1 (NAPTR order, then preference; unsupported services skipped) and s4.2
/// (SRV priority, then weight), and delivery to the endpoint DNS puts first.
#[tokio::test]
async fn naptr_then_srv_order_is_honoured_and_message_reaches_the_first_target() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let b = peer("b", 200, seen_tx.clone()).await;
    let c = peer("c", 200, seen_tx).await;
    let b_tcp = b.local_addr(Transport::Tcp).unwrap().port();
    let b_udp = b.local_addr(Transport::Udp).unwrap().port();
    let c_tcp = c.local_addr(Transport::Tcp).unwrap().port();

    let mut z = Zone::new();
    z.insert(
        (name("naptr.test."), RecordType::NAPTR),
        vec![
            // same order: preference 10 (TCP) before 20 (UDP)
            naptr(10, 20, "SIP+D2U", "_sip._udp.naptr.test."),
            naptr(10, 10, "SIP+D2T", "_sip._tcp.naptr.test."),
            // higher order: last, whatever its preference
            naptr(20, 1, "SIP+D2U", "_sip._udp.late.naptr.test."),
            // TLS is not enabled on the client: skipped
            naptr(5, 1, "SIPS+D2T", "_sips._tcp.naptr.test."),
        ],
    );
    z.insert(
        (name("_sip._tcp.naptr.test."), RecordType::SRV),
        vec![
            srv(10, 10, 40003, "x.naptr.test."),
            srv(10, 60, c_tcp, "c.naptr.test."),
            srv(5, 0, b_tcp, "b.naptr.test."),
        ],
    );
    z.insert(
        (name("_sip._udp.naptr.test."), RecordType::SRV),
        vec![srv(1, 0, b_udp, "b.naptr.test.")],
    );
    z.insert(
        (name("_sip._udp.late.naptr.test."), RecordType::SRV),
        vec![srv(0, 0, 40009, "x.naptr.test.")],
    );
    z.insert(
        (name("_sips._tcp.naptr.test."), RecordType::SRV),
        vec![srv(0, 0, 40010, "x.naptr.test.")],
    );
    for h in ["b", "c", "x"] {
        z.insert(
            (name(&format!("{h}.naptr.test.")), RecordType::A),
            vec![a_lo()],
        );
    }
    let (dns, _log) = dns_responder(Arc::new(Mutex::new(z))).await;
    let (a, _ai) = Endpoint::bind(cfg(dns, true)).await.unwrap();

    let list = a.resolve("sip:user@naptr.test").await.unwrap();
    assert_eq!(
        plain(&list),
        vec![
            lo(Transport::Tcp, b_tcp),
            lo(Transport::Tcp, c_tcp),
            lo(Transport::Tcp, 40003),
            lo(Transport::Udp, b_udp),
            lo(Transport::Udp, 40009),
        ]
    );
    assert!(list
        .iter()
        .all(|t| t.server_name.as_deref() == Some("naptr.test")));

    let resp = a
        .send_request(
            message("sip:user@naptr.test"),
            Target::Uri("sip:user@naptr.test".into()),
        )
        .await
        .unwrap();
    assert_eq!(resp.code(), 200);
    assert_eq!(seen.recv().await.unwrap(), ("b", Transport::Tcp));
    assert!(seen.try_recv().is_err(), "only the first target is used");
}

/// RFC 3263 s4.1: no NAPTR -> SRV for each supported transport; s4.2: no SRV -> A with
/// the transport's default port.
#[tokio::test]
async fn no_naptr_falls_back_to_srv_and_no_srv_to_a_with_default_port() {
    let mut z = Zone::new();
    z.insert(
        (name("_sip._udp.srv.test."), RecordType::SRV),
        vec![srv(0, 0, 41001, "h.srv.test.")],
    );
    z.insert(
        (name("_sip._tcp.srv.test."), RecordType::SRV),
        vec![srv(0, 0, 41002, "h.srv.test.")],
    );
    z.insert((name("h.srv.test."), RecordType::A), vec![a_lo()]);
    z.insert((name("plain.test."), RecordType::A), vec![a_lo()]);
    let (dns, mut log) = dns_responder(Arc::new(Mutex::new(z))).await;
    let (a, _ai) = Endpoint::bind(cfg(dns, true)).await.unwrap();

    let list = a.resolve("sip:user@srv.test").await.unwrap();
    assert_eq!(
        plain(&list),
        vec![lo(Transport::Udp, 41001), lo(Transport::Tcp, 41002)]
    );
    // `transport=tcp` restricts the SRV queries to TCP (s4.1)
    let list = a.resolve("sip:user@srv.test;transport=tcp").await.unwrap();
    assert_eq!(plain(&list), vec![lo(Transport::Tcp, 41002)]);

    let list = a.resolve("sip:user@plain.test").await.unwrap();
    assert_eq!(plain(&list), vec![lo(Transport::Udp, 5060)]);
    let list = a
        .resolve("sip:user@plain.test;transport=tcp")
        .await
        .unwrap();
    assert_eq!(plain(&list), vec![lo(Transport::Tcp, 5060)]);

    let err = a.resolve("sip:user@nothing.test").await.unwrap_err();
    assert_eq!(err.status_code(), 503, "{err}");

    let mut queries = Vec::new();
    while let Ok(q) = log.try_recv() {
        queries.push(q);
    }
    for want in [
        "srv.test. NAPTR",
        "_sip._udp.srv.test. SRV",
        "_sip._tcp.srv.test. SRV",
        "plain.test. NAPTR",
        "_sip._udp.plain.test. SRV",
        "plain.test. A",
    ] {
        assert!(
            queries.iter().any(|q| q == want),
            "{want} not in {queries:?}"
        );
    }
}

/// RFC 3263 s4.3: a refused connection to the first SRV target moves on to the second,
/// and the caller gets the second target's 200.
#[tokio::test]
async fn transport_failure_fails_over_to_the_next_srv_target() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let b = peer("b", 200, seen_tx).await;
    let dead = closed_port().await;
    let b_tcp = b.local_addr(Transport::Tcp).unwrap().port();
    let mut z = Zone::new();
    z.insert(
        (name("_sip._tcp.fo.test."), RecordType::SRV),
        vec![
            srv(2, 0, b_tcp, "h.fo.test."),
            srv(1, 0, dead, "h.fo.test."),
        ],
    );
    z.insert((name("h.fo.test."), RecordType::A), vec![a_lo()]);
    let (dns, _log) = dns_responder(Arc::new(Mutex::new(z))).await;
    let (a, _ai) = Endpoint::bind(cfg(dns, false)).await.unwrap();

    let list = a.resolve("sip:bob@fo.test").await.unwrap();
    assert_eq!(
        plain(&list),
        vec![lo(Transport::Tcp, dead), lo(Transport::Tcp, b_tcp)]
    );
    let resp = a
        .send_request(
            message("sip:bob@fo.test"),
            Target::Uri("sip:bob@fo.test".into()),
        )
        .await
        .unwrap();
    assert_eq!(resp.code(), 200);
    assert_eq!(seen.recv().await.unwrap(), ("b", Transport::Tcp));
}

/// RFC 3263 s4.3 / RFC 3261 s21.5.4: a 503 from the first target moves on to the next;
/// a 503 from the last one is what the caller gets.
#[tokio::test]
async fn a_503_fails_over_and_the_last_503_is_returned() {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let busy = peer("busy", 503, seen_tx.clone()).await;
    let ok = peer("ok", 200, seen_tx).await;
    let busy_tcp = busy.local_addr(Transport::Tcp).unwrap().port();
    let ok_tcp = ok.local_addr(Transport::Tcp).unwrap().port();
    let mut z = Zone::new();
    z.insert(
        (name("_sip._tcp.busy.test."), RecordType::SRV),
        vec![
            srv(1, 0, busy_tcp, "h.busy.test."),
            srv(2, 0, ok_tcp, "h.busy.test."),
        ],
    );
    z.insert(
        (name("_sip._tcp.allbusy.test."), RecordType::SRV),
        vec![
            srv(1, 0, busy_tcp, "h.busy.test."),
            srv(2, 0, busy_tcp, "h.busy.test."),
        ],
    );
    z.insert((name("h.busy.test."), RecordType::A), vec![a_lo()]);
    let (dns, _log) = dns_responder(Arc::new(Mutex::new(z))).await;
    let (a, _ai) = Endpoint::bind(cfg(dns, false)).await.unwrap();

    let resp = a
        .send_request(
            message("sip:bob@busy.test"),
            Target::Uri("sip:bob@busy.test".into()),
        )
        .await
        .unwrap();
    assert_eq!(resp.code(), 200);
    assert_eq!(seen.recv().await.unwrap(), ("busy", Transport::Tcp));
    assert_eq!(seen.recv().await.unwrap(), ("ok", Transport::Tcp));

    let resp = a
        .send_request(
            message("sip:bob@allbusy.test"),
            Target::Uri("sip:bob@allbusy.test".into()),
        )
        .await
        .unwrap();
    assert_eq!(resp.code(), 503);
    assert_eq!(seen.recv().await.unwrap(), ("busy", Transport::Tcp));
    assert_eq!(seen.recv().await.unwrap(), ("busy", Transport::Tcp));
}

/// With every target refusing the connection the caller gets 503 (RFC 3261 s8.1.3.1).
#[tokio::test]
async fn all_targets_dead_gives_503() {
    let (d1, d2) = (closed_port().await, closed_port().await);
    let mut z = Zone::new();
    z.insert(
        (name("_sip._tcp.dead.test."), RecordType::SRV),
        vec![srv(1, 0, d1, "h.dead.test."), srv(2, 0, d2, "h.dead.test.")],
    );
    z.insert((name("h.dead.test."), RecordType::A), vec![a_lo()]);
    let (dns, _log) = dns_responder(Arc::new(Mutex::new(z))).await;
    let (a, _ai) = Endpoint::bind(cfg(dns, false)).await.unwrap();

    let err = a
        .send_request(
            message("sip:bob@dead.test"),
            Target::Uri("sip:bob@dead.test".into()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Transport(addr) if addr.port() == d2),
        "{err:?}"
    );
    assert_eq!(err.status_code(), 503);
}

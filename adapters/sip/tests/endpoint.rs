//! The endpoint over real sockets on 127.0.0.1 (ephemeral ports): UDP, TCP and TLS
//! MESSAGE transactions between two endpoints, retransmission absorption, malformed
//! requests answered with a 4xx naming the problem, RFC 3261 s8.2 refusals, the UDP->TCP
//! size switch, body limits, timer F as 408, RFC 3263 static targets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cpim_sip::codec::{HeaderName, Method, Request, Response};
use cpim_sip::endpoint::{Endpoint, EndpointConfig, IncomingRequests, SendError, Target};
use cpim_sip::transport::resolve::StaticTarget;
use cpim_sip::transport::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

fn cfg() -> EndpointConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    EndpointConfig {
        udp: vec![any],
        tcp: vec![any],
        tls: Vec::new(),
        dns: false,
        static_targets: HashMap::new(),
        ..EndpointConfig::default()
    }
}

/// Answers every request with 200 (tagging the To) and reports what it saw.
fn spawn_tu(
    mut inc: IncomingRequests,
) -> tokio::sync::mpsc::UnboundedReceiver<(Method, Transport, usize)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(r) = inc.recv().await {
            let _ = tx.send((
                r.request.method().clone(),
                r.transport,
                r.request.body().len(),
            ));
            let resp = Response::for_request(&r.request, 200, None)
                .build_response()
                .unwrap();
            r.respond(resp).unwrap();
        }
    });
    rx
}

fn message(to: &str, body: &str) -> Request {
    Request::builder(&Method::Message, to)
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, "<sip:alice@a.test>;tag=t1")
        .header(HeaderName::To, &format!("<{to}>"))
        .header(HeaderName::CallId, &cpim_sip::codec::new_tag())
        .header(HeaderName::CSeq, "1 MESSAGE")
        .body("text/plain", body.as_bytes().to_vec())
        .build_request()
        .unwrap()
}

#[tokio::test]
async fn message_over_udp_and_tcp() {
    let (a, _ai) = Endpoint::bind(cfg()).await.unwrap();
    let (b, bi) = Endpoint::bind(cfg()).await.unwrap();
    let mut seen = spawn_tu(bi);
    for t in [Transport::Udp, Transport::Tcp] {
        let resp = a
            .send_request(
                message("sip:bob@b.test", "hello"),
                Target::Addr(t, b.local_addr(t).unwrap()),
            )
            .await
            .unwrap();
        assert_eq!(resp.code(), 200);
        assert!(resp.to_tag().is_some());
        let (m, via, len) = seen.recv().await.unwrap();
        assert_eq!((m, via, len), (Method::Message, t, 5));
    }
}

#[tokio::test]
async fn message_over_tls() {
    let dir = std::env::temp_dir().join(format!("cpim-sip-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let mut bcfg = cfg();
    bcfg.tls = vec!["127.0.0.1:0".parse().unwrap()];
    bcfg.tls_cert = Some(cert.clone());
    bcfg.tls_key = Some(key);
    let (b, bi) = Endpoint::bind(bcfg).await.unwrap();
    let mut acfg = cfg();
    acfg.tls_ca = Some(cert);
    let (a, _ai) = Endpoint::bind(acfg).await.unwrap();
    let mut seen = spawn_tu(bi);
    let resp = a
        .send_request(
            message("sip:bob@b.test", "secret"),
            Target::Addr(Transport::Tls, b.local_addr(Transport::Tls).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(resp.code(), 200);
    assert_eq!(seen.recv().await.unwrap().1, Transport::Tls);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn static_target_resolution() {
    let (b, bi) = Endpoint::bind(cfg()).await.unwrap();
    let _seen = spawn_tu(bi);
    let mut acfg = cfg();
    acfg.static_targets.insert(
        "b.test".into(),
        vec![StaticTarget {
            transport: Transport::Tcp,
            address: b.local_addr(Transport::Tcp).unwrap().to_string(),
        }],
    );
    let (a, _ai) = Endpoint::bind(acfg).await.unwrap();
    let targets = a.resolve("sip:bob@B.test").await.unwrap();
    assert_eq!(targets[0].transport, Transport::Tcp);
    let resp = a
        .send_request(
            message("sip:bob@b.test", "x"),
            Target::Uri("sip:bob@b.test".into()),
        )
        .await
        .unwrap();
    assert_eq!(resp.code(), 200);
    // an unknown domain with DNS off has no target
    assert!(a.resolve("sip:bob@nowhere.test").await.is_err());
}

/// RFC 3261 s18.1.1 / RFC 3428 s7: a request over 1300 bytes goes over TCP, not UDP.
#[tokio::test]
async fn large_request_moves_to_tcp() {
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut bcfg = cfg();
    bcfg.udp = vec![addr];
    bcfg.tcp = vec![addr];
    let (_b, bi) = Endpoint::bind(bcfg).await.unwrap();
    let mut seen = spawn_tu(bi);
    let (a, _ai) = Endpoint::bind(cfg()).await.unwrap();
    let big = "x".repeat(2000);
    let resp = a
        .send_request(
            message("sip:bob@b.test", &big),
            Target::Addr(Transport::Udp, addr),
        )
        .await
        .unwrap();
    assert_eq!(resp.code(), 200);
    assert_eq!(
        seen.recv().await.unwrap(),
        (Method::Message, Transport::Tcp, 2000)
    );
    let resp = a
        .send_request(
            message("sip:bob@b.test", "small"),
            Target::Addr(Transport::Udp, addr),
        )
        .await
        .unwrap();
    assert_eq!(resp.code(), 200);
    assert_eq!(seen.recv().await.unwrap().1, Transport::Udp);
}

/// Timer F: nobody answers, the future yields a timeout the TU reports as 408.
#[tokio::test]
async fn no_answer_is_408() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut acfg = cfg();
    acfg.t1_ms = 10; // F = 640 ms
    let (a, _ai) = Endpoint::bind(acfg).await.unwrap();
    let err = a
        .send_request(
            message("sip:bob@b.test", "x"),
            Target::Addr(Transport::Udp, silent.local_addr().unwrap()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Timeout));
    assert_eq!(err.status_code(), 408);
    // the request was retransmitted (timer E) before F fired
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(50), silent.recv_from(&mut buf)).await
    {
        n += 1;
    }
    assert!(n >= 3, "expected retransmissions, got {n}");
}

/// A TCP connection that is refused fails fast (s17.1.4) rather than waiting for F.
#[tokio::test]
async fn refused_tcp_is_transport_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let (a, _ai) = Endpoint::bind(cfg()).await.unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        a.send_request(
            message("sip:bob@b.test", "x"),
            Target::Addr(Transport::Tcp, addr),
        ),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(err, SendError::Transport(_)), "{err}");
    assert_eq!(err.status_code(), 503);
}

fn raw_message(branch: &str, call_id: &str, method: &str, extra: &str) -> String {
    format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:9;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@a.test>;tag=r1\r\n\
To: <sip:bob@b.test>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 {method}\r\n\
{extra}Content-Type: text/plain\r\n\
Content-Length: 2\r\n\r\nhi"
    )
}

async fn udp_exchange(sock: &UdpSocket, to: SocketAddr, msg: &str) -> String {
    sock.send_to(msg.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A retransmitted MESSAGE is absorbed: the TU sees it once, the same 200 is re-sent.
#[tokio::test]
async fn udp_retransmission_absorbed() {
    let (b, bi) = Endpoint::bind(cfg()).await.unwrap();
    let mut seen = spawn_tu(bi);
    let to = b.local_addr(Transport::Udp).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let msg = raw_message("z9hG4bKretrans1", "retrans1", "MESSAGE", "");
    let first = udp_exchange(&sock, to, &msg).await;
    assert!(first.starts_with("SIP/2.0 200 OK\r\n"), "{first}");
    // rport/received were added to the Via of the answer (RFC 3581)
    let port = sock.local_addr().unwrap().port();
    assert!(
        first.contains(&format!("received=127.0.0.1;rport={port}")),
        "{first}"
    );
    let second = udp_exchange(&sock, to, &msg).await;
    assert_eq!(first, second, "the identical response is re-sent");
    assert!(seen.recv().await.is_some());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), seen.recv())
            .await
            .is_err(),
        "the TU saw the request twice"
    );
}

/// Malformed requests get a 4xx with a reason naming the problem and never reach the TU.
#[tokio::test]
async fn malformed_requests_over_udp() {
    let mut bcfg = cfg();
    bcfg.max_body_bytes = 100;
    let (b, bi) = Endpoint::bind(bcfg).await.unwrap();
    let mut seen = spawn_tu(bi);
    let to = b.local_addr(Transport::Udp).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    let no_call_id = raw_message("z9hG4bKbad1", "x", "MESSAGE", "").replace("Call-ID: x\r\n", "");
    let r = udp_exchange(&sock, to, &no_call_id).await;
    assert!(
        r.starts_with("SIP/2.0 400 Bad Request (missing Call-ID header)\r\n"),
        "{r}"
    );
    assert!(r.contains("branch=z9hG4bKbad1"));

    let bad_version =
        raw_message("z9hG4bKbad2", "bad2", "MESSAGE", "").replacen("SIP/2.0\r\n", "SIP/3.0\r\n", 1);
    let r = udp_exchange(&sock, to, &bad_version).await;
    assert!(r.starts_with("SIP/2.0 505 "), "{r}");

    let big = raw_message("z9hG4bKbad3", "bad3", "MESSAGE", "").replace(
        "Content-Length: 2\r\n\r\nhi",
        &format!("Content-Length: 200\r\n\r\n{}", "y".repeat(200)),
    );
    let r = udp_exchange(&sock, to, &big).await;
    assert!(r.starts_with("SIP/2.0 413 "), "{r}");

    let invite = raw_message("z9hG4bKinv", "inv", "INVITE", "");
    let r = udp_exchange(&sock, to, &invite).await;
    assert!(r.starts_with("SIP/2.0 405 "), "{r}");
    assert!(
        r.contains("\r\nAllow: MESSAGE, OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, ACK\r\n"),
        "{r}"
    );
    // the ACK for the 405 is absorbed (no answer)
    let ack = raw_message("z9hG4bKinv", "inv", "ACK", "");
    sock.send_to(ack.as_bytes(), to).await.unwrap();

    let unknown = raw_message("z9hG4bKunk", "unk", "FROBNICATE", "");
    let r = udp_exchange(&sock, to, &unknown).await;
    assert!(r.starts_with("SIP/2.0 501 "), "{r}");
    assert!(r.contains("\r\nAllow: "), "{r}");

    let req = raw_message("z9hG4bKreq", "req", "MESSAGE", "Require: foo, 100rel\r\n");
    let r = udp_exchange(&sock, to, &req).await;
    assert!(r.starts_with("SIP/2.0 420 "), "{r}");
    assert!(r.contains("\r\nUnsupported: foo, 100rel\r\n"), "{r}");

    let scheme = raw_message("z9hG4bKsch", "sch", "MESSAGE", "")
        .replace("MESSAGE sip:bob@127.0.0.1", "MESSAGE http://x");
    let r = udp_exchange(&sock, to, &scheme).await;
    assert!(r.starts_with("SIP/2.0 416 "), "{r}");

    // none of the above reached the TU
    assert!(
        tokio::time::timeout(Duration::from_millis(200), seen.recv())
            .await
            .is_err()
    );
}

async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        assert!(n > 0, "connection closed before a response");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if text.contains("\r\n\r\n") {
            return text;
        }
    }
}

/// On TCP a message that frames but does not parse gets 400 and the connection stays
/// usable; a negative Content-Length (RFC 4475 s3.1.2.3) gets 400 and the connection is
/// closed.
#[tokio::test]
async fn tcp_malformed_and_framing() {
    let (b, bi) = Endpoint::bind(cfg()).await.unwrap();
    let mut seen = spawn_tu(bi);
    let to = b.local_addr(Transport::Tcp).unwrap();
    let mut s = TcpStream::connect(to).await.unwrap();
    let bad = raw_message("z9hG4bKt1", "t1", "MESSAGE", "")
        .replace("CSeq: 1 MESSAGE", "CSeq: 1 OPTIONS")
        .replace("/UDP", "/TCP");
    s.write_all(bad.as_bytes()).await.unwrap();
    let r = read_response(&mut s).await;
    assert!(
        r.starts_with(
            "SIP/2.0 400 Bad Request (CSeq method does not match the request method)\r\n"
        ),
        "{r}"
    );
    let good = raw_message("z9hG4bKt2", "t2", "MESSAGE", "").replace("/UDP", "/TCP");
    s.write_all(format!("\r\n\r\n{good}").as_bytes())
        .await
        .unwrap();
    let r = read_response(&mut s).await;
    // the keep-alive answer (CRLF) may precede the response
    assert!(r.trim_start().starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    assert_eq!(seen.recv().await.unwrap().1, Transport::Tcp);

    let ncl = raw_message("z9hG4bKt3", "t3", "MESSAGE", "")
        .replace("Content-Length: 2", "Content-Length: -999");
    s.write_all(ncl.as_bytes()).await.unwrap();
    let r = read_response(&mut s).await;
    assert!(
        r.starts_with("SIP/2.0 400 Bad Request (invalid Content-Length header: negative)\r\n"),
        "{r}"
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "connection closed after the framing error");
}

#[test]
fn config_defaults_and_unknown_fields() {
    let d = EndpointConfig::default();
    assert_eq!(d.udp, vec!["127.0.0.1:5060".parse::<SocketAddr>().unwrap()]);
    assert_eq!(d.tcp, d.udp);
    assert_eq!(d.udp_max_request_bytes, 1300);
    let json = serde_json::to_string(&d).unwrap();
    let back: EndpointConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d);
    let partial: EndpointConfig = serde_json::from_str(r#"{"tcp": ["127.0.0.1:5080"]}"#).unwrap();
    assert_eq!(partial.udp, d.udp);
    assert!(serde_json::from_str::<EndpointConfig>(r#"{"udpp": []}"#).is_err());
}

//! Adversarial tests of the SIP stream listeners, driven from outside over raw sockets:
//! connection caps per source (RFC 3261 s18 leaves them to the implementation; the
//! threat model asks for them), the message deadline that trickled bytes do not move,
//! and `sips:` targets that never go over a plain transport (RFC 3261 s26.2.2).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cpim_sip::codec::{HeaderName, Method, Request, Response};
use cpim_sip::endpoint::{Endpoint, EndpointConfig, IncomingRequests, SendError, Target};
use cpim_sip::transport::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

fn cfg() -> EndpointConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    EndpointConfig {
        udp: Vec::new(),
        tcp: vec![any],
        tls: Vec::new(),
        dns: false,
        static_targets: HashMap::new(),
        ..EndpointConfig::default()
    }
}

fn answer_all(mut inc: IncomingRequests) {
    tokio::spawn(async move {
        while let Some(r) = inc.recv().await {
            let resp = Response::for_request(&r.request, 200, None)
                .build_response()
                .unwrap();
            let _ = r.respond(resp);
        }
    });
}

fn options(n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKlis{n}\r\n\
         Max-Forwards: 70\r\nTo: <sip:gw@127.0.0.1>\r\nFrom: <sip:x@127.0.0.1>;tag=f{n}\r\n\
         Call-ID: lis{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{src}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// True when the server closed the connection (EOF or reset) within `wait`.
async fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 512];
    match tokio::time::timeout(wait, s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

/// 100 idle connections from one source: only `max_connections_per_source` stay open,
/// the others are closed unanswered; another source is still admitted and served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_are_capped_per_source() {
    let (ep, inc) = Endpoint::bind(EndpointConfig {
        max_connections_per_source: 8,
        max_connections: 1000,
        ..cfg()
    })
    .await
    .unwrap();
    answer_all(inc);
    let addr = ep.local_addr(Transport::Tcp).unwrap();
    let mut conns = Vec::new();
    for _ in 0..100 {
        let mut s = connect_from("127.0.0.1", addr).await;
        // a slowloris start: one byte of a request, never finished
        let _ = s.write_all(b"O").await;
        conns.push(s);
    }
    let mut closed = 0;
    for s in conns.iter_mut() {
        if closed_by_server(s, Duration::from_millis(500)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 92, "100 connections from one source, cap 8");
    // another source is admitted and served
    let mut other = connect_from("127.0.0.2", addr).await;
    other.write_all(&options(1)).await.unwrap();
    let mut b = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(10), other.read(&mut b))
        .await
        .expect("an answer")
        .unwrap();
    assert!(
        b[..n].starts_with(b"SIP/2.0 200"),
        "{:?}",
        String::from_utf8_lossy(&b[..n])
    );
    // closing the held connections frees their slots
    drop(conns);
    let mut again = None;
    for _ in 0..50 {
        let mut s = connect_from("127.0.0.1", addr).await;
        s.write_all(&options(2)).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await;
        if let Ok(Ok(n)) = n {
            if n > 0 {
                again = Some(String::from_utf8_lossy(&b[..n]).to_string());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some_and(|r| r.starts_with("SIP/2.0 200")));
}

/// A request trickled one byte every 100 ms (which reset the old idle timer on every
/// byte) is cut when `message_timeout_secs` has passed since its first byte: the
/// connection closes before the request is complete, and no answer is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_request_is_cut_at_the_message_deadline() {
    let (ep, inc) = Endpoint::bind(EndpointConfig {
        message_timeout_secs: 1,
        idle_timeout_secs: 300,
        ..cfg()
    })
    .await
    .unwrap();
    answer_all(inc);
    let addr = ep.local_addr(Transport::Tcp).unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = options(3);
    let mut sent = 0;
    let mut b = [0u8; 256];
    let mut cut = false;
    for byte in &req {
        if s.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        sent += 1;
        // anything readable now is the server closing (it never answers a partial request)
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(n)) => panic!("unexpected answer: {:?}", String::from_utf8_lossy(&b[..n])),
            Err(_) => {}
        }
    }
    assert!(
        cut,
        "the trickled request was read to its end ({sent} bytes)"
    );
    assert!(
        sent < req.len(),
        "closed only after {sent} of {} bytes",
        req.len()
    );
}

/// RFC 3261 s26.2.2: a request to a `sips:` URI goes over TLS on every hop. Asked to
/// send one over plain TCP, the endpoint refuses before connecting; resolved from the
/// URI, it never puts plaintext on the wire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sips_target_never_goes_over_plain_tcp() {
    let (ep, inc) = Endpoint::bind(cfg()).await.unwrap();
    answer_all(inc);
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let uri = format!("sips:bob@127.0.0.1:{}", sink_addr.port());
    let req = Request::builder(&Method::Options, &uri)
        .header(HeaderName::From, "<sip:alice@127.0.0.1>;tag=a")
        .header(HeaderName::To, &format!("<{uri}>"))
        .header(HeaderName::CallId, "sips-1")
        .header(HeaderName::CSeq, "1 OPTIONS")
        .header(HeaderName::MaxForwards, "70")
        .build_request()
        .unwrap();
    let r = ep
        .send_request(req.clone(), Target::Addr(Transport::Tcp, sink_addr))
        .await;
    assert!(matches!(r, Err(SendError::Invalid(_))), "{r:?}");
    // resolved from the URI it is TLS or nothing: no plaintext SIP reaches the sink
    let ep2 = ep.clone();
    let send = tokio::spawn(async move { ep2.send_request(req, Target::Uri(uri)).await });
    let got = tokio::time::timeout(Duration::from_secs(2), sink.accept()).await;
    if let Ok(Ok((mut s, _))) = got {
        let mut b = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b))
            .await
            .map(|r| r.unwrap_or(0))
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&b[..n]);
        assert!(!text.contains("OPTIONS"), "plaintext sent: {text}");
        // what arrives is a TLS handshake record (RFC 8446 s5.1: content type 22)
        assert_eq!(b[..n].first(), Some(&0x16), "not a TLS ClientHello");
    }
    let r = tokio::time::timeout(Duration::from_secs(40), send)
        .await
        .unwrap()
        .unwrap();
    assert!(r.is_err(), "{r:?}");
}

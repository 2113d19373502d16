//! s2s mode against in-process peers (no real server needed):
//!
//! - a fake peer that completes dialback and then goes silent is detected as dead by the
//!   XEP-0199 ping on our outgoing stream; the stream is torn down, and stanzas delivered
//!   while it is down are queued and sent once, in order, on the next stream;
//! - an incoming stream that stays silent is closed with `<connection-timeout/>`
//!   (RFC 6120 s4.9.3.4);
//! - two gateways federate with each other: the one serving two domains sends from both
//!   (one outgoing stream per local domain, each with its own dialback) and finds the
//!   other through `_xmpp-server._tcp` SRV records (RFC 6120 s3.2.1) answered by the testkit's
//!   DNS responder on 127.0.0.1 (`cpim_testkit::dns`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::Adapter;
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Message, Operation, TransId};
use cpim_testkit::dns;
use cpim_xmpp::{start, Mode, XmppConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

mod common;
use common::{free_port, init_tracing, plain_s2s, write_cert_pair, Rec};

/// What the peer sent until `needle` (or EOF / 10 s of silence).
async fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut seen = String::new();
    common::read_until(s, &mut seen, needle).await;
    seen
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("fake peer event")
        .expect("fake peer")
}

fn msg(t: u64, from: (&str, &str), to: (&str, &str), body: &str) -> Operation {
    Operation::Message(Message::new(
        TransId(t),
        Address::new(Scheme::Xmpp, Some(from.0), from.1),
        Address::new(Scheme::Xmpp, Some(to.0), to.1),
        "text/plain",
        body,
    ))
}

/// Answers every complete `<iq …>…</iq>` ping in `pending` with a result (on the same
/// stream: our hub takes an answer from wherever it arrives).
fn answer_pings(pending: &mut String) -> String {
    let mut out = String::new();
    while let Some(end) = pending.find("</iq>") {
        let seg = pending[..end].to_owned();
        *pending = pending[end + 5..].to_owned();
        let Some(start) = seg.rfind("<iq ") else {
            continue;
        };
        let tag = &seg[start..];
        if !tag.contains("urn:xmpp:ping") {
            continue;
        }
        if let Some(id) = tag.split("id=\"").nth(1).and_then(|r| r.split('"').next()) {
            out.push_str(&format!(
                "<iq type='result' from='peer.test' to='gw.test' id='{id}'/>"
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_s2s_peer_is_detected_and_queued_stanzas_go_out_once_in_order() {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            n += 1;
            let tx = ev_tx.clone();
            tokio::spawn(async move {
                let hdr = read_until(&mut s, "<stream:stream").await;
                assert!(hdr.contains("jabber:server"), "{hdr}");
                if n > 1 {
                    // Hold the second stream in negotiation so deliveries queue up.
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
                s.write_all(format!("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='peer.test' id='s{n}' version='1.0'><stream:features/>").as_bytes()).await.unwrap();
                let db = read_until(&mut s, "</db:result>").await;
                assert!(db.contains("from=\"gw.test\""), "{db}");
                s.write_all(b"<db:result from='peer.test' to='gw.test' type='valid'/>")
                    .await
                    .unwrap();
                let _ = tx.send(format!("up{n}"));
                let mut all = String::new();
                let mut pending = String::new();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            let chunk = String::from_utf8_lossy(&buf[..k]).into_owned();
                            all.push_str(&chunk);
                            if n > 1 {
                                pending.push_str(&chunk);
                                let ans = answer_pings(&mut pending);
                                if !ans.is_empty() && s.write_all(ans.as_bytes()).await.is_err() {
                                    break;
                                }
                                let _ = tx.send(chunk);
                            }
                        }
                    }
                }
                let _ = tx.send(format!("closed{n}:{all}"));
            });
        }
    });
    let cfg = XmppConfig {
        mode: plain_s2s(
            format!("127.0.0.1:{}", free_port()),
            &[("peer.test", &addr.to_string())],
        ),
        keepalive_secs: 60,
        ping_interval_secs: 1,
        ping_timeout_secs: 1,
        reconnect_initial_ms: 50,
        reconnect_max_ms: 200,
        delivery_timeout_secs: 20,
        ..XmppConfig::default()
    };
    let (in_tx, _in_rx) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(Rec(in_tx))).await.unwrap();
    let a = h.adapter();
    let deliver = |t: u64, body: &'static str| {
        let a = a.clone();
        tokio::spawn(async move {
            a.deliver(msg(t, ("alice", "gw.test"), ("bob", "peer.test"), body))
                .await
        })
    };
    let d1 = deliver(1, "first");
    assert_eq!(next(&mut ev_rx).await, "up1");
    // The peer answers nothing: a liveness ping goes out, then the stream is closed.
    let closed = loop {
        let e = next(&mut ev_rx).await;
        if e.starts_with("closed1") {
            break e;
        }
    };
    assert!(closed.contains("first"), "{closed}");
    assert!(closed.contains("id=\"live-"), "no liveness ping: {closed}");
    assert!(closed.ends_with("</stream:stream>"), "{closed}");
    let o1 = d1.await.unwrap();
    assert!(!o1.status.is_success(), "{o1:?}");
    let l = a
        .links()
        .into_iter()
        .find(|l| l.name == "s2s:peer.test")
        .expect("link status");
    assert!(!l.up, "{l:?}");
    assert!(
        l.last_error.as_deref().is_some_and(|e| e.contains("ping")),
        "{l:?}"
    );
    // Down and idle: the next delivery re-establishes the stream; what arrives meanwhile
    // is queued and goes out once, in order.
    let d2 = deliver(2, "second");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let d3 = deliver(3, "third");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let d4 = deliver(4, "fourth");
    assert_eq!(next(&mut ev_rx).await, "up2");
    let mut got = String::new();
    while !got.contains("fourth") {
        got.push_str(&next(&mut ev_rx).await);
    }
    for w in ["second", "third", "fourth"] {
        assert_eq!(got.matches(w).count(), 1, "{w}: {got}");
    }
    let (p2, p3, p4) = (
        got.find("second").unwrap(),
        got.find("third").unwrap(),
        got.find("fourth").unwrap(),
    );
    assert!(p2 < p3 && p3 < p4, "out of order: {got}");
    assert!(!got.contains("first"), "resent: {got}");
    for d in [d2, d3, d4] {
        let o = d.await.unwrap();
        assert!(o.status.is_success(), "{o:?}");
    }
    // A peer that answers pings keeps its stream: after several ping intervals the same
    // stream is still up and has carried answered liveness pings.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !got.contains("id=\"live-") {
        let e = tokio::time::timeout_at(deadline, ev_rx.recv())
            .await
            .expect("a liveness ping on the second stream")
            .unwrap();
        assert!(!e.starts_with("closed2"), "answered stream was closed: {e}");
        got.push_str(&e);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    while let Ok(e) = ev_rx.try_recv() {
        assert!(!e.starts_with("closed2") && !e.starts_with("up3"), "{e}");
    }
    let l = a
        .links()
        .into_iter()
        .find(|l| l.name == "s2s:peer.test")
        .unwrap();
    assert!(l.up, "{l:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_incoming_stream_is_closed_with_connection_timeout() {
    init_tracing();
    let port = free_port();
    let cfg = XmppConfig {
        mode: plain_s2s(format!("127.0.0.1:{port}"), &[]),
        s2s_idle_timeout_secs: 1,
        ..XmppConfig::default()
    };
    let (in_tx, _in_rx) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(Rec(in_tx))).await.unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='gw.test' from='peer.test' version='1.0'>").await.unwrap();
    // Then silence: the gateway closes the stream (and the connection) by itself.
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut all))
        .await
        .expect("the gateway closes an idle incoming stream")
        .unwrap();
    let all = String::from_utf8_lossy(&all);
    assert!(all.contains("connection-timeout"), "{all}");
    assert!(all.ends_with("</stream:stream>"), "{all}");
    h.shutdown().await;
}

/// The testkit's DNS responder answering `SRV _xmpp-server._tcp.<domain>.` with
/// `localhost:<port>`.
async fn dns_responder(domain: &str, port: u16) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    dns::responder(Arc::new(Mutex::new(dns::xmpp_server_zone(domain, port)))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_local_domains_each_get_their_own_dialback_and_srv_finds_the_peer() {
    init_tracing();
    let dir = std::env::temp_dir().join(format!("cpim-xmpp-s2s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a_cert, a_key) = write_cert_pair(&dir, "a", &["a1.test", "a2.test"]);
    let (b_cert, b_key) = write_cert_pair(&dir, "b", &["b.test"]);
    let (a_port, b_port) = (free_port(), free_port());
    let (dns, mut dns_log) = dns_responder("b.test", b_port).await;
    let base = XmppConfig {
        delivery_timeout_secs: 20,
        reconnect_initial_ms: 50,
        reconnect_max_ms: 500,
        ..XmppConfig::default()
    };
    // A serves two domains and finds B only through DNS.
    let a_cfg = XmppConfig {
        mode: Mode::S2s {
            domains: vec!["a1.test".into(), "a2.test".into()],
            listen: format!("127.0.0.1:{a_port}"),
            cert: Some(a_cert.clone()),
            key: Some(a_key),
            dialback_secret: "secret-a".into(),
            srv_overrides: Default::default(),
            trust_roots: vec![b_cert.clone()],
            require_tls: true,
            allow_dialback_without_tls: false,
        },
        dns_servers: vec![dns.to_string()],
        ..base.clone()
    };
    let b_addr = format!("127.0.0.1:{a_port}");
    let b_cfg = XmppConfig {
        mode: Mode::S2s {
            domains: vec!["b.test".into()],
            listen: format!("127.0.0.1:{b_port}"),
            cert: Some(b_cert),
            key: Some(b_key),
            dialback_secret: "secret-b".into(),
            srv_overrides: [
                ("a1.test".to_string(), b_addr.clone()),
                ("a2.test".to_string(), b_addr),
            ]
            .into_iter()
            .collect(),
            trust_roots: vec![a_cert],
            require_tls: true,
            allow_dialback_without_tls: false,
        },
        ..base
    };
    let (a_in, _a_rx) = mpsc::unbounded_channel();
    let (b_in, mut b_rx) = mpsc::unbounded_channel();
    let ha = start(a_cfg, Arc::new(Rec(a_in))).await.unwrap();
    let hb = start(b_cfg, Arc::new(Rec(b_in))).await.unwrap();
    let a = ha.adapter();
    let o = a
        .deliver(msg(1, ("alice", "a2.test"), ("bob", "b.test"), "from a2"))
        .await;
    assert!(o.status.is_success(), "{o:?}");
    let o = a
        .deliver(msg(2, ("carol", "a1.test"), ("bob", "b.test"), "from a1"))
        .await;
    assert!(o.status.is_success(), "{o:?}");
    let mut sources = Vec::new();
    while sources.len() < 2 {
        let op = tokio::time::timeout(Duration::from_secs(10), b_rx.recv())
            .await
            .expect("B receives both messages")
            .unwrap();
        if let Operation::Message(m) = op {
            sources.push((
                m.source.to_string(),
                String::from_utf8_lossy(&m.body).into_owned(),
            ));
        }
    }
    sources.sort();
    assert!(
        sources[0].0.contains("alice") && sources[0].0.contains("a2.test"),
        "{sources:?}"
    );
    assert_eq!(sources[0].1, "from a2");
    assert!(
        sources[1].0.contains("carol") && sources[1].0.contains("a1.test"),
        "{sources:?}"
    );
    let names: Vec<String> = a
        .links()
        .into_iter()
        .filter(|l| l.up)
        .map(|l| l.name)
        .collect();
    assert!(names.contains(&"s2s:b.test".to_string()), "{names:?}");
    assert!(
        names.contains(&"s2s:a2.test->b.test".to_string()),
        "{names:?}"
    );
    // B was found through the SRV record.
    let mut asked = Vec::new();
    while let Ok(q) = dns_log.try_recv() {
        asked.push(q);
    }
    assert!(
        asked
            .iter()
            .any(|q| q.starts_with("_xmpp-server._tcp.b.test") && q.ends_with("SRV")),
        "{asked:?}"
    );
    ha.shutdown().await;
    hb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

//! The tokio layer against an in-process fake XMPP server (no real peer needed): a server
//! that completes the XEP-0114 handshake and then goes silent is detected as dead by the
//! ping, and the adapter reconnects by itself; a message delivered while the link is
//! down is sent once after the reconnect; shutdown closes the stream politely.

use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Message, Operation, Outcome, TransId};
use cpim_xmpp::{start, Mode, XmppConfig};
use sha1::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

struct NoIngress;

impl Ingress for NoIngress {
    fn submit(&self, _: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let t = op.trans_id();
        Box::pin(async move { Outcome::ok(t) })
    }
}

/// Reads until `needle` appears (or EOF); returns what was read.
async fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => break,
        };
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen
}

async fn handshake(s: &mut TcpStream, id: &str) {
    let hdr = read_until(s, "<stream:stream").await;
    assert!(hdr.contains("jabber:component:accept"), "{hdr}");
    s.write_all(format!("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='c.fake.test' id='{id}'>").as_bytes()).await.unwrap();
    let hs = read_until(s, "</handshake>").await;
    let expected = hex::encode(sha1::Sha1::digest(format!("{id}secret").as_bytes()));
    assert!(hs.contains(&expected), "{hs}");
    s.write_all(b"<handshake/>").await.unwrap();
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("fake server event")
        .expect("fake server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_is_detected_by_ping_and_the_link_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            n += 1;
            let tx = conn_tx.clone();
            tokio::spawn(async move {
                handshake(&mut s, &format!("id{n}")).await;
                let _ = tx.send(format!("up{n}"));
                // First connection: silence (no answer to pings). Later ones: record
                // everything received.
                let mut all = String::new();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => {
                            let chunk = String::from_utf8_lossy(&buf[..k]).into_owned();
                            all.push_str(&chunk);
                            if n > 1 {
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
        mode: Mode::Component {
            server: addr.to_string(),
            domain: "c.fake.test".into(),
            secret: "secret".into(),
        },
        keepalive_secs: 60,
        ping_interval_secs: 1,
        ping_timeout_secs: 1,
        reconnect_initial_ms: 50,
        reconnect_max_ms: 200,
        delivery_timeout_secs: 30,
        ..XmppConfig::default()
    };
    let h = start(cfg, Arc::new(NoIngress)).await.unwrap();
    let a = h.adapter();
    assert_eq!(next(&mut conn_rx).await, "up1");
    // The silent server gets a ping, then the adapter gives up on it and closes.
    let closed = loop {
        let e = next(&mut conn_rx).await;
        if e.starts_with("closed1") {
            break e;
        }
    };
    assert!(closed.contains("urn:xmpp:ping"), "{closed}");
    let l = a.links().remove(0);
    assert!(
        l.last_error.as_deref().is_some_and(|e| e.contains("ping")),
        "{l:?}"
    );
    // It reconnects without help.
    assert_eq!(next(&mut conn_rx).await, "up2");
    // A message now goes out once on the new stream, followed by the barrier ping.
    let m = Message::new(
        TransId(7),
        Address::new(Scheme::Xmpp, Some("carol"), "c.fake.test"),
        Address::new(Scheme::Xmpp, Some("alice"), "fake.test"),
        "text/plain",
        "after reconnect",
    );
    let a2 = a.clone();
    let d = tokio::spawn(async move { a2.deliver(Operation::Message(m)).await });
    let mut got = String::new();
    while !got.contains("urn:xmpp:ping") || !got.contains("after reconnect") {
        got.push_str(&next(&mut conn_rx).await);
    }
    assert_eq!(got.matches("after reconnect").count(), 1, "{got}");
    assert!(
        got.find("after reconnect").unwrap() < got.rfind("urn:xmpp:ping").unwrap(),
        "message before its barrier ping: {got}"
    );
    // The fake server never answers the barrier ping: the delivery must not claim
    // success. Shutdown resolves it (503) and closes the stream.
    h.shutdown().await;
    let out = d.await.unwrap();
    assert!(!out.status.is_success(), "{out:?}");
    let closed = loop {
        let e = next(&mut conn_rx).await;
        if e.starts_with("closed2") {
            break e;
        }
    };
    assert!(closed.ends_with("</stream:stream>"), "{closed}");
}

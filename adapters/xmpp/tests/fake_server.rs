//! The tokio layer against an in-process fake XMPP server (no real peer needed): a server
//! that completes the XEP-0114 handshake and then goes silent is detected as dead by the
//! ping, and the adapter reconnects by itself; a message delivered while the link is
//! down is sent once after the reconnect; shutdown closes the stream politely; presence
//! stanzas of one sender reach the core in arrival order.

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

/// Records the inbound notifies in the order the core finished taking them; the first
/// one is slow to take (as the gateway can be, e.g. on a contended lock or store write).
struct SlowFirstIngress {
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    done: mpsc::UnboundedSender<()>,
}

impl Ingress for SlowFirstIngress {
    fn submit(&self, _: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let t = op.trans_id();
        let (seen, done) = (self.seen.clone(), self.done.clone());
        Box::pin(async move {
            let Operation::Notify(n) = op else {
                return Outcome::ok(t);
            };
            let doc = format!("{:?}", n.presence);
            let label = ["third", "second"]
                .into_iter()
                .find(|l| doc.contains(l))
                .unwrap_or("first");
            if label == "first" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            seen.lock().unwrap().push(label.to_owned());
            let _ = done.send(());
            Outcome::ok(t)
        })
    }
}

/// RFC 6120 s10.1: presence stanzas of one sender reach the core in the order they came
/// (Prosody sends `subscribed`, the current presence and the next change back to back;
/// taken out of order the presence engine would keep an older state as the latest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_of_one_sender_reaches_the_core_in_arrival_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        handshake(&mut s, "order1").await;
        let from = "from='alice@fake.test/res' to='carol@c.fake.test'";
        s.write_all(
            format!(
                "<presence {from}/>\
                 <presence {from}><show>away</show><status>second</status></presence>\
                 <presence {from}><show>dnd</show><status>third</status></presence>"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let cfg = XmppConfig {
        mode: Mode::Component {
            server: addr.to_string(),
            domain: "c.fake.test".into(),
            secret: "secret".into(),
        },
        ..XmppConfig::default()
    };
    let (done, mut done_rx) = mpsc::unbounded_channel();
    let ingress = Arc::new(SlowFirstIngress {
        seen: Default::default(),
        done,
    });
    let h = start(cfg, ingress.clone()).await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(20), done_rx.recv())
            .await
            .expect("three notifies in time")
            .expect("ingress alive");
    }
    assert_eq!(
        *ingress.seen.lock().unwrap(),
        ["first", "second", "third"],
        "inbound presence reordered"
    );
    h.shutdown().await;
}

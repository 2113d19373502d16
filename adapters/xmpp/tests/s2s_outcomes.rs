//! Outcomes bound to their link (RFC 6120 s8.3.1 and s13.1, XEP-0220 s2): a server of
//! another domain cannot decide the outcome of a message the gateway delivered to
//! `peer.test`, even with the stanza's id in hand.
//!
//! Everything runs against fake servers written for the test, over real sockets:
//! - `peer.test` takes the gateway's outgoing stream, accepts its dialback, reports the
//!   ids of the message and of the barrier ping, and answers the barrier only when told;
//! - `evil.test` opens an incoming stream to the gateway and proves itself by dialback
//!   (its authoritative server, also faked here, says `valid`), then sends an error, a
//!   barrier answer and a receipt carrying the ids it learned.
//!
//! The delivery must stay pending through all of that and succeed once `peer.test`
//! answers the barrier: the SIP sender's 200 never turns into a 404. On the gateway's
//! outgoing stream, `peer.test` speaks only for itself (a stanza from another domain
//! there is dropped).

use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::Adapter;
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Message, Operation, TransId};
use cpim_xmpp::{start, XmppConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

mod common;
use common::{attr_of, plain_s2s, wait_for, Rec, HDR};

/// Accepts streams to a fake server of `domain` and accepts the gateway's dialback on
/// each; answers `db:verify` requests with `valid` (an authoritative server that vouches
/// for whatever key). Stanzas seen after authentication go to `seen`.
async fn fake_server(
    listener: TcpListener,
    domain: &'static str,
    seen: mpsc::UnboundedSender<String>,
) {
    while let Ok((mut s, _)) = listener.accept().await {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut all = String::new();
            wait_for(&mut s, &mut all, "<stream:stream").await;
            s.write_all(
                format!("{HDR} from='{domain}' id='{domain}-1'><stream:features/>").as_bytes(),
            )
            .await
            .unwrap();
            let mut buf = [0u8; 4096];
            let mut handled = 0;
            loop {
                // Answer each dialback request once.
                while let Some(i) = all[handled..].find("<db:") {
                    let rest = &all[handled + i..];
                    let Some(end) = rest.find("</") else { break };
                    let Some(close) = rest[end..].find('>') else {
                        break;
                    };
                    let el = rest[..end + close + 1].to_owned();
                    handled += i + end + close + 1;
                    let from = attr_of(&el, "<", "from");
                    if el.contains("verify") {
                        let id = attr_of(&el, "<", "id");
                        s.write_all(
                            format!(
                                "<db:verify from='{domain}' to='{from}' id='{id}' type='valid'/>"
                            )
                            .as_bytes(),
                        )
                        .await
                        .unwrap();
                    } else {
                        s.write_all(
                            format!("<db:result from='{domain}' to='{from}' type='valid'/>")
                                .as_bytes(),
                        )
                        .await
                        .unwrap();
                    }
                }
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
                all.push_str(&chunk);
                if seen.send(chunk).is_err() {
                    break;
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_domain_cannot_forge_the_outcome_of_a_delivery_rfc6120_s8_3_1() {
    let gw_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw_addr = gw_listener.local_addr().unwrap();
    drop(gw_listener);
    // peer.test: the destination. It keeps its stream and answers the barrier on cue.
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let (to_peer_tx, mut to_peer) = mpsc::unbounded_channel::<String>();
    let (ids_tx, ids_rx) = oneshot::channel::<(String, String)>();
    let (answer_tx, answer_rx) = oneshot::channel::<()>();
    let (forge_tx, forge_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut s, _) = peer.accept().await.unwrap();
        let mut all = String::new();
        wait_for(&mut s, &mut all, "<stream:stream").await;
        s.write_all(format!("{HDR} from='peer.test' id='p-1'><stream:features/>").as_bytes())
            .await
            .unwrap();
        wait_for(&mut s, &mut all, "</db:result>").await;
        assert!(all.contains("from=\"gw.test\""), "{all}");
        s.write_all(b"<db:result from='peer.test' to='gw.test' type='valid'/>")
            .await
            .unwrap();
        wait_for(&mut s, &mut all, "urn:xmpp:ping").await;
        wait_for(&mut s, &mut all, "</iq>").await;
        let msg_id = attr_of(&all, "<message", "id");
        let ping_id = attr_of(&all, "<iq", "id");
        ids_tx.send((msg_id, ping_id.clone())).unwrap();
        answer_rx.await.unwrap();
        s.write_all(
            format!("<iq type='result' from='peer.test' to='gw.test' id='{ping_id}'/>").as_bytes(),
        )
        .await
        .unwrap();
        // On the gateway's own stream to it, peer.test speaks only for itself (RFC 6120
        // s13): its own stanza goes through, one claiming another domain ends the stream
        // with <invalid-from/> and reaches nobody. Sent once the delivery is decided.
        forge_rx.await.unwrap();
        s.write_all(b"<message from='bob@peer.test' to='alice@gw.test' id='f2'><body>genuine</body></message>\
            <message from='romeo@xmpp.test' to='alice@gw.test' id='f1'><body>forged</body></message>")
            .await
            .unwrap();
        let mut rest = [0u8; 1024];
        while let Ok(n) = s.read(&mut rest).await {
            if n == 0 {
                break;
            }
            let _ = to_peer_tx.send(String::from_utf8_lossy(&rest[..n]).into_owned());
        }
    });
    // evil.test's authoritative server: vouches for evil.test's dialback and takes the
    // gateway's replies to evil.test.
    let evil_auth = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_addr = evil_auth.local_addr().unwrap();
    let (evil_seen_tx, mut evil_seen) = mpsc::unbounded_channel::<String>();
    tokio::spawn(fake_server(evil_auth, "evil.test", evil_seen_tx));

    let cfg = XmppConfig {
        mode: plain_s2s(
            gw_addr.to_string(),
            &[
                ("peer.test", &peer_addr.to_string()),
                ("evil.test", &evil_addr.to_string()),
            ],
        ),
        delivery_timeout_secs: 30,
        grace_ms: 50,
        ..XmppConfig::default()
    };
    let (in_tx, mut inbound) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(Rec(in_tx))).await.unwrap();
    let a = h.adapter();
    let mut delivery = tokio::spawn(async move {
        a.deliver(Operation::Message(Message::new(
            TransId(1),
            Address::new(Scheme::Xmpp, Some("alice"), "gw.test"),
            Address::new(Scheme::Xmpp, Some("bob"), "peer.test"),
            "text/plain",
            "hello bob",
        )))
        .await
    });
    let (msg_id, ping_id) = tokio::time::timeout(Duration::from_secs(10), ids_rx)
        .await
        .expect("the message and its barrier reach peer.test")
        .unwrap();

    // evil.test connects and authenticates by dialback.
    let mut evil = TcpStream::connect(gw_addr).await.unwrap();
    let mut seen = String::new();
    evil.write_all(format!("{HDR} from='evil.test' to='gw.test'>").as_bytes())
        .await
        .unwrap();
    wait_for(&mut evil, &mut seen, "</stream:features>").await;
    evil.write_all(b"<db:result from='evil.test' to='gw.test'>0123456789abcdef</db:result>")
        .await
        .unwrap();
    wait_for(&mut evil, &mut seen, "type=\"valid\"").await;

    // Forged outcomes with the real ids, from evil.test itself (the stream rightly
    // refuses from='...@peer.test' with <invalid-from/>).
    let forged = format!(
        "<message type='error' from='bob@evil.test' to='alice@gw.test' id='{msg_id}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>\
         <iq type='error' from='evil.test' to='gw.test' id='{msg_id}'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>\
         <iq type='result' from='evil.test' to='gw.test' id='{ping_id}'/>\
         <message from='bob@evil.test/x' to='alice@gw.test' id='r1'><received xmlns='urn:xmpp:receipts' id='{msg_id}'/></message>\
         <iq type='get' from='evil.test' to='gw.test' id='sync-after-forgery'><ping xmlns='urn:xmpp:ping'/></iq>"
    );
    evil.write_all(forged.as_bytes()).await.unwrap();
    // The gateway answers the ping after the forged stanzas (one stream is processed in
    // order), on its own stream to evil.test.
    let mut evil_all = String::new();
    while !evil_all.contains("sync-after-forgery") {
        evil_all.push_str(
            &tokio::time::timeout(Duration::from_secs(10), evil_seen.recv())
                .await
                .expect("the gateway answers evil.test's ping")
                .unwrap(),
        );
    }
    // Give the hub a moment to act on anything it (wrongly) believed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !delivery.is_finished(),
        "a forged outcome from evil.test resolved the delivery to peer.test: {:?}",
        (&mut delivery).await
    );
    // peer.test answers its barrier: the delivery succeeds.
    answer_tx.send(()).unwrap();
    let o = tokio::time::timeout(Duration::from_secs(10), delivery)
        .await
        .expect("outcome after the barrier")
        .unwrap();
    assert!(o.status.is_success(), "{o:?}");
    forge_tx.send(()).unwrap();
    // evil.test's own receipt is its own business (it reaches the core as from
    // evil.test); what matters is that nothing arrives as from xmpp.test.
    let genuine = loop {
        let op = tokio::time::timeout(Duration::from_secs(10), inbound.recv())
            .await
            .expect("peer.test's own message arrives")
            .unwrap();
        let Operation::Message(m) = op else {
            panic!("{op:?}")
        };
        assert_ne!(m.source.domain, "xmpp.test", "forged: {m:?}");
        if m.source.domain == "peer.test" {
            break m;
        }
    };
    assert_eq!(String::from_utf8_lossy(&genuine.body), "genuine");
    let mut after = String::new();
    while !after.contains("invalid-from") {
        match tokio::time::timeout(Duration::from_secs(10), to_peer.recv()).await {
            Ok(Some(x)) => after.push_str(&x),
            other => panic!("no <invalid-from/> for the forged stanza ({other:?}): {after}"),
        }
    }
    assert!(!after.contains("hello bob"), "message sent twice: {after}");
    h.shutdown().await;
    assert!(
        inbound.try_recv().is_err(),
        "a stanza from another domain got through"
    );
}

/// RFC 6120 s4.9.3.12: an unauthenticated peer that trickles a start tag that never ends
/// into the s2s listener is refused with `<policy-violation/>` once the tag passes
/// `max_stanza_bytes`; the gateway does not buffer it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_start_tag_on_the_s2s_listener_is_refused_with_policy_violation() {
    let gw_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw_addr = gw_listener.local_addr().unwrap();
    drop(gw_listener);
    let cfg = XmppConfig {
        mode: plain_s2s(gw_addr.to_string(), &[]),
        max_stanza_bytes: 64 * 1024,
        ..XmppConfig::default()
    };
    let (in_tx, _inbound) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(Rec(in_tx))).await.unwrap();
    let mut s = TcpStream::connect(gw_addr).await.unwrap();
    let mut seen = String::new();
    s.write_all(format!("{HDR} from='evil.test' to='gw.test'>").as_bytes())
        .await
        .unwrap();
    wait_for(&mut s, &mut seen, "</stream:features>").await;
    s.write_all(b"<message to='a@gw.test' x='").await.unwrap();
    let chunk = vec![b'v'; 1024];
    let mut sent = 0;
    // Keep writing until the gateway closes; it must do so soon after the limit.
    let mut buf = [0u8; 4096];
    loop {
        if s.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
        assert!(
            sent <= 256 * 1024,
            "still accepting an unfinished tag of {sent} bytes"
        );
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(5), s.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("</stream:stream>") {
                break;
            }
        }
    }
    while !seen.contains("</stream:stream>") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    assert!(seen.contains("policy-violation"), "{seen}");
    assert!(sent >= 63 * 1024, "refused before the limit: {sent}");
    h.shutdown().await;
}

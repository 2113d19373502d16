//! Real-peer tests of s2s mode (RFC 6120 + XEP-0220) against Prosody.
//!
//! Variables (exported by `scripts/test`): `CPIM_PEER_PROSODY_S2S` (Prosody's s2s port),
//! `CPIM_PEER_PROSODY_S2S_GW_DOMAIN` / `CPIM_PEER_PROSODY_S2S_GW` (the domain and address
//! Prosody's hermetic DNS routes to the gateway), `CPIM_PEER_PROSODY_C2S`,
//! `CPIM_PEER_PROSODY_DOMAIN`, `CPIM_PEER_PYTHON`, and Prosody's certificate
//! (`CPIM_PEER_PROSODY_CERT`, else `$CPIM_PEER_DIR/prosody-a/certs/<domain>.crt`), which the
//! gateway trusts explicitly. Without them the tests print why they skip.

use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::Adapter;
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Message, Operation, TransId};
use cpim_testkit::own_prosody::{self, OwnProsody};
use cpim_xmpp::{start, Mode, XmppConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

mod common;

use common::prosody::{env, Client, Env};
use common::{init_tracing, Rec};

/// A text message `body` from carol at the gateway's domain to `user` at Prosody's.
fn from_carol(e: &Env, trans_id: u64, user: &str, body: &str) -> Operation {
    Operation::Message(Message::new(
        TransId(trans_id),
        Address::new(Scheme::Xmpp, Some("carol"), &e.gw_domain),
        Address::new(Scheme::Xmpp, Some(user), &e.domain),
        "text/plain",
        body,
    ))
}

fn s2s_config(e: &Env, listen: &str, require_tls: bool) -> XmppConfig {
    XmppConfig {
        mode: Mode::S2s {
            domains: vec![e.gw_domain.clone()],
            listen: listen.into(),
            cert: None,
            key: None,
            dialback_secret: "shared-dialback-secret-for-tests".into(),
            srv_overrides: [(e.domain.clone(), e.s2s.clone())].into_iter().collect(),
            trust_roots: vec![e.cert.clone()],
            require_tls,
            allow_dialback_without_tls: !require_tls,
        },
        delivery_timeout_secs: 20,
        reconnect_initial_ms: 100,
        reconnect_max_ms: 1000,
        ..XmppConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_s2s_starttls_and_dialback_both_ways_and_bad_key_refused() {
    let Some(e) = env() else { return };
    init_tracing();
    let (tx, mut ops) = mpsc::unbounded_channel();
    // Pings every second of silence (XEP-0199): Prosody's answers come back on its own
    // stream to us and must keep our outgoing stream alive.
    let cfg = XmppConfig {
        ping_interval_secs: 1,
        ping_timeout_secs: 3,
        ..s2s_config(&e, &e.gw_listen, true)
    };
    let h = start(cfg, Arc::new(Rec(tx))).await.expect("start s2s");
    let a = h.adapter();
    let mut alice = Client::start(&e, &format!("alice@{}/s2s", e.domain), "alicepw").await;

    // Gateway -> Prosody: our outgoing stream (STARTTLS with Prosody's certificate
    // trusted explicitly, then dialback, which Prosody verifies by connecting back).
    let out = a
        .deliver(from_carol(&e, 1, "alice", "hello over s2s"))
        .await;
    assert!(out.status.is_success(), "{out:?} links {:?}", a.links());
    let got = alice.wait(|v| v["body"] == "hello over s2s", 15).await;
    assert_eq!(got["from"], format!("carol@{}", e.gw_domain));
    assert!(a.links().iter().any(|l| l.up), "{:?}", a.links());
    // Several ping intervals later the same stream is still up: Prosody answered.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let link = a
        .links()
        .into_iter()
        .find(|l| l.name == format!("s2s:{}", e.domain))
        .expect("link status");
    assert!(link.up && link.last_error.is_none(), "{link:?}");

    // Prosody -> gateway: Prosody's outgoing stream to us (STARTTLS with our self-signed
    // certificate; Prosody's client certificate is one the gateway trusts, so the gateway
    // offers SASL EXTERNAL and Prosody takes it, XEP-0178; dialback otherwise).
    alice
        .cmd(serde_json::json!({"op": "message", "to": format!("dave@{}", e.gw_domain), "body": "hi gateway"}))
        .await;
    let op = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(Operation::Message(m)) = ops.recv().await {
                return m;
            }
        }
    })
    .await
    .expect("message from Prosody over s2s");
    assert_eq!(op.body, b"hi gateway");
    assert_eq!(op.source.domain, e.domain);

    // A nonexistent user on the Prosody side: the bounce comes back on Prosody's stream
    // and is mapped (RFC 7247 s7.1).
    let out = a
        .deliver(from_carol(&e, 2, "no-such-user-s2s", "void"))
        .await;
    assert!(matches!(out.status.code.as_u16(), 404 | 503), "{out:?}");

    // A bad dialback key: a fake peer claims xmpp.test with a key Prosody never made.
    // We ask Prosody (authoritative) and refuse (XEP-0220 s2.1.4: type='invalid').
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // With require_tls the gateway wants STARTTLS before dialback: the fake peer
    // skipping it is refused.
    let mut s = fake_peer_with_bad_key(&e, &e.gw_listen).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("policy-violation") {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("answer to the fake peer")
            .unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("policy-violation"), "{seen}");
    drop(s);
    h.shutdown().await;

    // Same with a gateway that accepts dialback without TLS: the key goes to Prosody
    // for verification and comes back invalid.
    let (tx2, _ops2) = mpsc::unbounded_channel();
    let port: u16 = e.gw_listen.rsplit(':').next().unwrap().parse().unwrap();
    let listen2 = format!("127.0.0.1:{}", port + 100);
    let h2 = start(s2s_config(&e, &listen2, false), Arc::new(Rec(tx2)))
        .await
        .unwrap();
    let mut s = fake_peer_with_bad_key(&e, &listen2).await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !seen.contains("type=\"invalid\"") && !seen.contains("type='invalid'") {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no verdict for the bad key; got {seen}"))
            .unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("invalid"), "{seen}");
    assert!(!seen.contains("type=\"valid\""), "{seen}");
    h2.shutdown().await;
}

/// Prosody stopped and started again under a live s2s link: the gateway notices the
/// loss, queues what is delivered meanwhile, re-establishes the stream (STARTTLS and
/// dialback again) and each queued message reaches the user exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_s2s_restart_queued_messages_arrive_once_in_order() {
    let Some(shared_env) = env() else { return };
    let Some(dir) = own_prosody::dir("xmpp-s2s-restart") else {
        return;
    };
    init_tracing();
    let prosody = OwnProsody::start(
        &dir,
        // Ports, component and routes of its own.
        &[
            ("C2S_PORT", "28222"),
            ("S2S_PORT", "28269"),
            ("COMPONENT_DOMAIN", ""),
            ("S2S_ROUTES", "gw.test=28299"),
        ],
    );
    let e = Env {
        s2s: "127.0.0.1:28269".into(),
        gw_domain: "gw.test".into(),
        gw_listen: "127.0.0.1:28299".into(),
        c2s: "127.0.0.1:28222".into(),
        domain: "xmpp.test".into(),
        python: shared_env.python.clone(),
        cert: dir
            .join("certs/xmpp.test.crt")
            .to_string_lossy()
            .into_owned(),
    };
    let cfg = XmppConfig {
        ping_interval_secs: 1,
        ping_timeout_secs: 2,
        reconnect_initial_ms: 200,
        reconnect_max_ms: 1000,
        delivery_timeout_secs: 30,
        ..s2s_config(&e, &e.gw_listen, true)
    };
    let (tx, _ops) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(Rec(tx))).await.expect("start s2s");
    let a = h.adapter();
    let msg = |t: u64, body: &str| {
        Operation::Message(Message::new(
            TransId(t),
            Address::new(Scheme::Xmpp, Some("carol"), "gw.test"),
            Address::new(Scheme::Xmpp, Some("alice"), "xmpp.test"),
            "text/plain",
            body,
        ))
    };
    // alice is offline: Prosody stores the messages (mod_offline) and answers the barrier.
    let out = a.deliver(msg(1, "before restart")).await;
    assert!(out.status.is_success(), "{out:?} {:?}", a.links());
    let link = || {
        a.links()
            .into_iter()
            .find(|l| l.name == "s2s:xmpp.test")
            .expect("link status")
    };
    assert!(link().up);
    assert!(prosody.run("stop"), "own prosody stop");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while link().up {
        assert!(
            tokio::time::Instant::now() < deadline,
            "loss not noticed: {:?}",
            link()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a2 = a.clone();
    let d2 = tokio::spawn(async move { a2.deliver(msg(2, "queued one")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a3 = a.clone();
    let d3 = tokio::spawn(async move { a3.deliver(msg(3, "queued two")).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!link().up);
    assert!(prosody.run("start"), "own prosody restart");
    for d in [d2, d3] {
        let out = d.await.unwrap();
        assert!(out.status.is_success(), "{out:?} {:?}", link());
    }
    assert!(link().up, "{:?}", link());
    // alice logs in and gets the stored messages: each once, in order.
    let mut alice = Client::start(&e, "alice@xmpp.test/restart", "alicepw").await;
    let mut bodies = Vec::new();
    while !bodies.iter().any(|b| b == "queued two") {
        let v = alice.wait(|v| v["ev"] == "message", 20).await;
        bodies.push(v["body"].as_str().unwrap_or_default().to_owned());
    }
    // Anything else pending arrives within a moment; nothing may be duplicated.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pos = |b: &str| bodies.iter().position(|x| x == b);
    assert_eq!(
        bodies.iter().filter(|b| *b == "queued one").count(),
        1,
        "{bodies:?}"
    );
    assert_eq!(
        bodies.iter().filter(|b| *b == "queued two").count(),
        1,
        "{bodies:?}"
    );
    assert!(pos("queued one") < pos("queued two"), "{bodies:?}");
    h.shutdown().await;
}

/// A fake peer at the gateway's s2s listener `addr` claiming Prosody's domain: its stream
/// header and a dialback key Prosody never made (XEP-0220 s2.1.1), no TLS.
async fn fake_peer_with_bad_key(e: &Env, addr: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='{}' to='{}' version='1.0'>", e.domain, e.gw_domain).as_bytes()).await.unwrap();
    s.write_all(
        format!(
            "<db:result from='{}' to='{}'>{}</db:result>",
            e.domain,
            e.gw_domain,
            "ab".repeat(32)
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s
}

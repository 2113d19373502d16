//! Adversarial s2s tests driven from outside the process (raw TCP and fake XMPP servers
//! written for the test): nobody speaks for a domain it has not proven.
//!
//! XEP-0220 s2.3-2.4 / RFC 6120 s13: a dialback verification is bound to the outgoing
//! stream it was sent on (to the authoritative server of the claimed domain) and to the
//! (from, to) pair it was requested for. A server for `evil.test` that answers `valid`
//! about a stream claiming `xmpp.test` must not get that claim accepted.

use std::sync::Arc;
use std::time::Duration;

use cpim_core::model::Operation;
use cpim_xmpp::{start, XmppConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

mod common;

use common::{attr, fake_server, free_port, init_tracing, plain_s2s, read_until, Rec, HDR};

/// A fake server's side of a stream the gateway opens to it: waits for the gateway's
/// header and answers as `domain` with stream id `id`, no features (dialback only).
/// Returns what the gateway sent so far.
async fn open_stream(s: &mut TcpStream, domain: &str, id: &str) -> String {
    let mut seen = String::new();
    read_until(s, &mut seen, "<stream:stream").await;
    s.write_all(format!("{HDR} from='{domain}' id='{id}'><stream:features/>").as_bytes())
        .await
        .unwrap();
    seen
}

/// Reads and drops whatever comes until the gateway closes the connection.
async fn read_to_close(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Opens an incoming stream to the gateway claiming `from`, returns it with the stream id
/// the gateway gave it.
async fn claim(port: u16, from: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("{HDR} from='{from}' to='gw.test'>").as_bytes())
        .await
        .unwrap();
    let mut seen = String::new();
    assert!(
        read_until(&mut s, &mut seen, "</stream:features>").await,
        "{seen}"
    );
    let id = attr(&seen, "<stream:stream", "id")
        .expect("stream id")
        .to_owned();
    s.write_all(
        format!(
            "<db:result from='{from}' to='gw.test'>{}</db:result>",
            "0".repeat(64)
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    (s, id)
}

/// The attack of issue 10: the attacker claims `xmpp.test` on one stream and `evil.test`
/// on another. The real `xmpp.test` is slow to answer the verification; the attacker's
/// own authoritative server (for `evil.test`) answers `valid` about the `xmpp.test`
/// stream's id. The claim must not be accepted: a message from `romeo@xmpp.test` on that
/// stream gets `<invalid-from/>` (RFC 6120 s4.9.3.9) and reaches no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0220_verify_answer_from_another_domains_server_does_not_authenticate_a_claim() {
    init_tracing();
    // The honest xmpp.test: takes the verification request and never answers it.
    let (honest_tx, mut honest_rx) = mpsc::unbounded_channel::<String>();
    let honest = fake_server(move |mut s| {
        let tx = honest_tx.clone();
        async move {
            let mut seen = open_stream(&mut s, "xmpp.test", "h1").await;
            read_until(&mut s, &mut seen, "</db:verify>").await;
            let _ = tx.send(seen);
            read_to_close(&mut s).await;
        }
    })
    .await;
    // The attacker's evil.test: told (by the attacker) the id of the xmpp.test stream.
    let (sid_tx, sid_rx) = mpsc::unbounded_channel::<String>();
    let sid_rx = Arc::new(tokio::sync::Mutex::new(sid_rx));
    let evil = fake_server(move |mut s| {
        let sid_rx = sid_rx.clone();
        async move {
            let mut seen = open_stream(&mut s, "evil.test", "e1").await;
            // The gateway asks about the evil.test claim: answer it honestly, but first
            // answer `valid` about the xmpp.test stream, in both spellings of the pair.
            read_until(&mut s, &mut seen, "</db:verify>").await;
            let evil_sid = attr(&seen, "<db:verify", "id").unwrap().to_owned();
            let xmpp_sid = sid_rx.lock().await.recv().await.unwrap();
            let forged = format!(
                "<db:verify from='xmpp.test' to='gw.test' id='{xmpp_sid}' type='valid'/>\
                 <db:verify from='evil.test' to='gw.test' id='{xmpp_sid}' type='valid'/>\
                 <db:verify from='evil.test' to='gw.test' id='{evil_sid}' type='valid'/>"
            );
            s.write_all(forged.as_bytes()).await.unwrap();
            read_to_close(&mut s).await;
        }
    })
    .await;
    let port = free_port();
    let cfg = XmppConfig {
        mode: plain_s2s(
            format!("127.0.0.1:{port}"),
            &[("xmpp.test", &honest), ("evil.test", &evil)],
        ),
        ..XmppConfig::default()
    };
    let (in_tx, mut in_rx) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(Rec(in_tx))).await.unwrap();

    let (mut victim, xmpp_sid) = claim(port, "xmpp.test").await;
    // Wait until the gateway asked the real xmpp.test, so the verification is pending.
    let asked = tokio::time::timeout(Duration::from_secs(10), honest_rx.recv())
        .await
        .expect("the gateway asks xmpp.test")
        .unwrap();
    assert!(asked.contains(&xmpp_sid), "{asked}");
    sid_tx.send(xmpp_sid.clone()).unwrap();
    let (mut own, _) = claim(port, "evil.test").await;
    // evil.test's own claim is answered valid (it is evil.test's to make); the forged
    // answers were processed before it (same connection, in order).
    let mut seen = String::new();
    assert!(
        read_until(&mut own, &mut seen, "type=\"valid\"").await,
        "{seen}"
    );

    victim
        .write_all(b"<message from='romeo@xmpp.test' to='juliet@gw.test' type='chat'><body>forged</body></message>")
        .await
        .unwrap();
    let mut seen = String::new();
    let refused = read_until(&mut victim, &mut seen, "invalid-from").await;
    // The gateway answered the xmpp.test claim with nothing (still pending) or invalid.
    assert!(!seen.contains("type=\"valid\""), "claim accepted: {seen}");
    assert!(refused, "stanza not refused: {seen}");
    // A stanza from evil.test to the gateway still works on evil.test's own stream.
    own.write_all(b"<message from='eve@evil.test' to='juliet@gw.test' type='chat'><body>mine</body></message>")
        .await
        .unwrap();
    let op = tokio::time::timeout(Duration::from_secs(10), in_rx.recv())
        .await
        .expect("evil.test's own message")
        .unwrap();
    let Operation::Message(m) = op else {
        panic!("{op:?}")
    };
    assert_eq!(m.source.domain, "evil.test", "{m:?}");
    assert!(in_rx.try_recv().is_err(), "forged message reached the core");
    h.shutdown().await;
}

/// RFC 6120 s13: on the stream the gateway opened to `evil.test` (after valid dialback),
/// `evil.test` may speak only for itself: a stanza from `romeo@xmpp.test` there gets
/// `<invalid-from/>` and reaches no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_s13_peer_on_our_outgoing_stream_cannot_speak_for_another_domain() {
    init_tracing();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let evil = fake_server(move |mut s| {
        let tx = tx.clone();
        async move {
            let mut seen = open_stream(&mut s, "evil.test", "e1").await;
            read_until(&mut s, &mut seen, "</db:result>").await;
            s.write_all(b"<db:result from='evil.test' to='gw.test' type='valid'/>")
                .await
                .unwrap();
            read_until(&mut s, &mut seen, "</message>").await;
            s.write_all(
                b"<message from='romeo@xmpp.test' to='juliet@gw.test' type='chat'><body>forged</body></message>",
            )
            .await
            .unwrap();
            read_until(&mut s, &mut seen, "</stream:stream>").await;
            let _ = tx.send(seen);
        }
    })
    .await;
    let port = free_port();
    let cfg: XmppConfig = toml::from_str(&format!(
        "delivery_timeout_secs = 5\n[mode]\nkind = 's2s'\ndomains = ['gw.test']\nlisten = '127.0.0.1:{port}'\n\
         dialback_secret = 'a-secret-of-the-gateway-only'\nrequire_tls = false\n\
         allow_dialback_without_tls = true\n[mode.srv_overrides]\n'evil.test' = '{evil}'\n"
    ))
    .unwrap();
    let (in_tx, mut in_rx) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(Rec(in_tx))).await.unwrap();
    let a = h.adapter();
    tokio::spawn(async move {
        use cpim_core::adapter::Adapter;
        use cpim_core::address::{Address, Scheme};
        a.deliver(Operation::Message(cpim_core::model::Message::new(
            cpim_core::model::TransId(1),
            Address::new(Scheme::Xmpp, Some("juliet"), "gw.test"),
            Address::new(Scheme::Xmpp, Some("eve"), "evil.test"),
            "text/plain",
            "hello eve",
        )))
        .await
    });
    let seen = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("the gateway closes the stream")
        .unwrap();
    assert!(seen.contains("invalid-from"), "{seen}");
    assert!(in_rx.try_recv().is_err(), "forged message reached the core");
    h.shutdown().await;
}

//! The testkit against an in-process gateway with its SIP adapter only (no peers needed):
//! two SIP users register with digest, exchange a text/plain and a message/cpim MESSAGE
//! (passed byte for byte, RFC 3862 bodies between SIP users are not re-encoded), a MESSAGE to
//! an unknown local user is refused, and the admin API answers /health.

use std::time::Duration;

use cpim_testkit::{SipUa, TestGateway, Transport};

mod common;

/// A message/cpim body; `id` is its imdn.Message-ID (the gateway deduplicates on it).
fn cpim(id: &str) -> Vec<u8> {
    format!("From: <sip:alice@sip.test>\r\nTo: <sip:bob@sip.test>\r\nDateTime: 2026-11-21T10:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: {id}\r\n\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 5\r\n\r\nhello").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_to_sip_through_the_testkit() {
    let gw = TestGateway::start(common::sip_only_config()).await.unwrap();
    let (code, body) = gw.admin_get("/health").await.unwrap();
    assert_eq!(code, 200, "{body}");
    for transport in [Transport::Udp, Transport::Tcp] {
        let server = gw.sip_addr(transport).unwrap();
        let alice = SipUa::new("alice", "sip.test", Some("alicepw"), transport, server)
            .await
            .unwrap();
        let bob = SipUa::new("bob", "sip.test", Some("bobpw"), transport, server)
            .await
            .unwrap();
        assert_eq!(alice.register(300).await.unwrap().code(), 200);
        assert_eq!(bob.register(300).await.unwrap().code(), 200);

        let r = alice
            .message("sip:bob@sip.test", "text/plain", b"plain hello")
            .await
            .unwrap();
        assert_eq!(r.code(), 200, "{transport:?}");
        let got = bob
            .await_request(
                |r| r.method().as_str() == "MESSAGE",
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(&got.body()[..], b"plain hello");

        let body = cpim(&format!("Xs7yKp{transport:?}"));
        let r = alice
            .message("sip:bob@sip.test", "message/cpim", &body)
            .await
            .unwrap();
        assert_eq!(r.code(), 200);
        let got = bob
            .await_request(
                |r| r.method().as_str() == "MESSAGE",
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(got.content_type(), Some("message/cpim"));
        assert_eq!(
            &got.body()[..],
            &body[..],
            "message/cpim must pass byte for byte"
        );

        // A failure answer of the recipient comes back to the sender.
        bob.answer_with("MESSAGE", 486);
        let r = alice
            .message("sip:bob@sip.test", "text/plain", b"busy?")
            .await
            .unwrap();
        assert_eq!(r.code(), 486);
        assert_eq!(bob.register(0).await.unwrap().code(), 200);
    }
    // A wrong password is not accepted.
    let server = gw.sip_addr(Transport::Udp).unwrap();
    let mallory = SipUa::new("alice", "sip.test", Some("wrong"), Transport::Udp, server)
        .await
        .unwrap();
    let r = mallory.register(300).await.unwrap();
    assert!(matches!(r.code(), 401 | 403), "{}", r.code());
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_store() {
    let gw = TestGateway::start(common::sip_only_config()).await.unwrap();
    let udp = gw.sip_addr(Transport::Udp).unwrap();
    let dir = gw.store_dir().to_owned();
    let alice = SipUa::new("alice", "sip.test", Some("alicepw"), Transport::Udp, udp)
        .await
        .unwrap();
    assert_eq!(alice.register(300).await.unwrap().code(), 200);
    let gw = gw.restart().await.unwrap();
    let udp2 = gw
        .sip_addr(Transport::Udp)
        .expect("SIP is up after the restart");
    assert_ne!(udp2, udp);
    alice.set_server(udp2);
    assert_eq!(
        alice.options("sip:alice@sip.test").await.unwrap().code(),
        200
    );
    assert_eq!(gw.store_dir(), dir);
    let (code, body) = gw.admin_get("/registrations").await.unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("alice@sip.test"), "{body}");
    gw.shutdown().await;
    assert!(!dir.exists(), "the temporary store is removed");
}

/// A SIP watcher of a local SIP presentity: the gateway answers from its own state, so the
/// first Notify reaches the SIP adapter before the SUBSCRIBE's outcome does. The adapter keeps
/// it and sends it after the 2xx (RFC 6665 s4.1.2.4 seen from the notifier), never losing it
/// (it used to answer 481, hidden by a 50 ms hold in the gateway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_watcher_of_local_user_gets_the_published_state_at_once() {
    let mut cfg = common::sip_only_config();
    cfg.sip.notify_min_interval = 0;
    cfg.presence.notify_interval_ms = 0;
    let gw = TestGateway::start(cfg).await.unwrap();
    let server = gw.sip_addr(Transport::Udp).unwrap();
    let alice = SipUa::new("alice", "sip.test", Some("alicepw"), Transport::Udp, server)
        .await
        .unwrap();
    let bob = SipUa::new("bob", "sip.test", Some("bobpw"), Transport::Udp, server)
        .await
        .unwrap();
    assert_eq!(alice.register(300).await.unwrap().code(), 200);
    assert_eq!(bob.register(300).await.unwrap().code(), 200);
    let r = alice
        .publish(Some(&alice.pidf(true, Some("here"))), 300, None)
        .await
        .unwrap();
    assert_eq!(r.code(), 200);
    let (r, sub) = bob
        .subscribe("sip:alice@sip.test", "presence", 300)
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    assert!(sub.is_some());
    let n = bob
        .await_request(
            |r| {
                r.method().as_str() == "NOTIFY"
                    && String::from_utf8_lossy(r.body()).contains("here")
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let state = n
        .header(cpim_sip::codec::HeaderName::SubscriptionState)
        .unwrap_or("");
    assert!(state.starts_with("active"), "{state}");
    gw.shutdown().await;
}

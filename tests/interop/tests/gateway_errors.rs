//! Error mapping end to end (RFC 7247 s7; RFC 3261 s21), the gateway as Prosody's
//! XEP-0114 component, a SIP user on cpim-testkit's UA, an XMPP user on slixmpp:
//!
//! - a SIP MESSAGE to a nonexistent XMPP user is refused with the mapped error, never 200;
//! - a SIP MESSAGE to an unreachable domain gets 408 or 503 (a remote SIP domain whose
//!   server refuses connections; the XMPP network while the component link is down), to a
//!   domain that does not exist 404 (Prosody's `remote-server-not-found`, RFC 7247 s7.1);
//! - an XMPP message to a registered-nowhere SIP user: with the queue off, the XMPP sender
//!   gets the error stanza mapped from 480 (RFC 7247 s7.2), and so with the queue on
//!   but not for SIP targets (`queue.on_codes_by_adapter`); with the queue on, nothing
//!   bounces and the message is delivered as soon as the user registers (not at the
//!   queue's next retry);
//! - an XMPP message to a user that the configured SIP user list does not have gets the
//!   404 mapping (`item-not-found`) even with the queue on: nothing is queued for it.
//!
//! Skips (prints why) without `CPIM_PEERS`, fails for that under `CI=true`.

mod common;

use std::time::Duration;

use common::*;
use cpim_core::errmap;
use cpim_gateway::config::Config;
use cpim_interop::{free_tcp_port, require_peers, Peers};
use cpim_sip::transport::resolve::StaticTarget;
use cpim_testkit::{SipUa, TestGateway, Transport, XmppEvent};

async fn registered_ua(gw: &TestGateway, user: &str) -> SipUa {
    let ua = sip_ua(user, Transport::Udp, gw.sip_addr(Transport::Udp).unwrap()).await;
    assert_eq!(ua.register(300).await.unwrap().code(), 200);
    ua
}

/// A gateway as Prosody's component serving `user` (`tweak` applied to its configuration),
/// once its link is up.
async fn component_gateway(
    peers: &Peers,
    user: &str,
    tweak: impl FnOnce(&mut Config),
) -> TestGateway {
    let mut cfg = component_config(peers, &[user]);
    tweak(&mut cfg);
    let gw = TestGateway::start(cfg).await.unwrap();
    gw.wait_link_up("xmpp", WAIT).await.unwrap();
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_message_to_nonexistent_xmpp_user_is_refused() {
    let peers = require_peers!(Prosody);
    init_tracing();
    let _lock = component_lock().await;
    let frank = unique("frank");
    // With the queue on (the default): a refusal by the XMPP server must not be queued
    // and answered 202 either.
    let gw = component_gateway(&peers, &frank, |_| {}).await;
    let ua = registered_ua(&gw, &frank).await;
    let r = ua
        .message(
            &format!("sip:nobody-{frank}@{}", peers.prosody.domain),
            "text/plain",
            b"anyone there?",
        )
        .await
        .unwrap();
    // Prosody bounces `service-unavailable` for a user it does not have (RFC 6121
    // s8.5.1); the gateway answers the mapped failure.
    assert!(
        !(200..300).contains(&r.code()),
        "a message to a nonexistent user got {} {}",
        r.code(),
        r.reason()
    );
    assert_eq!(r.code(), 404, "{} {}", r.code(), r.reason());
    assert_eq!(queue_depth(&gw).await, 0, "nothing queued");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_message_to_unreachable_domains_is_408_or_503_nonexistent_404() {
    let peers = require_peers!(Prosody);
    init_tracing();
    let _lock = component_lock().await;
    let gina = unique("gina");
    let mut cfg = component_config(&peers, &[&gina]);
    cfg.queue.enabled = false;
    // A domain that does not exist: Prosody's hermetic DNS answers NXDOMAIN and it bounces
    // `remote-server-not-found`, which RFC 7247 s7.1 maps to 404 (408 only after a timeout).
    cfg.routes.push(cpim_gateway::config::Route {
        domain: "nxdomain.test".into(),
        adapter: "xmpp".into(),
    });
    // SIP side: a remote SIP domain whose server is a closed port.
    let dead = free_tcp_port().unwrap();
    cfg.sip.remote_domains = vec!["dead.sip.test".into()];
    cfg.sip.endpoint.static_targets.insert(
        "dead.sip.test".into(),
        vec![StaticTarget {
            transport: Transport::Tcp,
            address: format!("127.0.0.1:{dead}"),
        }],
    );
    let gw = TestGateway::start(cfg).await.unwrap();
    gw.wait_link_up("xmpp", WAIT).await.unwrap();
    let ua = registered_ua(&gw, &gina).await;

    let r = ua
        .message("sip:someone@nxdomain.test", "text/plain", b"hello?")
        .await
        .unwrap();
    assert_eq!(r.code(), 404, "nonexistent XMPP domain: {}", r.reason());
    let r = ua
        .message("sip:someone@dead.sip.test", "text/plain", b"hello?")
        .await
        .unwrap();
    assert!(
        matches!(r.code(), 408 | 503),
        "unreachable SIP domain: {} {}",
        r.code(),
        r.reason()
    );
    gw.shutdown().await;

    // The XMPP network unreachable: the component link cannot come up.
    let mut cfg = component_config(&peers, &[&gina]);
    cfg.queue.enabled = false;
    let closed = free_tcp_port().unwrap();
    if let cpim_xmpp::Mode::Component { server, .. } = &mut cfg.xmpp.mode {
        *server = format!("127.0.0.1:{closed}");
    }
    cfg.xmpp.queue_when_down = false;
    let gw = TestGateway::start(cfg).await.unwrap();
    let ua = registered_ua(&gw, &gina).await;
    let r = ua
        .message(
            &format!("sip:bob@{}", peers.prosody.domain),
            "text/plain",
            b"hello?",
        )
        .await
        .unwrap();
    assert!(
        matches!(r.code(), 408 | 503),
        "XMPP link down: {} {}",
        r.code(),
        r.reason()
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_message_to_unregistered_sip_user_without_queue_bounces() {
    let peers = require_peers!(Prosody);
    init_tracing();
    let _lock = component_lock().await;
    // The queue off, or on but not for SIP targets (`queue.on_codes_by_adapter`).
    let no_queue: [fn(&mut Config); 2] = [
        |c| c.queue.enabled = false,
        |c| {
            c.queue.on_codes_by_adapter.insert("sip".into(), Vec::new());
        },
    ];
    for tweak in no_queue {
        xmpp_to_unregistered_sip_user_bounces(&peers, tweak).await;
    }
}

async fn xmpp_to_unregistered_sip_user_bounces(peers: &Peers, tweak: fn(&mut Config)) {
    let hank = unique("hank");
    let gw = component_gateway(peers, &hank, tweak).await;
    let mut xalice = prosody_login(peers, "alice").await;
    let comp = component_domain(peers);
    let to = format!("{hank}@{comp}");
    xalice
        .send_message(&to, "are you there?", "m1")
        .await
        .unwrap();
    let e = xalice
        .await_event(
            |e| matches!(e, XmppEvent::Message { kind, .. } if kind == "error"),
            WAIT,
        )
        .await
        .unwrap();
    let (expected, _) = errmap::sip_to_xmpp(480);
    match &e {
        XmppEvent::Message { id, error, .. } => {
            assert_eq!(id, "m1");
            assert_eq!(error.as_deref(), Some(expected.as_str()), "{e:?}");
        }
        other => panic!("{other:?}"),
    }

    // A user the configured list does not have: 404 -> item-not-found.
    xalice
        .send_message(&format!("nobody{hank}@{comp}"), "hello?", "m2")
        .await
        .unwrap();
    assert_bounced(&xalice, "m2", 404).await;
    xalice.quit().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_message_to_unregistered_sip_user_with_queue_arrives_on_registration() {
    let peers = require_peers!(Prosody);
    init_tracing();
    let _lock = component_lock().await;
    let ivy = unique("ivy");
    // The first retry far away: only the registration can bring the message in time.
    let gw = component_gateway(&peers, &ivy, |c| {
        c.queue.enabled = true;
        c.queue.retry_initial_ms = 600_000;
        c.queue.retry_max_ms = 600_000;
    })
    .await;
    let mut xbob = prosody_login(&peers, "bob").await;
    let comp = component_domain(&peers);
    assert_eq!(queue_depth(&gw).await, 0);
    xbob.send_message(&format!("{ivy}@{comp}"), "queued for you", "q1")
        .await
        .unwrap();
    // Queued, not bounced.
    cpim_testkit::eventually("the message in the queue", WAIT, || async {
        (queue_depth(&gw).await == 1).then_some(())
    })
    .await
    .unwrap();

    // An unknown user is refused even with the queue on: nothing is queued for it.
    xbob.send_message(&format!("nobody{ivy}@{comp}"), "hello?", "q2")
        .await
        .unwrap();
    assert_bounced(&xbob, "q2", 404).await;
    assert!(
        !xbob.take_events().iter().any(
            |e| matches!(e, XmppEvent::Message { kind, id, .. } if kind == "error" && id == "q1")
        ),
        "the queued message bounced"
    );
    assert_eq!(
        queue_depth(&gw).await,
        1,
        "nothing queued for the unknown user"
    );

    // The user registers: the message arrives, once.
    let ua = registered_ua(&gw, &ivy).await;
    let m = ua
        .await_request(
            |r| r.method().as_str() == "MESSAGE" && r.body().as_ref() == b"queued for you",
            WAIT,
        )
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(m.body()).contains("queued"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !ua.take_received()
            .iter()
            .any(|r| r.method().as_str() == "MESSAGE"),
        "delivered twice"
    );
    cpim_testkit::eventually("an empty queue", WAIT, || async {
        (queue_depth(&gw).await == 0).then_some(())
    })
    .await
    .unwrap();
    xbob.quit().await.unwrap();
    gw.shutdown().await;
}

//! End to end through the gateway as Prosody's XEP-0114 component (acceptance tests):
//! a SIP user registered at the gateway (cpim-testkit's SIP UA, digest) and a slixmpp user
//! on the real Prosody (`CPIM_PEER_PROSODY_C2S`, `CPIM_PEER_PROSODY_COMPONENT*`).
//!
//! - messages both ways, text/plain and message/cpim (RFC 3862; the XMPP user gets the
//!   unwrapped payload, RFC 3922 s4 / RFC 7572);
//! - SIP watcher of an XMPP user (RFC 3856 / RFC 6665 / RFC 8048 s4-s5): the subscription
//!   stays pending until the XMPP user approves, then NOTIFY active with PIDF open; show and
//!   status changes, offline (closed) and online again; unsubscribe reaches the XMPP user;
//! - XMPP watcher of a SIP user: approved by the gateway's policy, the SIP user's PUBLISHed
//!   state (RFC 3903) arrives as presence with its note; a removed publication is
//!   unavailable; unsubscribe ends the subscription.
//!
//! Skips (prints why) without `CPIM_PEERS`.

mod common;

use std::time::Duration;

use common::*;
use cpim_core::presence::Basic;
use cpim_interop::require_peers;
use cpim_sip::codec::HeaderName;
use cpim_testkit::{SipUa, TestGateway, Transport, XmppClient, XmppEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_messages_both_ways_plain_and_cpim() {
    let peers = require_peers!();
    init_tracing();
    let _lock = component_lock();
    let carol = unique("carol");
    let gw = TestGateway::start(component_config(&peers, &[&carol]))
        .await
        .unwrap();
    gw.wait_link_up("xmpp", WAIT).await.unwrap();
    let comp = component_domain(&peers);
    let bob = peers.prosody.account("bob").unwrap();
    let mut xbob = XmppClient::login(&peers.python, &bob.jid(), &bob.password, peers.prosody.c2s)
        .await
        .unwrap();

    for transport in [Transport::Udp, Transport::Tcp] {
        let ua = SipUa::new(
            &carol,
            SIP_DOMAIN,
            Some(&format!("{carol}pw")),
            transport,
            gw.sip_addr(transport).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(ua.register(300).await.unwrap().code(), 200);
        let sip_jid = format!("{carol}@{comp}");
        let to_bob = format!("sip:{}", bob.jid());

        // SIP -> XMPP, text/plain: 200 only after the component accepted it.
        let text = format!("plain over {transport:?}");
        let r = ua
            .message(&to_bob, "text/plain;charset=UTF-8", text.as_bytes())
            .await
            .unwrap();
        assert_eq!(r.code(), 200, "{}", r.reason());
        let m = xbob
            .await_event(
                |e| matches!(e, XmppEvent::Message { body, .. } if *body == text),
                WAIT,
            )
            .await
            .unwrap();
        assert_eq!(m.from_bare(), Some(sip_jid.as_str()));

        // SIP -> XMPP, message/cpim: the XMPP user gets the payload, not the envelope.
        let payload = format!("cpim payload over {transport:?}");
        let cpim = format!(
            "From: <sip:{carol}@{SIP_DOMAIN}>\r\nTo: <{to_bob}>\r\nDateTime: 2026-11-21T12:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: id{transport:?}{carol}\r\n\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\n{payload}"
        );
        let r = ua
            .message(&to_bob, "message/cpim", cpim.as_bytes())
            .await
            .unwrap();
        assert_eq!(r.code(), 200, "{}", r.reason());
        let m = xbob
            .await_event(
                |e| matches!(e, XmppEvent::Message { body, .. } if body.contains("cpim payload")),
                WAIT,
            )
            .await
            .unwrap();
        match &m {
            XmppEvent::Message { body, .. } => assert_eq!(body, &payload, "unwrapped payload"),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.from_bare(), Some(sip_jid.as_str()));

        // XMPP -> SIP.
        let reply = format!("reply over {transport:?}");
        xbob.send_message(&sip_jid, &reply, &format!("r-{transport:?}"))
            .await
            .unwrap();
        let req = ua
            .await_request(
                |r| r.method().as_str() == "MESSAGE" && r.body().as_ref() == reply.as_bytes(),
                WAIT,
            )
            .await
            .unwrap();
        let from = req.header(HeaderName::From).unwrap_or("");
        assert!(from.contains(&bob.jid()), "From {from:?}");
        assert!(
            req.content_type().unwrap_or("").starts_with("text/plain"),
            "{:?}",
            req.content_type()
        );
        assert_eq!(ua.register(0).await.unwrap().code(), 200);
    }
    xbob.quit().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_sip_watcher_of_xmpp_user_with_authorization() {
    let peers = require_peers!();
    init_tracing();
    let _lock = component_lock();
    let dan = unique("dan");
    let gw = TestGateway::start(component_config(&peers, &[&dan]))
        .await
        .unwrap();
    gw.wait_link_up("xmpp", WAIT).await.unwrap();
    let comp = component_domain(&peers);
    let alice = peers.prosody.account("alice").unwrap();
    let mut xalice =
        XmppClient::login(&peers.python, &alice.jid(), &alice.password, peers.prosody.c2s)
            .await
            .unwrap();
    let ua = SipUa::new(
        &dan,
        SIP_DOMAIN,
        Some(&format!("{dan}pw")),
        Transport::Udp,
        gw.sip_addr(Transport::Udp).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(ua.register(300).await.unwrap().code(), 200);
    let sip_jid = format!("{dan}@{comp}");
    let presentity = format!("sip:{}", alice.jid());

    // SUBSCRIBE: accepted (202 pending or 200), the XMPP user is asked.
    let (r, sub) = ua.subscribe(&presentity, "presence", 600).await.unwrap();
    assert!(matches!(r.code(), 200 | 202), "{} {}", r.code(), r.reason());
    let sub = sub.expect("a dialog");
    // (Prosody also re-delivers pending requests of earlier runs at login: match `from`.)
    xalice
        .await_event(
            |e| matches!(e, XmppEvent::Presence { kind, .. } if kind == "subscribe")
                && e.from_bare() == Some(sip_jid.as_str()),
            WAIT,
        )
        .await
        .unwrap();
    // Not active before the approval: every NOTIFY so far is pending and carries no open
    // state.
    xalice.sync().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in ua.take_received().iter().filter(|r| is_notify(r)) {
        assert_eq!(
            sub_state(n),
            "pending",
            "SUBSCRIBE answered {}; NOTIFY {:?}: {}",
            r.code(),
            n.header(HeaderName::SubscriptionState),
            body_text(n)
        );
        assert_ne!(basic(n), Some(Basic::Open), "{}", body_text(n));
    }

    // Approve: NOTIFY active with PIDF open.
    xalice
        .send_presence(Some(&sip_jid), Some("subscribed"), None, None)
        .await
        .unwrap();
    ua.await_request(
        |r| is_notify(r) && sub_state(r) == "active" && basic(r) == Some(Basic::Open),
        WAIT,
    )
    .await
    .unwrap();

    // A show/status change arrives as a note.
    xalice
        .send_presence(None, None, Some("away"), Some("in a meeting"))
        .await
        .unwrap();
    ua.await_request(
        |r| is_notify(r) && body_text(r).contains("in a meeting"),
        WAIT,
    )
    .await
    .unwrap();

    // Offline, then online again.
    xalice
        .send_presence(None, Some("unavailable"), None, None)
        .await
        .unwrap();
    ua.await_request(
        |r| is_notify(r) && sub_state(r) == "active" && basic(r) == Some(Basic::Closed),
        WAIT,
    )
    .await
    .unwrap();
    xalice
        .send_presence(None, None, None, Some("back"))
        .await
        .unwrap();
    ua.await_request(
        |r| is_notify(r) && basic(r) == Some(Basic::Open) && body_text(r).contains("back"),
        WAIT,
    )
    .await
    .unwrap();

    // Unsubscribe: the dialog ends with a terminated NOTIFY, the XMPP user is told.
    let r = ua.resubscribe(&sub, 0).await.unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    ua.await_request(|r| is_notify(r) && sub_state(r) == "terminated", WAIT)
        .await
        .unwrap();
    xalice
        .await_event(
            |e| matches!(e, XmppEvent::Presence { kind, .. } if kind == "unsubscribe")
                && e.from_bare() == Some(sip_jid.as_str()),
            WAIT,
        )
        .await
        .unwrap();
    xalice.roster_remove(&sip_jid).await.unwrap();
    xalice.quit().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_xmpp_watcher_of_sip_user_sees_published_state() {
    let peers = require_peers!();
    init_tracing();
    let _lock = component_lock();
    let erin = unique("erin");
    let gw = TestGateway::start(component_config(&peers, &[&erin]))
        .await
        .unwrap();
    gw.wait_link_up("xmpp", WAIT).await.unwrap();
    let comp = component_domain(&peers);
    let bob = peers.prosody.account("bob").unwrap();
    let mut xbob = XmppClient::login(&peers.python, &bob.jid(), &bob.password, peers.prosody.c2s)
        .await
        .unwrap();
    let ua = SipUa::new(
        &erin,
        SIP_DOMAIN,
        Some(&format!("{erin}pw")),
        Transport::Udp,
        gw.sip_addr(Transport::Udp).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(ua.register(300).await.unwrap().code(), 200);
    let sip_jid = format!("{erin}@{comp}");

    let r = ua
        .publish(Some(&ua.pidf(true, Some("at my desk"))), 600, None)
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    let etag = r.header(HeaderName::SipEtag).unwrap().to_owned();

    // The XMPP user subscribes; the gateway approves (approve-all) and sends the state.
    xbob.send_presence(Some(&sip_jid), Some("subscribe"), None, None)
        .await
        .unwrap();
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, .. } if kind == "subscribed" && from.starts_with(&sip_jid)),
        WAIT,
    )
    .await
    .unwrap();
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, status, .. }
            if kind == "available" && from.starts_with(&sip_jid) && status.as_deref() == Some("at my desk")),
        WAIT,
    )
    .await
    .unwrap();

    // A changed publication.
    let r = ua
        .publish(Some(&ua.pidf(true, Some("lunch"))), 600, Some(&etag))
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    let etag = r.header(HeaderName::SipEtag).unwrap().to_owned();
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { from, status, .. }
            if from.starts_with(&sip_jid) && status.as_deref() == Some("lunch")),
        WAIT,
    )
    .await
    .unwrap();

    // Removing the publication (Expires: 0) makes the SIP user unavailable.
    let r = ua.publish(None, 0, Some(&etag)).await.unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, .. } if kind == "unavailable" && from.starts_with(&sip_jid)),
        WAIT,
    )
    .await
    .unwrap();

    // Online again.
    let r = ua
        .publish(Some(&ua.pidf(true, Some("back again"))), 600, None)
        .await
        .unwrap();
    assert_eq!(r.code(), 200);
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, status, .. }
            if kind == "available" && from.starts_with(&sip_jid) && status.as_deref() == Some("back again")),
        WAIT,
    )
    .await
    .unwrap();

    // Unsubscribe: the gateway drops the subscription.
    xbob.send_presence(Some(&sip_jid), Some("unsubscribe"), None, None)
        .await
        .unwrap();
    let watcher = bob.jid();
    let who = erin.clone();
    cpim_testkit::eventually("the subscription to disappear", WAIT, || async {
        let (_, body) = gw.admin_get("/subscriptions").await.ok()?;
        let still = body
            .lines()
            .chain(body.split("},{"))
            .any(|l| l.contains(&watcher) && l.contains(&who));
        (!still).then_some(())
    })
    .await
    .unwrap();
    xbob.roster_remove(&sip_jid).await.unwrap();
    xbob.quit().await.unwrap();
    gw.shutdown().await;
}

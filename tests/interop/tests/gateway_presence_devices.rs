//! Users with several devices, end to end through the gateway as the XEP-0114 component
//! of a real XMPP server (RFC 8048 s4-s5, RFC 3863 s4.1.1, RFC 4479 s4, RFC 3903 s4):
//!
//! - an XMPP user logged in twice (two slixmpp clients, two resources) watched by a SIP
//!   user (cpim-testkit's SIP UA): the NOTIFYs carry one tuple per resource, stay `open`
//!   while one resource is online, and say `closed` only after both left;
//! - a SIP user publishing from two devices (SIPp and the testkit UA: two PUBLISH without
//!   SIP-If-Match, two entity tags) watched by a third, XMPP user: one presence per
//!   device, the resource from the device's GRUU or tuple id (RFC 7247 s6.3); removing
//!   one publication sends `unavailable` from that resource only.
//!
//! Each runs against Prosody and against ejabberd; the composed PIDF is checked against
//! RFC 3863's schema with xmllint. Skips (prints why) without `CPIM_PEERS`, fails for
//! that under `CI=true`.

mod common;

use std::time::Duration;

use common::flows::{Flow, Setup};
use common::{basic, body_text, is_notify, sip_ua, sub_state, unique, WAIT};
use cpim_core::presence::Basic;
use cpim_interop::peer_env::{self, Peer};
use cpim_interop::Peers;
use cpim_sip::app::digest::Algorithm;
use cpim_sip::codec::{HeaderName, Request};
use cpim_testkit::{SipUa, TestGateway, Transport, XmppClient, XmppEvent};

/// Runs `flow` for the SIP user `user` with the gateway as the XEP-0114 component of
/// `peer`, as `common::modes::component` does, with MD5 digest only (SIPp answers no
/// SHA-256 challenge, RFC 8760).
async fn component(peer: Peer, user: String, flow: Flow) {
    let Some(peers) = peer_env::need(&[peer], Peers::from_env(), cpim_interop::SKIP_MESSAGE) else {
        return;
    };
    common::init_tracing();
    let _lock = common::component_lock().await;
    let server = common::xmpp_server(&peers, peer);
    let mut cfg = common::component_config_of(server, &[&user]);
    cfg.sip.auth_algorithms = vec![Algorithm::Md5];
    let gw = TestGateway::start(cfg).await.unwrap();
    gw.wait_link_up("xmpp", WAIT).await.unwrap();
    let setup = Setup {
        peers: &peers,
        xmpp: server,
        gw: &gw,
        sip_domain: common::SIP_DOMAIN.into(),
        jid_domain: server.component.as_ref().unwrap().domain.clone(),
    };
    flow(&setup, &user).await;
    gw.shutdown().await;
}

/// The tuple ids of a NOTIFY's PIDF body with their basic status.
fn tuples(r: &Request) -> Vec<(String, Option<Basic>)> {
    cpim_core::pidf::parse(r.body())
        .map(|p| p.tuples.into_iter().map(|t| (t.id, t.basic)).collect())
        .unwrap_or_default()
}

async fn registered(s: &Setup<'_>, user: &str) -> SipUa {
    let ua = sip_ua(user, Transport::Udp, s.gw.sip_addr(Transport::Udp).unwrap()).await;
    let r = ua.register(300).await.unwrap();
    assert_eq!(r.code(), 200, "REGISTER: {}", r.reason());
    ua
}

async fn login(s: &Setup<'_>, user: &str, resource: &str) -> XmppClient {
    let a = s.xmpp.account(user).unwrap();
    XmppClient::login(
        &s.peers.python,
        &format!("{}/{resource}", a.jid()),
        &a.password,
        s.xmpp.c2s,
    )
    .await
    .unwrap()
}

/// RFC 8048 s4: a SIP watcher of an XMPP user with two resources sees one tuple per
/// resource; one resource leaving leaves the user open; closed only when both left.
async fn sip_watcher_of_two_resources(s: &Setup<'_>, user: &str) {
    let bob = s.xmpp.account("bob").unwrap();
    let res_a = unique("phone");
    let res_b = unique("desk");
    let mut xa = login(s, "bob", &res_a).await;
    let ua = registered(s, user).await;
    let sip_jid = format!("{user}@{}", s.jid_domain);
    let (r, sub) = ua
        .subscribe(&format!("sip:{}", bob.jid()), "presence", 600)
        .await
        .unwrap();
    assert!(matches!(r.code(), 200 | 202), "{} {}", r.code(), r.reason());
    let sub = sub.expect("a dialog");
    common::await_presence_from(&xa, "subscribe", &sip_jid).await;
    xa.send_presence(Some(&sip_jid), Some("subscribed"), None, None)
        .await
        .unwrap();
    let has = |r: &Request, id: &str| {
        tuples(r)
            .iter()
            .any(|(t, b)| t == id && *b == Some(Basic::Open))
    };
    ua.await_request(
        |r| is_notify(r) && sub_state(r) == "active" && has(r, &res_a),
        WAIT,
    )
    .await
    .unwrap();

    // The second client logs in: both resources, the newest first.
    let mut xb = login(s, "bob", &res_b).await;
    let both = ua
        .await_request(|r| is_notify(r) && has(r, &res_a) && has(r, &res_b), WAIT)
        .await
        .unwrap();
    assert_eq!(
        tuples(&both)
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>(),
        vec![res_b.clone(), res_a.clone()],
        "{}",
        body_text(&both)
    );
    // The composed document is valid PIDF (RFC 3863 schema, xmllint).
    let dir = common::sip::scratch("devices");
    match common::sip::validate_pidf(s.peers, &body_text(&both), &dir, "two-resources") {
        Ok(true) => {
            peer_env::need(&[Peer::Xmllint], Some(()), "");
        }
        Ok(false) => println!("SKIP schema check: the SIMPLE schemas are not found"),
        Err(e) => panic!("invalid PIDF: {e}"),
    }

    // The first client leaves: still open, with the second's tuple alone.
    xa.quit().await.unwrap();
    let one = ua
        .await_request(|r| is_notify(r) && has(r, &res_b) && !has(r, &res_a), WAIT)
        .await
        .unwrap();
    assert_eq!(basic(&one), Some(Basic::Open), "{}", body_text(&one));
    // (State-only NOTIFYs, without a body, may be among them.)
    for n in ua.take_received().iter().filter(|r| is_notify(r)) {
        assert_ne!(
            basic(n),
            Some(Basic::Closed),
            "closed too early: {}",
            body_text(n)
        );
    }

    // The second leaves too: closed.
    xb.send_presence(None, Some("unavailable"), None, None)
        .await
        .unwrap();
    ua.await_request(
        |r| is_notify(r) && sub_state(r) == "active" && basic(r) == Some(Basic::Closed),
        WAIT,
    )
    .await
    .unwrap();

    let r = ua.resubscribe(&sub, 0).await.unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    // Clean the roster for the next runs (a new client: both above have left).
    let mut xc = login(s, "bob", &unique("admin")).await;
    xc.roster_remove(&sip_jid).await.unwrap();
    xc.quit().await.unwrap();
    xb.quit().await.unwrap();
}

/// A PIDF document of one device: tuple `id`, contact `contact`, priority `q`.
fn device(ua: &SipUa, id: &str, contact: &str, q: &str, note: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{}\"><tuple id=\"{id}\"><status><basic>open</basic></status><contact priority=\"{q}\">{contact}</contact><note>{note}</note></tuple></presence>",
        ua.aor()
    )
}

/// RFC 8048 s5, RFC 3903 s4, RFC 7247 s6.3: a SIP user publishing from two devices is
/// two resources for an XMPP watcher; one publication removed is `unavailable` from its
/// resource only.
async fn xmpp_watcher_of_two_devices(s: &Setup<'_>, user: &str) {
    let mut xw = login(s, "alice", &unique("w")).await;
    let ua = registered(s, user).await;
    let sip_jid = format!("{user}@{}", s.jid_domain);
    // Device 1, SIPp (its own entity tag): its tuple id `sipp` names the resource.
    let found = s.peers.sipp.is_file().then_some(());
    if peer_env::need(&[Peer::Sipp], found, "SIPp is not installed").is_none() {
        return;
    }
    let dir = common::sip::scratch("devices-sipp");
    let pw = format!("{user}pw");
    let sipp = common::sip::sipp(
        s.peers,
        "gw_publish_open.xml",
        common::sip::T::Udp,
        common::sip::free_port(),
        s.gw.sip_addr(Transport::Udp),
        &[
            "-s",
            user,
            "-au",
            user,
            "-ap",
            &pw,
            "-key",
            "domain",
            common::SIP_DOMAIN,
            "-m",
            "1",
        ],
        &dir,
    );
    let out = tokio::task::spawn_blocking(move || sipp.run())
        .await
        .unwrap();
    assert!(out.ok, "SIPp's PUBLISH: {}", out.report);
    // Device 2, the testkit UA: its GRUU names the resource (the tuple id does not).
    let gruu = format!("{};gr=handset", ua.aor());
    let r = ua
        .publish(
            Some(&device(&ua, "t-1", &gruu, "1.0", "on the handset")),
            600,
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    let etag = r.header(HeaderName::SipEtag).unwrap().to_owned();

    xw.send_presence(Some(&sip_jid), Some("subscribe"), None, None)
        .await
        .unwrap();
    let from_res = |e: &XmppEvent, res: &str, kind: &str| {
        matches!(e, XmppEvent::Presence { from, kind: k, .. }
            if *from == format!("{sip_jid}/{res}") && k == kind)
    };
    xw.await_event(|e| from_res(e, "handset", "available"), WAIT)
        .await
        .unwrap();
    let sipp_seen = xw
        .await_event(|e| from_res(e, "sipp", "available"), WAIT)
        .await
        .unwrap();
    assert!(
        matches!(&sipp_seen, XmppEvent::Presence { status: Some(st), .. } if st == "online via SIPp"),
        "{sipp_seen:?}"
    );

    // The handset's publication is removed: unavailable from it, not from SIPp's device.
    let r = ua.publish(None, 0, Some(&etag)).await.unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    xw.await_event(|e| from_res(e, "handset", "unavailable"), WAIT)
        .await
        .unwrap();
    xw.sync().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sipp_gone = xw
        .await_event(
            |e| from_res(e, "sipp", "unavailable"),
            Duration::from_millis(200),
        )
        .await;
    assert!(sipp_gone.is_err(), "SIPp's device is still online");

    xw.send_presence(Some(&sip_jid), Some("unsubscribe"), None, None)
        .await
        .unwrap();
    xw.roster_remove(&sip_jid).await.unwrap();
    xw.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8048_s4_sip_watcher_of_xmpp_user_with_two_resources() {
    component(Peer::Prosody, unique("sam"), |s, u| {
        Box::pin(sip_watcher_of_two_resources(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8048_s4_sip_watcher_of_ejabberd_user_with_two_resources() {
    component(Peer::Ejabberd, unique("sem"), |s, u| {
        Box::pin(sip_watcher_of_two_resources(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8048_s5_ejabberd_watcher_of_sip_user_with_two_devices() {
    component(Peer::Ejabberd, unique("tia"), |s, u| {
        Box::pin(xmpp_watcher_of_two_devices(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8048_s5_xmpp_watcher_of_sip_user_with_two_devices() {
    component(Peer::Prosody, unique("tess"), |s, u| {
        Box::pin(xmpp_watcher_of_two_devices(s, u))
    })
    .await;
}

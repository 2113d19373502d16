//! The presentity decides who watches it (issue 13), end to end through the gateway as
//! Prosody's XEP-0114 component: slixmpp users on the real Prosody subscribe to a SIP
//! user's presence under the policy `ask`; the watchers stay pending (RFC 6665 s4.1.3:
//! no `subscribed` yet, RFC 8048 s5); the SIP user (cpim-testkit's UA), subscribed to
//! its own `presence.winfo` (RFC 3857; another SIP user gets 403), sees them pending in
//! RFC 3858 watcherinfo NOTIFYs (validated with xmllint against the RFC 3858 schema),
//! and the admin API lists them (`GET /presence/watchers`); the SIP user's decision
//! through the admin API (`POST /presence/decision`) reaches the XMPP users: an allow
//! gives `subscribed` and the published state, a deny gives `unsubscribed`, and a denied
//! watcher that asks again is not asked about again.
//!
//! Skips (prints why) without `CPIM_PEERS`, fails for that under `CI=true`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use cpim_core::watcherinfo::{self, WatcherInfo};
use cpim_interop::peer_env::{self, Peer};
use cpim_interop::Peers;
use cpim_sip::codec::{HeaderName, Request};
use cpim_testkit::{TestGateway, Transport, XmppClient, XmppEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `POST path` with a JSON body on the admin API: (status, body).
async fn admin_post(gw: &TestGateway, path: &str, body: &str) -> (u16, String) {
    let addr: SocketAddr = gw.admin_addr().expect("the admin API runs");
    let token = gw.admin_token().unwrap_or_default();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the admin API answers")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (code, body)
}

/// The status of `watcher` in the presentity's watcher list (`GET /presence/watchers`).
async fn watcher_status(gw: &TestGateway, presentity: &str, watcher: &str) -> Option<String> {
    let (code, body) = gw
        .admin_get(&format!("/presence/watchers?presentity={presentity}"))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()?
        .iter()
        .find(|e| e["watcher"].as_str().is_some_and(|w| w.contains(watcher)))
        .and_then(|e| e["status"].as_str().map(str::to_owned))
}

async fn await_kind(x: &XmppClient, kind: &str, from: &str) {
    x.await_event(
        |e| matches!(e, XmppEvent::Presence { kind: k, from: f, .. } if k == kind && f.starts_with(from)),
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("no `{kind}` from {from}: {e}"));
}

/// The watcher information of a `presence.winfo` NOTIFY, checked against the RFC 3858
/// schema with xmllint when the shared schemas and xmllint are there.
fn winfo_body(r: &Request) -> WatcherInfo {
    assert_eq!(r.header(HeaderName::Event), Some("presence.winfo"));
    assert_eq!(
        r.header(HeaderName::ContentType),
        Some(watcherinfo::CONTENT_TYPE)
    );
    // The shared folder next to the checkout (or next to the folder of its worktrees).
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema = ["../../../shared", "../../../../shared"]
        .iter()
        .find_map(|up| {
            std::fs::canonicalize(
                here.join(up)
                    .join("corpora/simple-xml-schemas/sipsimple/watcherinfo.xsd"),
            )
            .ok()
        });
    let xmllint = peer_env::program("CPIM_PEER_XMLLINT", "xmllint");
    if let Some((schema, xmllint)) = peer_env::need(
        &[Peer::Xmllint],
        schema.zip(xmllint),
        "the watcherinfo schema (shared corpora) or xmllint is not found",
    ) {
        let file = std::env::temp_dir().join(format!("winfo-{}.xml", unique("doc")));
        std::fs::write(&file, r.body()).unwrap();
        let out = std::process::Command::new(xmllint)
            .arg("--noout")
            .arg("--nonet")
            .arg("--schema")
            .arg(&schema)
            .arg(&file)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "watcherinfo does not validate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    watcherinfo::parse(r.body()).unwrap()
}

/// The status and event of `watcher` in a watcherinfo document.
fn status_in(doc: &WatcherInfo, watcher: &str) -> Option<(String, String)> {
    doc.lists
        .iter()
        .flat_map(|l| &l.watchers)
        .find(|w| w.uri.contains(watcher))
        .map(|w| (w.status.as_str().to_owned(), w.event.as_str().to_owned()))
}

/// Waits for a `presence.winfo` NOTIFY whose document satisfies `pred`.
async fn await_winfo(
    ua: &cpim_testkit::SipUa,
    pred: impl Fn(&WatcherInfo) -> bool,
    what: &str,
) -> WatcherInfo {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let r = ua
            .await_request(
                |r| {
                    r.method().as_str() == "NOTIFY"
                        && r.header(HeaderName::Event) == Some("presence.winfo")
                },
                left,
            )
            .await
            .unwrap_or_else(|e| panic!("no watcherinfo NOTIFY with {what}: {e}"));
        let doc = winfo_body(&r);
        if pred(&doc) {
            return doc;
        }
    }
}

/// RFC 6665 s4.1.3 pending, RFC 8048 s5 `subscribed` / `unsubscribed`, RFC 3858
/// watcherinfo: two XMPP watchers of a SIP user wait for the SIP user's decision; the
/// allowed one gets `subscribed` and the state, the denied one `unsubscribed` and, when
/// it asks again, `unsubscribed` again without a pending entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_xmpp_watchers_wait_for_the_sip_users_decision_rfc6665_s4_1_3() {
    let Some(peers) = peer_env::need(
        &[Peer::Prosody],
        Peers::from_env(),
        cpim_interop::SKIP_MESSAGE,
    ) else {
        return;
    };
    init_tracing();
    let _lock = component_lock().await;
    let user = unique("wendy");
    let server = xmpp_server(&peers, Peer::Prosody);
    let other = unique("oscar");
    let mut cfg = component_config_of(server, &[&user, &other]);
    cfg.presence.authorization = "ask".into();
    let gw = TestGateway::start(cfg).await.unwrap();
    gw.wait_link_up("xmpp", WAIT).await.unwrap();
    let jid_domain = server.component.as_ref().unwrap().domain.clone();
    let sip_jid = format!("{user}@{jid_domain}");
    let presentity = format!("sip:{user}@{SIP_DOMAIN}");

    let ua = sip_ua(&user, Transport::Udp, gw.sip_addr(Transport::Udp).unwrap()).await;
    let r = ua.register(300).await.unwrap();
    assert_eq!(r.code(), 200, "REGISTER: {}", r.reason());
    let r = ua
        .publish(Some(&ua.pidf(true, Some("deciding"))), 600, None)
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    assert!(r.header(HeaderName::SipEtag).is_some());
    // RFC 3857 s4.6: another user may not see the watchers; the user may.
    let oua = sip_ua(&other, Transport::Udp, gw.sip_addr(Transport::Udp).unwrap()).await;
    assert_eq!(oua.register(300).await.unwrap().code(), 200);
    let (r, _) = oua
        .subscribe(&presentity, "presence.winfo", 600)
        .await
        .unwrap();
    assert_eq!(r.code(), 403, "{}", r.reason());
    let (r, winfo_sub) = ua
        .subscribe(&presentity, "presence.winfo", 600)
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    let first = await_winfo(&ua, |_| true, "the first document").await;
    assert_eq!(first.version, 0);

    let bob = server.account("bob").unwrap().jid();
    let alice = server.account("alice").unwrap().jid();
    let mut xbob = xmpp_login(&peers, server, "bob").await;
    let mut xalice = xmpp_login(&peers, server, "alice").await;
    for x in [&mut xbob, &mut xalice] {
        x.send_presence(Some(&sip_jid), Some("subscribe"), None, None)
            .await
            .unwrap();
    }
    // Both pending: listed as such, and no `subscribed` while the SIP user has not decided.
    for w in [&bob, &alice] {
        cpim_testkit::eventually("the watcher to be listed as pending", WAIT, || async {
            (watcher_status(&gw, &presentity, w).await.as_deref() == Some("pending")).then_some(())
        })
        .await
        .unwrap();
    }
    // The SIP user sees both pending (RFC 3857 s4.7.1 event `subscribe`).
    await_winfo(
        &ua,
        |d| {
            [&bob, &alice]
                .iter()
                .all(|w| status_in(d, w) == Some(("pending".into(), "subscribe".into())))
        },
        "both watchers pending",
    )
    .await;
    let early = xbob
        .await_event(
            |e| matches!(e, XmppEvent::Presence { kind, from, .. } if kind == "subscribed" && from.starts_with(&sip_jid)),
            Duration::from_secs(2),
        )
        .await;
    assert!(
        early.is_err(),
        "`subscribed` before the decision: {early:?}"
    );
    let (code, xml) = gw
        .admin_get(&format!(
            "/presence/watchers?presentity={presentity}&format=watcherinfo"
        ))
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(xml.contains("urn:ietf:params:xml:ns:watcherinfo"), "{xml}");
    assert_eq!(xml.matches("status=\"pending\"").count(), 2, "{xml}");

    // The SIP user allows bob: `subscribed`, then the published state.
    let (code, body) = admin_post(
        &gw,
        "/presence/decision",
        &format!(r#"{{"presentity":"{presentity}","watcher":"xmpp:{bob}","decision":"allow"}}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    await_kind(&xbob, "subscribed", &sip_jid).await;
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, status, .. }
            if kind == "available" && from.starts_with(&sip_jid) && status.as_deref() == Some("deciding")),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(
        watcher_status(&gw, &presentity, &bob).await.as_deref(),
        Some("active")
    );
    await_winfo(
        &ua,
        |d| status_in(d, &bob) == Some(("active".into(), "approved".into())),
        "bob approved",
    )
    .await;

    // ... and denies alice: `unsubscribed`.
    let (code, body) = admin_post(
        &gw,
        "/presence/decision",
        &format!(r#"{{"presentity":"{presentity}","watcher":"xmpp:{alice}","decision":"deny"}}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    await_kind(&xalice, "unsubscribed", &sip_jid).await;
    assert_eq!(
        watcher_status(&gw, &presentity, &alice).await.as_deref(),
        Some("terminated")
    );
    await_winfo(
        &ua,
        |d| status_in(d, &alice) == Some(("terminated".into(), "rejected".into())),
        "alice rejected",
    )
    .await;
    // Alice asks again: refused without a new pending entry.
    xalice
        .send_presence(Some(&sip_jid), Some("subscribe"), None, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        watcher_status(&gw, &presentity, &alice).await.as_deref(),
        Some("terminated")
    );

    for x in [&mut xbob, &mut xalice] {
        x.send_presence(Some(&sip_jid), Some("unsubscribe"), None, None)
            .await
            .unwrap();
        x.roster_remove(&sip_jid).await.unwrap();
    }
    let r = ua.resubscribe(&winfo_sub.unwrap(), 0).await.unwrap();
    assert_eq!(r.code(), 200);
    xbob.quit().await.unwrap();
    xalice.quit().await.unwrap();
    gw.shutdown().await;
}

//! A SIP user's pres-rules document (RFC 5025 on RFC 4745) decides who watches it,
//! through the whole gateway in-process: a SIP watcher of another domain subscribes to
//! the user's presence and is pending (RFC 6665 s4.1.3); the user PUTs a pres-rules
//! document over XCAP (RFC 4825, HTTP Digest with its SIP credentials) whose rule
//! allows that watcher (RFC 5025 s3.2.1 `allow`): the watcher's subscription becomes
//! active; a second document blocking it (`block`) ends it with
//! `terminated;reason=rejected`, and the watcher's next subscribe gets 403.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cpim_gateway::config::Config;
use cpim_gateway::gateway::Gateway;
use cpim_sip::app::config::SipUser;
use cpim_sip::app::digest::{respond, Challenge};
use cpim_sip::codec::{HeaderName, Request};
use cpim_testkit::{SipUa, Transport};

mod common;
use common::{raw, tmp};

const ALICE: &str = "sip:alice@sip.test";
const RULES: &str = "/xcap-root/pres-rules/users/sip:alice@sip.test/index";

fn config(store: &Path) -> Config {
    let mut c = Config {
        adapters: vec!["sip".into()],
        ..Config::default()
    };
    c.sip.domains = vec!["sip.test".into(), "other.test".into()];
    c.sip.endpoint.udp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tls = vec!["127.0.0.1:0".parse().unwrap()];
    for (u, d) in [("alice", "sip.test"), ("bob", "other.test")] {
        c.sip.users.push(SipUser {
            username: u.into(),
            domain: Some(d.into()),
            password: Some(format!("{u}-secret-1")),
            ..SipUser::default()
        });
    }
    c.presence.notify_interval_ms = 0;
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.token = Some("presence-rules-admin-token-0123456".into());
    c.store.path = store.to_owned();
    c
}

/// A PUT of a pres-rules document as alice, answering the digest challenge (RFC 7616).
async fn put_rules(addr: SocketAddr, body: &str) -> u16 {
    let mut challenge: Option<Challenge> = None;
    loop {
        let mut head = format!(
            "PUT {RULES} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/auth-policy+xml\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(c) = &challenge {
            let cred = respond(c, "PUT", RULES, "alice", "alice-secret-1", "0a4f113b", 1);
            head.push_str(&format!("Authorization: {}\r\n", cred.to_header()));
        }
        head.push_str("\r\n");
        let r = raw(addr, &head, Some(body.as_bytes())).await;
        if r.status != 401 || challenge.is_some() {
            return r.status;
        }
        let www = r.header("www-authenticate").expect("a challenge");
        challenge = Some(Challenge::parse(www).unwrap());
    }
}

fn rules(handling: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules"
    xmlns:pr="urn:ietf:params:xml:ns:pres-rules"
    xmlns:cr="urn:ietf:params:xml:ns:common-policy">
  <cr:rule id="bob">
    <cr:conditions>
      <cr:identity><cr:one id="sip:bob@other.test"/></cr:identity>
    </cr:conditions>
    <cr:actions><pr:sub-handling>{handling}</pr:sub-handling></cr:actions>
  </cr:rule>
</cr:ruleset>
"#
    )
}

fn presence_notify(r: &Request) -> bool {
    r.method().as_str() == "NOTIFY" && r.header(HeaderName::Event) == Some("presence")
}

fn state_of(r: &Request) -> String {
    r.header(HeaderName::SubscriptionState)
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5025_pres_rules_written_over_xcap_allow_then_block_a_sip_watcher() {
    let dir = tmp("presence-rules");
    let gw = Gateway::start(config(&dir)).await.unwrap();
    let admin = gw.admin_addr().unwrap();
    let udp = gw
        .sip_addrs()
        .iter()
        .find(|(t, _)| t == "udp")
        .map(|(_, a)| *a)
        .expect("SIP on UDP");
    let bob = SipUa::new(
        "bob",
        "other.test",
        Some("bob-secret-1"),
        Transport::Udp,
        udp,
    )
    .await
    .unwrap();
    assert_eq!(bob.register(300).await.unwrap().code(), 200);

    // Pending: alice has not decided (policy ask, another domain).
    let (r, _) = bob.subscribe(ALICE, "presence", 600).await.unwrap();
    assert_eq!(r.code(), 202, "{}", r.reason());
    let n = bob
        .await_request(presence_notify, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(state_of(&n).starts_with("pending"), "{}", state_of(&n));

    // RFC 5025 s3.2.1 allow: active (a repeated pending NOTIFY may come first).
    assert_eq!(put_rules(admin, &rules("allow")).await, 201);
    let n = bob
        .await_request(
            |r| presence_notify(r) && !state_of(r).starts_with("pending"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(state_of(&n).starts_with("active"), "{}", state_of(&n));

    // RFC 5025 s3.2.1 block: terminated, rejected; a new subscribe is refused.
    assert_eq!(put_rules(admin, &rules("block")).await, 200);
    let n = bob
        .await_request(
            |r| presence_notify(r) && state_of(r).starts_with("terminated"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let st = state_of(&n);
    assert!(
        st.starts_with("terminated") && st.contains("reason=rejected"),
        "{st}"
    );
    let (r, _) = bob.subscribe(ALICE, "presence", 600).await.unwrap();
    assert_eq!(r.code(), 403, "{}", r.reason());

    // The document survives a restart and still decides.
    gw.shutdown().await;
    let gw = Gateway::start(config(&dir)).await.unwrap();
    let udp = gw
        .sip_addrs()
        .iter()
        .find(|(t, _)| t == "udp")
        .map(|(_, a)| *a);
    assert!(udp.is_some(), "SIP on UDP after the restart");
    bob.set_server(udp.unwrap());
    let (r, _) = bob.subscribe(ALICE, "presence", 600).await.unwrap();
    assert_eq!(r.code(), 403, "{}", r.reason());
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

//! The presentity decides who watches it (policy `ask`, issue 13), through the whole
//! gateway in-process: a mock adapter's watcher of a local SIP user is pending (202,
//! RFC 6665 s4.1.3), listed by `GET /presence/watchers` (JSON and RFC 3858 watcherinfo);
//! `POST /presence/decision` allows one watcher (its adapter gets the active state) and
//! denies another (`terminated;reason=rejected`); pending watchers and decisions
//! survive a restart; the endpoints need the admin token.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::address::Address;
use cpim_core::model::{
    Operation, Outcome, Subscribe, SubscriptionState, TerminationReason, TransId,
};
use cpim_core::StatusCode;
use cpim_gateway::config::{Config, Route};
use cpim_gateway::gateway::Gateway;

mod common;
use common::{http_get, raw, tmp};

/// A mock adapter for `x.test` that records what it is given and answers 200.
struct Mock {
    got: Mutex<Vec<Operation>>,
}

impl Adapter for Mock {
    fn name(&self) -> &str {
        "x"
    }
    fn serves(&self, a: &Address) -> bool {
        a.domain == "x.test"
    }
    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome> {
        let id = op.trans_id();
        self.got.lock().unwrap().push(op);
        Box::pin(async move { Outcome::failure(id, 200, "OK") })
    }
}

impl Mock {
    /// The subscription states of the notifies to `watcher`.
    fn states(&self, watcher: &str) -> Vec<SubscriptionState> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|o| match o {
                Operation::Notify(n) if n.watcher.to_string().contains(watcher) => {
                    Some(n.state.clone())
                }
                _ => None,
            })
            .collect()
    }
}

const TOKEN: &str = "presence-decisions-admin-token-0123";
const ALICE: &str = "sip:alice@sip.test";

fn config(store: &std::path::Path) -> Config {
    let mut c = Config {
        adapters: vec!["sip".into()],
        ..Config::default()
    };
    c.sip.domains = vec!["sip.test".into()];
    c.sip.endpoint.udp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tls = vec!["127.0.0.1:0".parse().unwrap()];
    c.routes = vec![Route {
        domain: "x.test".into(),
        adapter: "x".into(),
    }];
    c.presence.notify_interval_ms = 0;
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.token = Some(TOKEN.into());
    c.store.path = store.to_owned();
    c
}

async fn post(addr: SocketAddr, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let r = raw(addr, &head, Some(body.as_bytes())).await;
    (r.status, r.body)
}

fn decision(watcher: &str, d: &str) -> String {
    format!(r#"{{"presentity":"{ALICE}","watcher":"{watcher}","decision":"{d}"}}"#)
}

async fn watchers(admin: SocketAddr) -> Vec<(String, String)> {
    let (code, body) = http_get(
        admin,
        "/presence/watchers?presentity=sip%3Aalice%40sip.test",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["watcher"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn subscribe(gw: &Gateway, watcher: &str) -> StatusCode {
    let s = Subscribe {
        trans_id: TransId(1),
        watcher: Address::parse(watcher).unwrap(),
        target: Address::parse(ALICE).unwrap(),
        duration: 3600,
    };
    gw.ingress
        .submit("x", Operation::Subscribe(s))
        .await
        .status
        .code
}

#[tokio::test]
async fn pending_watchers_decided_through_the_admin_api_survive_a_restart() {
    let dir = tmp("decisions");
    let mock = Arc::new(Mock {
        got: Mutex::new(Vec::new()),
    });
    let gw = Gateway::start_with(config(&dir), vec![mock.clone()])
        .await
        .unwrap();
    let admin = gw.admin_addr().unwrap();
    for w in ["im:romeo@x.test", "im:eve@x.test", "im:carol@x.test"] {
        assert_eq!(subscribe(&gw, w).await, StatusCode::ACCEPTED, "{w}");
    }
    assert_eq!(
        watchers(admin).await,
        [
            ("im:carol@x.test".to_owned(), "pending".to_owned()),
            ("im:eve@x.test".to_owned(), "pending".to_owned()),
            ("im:romeo@x.test".to_owned(), "pending".to_owned()),
        ]
    );
    // The token is required; a malformed decision is 400; a foreign presentity 404.
    assert_eq!(
        post(
            admin,
            "/presence/decision",
            &decision("im:romeo@x.test", "allow"),
            None
        )
        .await
        .0,
        401
    );
    let bad = post(
        admin,
        "/presence/decision",
        &decision("im:romeo@x.test", "maybe"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(bad.0, 400, "{}", bad.1);
    let foreign =
        r#"{"presentity":"im:bob@x.test","watcher":"im:romeo@x.test","decision":"allow"}"#;
    assert_eq!(
        post(admin, "/presence/decision", foreign, Some(TOKEN))
            .await
            .0,
        404
    );

    let (code, body) = post(
        admin,
        "/presence/decision",
        &decision("im:romeo@x.test", "allow"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = post(
        admin,
        "/presence/decision",
        &decision("im:eve@x.test", "deny"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // The deliveries follow the store writes; give them a moment.
    for _ in 0..50 {
        if mock.states("eve").len() == 2 && !mock.states("romeo").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let romeo = mock.states("romeo");
    assert_eq!(
        romeo.first(),
        Some(&SubscriptionState::Pending),
        "{romeo:?}"
    );
    assert!(
        matches!(romeo.last(), Some(SubscriptionState::Active { .. })),
        "{romeo:?}"
    );
    assert_eq!(
        mock.states("eve"),
        [
            SubscriptionState::Pending,
            SubscriptionState::Terminated(TerminationReason::Rejected)
        ]
    );
    let (code, xml) = http_get(
        admin,
        "/presence/watchers?presentity=sip%3Aalice%40sip.test&format=watcherinfo",
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200);
    let doc = cpim_core::watcherinfo::parse(xml.as_bytes()).unwrap();
    assert_eq!(doc.lists[0].resource, ALICE);
    assert_eq!(doc.lists[0].watchers.len(), 3, "{xml}");
    gw.shutdown().await;

    // After a restart: carol still pending, romeo active, eve remembered as denied.
    let mock = Arc::new(Mock {
        got: Mutex::new(Vec::new()),
    });
    let gw = Gateway::start_with(config(&dir), vec![mock.clone()])
        .await
        .unwrap();
    let admin = gw.admin_addr().unwrap();
    assert_eq!(
        watchers(admin).await,
        [
            ("im:carol@x.test".to_owned(), "pending".to_owned()),
            ("im:eve@x.test".to_owned(), "terminated".to_owned()),
            ("im:romeo@x.test".to_owned(), "active".to_owned()),
        ]
    );
    assert_eq!(subscribe(&gw, "im:eve@x.test").await, StatusCode::FORBIDDEN);
    let (code, _) = post(
        admin,
        "/presence/decision",
        &decision("im:carol@x.test", "allow"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(watchers(admin).await[0].1, "active");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The body of a `presence.winfo` NOTIFY, parsed (RFC 3858), with its Subscription-State.
fn winfo_of(r: &cpim_sip::codec::Request) -> (String, cpim_core::watcherinfo::WatcherInfo) {
    use cpim_sip::codec::HeaderName;
    assert_eq!(r.header(HeaderName::Event), Some("presence.winfo"));
    assert_eq!(
        r.header(HeaderName::ContentType),
        Some(cpim_core::watcherinfo::CONTENT_TYPE)
    );
    let state = r
        .header(HeaderName::SubscriptionState)
        .unwrap_or("")
        .to_owned();
    (state, cpim_core::watcherinfo::parse(r.body()).unwrap())
}

/// RFC 3857 over the real SIP adapter: a SIP user subscribes to its own watcher
/// information (others get 403); the first NOTIFY holds the full state (version 0, the
/// pending watcher with event `subscribe`); the decision through the admin API gives a
/// NOTIFY with the next version and the watcher `active`/`approved` (RFC 3858 s3, s4,
/// RFC 3857 s4.7.1); after a restart the subscription is back (its state sent again, the
/// versions counting on); a 489 for an unknown package advertises `presence.winfo`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc3857_sip_user_watches_its_watchers_through_presence_winfo() {
    use cpim_sip::app::config::SipUser;
    use cpim_testkit::{SipUa, Transport};

    let dir = tmp("winfo-sip");
    let mock = Arc::new(Mock {
        got: Mutex::new(Vec::new()),
    });
    let restart_config = |dir: &std::path::Path| {
        let mut cfg = config(dir);
        cfg.sip.users = ["alice", "eve"]
            .iter()
            .map(|u| SipUser {
                username: (*u).to_owned(),
                password: Some(format!("{u}pw")),
                ..SipUser::default()
            })
            .collect();
        cfg
    };
    let gw = Gateway::start_with(restart_config(&dir), vec![mock.clone()])
        .await
        .unwrap();
    let admin = gw.admin_addr().unwrap();
    let udp = gw
        .sip_addrs()
        .iter()
        .find(|(t, _)| t == "udp")
        .map(|(_, a)| *a)
        .expect("SIP on UDP");
    let ua = |u: &'static str| async move {
        let ua = SipUa::new(u, "sip.test", Some(&format!("{u}pw")), Transport::Udp, udp)
            .await
            .unwrap();
        assert_eq!(ua.register(300).await.unwrap().code(), 200);
        ua
    };
    let alice = ua("alice").await;
    let eve = ua("eve").await;

    // Only alice may watch alice's watchers.
    let (r, _) = eve.subscribe(ALICE, "presence.winfo", 600).await.unwrap();
    assert_eq!(r.code(), 403, "{}", r.reason());
    let (r, _) = alice
        .subscribe(ALICE, "message-summary", 600)
        .await
        .unwrap();
    assert_eq!(r.code(), 489);
    assert_eq!(
        r.header(cpim_sip::codec::HeaderName::AllowEvents),
        Some("presence, presence.winfo")
    );

    assert_eq!(
        subscribe(&gw, "im:romeo@x.test").await,
        StatusCode::ACCEPTED
    );
    let (r, sub) = alice.subscribe(ALICE, "presence.winfo", 600).await.unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    let sub = sub.unwrap();
    let is_winfo = |r: &cpim_sip::codec::Request| {
        r.method().as_str() == "NOTIFY"
            && r.header(cpim_sip::codec::HeaderName::Event) == Some("presence.winfo")
    };
    let first = alice
        .await_request(is_winfo, Duration::from_secs(5))
        .await
        .unwrap();
    let (state, doc) = winfo_of(&first);
    assert!(state.starts_with("active;expires="), "{state}");
    assert_eq!(doc.version, 0);
    assert_eq!(doc.state, cpim_core::watcherinfo::DocState::Full);
    let w = &doc.lists[0].watchers;
    assert_eq!(w.len(), 1, "{doc:?}");
    assert_eq!(w[0].uri, "im:romeo@x.test");
    assert_eq!(w[0].status.as_str(), "pending");
    assert_eq!(w[0].event.as_str(), "subscribe");

    let (code, _) = post(
        admin,
        "/presence/decision",
        &decision("im:romeo@x.test", "allow"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(code, 200);
    let next = alice
        .await_request(is_winfo, Duration::from_secs(5))
        .await
        .unwrap();
    let (_, doc) = winfo_of(&next);
    assert_eq!(doc.version, 1);
    assert_eq!(doc.lists[0].watchers[0].status.as_str(), "active");
    assert_eq!(doc.lists[0].watchers[0].event.as_str(), "approved");

    // A restart: the subscription comes back from the store and the state is sent again,
    // the version counting on; a new watcher gives the next version.
    gw.shutdown().await;
    let gw = Gateway::start_with(restart_config(&dir), vec![mock.clone()])
        .await
        .unwrap();
    let again = alice
        .await_request(is_winfo, Duration::from_secs(5))
        .await
        .unwrap();
    let (state, doc) = winfo_of(&again);
    assert!(state.starts_with("active;expires="), "{state}");
    assert_eq!(doc.version, 2);
    assert_eq!(doc.lists[0].watchers[0].event.as_str(), "approved");
    assert_eq!(
        subscribe(&gw, "im:carol@x.test").await,
        StatusCode::ACCEPTED
    );
    let next = alice
        .await_request(is_winfo, Duration::from_secs(5))
        .await
        .unwrap();
    let (_, doc) = winfo_of(&next);
    assert_eq!(doc.version, 3);
    assert_eq!(doc.lists[0].watchers.len(), 2, "{doc:?}");

    // Unsubscribe: the final NOTIFY.
    let udp = gw
        .sip_addrs()
        .iter()
        .find(|(t, _)| t == "udp")
        .map(|(_, a)| *a)
        .expect("SIP on UDP");
    alice.set_server(udp);
    let r = alice.resubscribe(&sub, 0).await.unwrap();
    assert_eq!(r.code(), 200);
    let last = alice
        .await_request(is_winfo, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(winfo_of(&last).0.starts_with("terminated"));
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

//! The whole gateway in-process: real SIP adapter on ephemeral ports, mock adapters for
//! the routing, queue and restart behaviour, the admin API over real HTTP.

use cpim_core::StatusCode;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::address::Address;
use cpim_core::model::{
    Message, Notify, Operation, Outcome, Subscribe, SubscriptionState, TransId,
};
use cpim_gateway::config::{Config, Route};
use cpim_gateway::gateway::Gateway;

mod common;
use common::{http_get, tmp};

/// A mock adapter: serves one domain, records what it is given, answers `code`.
struct Mock {
    name: &'static str,
    domain: &'static str,
    cpim: bool,
    code: AtomicU16,
    delay_ms: std::sync::atomic::AtomicU64,
    got: Mutex<Vec<Operation>>,
}

impl Mock {
    fn new(name: &'static str, domain: &'static str, cpim: bool) -> Arc<Mock> {
        Arc::new(Mock {
            name,
            domain,
            cpim,
            code: AtomicU16::new(200),
            delay_ms: std::sync::atomic::AtomicU64::new(0),
            got: Mutex::new(Vec::new()),
        })
    }
    fn messages(&self) -> Vec<Message> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|o| match o {
                Operation::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Adapter for Mock {
    fn name(&self) -> &str {
        self.name
    }
    fn serves(&self, a: &Address) -> bool {
        a.domain == self.domain
    }
    fn carries_cpim(&self) -> bool {
        self.cpim
    }
    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome> {
        let id = op.trans_id();
        let code = self.code.load(Ordering::SeqCst);
        if code == 200 {
            self.got.lock().unwrap().push(op);
        }
        let delay = self.delay_ms.load(Ordering::SeqCst);
        Box::pin(async move {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Outcome::failure(id, code, "mock")
        })
    }
}

/// The admin token the gateway generated in its store folder (none is configured).
fn token(store: &std::path::Path) -> String {
    std::fs::read_to_string(store.join(cpim_gateway::secrets::ADMIN_TOKEN_FILE))
        .expect("generated admin token")
        .trim()
        .to_owned()
}

fn mock_config(store: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.adapters.clear();
    c.routes = vec![
        Route {
            domain: "a.test".into(),
            adapter: "a".into(),
        },
        Route {
            domain: "b.test".into(),
            adapter: "b".into(),
        },
    ];
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.store.path = store.to_owned();
    c.queue.retry_initial_ms = 50;
    c.queue.retry_max_ms = 100;
    c
}

fn msg(id: u64, from: &str, to: &str, ct: &str, body: &[u8]) -> Operation {
    let mut m = Message::new(
        TransId(id),
        Address::parse(from).unwrap(),
        Address::parse(to).unwrap(),
        ct,
        body.to_vec(),
    );
    m.message_id = Some(format!("mid-{id}"));
    Operation::Message(m)
}

/// Submits text message `id` from alice@a.test to bob@b.test, as adapter "a".
async fn send_later(gw: &Gateway, id: u64) -> Outcome {
    gw.ingress
        .submit(
            "a",
            msg(
                id,
                "im:alice@a.test",
                "im:bob@b.test",
                "text/plain",
                b"later",
            ),
        )
        .await
}

async fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn message_gets_the_targets_outcome_and_cpim_is_reencoded() {
    let dir = tmp("route");
    let (a, b) = (
        Mock::new("a", "a.test", true),
        Mock::new("b", "b.test", false),
    );
    let gw = Gateway::start_with(mock_config(&dir), vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let cpim = b"From: <im:alice@a.test>\r\nTo: <im:bob@b.test>\r\nSubject: hi\r\n\r\nContent-Type: text/plain\r\n\r\nHello";
    let out = gw
        .ingress
        .submit(
            "a",
            msg(1, "im:alice@a.test", "im:bob@b.test", "message/cpim", cpim),
        )
        .await;
    assert_eq!(out.status.code, StatusCode::OK);
    let got = b.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body, b"Hello",
        "envelope taken off for a plain target"
    );
    assert_eq!(got[0].subject.as_deref(), Some("hi"));
    // The other way the envelope goes through byte for byte.
    let back =
        b"From: <im:bob@b.test>\r\nTo: <im:alice@a.test>\r\n\r\nContent-Type: text/plain\r\n\r\nHi";
    let out = gw
        .ingress
        .submit(
            "b",
            msg(2, "im:bob@b.test", "im:alice@a.test", "message/cpim", back),
        )
        .await;
    assert_eq!(out.status.code, StatusCode::OK);
    assert_eq!(a.messages()[0].body, back);
    // A refusal is passed back as it is.
    b.code.store(404, Ordering::SeqCst);
    let out = gw
        .ingress
        .submit(
            "a",
            msg(3, "im:alice@a.test", "im:nobody@b.test", "text/plain", b"x"),
        )
        .await;
    assert_eq!(out.status.code, StatusCode::NOT_FOUND);
    // A forged source is refused before any delivery.
    let out = gw
        .ingress
        .submit(
            "a",
            msg(4, "im:bob@b.test", "im:alice@a.test", "text/plain", b"x"),
        )
        .await;
    assert_eq!(out.status.code, StatusCode::FORBIDDEN);
    // No route.
    let out = gw
        .ingress
        .submit(
            "a",
            msg(
                5,
                "im:alice@a.test",
                "im:x@nowhere.test",
                "text/plain",
                b"x",
            ),
        )
        .await;
    assert_eq!(out.status.code, StatusCode::NOT_FOUND);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Store-and-forward: 480 from the target -> 202 to the source, the message persisted;
/// it survives a restart and is delivered once when the target is back.
#[tokio::test]
async fn offline_target_queues_survives_restart_and_delivers_once() {
    let dir = tmp("queue");
    let (a, b) = (
        Mock::new("a", "a.test", true),
        Mock::new("b", "b.test", false),
    );
    b.code.store(480, Ordering::SeqCst);
    let gw = Gateway::start_with(mock_config(&dir), vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let out = send_later(&gw, 1).await;
    assert_eq!(out.status.code, StatusCode::ACCEPTED);
    assert_eq!(gw.store.queue_depth().unwrap(), 1);
    // The same message again (a retransmission): same answer, not queued twice.
    let out = send_later(&gw, 1).await;
    assert_eq!(out.status.code, StatusCode::ACCEPTED);
    assert_eq!(gw.store.queue_depth().unwrap(), 1);
    let admin = gw.admin_addr().unwrap();
    let (code, body) = http_get(admin, "/queue", Some(&token(&dir))).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["depth"], 1, "{body}");
    gw.shutdown().await;

    // Restart with the target online.
    let b2 = Mock::new("b", "b.test", false);
    let gw = Gateway::start_with(mock_config(&dir), vec![a.clone(), b2.clone()])
        .await
        .unwrap();
    assert!(
        wait_for(|| !b2.messages().is_empty()).await,
        "queued message not delivered after restart"
    );
    assert!(wait_for(|| gw.store.queue_depth().unwrap() == 0).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = b2.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"later");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A subscription survives a restart (the store is reopened and the engine restored).
/// An isComposing indication (RFC 3994), bare or in message/cpim, to a target that is
/// unavailable gets the target's 480, not 202: it is never queued (its state lasts only
/// its refresh interval, RFC 3994 s3). A text message to the same target is queued.
#[tokio::test]
async fn notifications_to_an_unavailable_target_are_not_queued_rfc3994_rfc5438() {
    let dir = tmp("typing");
    let (a, b) = (
        Mock::new("a", "a.test", true),
        Mock::new("b", "b.test", true),
    );
    b.code.store(480, Ordering::SeqCst);
    let gw = Gateway::start_with(mock_config(&dir), vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"><state>active</state><refresh>60</refresh></isComposing>";
    let cpim = format!(
        "From: <im:alice@a.test>\r\nTo: <im:bob@b.test>\r\n\r\nContent-Type: application/im-iscomposing+xml\r\n\r\n{doc}"
    );
    let imdn = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><imdn xmlns=\"urn:ietf:params:xml:ns:imdn\"><message-id>m9</message-id><datetime>2026-12-07T12:00:00Z</datetime><delivery-notification><status><delivered/></status></delivery-notification></imdn>";
    let imdn_cpim = format!(
        "From: <im:alice@a.test>\r\nTo: <im:bob@b.test>\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: n9\r\n\r\nContent-Type: message/imdn+xml\r\nContent-Disposition: notification\r\n\r\n{imdn}"
    );
    for (id, ct, body) in [
        (1, "application/im-iscomposing+xml", doc.to_owned()),
        (2, "message/cpim", cpim),
        (4, "message/imdn+xml", imdn.to_owned()),
        (5, "message/cpim", imdn_cpim),
    ] {
        let out = gw
            .ingress
            .submit(
                "a",
                msg(id, "im:alice@a.test", "im:bob@b.test", ct, body.as_bytes()),
            )
            .await;
        assert_eq!(
            out.status.code,
            StatusCode::TEMPORARILY_UNAVAILABLE,
            "{id} {ct}"
        );
    }
    assert_eq!(gw.store.queue_depth().unwrap(), 0);
    let out = send_later(&gw, 3).await;
    assert_eq!(out.status.code, StatusCode::ACCEPTED);
    assert_eq!(gw.store.queue_depth().unwrap(), 1);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether to queue is decided per target adapter (`queue.on_codes_by_adapter`): with
/// `b = []` a message to b's unavailable user gets b's 480 at once, while a's targets
/// still queue on `queue.on_codes`.
#[tokio::test]
async fn queueing_is_decided_per_target_adapter() {
    let dir = tmp("per-adapter");
    let (a, b) = (
        Mock::new("a", "a.test", true),
        Mock::new("b", "b.test", true),
    );
    a.code.store(480, Ordering::SeqCst);
    b.code.store(480, Ordering::SeqCst);
    let mut cfg = mock_config(&dir);
    cfg.queue.on_codes_by_adapter.insert("b".into(), Vec::new());
    let gw = Gateway::start_with(cfg, vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let to_b = msg(1, "im:alice@a.test", "im:bob@b.test", "text/plain", b"x");
    let out = gw.ingress.submit("a", to_b).await;
    assert_eq!(out.status.code, StatusCode::TEMPORARILY_UNAVAILABLE);
    let to_a = msg(2, "im:bob@b.test", "im:alice@a.test", "text/plain", b"y");
    let out = gw.ingress.submit("b", to_a).await;
    assert_eq!(out.status.code, StatusCode::ACCEPTED);
    assert_eq!(gw.store.queue_depth().unwrap(), 1);
    // The operator sees the decision per adapter.
    let admin = gw.admin_addr().unwrap();
    let (code, body) = http_get(admin, "/queue", Some(&token(&dir))).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["queued_on"]["b"], serde_json::json!([]), "{body}");
    assert_eq!(
        v["queued_on"]["a"],
        serde_json::json!([408, 480, 503]),
        "{body}"
    );
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A queued message that expires (`queue.max_age_secs`) is not only logged: a sender that
/// asked for negative delivery notification gets an RFC 5438 s7.2.1.1 `failed` IMDN from
/// the destination naming its message id (an XMPP sender sees it as an error stanza); a
/// sender that did not ask hears nothing.
#[tokio::test]
async fn expired_queued_message_tells_its_sender_rfc5438() {
    let dir = tmp("expiry");
    let (a, b) = (
        Mock::new("a", "a.test", true),
        Mock::new("b", "b.test", true),
    );
    b.code.store(480, Ordering::SeqCst);
    let mut cfg = mock_config(&dir);
    cfg.queue.max_age_secs = 0;
    let gw = Gateway::start_with(cfg, vec![a.clone(), b.clone()])
        .await
        .unwrap();
    for (id, negative) in [(1, true), (2, false)] {
        let Operation::Message(mut m) =
            msg(id, "im:alice@a.test", "im:bob@b.test", "text/plain", b"x")
        else {
            unreachable!()
        };
        m.disposition.negative = negative;
        let out = gw.ingress.submit("a", Operation::Message(m)).await;
        assert_eq!(out.status.code, StatusCode::ACCEPTED);
    }
    assert!(
        wait_for(|| gw.store.queue_depth().unwrap() == 0).await,
        "expired entries leave the queue"
    );
    assert!(
        wait_for(|| !a.messages().is_empty()).await,
        "no notice came"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = a.messages();
    assert_eq!(
        got.len(),
        1,
        "one notice, for the sender that asked: {got:?}"
    );
    let n = &got[0];
    assert_eq!(n.mime_type(), "message/imdn+xml");
    assert_eq!(n.source.to_string(), "im:bob@b.test");
    assert_eq!(n.destination.to_string(), "im:alice@a.test");
    let doc = cpim_core::imdn::parse(&n.body).unwrap();
    assert_eq!(doc.message_id, "mid-1");
    let note = doc.notification.unwrap();
    assert_eq!(note.kind, cpim_core::imdn::NotificationKind::Delivery);
    assert_eq!(note.status, cpim_core::imdn::Status::Failed);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn subscriptions_restored_after_restart() {
    let dir = tmp("subs");
    let (a, b) = (
        Mock::new("a", "a.test", true),
        Mock::new("b", "b.test", false),
    );
    let gw = Gateway::start_with(mock_config(&dir), vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let s = Subscribe {
        trans_id: TransId(7),
        watcher: Address::parse("im:alice@a.test").unwrap(),
        target: Address::parse("im:bob@b.test").unwrap(),
        duration: 3600,
    };
    let out = gw.ingress.submit("a", Operation::Subscribe(s)).await;
    assert_eq!(
        out.status.code,
        StatusCode::ACCEPTED,
        "pending until the remote side approves"
    );
    assert!(b
        .got
        .lock()
        .unwrap()
        .iter()
        .any(|o| matches!(o, Operation::Subscribe(_))));
    assert_eq!(gw.presence.count(), 1);
    gw.shutdown().await;
    let gw = Gateway::start_with(mock_config(&dir), vec![a, b])
        .await
        .unwrap();
    assert_eq!(gw.presence.count(), 1);
    let (code, body) = http_get(
        gw.admin_addr().unwrap(),
        "/subscriptions",
        Some(&token(&dir)),
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        body.contains("\"state\":\"pending\"") && body.contains("bob@b.test"),
        "{body}"
    );
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn admin_token_required_except_health() {
    let dir = tmp("token");
    let mut c = mock_config(&dir);
    c.admin.token = Some("a-configured-admin-token-0123".into());
    let gw = Gateway::start_with(c, vec![Mock::new("a", "a.test", true)])
        .await
        .unwrap();
    let admin = gw.admin_addr().unwrap();
    assert_eq!(http_get(admin, "/health", None).await.0, 200);
    assert_eq!(http_get(admin, "/metrics", None).await.0, 401);
    assert_eq!(http_get(admin, "/metrics", Some("wrong")).await.0, 401);
    let (code, body) = http_get(admin, "/metrics", Some("a-configured-admin-token-0123")).await;
    assert_eq!(code, 200);
    assert!(body.contains("cpim_queue_depth"), "{body}");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The built-in defaults on ephemeral ports: SIP answers, the admin API serves.
#[tokio::test]
async fn defaults_serve_sip_and_admin() {
    let dir = tmp("defaults");
    let mut c = Config::default();
    c.sip.endpoint.udp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tls = vec!["127.0.0.1:0".parse().unwrap()];
    c.xmpp = toml::from_str(
        "[mode]\nkind = \"s2s\"\ndomains = [\"localhost\"]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.store.path = dir.clone();
    let gw = Gateway::start(c).await.unwrap();
    let admin = gw.admin_addr().unwrap();
    assert_eq!(http_get(admin, "/health", None).await, (200, "ok\n".into()));
    let udp = gw
        .sip_addrs()
        .iter()
        .find(|(t, _)| t == "udp")
        .map(|(_, a)| *a)
        .expect("SIP on UDP");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let ask = |req: String| {
        let sock = &sock;
        async move {
            sock.send_to(req.as_bytes(), udp).await.unwrap();
            let mut buf = vec![0u8; 4096];
            let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
                .await
                .expect("SIP answered")
                .unwrap();
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        }
    };
    let options = format!(
        "OPTIONS sip:localhost SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-o1\r\nMax-Forwards: 70\r\nFrom: <sip:probe@example.org>;tag=1\r\nTo: <sip:localhost>\r\nCall-ID: o1@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(ask(options).await, "SIP/2.0 200 OK");
    // A MESSAGE from a domain no adapter serves, to a local user: refused (no relay, no
    // forged sources).
    let body = "hello";
    let message = format!(
        "MESSAGE sip:nobody@localhost SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-m1\r\nMax-Forwards: 70\r\nFrom: <sip:eve@example.org>;tag=2\r\nTo: <sip:nobody@localhost>\r\nCall-ID: m1@test\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // A MESSAGE from a foreign domain from an untrusted source (RFC 5922; issue 10): 403,
    // nothing stored for later delivery.
    let answer = ask(message).await;
    let depth = gw.store.queue_depth().unwrap();
    assert!(
        answer.starts_with("SIP/2.0 403") && depth == 0,
        "{answer} (queue depth {depth})"
    );
    // A source claiming the gateway's own domain without authenticating is not taken
    // for a local user: the SIP side challenges or refuses it.
    let forged = format!(
        "MESSAGE sip:nobody@localhost SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-m2\r\nMax-Forwards: 70\r\nFrom: <sip:alice@localhost>;tag=3\r\nTo: <sip:nobody@localhost>\r\nCall-ID: m2@test\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = ask(forged).await;
    assert!(
        answer.starts_with("SIP/2.0 401")
            || answer.starts_with("SIP/2.0 407")
            || answer.starts_with("SIP/2.0 403"),
        "{answer}"
    );
    let (code, metrics) = http_get(admin, "/metrics", Some(&token(&dir))).await;
    assert_eq!(code, 200);
    // Nothing above reached the router (both MESSAGEs were refused by the SIP side).
    assert!(
        metrics.contains("# TYPE cpim_subscriptions gauge"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("kind=\"message\",outcome=\"2"),
        "{metrics}"
    );
    assert!(metrics.contains("cpim_link_up{"), "{metrics}");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// RFC 8048 across two adapters: the watcher's side gets pending, then the presentity's
/// approval and state; a refresh is absorbed (no second upstream subscribe).
#[tokio::test]
async fn presence_relayed_between_adapters() {
    let dir = tmp("presence");
    let (a, b) = (
        Mock::new("a", "a.test", true),
        Mock::new("b", "b.test", false),
    );
    let mut cfg = mock_config(&dir);
    cfg.presence.notify_interval_ms = 0;
    let gw = Gateway::start_with(cfg, vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let sub = Subscribe {
        trans_id: TransId(1),
        watcher: Address::parse("im:alice@a.test").unwrap(),
        target: Address::parse("im:bob@b.test").unwrap(),
        duration: 600,
    };
    assert_eq!(
        gw.ingress
            .submit("a", Operation::Subscribe(sub.clone()))
            .await
            .status
            .code,
        StatusCode::ACCEPTED
    );
    let notifies = |m: &Mock| -> Vec<Notify> {
        m.got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|o| match o {
                Operation::Notify(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    };
    assert!(wait_for(|| !notifies(&a).is_empty()).await);
    assert_eq!(notifies(&a)[0].state, SubscriptionState::Pending);
    let presence = cpim_core::presence::Presence {
        tuples: vec![cpim_core::presence::Tuple {
            id: "t1".into(),
            basic: Some(cpim_core::presence::Basic::Open),
            ..Default::default()
        }],
        ..Default::default()
    };
    let approve = Notify {
        trans_id: TransId(2),
        watcher: Address::parse("im:alice@a.test").unwrap(),
        target: Address::parse("im:bob@b.test").unwrap(),
        state: SubscriptionState::Active { expires: 600 },
        presence: Some(presence),
    };
    assert_eq!(
        gw.ingress
            .submit("b", Operation::Notify(approve))
            .await
            .status
            .code,
        StatusCode::OK
    );
    assert!(wait_for(|| notifies(&a).len() >= 2).await);
    let n = &notifies(&a)[1];
    assert!(matches!(n.state, SubscriptionState::Active { .. }));
    assert!(n.presence.as_ref().unwrap().is_available());
    // Refresh: answered 200 by the gateway, nothing more upstream.
    let upstream = || {
        b.got
            .lock()
            .unwrap()
            .iter()
            .filter(|o| matches!(o, Operation::Subscribe(_)))
            .count()
    };
    assert_eq!(upstream(), 1);
    assert_eq!(
        gw.ingress
            .submit("a", Operation::Subscribe(sub))
            .await
            .status
            .code,
        StatusCode::OK
    );
    assert_eq!(upstream(), 1);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Shutdown: new operations get 503 at once, the one in flight finishes.
#[tokio::test]
async fn shutdown_drains_in_flight_operations() {
    let dir = tmp("drain");
    let (a, b) = (
        Mock::new("a", "a.test", true),
        Mock::new("b", "b.test", false),
    );
    b.delay_ms.store(300, Ordering::SeqCst);
    let gw = Gateway::start_with(mock_config(&dir), vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let ingress = gw.ingress.clone();
    let slow = tokio::spawn({
        let ingress = ingress.clone();
        async move {
            ingress
                .submit(
                    "a",
                    msg(1, "im:alice@a.test", "im:bob@b.test", "text/plain", b"slow"),
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stopping = tokio::spawn(gw.shutdown());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let late = ingress
        .submit(
            "a",
            msg(2, "im:alice@a.test", "im:bob@b.test", "text/plain", b"late"),
        )
        .await;
    assert_eq!(late.status.code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        slow.await.unwrap().status.code,
        StatusCode::OK,
        "the in-flight message completes"
    );
    stopping.await.unwrap();
    assert_eq!(b.messages().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

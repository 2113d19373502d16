//! Real-peer tests of the XEP-0114 component mode against Prosody.
//!
//! They read the `CPIM_PEER_*` variables `scripts/test` exports (see scripts/README.md):
//! `CPIM_PEER_PROSODY_COMPONENT`, `_COMPONENT_DOMAIN`, `_COMPONENT_SECRET`, `_C2S`,
//! `_DOMAIN`, `CPIM_PEER_PYTHON` (a Python with slixmpp). Without them each test prints
//! why it skipped and passes (fails under `CI=true`). The restart test starts a Prosody of its own through
//! `scripts/peers/prosody.sh` (ports 26222/26269/26347) so that it can stop it.
//!
//! The tests share one component domain (Prosody accepts one connection per component),
//! so they take a lock and run one after the other.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{
    Message, Notify, Operation, Outcome, Subscribe, SubscriptionState, TransId,
};
use cpim_core::presence::{Basic, Note, Presence, Tuple};
use cpim_testkit::own_prosody::{self, OwnProsody};
use cpim_testkit::peer_env::Peer;
use cpim_xmpp::{start, Mode, XmppConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

mod common;
use common::init_tracing;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Env {
    component: String,
    component_domain: String,
    secret: String,
    c2s: String,
    domain: String,
    python: String,
}

fn env() -> Option<Env> {
    peer_env(Peer::Prosody, "xmpp.test")
}

/// The component settings of one server: `CPIM_PEER_<PEER>_COMPONENT`,
/// `_COMPONENT_DOMAIN`, `_COMPONENT_SECRET`, `_C2S`, `_DOMAIN`; `None` (the test skips,
/// or fails under `CI=true`) without `_COMPONENT`.
fn peer_env(peer: Peer, default_domain: &str) -> Option<Env> {
    let get = cpim_testkit::peer_env::var;
    let prefix = peer.name().to_ascii_uppercase();
    let var = |suffix: &str| format!("CPIM_PEER_{prefix}_{suffix}");
    let component = cpim_testkit::peer_env::need_var(peer, &var("COMPONENT"))?;
    let domain = get(&var("DOMAIN")).unwrap_or_else(|| default_domain.into());
    Some(Env {
        component,
        component_domain: get(&var("COMPONENT_DOMAIN")).unwrap_or_else(|| format!("sip.{domain}")),
        secret: get(&var("COMPONENT_SECRET")).unwrap_or_else(|| "s3cret".into()),
        c2s: get(&var("C2S")).unwrap_or_else(|| "127.0.0.1:5222".into()),
        domain,
        python: get("CPIM_PEER_PYTHON").unwrap_or_else(|| {
            workspace_root()
                .join(".venv/bin/python")
                .to_string_lossy()
                .into_owned()
        }),
    })
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An `Ingress` that records operations and answers with a fixed outcome per
/// destination user (200 unless listed in `refuse`).
struct FakeIngress {
    tx: mpsc::UnboundedSender<Operation>,
    refuse: StdMutex<Vec<(String, u16)>>,
}

impl Ingress for FakeIngress {
    fn submit(&self, adapter: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        assert_eq!(adapter, "xmpp");
        let code = op.destination().and_then(|d| d.user.clone()).and_then(|u| {
            self.refuse
                .lock()
                .unwrap()
                .iter()
                .find(|(r, _)| *r == u)
                .map(|(_, c)| *c)
        });
        let t = op.trans_id();
        let _ = self.tx.send(op);
        Box::pin(async move {
            match code {
                Some(c) => Outcome::failure(t, c, "refused by test"),
                None => Outcome::ok(t),
            }
        })
    }
}

fn fake_ingress() -> (Arc<FakeIngress>, mpsc::UnboundedReceiver<Operation>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Arc::new(FakeIngress {
            tx,
            refuse: StdMutex::new(Vec::new()),
        }),
        rx,
    )
}

fn config(server: &str, domain: &str, secret: &str) -> XmppConfig {
    XmppConfig {
        mode: Mode::Component {
            server: server.into(),
            domain: domain.into(),
            secret: secret.into(),
        },
        reconnect_initial_ms: 100,
        reconnect_max_ms: 1000,
        delivery_timeout_secs: 20,
        ..XmppConfig::default()
    }
}

struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
}

impl Client {
    async fn start(e: &Env, c2s: &str, jid: &str, password: &str) -> Client {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/xmpp_client.py");
        let mut child = Command::new(&e.python)
            .arg(script)
            .arg(c2s)
            .arg(jid)
            .arg(password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the slixmpp client");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut c = Client {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        };
        c.wait(|v| v["ev"] == "ready", 20).await;
        c
    }

    async fn cmd(&mut self, v: Value) {
        let mut s = v.to_string();
        s.push('\n');
        self.stdin.write_all(s.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Waits for an event matching `pred` (also among those already seen).
    async fn wait(&mut self, pred: impl Fn(&Value) -> bool, secs: u64) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("timeout; events seen: {:?}", self.seen))
                .expect("read client output")
                .expect("client exited");
            let v: Value = serde_json::from_str(&line).expect("client JSON");
            if pred(&v) {
                return v;
            }
            self.seen.push(v);
        }
    }

    /// Collects events for `secs` seconds.
    async fn collect(&mut self, secs: u64) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout_at(deadline, self.lines.next_line()).await
        {
            if let Ok(v) = serde_json::from_str(&line) {
                self.seen.push(v);
            }
        }
        std::mem::take(&mut self.seen)
    }

    async fn quit(mut self) {
        let _ = self.cmd(serde_json::json!({"op": "quit"})).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

async fn wait_up(adapter: &cpim_xmpp::XmppAdapter, secs: u64) {
    for _ in 0..secs * 10 {
        if adapter.links()[0].up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("link did not come up: {:?}", adapter.links());
}

async fn next_op(
    rx: &mut mpsc::UnboundedReceiver<Operation>,
    pred: impl Fn(&Operation) -> bool,
) -> Operation {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let op = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("timeout waiting for an operation")
            .expect("ingress closed");
        if pred(&op) {
            return op;
        }
    }
}

fn addr(user: &str, domain: &str) -> Address {
    Address::new(Scheme::Xmpp, Some(user), domain)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_component_messages_both_ways_and_errors_mapped() {
    if let Some(e) = env() {
        component_messages_both_ways_and_errors_mapped(e).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_component_messages_both_ways_and_errors_mapped() {
    if let Some(e) = peer_env(Peer::Ejabberd, "ejabberd.test") {
        component_messages_both_ways_and_errors_mapped(e).await;
    }
}

async fn component_messages_both_ways_and_errors_mapped(e: Env) {
    let _g = SERIAL.lock().await;
    init_tracing();
    let (ingress, mut ops) = fake_ingress();
    ingress.refuse.lock().unwrap().push(("nobody".into(), 404));
    let h = start(
        config(&e.component, &e.component_domain, &e.secret),
        ingress.clone(),
    )
    .await
    .unwrap();
    let a = h.adapter();
    wait_up(&a, 10).await;
    let alice_jid = format!("alice@{}/test", e.domain);
    let mut alice = Client::start(&e, &e.c2s, &alice_jid, "alicepw").await;

    // XMPP -> gateway: the Operation::Message reaches the ingress (RFC 7572 s4).
    let carol = format!("carol@{}", e.component_domain);
    alice
        .cmd(serde_json::json!({"op": "message", "to": carol, "body": "hello SIP side", "id": "in1"}))
        .await;
    let op = next_op(&mut ops, |o| matches!(o, Operation::Message(_))).await;
    let Operation::Message(m) = op else {
        unreachable!()
    };
    assert_eq!(m.body, b"hello SIP side");
    assert_eq!(m.source.user.as_deref(), Some("alice"));
    assert_eq!(m.source.domain, e.domain);
    assert_eq!(m.destination.user.as_deref(), Some("carol"));
    assert_eq!(m.message_id.as_deref(), Some("in1"));

    // The core refuses (404): alice gets an error stanza back (RFC 7247 s7.2).
    let nobody = format!("nobody@{}", e.component_domain);
    alice
        .cmd(serde_json::json!({"op": "message", "to": nobody, "body": "anyone?", "id": "in2"}))
        .await;
    let err = alice
        .wait(|v| v["ev"] == "message" && v["type"] == "error", 10)
        .await;
    assert_eq!(err["id"], "in2");
    assert_eq!(err["error"], "item-not-found");

    // Gateway -> XMPP, to a user who is online: success, and she has it.
    let mut msg = Message::new(
        TransId(1),
        addr("carol", &e.component_domain),
        addr("alice", &e.domain),
        "text/plain;charset=UTF-8",
        "hi alice \u{1} from SIP",
    );
    msg.kind = cpim_core::model::MessageKind::Chat;
    let out = a.deliver(Operation::Message(msg)).await;
    assert!(out.status.is_success(), "{out:?}");
    let got = alice
        .wait(
            |v| v["ev"] == "message" && v["body"] == "hi alice  from SIP",
            10,
        )
        .await;
    assert_eq!(got["from"], format!("carol@{}", e.component_domain));

    // A SIP source outside the component domain is escaped into it (XEP-0106).
    let msg = Message::new(
        TransId(2),
        Address::new(Scheme::Sip, Some("bob smith"), "sip.example"),
        addr("alice", &e.domain),
        "text/plain",
        "from a SIP domain",
    );
    let out = a.deliver(Operation::Message(msg)).await;
    assert!(out.status.is_success(), "{out:?}");
    let got = alice
        .wait(
            |v| v["ev"] == "message" && v["body"] == "from a SIP domain",
            10,
        )
        .await;
    assert_eq!(
        got["from"],
        format!("bob\\20smith\\40sip.example@{}", e.component_domain)
    );

    // To a user who does not exist: the bounce is mapped (RFC 7247 s7.1), not success.
    let msg = Message::new(
        TransId(3),
        addr("carol", &e.component_domain),
        addr("ghost-no-such-user", &e.domain),
        "text/plain",
        "into the void",
    );
    let out = a.deliver(Operation::Message(msg)).await;
    assert!(
        matches!(out.status.code.as_u16(), 404 | 503),
        "expected item-not-found/service-unavailable mapped, got {out:?}"
    );
    assert_eq!(out.trans_id, TransId(3));

    // An unsupported body type is refused before anything is sent.
    let msg = Message::new(
        TransId(4),
        addr("carol", &e.component_domain),
        addr("alice", &e.domain),
        "image/png",
        vec![0u8, 1, 2],
    );
    assert_eq!(a.deliver(Operation::Message(msg)).await.status.code, 415);

    alice.quit().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_component_subscriptions_both_ways() {
    if let Some(e) = env() {
        component_subscriptions_both_ways(e).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_component_subscriptions_both_ways() {
    if let Some(e) = peer_env(Peer::Ejabberd, "ejabberd.test") {
        component_subscriptions_both_ways(e).await;
    }
}

async fn component_subscriptions_both_ways(e: Env) {
    let _g = SERIAL.lock().await;
    init_tracing();
    let (ingress, mut ops) = fake_ingress();
    let h = start(
        config(&e.component, &e.component_domain, &e.secret),
        ingress.clone(),
    )
    .await
    .unwrap();
    let a = h.adapter();
    wait_up(&a, 10).await;
    let mut bob = Client::start(&e, &e.c2s, &format!("bob@{}/t", e.domain), "bobpw").await;
    let dan = addr("dan", &e.component_domain);
    let bob_bare = addr("bob", &e.domain);

    // XMPP watcher: bob subscribes to dan (RFC 8048 s5 -> Subscribe).
    bob.cmd(serde_json::json!({"op": "presence", "to": crate::jid(&dan), "type": "subscribe"}))
        .await;
    let op = next_op(&mut ops, |o| matches!(o, Operation::Subscribe(_))).await;
    let Operation::Subscribe(s) = op else {
        unreachable!()
    };
    assert_eq!(s.watcher, bob_bare.bare());
    assert_eq!(s.target.user.as_deref(), Some("dan"));
    assert!(s.duration > 0);
    // The gateway authorizes (Notify active, no presence) and then sends dan's presence.
    let n = Notify {
        trans_id: TransId(10),
        watcher: bob_bare.clone(),
        target: dan.clone(),
        state: SubscriptionState::Active { expires: 3600 },
        presence: None,
    };
    assert!(a.deliver(Operation::Notify(n)).await.status.is_success());
    bob.wait(|v| v["ev"] == "presence" && v["type"] == "subscribed", 10)
        .await;
    let presence = Presence {
        tuples: vec![Tuple {
            id: "sipphone".into(),
            basic: Some(Basic::Open),
            notes: vec![Note::new("on a SIP phone")],
            ..Tuple::default()
        }],
        ..Presence::default()
    };
    let n = Notify {
        trans_id: TransId(11),
        watcher: bob_bare.clone(),
        target: dan.clone(),
        state: SubscriptionState::Active { expires: 3600 },
        presence: Some(presence),
    };
    assert!(a.deliver(Operation::Notify(n)).await.status.is_success());
    let p = bob
        .wait(
            |v| v["ev"] == "presence" && v["status"] == "on a SIP phone",
            10,
        )
        .await;
    assert_eq!(p["from"], format!("dan@{}/sipphone", e.component_domain));

    // SIP watcher: dan subscribes to bob; bob's client approves; the gateway sees the
    // subscribed (Notify active) and bob's presence (Notify with presence).
    let s = Subscribe {
        trans_id: TransId(12),
        watcher: dan.clone(),
        target: bob_bare.clone(),
        duration: 3600,
    };
    assert!(a.deliver(Operation::Subscribe(s)).await.status.is_success());
    let op = next_op(&mut ops, |o| {
        matches!(o, Operation::Notify(n) if n.presence.is_none() && matches!(n.state, SubscriptionState::Active{..}))
    })
    .await;
    assert_eq!(op.source().bare(), bob_bare);
    let op = next_op(&mut ops, |o| {
        matches!(o, Operation::Notify(n) if n.presence.as_ref().is_some_and(|p| p.is_available()))
    })
    .await;
    assert_eq!(op.destination().unwrap().user.as_deref(), Some("dan"));

    // Probe (Subscribe with duration 0): Prosody answers with bob's current presence.
    let s = Subscribe {
        trans_id: TransId(13),
        watcher: dan.clone(),
        target: bob_bare.clone(),
        duration: 0,
    };
    assert!(a.deliver(Operation::Subscribe(s)).await.status.is_success());
    let op = next_op(
        &mut ops,
        |o| matches!(o, Operation::Notify(n) if n.presence.is_some()),
    )
    .await;
    assert_eq!(op.source().bare(), bob_bare);

    // Clean up bob's roster for the next run: unsubscribe both ways.
    bob.cmd(serde_json::json!({"op": "presence", "to": crate::jid(&dan), "type": "unsubscribe"}))
        .await;
    next_op(&mut ops, |o| matches!(o, Operation::Unsubscribe(_))).await;
    bob.cmd(serde_json::json!({"op": "presence", "to": crate::jid(&dan), "type": "unsubscribed"}))
        .await;
    let op = next_op(&mut ops, |o| matches!(o, Operation::Notify(n) if n.presence.is_none() && matches!(n.state, SubscriptionState::Terminated(_)))).await;
    assert_eq!(op.destination().unwrap().user.as_deref(), Some("dan"));
    bob.quit().await;
    h.shutdown().await;
}

fn jid(a: &Address) -> String {
    cpim_xmpp::jid::to_jid(a, cpim_xmpp::jid::Home::Sip).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_component_wrong_secret_is_refused() {
    if let Some(e) = env() {
        component_wrong_secret_is_refused(e).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_component_wrong_secret_is_refused() {
    if let Some(e) = peer_env(Peer::Ejabberd, "ejabberd.test") {
        component_wrong_secret_is_refused(e).await;
    }
}

async fn component_wrong_secret_is_refused(e: Env) {
    let _g = SERIAL.lock().await;
    init_tracing();
    let (ingress, _ops) = fake_ingress();
    let h = start(
        config(&e.component, &e.component_domain, "not-the-secret"),
        ingress,
    )
    .await
    .unwrap();
    let a = h.adapter();
    let mut last = None;
    for _ in 0..100 {
        let l = a.links().remove(0);
        if l.last_error.is_some() {
            last = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let l = last.expect("an error is reported");
    assert!(!l.up);
    let err = l.last_error.unwrap();
    assert!(err.contains("handshake refused"), "{err}");
    // Nothing is claimed delivered while the link cannot come up.
    let mut cfg_fast = config(&e.component, &e.component_domain, "not-the-secret");
    cfg_fast.queue_when_down = false;
    let (ingress2, _o2) = fake_ingress();
    let h2 = start(cfg_fast, ingress2).await.unwrap();
    let msg = Message::new(
        TransId(5),
        addr("carol", &e.component_domain),
        addr("alice", &e.domain),
        "text/plain",
        "x",
    );
    let out = h2.adapter().deliver(Operation::Message(msg)).await;
    assert_eq!(out.status.code, 503, "{out:?}");
    h2.shutdown().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_restart_reconnects_and_queued_messages_arrive_once() {
    let Some(e) = env() else { return };
    let _g = SERIAL.lock().await;
    init_tracing();
    let Some(dir) = own_prosody::dir("xmpp-restart") else {
        return;
    };
    let prosody = OwnProsody::start(
        &dir,
        // Ports, component and routes of its own.
        &[
            ("C2S_PORT", "26222"),
            ("S2S_PORT", "26269"),
            ("COMPONENT_PORT", "26347"),
            ("COMPONENT_DOMAIN", "sip.xmpp.test"),
            ("COMPONENT_SECRET", "s3cret"),
            ("S2S_ROUTES", ""),
        ],
    );
    let (ingress, _ops) = fake_ingress();
    let h = start(
        config("127.0.0.1:26347", "sip.xmpp.test", "s3cret"),
        ingress,
    )
    .await
    .unwrap();
    let a = h.adapter();
    wait_up(&a, 10).await;
    let mut alice = Client::start(&e, "127.0.0.1:26222", "alice@xmpp.test/r", "alicepw").await;
    let send = |n: u64| {
        let a = a.clone();
        async move {
            let m = Message::new(
                TransId(n),
                addr("carol", "sip.xmpp.test"),
                addr("alice", "xmpp.test"),
                "text/plain",
                format!("restart-test m{n}"),
            );
            a.deliver(Operation::Message(m)).await
        }
    };
    assert!(send(1).await.status.is_success());
    alice.wait(|v| v["body"] == "restart-test m1", 10).await;
    alice.quit().await;

    // Server goes away: the link notices by itself.
    assert!(prosody.run("stop"), "own prosody stop");
    for _ in 0..100 {
        if !a.links()[0].up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!a.links()[0].up, "link still up after server stop");
    // Delivered while down: queued, not refused.
    let queued = |n: usize| {
        let a = a.clone();
        async move {
            for _ in 0..50 {
                if a.links()[0].queued == n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("expected {n} queued: {:?}", a.links());
        }
    };
    let t2 = tokio::spawn(send(2));
    queued(1).await;
    let t3 = tokio::spawn(send(3));
    queued(2).await;

    // Server back: reconnect without help, flush in order, once.
    assert!(prosody.run("start"), "own prosody restart");
    wait_up(&a, 15).await;
    let o2 = t2.await.unwrap();
    let o3 = t3.await.unwrap();
    assert!(o2.status.is_success(), "{o2:?}");
    assert!(o3.status.is_success(), "{o3:?}");
    // alice logs in and gets the offline messages: each once, m1 not again.
    let mut alice = Client::start(&e, "127.0.0.1:26222", "alice@xmpp.test/r", "alicepw").await;
    let events = alice.collect(3).await;
    let bodies: Vec<&str> = events
        .iter()
        .filter(|v| v["ev"] == "message")
        .filter_map(|v| v["body"].as_str())
        .collect();
    assert_eq!(
        bodies,
        vec!["restart-test m2", "restart-test m3"],
        "events: {events:?}"
    );
    alice.quit().await;
    h.shutdown().await;
}

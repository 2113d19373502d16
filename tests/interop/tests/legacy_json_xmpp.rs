//! End to end through the real gateway: two JSON-protocol clients -- one written here in
//! Rust on the raw protocol, one the reference Python client
//! (`adapters/json/clients/python/cpim_json_client.py`) -- exchange messages and presence
//! with an XMPP user on Prosody (slixmpp; the gateway is Prosody's XEP-0114 component).
//!
//! JSON users live in the gateway's domain `json.test`; XMPP users see them as
//! `user\40json.test@<component>` (XEP-0106 s4.2 escaping of `@`). Presence: an XMPP
//! subscription to a JSON user is answered from what the JSON client published (RFC 3856
//! semantics in the gateway's presence engine, RFC 6121 s3 on the XMPP side); a JSON
//! subscription to the XMPP user ends in `notify` frames carrying the XMPP user's presence.
//!
//! Runs under `scripts/test`; skips without the peers (fails under `CI=true`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::legacy::{component_config, JsonClient, WAIT};
use cpim_interop::{repo_root, require_peers, Proc};
use cpim_testkit::{TestGateway, XmppClient, XmppEvent};
use serde_json::json;

/// The Python side: logs in, publishes, sends one message, then waits for one message.
const PY_DRIVER: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
from cpim_json_client import CpimJsonClient, body_text
port, token, to, text, note = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
c = CpimJsonClient("127.0.0.1", port, timeout=30.0)
w = c.hello(token)
print("logged in as", ",".join(w["addresses"]), flush=True)
code, reason = c.wait_outcome(c.publish(basic="open", note=note))
print("published", code, reason, flush=True)
code, reason = c.wait_outcome(c.message(to, text))
print("message outcome", code, reason, flush=True)
while True:
    f = c.handle_other(c.recv())
    if f.get("type") == "message":
        print("message from %s: %s" % (f.get("from"), body_text(f)), flush=True)
        break
c.close()
"#;

fn is_msg(body: &str) -> impl Fn(&XmppEvent) -> bool + '_ {
    move |e: &XmppEvent| matches!(e, XmppEvent::Message { body: b, kind, .. } if b == body && kind != "error")
}

async fn wait_line(mut p: Proc, needle: String) -> (Proc, String) {
    tokio::task::spawn_blocking(move || {
        let r = p.wait_for_line(&needle, WAIT);
        match r {
            Ok(line) => (p, line),
            Err(e) => panic!("python JSON client: {e}"),
        }
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_clients_exchange_messages_and_presence_with_an_xmpp_user() {
    let peers = require_peers!(Prosody);
    // RUST_LOG=debug shows the gateway's log in a failure's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let component = peers.prosody.component.clone().expect("component").domain;
    let pid = std::process::id() % 100_000;
    let cfg = component_config(
        &peers,
        &["json"],
        "[json]\ntcp_listen = \"127.0.0.1:0\"\ndomains = [\"json.test\"]\n\
         [[json.tokens]]\ntoken = \"carol-token-6f1d2c9a8b7e\"\naddresses = [\"im:carol@json.test\"]\n\
         [[json.tokens]]\ntoken = \"dave-token-3a5c7e9b1d2f\"\naddresses = [\"im:dave@json.test\"]\n",
    );
    let gw = TestGateway::start(cfg).await.expect("gateway starts");
    gw.wait_link_up("xmpp-component", WAIT)
        .await
        .expect("component link up");
    let json_addr = gw.gateway().json_tcp_addr().expect("JSON listener");
    let (code, links) = gw.admin_get("/links").await.expect("/links");
    assert_eq!(code, 200);
    assert!(links.contains(&format!("json-tcp:{json_addr}")), "{links}");

    let alice = peers.prosody.account("alice").expect("alice").clone();
    let alice_jid = alice.jid();
    let mut xmpp = XmppClient::login(
        &peers.python,
        &alice_jid,
        &alice.password,
        peers.prosody.c2s,
    )
    .await
    .expect("XMPP login");
    let carol_jid = format!("carol\\40json.test@{component}");
    let dave_jid = format!("dave\\40json.test@{component}");
    // Subscriptions left in Prosody's roster by an earlier run would change what Prosody
    // forwards (an existing subscription is not asked again): cancel both directions.
    for jid in [&carol_jid, &dave_jid] {
        for kind in ["unsubscribe", "unsubscribed"] {
            xmpp.send_presence(Some(jid), Some(kind), None, None)
                .await
                .expect("cleanup presence");
        }
    }
    xmpp.sync().await.expect("sync");

    // --- The Rust client (carol). ---
    let (mut carol, welcome) = JsonClient::login(json_addr, "carol-token-6f1d2c9a8b7e").await;
    assert_eq!(welcome["addresses"], json!(["im:carol@json.test"]));
    let note = format!("carol at her desk {pid}");
    let code = carol
        .op(json!({"type": "publish", "id": "p1", "basic": "open", "note": note}))
        .await;
    assert_eq!(code, 200, "publish");

    // JSON -> XMPP.
    let t1 = format!("json to xmpp {pid}");
    let code = carol
        .op(json!({"type": "message", "id": "m1", "to": format!("xmpp:{alice_jid}"), "body": t1}))
        .await;
    assert_eq!(code, 200, "message to the XMPP user");
    let ev = xmpp
        .await_event(is_msg(&t1), WAIT)
        .await
        .expect("XMPP gets it");
    assert_eq!(ev.from_bare(), Some(carol_jid.as_str()), "{ev:?}");

    // XMPP -> JSON.
    let t2 = format!("xmpp to json {pid}");
    xmpp.send_message(&carol_jid, &t2, &format!("x2-{pid}"))
        .await
        .expect("XMPP send");
    let f = carol
        .await_frame(|f| f["type"] == "message" && f["body"] == t2.as_str())
        .await;
    let from = f["from"].as_str().unwrap_or_default();
    assert!(from.contains(&alice_jid), "from {from:?} names {alice_jid}");
    assert_eq!(f["to"], "im:carol@json.test", "{f}");

    // Presence, XMPP watching JSON: the note carol published.
    xmpp.send_presence(Some(&carol_jid), Some("subscribe"), None, None)
        .await
        .expect("subscribe");
    xmpp.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, .. } if kind == "subscribed" && from.starts_with(&carol_jid)),
        WAIT,
    )
    .await
    .expect("the gateway approves the XMPP subscription (presence policy approve-all)");
    let ev = xmpp
        .await_event(
            |e| matches!(e, XmppEvent::Presence { kind, status, .. } if kind == "available" && status.as_deref() == Some(note.as_str())),
            WAIT,
        )
        .await
        .expect("XMPP gets carol's published presence");
    assert_eq!(ev.from_bare(), Some(carol_jid.as_str()), "{ev:?}");

    // Presence, JSON watching XMPP.
    let code = carol
        .op(json!({"type": "subscribe", "id": "s1", "to": format!("xmpp:{alice_jid}"), "expires": 600}))
        .await;
    assert!((200..300).contains(&code), "subscribe answered {code}");
    xmpp.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, .. } if kind == "subscribe" && from.starts_with(&carol_jid)),
        WAIT,
    )
    .await
    .expect("XMPP user is asked to approve carol");
    xmpp.send_presence(Some(&carol_jid), Some("subscribed"), None, None)
        .await
        .expect("approve");
    let away = format!("alice away {pid}");
    xmpp.send_presence(None, None, Some("away"), Some(&away))
        .await
        .expect("presence");
    let n = carol
        .await_frame(|f| f["type"] == "notify" && f["presence"]["note"] == away.as_str())
        .await;
    assert!(
        n["from"].as_str().unwrap_or_default().contains(&alice_jid),
        "notify from the XMPP user: {n}"
    );
    assert_eq!(n["presence"]["basic"], "open", "{n}");

    // --- The Python reference client (dave). ---
    let script = repo_root().join("adapters/json/clients/python");
    let dave_note = format!("dave on the phone {pid}");
    let t3 = format!("python to xmpp {pid}");
    let mut cmd = Command::new(&peers.python);
    cmd.arg("-u")
        .arg("-c")
        .arg(PY_DRIVER)
        .arg(&script)
        .arg(json_addr.port().to_string())
        .arg("dave-token-3a5c7e9b1d2f")
        .arg(format!("xmpp:{alice_jid}"))
        .arg(&t3)
        .arg(&dave_note);
    let py = Proc::spawn("python JSON client", cmd).expect("python starts");
    let (py, line) = wait_line(py, "published".into()).await;
    assert!(line.contains("published 200"), "{line}");
    let (py, line) = wait_line(py, "message outcome".into()).await;
    assert!(line.contains("message outcome 200"), "{line}");
    let ev = xmpp
        .await_event(is_msg(&t3), WAIT)
        .await
        .expect("XMPP gets it");
    assert_eq!(ev.from_bare(), Some(dave_jid.as_str()), "{ev:?}");

    // XMPP -> Python.
    let t4 = format!("xmpp to python {pid}");
    xmpp.send_message(&dave_jid, &t4, &format!("x4-{pid}"))
        .await
        .expect("XMPP send");
    let (py, line) = wait_line(py, "message from".into()).await;
    assert!(line.contains(&alice_jid) && line.ends_with(&t4), "{line}");
    let out = tokio::task::spawn_blocking(move || py.finish(WAIT))
        .await
        .expect("join")
        .expect("python exits");
    assert!(out.success(), "{out:?}");

    // Presence the Python client published reaches the XMPP user.
    xmpp.send_presence(Some(&dave_jid), Some("subscribe"), None, None)
        .await
        .expect("subscribe");
    let ev = xmpp
        .await_event(
            |e| matches!(e, XmppEvent::Presence { status, .. } if status.as_deref() == Some(dave_note.as_str())),
            WAIT,
        )
        .await
        .expect("XMPP gets dave's published presence");
    assert_eq!(ev.from_bare(), Some(dave_jid.as_str()), "{ev:?}");

    let (_, metrics) = gw.admin_get("/metrics").await.expect("/metrics");
    assert!(metrics.contains("adapter=\"json\""), "{metrics}");

    let _ = xmpp.quit().await;
    tokio::time::timeout(Duration::from_secs(30), gw.shutdown())
        .await
        .expect("gateway shuts down in time");
}

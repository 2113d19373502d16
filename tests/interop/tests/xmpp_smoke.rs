//! Harness smoke test, XMPP side: two real slixmpp clients exchange a message through the real
//! Prosody (and ejabberd) started by scripts/test (RFC 6120 c2s, RFC 6121 s5 message delivery).

use std::time::{SystemTime, UNIX_EPOCH};

use cpim_interop::{require_peers, Account, Peers, XmppServer};

mod common;

use common::xmpp_client::{self, Login, LIMIT};

fn token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

fn account<'a>(server: &'a XmppServer, user: &str) -> &'a Account {
    server
        .account(user)
        .unwrap_or_else(|| panic!("{} has no account {user}", server.domain))
}

/// bob waits (recv), alice sends; bob must print exactly the message alice sent.
fn message_between_clients(peers: &Peers, server: &XmppServer) {
    let alice = account(server, "alice");
    let bob = account(server, "bob");
    let bob_full = format!("{}/interop-{}", bob.jid(), std::process::id());
    let body = format!("hello bob, from alice ({}) ü", token());

    let bob_login = Login::new(bob_full.clone(), &bob.password, server.c2s);
    let (receiver, ready) = xmpp_client::receiver(peers, &bob_login);
    assert_eq!(ready, format!("READY {bob_full}"));

    let alice_login = Login::new(alice.jid(), &alice.password, server.c2s);
    let sent = xmpp_client::send(peers, &alice_login, &bob.jid(), &body, "25");
    assert!(sent.success(), "{sent}");
    assert_eq!(sent.lines_with_prefix("SENT ").count(), 1, "{sent}");

    let got = receiver.finish(LIMIT).unwrap();
    assert!(got.success(), "{got}");
    let messages = got.json_lines("MESSAGE ").unwrap();
    assert_eq!(messages.len(), 1, "{got}");
    let m = &messages[0];
    assert_eq!(m["body"], body.as_str(), "{got}");
    assert_eq!(m["type"], "chat");
    let from = m["from"].as_str().unwrap();
    assert!(
        from.starts_with(&format!("{}/", alice.jid())),
        "from {from}"
    );
}

#[test]
fn prosody_delivers_a_message_between_two_slixmpp_clients() {
    let peers = require_peers!(Prosody);
    message_between_clients(&peers, &peers.prosody);
}

#[test]
fn ejabberd_delivers_a_message_between_two_slixmpp_clients() {
    let peers = require_peers!(Ejabberd);
    message_between_clients(&peers, &peers.ejabberd);
}

/// The client script reports a refused login as a failure, so a passing smoke test means a
/// real login happened.
#[test]
fn prosody_refuses_a_wrong_password_and_the_client_script_says_so() {
    let peers = require_peers!(Prosody);
    let alice = account(&peers.prosody, "alice");
    let wrong = Login::new(alice.jid(), "not-the-password", peers.prosody.c2s);
    let out = xmpp_client::send(&peers, &wrong, "bob@xmpp.test", "x", "20");
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(out.stdout.contains("ERROR login failed"), "{out}");
}

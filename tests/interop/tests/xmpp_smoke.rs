//! Harness smoke test, XMPP side: two real slixmpp clients exchange a message through the real
//! Prosody (and ejabberd) started by scripts/test (RFC 6120 c2s, RFC 6121 s5 message delivery).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cpim_interop::{require_peers, Account, Peers, XmppServer};

const LIMIT: Duration = Duration::from_secs(30);

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
    let c2s = server.c2s.to_string();
    let bob_full = format!("{}/interop-{}", bob.jid(), std::process::id());
    let body = format!("hello bob, from alice ({}) ü", token());

    let mut receiver = peers
        .spawn_python(
            "xmpp_client.py",
            [
                "recv",
                "--jid",
                &bob_full,
                "--password",
                &bob.password,
                "--server",
                &c2s,
                "--timeout",
                "25",
            ],
        )
        .unwrap();
    let ready = receiver.wait_for_line("READY ", LIMIT).unwrap();
    assert_eq!(ready, format!("READY {bob_full}"));

    let sent = peers
        .run_python(
            "xmpp_client.py",
            [
                "send",
                "--jid",
                &alice.jid(),
                "--password",
                &alice.password,
                "--server",
                &c2s,
                "--to",
                &bob.jid(),
                "--body",
                &body,
                "--timeout",
                "25",
            ],
            LIMIT,
        )
        .unwrap();
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
    let peers = require_peers!();
    message_between_clients(&peers, &peers.prosody);
}

#[test]
fn ejabberd_delivers_a_message_between_two_slixmpp_clients() {
    let peers = require_peers!();
    message_between_clients(&peers, &peers.ejabberd);
}

/// The client script reports a refused login as a failure, so a passing smoke test means a
/// real login happened.
#[test]
fn prosody_refuses_a_wrong_password_and_the_client_script_says_so() {
    let peers = require_peers!();
    let alice = account(&peers.prosody, "alice");
    let out = peers
        .run_python(
            "xmpp_client.py",
            [
                "send",
                "--jid",
                &alice.jid(),
                "--password",
                "not-the-password",
                "--server",
                &peers.prosody.c2s.to_string(),
                "--to",
                "bob@xmpp.test",
                "--body",
                "x",
                "--timeout",
                "20",
            ],
            LIMIT,
        )
        .unwrap();
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(out.stdout.contains("ERROR login failed"), "{out}");
}

//! The hermetic s2s DNS of the Prosody peers (scripts/peers/prosody.sh S2S_ROUTES): Prosody A
//! reaches Prosody B (other.test) over s2s, and sends s2s traffic for the gateway's test domain
//! (CPIM_PEER_PROSODY_S2S_GW_DOMAIN) to CPIM_PEER_PROSODY_S2S_GW, where a test can listen.
//! RFC 6120 s3.2 (SRV _xmpp-server._tcp resolution), s4.7 (stream header `to`).

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use cpim_interop::{require_peers, Peers};

mod common;

use common::xmpp_client::{self, Login, LIMIT};

/// alice at Prosody A, where the s2s routes start.
fn alice_login(peers: &Peers) -> Login {
    let alice = peers.prosody.account("alice").unwrap();
    Login::new(alice.jid(), &alice.password, peers.prosody.c2s)
}

#[test]
fn prosody_a_delivers_to_prosody_b_over_s2s() {
    let peers = require_peers!(Prosody);
    let dave = peers.prosody_b.account("dave").unwrap();
    let dave_full = format!("{}/s2s-{}", dave.jid(), std::process::id());
    let body = format!("across s2s {}", std::process::id());

    let dave_login = Login::new(dave_full, &dave.password, peers.prosody_b.c2s);
    let (receiver, _) = xmpp_client::receiver(&peers, &dave_login);
    let sent = xmpp_client::send(&peers, &alice_login(&peers), &dave.jid(), &body, "25");
    assert!(sent.success(), "{sent}");
    let got = receiver.finish(LIMIT).unwrap();
    assert!(got.success(), "{got}");
    let messages = got.json_lines("MESSAGE ").unwrap();
    assert_eq!(messages.len(), 1, "{got}");
    assert_eq!(messages[0]["body"], body.as_str());
    assert!(messages[0]["from"]
        .as_str()
        .unwrap()
        .starts_with("alice@xmpp.test/"));
}

#[test]
fn prosody_a_opens_s2s_for_the_gateway_domain_at_the_configured_address() {
    let peers = require_peers!(Prosody);
    let route = &peers.gateway_s2s;
    let listener = TcpListener::bind(route.addr)
        .unwrap_or_else(|e| panic!("cannot listen on {} for {}: {e}", route.addr, route.domain));
    listener.set_nonblocking(true).unwrap();

    let to = format!("probe@{}", route.domain);
    let sent = xmpp_client::send(&peers, &alice_login(&peers), &to, "s2s probe", "25");
    assert!(sent.success(), "{sent}");

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut conn = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "Prosody did not connect to {} for {} within 15 s",
                    route.addr,
                    route.domain
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut header = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&header).contains("<stream:stream") || !header.ends_with(b">") {
        let n = conn.read(&mut buf).expect("no stream header within 10 s");
        assert!(n > 0, "connection closed before a stream header");
        header.extend_from_slice(&buf[..n]);
    }
    let header = String::from_utf8_lossy(&header);
    assert!(header.contains("jabber:server"), "{header}");
    assert!(
        header.contains(&format!("to='{}'", route.domain))
            || header.contains(&format!("to=\"{}\"", route.domain)),
        "{header}"
    );
}

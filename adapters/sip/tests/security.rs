//! Issue 10, SIP side, driven from outside over raw UDP sockets against the real adapter
//! (a fake `Ingress` plays the core and records what would be relayed):
//!
//! - a UDP source address and port is no identity (RFC 3261 s22: a request from a local
//!   user carries digest credentials; RFC 5626 s3: a flow is a connection, UDP has none);
//! - domain spellings (`sip.test.`, `SIP.Test`) are the local domain (RFC 1034 s3.1);
//! - a From in a domain the gateway does not serve needs a trusted peer (RFC 5922);
//! - a forged SUBSCRIBE gets one small answer and no NOTIFY (no reflection);
//! - floods from one socket create no standing state, and a trusted peer's flood stops
//!   at the configured caps with 503 and Retry-After (RFC 3261 s21.5.4).
//!
//! Counts, not timings: waits only bound how long the test looks for a packet.

mod common;

use cpim_core::StatusCode;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use cpim_sip::app::config::SipUser;

/// Everything that arrives within `wait` (bytes, packets).
fn drain(s: &UdpSocket, wait: Duration) -> (usize, usize) {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = vec![0u8; 65536];
    let (mut bytes, mut packets) = (0, 0);
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            bytes += n;
            packets += 1;
        }
    }
    (bytes, packets)
}

fn message_as(from: &str, me: SocketAddr, call_id: &str) -> String {
    request(
        "MESSAGE",
        "sip:romeo@xmpp.test",
        from,
        "sip:romeo@xmpp.test",
        me,
        call_id,
        1,
        "Content-Type: text/plain\r\n",
        "forged",
    )
}

/// Issue 10: with `trust_registered_flows` on (the default), alice registers with digest
/// from a UDP socket; another socket bound to the same address and port afterwards (as
/// anyone who can put that source address on a datagram) sends a MESSAGE as alice
/// without credentials: 401, nothing relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_source_address_is_no_identity_rfc3261_s22() {
    let (h, core, gw) = gateway(base_config()).await;
    assert!(h.adapter().standing_state().bindings == 0);
    let port = tokio::task::spawn_blocking(move || {
        let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = ua.local_addr().unwrap();
        let reg = |cseq, auth: &str| {
            request(
                "REGISTER",
                "sip:sip.test",
                "sip:alice@sip.test",
                "sip:alice@sip.test",
                me,
                "reg-1",
                cseq,
                &format!("Contact: <sip:alice@{me}>\r\nExpires: 600\r\n{auth}"),
                "",
            )
        };
        let r = exchange(&ua, gw, &reg(1, ""), "reg-1");
        assert_eq!(r.code, StatusCode::UNAUTHORIZED);
        let auth = authorization(&r, ("alice", "wonderland"), "REGISTER", "sip:sip.test");
        let r = exchange(&ua, gw, &reg(2, &auth), "reg-1");
        assert_eq!(r.code, StatusCode::OK, "{}", r.text);
        me.port()
    })
    .await
    .unwrap();
    assert_eq!(h.adapter().standing_state().bindings, 1);
    // The UA's socket is gone; the attacker sends from the same address and port.
    let code = tokio::task::spawn_blocking(move || {
        let evil = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let me = evil.local_addr().unwrap();
        exchange(
            &evil,
            gw,
            &message_as("sip:alice@sip.test", me, "forged-1"),
            "forged-1",
        )
        .code
    })
    .await
    .unwrap();
    assert_eq!(code, 401, "a UDP source address vouched for alice");
    assert_eq!(core.relayed(), 0, "the forged MESSAGE was relayed");
    h.shutdown().await;
}

/// Issue 10: `sip.test.` and `SIP.Test` are the local domain: an unauthenticated MESSAGE
/// claiming `eve@sip.test.` is challenged, not relayed as a foreign user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_spellings_cannot_skip_authentication_rfc1034_s3_1() {
    let (h, core, gw) = gateway(base_config()).await;
    let codes = tokio::task::spawn_blocking(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = s.local_addr().unwrap();
        [
            "sip:eve@sip.test.",
            "sip:eve@SIP.Test",
            "sip:alice@Sip.Test.",
            "sip:romeo@xmpp.test.",
        ]
        .iter()
        .enumerate()
        .map(|(i, from)| {
            let cid = format!("spell-{i}");
            exchange(&s, gw, &message_as(from, me, &cid), &cid).code
        })
        .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    // Local spellings are challenged; a foreign domain with a dot is still foreign.
    assert_eq!(codes, [401, 401, 401, 403]);
    assert_eq!(core.relayed(), 0);
    h.shutdown().await;
}

/// Issue 10 / RFC 5922: an unauthenticated `eve@evil.test` MESSAGE to an XMPP user gets
/// 403 with a reason, and nothing is relayed; the same from a configured trusted peer
/// (CIDR) passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_domain_needs_a_trusted_peer_rfc5922() {
    let (h, core, gw) = gateway(base_config()).await;
    let r = tokio::task::spawn_blocking(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = s.local_addr().unwrap();
        exchange(
            &s,
            gw,
            &message_as("sip:eve@evil.test", me, "eve-1"),
            "eve-1",
        )
    })
    .await
    .unwrap();
    assert_eq!(
        (r.code, r.reason.as_str()),
        (403, "Foreign Domain Not Trusted")
    );
    assert_eq!(core.relayed(), 0);
    h.shutdown().await;

    let mut c = base_config();
    c.trusted_peers = vec!["127.0.0.0/8".parse().unwrap()];
    let (h, core, gw) = gateway(c).await;
    let code = tokio::task::spawn_blocking(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = s.local_addr().unwrap();
        exchange(
            &s,
            gw,
            &message_as("sip:carol@peer.test", me, "peer-1"),
            "peer-1",
        )
        .code
    })
    .await
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(core.relayed(), 1);
    h.shutdown().await;
}

fn subscribe(from: &str, to: &str, me: SocketAddr, contact: SocketAddr, cid: &str) -> String {
    request(
        "SUBSCRIBE",
        to,
        from,
        to,
        me,
        cid,
        1,
        &format!("Event: presence\r\nExpires: 3600\r\nContact: <sip:w@{contact}>\r\n"),
        "",
    )
}

/// Issue 10 (reflection): one forged SUBSCRIBE used to bring the forged source a 200 and
/// a NOTIFY with retransmissions (6.3 KB for 329 B). Now a foreign watcher gets one 403,
/// a local one one 401, and nothing else reaches the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_subscribe_gets_one_small_answer_and_no_notify() {
    let (h, core, gw) = gateway(base_config()).await;
    let (codes, sent, received, extra) = tokio::task::spawn_blocking(move || {
        let victim = UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = victim.local_addr().unwrap();
        let mut codes = Vec::new();
        let (mut sent, mut received) = (0, 0);
        for (i, from) in ["sip:eve@evil.test", "sip:alice@sip.test"]
            .iter()
            .enumerate()
        {
            let cid = format!("refl-{i}");
            let req = subscribe(from, "sip:alice@sip.test", me, me, &cid);
            sent += req.len();
            victim.send_to(req.as_bytes(), gw).unwrap();
            let (r, bytes) = final_response(&victim, &cid, Duration::from_secs(5));
            codes.push(r.map(|r| r.code));
            received += bytes;
        }
        // Anything more (a NOTIFY, a retransmission) within Timer E's first rounds.
        let extra = drain(&victim, Duration::from_secs(2));
        (codes, sent, received, extra)
    })
    .await
    .unwrap();
    assert_eq!(codes, [Some(403), Some(401)]);
    assert_eq!(extra, (0, 0), "more packets reached the forged source");
    assert!(
        received < 2 * sent + 600,
        "{received} bytes answered {sent} bytes of forged requests"
    );
    assert_eq!(h.adapter().standing_state().subscriptions, 0);
    assert_eq!(core.relayed(), 0);
    h.shutdown().await;
}

/// Resident set size of this process (the adapter runs in it), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Sends `n` requests built by `make` from one socket, one at a time, and counts the
/// final responses by code (a 503 must carry Retry-After).
fn flood(
    gw: SocketAddr,
    n: usize,
    make: impl Fn(SocketAddr, usize) -> (String, String),
) -> std::collections::BTreeMap<u16, usize> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = s.local_addr().unwrap();
    let mut codes = std::collections::BTreeMap::new();
    for i in 0..n {
        let (req, cid) = make(me, i);
        s.send_to(req.as_bytes(), gw).unwrap();
        let (r, _) = final_response(&s, &cid, Duration::from_secs(2));
        let code = r.as_ref().map_or(0, |r| r.code);
        if code == 503 {
            let r = r.unwrap();
            assert!(r.header("Retry-After").is_some(), "503 without Retry-After");
        }
        *codes.entry(code).or_default() += 1;
    }
    codes
}

/// Issue 10 (memory growth): 5,000 SUBSCRIBEs from one socket, a new From each (local and
/// foreign users), create no subscription, relay nothing, and leave RSS within a
/// generous bound; the source's budget runs out (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_subscribe_flood_creates_no_state() {
    let (h, core, gw) = gateway(base_config()).await;
    let before = rss_kib();
    let codes = tokio::task::spawn_blocking(move || {
        flood(gw, 5_000, |me, i| {
            let cid = format!("flood-{i}");
            let from = if i % 2 == 0 {
                format!("sip:u{i}@sip.test")
            } else {
                format!("sip:u{i}@evil{i}.test")
            };
            (subscribe(&from, "sip:alice@sip.test", me, me, &cid), cid)
        })
    })
    .await
    .unwrap();
    let after = rss_kib();
    println!("codes {codes:?}; RSS {before} -> {after} KiB");
    let state = h.adapter().standing_state();
    assert_eq!((state.subscriptions, state.outgoing_subscriptions), (0, 0));
    assert_eq!(core.relayed(), 0);
    assert!(!codes.contains_key(&200), "{codes:?}");
    assert!(
        codes.get(&503).copied().unwrap_or(0) > 0,
        "no per-source limit: {codes:?}"
    );
    assert!(state.tracked_sources <= 2, "{state:?}");
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "RSS grew {before} -> {after} KiB"
    );
    h.shutdown().await;
}

/// Issue 10 (caps): even a trusted peer (exempt from the per-source rate) cannot hold
/// more subscriptions than `max_subscriptions`; past it, 503 with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_stop_at_the_configured_cap() {
    let mut c = base_config();
    c.trusted_peers = vec!["127.0.0.1".parse().unwrap()];
    c.limits.max_subscriptions = 300;
    c.limits.max_subscriptions_per_presentity = 100;
    let (h, _core, gw) = gateway(c).await;
    // NOTIFYs go to a socket that never answers nor reads.
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let before = rss_kib();
    let codes = tokio::task::spawn_blocking(move || {
        flood(gw, 1_000, |me, i| {
            let cid = format!("cap-{i}");
            let to = format!("sip:p{}@sip.test", i % 20);
            (
                subscribe(&format!("sip:w{i}@peer.test"), &to, me, sink_addr, &cid),
                cid,
            )
        })
    })
    .await
    .unwrap();
    let after = rss_kib();
    println!("codes {codes:?}; RSS {before} -> {after} KiB");
    let state = h.adapter().standing_state();
    assert_eq!(state.subscriptions, 300, "{codes:?}");
    assert_eq!(codes.get(&200), Some(&300), "{codes:?}");
    assert_eq!(codes.get(&503), Some(&700), "{codes:?}");
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "RSS grew {before} -> {after} KiB"
    );
    drop(sink);
    h.shutdown().await;
}

/// Issue 10 caps (RFC 3903 s6, RFC 3261 s10.3 and s21.5.4): initial publications per
/// presentity and registrar bindings in total stop at the configured caps with 503 and
/// Retry-After; a refresh (SIP-If-Match, a bound AOR's REGISTER) still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_and_bindings_stop_at_their_caps() {
    let mut c = base_config();
    c.users.push(SipUser {
        username: "bob".into(),
        password: Some("builder".into()),
        ..Default::default()
    });
    c.limits.max_publications_per_presentity = 2;
    c.limits.max_bindings_total = 1;
    let (h, _core, gw) = gateway(c).await;
    let (pubs, regs) = tokio::task::spawn_blocking(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = s.local_addr().unwrap();
        let alice = ("alice", "wonderland");
        let pidf = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" \
                    entity=\"pres:alice@sip.test\"><tuple id=\"t\"><status><basic>open</basic>\
                    </status></tuple></presence>";
        let publish = |n: usize, if_match: &str| {
            let cid = format!("pub-{n}");
            let r = with_digest(
                &s,
                gw,
                alice,
                ("PUBLISH", "sip:alice@sip.test", &cid),
                |cseq, auth| {
                    request(
                        "PUBLISH",
                        "sip:alice@sip.test",
                        "sip:alice@sip.test",
                        "sip:alice@sip.test",
                        me,
                        &cid,
                        cseq,
                        &format!(
                            "Event: presence\r\nExpires: 600\r\n{if_match}\
                         Content-Type: application/pidf+xml\r\n{auth}"
                        ),
                        pidf,
                    )
                },
            );
            (
                r.code,
                r.reason.clone(),
                r.header("SIP-ETag").map(str::to_owned),
                r.header("Retry-After").map(str::to_owned),
            )
        };
        let first = publish(0, "");
        let second = publish(1, "");
        let third = publish(2, "");
        let etag = second.2.clone().unwrap_or_default();
        let refresh = publish(3, &format!("SIP-If-Match: {etag}\r\n"));
        let register = |n: usize, (user, pw): (&str, &str)| {
            let cid = format!("reg-{n}");
            let aor = format!("sip:{user}@sip.test");
            with_digest(
                &s,
                gw,
                (user, pw),
                ("REGISTER", "sip:sip.test", &cid),
                |cseq, auth| {
                    request(
                        "REGISTER",
                        "sip:sip.test",
                        &aor,
                        &aor,
                        me,
                        &cid,
                        cseq,
                        &format!("Contact: <sip:{user}@{me}>\r\nExpires: 600\r\n{auth}"),
                        "",
                    )
                },
            )
        };
        let regs: Vec<(u16, String)> = [(0, alice), (1, ("bob", "builder")), (2, alice)]
            .into_iter()
            .map(|(n, who)| {
                let r = register(n, who);
                (r.code, r.reason)
            })
            .collect();
        (vec![first, second, third, refresh], regs)
    })
    .await
    .unwrap();
    let codes: Vec<u16> = pubs.iter().map(|p| p.0).collect();
    assert_eq!(codes, [200, 200, 503, 200], "{pubs:?}");
    assert_eq!(pubs[2].1, "Too Many Publications For This Presentity");
    assert_eq!(pubs[2].3.as_deref(), Some("30"), "Retry-After");
    assert_eq!(
        regs,
        [
            (200, "OK".to_owned()),
            (503, "Too Many Registrations".to_owned()),
            (200, "OK".to_owned())
        ]
    );
    let state = h.adapter().standing_state();
    assert_eq!((state.publications, state.bindings), (2, 1));
    h.shutdown().await;
}

/// RFC 3261 s26.2.2 (and RFC 5630): a `sips:` Request-URI asks for TLS on every hop;
/// one that arrived over UDP did not get it and is refused with 416 and a reason, before
/// any authentication or relaying (the same request as `sip:` is challenged as usual).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sips_request_uri_over_udp_is_refused_rfc3261_s26_2_2() {
    let (h, core, gw) = gateway(base_config()).await;
    let (sips, sip) = tokio::task::spawn_blocking(move || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = s.local_addr().unwrap();
        let msg = |ruri: &str, cid: &str| {
            request(
                "MESSAGE",
                ruri,
                "sip:eve@sip.test",
                "sip:alice@sip.test",
                me,
                cid,
                1,
                "Content-Type: text/plain\r\n",
                "in clear",
            )
        };
        let sips = exchange(&s, gw, &msg("sips:alice@sip.test", "sips-1"), "sips-1");
        let sip = exchange(&s, gw, &msg("sip:alice@sip.test", "sip-1"), "sip-1");
        (sips, sip)
    })
    .await
    .unwrap();
    assert_eq!(
        sips.code,
        StatusCode::UNSUPPORTED_URI_SCHEME,
        "{}",
        sips.text
    );
    assert!(sips.reason.contains("TLS"), "reason: {}", sips.reason);
    assert_eq!(sip.code, StatusCode::UNAUTHORIZED);
    assert_eq!(core.relayed(), 0);
    h.shutdown().await;
}

//! Gateways chained over XMPP: two `cpim-gateway-e2e` processes federating with each
//! other by RFC 6120 s2s over TLS (one test certificate for all their domains, in each
//! one's `trust_roots`), no other peer.
//!
//! - gw1 serves SIP and XMPP domain `a.test`, gw2 serves `b.test`.
//! - A message from SIP `alice@a.test` through gw1 to SIP `bob@b.test` behind gw2
//!   arrives once. gw1 is then replaced by a gateway that remembers nothing (a new
//!   store: a failover, or a restart that lost its disk), and the same message (its
//!   `imdn.Message-ID`, RFC 5438 s6.3) reaches gw2 a second time: it is not delivered
//!   again, because the id travels as the XEP-0359 origin-id and gw2's dedupe knows it.
//! - A loop: gw1 routes `loop2.test` to gw2, gw2 takes it as an alias of `loop1.test`,
//!   which it routes back to gw1, which takes it as an alias of `loop2.test`. The hop
//!   count crosses XMPP (`urn:cpim-gateway:hops:0`), so the loop ends within the
//!   budget (RFC 3261 s16.6 step 3: 70) instead of running until something times out.
//!
//! Runs without real peers: the gateways are the peers.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use cpim_gateway::config::{Config, DomainAlias, Route};
use cpim_interop::{free_tcp_port, free_udp_port, scratch_dir, Proc};
use cpim_testkit::{http_get, SipUa, Transport};

const TOKEN: &str = "chain-test-admin-token-0123456789";
const SECRET: &str = "the-dialback-secret-of-a-test-and-b-test";

struct Gw {
    _proc: Proc,
    sip: SocketAddr,
    admin: SocketAddr,
}

struct Spec<'a> {
    name: &'a str,
    domain: &'a str,
    user: &'a str,
    xmpp_domains: &'a [&'a str],
    s2s: SocketAddr,
    overrides: Vec<(&'a str, SocketAddr)>,
    routes: &'a [&'a str],
    alias: Option<(&'a str, &'a str)>,
}

/// One certificate for every domain of the chain, written once into `dir`.
fn cert(dir: &Path) -> (String, String) {
    let (crt, key) = (dir.join("chain.crt"), dir.join("chain.key"));
    if !crt.exists() {
        let names: Vec<String> = ["a.test", "b.test", "loop1.test", "loop2.test"]
            .iter()
            .map(|d| d.to_string())
            .collect();
        let (c, k) = cpim_xmpp::tls::self_signed(&names).unwrap();
        std::fs::write(&crt, c).unwrap();
        std::fs::write(&key, k).unwrap();
    }
    (crt.display().to_string(), key.display().to_string())
}

fn config(dir: &Path, s: &Spec<'_>, sip: SocketAddr, admin: SocketAddr) -> Config {
    let mut c = base_config(&[s.user]);
    c.sip.domains = vec![s.domain.into()];
    c.sip.endpoint.udp = vec![sip];
    c.sip.endpoint.tcp = Vec::new();
    c.sip.endpoint.tls = Vec::new();
    c.admin.listen = admin;
    c.admin.token = Some(TOKEN.into());
    c.store.path = dir.join(s.name);
    let domains: Vec<String> = s.xmpp_domains.iter().map(|d| format!("\"{d}\"")).collect();
    let (crt, key) = cert(dir);
    let overrides: String = s
        .overrides
        .iter()
        .map(|(d, a)| format!("\"{d}\" = \"{a}\"\n"))
        .collect();
    c.xmpp = toml::from_str(&format!(
        "delivery_timeout_secs = 20\nreconnect_initial_ms = 100\nreconnect_max_ms = 1000\n\
         [mode]\nkind = \"s2s\"\ndomains = [{}]\nlisten = \"{}\"\n\
         dialback_secret = \"{SECRET}\"\ncert = \"{crt}\"\nkey = \"{key}\"\ntrust_roots = [\"{crt}\"]\n\
         [mode.srv_overrides]\n{overrides}",
        domains.join(", "),
        s.s2s
    ))
    .expect("s2s config");
    c.routes = s
        .routes
        .iter()
        .map(|d| Route {
            domain: (*d).into(),
            adapter: "xmpp".into(),
        })
        .collect();
    c.domain_aliases = s
        .alias
        .iter()
        .map(|(alias, domain)| DomainAlias {
            alias: (*alias).into(),
            domain: (*domain).into(),
            adapter: "xmpp".into(),
        })
        .collect();
    c
}

async fn start(dir: &Path, s: Spec<'_>) -> Gw {
    let sip: SocketAddr = ([127, 0, 0, 1], free_udp_port().unwrap()).into();
    let admin: SocketAddr = ([127, 0, 0, 1], free_tcp_port().unwrap()).into();
    let file = dir.join(format!("{}.toml", s.name));
    std::fs::write(
        &file,
        toml::to_string(&config(dir, &s, sip, admin)).unwrap(),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cpim-gateway-e2e"));
    cmd.arg("run").arg("--config").arg(&file);
    cmd.env("RUST_LOG", "warn");
    let proc = Proc::spawn(s.name, cmd).expect("spawn the gateway");
    cpim_testkit::eventually("the gateway's admin API", WAIT, || async {
        let (code, _) = http_get(admin, "/ready", Some(TOKEN)).await.ok()?;
        (code == 200).then_some(())
    })
    .await
    .unwrap();
    Gw {
        _proc: proc,
        sip,
        admin,
    }
}

/// Messages the gateway's XMPP adapter took in, whatever their outcome.
async fn xmpp_messages_in(admin: SocketAddr) -> f64 {
    let (_, metrics) = http_get(admin, "/metrics", Some(TOKEN)).await.unwrap();
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("cpim_operations_total{")
                && l.contains("direction=\"in\"")
                && l.contains("adapter=\"xmpp\"")
                && l.contains("kind=\"message\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn addr() -> SocketAddr {
    ([127, 0, 0, 1], free_tcp_port().unwrap()).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_gateways_deliver_once_and_cut_loops() {
    init_tracing();
    let dir = scratch_dir("gateway-chain").unwrap();
    let (s1, s2) = (addr(), addr());
    let gw1_spec = |name| Spec {
        name,
        domain: "a.test",
        user: "alice",
        xmpp_domains: &["a.test", "loop1.test"],
        s2s: s1,
        overrides: vec![("b.test", s2), ("loop2.test", s2)],
        routes: &["b.test", "loop2.test"],
        alias: Some(("loop1.test", "loop2.test")),
    };
    let gw1 = start(&dir, gw1_spec("gw1")).await;
    let gw2 = start(
        &dir,
        Spec {
            name: "gw2",
            domain: "b.test",
            user: "bob",
            xmpp_domains: &["b.test", "loop2.test"],
            s2s: s2,
            // gw1 is a.test's authoritative server (dialback verification).
            overrides: vec![("a.test", s1), ("loop1.test", s1)],
            routes: &["a.test", "loop1.test"],
            alias: Some(("loop2.test", "loop1.test")),
        },
    )
    .await;

    let alice = SipUa::new("alice", "a.test", Some("alicepw"), Transport::Udp, gw1.sip)
        .await
        .unwrap();
    let bob = SipUa::new("bob", "b.test", Some("bobpw"), Transport::Udp, gw2.sip)
        .await
        .unwrap();
    assert_eq!(bob.register(300).await.unwrap().code(), 200);

    // The loop: it ends, and within the hop budget.
    let before = xmpp_messages_in(gw1.admin).await + xmpp_messages_in(gw2.admin).await;
    let r = alice
        .message("sip:x@loop2.test", "text/plain", b"round and round")
        .await
        .unwrap();
    println!("the loop was answered {} {}", r.code(), r.reason());
    let mut last = -1.0;
    let mut total = 0.0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        total = xmpp_messages_in(gw1.admin).await + xmpp_messages_in(gw2.admin).await - before;
        if total == last && total > 0.0 {
            break;
        }
        last = total;
    }
    println!("the loop ended after {total} XMPP hops");
    assert!(
        total > 10.0,
        "the loop was cut by something else ({total} hops)"
    );
    // At most 70 hops, plus the one failure notice (RFC 5438) the last hop's error
    // becomes: it comes after the hop before was answered, for a message from an XMPP
    // sender (who always asks for negative notices), and enters as a message too.
    assert!(
        total <= 71.0,
        "{total} XMPP messages: the loop ran past the hop budget"
    );
    let (_, m1) = http_get(gw1.admin, "/metrics", Some(TOKEN)).await.unwrap();
    let (_, m2) = http_get(gw2.admin, "/metrics", Some(TOKEN)).await.unwrap();
    let refused = |m: &str| {
        m.lines().any(|l| {
            l.starts_with("cpim_operations_total{")
                && l.contains("adapter=\"xmpp\"")
                && l.contains("outcome=\"4xx\"")
        })
    };
    assert!(
        refused(&m1) || refused(&m2),
        "no gateway refused the last hop"
    );

    // One message, sent twice to gw2: through gw1, then through a gw1 that lost its
    // memory, with the same imdn.Message-ID.
    let cpim = "From: <sip:alice@a.test>\r\nTo: <sip:bob@b.test>\r\nDateTime: 2026-12-07T12:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: chain-1\r\n\r\nContent-Type: text/plain\r\n\r\nonce only";
    let r = alice
        .message("sip:bob@b.test", "message/cpim", cpim.as_bytes())
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    bob.await_request(
        |r| {
            r.method().as_str() == "MESSAGE"
                && String::from_utf8_lossy(r.body()).contains("once only")
        },
        WAIT,
    )
    .await
    .unwrap();
    drop(gw1);
    let gw1 = start(&dir, gw1_spec("gw1-new-store")).await;
    alice.set_server(gw1.sip);
    let r = alice
        .message("sip:bob@b.test", "message/cpim", cpim.as_bytes())
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    // A message behind it on the same path: by the time it arrives, a second copy
    // would have arrived too (one stream, in order, RFC 6120 s10.1).
    let r = alice
        .message("sip:bob@b.test", "text/plain", b"after the copy")
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    bob.await_request(
        |r| r.method().as_str() == "MESSAGE" && r.body().as_ref() == b"after the copy",
        WAIT,
    )
    .await
    .unwrap();
    let copies = bob
        .take_received()
        .into_iter()
        .filter(|r| String::from_utf8_lossy(r.body()).contains("once only"))
        .count();
    assert_eq!(copies, 0, "the second copy was delivered");
    drop((gw1, gw2));
    let _ = std::fs::remove_dir_all(&dir);
}

//! Issue 10 (unauthenticated memory growth, reflection), against the gateway binary
//! (`cpim-gateway-e2e`, the gateway's own `main`) on a SIP-only config, from one raw UDP
//! socket. No peers needed. The gateway process's RSS is read from /proc before and
//! after; the subscriptions are counted through the admin API. Counts and bounds, no
//! timings.
//!
//! - 5,000 SUBSCRIBEs, a new From each (users of the gateway's domain and of made-up
//!   domains), without credentials: no subscription, nothing but one small answer each
//!   (401/403, or 503 once the source's budget is spent).
//! - A trusted peer (`trusted_peers`, exempt from the per-source rates) sending 3,000
//!   SUBSCRIBEs with `presence.authorization = "approve-all"`: the SIP adapter holds at
//!   most `sip.limits.max_subscriptions`; past it 503 with Retry-After.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cpim_gateway::config::Config;
use cpim_interop::{free_tcp_port, free_udp_port, scratch_dir, Proc};
use cpim_sip::app::config::SipUser;
use cpim_testkit::http_get;

const TOKEN: &str = "security-flood-admin-token-0123456789";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .expect("VmRSS of the gateway")
}

struct Gw {
    proc: Proc,
    sip: SocketAddr,
    admin: SocketAddr,
}

async fn start(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Gw {
    let sip: SocketAddr = ([127, 0, 0, 1], free_udp_port().unwrap()).into();
    let admin: SocketAddr = ([127, 0, 0, 1], free_tcp_port().unwrap()).into();
    let mut c = Config {
        adapters: vec!["sip".into()],
        ..Config::default()
    };
    c.sip.domains = vec!["sip.test".into()];
    c.sip.users = vec![SipUser {
        username: "alice".into(),
        password: Some("alice-secret-pw".into()),
        ..Default::default()
    }];
    c.sip.endpoint.udp = vec![sip];
    c.sip.endpoint.tcp = vec![([127, 0, 0, 1], free_tcp_port().unwrap()).into()];
    c.sip.endpoint.tls = Vec::new();
    c.sip.endpoint.dns = false;
    c.admin.listen = admin;
    c.admin.token = Some(TOKEN.into());
    c.store.path = dir.join("store");
    tweak(&mut c);
    let config = dir.join("gateway.toml");
    std::fs::write(&config, toml::to_string(&c).unwrap()).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cpim-gateway-e2e"));
    cmd.arg("run").arg("--config").arg(&config);
    cmd.env("RUST_LOG", "warn");
    let proc = Proc::spawn("cpim-gateway (flood)", cmd).expect("spawn the gateway");
    cpim_testkit::eventually(
        "the gateway's admin API",
        Duration::from_secs(20),
        || async {
            let (code, _) = http_get(admin, "/health", None).await.ok()?;
            (code == 200).then_some(())
        },
    )
    .await
    .unwrap();
    Gw { proc, sip, admin }
}

async fn subscription_count(admin: SocketAddr) -> usize {
    let (code, body) = http_get(admin, "/subscriptions", Some(TOKEN))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .map_or(0, Vec::len)
}

fn subscribe(from: &str, to: &str, me: SocketAddr, cid: &str) -> String {
    format!(
        "SUBSCRIBE {to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{cid};rport\r\n\
         Max-Forwards: 70\r\nFrom: <{from}>;tag=f-{cid}\r\nTo: <{to}>\r\nCall-ID: {cid}\r\n\
         CSeq: 1 SUBSCRIBE\r\nEvent: presence\r\nExpires: 3600\r\n\
         Contact: <sip:w@{me}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `n` SUBSCRIBEs from `bind`, one at a time, and returns the final response codes
/// seen (0: none within the wait), the bytes received, and whether every 503 carried
/// Retry-After.
fn flood(
    gw: SocketAddr,
    bind: &str,
    n: usize,
    make: impl Fn(usize) -> (String, String),
) -> (BTreeMap<u16, usize>, usize, bool) {
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let me = s.local_addr().unwrap();
    let mut codes = BTreeMap::new();
    let (mut bytes, mut retry_after) = (0, true);
    let mut buf = vec![0u8; 65536];
    for i in 0..n {
        let (from, to) = make(i);
        let cid = format!("flood-{i}");
        s.send_to(subscribe(&from, &to, me, &cid).as_bytes(), gw)
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut code = 0;
        while code == 0 && std::time::Instant::now() < deadline {
            let Ok((len, _)) = s.recv_from(&mut buf) else {
                continue;
            };
            bytes += len;
            let text = String::from_utf8_lossy(&buf[..len]);
            if text.starts_with("SIP/2.0 ") && text.contains(&format!("Call-ID: {cid}\r\n")) {
                code = text[8..11].parse().unwrap_or(0);
                if code == 503 && !text.contains("\r\nRetry-After: ") {
                    retry_after = false;
                }
            }
        }
        *codes.entry(code).or_default() += 1;
    }
    (codes, bytes, retry_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_subscribe_flood_creates_no_subscription() {
    let dir = scratch_dir("security-flood").unwrap();
    let gw = start(&dir, |_| {}).await;
    let pid = gw.proc.id();
    let before = rss_kib(pid);
    let sip = gw.sip;
    let (codes, bytes, retry_after) = tokio::task::spawn_blocking(move || {
        flood(sip, "127.0.0.1:0", 5_000, |i| {
            let from = if i % 2 == 0 {
                format!("sip:u{i}@sip.test")
            } else {
                format!("sip:u{i}@evil{i}.test")
            };
            (from, "sip:alice@sip.test".into())
        })
    })
    .await
    .unwrap();
    let after = rss_kib(pid);
    let subs = subscription_count(gw.admin).await;
    println!("codes {codes:?}, {bytes} bytes back; RSS {before} -> {after} KiB");
    assert_eq!(subs, 0, "unauthenticated SUBSCRIBEs created subscriptions");
    assert!(
        !codes.contains_key(&200) && !codes.contains_key(&202),
        "{codes:?}"
    );
    assert!(
        codes.get(&503).copied().unwrap_or(0) > 0,
        "no per-source limit: {codes:?}"
    );
    assert!(retry_after, "a 503 without Retry-After");
    // One small answer per request, no NOTIFY: well under 1 KB each.
    assert!(
        bytes < 5_000 * 1024,
        "{bytes} bytes answered 5,000 requests"
    );
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "RSS {before} -> {after} KiB"
    );
    let _ = gw.proc.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_peer_flood_stops_at_the_subscription_cap() {
    const CAP: usize = 500;
    let dir = scratch_dir("security-cap").unwrap();
    let gw = start(&dir, |c| {
        c.sip.trusted_peers = vec!["127.0.0.3".parse().unwrap()];
        c.sip.limits.max_subscriptions = CAP;
        c.presence.authorization = "approve-all".into();
    })
    .await;
    let pid = gw.proc.id();
    let before = rss_kib(pid);
    let sip = gw.sip;
    let (codes, _, retry_after) = tokio::task::spawn_blocking(move || {
        flood(sip, "127.0.0.3:0", 3_000, |i| {
            (
                format!("sip:w{i}@peer.test"),
                format!("sip:p{}@sip.test", i % 50),
            )
        })
    })
    .await
    .unwrap();
    let after = rss_kib(pid);
    let subs = subscription_count(gw.admin).await;
    println!("codes {codes:?}; {subs} subscriptions; RSS {before} -> {after} KiB");
    assert_eq!(codes.get(&200).copied().unwrap_or(0), CAP, "{codes:?}");
    assert_eq!(
        codes.get(&503).copied().unwrap_or(0),
        3_000 - CAP,
        "{codes:?}"
    );
    assert!(retry_after, "a 503 without Retry-After");
    assert!(subs <= CAP, "{subs} subscriptions past the cap of {CAP}");
    // About 22 KB each at most (see [sip.limits] in deploy/config/defaults.toml).
    assert!(
        after.saturating_sub(before) < (CAP as u64 * 22 + 48 * 1024),
        "RSS {before} -> {after} KiB"
    );
    let _ = gw.proc.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

//! The gateway under test: its configuration, its start (waiting for the component
//! connection and the admin API) and reads of its admin API.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cpim_bench::probe::Probe;

use crate::sut::Sut;
use crate::{log, RunArgs};

pub(crate) const SECRET: &str = "bench-component-secret-0123456789";
/// The admin API token of the gateway under test (it always requires one).
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
pub(crate) const COMPONENT: &str = "sip.xmpp.test";

pub(crate) fn gateway_config(
    work: &Path,
    sip_port: u16,
    admin_port: u16,
    component: SocketAddr,
) -> String {
    format!(
        r#"# Written by cpim-bench for one benchmark run.
adapters = ["sip", "xmpp"]

[[routes]]
domain = "xmpp.test"
adapter = "xmpp"

[[domain_aliases]]
alias = "{COMPONENT}"
domain = "sip.test"
adapter = "xmpp"

[limits]
rate_per_source = 1000000000.0
burst_per_source = 1000000000.0

[queue]
enabled = false

[presence]
notify_interval_ms = 0
# The generator's watchers are strangers to the presentities; P3 measures fan-out, not
# authorization, nor the caps (raised far above any trial).
authorization = "approve-all"
max_subscriptions = 1000000
max_watchers_per_presentity = 1000000

[store]
path = "{store}"

[admin]
listen = "127.0.0.1:{admin_port}"
token = "{ADMIN_TOKEN}"

[sip]
domains = ["sip.test"]
trusted_peers = ["127.0.0.1"]
# RFC 3856 s6.4 rate limit per SIP dialog off, as presence.notify_interval_ms: P3 counts
# every notification; with the default 5 s a NOTIFY right after the subscription's
# first one was held past the trial
notify_min_interval = 0

[sip.limits]
max_subscriptions = 1000000
max_subscriptions_per_presentity = 1000000
max_subscriptions_per_source = 1000000

[sip.endpoint]
udp = ["127.0.0.1:{sip_port}"]
tcp = ["127.0.0.1:{sip_port}"]
dns = false
# Server transactions are held for timer J (32 s over UDP): the default cap (32768,
# about 1,000 accepted requests/s) would refuse a rate search's trials with 503, and a
# failed trial's transactions the next ones; raised like the other caps, with the
# requests handled at once
max_server_transactions = 4000000
tu_queue = 1000000

[xmpp]
grace_ms = 0
reconnect_initial_ms = 100
reconnect_max_ms = 1000
queue_capacity = 100000

[xmpp.mode]
kind = "component"
server = "{component}"
domain = "{COMPONENT}"
secret = "{SECRET}"
"#,
        store = work.join("store").display(),
    )
}

/// The running gateway and what the workloads need to reach it.
pub(crate) struct Gw {
    pub(crate) sut: Sut,
    pub(crate) sip: SocketAddr,
    pub(crate) admin: SocketAddr,
}

pub(crate) fn start_gateway(
    a: &RunArgs,
    probe: &Probe,
    work: &Path,
    config: &Path,
    admin: SocketAddr,
    sip: SocketAddr,
) -> Result<Gw, String> {
    let bin = a.gateway_bin.as_ref().ok_or("no --gateway-bin")?;
    let mut cmd = match &a.gateway_wrapper {
        Some(w) => {
            let mut parts = w.split_ascii_whitespace();
            let mut c = Command::new(parts.next().ok_or("empty --gateway-wrapper")?);
            c.args(parts).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("run").arg("--config").arg(config);
    cmd.env(
        "RUST_LOG",
        std::env::var("CPIM_BENCH_GATEWAY_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let sessions = probe.component_sessions.load(Ordering::Relaxed);
    let mut sut =
        Sut::spawn("gateway", cmd, work).map_err(|e| format!("cannot start the gateway: {e}"))?;
    let t = Instant::now();
    while probe.component_sessions.load(Ordering::Relaxed) == sessions {
        if !sut.alive() {
            return Err(format!(
                "the gateway exited at start:\n{}",
                sut.log_tail(work)
            ));
        }
        if t.elapsed() > Duration::from_secs_f64(a.start_timeout) {
            return Err(format!(
                "the gateway did not connect to the component server within {} s:\n{}",
                a.start_timeout,
                sut.log_tail(work)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // the SIP side answers once it is up: wait for the admin API too
    while http_get(admin, "/health").is_err()
        && t.elapsed() < Duration::from_secs_f64(a.start_timeout)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    log(format!(
        "gateway pid {} up in {:.2} s (component connected)",
        sut.pid,
        t.elapsed().as_secs_f64()
    ));
    Ok(Gw { sut, sip, admin })
}

/// A plain HTTP/1.0 GET on loopback; the body.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    if !buf.starts_with("HTTP/1.") || !buf[9..].starts_with('2') {
        return Err(std::io::Error::other(format!(
            "GET {path}: {}",
            buf.lines().next().unwrap_or("")
        )));
    }
    Ok(buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default())
}

/// A gauge or counter from the Prometheus text of /metrics.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

//! Shared by the `sip_gateway_*` tests: the real gateway (`cpim_gateway::Gateway`) with its
//! SIP adapter on ephemeral 127.0.0.1 ports, local domain `sip.test` with digest users, and
//! a small SIPp runner that lets the test choose SIPp's local port (needed when a UA first
//! registers and then answers on the same port).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cpim_gateway::config::Config;
use cpim_gateway::gateway::Gateway;
use cpim_sip::app::config::SipUser;
use cpim_sip::app::digest::Algorithm;

/// The gateway's SIP domain in these tests.
pub const DOMAIN: &str = "sip.test";

/// The source address of the SIPp scenarios whose From is in a foreign domain
/// ([`FOREIGN_SCENARIOS`]); trusted in [`config`].
pub const FOREIGN_PEER: &str = "127.0.0.2";

/// Scenarios that send as users of `other.test`.
pub const FOREIGN_SCENARIOS: &[&str] = &["gw_message_uac.xml", "gw_subscribe.xml"];

/// Digest users of the gateway: (user, password).
pub const USERS: &[(&str, &str)] = &[("alice", "alicepw"), ("bob", "bobpw"), ("carol", "carolpw")];

/// The admin API token of these gateways (the admin API always requires one).
pub const ADMIN_TOKEN: &str = "sip-interop-admin-token-0123456789";

/// A gateway configuration: SIP only, UDP+TCP on ephemeral ports, MD5 digest (SIPp and
/// baresip 1.0 know MD5 only), no throttling of notifications, the store in `store`.
pub fn config(store: &Path) -> Config {
    let mut c = Config {
        adapters: vec!["sip".into()],
        ..Config::default()
    };
    c.sip.domains = vec![DOMAIN.into()];
    c.sip.endpoint.udp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tls = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.dns = false;
    c.sip.users = USERS
        .iter()
        .map(|(u, p)| SipUser {
            username: (*u).into(),
            password: Some((*p).into()),
            ..Default::default()
        })
        .collect();
    c.sip.auth_algorithms = vec![Algorithm::Md5];
    // The scenarios that speak for a foreign domain (`other.test`) run from this address
    // (RFC 5922: only a trusted peer may); the others from 127.0.0.1 and authenticate.
    c.sip.trusted_peers = vec![FOREIGN_PEER.parse().unwrap()];
    c.sip.notify_min_interval = 0;
    c.presence.notify_interval_ms = 0;
    // carol@other.test watches alice@sip.test in gw_subscribe.xml: the default policy
    // (approve-mutual) would refuse that stranger, as it should.
    c.presence.authorization = "approve-all".into();
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.token = Some(ADMIN_TOKEN.into());
    c.store.path = store.to_owned();
    c
}

/// Logs of the gateway on the test's output when `RUST_LOG` is set (e.g.
/// `RUST_LOG=cpim_sip=debug`).
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Starts the gateway; returns it with its SIP UDP and TCP addresses.
pub async fn start(c: Config) -> (Gateway, SocketAddr, SocketAddr) {
    init_tracing();
    let gw = Gateway::start(c).await.expect("start the gateway");
    let find = |t: &str| {
        gw.sip_addrs()
            .iter()
            .find(|(tr, _)| tr.eq_ignore_ascii_case(t))
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("gateway has no SIP {t} listener: {:?}", gw.sip_addrs()))
    };
    let (udp, tcp) = (find("udp"), find("tcp"));
    (gw, udp, tcp)
}

/// A scenario file of `tests/interop/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    cpim_interop::sipp_dir().join(name)
}

/// SIPp transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum T {
    Udp,
    Tcp,
}

impl T {
    pub fn flag(self) -> &'static str {
        match self {
            T::Udp => "u1",
            T::Tcp => "t1",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            T::Udp => "udp",
            T::Tcp => "tcp",
        }
    }
}

/// A free port for SIPp (UDP and TCP both free).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let p = cpim_interop::free_udp_port().expect("free port");
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// One SIPp command line, run in `dir` with `-trace_logs` (log file returned) and a bound.
/// `target` is None for a UAS that only listens.
pub struct SippCmd {
    pub cmd: Command,
    pub log: PathBuf,
    pub err: PathBuf,
    pub what: String,
}

pub fn sipp(
    peers: &cpim_interop::Peers,
    scenario_file: &str,
    t: T,
    port: u16,
    target: Option<SocketAddr>,
    args: &[&str],
    dir: &Path,
) -> SippCmd {
    let tag = format!("{scenario_file}.{}.{port}", t.name());
    let log = dir.join(format!("{tag}.log"));
    let err = dir.join(format!("{tag}.err"));
    let _ = std::fs::remove_file(&log);
    let local_ip = if FOREIGN_SCENARIOS.contains(&scenario_file) {
        FOREIGN_PEER
    } else {
        "127.0.0.1"
    };
    let mut cmd = Command::new(&peers.sipp);
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .arg("-sf")
        .arg(scenario(scenario_file))
        .args(["-i", local_ip, "-p", &port.to_string(), "-t", t.flag()])
        .args(["-nostdin", "-timeout", "30s", "-timeout_error"])
        .arg("-trace_logs")
        .arg("-log_file")
        .arg(&log)
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&err)
        .args(args);
    if let Some(target) = target {
        cmd.arg(target.to_string());
    }
    SippCmd {
        cmd,
        log,
        err,
        what: format!("sipp {tag} -> {target:?}"),
    }
}

/// Result of a finished SIPp run.
pub struct SippResult {
    pub ok: bool,
    pub logs: String,
    pub report: String,
}

impl SippCmd {
    /// Runs to the end (blocking; call from `spawn_blocking` in async tests).
    pub fn run(mut self) -> SippResult {
        let out = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.what));
        self.result(out)
    }

    /// Starts in the background.
    pub fn spawn(mut self) -> (std::process::Child, SippCmd) {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.what));
        (child, self)
    }

    pub fn result(&self, out: std::process::Output) -> SippResult {
        let logs = std::fs::read_to_string(&self.log).unwrap_or_default();
        let errs = std::fs::read_to_string(&self.err).unwrap_or_default();
        let report = format!(
            "{}: {:?}\nstdout: {}\nstderr: {}\nerrors: {}\nlogs: {}",
            self.what,
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 3000),
            tail(&String::from_utf8_lossy(&out.stderr), 2000),
            tail(&errs, 3000),
            tail(&logs, 3000)
        );
        SippResult {
            ok: out.status.success(),
            logs,
            report,
        }
    }
}

pub fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// A fresh scratch folder under the peers' folder.
pub fn scratch(tag: &str) -> PathBuf {
    cpim_interop::scratch_dir(tag).expect("scratch folder")
}

/// Validates a PIDF document against RFC 3863's schema (shared corpus) with xmllint.
/// Returns `Err(reason)` when the document is invalid; `Ok(false)` when the schema is not
/// available (the caller prints a skip message).
pub fn validate_pidf(
    peers: &cpim_interop::Peers,
    pidf: &str,
    dir: &Path,
    name: &str,
) -> Result<bool, String> {
    let Some(shared) = cpim_interop::shared_dir() else {
        return Ok(false);
    };
    let schema = shared.join("corpora/simple-xml-schemas/sipsimple/pidf.xsd");
    let Ok(schema) = std::fs::canonicalize(&schema) else {
        return Ok(false);
    };
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, pidf).unwrap();
    let out = Command::new(&peers.xmllint)
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("run xmllint");
    if out.status.success() {
        Ok(true)
    } else {
        Err(format!(
            "{}\n{pidf}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

//! Shared by the `sip_gateway_*` tests: the real gateway (`cpim_gateway::Gateway`) with its
//! SIP adapter on ephemeral 127.0.0.1 ports, local domain `sip.test` with digest users, and
//! the testkit's SIPp runner with the test choosing SIPp's local port (needed when a UA first
//! registers and then answers on the same port).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use cpim_gateway::config::Config;
use cpim_gateway::gateway::Gateway;
use cpim_sip::app::config::SipUser;
use cpim_sip::app::digest::Algorithm;
use cpim_testkit::sipp::{Sipp, SippCommand, SippOutput};

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

pub use super::init_tracing;

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

/// SIPp transport (`T::Udp`, `T::Tcp`).
pub use cpim_testkit::sipp::SippTransport as T;

/// A free port for SIPp (UDP and TCP both free).
pub fn free_port() -> u16 {
    cpim_testkit::sipp::free_port()
}

/// One SIPp command line (the testkit's runner), run in `dir` with `-trace_logs` (the log
/// file is read into the result) and a bound.
pub struct SippCmd(SippCommand);

/// SIPp playing `scenario_file` of `tests/interop/sipp/` from `port` (from
/// [`FOREIGN_PEER`] for [`FOREIGN_SCENARIOS`]); `target` is None for a UAS that only
/// listens.
pub fn sipp(
    peers: &cpim_interop::Peers,
    scenario_file: &str,
    t: T,
    port: u16,
    target: Option<SocketAddr>,
    args: &[&str],
    dir: &Path,
) -> SippCmd {
    let local_ip = if FOREIGN_SCENARIOS.contains(&scenario_file) {
        FOREIGN_PEER
    } else {
        "127.0.0.1"
    };
    let mut run = Sipp::new(&peers.sipp, scenario(scenario_file))
        .transport(t)
        .local_ip(local_ip)
        .local_port(port)
        .trace(dir)
        .args(args);
    if let Some(target) = target {
        run = run.target(target);
    }
    SippCmd(run.command())
}

/// Result of a finished SIPp run.
pub struct SippResult {
    pub ok: bool,
    pub logs: String,
    pub report: String,
}

impl From<SippOutput> for SippResult {
    fn from(out: SippOutput) -> SippResult {
        SippResult {
            ok: out.success(),
            report: out.report(),
            logs: out.logs,
        }
    }
}

impl SippCmd {
    /// Runs to the end (blocking; call from `spawn_blocking` in async tests).
    pub fn run(self) -> SippResult {
        self.0.run().into()
    }

    /// Starts in the background.
    pub fn spawn(self) -> (std::process::Child, SippCmd) {
        let (child, cmd) = self.0.spawn();
        (child, SippCmd(cmd))
    }

    pub fn result(&self, out: std::process::Output) -> SippResult {
        self.0.result(out).into()
    }
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

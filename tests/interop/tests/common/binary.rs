//! The gateway binary (`cpim-gateway-e2e`, the gateway's own `main`) as a child process,
//! for the tests that kill it and start it again on the same store: its config file on
//! free loopback ports, the process, and waits on its admin API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use cpim_gateway::config::Config;
use cpim_interop::{free_tcp_port, free_udp_port, Proc};
use cpim_testkit::http_get;

use super::WAIT;

/// The admin API token written into the config file.
pub const ADMIN_TOKEN: &str = "binary-test-admin-token-0123456789";

/// Where the gateway written by [`write_config`] listens.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// SIP over UDP.
    pub sip_udp: SocketAddr,
    /// SIP over TCP.
    pub sip_tcp: SocketAddr,
    /// The admin API (token [`ADMIN_TOKEN`]).
    pub admin: SocketAddr,
}

/// Writes `cfg` to `dir/gateway.toml` with SIP over UDP and TCP (no TLS) and the admin API
/// on free loopback ports, the admin token [`ADMIN_TOKEN`] and the store in `dir/store`.
pub fn write_config(mut cfg: Config, dir: &Path) -> (PathBuf, Listen) {
    let listen = Listen {
        sip_udp: ([127, 0, 0, 1], free_udp_port().unwrap()).into(),
        sip_tcp: ([127, 0, 0, 1], free_tcp_port().unwrap()).into(),
        admin: ([127, 0, 0, 1], free_tcp_port().unwrap()).into(),
    };
    cfg.sip.endpoint.udp = vec![listen.sip_udp];
    cfg.sip.endpoint.tcp = vec![listen.sip_tcp];
    cfg.sip.endpoint.tls = Vec::new();
    cfg.admin.listen = listen.admin;
    cfg.admin.token = Some(ADMIN_TOKEN.into());
    cfg.store.path = dir.join("store");
    let file = dir.join("gateway.toml");
    std::fs::write(&file, toml::to_string(&cfg).unwrap()).unwrap();
    (file, listen)
}

/// `cpim-gateway-e2e run --config <config>`, logging warnings and errors; `what` names it
/// in failures.
pub fn spawn(config: &Path, what: &str) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cpim-gateway-e2e"));
    cmd.arg("run").arg("--config").arg(config);
    cmd.env("RUST_LOG", "warn");
    Proc::spawn(what, cmd).expect("spawn the gateway")
}

/// `gw` once its admin API answers and its XMPP link is up; killed, with its output in
/// the panic message, when that takes longer than [`WAIT`].
pub async fn wait_xmpp_up(admin: SocketAddr, gw: Proc) -> Proc {
    let up = cpim_testkit::eventually("the gateway's XMPP link up", WAIT, || async {
        let (code, body) = http_get(admin, "/links", Some(ADMIN_TOKEN)).await.ok()?;
        let links: serde_json::Value = serde_json::from_str(&body).ok()?;
        let up = links.as_array()?.iter().any(|l| {
            l["name"].as_str().is_some_and(|n| n.starts_with("xmpp"))
                && l["up"].as_bool() == Some(true)
        });
        (code == 200 && up).then_some(())
    })
    .await;
    if let Err(e) = up {
        panic!("{e}\n{}", gw.kill());
    }
    gw
}

/// `gw` once its admin API answers (an s2s gateway opens its links on the first
/// stanza); killed, with its output in the panic message, when that takes longer than
/// [`WAIT`].
pub async fn wait_admin_up(admin: SocketAddr, gw: Proc) -> Proc {
    let up = cpim_testkit::eventually("the gateway's admin API", WAIT, || async {
        queue_depth(admin).await.map(|_| ())
    })
    .await;
    if let Err(e) = up {
        panic!("{e}\n{}", gw.kill());
    }
    gw
}

/// The store-and-forward queue depth (`/queue`); `None` while the admin API does not
/// answer.
pub async fn queue_depth(admin: SocketAddr) -> Option<u64> {
    let (code, body) = http_get(admin, "/queue", Some(ADMIN_TOKEN)).await.ok()?;
    Some(super::queue_depth_of(code, &body))
}

//! [`TestGateway`]: the gateway in-process on ephemeral ports with a temporary store.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cpim_core::adapter::Adapter;
use cpim_gateway::config::Config;
use cpim_gateway::gateway::{Gateway, GatewayIngress};
use cpim_sip::transport::Transport;
use cpim_xmpp::Mode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::TestkitError;

/// A folder removed (recursively) on drop, unless it was given by the caller.
#[derive(Debug)]
struct StoreDir {
    path: PathBuf,
    owned: bool,
}

impl StoreDir {
    fn temp() -> Result<StoreDir, TestkitError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "cpim-testkit-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| TestkitError::io(format!("creating {}", path.display()), e))?;
        Ok(StoreDir { path, owned: true })
    }
}

impl Drop for StoreDir {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Options for starting a [`TestGateway`]; see [`TestGateway::builder`].
#[must_use]
pub struct TestGatewayBuilder {
    config: Config,
    ephemeral_sip: bool,
    ephemeral_admin: bool,
    ephemeral_xmpp: bool,
    store: Option<PathBuf>,
    extra: Vec<Arc<dyn Adapter>>,
}

impl std::fmt::Debug for TestGatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGatewayBuilder")
            .field("ephemeral_sip", &self.ephemeral_sip)
            .field("ephemeral_admin", &self.ephemeral_admin)
            .field("ephemeral_xmpp", &self.ephemeral_xmpp)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl TestGatewayBuilder {
    /// Keep the SIP listen addresses of the config as they are.
    pub fn keep_sip_listen(mut self) -> Self {
        self.ephemeral_sip = false;
        self
    }

    /// Keep `admin.listen` as it is.
    pub fn keep_admin_listen(mut self) -> Self {
        self.ephemeral_admin = false;
        self
    }

    /// Keep the XMPP s2s `listen` as it is (a test that must listen where Prosody's s2s
    /// route points).
    pub fn keep_xmpp_listen(mut self) -> Self {
        self.ephemeral_xmpp = false;
        self
    }

    /// Use this store folder instead of a temporary one (it is not removed on drop): how a
    /// test checks state across two gateways.
    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store = Some(dir.into());
        self
    }

    /// Extra, already running adapters (see [`Gateway::start_with`]): mock adapters.
    pub fn adapters(mut self, extra: Vec<Arc<dyn Adapter>>) -> Self {
        self.extra = extra;
        self
    }

    /// Patches the config and starts the gateway.
    pub async fn start(self) -> Result<TestGateway, TestkitError> {
        let mut cfg = self.config;
        let store = match self.store {
            Some(path) => {
                std::fs::create_dir_all(&path)
                    .map_err(|e| TestkitError::io(format!("creating {}", path.display()), e))?;
                StoreDir { path, owned: false }
            }
            None => StoreDir::temp()?,
        };
        cfg.store.path = store.path.clone();
        if self.ephemeral_sip {
            let e = &mut cfg.sip.endpoint;
            for list in [&mut e.udp, &mut e.tcp, &mut e.tls] {
                for a in list.iter_mut() {
                    *a = ephemeral(*a);
                }
            }
        }
        if self.ephemeral_admin {
            cfg.admin.enabled = true;
            cfg.admin.listen = ephemeral(cfg.admin.listen);
        }
        if cfg.admin.token.is_none() {
            // The admin API always requires a token; the gateway would generate one in the
            // store folder. Setting it here lets `admin_get` send it.
            cfg.admin.token = Some(test_token());
        }
        if self.ephemeral_xmpp {
            if let Mode::S2s { listen, .. } = &mut cfg.xmpp.mode {
                *listen = "127.0.0.1:0".into();
            }
        }
        TestGateway::launch(cfg, store, self.extra).await
    }
}

/// A token for the admin API of one test gateway (32 hex digits, not a constant).
fn test_token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mixed = nanos
        ^ (u128::from(std::process::id()) << 64)
        ^ (u128::from(N.fetch_add(1, Ordering::SeqCst)) << 96);
    format!("{mixed:032x}")
}

/// Loopback (or the given specific IP) with port 0.
fn ephemeral(a: SocketAddr) -> SocketAddr {
    let ip = if a.ip().is_unspecified() {
        match a.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        a.ip()
    };
    SocketAddr::new(ip, 0)
}

/// A gateway running in this process; see the crate documentation.
pub struct TestGateway {
    gw: Option<Gateway>,
    config: Config,
    store: StoreDir,
}

impl std::fmt::Debug for TestGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGateway")
            .field("gateway", &self.gw)
            .field("store", &self.store.path)
            .finish()
    }
}

impl TestGateway {
    /// Starts `config` with every listener on an ephemeral loopback port and a temporary
    /// store (same as `TestGateway::builder(config).start()`).
    pub async fn start(config: Config) -> Result<TestGateway, TestkitError> {
        Self::builder(config).start().await
    }

    /// A builder: choose which listeners keep their configured address, the store folder
    /// and extra adapters.
    pub fn builder(config: Config) -> TestGatewayBuilder {
        TestGatewayBuilder {
            config,
            ephemeral_sip: true,
            ephemeral_admin: true,
            ephemeral_xmpp: true,
            store: None,
            extra: Vec::new(),
        }
    }

    async fn launch(
        mut config: Config,
        store: StoreDir,
        extra: Vec<Arc<dyn Adapter>>,
    ) -> Result<TestGateway, TestkitError> {
        let gw = Gateway::start_with(config.clone(), extra).await?;
        // Remember the admin port, so that a restart comes back where the test knows it.
        // (The SIP ports cannot be kept: see `restart`.)
        if let Some(a) = gw.admin_addr() {
            config.admin.listen = a;
        }
        Ok(TestGateway {
            gw: Some(gw),
            config,
            store,
        })
    }

    /// The running gateway.
    pub fn gateway(&self) -> &Gateway {
        self.gw.as_ref().expect("gateway is running until shutdown")
    }

    /// Its ingress: submit operations as an adapter named `adapter` would.
    pub fn ingress(&self) -> Arc<GatewayIngress> {
        self.gateway().ingress.clone()
    }

    /// The effective config (store and bound ports filled in).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store folder.
    pub fn store_dir(&self) -> &Path {
        &self.store.path
    }

    /// The SIP adapter's first bound address for `transport`.
    pub fn sip_addr(&self, transport: Transport) -> Option<SocketAddr> {
        let name = match transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        };
        self.gateway()
            .sip_addrs()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    /// The admin API's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.gateway().admin_addr()
    }

    /// `http://IP:PORT` of the admin API.
    pub fn admin_url(&self) -> Option<String> {
        self.admin_addr().map(|a| format!("http://{a}"))
    }

    /// The admin API's bearer token (set by the builder when the config has none).
    pub fn admin_token(&self) -> Option<&str> {
        self.config.admin.token.as_deref()
    }

    /// `GET path` on the admin API (with the configured bearer token): (status, body).
    pub async fn admin_get(&self, path: &str) -> Result<(u16, String), TestkitError> {
        let addr = self
            .admin_addr()
            .ok_or_else(|| TestkitError::Admin("the admin API is disabled".into()))?;
        http_get(addr, path, self.config.admin.token.as_deref()).await
    }

    /// Waits until `/links` lists an up link whose name contains `name` (e.g.
    /// `xmpp-component`, `xmpp-s2s`).
    pub async fn wait_link_up(&self, name: &str, timeout: Duration) -> Result<(), TestkitError> {
        let mut last = String::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok((200, body)) = self.admin_get("/links").await {
                let up = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .any(|l| {
                        l["name"].as_str().is_some_and(|n| n.contains(name))
                            && l["up"].as_bool() == Some(true)
                    });
                if up {
                    return Ok(());
                }
                last = body;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    what: format!("link {name:?} up"),
                    timeout,
                    seen: format!("/links said {last}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Graceful shutdown; returns when the gateway has stopped (listeners closed, tasks
    /// ended). The temporary store is removed.
    pub async fn shutdown(mut self) {
        if let Some(gw) = self.gw.take() {
            gw.shutdown().await;
        }
    }

    /// Graceful shutdown, then a new gateway with the same config on the same store and the
    /// same admin port. The SIP listeners get new ephemeral ports: cpim-sip's transports keep
    /// their sockets open after `Gateway::shutdown` (their tasks are detached and the adapter
    /// is kept alive by the router), so the old ports stay taken inside this process. Point
    /// the UAs at the new [`TestGateway::sip_addr`] with [`crate::SipUa::set_server`].
    pub async fn restart(mut self) -> Result<TestGateway, TestkitError> {
        if let Some(gw) = self.gw.take() {
            gw.shutdown().await;
        }
        let store = std::mem::replace(
            &mut self.store,
            StoreDir {
                path: PathBuf::new(),
                owned: false,
            },
        );
        let config = self.config.clone();
        TestGateway::launch(config, store, Vec::new()).await
    }
}

/// A one-shot HTTP/1.1 GET (Connection: close, optional bearer token), bounded to 10 s:
/// (status, body). For an admin API of a gateway that runs as a process.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), TestkitError> {
    http_get_host(addr, path, &addr.to_string(), token).await
}

/// [`http_get`] with the `Host` header `host` (say, a name a DNS-rebinding page uses).
pub async fn http_get_host(
    addr: SocketAddr,
    path: &str,
    host: &str,
    token: Option<&str>,
) -> Result<(u16, String), TestkitError> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| TestkitError::io(format!("connecting to {addr}"), e))?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(|e| TestkitError::io("writing the request", e))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .map_err(|e| TestkitError::io("reading the response", e))?;
        parse_response(&buf)
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| TestkitError::Timeout {
            what: format!("GET {path} on {addr}"),
            timeout: Duration::from_secs(10),
            seen: String::new(),
        })?
}

fn parse_response(buf: &[u8]) -> Result<(u16, String), TestkitError> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| TestkitError::Admin(format!("no header end in {text:?}")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| TestkitError::Admin(format!("bad status line in {head:?}")))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_owned()
    };
    Ok((code, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_plain_and_chunked() {
        let (c, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((c, b.as_str()), (200, "ok"));
        let (c, b) = parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((c, b.as_str()), (503, "abcde"));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn ephemeral_keeps_specific_ips() {
        assert_eq!(
            ephemeral("0.0.0.0:5060".parse().unwrap()),
            "127.0.0.1:0".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            ephemeral("127.0.0.2:5060".parse().unwrap()),
            "127.0.0.2:0".parse::<SocketAddr>().unwrap()
        );
    }
}

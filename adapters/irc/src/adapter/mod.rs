//! The tokio layer of the IRC adapter.
//!
//! One hub task owns the adapter's state; one task per IRC connection owns a socket and a
//! sans-IO [`Conn`](crate::conn::Conn). The relay bot connection is always there
//! (reconnecting with exponential backoff); it joins the configured channels, relays for
//! senders that have no puppet (`<alice@sip.example> text`), receives `/msg bot user@domain
//! text` from IRC users, and watches presence (channel JOIN/PART/QUIT, USERHOST polling,
//! WHOIS for away messages). A CPIM user who sends to IRC gets a puppet connection of their
//! own (a nickname escaped from their user part), up to `max_puppets`; idle puppets quit.

use cpim_core::StatusCode;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress, LinkStatus};
use cpim_core::{Address, Operation, Outcome};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::conn::ConnEvent;
use crate::proto::{is_channel, is_valid_nick};

mod hub;
mod task;

use hub::Hub;

/// Configuration of the IRC adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IrcConfig {
    /// Adapter name for routing, logs and metrics.
    pub name: String,
    /// IRC server `host:port`.
    pub server: String,
    /// Connect with TLS (rustls, ring provider).
    pub tls: bool,
    /// PEM file with the CA certificates that TLS trusts (required with `tls`).
    pub tls_ca_file: Option<PathBuf>,
    /// Server name for TLS verification; default: the host part of `server`.
    pub tls_server_name: Option<String>,
    /// Server password (PASS).
    pub password: Option<String>,
    /// The domain IRC users get in CPIM addresses: `im:nick@<domain>`.
    pub domain: String,
    /// The relay bot's nickname.
    pub bot_nick: String,
    /// Longest nickname the server accepts (RFC 2812: 9; most servers allow 30).
    pub nick_len: usize,
    /// Appended to every puppet nickname (e.g. `|x`), to tell puppets apart.
    pub puppet_suffix: String,
    /// Most puppet connections at once; 0 relays everything through the bot.
    pub max_puppets: usize,
    /// A puppet quits after this long without traffic.
    pub puppet_idle_secs: u64,
    /// Channels the bot joins.
    pub channels: Vec<String>,
    /// How often watched nicknames are polled with USERHOST.
    pub presence_poll_secs: u64,
    /// RFC 1459 s8.10 flood control: penalty per line...
    pub flood_penalty_ms: u64,
    /// ...and the window the message timer may run ahead.
    pub flood_window_ms: u64,
    /// PING the server after this long without traffic.
    pub ping_interval_secs: u64,
    /// Give the connection up this long after an unanswered PING.
    pub ping_timeout_secs: u64,
    /// How long a message waits for its PING barrier before 408.
    pub send_timeout_ms: u64,
    /// First reconnect delay; doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay.
    pub reconnect_max_ms: u64,
}

impl Default for IrcConfig {
    fn default() -> Self {
        IrcConfig {
            name: "irc".into(),
            server: "127.0.0.1:6667".into(),
            tls: false,
            tls_ca_file: None,
            tls_server_name: None,
            password: None,
            domain: "irc.example".into(),
            bot_nick: "cpimgw".into(),
            nick_len: 9,
            puppet_suffix: String::new(),
            max_puppets: 20,
            puppet_idle_secs: 900,
            channels: Vec::new(),
            presence_poll_secs: 60,
            flood_penalty_ms: 2000,
            flood_window_ms: 10_000,
            ping_interval_secs: 90,
            ping_timeout_secs: 30,
            send_timeout_ms: 15_000,
            reconnect_min_ms: 1000,
            reconnect_max_ms: 60_000,
        }
    }
}

/// Errors of the tokio layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IrcError {
    /// The configuration is not usable.
    #[error("invalid IRC adapter config: {0}")]
    Config(String),
    /// TLS could not be set up.
    #[error("IRC TLS setup: {0}")]
    Tls(String),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

enum ConnCmd {
    Send {
        target: String,
        text: String,
        notice: bool,
        token: u64,
    },
    Join(String),
    Userhost(Vec<String>),
    Whois(String),
    Away(Option<String>),
    Quit(String),
}

enum HubMsg {
    Deliver(Box<Operation>, oneshot::Sender<Outcome>),
    Event(u64, ConnEvent),
    Closed(u64),
    Failed { nick: String, text: String },
    Tick,
    Shutdown(oneshot::Sender<()>),
}

struct Shared {
    cfg: IrcConfig,
    tls: Option<tokio_rustls::TlsConnector>,
    ingress: Arc<dyn Ingress>,
    links: Mutex<Vec<LinkStatus>>,
    next_trans: AtomicU64,
}

/// The running adapter.
pub struct IrcHandle {
    shared: Arc<Shared>,
    hub: mpsc::Sender<HubMsg>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for IrcHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrcHandle")
            .field("name", &self.shared.cfg.name)
            .field("server", &self.shared.cfg.server)
            .finish()
    }
}

/// Starts the adapter: the bot connects (and keeps reconnecting) in the background.
pub async fn start(config: IrcConfig, ingress: Arc<dyn Ingress>) -> Result<IrcHandle, IrcError> {
    if !is_valid_nick(&config.bot_nick, config.nick_len) {
        return Err(IrcError::Config(format!(
            "bot_nick {:?} is not a valid nickname",
            config.bot_nick
        )));
    }
    if let Some(c) = config.channels.iter().find(|c| !is_channel(c)) {
        return Err(IrcError::Config(format!("{c:?} is not a channel name")));
    }
    if config.domain.is_empty() || config.server.is_empty() {
        return Err(IrcError::Config("domain and server must be set".into()));
    }
    let tls = if config.tls {
        Some(tls_connector(&config)?)
    } else {
        None
    };
    let (hub_tx, hub_rx) = mpsc::channel(256);
    let shared = Arc::new(Shared {
        cfg: config,
        tls,
        ingress,
        links: Mutex::new(Vec::new()),
        next_trans: AtomicU64::new(1),
    });
    let hub = Hub::new(shared.clone(), hub_tx.clone());
    let task = tokio::spawn(hub.run(hub_rx));
    Ok(IrcHandle {
        shared,
        hub: hub_tx,
        task: Mutex::new(Some(task)),
    })
}

fn tls_connector(cfg: &IrcConfig) -> Result<tokio_rustls::TlsConnector, IrcError> {
    let path = cfg
        .tls_ca_file
        .as_ref()
        .ok_or_else(|| IrcError::Config("tls needs tls_ca_file".into()))?;
    let pem = std::fs::read(path).map_err(|e| IrcError::Tls(format!("{}: {e}", path.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| IrcError::Tls(format!("{}: {e}", path.display())))?;
        roots.add(cert).map_err(|e| IrcError::Tls(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IrcError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

impl IrcHandle {
    /// Sends QUIT on every connection and stops.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.hub.send(HubMsg::Shutdown(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }

    /// True once the bot is registered on the IRC server.
    pub fn is_connected(&self) -> bool {
        self.links().first().is_some_and(|l| l.up)
    }
}

impl Adapter for IrcHandle {
    fn name(&self) -> &str {
        &self.shared.cfg.name
    }

    fn serves(&self, address: &Address) -> bool {
        address.domain.eq_ignore_ascii_case(&self.shared.cfg.domain)
    }

    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome> {
        let trans_id = op.trans_id();
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            if self
                .hub
                .send(HubMsg::Deliver(Box::new(op), tx))
                .await
                .is_err()
            {
                return Outcome::failure(
                    trans_id,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable: IRC adapter stopped",
                );
            }
            rx.await.unwrap_or_else(|_| {
                Outcome::failure(
                    trans_id,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable: IRC adapter stopped",
                )
            })
        })
    }

    fn links(&self) -> Vec<LinkStatus> {
        self.shared
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_refuses_unknown_keys() {
        let c: IrcConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, IrcConfig::default());
        assert!(is_valid_nick(&c.bot_nick, c.nick_len));
        let c: IrcConfig = serde_json::from_str(
            r##"{"server":"irc.example.net:6697","tls":true,"channels":["#a"]}"##,
        )
        .unwrap();
        assert!(c.tls);
        let e = serde_json::from_str::<IrcConfig>(r#"{"nick":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("nick"), "{e}");
    }

    #[tokio::test]
    async fn start_refuses_bad_config() {
        struct Nobody;
        impl Ingress for Nobody {
            fn submit(&self, _: &str, op: Operation) -> BoxFuture<'static, Outcome> {
                let t = op.trans_id();
                Box::pin(async move { Outcome::ok(t) })
            }
        }
        let bad = [
            IrcConfig {
                bot_nick: "9bot".into(),
                ..IrcConfig::default()
            },
            IrcConfig {
                channels: vec!["nochan".into()],
                ..IrcConfig::default()
            },
            IrcConfig {
                tls: true,
                ..IrcConfig::default()
            },
        ];
        for cfg in bad {
            assert!(matches!(
                start(cfg, Arc::new(Nobody)).await,
                Err(IrcError::Config(_))
            ));
        }
    }
}

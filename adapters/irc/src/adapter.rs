//! The tokio layer of the IRC adapter.
//!
//! One hub task owns the adapter's state; one task per IRC connection owns a socket and
//! a sans-IO [`Conn`]. The relay bot connection is always there (reconnecting with
//! exponential backoff); it joins the configured channels, relays for senders that have
//! no puppet (`<alice@sip.example> text`), receives `/msg bot user@domain text` from IRC
//! users, and watches presence (channel JOIN/PART/QUIT, USERHOST polling, WHOIS for away
//! messages). A CPIM user who sends to IRC gets a puppet connection of their own (a
//! nickname escaped from their user part), up to `max_puppets`; idle puppets quit.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpim_core::adapter::{Adapter, BoxFuture, Ingress, LinkStatus};
use cpim_core::model::{MessageKind, SubscriptionState};
use cpim_core::{Address, Message, Notify, Operation, Outcome, Scheme, TransId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::conn::{Conn, ConnEvent, ConnSettings};
use crate::mapping::{away_of, numeric_to_status, presence_of, IrcPresence};
use crate::nick::escape_within;
use crate::proto::{casefold, is_channel, is_valid_nick, nick_eq};

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
                return Outcome::failure(trans_id, 503, "Service Unavailable: IRC adapter stopped");
            }
            rx.await.unwrap_or_else(|_| {
                Outcome::failure(trans_id, 503, "Service Unavailable: IRC adapter stopped")
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

const BOT: u64 = 0;

struct Link {
    tx: mpsc::Sender<ConnCmd>,
    nick: String,
    registered: bool,
    joined: HashSet<String>,
    /// Sends held back until registration.
    waiting: Vec<(String, String, bool, u64)>,
    /// For puppets: whose puppet this is.
    owner: Option<Address>,
    last_used: Instant,
    last_error: Option<String>,
}

struct Watch {
    nick: String,
    watchers: Vec<(Address, bool)>, // (watcher, one-shot fetch)
    state: Option<IrcPresence>,
    whois_pending: bool,
    away_note: Option<String>,
}

struct Hub {
    shared: Arc<Shared>,
    me: mpsc::Sender<HubMsg>,
    links: HashMap<u64, Link>,
    puppets: HashMap<(Option<String>, String), u64>,
    next_conn: u64,
    next_token: u64,
    sends: HashMap<u64, (TransId, oneshot::Sender<Outcome>)>,
    watches: HashMap<String, Watch>,
    tasks: Vec<JoinHandle<()>>,
}

fn key(a: &Address) -> (Option<String>, String) {
    (a.user.clone(), a.domain.clone())
}

impl Hub {
    fn new(shared: Arc<Shared>, me: mpsc::Sender<HubMsg>) -> Hub {
        Hub {
            shared,
            me,
            links: HashMap::new(),
            puppets: HashMap::new(),
            next_conn: 1,
            next_token: 0,
            sends: HashMap::new(),
            watches: HashMap::new(),
            tasks: Vec::new(),
        }
    }

    fn cfg(&self) -> &IrcConfig {
        &self.shared.cfg
    }

    fn trans(&self) -> TransId {
        TransId(self.shared.next_trans.fetch_add(1, Ordering::Relaxed))
    }

    fn spawn_conn(&mut self, id: u64, nick: String, owner: Option<Address>) {
        let cfg = self.cfg();
        let settings = ConnSettings {
            nick: nick.clone(),
            nick_len: cfg.nick_len,
            user: if owner.is_some() {
                "cpim".into()
            } else {
                "cpimgw".into()
            },
            realname: owner
                .as_ref()
                .map_or("CPIM gateway relay".into(), |o| o.to_string()),
            password: cfg.password.clone(),
            flood_penalty: Duration::from_millis(cfg.flood_penalty_ms),
            flood_window: Duration::from_millis(cfg.flood_window_ms),
            ping_interval: Duration::from_secs(cfg.ping_interval_secs.max(1)),
            ping_timeout: Duration::from_secs(cfg.ping_timeout_secs.max(1)),
            send_timeout: Duration::from_millis(cfg.send_timeout_ms.max(100)),
            register_timeout: Duration::from_secs(30),
        };
        let (tx, rx) = mpsc::channel(256);
        let reconnect = owner.is_none();
        self.links.insert(
            id,
            Link {
                tx,
                nick,
                registered: false,
                joined: HashSet::new(),
                waiting: Vec::new(),
                owner,
                last_used: Instant::now(),
                last_error: None,
            },
        );
        let task = tokio::spawn(conn_task(
            id,
            settings,
            self.shared.clone(),
            rx,
            self.me.clone(),
            reconnect,
        ));
        self.tasks.push(task);
    }

    async fn run(mut self, mut rx: mpsc::Receiver<HubMsg>) {
        let bot = self.cfg().bot_nick.clone();
        self.spawn_conn(BOT, bot, None);
        let ticker = {
            let me = self.me.clone();
            let every = Duration::from_secs(self.cfg().presence_poll_secs.max(1));
            tokio::spawn(async move {
                let mut iv = tokio::time::interval(every);
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    iv.tick().await;
                    if me.send(HubMsg::Tick).await.is_err() {
                        break;
                    }
                }
            })
        };
        self.publish_links();
        while let Some(msg) = rx.recv().await {
            match msg {
                HubMsg::Deliver(op, reply) => self.deliver(*op, reply).await,
                HubMsg::Event(id, ev) => self.event(id, ev).await,
                HubMsg::Closed(id) => self.closed(id).await,
                HubMsg::Failed { nick, text } => {
                    // Tell the IRC sender their message was refused (never for NOTICE).
                    self.cmd(
                        BOT,
                        ConnCmd::Send {
                            target: nick,
                            text,
                            notice: true,
                            token: u64::MAX,
                        },
                    )
                    .await;
                }
                HubMsg::Tick => self.tick().await,
                HubMsg::Shutdown(done) => {
                    ticker.abort();
                    for link in self.links.values() {
                        let _ = link
                            .tx
                            .send(ConnCmd::Quit("gateway shutting down".into()))
                            .await;
                    }
                    for t in self.tasks.drain(..) {
                        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
                    }
                    for (_, (t, reply)) in self.sends.drain() {
                        let _ = reply.send(Outcome::failure(
                            t,
                            503,
                            "Service Unavailable: shutting down",
                        ));
                    }
                    let _ = done.send(());
                    return;
                }
            }
            self.publish_links();
        }
    }

    fn publish_links(&self) {
        let mut v: Vec<LinkStatus> = Vec::new();
        let mut ids: Vec<&u64> = self.links.keys().collect();
        ids.sort();
        for id in ids {
            let l = &self.links[id];
            v.push(LinkStatus {
                name: match &l.owner {
                    None => format!("irc:{}", self.cfg().server),
                    Some(o) => format!("irc-puppet:{}:{o}", l.nick),
                },
                up: l.registered,
                queued: l.waiting.len(),
                last_error: l.last_error.clone(),
            });
        }
        *self.shared.links.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }

    async fn cmd(&self, id: u64, c: ConnCmd) {
        if let Some(l) = self.links.get(&id) {
            let _ = l.tx.send(c).await;
        }
    }

    fn irc_address(&self, nick: &str) -> Address {
        Address::new(Scheme::Im, Some(nick), &self.cfg().domain)
    }

    fn is_puppet_nick(&self, nick: &str) -> bool {
        self.links
            .iter()
            .any(|(id, l)| *id != BOT && nick_eq(&l.nick, nick))
    }

    async fn deliver(&mut self, op: Operation, reply: oneshot::Sender<Outcome>) {
        let t = op.trans_id();
        match op {
            Operation::Message(m) => self.deliver_message(m, reply).await,
            Operation::Subscribe(s) => {
                let Some(nick) = s.target.user.clone().filter(|n| is_valid_nick(n, 64)) else {
                    let _ = reply.send(Outcome::failure(t, 404, "Not Found: not an IRC nickname"));
                    return;
                };
                let w = self
                    .watches
                    .entry(casefold(&nick))
                    .or_insert_with(|| Watch {
                        nick: nick.clone(),
                        watchers: Vec::new(),
                        state: None,
                        whois_pending: false,
                        away_note: None,
                    });
                w.watchers.retain(|(a, _)| !a.same_user(&s.watcher));
                w.watchers.push((s.watcher.clone(), s.duration == 0));
                // A fresh watcher gets the current state at the next USERHOST answer.
                w.state = None;
                let _ = reply.send(Outcome::ok(t));
                self.cmd(BOT, ConnCmd::Userhost(vec![nick])).await;
            }
            Operation::Unsubscribe(s) => {
                if let Some(nick) = &s.target.user {
                    let k = casefold(nick);
                    if let Some(w) = self.watches.get_mut(&k) {
                        w.watchers.retain(|(a, _)| !a.same_user(&s.watcher));
                        if w.watchers.is_empty() {
                            self.watches.remove(&k);
                        }
                    }
                }
                let _ = reply.send(Outcome::ok(t));
            }
            Operation::Notify(n) => {
                // A CPIM user's presence, shown as AWAY on their puppet if they have one.
                if let (Some(p), Some(id)) =
                    (&n.presence, self.puppets.get(&key(&n.target)).copied())
                {
                    self.cmd(id, ConnCmd::Away(away_of(p))).await;
                }
                let _ = reply.send(Outcome::ok(t));
            }
            other => {
                let _ = reply.send(Outcome::failure(
                    t,
                    501,
                    format!("Not Implemented: {} on IRC", other.kind()),
                ));
            }
        }
    }

    async fn deliver_message(&mut self, m: Message, reply: oneshot::Sender<Outcome>) {
        let t = m.trans_id;
        let Some(target) = m.destination.user.clone() else {
            let _ = reply.send(Outcome::failure(
                t,
                404,
                "Not Found: no nickname or channel",
            ));
            return;
        };
        if !is_channel(&target) && !is_valid_nick(&target, 64) {
            let _ = reply.send(Outcome::failure(
                t,
                404,
                "Not Found: not a valid IRC nickname",
            ));
            return;
        }
        let essence = m.mime_type();
        if !essence.starts_with("text/") {
            let _ = reply.send(Outcome::failure(
                t,
                415,
                format!("Unsupported Media Type: IRC carries text only, not {essence}"),
            ));
            return;
        }
        let Ok(text) = String::from_utf8(m.body) else {
            let _ = reply.send(Outcome::failure(
                t,
                415,
                "Unsupported Media Type: body is not UTF-8",
            ));
            return;
        };
        // NOTICE for messages that expect no reply (RFC 2812 s3.3.2).
        let notice = m.kind == MessageKind::Headline;
        let id = self.sender_for(&m.source).await;
        let text = if id == BOT {
            let who = match &m.source.user {
                Some(u) => format!("{u}@{}", m.source.domain),
                None => m.source.domain.clone(),
            };
            format!("<{who}> {text}")
        } else {
            text
        };
        if id == BOT && !self.links.get(&BOT).is_some_and(|l| l.registered) {
            let _ = reply.send(Outcome::failure(
                t,
                503,
                "Service Unavailable: IRC link down",
            ));
            return;
        }
        self.next_token += 1;
        let token = self.next_token;
        self.sends.insert(token, (t, reply));
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.last_used = Instant::now();
        let mut cmds = Vec::new();
        if is_channel(&target) && link.joined.insert(casefold(&target)) {
            cmds.push(ConnCmd::Join(target.clone()));
        }
        if link.registered {
            cmds.push(ConnCmd::Send {
                target,
                text,
                notice,
                token,
            });
        } else {
            link.waiting.push((target, text, notice, token));
        }
        for c in cmds {
            self.cmd(id, c).await;
        }
    }

    /// The connection a CPIM user sends through: their puppet (created if allowed), or
    /// the bot.
    async fn sender_for(&mut self, source: &Address) -> u64 {
        if let Some(id) = self.puppets.get(&key(source)) {
            return *id;
        }
        let cfg = self.cfg();
        if self.puppets.len() >= cfg.max_puppets {
            return BOT;
        }
        let Some(user) = &source.user else { return BOT };
        let room = cfg.nick_len.saturating_sub(cfg.puppet_suffix.len());
        let Some(mut nick) = escape_within(user, room) else {
            return BOT;
        };
        nick.push_str(&cfg.puppet_suffix);
        // Another puppet may have the same nickname under IRC case rules.
        if self.links.values().any(|l| nick_eq(&l.nick, &nick)) {
            return BOT;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        self.puppets.insert(key(source), id);
        self.spawn_conn(id, nick, Some(source.bare()));
        id
    }

    fn finish_send(&mut self, token: u64, result: Result<(), (u16, String)>) {
        let Some((t, reply)) = self.sends.remove(&token) else {
            return;
        };
        let outcome = match result {
            Ok(()) => Outcome::ok(t),
            Err((0, why)) if why.contains("no answer") => {
                Outcome::failure(t, 408, "Request Timeout: no answer from the IRC server")
            }
            Err((n, text)) => {
                let (code, reason) = numeric_to_status(n);
                Outcome::failure(
                    t,
                    code,
                    if text.is_empty() {
                        reason.to_owned()
                    } else {
                        format!("{reason}: {text}")
                    },
                )
            }
        };
        let _ = reply.send(outcome);
    }

    async fn event(&mut self, id: u64, ev: ConnEvent) {
        match ev {
            ConnEvent::Registered { nick } => {
                let Some(link) = self.links.get_mut(&id) else {
                    return;
                };
                link.registered = true;
                link.nick = nick;
                link.last_error = None;
                let waiting = std::mem::take(&mut link.waiting);
                let joins: Vec<String> = if id == BOT {
                    link.joined = self
                        .shared
                        .cfg
                        .channels
                        .iter()
                        .map(|c| casefold(c))
                        .collect();
                    self.shared.cfg.channels.clone()
                } else {
                    link.joined.iter().cloned().collect()
                };
                for c in joins {
                    self.cmd(id, ConnCmd::Join(c)).await;
                }
                for (target, text, notice, token) in waiting {
                    self.cmd(
                        id,
                        ConnCmd::Send {
                            target,
                            text,
                            notice,
                            token,
                        },
                    )
                    .await;
                }
                if id == BOT {
                    self.poll_presence().await;
                }
            }
            ConnEvent::SendResult { token, result } => self.finish_send(token, result),
            ConnEvent::Message {
                from,
                target,
                text,
                notice,
            } => {
                if self.is_puppet_nick(&from)
                    || self
                        .links
                        .get(&BOT)
                        .is_some_and(|l| nick_eq(&l.nick, &from))
                {
                    return; // our own traffic echoed back
                }
                self.inbound_message(id, from, target, text, notice);
            }
            ConnEvent::Dead { reason } => {
                if let Some(l) = self.links.get_mut(&id) {
                    l.registered = false;
                    l.last_error = Some(reason);
                }
            }
            ev if id == BOT => self.presence_event(ev).await,
            _ => {}
        }
    }

    fn inbound_message(
        &mut self,
        id: u64,
        from: String,
        target: String,
        text: String,
        notice: bool,
    ) {
        let domain = self.cfg().domain.clone();
        let source = self.irc_address(&from);
        let (destination, text, kind) = if is_channel(&target) {
            if id != BOT {
                return; // channel traffic is taken from the bot only
            }
            let kind = if notice {
                MessageKind::Headline
            } else {
                MessageKind::Groupchat
            };
            (Address::new(Scheme::Im, Some(&target), &domain), text, kind)
        } else if id == BOT {
            // "/msg bot user@domain text": the first word is the recipient.
            let (first, rest) = text.split_once(' ').unwrap_or((&text, ""));
            let first = first.trim_end_matches([':', ',']);
            // A bare `user@domain` is an `im:` address (RFC 3860).
            let parsed = if first.contains(':') {
                Address::parse(first)
            } else {
                Address::parse(&format!("im:{first}"))
            };
            match parsed
                .ok()
                .filter(|a| a.user.is_some() && first.contains('@'))
            {
                Some(a) if !rest.trim().is_empty() => (
                    a.bare(),
                    rest.trim_start().to_owned(),
                    if notice {
                        MessageKind::Headline
                    } else {
                        MessageKind::Chat
                    },
                ),
                _ => {
                    if !notice {
                        let me = self.me.clone();
                        let hint = "usage: /msg <this bot> user@domain your message".to_owned();
                        tokio::spawn(async move {
                            let _ = me
                                .send(HubMsg::Failed {
                                    nick: from,
                                    text: hint,
                                })
                                .await;
                        });
                    }
                    return;
                }
            }
        } else {
            let Some(owner) = self.links.get(&id).and_then(|l| l.owner.clone()) else {
                return;
            };
            if let Some(l) = self.links.get_mut(&id) {
                l.last_used = Instant::now();
            }
            (
                owner,
                text,
                if notice {
                    MessageKind::Headline
                } else {
                    MessageKind::Chat
                },
            )
        };
        let mut m = Message::new(
            self.trans(),
            source,
            destination,
            "text/plain;charset=UTF-8",
            text.into_bytes(),
        );
        m.kind = kind;
        let fut = self
            .shared
            .ingress
            .submit(&self.shared.cfg.name, Operation::Message(m));
        let me = self.me.clone();
        tokio::spawn(async move {
            let outcome = fut.await;
            if !outcome.status.is_success() && !notice {
                let text = format!(
                    "not delivered: {} {}",
                    outcome.status.code, outcome.status.reason
                );
                let _ = me.send(HubMsg::Failed { nick: from, text }).await;
            }
        });
    }

    async fn presence_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Quit { nick, reason } => {
                self.set_presence(&nick, IrcPresence::Gone(Some(reason)))
            }
            ConnEvent::Join { nick, .. } => {
                if matches!(self.watch_state(&nick), None | Some(IrcPresence::Gone(_))) {
                    self.set_presence(&nick, IrcPresence::Here)
                }
            }
            ConnEvent::NickChange { old, new } => {
                self.set_presence(&old, IrcPresence::Gone(Some(format!("now known as {new}"))));
                self.set_presence(&new, IrcPresence::Here);
            }
            ConnEvent::AwayReply { nick, note } => {
                if let Some(w) = self.watches.get_mut(&casefold(&nick)) {
                    w.away_note = Some(note);
                }
            }
            ConnEvent::WhoisEnd { nick } => {
                let note = self.watches.get_mut(&casefold(&nick)).and_then(|w| {
                    w.whois_pending = false;
                    w.away_note.take()
                });
                self.set_presence(&nick, IrcPresence::Away(note));
            }
            ConnEvent::Userhost { asked, online } => {
                for nick in asked {
                    match online.iter().find(|(n, _)| nick_eq(n, &nick)) {
                        Some((_, false)) => self.set_presence(&nick, IrcPresence::Here),
                        Some((_, true)) => {
                            let k = casefold(&nick);
                            let need = self.watches.get(&k).is_some_and(|w| {
                                !matches!(w.state, Some(IrcPresence::Away(_))) && !w.whois_pending
                            });
                            if need {
                                if let Some(w) = self.watches.get_mut(&k) {
                                    w.whois_pending = true;
                                }
                                self.cmd(BOT, ConnCmd::Whois(nick)).await;
                            }
                        }
                        None => {
                            let keep = match self.watch_state(&nick) {
                                Some(IrcPresence::Gone(r)) => IrcPresence::Gone(r),
                                _ => IrcPresence::Gone(None),
                            };
                            self.set_presence(&nick, keep)
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn watch_state(&self, nick: &str) -> Option<IrcPresence> {
        self.watches
            .get(&casefold(nick))
            .and_then(|w| w.state.clone())
    }

    /// Records a state; on a change, notifies every watcher (RFC 3859 s4.2 notify).
    fn set_presence(&mut self, nick: &str, state: IrcPresence) {
        let k = casefold(nick);
        let domain = self.cfg().domain.clone();
        let Some(w) = self.watches.get_mut(&k) else {
            return;
        };
        let changed = match (&w.state, &state) {
            (Some(IrcPresence::Gone(_)), IrcPresence::Gone(_)) => false,
            (old, new) => old.as_ref() != Some(new),
        };
        if !changed {
            return;
        }
        w.state = Some(state.clone());
        let target = Address::new(Scheme::Pres, Some(&w.nick), &domain);
        let presence = presence_of(&state);
        let watchers: Vec<Address> = w.watchers.iter().map(|(a, _)| a.clone()).collect();
        w.watchers.retain(|(_, once)| !once);
        if w.watchers.is_empty() {
            self.watches.remove(&k);
        }
        for watcher in watchers {
            let n = Notify {
                trans_id: self.trans(),
                watcher,
                target: target.clone(),
                state: SubscriptionState::Active { expires: 3600 },
                presence: Some(presence.clone()),
            };
            let fut = self
                .shared
                .ingress
                .submit(&self.shared.cfg.name, Operation::Notify(n));
            tokio::spawn(async move {
                let _ = fut.await;
            });
        }
    }

    async fn poll_presence(&mut self) {
        let nicks: Vec<String> = self.watches.values().map(|w| w.nick.clone()).collect();
        for chunk in nicks.chunks(5) {
            self.cmd(BOT, ConnCmd::Userhost(chunk.to_vec())).await;
        }
    }

    async fn tick(&mut self) {
        if self.links.get(&BOT).is_some_and(|l| l.registered) {
            self.poll_presence().await;
        }
        let idle = Duration::from_secs(self.cfg().puppet_idle_secs.max(1));
        let now = Instant::now();
        let stale: Vec<u64> = self
            .links
            .iter()
            .filter(|(id, l)| {
                **id != BOT && now.duration_since(l.last_used) >= idle && l.waiting.is_empty()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.cmd(id, ConnCmd::Quit("idle".into())).await;
        }
    }

    async fn closed(&mut self, id: u64) {
        if id == BOT {
            return; // the bot task reconnects by itself
        }
        if let Some(link) = self.links.remove(&id) {
            if let Some(o) = &link.owner {
                self.puppets.remove(&key(o));
            }
            // Sends that never got out: through the bot instead.
            for (target, text, notice, token) in link.waiting {
                let who = link
                    .owner
                    .as_ref()
                    .map_or(String::new(), |o| match &o.user {
                        Some(u) => format!("{u}@{}", o.domain),
                        None => o.domain.clone(),
                    });
                let text = format!("<{who}> {text}");
                if self.links.get(&BOT).is_some_and(|l| l.registered) {
                    self.cmd(
                        BOT,
                        ConnCmd::Send {
                            target,
                            text,
                            notice,
                            token,
                        },
                    )
                    .await;
                } else {
                    self.finish_send(token, Err((0, "IRC link down".into())));
                }
            }
        }
    }
}

async fn connect(shared: &Shared) -> std::io::Result<Box<dyn Io>> {
    let cfg = &shared.cfg;
    let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&cfg.server))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = tcp.set_nodelay(true);
    match &shared.tls {
        None => Ok(Box::new(tcp)),
        Some(tls) => {
            let host = cfg.tls_server_name.clone().unwrap_or_else(|| {
                cfg.server
                    .parse::<SocketAddr>()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_else(|_| {
                        cfg.server
                            .rsplit_once(':')
                            .map_or(cfg.server.clone(), |(h, _)| h.to_owned())
                    })
            });
            let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?;
            Ok(Box::new(tls.connect(name, tcp).await?))
        }
    }
}

async fn conn_task(
    id: u64,
    settings: ConnSettings,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<ConnCmd>,
    hub: mpsc::Sender<HubMsg>,
    reconnect: bool,
) {
    let min = Duration::from_millis(shared.cfg.reconnect_min_ms.max(10));
    let max = Duration::from_millis(shared.cfg.reconnect_max_ms.max(shared.cfg.reconnect_min_ms));
    let mut backoff = min;
    let mut quitting = false;
    loop {
        match connect(&shared).await {
            Ok(stream) => {
                let registered =
                    run_conn(id, &settings, stream, &mut rx, &hub, &mut quitting).await;
                if registered {
                    backoff = min;
                }
            }
            Err(e) => {
                let _ = hub
                    .send(HubMsg::Event(
                        id,
                        ConnEvent::Dead {
                            reason: format!("connect to {}: {e}", shared.cfg.server),
                        },
                    ))
                    .await;
            }
        }
        if !reconnect || quitting {
            break;
        }
        // Wait out the backoff, but still honour QUIT; other commands fail fast.
        let deadline = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                c = rx.recv() => match c {
                    None | Some(ConnCmd::Quit(_)) => { quitting = true; break }
                    Some(ConnCmd::Send { token, .. }) => {
                        let _ = hub.send(HubMsg::Event(id, ConnEvent::SendResult { token, result: Err((0, "IRC link down".into())) })).await;
                    }
                    Some(_) => {}
                }
            }
        }
        if quitting {
            break;
        }
        backoff = (backoff * 2).min(max);
    }
    let _ = hub.send(HubMsg::Closed(id)).await;
}

/// Runs one connection until it ends; true if it got registered.
async fn run_conn(
    id: u64,
    settings: &ConnSettings,
    mut stream: Box<dyn Io>,
    rx: &mut mpsc::Receiver<ConnCmd>,
    hub: &mpsc::Sender<HubMsg>,
    quitting: &mut bool,
) -> bool {
    let mut conn = Conn::new(settings.clone(), Instant::now());
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut dead = false;
    let mut quit_deadline: Option<tokio::time::Instant> = None;
    loop {
        let now = Instant::now();
        out.clear();
        conn.poll_transmit(now, &mut out);
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            conn.handle_closed();
            dead = true;
        }
        while let Some(ev) = conn.poll_event() {
            if matches!(ev, ConnEvent::Dead { .. }) {
                dead = true;
            }
            if hub.send(HubMsg::Event(id, ev)).await.is_err() {
                return conn.is_registered();
            }
        }
        if dead {
            return conn.is_registered();
        }
        let timer = conn
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let timer = quit_deadline.map_or(timer, |q| q.min(timer));
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => conn.handle_closed(),
                Ok(n) => conn.handle_bytes(&buf[..n], Instant::now()),
            },
            c = rx.recv(), if quit_deadline.is_none() => match c {
                Some(ConnCmd::Send { target, text, notice, token }) => conn.send_text(&target, &text, notice, token, Instant::now()),
                Some(ConnCmd::Join(ch)) => conn.join(&ch),
                Some(ConnCmd::Userhost(n)) => conn.userhost(&n),
                Some(ConnCmd::Whois(n)) => conn.whois(&n),
                Some(ConnCmd::Away(a)) => conn.set_away(a.as_deref()),
                Some(ConnCmd::Quit(r)) => {
                    *quitting = true;
                    conn.quit(&r);
                    quit_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                }
                None => {
                    *quitting = true;
                    conn.quit("gateway stopped");
                    quit_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                }
            },
            _ = tokio::time::sleep_until(timer) => {
                if quit_deadline.is_some_and(|q| tokio::time::Instant::now() >= q) {
                    conn.handle_closed();
                } else {
                    conn.handle_timeout(Instant::now());
                }
            }
        }
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

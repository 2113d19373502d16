//! The hub task: it owns the adapter's state (the bot and puppet connections, the
//! pending sends, the presence watches) and handles one message at a time from the
//! handle, the connection tasks and the ticker.

mod inbound;
mod outbound;

use cpim_core::StatusCode;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpim_core::adapter::LinkStatus;
use cpim_core::{Address, Outcome, Scheme, TransId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::conn::ConnSettings;
use crate::mapping::IrcPresence;
use crate::proto::nick_eq;

use super::task::conn_task;
use super::{ConnCmd, HubMsg, IrcConfig, Shared};

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

pub(super) struct Hub {
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
    pub(super) fn new(shared: Arc<Shared>, me: mpsc::Sender<HubMsg>) -> Hub {
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

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<HubMsg>) {
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
                            StatusCode::SERVICE_UNAVAILABLE,
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

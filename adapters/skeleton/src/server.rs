//! The thin tokio layer: a TCP listener (admitting connections through
//! `cpim_listen::CappedListener`: caps per source and in total, backoff on EMFILE), one
//! task per connection driving a [`Session`], a registry user -> connection for
//! deliveries, and the [`Adapter`] handle.

use cpim_core::StatusCode;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpim_core::adapter::{Adapter, BoxFuture, Ingress, LinkStatus};
use cpim_core::model::{Operation, Outcome};
use cpim_core::Address;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::session::{Event, Session, SessionConfig};

/// `[skel]` in the gateway config.
// ADAPT: rename (`XConfig`), keep `deny_unknown_fields` and a runnable `Default`; durations
// carry their unit in the key name.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SkelConfig {
    /// The adapter's name in `adapters`, logs and metrics.
    pub name: String,
    /// Where clients connect (port 0: any free port, see [`SkelHandle::local_addr`]).
    pub listen: SocketAddr,
    /// The domain of SKEL users (`im:alice@<domain>`); the adapter serves it.
    pub domain: String,
    /// user -> secret. Empty: nobody can log in.
    pub accounts: BTreeMap<String, String>,
    /// Longest accepted line; longer ones get `ERR - 413` and are skipped.
    pub max_line_bytes: usize,
    /// Silence before the gateway PINGs a client.
    pub keepalive_secs: u64,
    /// Silence after that PING before the connection is closed.
    pub keepalive_timeout_secs: u64,
    /// How long a delivery waits for the client's OK/ERR before it is a 408.
    pub deliver_timeout_ms: u64,
    /// `expires` of a state a client publishes with PRES.
    pub publish_expires_secs: u32,
}

impl Default for SkelConfig {
    fn default() -> Self {
        SkelConfig {
            name: "skel".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            domain: "skel.localhost".into(),
            accounts: BTreeMap::new(),
            max_line_bytes: 4096,
            keepalive_secs: 60,
            keepalive_timeout_secs: 20,
            deliver_timeout_ms: 10_000,
            publish_expires_secs: 3600,
        }
    }
}

/// Errors of this layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SkelError {
    /// A config value is unusable.
    #[error("skel config: {0}")]
    Config(String),
    /// The listener could not be bound.
    #[error("skel: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A command from the handle to one connection's task.
type Deliver = (Operation, oneshot::Sender<Outcome>);

#[derive(Debug)]
struct Shared {
    name: String,
    domain: String,
    local_addr: SocketAddr,
    /// Logged-in user -> (connection id, its command channel); the latest login wins.
    registry: Mutex<HashMap<String, (u64, mpsc::Sender<Deliver>)>>,
}

/// The running adapter.
#[derive(Debug)]
pub struct SkelHandle {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    listener: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Validates `config`, binds the listener and starts accepting clients.
pub async fn start(config: SkelConfig, ingress: Arc<dyn Ingress>) -> Result<SkelHandle, SkelError> {
    if config.max_line_bytes < 64 {
        return Err(SkelError::Config(
            "max_line_bytes must be at least 64".into(),
        ));
    }
    if config.keepalive_secs == 0 || config.deliver_timeout_ms == 0 {
        return Err(SkelError::Config(
            "keepalive_secs and deliver_timeout_ms must be positive".into(),
        ));
    }
    if Address::parse(&format!("im:x@{}", config.domain)).is_err() {
        return Err(SkelError::Config(format!(
            "domain {:?} is not a domain",
            config.domain
        )));
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| SkelError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| SkelError::Bind {
        addr: config.listen,
        source,
    })?;
    let shared = Arc::new(Shared {
        name: config.name.clone(),
        domain: config.domain.to_ascii_lowercase(),
        local_addr,
        registry: Mutex::new(HashMap::new()),
    });
    let session_cfg = SessionConfig {
        domain: shared.domain.clone(),
        accounts: config.accounts.into_iter().collect(),
        max_line_bytes: config.max_line_bytes,
        keepalive: Duration::from_secs(config.keepalive_secs),
        keepalive_timeout: Duration::from_secs(config.keepalive_timeout_secs),
        deliver_timeout: Duration::from_millis(config.deliver_timeout_ms),
        publish_expires_secs: config.publish_expires_secs,
    };
    let (stop, stop_rx) = watch::channel(false);
    // ADAPT: make the caps configurable (`max_connections_per_source`, `max_connections`).
    let listener = cpim_listen::CappedListener::new(
        listener,
        cpim_core::connlimit::ConnLimits::default(),
        "skeleton",
    );
    let task = tokio::spawn(accept_loop(
        listener,
        session_cfg,
        shared.clone(),
        ingress,
        stop_rx,
    ));
    Ok(SkelHandle {
        shared,
        stop,
        listener: tokio::sync::Mutex::new(Some(task)),
    })
}

// ADAPT: a protocol where the gateway is the client (IRC) replaces the listener with a
// connect loop with backoff, and reports the link as down while it is not connected.
async fn accept_loop(
    listener: cpim_listen::CappedListener,
    cfg: SessionConfig,
    shared: Arc<Shared>,
    ingress: Arc<dyn Ingress>,
    mut stop: watch::Receiver<bool>,
) {
    static CONN_IDS: AtomicU64 = AtomicU64::new(1);
    let mut conns = JoinSet::new();
    let mut listener = listener;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            // Only admitted connections (per-source and total caps); accept errors
            // (out of descriptors) back off inside `accept`.
            (stream, _, permit) = listener.accept() => {
                let id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
                let s = Session::new(cfg.clone(), id, Instant::now());
                let conn = connection(stream, s, id, shared.clone(), ingress.clone(), stop.clone());
                conns.spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn connection(
    mut stream: TcpStream,
    mut s: Session,
    conn_id: u64,
    shared: Arc<Shared>,
    ingress: Arc<dyn Ingress>,
    mut stop: watch::Receiver<bool>,
) {
    let (deliver_tx, mut deliver_rx) = mpsc::channel::<Deliver>(64);
    // Bounded, like every channel fed from the network: a submitter waits for room.
    let (outcome_tx, mut outcome_rx) = mpsc::channel::<Outcome>(64);
    let mut waiting: HashMap<u64, oneshot::Sender<Outcome>> = HashMap::new();
    let mut next_key = 0u64;
    let mut buf = vec![0u8; 8192];
    loop {
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::LoggedIn(user) => {
                    shared
                        .registry
                        .lock()
                        .unwrap()
                        .insert(user, (conn_id, deliver_tx.clone()));
                }
                Event::Submit(op) => {
                    // ADAPT: rate-limit submissions (cpim-json's token bucket) before
                    // exposing the adapter to untrusted clients.
                    let fut = ingress.submit(&shared.name, op);
                    let tx = outcome_tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(fut.await).await;
                    });
                }
                Event::Delivered(key, outcome) => {
                    if let Some(tx) = waiting.remove(&key) {
                        let _ = tx.send(outcome);
                    }
                }
                Event::Closed(_) => {}
            }
        }
        if let Some(out) = s.poll_transmit() {
            if stream.write_all(out.as_bytes()).await.is_err() {
                s.close("write failed");
                continue;
            }
        }
        if s.is_closed() {
            break;
        }
        let deadline = s.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => s.close("connection closed by the client"),
                Ok(n) => s.handle_bytes(&buf[..n], Instant::now()),
            },
            Some((op, tx)) = deliver_rx.recv() => {
                next_key += 1;
                waiting.insert(next_key, tx);
                s.deliver(next_key, &op, Instant::now());
            }
            Some(o) = outcome_rx.recv() => s.handle_outcome(&o),
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => s.handle_timeout(Instant::now()),
            _ = stop.changed() => s.close("adapter shutting down"),
        }
    }
    if let Some(user) = s.user() {
        let mut reg = shared.registry.lock().unwrap();
        if reg.get(user).is_some_and(|(id, _)| *id == conn_id) {
            reg.remove(user);
        }
    }
    // Deliveries that raced with the close: the session is gone, so the user is not connected.
    deliver_rx.close();
    while let Ok((op, tx)) = deliver_rx.try_recv() {
        let _ = tx.send(Outcome::failure(
            op.trans_id(),
            StatusCode::TEMPORARILY_UNAVAILABLE,
            "user not connected",
        ));
    }
    let _ = stream.shutdown().await;
}

impl SkelHandle {
    /// The bound listener address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Stops accepting, closes every session (their waiting deliveries resolve with 408)
    /// and waits for the tasks to end.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.listener.lock().await.take() {
            let _ = t.await;
        }
    }
}

impl Adapter for SkelHandle {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn serves(&self, address: &Address) -> bool {
        address.domain == self.shared.domain
    }

    // ADAPT: true only if your protocol answers every message (SKEL: OK/ERR); also
    // override `carries_cpim` if it can carry a `message/cpim` body intact.
    fn acknowledges_messages(&self) -> bool {
        true
    }

    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let tid = op.trans_id();
            // ADAPT: which address your protocol delivers to (here: the user part).
            let user = op
                .destination()
                .filter(|a| a.domain == self.shared.domain)
                .and_then(|a| a.user.clone());
            let Some(user) = user else {
                return Outcome::failure(tid, StatusCode::NOT_FOUND, "not a SKEL address");
            };
            let conn = self
                .shared
                .registry
                .lock()
                .unwrap()
                .get(&user)
                .map(|(_, tx)| tx.clone());
            let Some(conn) = conn else {
                return Outcome::failure(
                    tid,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "user not connected",
                );
            };
            let (tx, rx) = oneshot::channel();
            if conn.send((op, tx)).await.is_err() {
                return Outcome::failure(
                    tid,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "user not connected",
                );
            }
            // The session resolves it (answer, 408 or close); a vanished task is a 503.
            rx.await.unwrap_or_else(|_| {
                Outcome::failure(tid, StatusCode::SERVICE_UNAVAILABLE, "session ended")
            })
        })
    }

    fn links(&self) -> Vec<LinkStatus> {
        let up = !*self.stop.borrow();
        vec![LinkStatus {
            name: format!("skel-tcp:{}", self.shared.local_addr),
            up,
            queued: 0,
            last_error: None,
        }]
    }
}

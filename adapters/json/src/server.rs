//! The tokio layer of the JSON adapter: listeners, one task per connection, and the
//! registry of logged-in sessions that [`Adapter::deliver`] looks targets up in.
//!
//! Listeners admit connections through `cpim_listen::CappedListener` (one gate for the
//! TCP and WebSocket listeners): `max_connections_per_source` per source address (per
//! /64 for IPv6) and `max_connections` in all; past a cap a connection is closed at
//! once. Deadlines that trickled bytes do not move: the WebSocket opening handshake and
//! `hello` within `hello_timeout_ms` of connecting, and every frame complete within
//! `frame_timeout_ms` of its first byte.

use cpim_core::StatusCode;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpim_core::adapter::{Adapter, BoxFuture, Ingress, LinkStatus};
use cpim_core::{Address, Operation, Outcome};
use cpim_listen::CappedListener;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::codec::LineDecoder;
use crate::frame::Frame;
use crate::session::{Event, Session, SessionLimits};
use crate::ws::{self, WsDecoder, WsEvent};
use crate::FrameError;

/// One login token and the addresses a session opened with it may send as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The secret the client sends in `hello`.
    pub token: String,
    /// Addresses bound to the token (`im:alice@corp.example`); the first is the default
    /// sender. The session receives what is addressed to any of them.
    pub addresses: Vec<String>,
}

/// Configuration of the JSON adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonConfig {
    /// Adapter name for routing, logs and metrics.
    pub name: String,
    /// Newline-delimited JSON over TCP; `None` disables it.
    pub tcp_listen: Option<SocketAddr>,
    /// The same frames over WebSocket; `None` disables it.
    pub ws_listen: Option<SocketAddr>,
    /// Domains this adapter serves (besides every address bound to a token).
    pub domains: Vec<String>,
    /// Login tokens.
    pub tokens: Vec<TokenConfig>,
    /// Largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Sustained operation frames per second and session.
    pub rate_per_sec: f64,
    /// Burst above the rate.
    pub rate_burst: u32,
    /// How long a client has to answer a delivered operation.
    pub deliver_timeout_ms: u64,
    /// How long after connecting `hello` must arrive.
    pub hello_timeout_ms: u64,
    /// A frame (line or WebSocket message) must be complete this long after its first
    /// byte, or the connection is closed.
    pub frame_timeout_ms: u64,
    /// Connections open at once per source address (per /64 for IPv6), TCP and
    /// WebSocket together.
    pub max_connections_per_source: usize,
    /// Connections open at once in all. Each costs a descriptor, a 16 KiB read buffer
    /// and up to `max_frame_bytes` of partial frame.
    pub max_connections: usize,
}

impl Default for JsonConfig {
    fn default() -> Self {
        JsonConfig {
            name: "json".into(),
            tcp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7700))),
            ws_listen: None,
            domains: Vec::new(),
            tokens: Vec::new(),
            max_frame_bytes: 64 * 1024,
            rate_per_sec: 20.0,
            rate_burst: 40,
            deliver_timeout_ms: 10_000,
            hello_timeout_ms: 10_000,
            frame_timeout_ms: 10_000,
            max_connections_per_source: 32,
            max_connections: 1024,
        }
    }
}

/// Errors of the tokio layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The configuration is not usable.
    #[error("invalid JSON adapter config: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

enum Cmd {
    Deliver(Box<Operation>, oneshot::Sender<Outcome>),
    SubmitDone(Outcome),
}

type Key = (Option<String>, String);

/// Logged-in sessions by address: (session id, command channel).
type Registry = HashMap<Key, Vec<(u64, mpsc::Sender<Cmd>)>>;

fn key(a: &Address) -> Key {
    (a.user.clone(), a.domain.clone())
}

struct Shared {
    name: String,
    domains: Vec<String>,
    tokens: HashMap<String, Vec<Address>>,
    limits: SessionLimits,
    max_frame: usize,
    frame_timeout: Duration,
    ingress: Arc<dyn Ingress>,
    registry: Mutex<Registry>,
    next_session: AtomicU64,
    shutdown: watch::Sender<bool>,
}

/// The running adapter.
pub struct JsonHandle {
    shared: Arc<Shared>,
    tcp_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for JsonHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonHandle")
            .field("name", &self.shared.name)
            .field("tcp_addr", &self.tcp_addr)
            .field("ws_addr", &self.ws_addr)
            .finish()
    }
}

/// Starts the adapter: binds the listeners and accepts sessions.
pub async fn start(config: JsonConfig, ingress: Arc<dyn Ingress>) -> Result<JsonHandle, JsonError> {
    let mut tokens = HashMap::new();
    for t in &config.tokens {
        if t.addresses.is_empty() {
            return Err(JsonError::Config(format!(
                "token {:?}... has no addresses",
                t.token.get(..2).unwrap_or("")
            )));
        }
        let addrs = t
            .addresses
            .iter()
            .map(|a| {
                Address::parse(a).map_err(|e| JsonError::Config(format!("address {a:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        tokens.insert(t.token.clone(), addrs);
    }
    if config.max_frame_bytes < 256 || config.rate_per_sec <= 0.0 || config.rate_burst == 0 {
        return Err(JsonError::Config(
            "max_frame_bytes must be >= 256, rate_per_sec > 0 and rate_burst > 0".into(),
        ));
    }
    let (shutdown, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        name: config.name.clone(),
        domains: config
            .domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        tokens,
        limits: SessionLimits {
            rate_per_sec: config.rate_per_sec,
            rate_burst: config.rate_burst,
            deliver_timeout: Duration::from_millis(config.deliver_timeout_ms),
            hello_timeout: Duration::from_millis(config.hello_timeout_ms),
        },
        max_frame: config.max_frame_bytes,
        frame_timeout: Duration::from_millis(config.frame_timeout_ms.max(1)),
        ingress,
        registry: Mutex::new(HashMap::new()),
        next_session: AtomicU64::new(1),
        shutdown,
    });
    let mut tasks = Vec::new();
    let mut bound = [None, None];
    let gate = cpim_core::connlimit::ConnGate::new(cpim_core::connlimit::ConnLimits {
        per_source: config.max_connections_per_source,
        total: config.max_connections,
    });
    for (i, (addr, is_ws)) in [(config.tcp_listen, false), (config.ws_listen, true)]
        .into_iter()
        .enumerate()
    {
        let Some(addr) = addr else { continue };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| JsonError::Bind { addr, source })?;
        bound[i] = listener.local_addr().ok();
        let name = if is_ws { "json-ws" } else { "json-tcp" };
        let listener = CappedListener::with_gate(listener, gate.clone(), name);
        tasks.push(tokio::spawn(accept_loop(listener, is_ws, shared.clone())));
    }
    Ok(JsonHandle {
        shared,
        tcp_addr: bound[0],
        ws_addr: bound[1],
        tasks: Mutex::new(tasks),
    })
}

impl JsonHandle {
    /// The bound TCP address (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound WebSocket address.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// Logged-in sessions.
    pub fn sessions(&self) -> usize {
        let reg = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<u64> = reg.values().flatten().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Stops accepting, closes every session (deliveries still waiting resolve with
    /// 480) and waits for the listeners to stop.
    pub async fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Adapter for JsonHandle {
    fn name(&self) -> &str {
        &self.shared.name
    }

    /// Every `message` request is answered with the target's outcome.
    fn acknowledges_messages(&self) -> bool {
        true
    }

    fn serves(&self, address: &Address) -> bool {
        self.shared.domains.contains(&address.domain)
            || self
                .shared
                .tokens
                .values()
                .flatten()
                .any(|a| a.same_user(address))
    }

    fn carries_cpim(&self) -> bool {
        true
    }

    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome> {
        let trans_id = op.trans_id();
        let target = op.destination().map(key);
        let tx = target.and_then(|k| {
            let reg = self
                .shared
                .registry
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            reg.get(&k).and_then(|v| v.last()).map(|(_, tx)| tx.clone())
        });
        Box::pin(async move {
            let Some(tx) = tx else {
                return Outcome::failure(
                    trans_id,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "Temporarily Unavailable: no session for this address",
                );
            };
            let (otx, orx) = oneshot::channel();
            if tx.send(Cmd::Deliver(Box::new(op), otx)).await.is_err() {
                return Outcome::failure(
                    trans_id,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "Temporarily Unavailable: session closed",
                );
            }
            orx.await.unwrap_or_else(|_| {
                Outcome::failure(
                    trans_id,
                    StatusCode::TEMPORARILY_UNAVAILABLE,
                    "Temporarily Unavailable: session closed",
                )
            })
        })
    }

    fn links(&self) -> Vec<LinkStatus> {
        let mut v = Vec::new();
        for (addr, kind) in [(self.tcp_addr, "tcp"), (self.ws_addr, "ws")] {
            if let Some(a) = addr {
                v.push(LinkStatus {
                    name: format!("json-{kind}:{a}"),
                    up: !*self.shared.shutdown.borrow(),
                    queued: 0,
                    last_error: None,
                });
            }
        }
        v
    }
}

async fn accept_loop(mut listener: CappedListener, is_ws: bool, shared: Arc<Shared>) {
    let mut stop = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            (stream, _, permit) = listener.accept() => {
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection(stream, is_ws, shared).await;
                    drop(permit);
                });
            }
        }
    }
}

/// The wire format of one connection.
enum Wire {
    Lines(LineDecoder),
    Ws(WsDecoder),
}

fn write_frame(wire: &Wire, frame: &Frame, out: &mut Vec<u8>) {
    // Serializing our own frame types cannot fail.
    let json = serde_json::to_vec(frame).unwrap_or_default();
    match wire {
        Wire::Lines(_) => {
            out.extend_from_slice(&json);
            out.push(b'\n');
        }
        Wire::Ws(_) => ws::encode_frame(ws::opcode::TEXT, &json, None, out),
    }
}

async fn connection(mut stream: TcpStream, is_ws: bool, shared: Arc<Shared>) {
    let max = shared.max_frame;
    if is_ws {
        // Opening handshake (RFC 6455 s4.2), bounded in size and time.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        let deadline = tokio::time::Instant::now() + shared.limits.hello_timeout;
        loop {
            let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return,
            };
            buf.extend_from_slice(&chunk[..n]);
            match ws::server_handshake(&buf) {
                Ok(None) => continue,
                Ok(Some((resp, used))) => {
                    if stream.write_all(&resp).await.is_err() {
                        return;
                    }
                    buf.drain(..used);
                    break;
                }
                Err(e) => {
                    let _ = stream
                        .write_all(&ws::handshake_refusal(&e.to_string()))
                        .await;
                    return;
                }
            }
        }
        run(stream, Wire::Ws(WsDecoder::new(max)), buf, shared).await
    } else {
        run(
            stream,
            Wire::Lines(LineDecoder::new(max)),
            Vec::new(),
            shared,
        )
        .await
    }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    mut wire: Wire,
    early: Vec<u8>,
    shared: Arc<Shared>,
) {
    let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let max = shared.max_frame;
    let mut session = Session::new(id, shared.limits.clone(), Instant::now());
    let (tx, mut rx) = mpsc::channel::<Cmd>(64);
    let mut stop = shared.shutdown.subscribe();
    let mut waiting: HashMap<u64, oneshot::Sender<Outcome>> = HashMap::new();
    let mut next_token = 0u64;
    let mut registered: Vec<Key> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    let mut input = early;
    let mut closing = false;
    let mut ws_close: Option<u16> = None;
    // When the first byte of the unfinished frame arrived (the frame deadline's start).
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        // Feed what was read into the decoder and the session.
        if !input.is_empty() {
            let now = Instant::now();
            let mut pongs: Vec<Vec<u8>> = Vec::new();
            let mut completed = 0usize;
            match &mut wire {
                Wire::Lines(d) => d.feed(&input, |f| {
                    completed += 1;
                    session.handle_frame(f, &shared.tokens, now)
                }),
                Wire::Ws(d) => d.feed(&input, |e| {
                    // a whole message completes a frame; control frames do not (they
                    // may come between the fragments of one message)
                    if matches!(e, WsEvent::Message(_) | WsEvent::TooLarge) {
                        completed += 1;
                    }
                    match e {
                        WsEvent::Message(m) => session.handle_frame(Ok(m), &shared.tokens, now),
                        WsEvent::TooLarge => session.handle_frame(
                            Err(FrameError::TooLarge { limit: max }),
                            &shared.tokens,
                            now,
                        ),
                        WsEvent::Ping(p) => pongs.push(p.to_vec()),
                        WsEvent::Close(_) => ws_close = Some(1000),
                        WsEvent::ProtocolError(why) => {
                            ws_close = Some(1002);
                            session.handle_frame(
                                Err(FrameError::Protocol(why)),
                                &shared.tokens,
                                now,
                            )
                        }
                    }
                }),
            }
            for p in pongs {
                ws::encode_frame(ws::opcode::PONG, &p, None, &mut out);
            }
            input.clear();
            let pending = match &wire {
                Wire::Lines(d) => d.pending(),
                Wire::Ws(d) => d.pending(),
            };
            // the clock runs from the first byte of the unfinished frame: a frame that
            // completed restarts it for the bytes after it
            partial_since = match (pending, partial_since) {
                (0, _) => None,
                (_, Some(t)) if completed == 0 => Some(t),
                _ => Some(tokio::time::Instant::now()),
            };
        }
        // Carry out what the session asks for.
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Send(f) => write_frame(&wire, &f, &mut out),
                Event::LoggedIn(addrs) => {
                    let mut reg = shared.registry.lock().unwrap_or_else(|e| e.into_inner());
                    for a in addrs {
                        let k = key(&a);
                        reg.entry(k.clone()).or_default().push((id, tx.clone()));
                        registered.push(k);
                    }
                }
                Event::Submit(op) => {
                    let fut = shared.ingress.submit(&shared.name, op);
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let outcome = fut.await;
                        let _ = tx.send(Cmd::SubmitDone(outcome)).await;
                    });
                }
                Event::Delivered(token, outcome) => {
                    if let Some(w) = waiting.remove(&token) {
                        let _ = w.send(outcome);
                    }
                }
                Event::Close => closing = true,
            }
        }
        if ws_close.is_some() && !closing {
            closing = true;
        }
        if closing {
            // RFC 6455 s5.5.1: answer a close with a close; 1002 after a framing
            // violation, 1008 after a fatal protocol error.
            if let Wire::Ws(_) = wire {
                let code = ws_close.unwrap_or(1008);
                ws::encode_frame(ws::opcode::CLOSE, &code.to_be_bytes(), None, &mut out);
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if closing {
            break;
        }
        let frame_deadline = partial_since.map(|t| t + shared.frame_timeout);
        if frame_deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
            // a frame trickled in too slowly: close without waiting for the rest
            break;
        }
        let timer = session
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let timer = frame_deadline.map_or(timer, |d| d.min(timer));
        tokio::select! {
            r = stream.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => input.extend_from_slice(&chunk[..n]),
            },
            Some(cmd) = rx.recv() => match cmd {
                Cmd::Deliver(op, reply) => {
                    next_token += 1;
                    waiting.insert(next_token, reply);
                    session.deliver(*op, next_token, Instant::now());
                }
                Cmd::SubmitDone(o) => session.handle_submit_outcome(o),
            },
            _ = tokio::time::sleep_until(timer) => session.handle_timeout(Instant::now()),
            _ = stop.changed() => {
                if let Wire::Ws(_) = wire {
                    ws::encode_frame(ws::opcode::CLOSE, &1001u16.to_be_bytes(), None, &mut out);
                    let _ = stream.write_all(&out).await;
                }
                break;
            }
        }
    }
    // Deregister, then answer every delivery still waiting.
    {
        let mut reg = shared.registry.lock().unwrap_or_else(|e| e.into_inner());
        for k in registered {
            if let Some(v) = reg.get_mut(&k) {
                v.retain(|(sid, _)| *sid != id);
                if v.is_empty() {
                    reg.remove(&k);
                }
            }
        }
    }
    session.close();
    while let Some(ev) = session.poll_event() {
        if let Event::Delivered(token, outcome) = ev {
            if let Some(w) = waiting.remove(&token) {
                let _ = w.send(outcome);
            }
        }
    }
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        if let Cmd::Deliver(op, reply) = cmd {
            let _ = reply.send(Outcome::failure(
                op.trans_id(),
                StatusCode::TEMPORARILY_UNAVAILABLE,
                "client disconnected",
            ));
        }
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_refuses_unknown_keys() {
        let c: JsonConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, JsonConfig::default());
        let c: JsonConfig = serde_json::from_str(
            r#"{"ws_listen":"127.0.0.1:7701","tokens":[{"token":"t","addresses":["im:a@b"]}]}"#,
        )
        .unwrap();
        assert_eq!(c.tokens[0].addresses, ["im:a@b"]);
        let e = serde_json::from_str::<JsonConfig>(r#"{"tcp_listn":"127.0.0.1:1"}"#).unwrap_err();
        assert!(e.to_string().contains("tcp_listn"), "{e}");
    }
}

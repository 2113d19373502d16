//! The generator's roles, each on its own OS thread with a `current_thread` tokio runtime:
//! SIP UAC over UDP or TCP, SIP UAS over UDP, XEP-0114 component server and client.
//!
//! Senders take [`SendJob`]s (step, rate, count) and answer with a [`SendReport`]; the
//! paced loop patches one [`Template`] in place per message and sends the batch that is
//! due back to back before sleeping again. Receivers drain their socket without yielding
//! until it would block.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::pacing::Pacer;
use crate::probe::Probe;
use crate::sip;
use crate::template::{find_tag, tag, Template};
use crate::xmpp;

/// Largest batch sent per wake-up.
pub const MAX_BATCH: u64 = 4096;
/// Socket buffer asked for (capped by the kernel's rmem_max/wmem_max).
pub const SOCKET_BUFFER: usize = 4 << 20;

/// A run of `count` messages at `rate` per second, tagged with `step`.
#[derive(Debug)]
pub struct SendJob {
    /// Step id (0..=99).
    pub step: u8,
    /// Messages per second.
    pub rate: u64,
    /// Messages in all.
    pub count: u64,
    /// Where the report goes.
    pub done: oneshot::Sender<SendReport>,
}

/// What a sender did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SendReport {
    /// Messages sent.
    pub sent: u64,
    /// Seconds from the first to the last send.
    pub seconds: f64,
    /// Send errors (the message is then missing at the far end).
    pub send_errors: u64,
    /// Largest lag behind the schedule, microseconds (the generator falling behind).
    pub max_lag_us: u64,
}

/// A handle to a sender thread.
#[derive(Debug, Clone)]
pub struct Sender {
    tx: mpsc::UnboundedSender<SendJob>,
}

impl Sender {
    /// Runs a job and waits for its report.
    pub fn run(&self, step: u8, rate: u64, count: u64) -> io::Result<SendReport> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(SendJob {
                step,
                rate,
                count,
                done,
            })
            .map_err(|_| io::Error::other("sender thread is gone"))?;
        rx.blocking_recv()
            .map_err(|_| io::Error::other("sender thread is gone"))
    }
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Starts a named thread running `f` on its own current_thread runtime.
fn spawn_role<F, Fut>(name: &str, f: F) -> io::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let rt = runtime()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || rt.block_on(f()))?;
    Ok(())
}

/// A UDP socket on `bind` with large buffers, non-blocking for tokio.
pub fn udp_socket(bind: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(bind),
        socket2::Type::DGRAM,
        None,
    )?;
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.bind(&bind.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

async fn paced<F>(job: &SendJob, probe: &Probe, mut send_batch: F) -> SendReport
where
    F: AsyncBatch,
{
    let mut pacer = Pacer::new(job.rate, job.count.min(probe.capacity()));
    let start = Instant::now();
    let mut rep = SendReport::default();
    while !pacer.done() {
        let elapsed = start.elapsed().as_nanos() as u64;
        let first = pacer.sent();
        let n = pacer.batch(elapsed, MAX_BATCH);
        if n > 0 {
            let due = crate::pacing::due_at_ns(first, job.rate);
            rep.max_lag_us = rep.max_lag_us.max(elapsed.saturating_sub(due) / 1000);
            rep.send_errors += send_batch.send(job.step, first, n, probe).await;
        }
        let next = pacer.next_due_ns();
        if next != u64::MAX {
            let now = start.elapsed().as_nanos() as u64;
            if next > now {
                tokio::time::sleep(Duration::from_nanos(next - now)).await;
            } else if n == MAX_BATCH {
                tokio::task::yield_now().await;
            }
        }
    }
    rep.sent = pacer.sent();
    rep.seconds = start.elapsed().as_secs_f64();
    rep
}

/// Sends `n` messages with sequence numbers `first..first + n`; returns send errors.
trait AsyncBatch {
    async fn send(&mut self, step: u8, first: u64, n: u64, probe: &Probe) -> u64;
}

struct UdpBatch<'a> {
    sock: &'a UdpSocket,
    tpl: &'a mut [Template],
}

impl AsyncBatch for UdpBatch<'_> {
    async fn send(&mut self, step: u8, first: u64, n: u64, probe: &Probe) -> u64 {
        let mut errors = 0;
        for seq in first..first + n {
            probe.on_sent(seq);
            let k = self.tpl.len();
            let msg = self.tpl[(seq % k as u64) as usize].patch(tag(step, seq));
            let r = match self.sock.try_send(msg) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.sock.send(msg).await,
                r => r,
            };
            if r.is_err() {
                errors += 1;
            }
        }
        errors
    }
}

struct StreamBatch<'a, W> {
    w: &'a Mutex<Option<W>>,
    tpl: &'a mut Template,
    buf: Vec<u8>,
}

/// Runs each job of `rx` to its end, the messages written paced to the stream in `w`, and
/// sends back its report.
async fn send_jobs<W: tokio::io::AsyncWrite + Unpin>(
    rx: &mut mpsc::UnboundedReceiver<SendJob>,
    w: &Mutex<Option<W>>,
    tpl: &mut Template,
    probe: &Probe,
) {
    while let Some(job) = rx.recv().await {
        let batch = StreamBatch {
            w,
            tpl: &mut *tpl,
            buf: Vec::with_capacity(1 << 20),
        };
        let rep = paced(&job, probe, batch).await;
        let _ = job.done.send(rep);
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> AsyncBatch for StreamBatch<'_, W> {
    async fn send(&mut self, step: u8, first: u64, n: u64, probe: &Probe) -> u64 {
        self.buf.clear();
        for seq in first..first + n {
            probe.on_sent(seq);
            self.buf.extend_from_slice(self.tpl.patch(tag(step, seq)));
        }
        let mut g = self.w.lock().await;
        match g.as_mut() {
            Some(w) => match w.write_all(&self.buf).await {
                Ok(()) => 0,
                Err(_) => {
                    *g = None;
                    n
                }
            },
            None => n,
        }
    }
}

/// `CPIM_BENCH_TRACE=1`: print some of what arrives (debugging a workload).
fn trace() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var_os("CPIM_BENCH_TRACE").is_some())
}

/// Handles one SIP response: its status and tag go to the probe.
#[inline]
fn on_sip_response(msg: &[u8], probe: &Probe) {
    if let Some(code) = sip::status_code(msg) {
        if code >= 200 {
            probe.on_answer(sip::response_tag(msg), code);
        }
    }
}

/// A SIP UAC over UDP: sends MESSAGEs from `template` to `target` from a socket bound to
/// `bind`, and reads the responses. Returns the sender handle and the local address.
pub fn udp_uac(
    bind: SocketAddr,
    target: SocketAddr,
    template: impl FnOnce(SocketAddr) -> Template + Send + 'static,
    probe: Arc<Probe>,
) -> io::Result<(Sender, SocketAddr)> {
    udp_uac_multi(bind, target, move |local| vec![template(local)], probe)
}

/// A SIP UAC over UDP with several templates: message `seq` comes from template
/// `seq % templates.len()` (e.g. one PUBLISH per presentity).
pub fn udp_uac_multi(
    bind: SocketAddr,
    target: SocketAddr,
    template: impl FnOnce(SocketAddr) -> Vec<Template> + Send + 'static,
    probe: Arc<Probe>,
) -> io::Result<(Sender, SocketAddr)> {
    let std_sock = udp_socket(bind)?;
    std_sock.connect(target)?;
    let local = std_sock.local_addr()?;
    let recv_sock = std_sock.try_clone()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<SendJob>();
    let p = probe.clone();
    spawn_role("uac-udp-recv", move || async move {
        let Ok(sock) = UdpSocket::from_std(recv_sock) else {
            return;
        };
        let mut buf = vec![0u8; 65536];
        loop {
            match sock.recv(&mut buf).await {
                Ok(n) => on_sip_response(&buf[..n], &p),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(_) => return,
            }
            while let Ok(n) = sock.try_recv(&mut buf) {
                on_sip_response(&buf[..n], &p);
            }
        }
    })?;
    spawn_role("uac-udp-send", move || async move {
        let Ok(sock) = UdpSocket::from_std(std_sock) else {
            return;
        };
        let mut tpl = template(local);
        if tpl.is_empty() {
            return;
        }
        while let Some(job) = rx.recv().await {
            let rep = paced(
                &job,
                &probe,
                UdpBatch {
                    sock: &sock,
                    tpl: &mut tpl,
                },
            )
            .await;
            let _ = job.done.send(rep);
        }
    })?;
    Ok((Sender { tx }, local))
}

/// A SIP UAC over TCP: one connection to `target`; every due batch is one write.
pub fn tcp_uac(
    target: SocketAddr,
    template: impl FnOnce(SocketAddr) -> Template + Send + 'static,
    probe: Arc<Probe>,
) -> io::Result<(Sender, SocketAddr)> {
    let std_stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    std_stream.set_nodelay(true)?;
    std_stream.set_nonblocking(true)?;
    let local = std_stream.local_addr()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<SendJob>();
    spawn_role("uac-tcp", move || async move {
        let Ok(stream) = TcpStream::from_std(std_stream) else {
            return;
        };
        let (mut r, w) = stream.into_split();
        let w = Arc::new(Mutex::new(Some(w)));
        let p = probe.clone();
        tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
            let mut chunk = vec![0u8; 256 * 1024];
            loop {
                let n = match r.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let mut pos = 0;
                loop {
                    match sip::frame(&buf[pos..]) {
                        Ok(sip::Frame::Skip(k)) => pos += k,
                        Ok(sip::Frame::Complete(len)) => {
                            on_sip_response(&buf[pos..pos + len], &p);
                            pos += len;
                        }
                        Ok(sip::Frame::Partial) => break,
                        Err(_) => return,
                    }
                }
                buf.drain(..pos);
            }
        });
        let mut tpl = template(local);
        send_jobs(&mut rx, &w, &mut tpl, &probe).await;
    })?;
    Ok((Sender { tx }, local))
}

/// What the UAS does before answering.
#[derive(Debug, Clone, Default)]
pub struct UasOptions {
    /// REGISTER these `(user, domain)` at `registrar` from the UAS socket first (the
    /// gateway then sends to this socket as the user's contact).
    pub register: Vec<(String, String)>,
    /// The registrar (the gateway's SIP UDP address).
    pub registrar: Option<SocketAddr>,
    /// `(watcher, presentity)` SIP URIs: SUBSCRIBE (event presence) sent from the UAS
    /// socket before it starts answering (P3 watchers); the contact is the UAS.
    pub subscribe: Vec<(String, String)>,
    /// Go on (logging the shortfall) when some registrations or subscriptions fail or
    /// stay unanswered, instead of failing.
    pub best_effort: bool,
}

/// A SIP UAS over UDP on `bind`: answers 200 to every request but ACK; a MESSAGE's body
/// tag is a delivery, a NOTIFY's a notification. Registration and subscriptions in
/// `opts` are sent first and must all get a 2xx (checked, with a 5 s limit).
pub fn udp_uas(bind: SocketAddr, opts: UasOptions, probe: Arc<Probe>) -> io::Result<SocketAddr> {
    let std_sock = udp_socket(bind)?;
    let local = std_sock.local_addr()?;
    // Registration and subscriptions: blocking, before the responder starts.
    if let Some(reg) = opts.registrar {
        std_sock.set_nonblocking(false)?;
        std_sock.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut pending: Vec<Vec<u8>> = opts
            .register
            .iter()
            .enumerate()
            .map(|(i, (u, d))| {
                sip::register_request(
                    u,
                    d,
                    sip::Transport::Udp,
                    &local.to_string(),
                    i as u32 + 1,
                    3600,
                )
            })
            .collect();
        let l = local.to_string();
        pending.extend(
            opts.subscribe
                .iter()
                .enumerate()
                .map(|(i, (w, p))| sip::subscribe_request(w, p, &l, i as u64, 3600)),
        );
        let deadline = Instant::now() + Duration::from_secs(10 + pending.len() as u64 / 100);
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::new();
        let total = pending.len();
        let mut ok = 0usize;
        let mut failed: Vec<String> = Vec::new();
        let mut sent_at = 0usize;
        // Send in windows of 200 so as not to overrun the gateway's socket.
        while ok + failed.len() < total {
            if Instant::now() > deadline && opts.best_effort {
                eprintln!("[bench] UAS set-up: {ok} of {total} answered 2xx in time; going on");
                break;
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("registration/subscription: {ok} of {total} answered 2xx in time"),
                ));
            }
            while sent_at < total && sent_at < ok + failed.len() + 200 {
                std_sock.send_to(&pending[sent_at], reg)?;
                sent_at += 1;
            }
            match std_sock.recv_from(&mut buf) {
                Ok((n, src)) => {
                    let m = &buf[..n];
                    if let Some(code) = sip::status_code(m) {
                        if code >= 200 {
                            if (200..300).contains(&code) {
                                ok += 1;
                            } else {
                                failed.push(
                                    String::from_utf8_lossy(&m[..m.len().min(80)]).into_owned(),
                                );
                            }
                        }
                    } else if sip::write_response(m, 200, "OK", &mut out).is_ok() {
                        // an early NOTIFY
                        let _ = std_sock.send_to(&out, src);
                    }
                }
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e),
            }
        }
        if !failed.is_empty() && opts.best_effort {
            eprintln!(
                "[bench] UAS set-up: {} of {total} refused; going on",
                failed.len()
            );
        } else if !failed.is_empty() {
            return Err(io::Error::other(format!(
                "registration/subscription refused ({} of {total}): {}",
                failed.len(),
                failed[0]
            )));
        }
        std_sock.set_nonblocking(true)?;
    }
    spawn_role("uas-udp", move || async move {
        let Ok(sock) = UdpSocket::from_std(std_sock) else {
            return;
        };
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::with_capacity(2048);
        loop {
            let (n, src) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(_) => continue,
            };
            handle_uas(&sock, &buf[..n], src, &mut out, &probe);
            while let Ok((n, src)) = sock.try_recv_from(&mut buf) {
                handle_uas(&sock, &buf[..n], src, &mut out, &probe);
            }
        }
    })?;
    Ok(local)
}

#[inline]
fn handle_uas(sock: &UdpSocket, msg: &[u8], src: SocketAddr, out: &mut Vec<u8>, probe: &Probe) {
    if sip::is_response(msg) {
        return;
    }
    // Record first (the delivery instant is the arrival), then answer.
    match sip::method(msg) {
        b"MESSAGE" => probe.on_sip_delivered(sip::body_tag(msg), sip::branch_hash(msg)),
        b"NOTIFY" => {
            if trace() {
                eprintln!("[trace] UAS got: {}", String::from_utf8_lossy(msg));
            }
            if let Some(t) = sip::body_tag(msg) {
                probe.on_notification(Some(t));
            }
        }
        _ => {}
    }
    if sip::write_response(msg, 200, "OK", out).is_ok() {
        let _ = sock.try_send_to(out, src);
    }
}

/// The component server's shared writer (the current connection's write half).
pub type ComponentWriter = Arc<Mutex<Option<tokio::net::tcp::OwnedWriteHalf>>>;

/// Handle to the component server: the P2 sender (stanzas into the gateway) and a way
/// to send arbitrary stanzas (P3/P4 subscriptions).
#[derive(Debug, Clone)]
pub struct ComponentServer {
    /// Paced sender of `<message>`s on the current connection.
    pub sender: Sender,
    raw: mpsc::UnboundedSender<(Vec<u8>, oneshot::Sender<io::Result<()>>)>,
    /// Bound address.
    pub local: SocketAddr,
}

impl ComponentServer {
    /// Writes raw stanzas on the current connection.
    pub fn write(&self, bytes: Vec<u8>) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.raw
            .send((bytes, tx))
            .map_err(|_| io::Error::other("component server is gone"))?;
        rx.blocking_recv()
            .map_err(|_| io::Error::other("component server is gone"))?
    }
}

/// An XEP-0114 component server on `bind` for `domain` with `secret`. Pings and other
/// iq requests are answered with a result; `<message>` body tags are deliveries, error
/// stanzas errors, presence stanzas with a tag notifications. `template` makes the
/// `<message>`s the sender writes into the gateway (P2).
pub fn component_server(
    bind: SocketAddr,
    domain: &str,
    secret: &str,
    template: Template,
    probe: Arc<Probe>,
) -> io::Result<ComponentServer> {
    let std_l = std::net::TcpListener::bind(bind)?;
    std_l.set_nonblocking(true)?;
    let local = std_l.local_addr()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<SendJob>();
    let (raw_tx, mut raw_rx) =
        mpsc::unbounded_channel::<(Vec<u8>, oneshot::Sender<io::Result<()>>)>();
    let domain = domain.to_owned();
    let secret = secret.to_owned();
    spawn_role("component-server", move || async move {
        let Ok(listener) = TcpListener::from_std(std_l) else {
            return;
        };
        let writer: ComponentWriter = Arc::new(Mutex::new(None));
        let w2 = writer.clone();
        let p2 = probe.clone();
        tokio::spawn(async move {
            let mut tpl = template;
            send_jobs(&mut rx, &w2, &mut tpl, &p2).await;
        });
        let w3 = writer.clone();
        tokio::spawn(async move {
            while let Some((bytes, done)) = raw_rx.recv().await {
                let mut g = w3.lock().await;
                let r = match g.as_mut() {
                    Some(w) => w.write_all(&bytes).await,
                    None => Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "no component connection",
                    )),
                };
                let _ = done.send(r);
            }
        });
        let mut n_conn = 0u64;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            n_conn += 1;
            let (r, w) = stream.into_split();
            *writer.lock().await = Some(w);
            let id = format!("bench{n_conn}");
            tokio::spawn(serve_component(
                r,
                writer.clone(),
                xmpp::ServerSession::new(&domain, &secret, &id),
                probe.clone(),
            ));
        }
    })?;
    Ok(ComponentServer {
        sender: Sender { tx },
        raw: raw_tx,
        local,
    })
}

async fn serve_component(
    mut r: tokio::net::tcp::OwnedReadHalf,
    writer: ComponentWriter,
    mut session: xmpp::ServerSession,
    probe: Arc<Probe>,
) {
    let mut chunk = vec![0u8; 256 * 1024];
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        out.clear();
        let was_ready = session.state() == xmpp::State::Ready;
        let res = session.handle_input(&chunk[..n], &mut out, |el, out| match xmpp::kind(el) {
            xmpp::Kind::Message => probe.on_delivered(find_tag(el, sip::BODY_MARK)),
            xmpp::Kind::Error => probe.on_error(),
            xmpp::Kind::Presence => {
                if trace() && probe.presence_stanzas.load(Ordering::Relaxed) < 5 {
                    eprintln!(
                        "[trace] component server got: {}",
                        String::from_utf8_lossy(el)
                    );
                }
                probe.presence_stanzas.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = find_tag(el, sip::BODY_MARK) {
                    probe.on_notification(Some(t));
                }
            }
            xmpp::Kind::IqRequest => xmpp::write_iq_result(xmpp::start_tag(el), out),
            _ => {}
        });
        if !was_ready && session.state() == xmpp::State::Ready {
            probe.component_sessions.fetch_add(1, Ordering::Relaxed);
        }
        if !out.is_empty() {
            let mut g = writer.lock().await;
            if let Some(w) = g.as_mut() {
                if w.write_all(&out).await.is_err() {
                    *g = None;
                    return;
                }
            }
        }
        if res.is_err() || session.state() == xmpp::State::Closed {
            return;
        }
    }
}

/// An XEP-0114 component client (the generator's self-test): connects to `server`,
/// completes the handshake, then sends `<message>`s from `template`.
pub fn component_client(
    server: SocketAddr,
    domain: &str,
    secret: &str,
    template: Template,
    probe: Arc<Probe>,
) -> io::Result<Sender> {
    let mut std_stream = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
    std_stream.set_nodelay(true)?;
    std_stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // handshake, blocking
    {
        use std::io::{Read, Write};
        let (mut hs, header) = xmpp::ClientHandshake::start(domain, secret);
        std_stream.write_all(&header)?;
        let mut buf = [0u8; 4096];
        loop {
            let n = std_stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "component server closed the stream",
                ));
            }
            let mut out = Vec::new();
            let done = hs
                .handle_input(&buf[..n], &mut out)
                .map_err(io::Error::other)?;
            std_stream.write_all(&out)?;
            if done {
                break;
            }
        }
    }
    std_stream.set_nonblocking(true)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<SendJob>();
    spawn_role("component-client", move || async move {
        let Ok(stream) = TcpStream::from_std(std_stream) else {
            return;
        };
        let (mut r, w) = stream.into_split();
        tokio::spawn(async move {
            let mut chunk = vec![0u8; 65536];
            while let Ok(n) = r.read(&mut chunk).await {
                if n == 0 {
                    return;
                }
            }
        });
        let w = Mutex::new(Some(w));
        let mut tpl = template;
        send_jobs(&mut rx, &w, &mut tpl, &probe).await;
    })?;
    Ok(Sender { tx })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns once `done`, or after 5 s.
    fn wait_up_to_5s(done: impl Fn() -> bool) {
        let t = Instant::now();
        while !done() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn lo() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[test]
    fn uac_against_own_uas_counts_every_message_once() {
        let probe = Arc::new(Probe::new(10_000));
        let uas = udp_uas(lo(), UasOptions::default(), probe.clone()).unwrap();
        let (tx, _) = udp_uac(
            lo(),
            uas,
            move |local| {
                sip::message_template(&sip::MessageSpec {
                    request_uri: &format!("sip:uas@{uas}"),
                    from: "sip:uac@cpim.bench",
                    to: &format!("sip:uas@{uas}"),
                    transport: sip::Transport::Udp,
                    local: &local.to_string(),
                    body_len: 64,
                })
            },
            probe.clone(),
        )
        .unwrap();
        probe.begin(1);
        let rep = tx.run(1, 5000, 500).unwrap();
        assert_eq!(rep.sent, 500);
        wait_up_to_5s(|| probe.answered.missing(500) == 0 && probe.delivered.missing(500) == 0);
        assert_eq!(probe.delivered.missing(500), 0);
        assert_eq!(probe.answered.missing(500), 0);
        assert_eq!(probe.non2xx.load(Ordering::Relaxed), 0);
        assert_eq!(probe.delivered.duplicates(), 0);
        assert_eq!(probe.retransmissions.load(Ordering::Relaxed), 0);
        let (d, a) = probe.delays();
        assert_eq!((d.count, a.count), (500, 500));
    }

    #[test]
    fn component_client_against_own_server() {
        let probe = Arc::new(Probe::new(10_000));
        let server = component_server(
            lo(),
            "c.test",
            "sec",
            xmpp::message_template("a@x.test", "b@c.test", 32),
            probe.clone(),
        )
        .unwrap();
        let client = |secret| {
            component_client(
                server.local,
                "c.test",
                secret,
                xmpp::message_template("b@c.test", "a@x.test", 32),
                probe.clone(),
            )
        };
        assert!(
            client("nope").is_err(),
            "a wrong secret must fail the handshake"
        );
        let tx = client("sec").unwrap();
        probe.begin(2);
        let rep = tx.run(2, 5000, 300).unwrap();
        assert_eq!(rep.sent, 300);
        wait_up_to_5s(|| probe.delivered.missing(300) == 0);
        assert_eq!(probe.delivered.missing(300), 0);
        assert_eq!(probe.component_sessions.load(Ordering::Relaxed), 1);
    }
}

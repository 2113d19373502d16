//! One task per IRC connection: it connects (plain or TLS), drives a sans-IO
//! [`Conn`] over the socket, and reconnects the bot with exponential backoff.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::conn::{Conn, ConnEvent, ConnSettings};

use super::{ConnCmd, HubMsg, Io, Shared};

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

pub(super) async fn conn_task(
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

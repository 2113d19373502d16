//! Deadlines on incoming s2s streams, driven from outside with raw TCP (RFC 6120
//! s4.9.3.4): a peer trickling bytes is cut at the deadline for the stream header and at
//! the deadline for authentication, although every byte would reset an idle timer.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

mod common;

use common::{free_port, init_tracing, Rec, HDR};

/// Writes `data` one byte every 100 ms (then spaces) until the gateway closes the
/// connection; returns what the gateway sent, or panics when it never closes.
async fn trickle_until_closed(s: TcpStream, data: &[u8]) -> String {
    let (mut r, mut w) = s.into_split();
    let data = data.to_vec();
    let writer = tokio::spawn(async move {
        for i in 0.. {
            let b = data.get(i).copied().unwrap_or(b' ');
            if w.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut all))
        .await
        .expect("the gateway cuts a trickling peer")
        .ok();
    writer.abort();
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_trickling_peer_is_cut_at_the_open_and_auth_deadlines() {
    init_tracing();
    let port = free_port();
    let cfg: cpim_xmpp::XmppConfig = toml::from_str(&format!(
        "s2s_open_timeout_secs = 1\ns2s_auth_timeout_secs = 2\n\
         [mode]\nkind = 's2s'\ndomains = ['gw.test']\nlisten = '127.0.0.1:{port}'\n\
         dialback_secret = 'a-secret-of-the-gateway-only'\n"
    ))
    .unwrap();
    let (in_tx, _in_rx) = mpsc::unbounded_channel();
    let h = cpim_xmpp::start(cfg, Arc::new(Rec(in_tx))).await.unwrap();
    // The header, one byte at a time (about 15 s at this pace).
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let hdr = format!("{HDR} from='slow.test' to='gw.test'>");
    let got = trickle_until_closed(s, hdr.as_bytes()).await;
    assert!(
        got.contains("connection-timeout") && got.contains("no stream header"),
        "{got}"
    );
    // The header at once, then whitespace keep-alives, never authenticating.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(hdr.as_bytes()).await.unwrap();
    let got = trickle_until_closed(s, b"").await;
    assert!(
        got.contains("connection-timeout") && got.contains("no domain authenticated"),
        "{got}"
    );
    h.shutdown().await;
}

//! The network side of the s2s hub: `_xmpp-server._tcp` SRV resolution (RFC 6120
//! s3.2.1, the XMPP policy over the shared `cpim-dns` resolver) and the per-connection I/O task, which only moves bytes and performs the TLS
//! handshake when the hub tells it to. Reads reach the hub through a bounded channel
//! ([`IO_EVENTS`]): a connection whose reads the hub has no room for stops reading.

use std::net::SocketAddr;
use std::sync::Arc;

use cpim_dns::{Dns, Srv};
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{IoCmd, IoEvent};
use crate::error::XmppError;

/// `ip` or `ip:port` (port 53 by default).
pub(super) fn parse_dns_servers(list: &[String]) -> Result<Vec<SocketAddr>, XmppError> {
    list.iter()
        .map(|s| {
            cpim_dns::parse_server(s).ok_or_else(|| {
                XmppError::Config(format!("dns_servers: {s:?} is not ip or ip:port"))
            })
        })
        .collect()
}

/// RFC 6120 s3.2.1: `_xmpp-server._tcp` SRV records of the domain in RFC 2782 order, then
/// the domain itself on 5269.
/// `dns` replaces the system's name servers when not empty.
pub(super) async fn resolve_srv(domain: &str, dns: &[SocketAddr]) -> Vec<String> {
    if let Some(r) = Dns::new(dns) {
        if let Some(recs) = r.srv(&format!("_xmpp-server._tcp.{domain}.")).await {
            return srv_targets(domain, recs);
        }
    }
    vec![format!("{domain}:5269")]
}

/// The addresses to try from SRV records: lowest priority first, within one priority the
/// higher weight first (`cpim_dns::order_srv`, a deterministic reading of RFC 2782's
/// weighted choice), then the domain itself on 5269 (RFC 6120 s3.2.1). A single record
/// with target `.` means the service is decidedly not available: nothing to try, not
/// even the fallback.
fn srv_targets(domain: &str, mut recs: Vec<Srv>) -> Vec<String> {
    if cpim_dns::service_absent(&recs) {
        return Vec::new();
    }
    cpim_dns::order_srv(&mut recs);
    let mut out: Vec<String> = recs
        .iter()
        .filter(|r| !r.host().is_empty())
        .map(|r| format!("{}:{}", r.host(), r.port))
        .collect();
    out.push(format!("{domain}:5269"));
    out
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
    Gone,
}

/// How many events the I/O tasks may have waiting for the hub, all connections together:
/// at most this many reads of 16 KiB (4 MiB) plus one held back per connection.
pub(super) const IO_EVENTS: usize = 256;

/// The I/O task of one connection. Backpressure: a read waits until the hub has room for
/// it in the bounded channel `tx` (one read held back at most, and no read meanwhile), so
/// a fast sender fills its socket buffers, not the gateway's memory; waiting senders are
/// served in turn (tokio's channel is fair), so one connection cannot starve the others.
/// Commands are still carried out while a read waits. Plaintext read but not yet handed
/// over when the hub asks for TLS came after STARTTLS (RFC 6120 s5.4.3.3: nothing may
/// follow it before the handshake): the connection is closed rather than the bytes
/// taken as if they came over TLS.
pub(super) async fn io_task(
    id: u64,
    stream: TcpStream,
    mut rx: mpsc::UnboundedReceiver<IoCmd>,
    tx: mpsc::Sender<IoEvent>,
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
) {
    let mut io = Io::Plain(stream);
    let mut buf = vec![0u8; 16 * 1024];
    // A read (or the end of the stream, then `ending`) waiting for room in `tx`.
    let mut pending: Option<IoEvent> = None;
    let mut ending = false;
    loop {
        tokio::select! {
            biased;
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                if matches!(cmd, IoCmd::TlsClient(_) | IoCmd::TlsServer(_))
                    && matches!(pending, Some(IoEvent::Data(..)))
                {
                    let _ = tx.send(IoEvent::Closed(id, "data after STARTTLS".into())).await;
                    break;
                }
                match cmd {
                    IoCmd::Write(b) => {
                        let r = match &mut io {
                            Io::Plain(s) => s.write_all(&b).await,
                            Io::Tls(s) => match s.write_all(&b).await {
                                Ok(()) => s.flush().await,
                                Err(e) => Err(e),
                            },
                            Io::Gone => Ok(()),
                        };
                        if let Err(e) = r {
                            let _ = tx.send(IoEvent::Closed(id, format!("write failed: {e}"))).await;
                            break;
                        }
                    }
                    IoCmd::TlsClient(name) => {
                        let Io::Plain(s) = std::mem::replace(&mut io, Io::Gone) else { break };
                        match tokio_rustls::TlsConnector::from(client.clone()).connect(name, s).await {
                            Ok(t) => {
                                io = Io::Tls(Box::new(tokio_rustls::TlsStream::Client(t)));
                                let _ = tx.send(IoEvent::TlsDone(id, None)).await;
                            }
                            Err(e) => {
                                let _ = tx.send(IoEvent::Closed(id, format!("TLS handshake failed: {e}"))).await;
                                break;
                            }
                        }
                    }
                    IoCmd::TlsServer(proceed) => {
                        let Io::Plain(mut s) = std::mem::replace(&mut io, Io::Gone) else { break };
                        if let Err(e) = s.write_all(&proceed).await {
                            let _ = tx.send(IoEvent::Closed(id, format!("write failed: {e}"))).await;
                            break;
                        }
                        match tokio_rustls::TlsAcceptor::from(server.clone()).accept(s).await {
                            Ok(t) => {
                                let certs = t.get_ref().1.peer_certificates().map(<[_]>::to_vec);
                                io = Io::Tls(Box::new(tokio_rustls::TlsStream::Server(t)));
                                let _ = tx.send(IoEvent::TlsDone(id, certs)).await;
                            }
                            Err(e) => {
                                let _ = tx.send(IoEvent::Closed(id, format!("TLS handshake failed: {e}"))).await;
                                break;
                            }
                        }
                    }
                    IoCmd::Close => {
                        match &mut io {
                            Io::Plain(s) => { let _ = s.shutdown().await; }
                            Io::Tls(s) => { let _ = s.shutdown().await; }
                            Io::Gone => {}
                        }
                        break;
                    }
                }
            }
            permit = tx.reserve(), if pending.is_some() => {
                let Ok(permit) = permit else { break };
                if let Some(ev) = pending.take() {
                    permit.send(ev);
                }
                if ending {
                    break;
                }
            }
            r = read_some(&mut io, &mut buf), if pending.is_none() => {
                pending = Some(match r {
                    Ok(0) => { ending = true; IoEvent::Closed(id, "peer closed the connection".into()) }
                    Ok(n) => IoEvent::Data(id, buf[..n].to_vec()),
                    Err(e) => { ending = true; IoEvent::Closed(id, format!("read failed: {e}")) }
                });
            }
        }
    }
}

async fn read_some(io: &mut Io, buf: &mut [u8]) -> std::io::Result<usize> {
    match io {
        Io::Plain(s) => s.read(buf).await,
        Io::Tls(s) => s.read(buf).await,
        Io::Gone => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backpressure: while the hub reads nothing, a peer writing as fast as it can is held
    /// back after the channel's capacity plus the socket buffers (counted in bytes, not
    /// timed); once the hub reads, every byte arrives, in order, then the close.
    #[tokio::test]
    async fn a_fast_sender_waits_for_the_hub_instead_of_growing_memory() {
        let id = crate::tls::Identity::load(None, None, &["a.test".to_string()]).unwrap();
        let server = crate::tls::server_config(&id).unwrap();
        let trust = Arc::new(crate::tls::Trust::new(&[], false).unwrap());
        let client = crate::tls::client_config(trust, &id).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        let (tx, mut hub) = mpsc::channel(4);
        let (_cmd, cmd_rx) = mpsc::unbounded_channel();
        tokio::spawn(io_task(1, s, cmd_rx, tx, client, server));
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        const LIMIT: usize = 64 << 20;
        let mut sent = Vec::new();
        let mut written = 0usize;
        while written < LIMIT {
            // A write that cannot finish for a while: the gateway stopped reading.
            match tokio::time::timeout(std::time::Duration::from_millis(300), peer.write(&chunk))
                .await
            {
                Ok(Ok(n)) => {
                    written += n;
                    sent.extend_from_slice(&chunk[..n]);
                }
                Ok(Err(e)) => panic!("write: {e}"),
                Err(_) => break,
            }
        }
        assert!(
            written < LIMIT,
            "the gateway kept reading {written} bytes nobody took"
        );
        assert_eq!(hub.len(), 4, "the channel is full, and holds no more");
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(ev) = hub.recv().await {
                match ev {
                    IoEvent::Data(1, d) => got.extend_from_slice(&d),
                    IoEvent::Closed(1, _) => return got,
                    _ => panic!("unexpected event"),
                }
            }
            panic!("no close");
        });
        drop(peer);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), written);
        assert!(got == sent, "bytes lost or reordered");
    }

    /// RFC 6120 s5.4.3.3 (no data between STARTTLS and the handshake): plaintext read but
    /// not yet handed to the hub when the hub asks for TLS is not carried over into the
    /// TLS stream; the connection is closed, saying why.
    #[tokio::test]
    async fn plaintext_waiting_when_tls_starts_closes_the_connection() {
        let id = crate::tls::Identity::load(None, None, &["a.test".to_string()]).unwrap();
        let server = crate::tls::server_config(&id).unwrap();
        let trust = Arc::new(crate::tls::Trust::new(&[], false).unwrap());
        let client = crate::tls::client_config(trust, &id).unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        // The hub is busy: its channel is full, so the injected bytes wait in the task.
        let (tx, mut hub) = mpsc::channel(1);
        tx.send(IoEvent::ConnectFailed(
            0,
            cpim_core::StatusCode::NOT_FOUND,
            "filler".into(),
        ))
        .await
        .unwrap();
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        tokio::spawn(io_task(1, s, cmd_rx, tx, client, server));
        peer.write_all(b"<message>injected</message>")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        cmd.send(IoCmd::TlsServer(b"<proceed/>".to_vec())).unwrap();
        assert!(matches!(
            hub.recv().await,
            Some(IoEvent::ConnectFailed(0, _, _))
        ));
        match hub.recv().await {
            Some(IoEvent::Closed(1, why)) => assert_eq!(why, "data after STARTTLS"),
            _ => panic!("expected the connection closed"),
        }
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).await.unwrap();
        assert!(
            rest.is_empty(),
            "nothing sent, not even <proceed/>: {rest:?}"
        );
    }

    #[test]
    fn srv_records_are_tried_by_priority_then_weight_then_the_domain() {
        let srv = |priority, weight, target: &str, port| Srv {
            priority,
            weight,
            target: target.to_string(),
            port,
        };
        let recs = vec![
            srv(20, 0, "c.example.", 5271),
            srv(10, 5, "b.example.", 5270),
            srv(10, 60, "a.example.", 5269),
        ];
        assert_eq!(
            srv_targets("example.com", recs),
            vec![
                "a.example:5269",
                "b.example:5270",
                "c.example:5271",
                "example.com:5269"
            ]
        );
        // RFC 2782 / RFC 6120 s3.2.1: target "." = no service; no fallback either.
        assert!(srv_targets("example.com", vec![srv(0, 0, ".", 0)]).is_empty());
        assert_eq!(srv_targets("example.com", vec![]), vec!["example.com:5269"]);
    }

    #[test]
    fn dns_servers_parse_with_or_without_port() {
        let v = parse_dns_servers(&["127.0.0.1:5353".into(), "::1".into()]).unwrap();
        assert_eq!(v[0], "127.0.0.1:5353".parse().unwrap());
        assert_eq!(v[1], "[::1]:53".parse().unwrap());
        assert!(parse_dns_servers(&["dns.example".into()]).is_err());
    }
}

//! TLS on s2s by default (RFC 6120 s5 and s13.7), driven from outside the process with
//! fake peers over raw TCP:
//!
//! - on the default configuration an outgoing stream to a peer that does not offer
//!   STARTTLS sends nothing (no dialback key, no stanza), is closed with
//!   `<policy-violation/>`, and its delivery fails at once with a reason;
//! - an incoming stream that tries dialback before STARTTLS is refused;
//! - with TLS optional, a peer that offered STARTTLS once is never sent anything in
//!   plaintext later (a stripped STARTTLS after a failed handshake gets nothing);
//! - a peer whose certificate is not valid for its domain (RFC 6120 s13.7.2) gets
//!   nothing after the handshake, and the delivery fails at once with the reason.

use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::Adapter;
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Message, Operation, TransId};
use cpim_xmpp::{start, Mode, XmppConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

mod common;

use common::{fake_server, free_port, init_tracing, read_until, Rec, HDR};

fn config(port: u16, peer: &str, addr: String) -> XmppConfig {
    toml::from_str::<XmppConfig>(&format!(
        "reconnect_initial_ms = 50\nreconnect_max_ms = 200\ndelivery_timeout_secs = 10\n\
         [mode]\nkind = 's2s'\ndomains = ['gw.test']\nlisten = '127.0.0.1:{port}'\n\
         dialback_secret = 'a-secret-of-the-gateway-only'\n\
         [mode.srv_overrides]\n'{peer}' = '{addr}'\n"
    ))
    .unwrap()
}

fn msg(t: u64, to_domain: &str, body: &str) -> Operation {
    Operation::Message(Message::new(
        TransId(t),
        Address::new(Scheme::Xmpp, Some("alice"), "gw.test"),
        Address::new(Scheme::Xmpp, Some("bob"), to_domain),
        "text/plain",
        body,
    ))
}

/// A peer that offers only dialback (no STARTTLS) and answers any dialback `valid`;
/// reports everything each connection received when it ends.
async fn plaintext_peer(domain: &'static str, tx: mpsc::UnboundedSender<String>) -> String {
    fake_server(move |mut s| {
        let tx = tx.clone();
        async move {
            let mut seen = String::new();
            read_until(&mut s, &mut seen, "<stream:stream").await;
            let _ = s
                .write_all(
                    format!(
                        "{HDR} from='{domain}' id='p1'><stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>"
                    )
                    .as_bytes(),
                )
                .await;
            let mut buf = [0u8; 4096];
            loop {
                match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {
                        let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if chunk.contains("<db:result") {
                            let _ = s
                                .write_all(
                                    format!("<db:result from='{domain}' to='gw.test' type='valid'/>")
                                        .as_bytes(),
                                )
                                .await;
                        }
                        seen.push_str(&chunk);
                    }
                    _ => break,
                }
            }
            let _ = tx.send(seen);
        }
    })
    .await
}

/// RFC 6120 s5.3.1 / s13.7: with the defaults a peer without STARTTLS gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_s5_default_config_sends_nothing_to_a_peer_without_starttls() {
    init_tracing();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let addr = plaintext_peer("plain.test", tx).await;
    let port = free_port();
    let (in_tx, _in_rx) = mpsc::unbounded_channel();
    let h = start(config(port, "plain.test", addr), Arc::new(Rec(in_tx)))
        .await
        .unwrap();
    let out = h
        .adapter()
        .deliver(msg(1, "plain.test", "secret body"))
        .await;
    assert_eq!(out.status.code, 502, "{out:?}");
    assert!(
        out.status.reason.contains("STARTTLS"),
        "no clear reason: {out:?}"
    );
    let seen = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("the peer's connection ends")
        .unwrap();
    assert!(seen.contains("policy-violation"), "{seen}");
    assert!(!seen.contains("db:result"), "dialback in plaintext: {seen}");
    assert!(!seen.contains("secret body"), "stanza in plaintext: {seen}");
    // Nothing was queued for a retry: no second connection comes.
    assert!(rx.try_recv().is_err());

    // Incoming: dialback before STARTTLS is refused (the key is not even looked at).
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("{HDR} from='plain.test' to='gw.test'>").as_bytes())
        .await
        .unwrap();
    let mut seen = String::new();
    assert!(read_until(&mut s, &mut seen, "</stream:features>").await);
    assert!(seen.contains("<required/>"), "{seen}");
    assert!(!seen.contains("urn:xmpp:features:dialback"), "{seen}");
    s.write_all(b"<db:result from='plain.test' to='gw.test'>00</db:result>")
        .await
        .unwrap();
    assert!(
        read_until(&mut s, &mut seen, "policy-violation").await,
        "{seen}"
    );
    h.shutdown().await;
}

/// With TLS optional (`require_tls = false`, `allow_dialback_without_tls = true`): a
/// peer offered STARTTLS, the handshake failed; on the next connection STARTTLS is
/// missing (stripped). The gateway sends nothing there: a message that failed over TLS
/// is never retried in plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripped_starttls_after_a_failed_handshake_gets_nothing_in_plaintext() {
    init_tracing();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let addr = fake_server(move |mut s| {
        let tx = tx.clone();
        let n = conns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let mut seen = String::new();
            read_until(&mut s, &mut seen, "<stream:stream").await;
            if n == 0 {
                // Offers STARTTLS, then breaks the handshake.
                let _ = s
                    .write_all(format!("{HDR} from='opt.test' id='t1'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>").as_bytes())
                    .await;
                read_until(&mut s, &mut seen, "<starttls").await;
                let _ = s
                    .write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>not TLS at all")
                    .await;
                let _ = tx.send(format!("conn0:{seen}"));
                return;
            }
            let _ = s
                .write_all(format!("{HDR} from='opt.test' id='t{n}'><stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>").as_bytes())
                .await;
            let mut buf = [0u8; 4096];
            loop {
                match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                    Ok(Ok(k)) if k > 0 => {
                        let chunk = String::from_utf8_lossy(&buf[..k]).into_owned();
                        if chunk.contains("<db:result") {
                            let _ = s
                                .write_all(b"<db:result from='opt.test' to='gw.test' type='valid'/>")
                                .await;
                        }
                        seen.push_str(&chunk);
                    }
                    _ => break,
                }
            }
            let _ = tx.send(format!("conn{n}:{seen}"));
        }
    })
    .await;
    let port = free_port();
    let mut cfg = config(port, "opt.test", addr);
    if let Mode::S2s {
        require_tls,
        allow_dialback_without_tls,
        ..
    } = &mut cfg.mode
    {
        *require_tls = false;
        *allow_dialback_without_tls = true;
    }
    let (in_tx, _in_rx) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(Rec(in_tx))).await.unwrap();
    // The first delivery fails (the handshake breaks: at once, or after a retry on the
    // stripped stream); the second one opens a new stream, which is stripped too.
    for (t, body) in [(1, "over tls only one"), (2, "over tls only two")] {
        let out = h.adapter().deliver(msg(t, "opt.test", body)).await;
        assert!(!out.status.is_success(), "{out:?}");
    }
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(first.starts_with("conn0:"), "{first}");
    let mut later = Vec::new();
    while let Ok(Some(c)) = tokio::time::timeout(Duration::from_secs(6), rx.recv()).await {
        later.push(c);
    }
    assert!(!later.is_empty(), "the second delivery opened no stream");
    for c in later {
        assert!(c.contains("policy-violation"), "{c}");
        assert!(!c.contains("db:result"), "dialback in plaintext: {c}");
        assert!(!c.contains("over tls only"), "stanza in plaintext: {c}");
    }
    h.shutdown().await;
}

/// RFC 6120 s13.7.2: a peer presenting a certificate the gateway cannot validate for its
/// domain gets nothing over the stream; the delivery fails with 502 naming the TLS
/// failure instead of being retried until its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc6120_s13_7_untrusted_peer_certificate_gets_nothing_and_fails_the_delivery() {
    init_tracing();
    let (cert, key) = cpim_xmpp::tls::self_signed(&["untrusted.test".into()]).unwrap();
    let id = {
        let dir = std::env::temp_dir().join(format!("cpim-xmpp-untrusted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        let id = cpim_xmpp::tls::Identity::load(
            Some(&c.to_string_lossy()),
            Some(&k.to_string_lossy()),
            &[],
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        id
    };
    let server = cpim_xmpp::tls::server_config(&id).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let addr = fake_server(move |mut s| {
        let tx = tx.clone();
        let server = server.clone();
        async move {
            let mut seen = String::new();
            read_until(&mut s, &mut seen, "<stream:stream").await;
            let _ = s
                .write_all(format!("{HDR} from='untrusted.test' id='u1'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>").as_bytes())
                .await;
            read_until(&mut s, &mut seen, "<starttls").await;
            let _ = s
                .write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                .await;
            let mut after = String::new();
            if let Ok(mut t) = tokio_rustls::TlsAcceptor::from(server).accept(s).await {
                let mut buf = [0u8; 4096];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(5), t.read(&mut buf)).await
                {
                    if n == 0 {
                        break;
                    }
                    after.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
            let _ = tx.send(after);
        }
    })
    .await;
    let port = free_port();
    let (in_tx, _in_rx) = mpsc::unbounded_channel();
    let h = start(config(port, "untrusted.test", addr), Arc::new(Rec(in_tx)))
        .await
        .unwrap();
    let out = h
        .adapter()
        .deliver(msg(1, "untrusted.test", "secret body"))
        .await;
    assert_eq!(out.status.code, 502, "{out:?}");
    // The sender (and the log) learn why: the peer's certificate, named.
    assert!(
        out.status.reason.contains("TLS") && out.status.reason.contains("certificate"),
        "{out:?}"
    );
    let after = tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(after.is_empty(), "sent over an unvalidated stream: {after}");
    h.shutdown().await;
}

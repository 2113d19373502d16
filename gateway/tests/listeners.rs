//! Adversarial tests of the gateway's listeners, from outside the process: connection caps
//! on the s2s, JSON and admin listeners, the admin header deadline, SIP over TLS on the
//! default configuration (RFC 3261 s26.2), and the accept loops under EMFILE (the
//! release binary run under `prlimit`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cpim_gateway::config::Config;
use cpim_gateway::gateway::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{free_port, tmp};

const SECRET: &str = "listeners-test-secret-0123456789abcdef";

fn xmpp_s2s(listen: &str) -> cpim_xmpp::XmppConfig {
    toml::from_str(&format!(
        "s2s_max_connections_per_source = 4\n[mode]\nkind = \"s2s\"\ndomains = [\"localhost\"]\nlisten = \"{listen}\"\ndialback_secret = \"{SECRET}\"\n"
    ))
    .unwrap()
}

/// True when the server closed the connection (EOF or reset) within `wait`.
async fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 512];
    loop {
        match tokio::time::timeout(wait, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a greeting or an error; wait for the close
            Err(_) => return false,
        }
    }
}

/// Opens `n` connections to `addr`, one byte written on each, and counts those the
/// server closed.
async fn count_closed(addr: SocketAddr, n: usize, first: &[u8]) -> (usize, Vec<TcpStream>) {
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(first).await;
        conns.push(s);
    }
    let mut closed = 0;
    for s in conns.iter_mut() {
        if closed_by_server(s, Duration::from_millis(500)).await {
            closed += 1;
        }
    }
    (closed, conns)
}

/// 40 connections from one source to each of the s2s, JSON and admin listeners: each
/// keeps only its per-source cap open and closes the rest at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_caps_connections_per_source() {
    let dir = tmp("caps");
    let s2s_port = free_port();
    let mut c = Config {
        adapters: vec!["xmpp".into(), "json".into()],
        xmpp: xmpp_s2s(&format!("127.0.0.1:{s2s_port}")),
        json: Some(cpim_json::JsonConfig {
            tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
            max_connections_per_source: 5,
            ..cpim_json::JsonConfig::default()
        }),
        ..Config::default()
    };
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.max_connections_per_source = 6;
    c.store.path = dir.clone();
    let gw = Gateway::start(c).await.unwrap();
    let s2s: SocketAddr = format!("127.0.0.1:{s2s_port}").parse().unwrap();
    let (closed, held) = count_closed(s2s, 40, b"<").await;
    assert_eq!(closed, 36, "s2s: 40 connections, cap 4 per source");
    drop(held);
    let (closed, held) = count_closed(gw.json_tcp_addr().unwrap(), 40, b"{").await;
    assert_eq!(closed, 35, "json: 40 connections, cap 5 per source");
    drop(held);
    let (closed, held) = count_closed(gw.admin_addr().unwrap(), 40, b"G").await;
    assert_eq!(closed, 34, "admin: 40 connections, cap 6 per source");
    drop(held);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request trickled into the admin API one byte every 100 ms is cut at
/// `header_timeout_secs`, before its headers are complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_headers_trickled_are_cut_at_the_deadline() {
    let dir = tmp("admin-slow");
    let mut c = Config {
        adapters: Vec::new(),
        ..Config::default()
    };
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.header_timeout_secs = 1;
    c.store.path = dir.clone();
    let gw = Gateway::start(c).await.unwrap();
    let mut s = TcpStream::connect(gw.admin_addr().unwrap()).await.unwrap();
    let req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut sent = 0;
    let mut b = [0u8; 512];
    let mut cut = false;
    for byte in req {
        if s.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        sent += 1;
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            // hyper answers 408 to a header timeout before closing
            Ok(Ok(n)) if sent < req.len() => {
                assert!(
                    b[..n].starts_with(b"HTTP/1.1 408"),
                    "{:?}",
                    String::from_utf8_lossy(&b[..n])
                );
                cut = true;
                break;
            }
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    assert!(
        cut && sent < req.len(),
        "trickled headers read to the end ({sent} bytes)"
    );
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The default configuration listens for SIP over TLS (RFC 3261 s26.2) with a
/// certificate generated at first start in the store folder, mode 0600, and kept across
/// restarts; a rustls client trusting it handshakes and gets an answer to OPTIONS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_config_serves_sip_over_tls() {
    let d = Config::default();
    assert_eq!(
        d.sip.endpoint.tls,
        vec!["127.0.0.1:5061".parse::<SocketAddr>().unwrap()]
    );
    assert!(d.sip.endpoint.tls_cert.is_none());
    let dir = tmp("tls");
    let mut c = Config {
        adapters: vec!["sip".into()],
        ..Config::default()
    };
    c.sip.endpoint.udp = Vec::new();
    c.sip.endpoint.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tls = vec!["127.0.0.1:0".parse().unwrap()];
    c.admin.enabled = false;
    c.store.path = dir.clone();
    let gw = Gateway::start(c.clone()).await.unwrap();
    let tls = gw
        .sip_addrs()
        .iter()
        .find(|(t, _)| t == "tls")
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("no TLS listener: {:?}", gw.sip_addrs()));
    let cert_path = dir.join(cpim_gateway::secrets::SIP_TLS_CERT_FILE);
    let key_path = dir.join(cpim_gateway::secrets::SIP_TLS_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [&cert_path, &key_path] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }
    let cert = std::fs::read(&cert_path).unwrap();
    let answer = options_over_tls(tls, &cert).await;
    assert!(answer.starts_with("SIP/2.0 "), "{answer}");
    gw.shutdown().await;
    // a restart keeps the certificate
    let gw = Gateway::start(c).await.unwrap();
    assert_eq!(std::fs::read(&cert_path).unwrap(), cert);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn options_over_tls(addr: SocketAddr, ca_pem: &[u8]) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = conn.connect(name, tcp).await.expect("TLS handshake");
    let req =
        "OPTIONS sips:localhost SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKtls1\r\n\
               Max-Forwards: 70\r\nTo: <sips:localhost>\r\nFrom: <sips:x@client.test>;tag=1\r\n\
               Call-ID: tls-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let mut b = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&b[..n]).to_string()
}

/// CPU ticks (user + system) the process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields 14 and 15 of proc(5), counted from the state (field 3)
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// The gateway binary with 64 descriptors: 150 connections to SIP TCP exhaust them.
/// The accept loops back off instead of spinning (CPU counted from /proc over 3 s,
/// generous bound), and once the connections close SIP, the admin API and s2s accept
/// and answer again.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_accept_backs_off_on_emfile_and_recovers() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "prlimit (util-linux) is needed in CI"
        );
        eprintln!("prlimit not installed; skipping");
        return;
    }
    let dir = tmp("emfile");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let admin_port = free_port();
    let s2s_port = free_port();
    let cfg = dir.join("gw.toml");
    let store = dir.join("store").display().to_string();
    std::fs::write(
        &cfg,
        format!(
            r#"adapters = ["sip", "xmpp"]
[sip]
domains = ["localhost"]
[sip.endpoint]
udp = []
tcp = ["127.0.0.1:{port}"]
tls = []
max_connections_per_source = 5000
max_connections = 5000
[xmpp.mode]
kind = "s2s"
domains = ["localhost"]
listen = "127.0.0.1:{s2s_port}"
dialback_secret = "{SECRET}"
[admin]
listen = "127.0.0.1:{admin_port}"
[store]
path = {store:?}
"#
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_cpim-gateway"))
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the gateway did not start");
    // Flood only once the gateway has started in full: SIP accepts before the admin API
    // is bound, and a bind without a descriptor fails the start.
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let health = first_answer(admin, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert!(
        health.starts_with("HTTP/1.1 200"),
        "admin before: {health:?}"
    );
    let mut held = Vec::new();
    for _ in 0..150 {
        if let Ok(s) = TcpStream::connect(addr).await {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_ticks(pid) - before;
    // a spinning accept loop burns ~300 ticks (one core at 100 Hz) in 3 s
    assert!(
        used < 100,
        "{used} CPU ticks in 3 s while out of descriptors"
    );
    drop(held);
    let mut answer = String::new();
    for i in 0..60 {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let req = format!(
                "OPTIONS sip:localhost SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKem{i}\r\n\
                 Max-Forwards: 70\r\nTo: <sip:localhost>\r\nFrom: <sip:x@client.test>;tag=1\r\n\
                 Call-ID: em-{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = s.write_all(req.as_bytes()).await;
            let mut b = vec![0u8; 2048];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
                if n > 0 {
                    answer = String::from_utf8_lossy(&b[..n]).to_string();
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        answer.starts_with("SIP/2.0 "),
        "no answer after the descriptors came back: {answer:?}"
    );
    // the admin API and the s2s listener accept again too
    let health = first_answer(admin, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "admin: {health:?}");
    let s2s: SocketAddr = format!("127.0.0.1:{s2s_port}").parse().unwrap();
    let open = first_answer(
        s2s,
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
          xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    )
    .await;
    assert!(open.contains("stream:stream"), "s2s: {open:?}");
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Connects (retrying for a while), sends `req` and returns the first bytes answered.
async fn first_answer(addr: SocketAddr, req: &[u8]) -> String {
    for _ in 0..40 {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let _ = s.write_all(req).await;
            let mut b = vec![0u8; 4096];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
                if n > 0 {
                    return String::from_utf8_lossy(&b[..n]).to_string();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    String::new()
}

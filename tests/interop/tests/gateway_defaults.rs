//! The gateway binary (`cpim-gateway-e2e`, the gateway's own `main`) started with no
//! configuration at all, in an empty temporary folder as its working directory: it serves
//! SIP (an OPTIONS to its domain is answered 200 with an Allow header naming MESSAGE,
//! SUBSCRIBE and PUBLISH, RFC 3261 s11.2) and the admin API (`/health` 200), and stores its
//! data under that folder (`./data`). The default ports (SIP 5060, SIP TLS 5061, admin 8080, XMPP s2s 5269)
//! are used when free; a taken one is moved with an environment override
//! (`CPIM_GATEWAY__...`), which is the documented way to change them. No peers needed.
//!
//! Issue 10 (no known secrets): the admin token and the dialback secret are generated into
//! the store (mode 0600, folder 0700); the admin API refuses requests without the token
//! (401) or with a foreign `Host` (421, DNS rebinding); a dialback key computed offline with
//! the old default secret `change-me` is answered `invalid` (XEP-0220 s2.4); `check-config`
//! refuses placeholder and short secrets naming the key and line.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use cpim_interop::{free_tcp_port, free_udp_port, scratch_dir, Proc};
use cpim_sip::codec::HeaderName;
use cpim_testkit::{http_get, http_get_host, SipUa, Transport};

fn tcp_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_without_config_serves_sip_and_the_admin_api() {
    let dir = scratch_dir("gateway-defaults").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cpim-gateway-e2e"));
    cmd.current_dir(&dir).env("RUST_LOG", "info");
    // Only ports are overridden, and only when the default is taken.
    let mut sip_udp: SocketAddr = ([127, 0, 0, 1], 5060).into();
    let mut sip_tcp: SocketAddr = sip_udp;
    if !udp_free(5060) || !tcp_free(5060) {
        sip_udp.set_port(free_udp_port().unwrap());
        sip_tcp.set_port(free_tcp_port().unwrap());
        cmd.env(
            "CPIM_GATEWAY__SIP__ENDPOINT__UDP",
            format!("[\"{sip_udp}\"]"),
        )
        .env(
            "CPIM_GATEWAY__SIP__ENDPOINT__TCP",
            format!("[\"{sip_tcp}\"]"),
        );
    }
    if !tcp_free(5061) {
        let p = free_tcp_port().unwrap();
        cmd.env(
            "CPIM_GATEWAY__SIP__ENDPOINT__TLS",
            format!("[\"127.0.0.1:{p}\"]"),
        );
    }
    let mut admin: SocketAddr = ([127, 0, 0, 1], 8080).into();
    if !tcp_free(8080) {
        admin.set_port(free_tcp_port().unwrap());
        cmd.env("CPIM_GATEWAY__ADMIN__LISTEN", admin.to_string());
    }
    let mut s2s: SocketAddr = ([127, 0, 0, 1], 5269).into();
    if !tcp_free(5269) {
        s2s.set_port(free_tcp_port().unwrap());
        cmd.env(
            "CPIM_GATEWAY__XMPP__MODE",
            format!("{{kind = \"s2s\", domains = [\"localhost\"], listen = \"{s2s}\"}}"),
        );
    }
    let gw = Proc::spawn("cpim-gateway (no config)", cmd).unwrap();

    let health = cpim_testkit::eventually("/health", Duration::from_secs(30), || async {
        http_get(admin, "/health", None).await.ok()
    })
    .await;
    let (code, body) = match health {
        Ok(h) => h,
        Err(e) => panic!("{e}\n{}", gw.kill()),
    };
    assert_eq!(code, 200, "{body}");

    for (transport, addr) in [(Transport::Udp, sip_udp), (Transport::Tcp, sip_tcp)] {
        let ua = SipUa::new("probe", "localhost", None, transport, addr)
            .await
            .unwrap();
        let r = ua.options("sip:localhost").await;
        let r = match r {
            Ok(r) => r,
            Err(e) => panic!("OPTIONS over {transport:?}: {e}\n{}", gw.kill()),
        };
        assert_eq!(r.code(), 200, "{transport:?}: {}", r.reason());
        let allow: Vec<String> = r
            .list(HeaderName::Allow)
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
        for m in ["MESSAGE", "SUBSCRIBE", "PUBLISH", "OPTIONS"] {
            assert!(allow.iter().any(|a| a == m), "Allow {allow:?} lacks {m}");
        }
    }
    assert!(
        dir.join("data").is_dir(),
        "the store goes under the working directory"
    );

    // Issue 10: no known secrets, the admin API closed by default.
    let data = dir.join("data");
    let token = std::fs::read_to_string(data.join("admin.token"))
        .expect("the admin token is generated into the store")
        .trim()
        .to_owned();
    assert_eq!(token.len(), 64);
    let (code, body) = http_get(admin, "/registrations", None).await.unwrap();
    assert_eq!(code, 401, "/registrations without a token: {body}");
    let (code, body) = http_get(admin, "/registrations", Some(&token))
        .await
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_get_host(
        admin,
        "/registrations",
        "rebound.evil.example:8080",
        Some(&token),
    )
    .await
    .unwrap();
    assert_eq!(code, 421, "a foreign Host (DNS rebinding): {body}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700, "store folder");
        for f in ["admin.token", "dialback.secret", "gateway.sqlite3"] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }
    // The dialback key an attacker computes offline with the old default secret
    // (XEP-0185 s3, `change-me`) is not confirmed (XEP-0220 s2.4: type='invalid').
    let answer = dialback_verify(s2s, "change-me").await;
    assert!(
        !answer.contains("type=\"valid\"") && !answer.contains("type='valid'"),
        "a key made with `change-me` was confirmed: {answer}"
    );
    assert!(
        answer.contains("type=\"invalid\"") || answer.contains("</stream:stream>"),
        "no answer to db:verify: {answer}"
    );

    let out = gw.kill();
    assert!(
        out.stderr.contains("gateway started"),
        "no start line in the log:\n{out}"
    );
    assert!(
        out.stderr.contains("admin.token") && !out.stderr.contains(&token),
        "the log names where the token is, never the token:\n{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An XMPP server for `evil.test` asks the gateway (authoritative for `localhost`) to
/// confirm a dialback key it computed with `secret` (XEP-0220 s2.1.3): what came back.
async fn dialback_verify(s2s: SocketAddr, secret: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let id = "evil-stream-1";
    let key = cpim_xmpp::s2s::dialback_key(secret, "evil.test", "localhost", id);
    let mut s = tokio::net::TcpStream::connect(s2s).await.unwrap();
    s.write_all(
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='localhost' from='evil.test' version='1.0'>\
             <db:verify from='evil.test' to='localhost' id='{id}'>{key}</db:verify>"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    let done = |g: &str| {
        g.contains("</stream:stream>")
            || g.split_once("<db:verify")
                .is_some_and(|(_, rest)| rest.contains("/>") || rest.contains("</db:verify>"))
    };
    while !done(&got) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    got
}

/// `check-config` refuses placeholder and short secrets, naming the key and its line.
#[test]
fn check_config_refuses_weak_secrets_with_key_and_line() {
    let dir = scratch_dir("gateway-check-config").unwrap();
    let cases = [
        (
            "[admin]\nlisten = \"127.0.0.1:8080\"\ntoken = \"x\"\n",
            ":3:1: admin.token:",
        ),
        (
            "[xmpp.mode]\nkind = \"s2s\"\ndomains = [\"localhost\"]\nlisten = \"127.0.0.1:5269\"\ndialback_secret = \"change-me\"\n",
            ":5:1: xmpp.mode.dialback_secret:",
        ),
        (
            "[xmpp.mode]\nkind = \"component\"\nserver = \"127.0.0.1:5347\"\ndomain = \"c.test\"\nsecret = \"s3cret\"\n",
            ":5:1: xmpp.mode.secret:",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let file = dir.join(format!("weak{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_cpim-gateway-e2e"))
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(
            err.contains(&format!("weak{i}.toml{want}")),
            "{text}: {err}"
        );
    }
    let ok = dir.join("ok.toml");
    std::fs::write(
        &ok,
        "[admin]\ntoken = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cpim-gateway-e2e"))
        .arg("check-config")
        .arg(&ok)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

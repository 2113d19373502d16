//! The gateway binary (`cpim-gateway-e2e`, the gateway's own `main`) started with no
//! configuration at all, in an empty temporary folder as its working directory: it serves
//! SIP (an OPTIONS to its domain is answered 200 with an Allow header naming MESSAGE,
//! SUBSCRIBE and PUBLISH, RFC 3261 s11.2) and the admin API (`/health` 200), and stores its
//! data under that folder (`./data`). The default ports (SIP 5060, SIP TLS 5061, admin 8080, XMPP s2s 5269)
//! are used when free; a taken one is moved with an environment override
//! (`CPIM_GATEWAY__...`), which is the documented way to change them. No peers needed.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use cpim_interop::{free_tcp_port, free_udp_port, scratch_dir, Proc};
use cpim_sip::codec::HeaderName;
use cpim_testkit::{http_get, SipUa, Transport};

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
    if !tcp_free(5269) {
        let p = free_tcp_port().unwrap();
        cmd.env(
            "CPIM_GATEWAY__XMPP__MODE",
            format!(
                "{{kind = \"s2s\", domains = [\"localhost\"], listen = \"127.0.0.1:{p}\", dialback_secret = \"change-me\"}}"
            ),
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
    let out = gw.kill();
    assert!(
        out.stderr.contains("gateway started"),
        "no start line in the log:\n{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! Real peer: the gateway as the XEP-0114 component of Prosody, started by
//! `scripts/test` (reads `CPIM_PEER_PROSODY_COMPONENT`, `_COMPONENT_DOMAIN`,
//! `_COMPONENT_SECRET`, `CPIM_PEER_PROSODY_DOMAIN`; skips with a message without them, fails
//! under `CI=true`).
//! Checks that the component link comes up as the admin API reports it, and that a
//! message from a SIP user reaches Prosody and is answered by it.

use cpim_core::StatusCode;
use std::time::Duration;

use cpim_core::adapter::Ingress;
use cpim_core::address::Address;
use cpim_core::model::{Message, Operation, TransId};
use cpim_gateway::config::{Config, DomainAlias, Route};
use cpim_gateway::gateway::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cpim_testkit::peer_env::var as env;

/// The admin token of the test gateway.
const TOKEN: &str = "prosody-test-admin-token-1";

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn component_link_to_prosody_and_message_round_trip() {
    let vars = (
        env("CPIM_PEER_PROSODY_COMPONENT"),
        env("CPIM_PEER_PROSODY_COMPONENT_DOMAIN"),
        env("CPIM_PEER_PROSODY_COMPONENT_SECRET"),
        env("CPIM_PEER_PROSODY_DOMAIN"),
    );
    let Some((server, domain, secret, xmpp_domain)) = cpim_testkit::peer_env::need(
        &[cpim_testkit::peer_env::Peer::Prosody],
        match vars {
            (Some(a), Some(b), Some(c), Some(d)) => Some((a, b, c, d)),
            _ => None,
        },
        "CPIM_PEER_PROSODY_COMPONENT* or CPIM_PEER_PROSODY_DOMAIN is not set (run through scripts/test)",
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("cpim-gw-prosody-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = Config::default();
    c.sip.domains = vec!["sip.test".into()];
    c.sip.endpoint.udp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tls = vec!["127.0.0.1:0".parse().unwrap()];
    c.xmpp = toml::from_str(&format!(
        "[mode]\nkind = \"component\"\nserver = \"{server}\"\ndomain = \"{domain}\"\nsecret = \"{secret}\"\n"
    ))
    .unwrap();
    c.routes = vec![Route {
        domain: xmpp_domain.clone(),
        adapter: "xmpp".into(),
    }];
    c.domain_aliases = vec![DomainAlias {
        alias: domain.clone(),
        domain: "sip.test".into(),
        adapter: "xmpp".into(),
    }];
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.token = Some(TOKEN.into());
    c.store.path = dir.clone();
    c.queue.enabled = false;
    let gw = Gateway::start(c).await.unwrap();
    let admin = gw.admin_addr().unwrap();
    let mut up = false;
    for _ in 0..100 {
        let links = http_get(admin, "/links").await;
        if links.contains(&format!(
            "\"name\":\"xmpp-component:{domain}\",\"queued\":0,\"up\":true"
        )) || (links.contains("xmpp-component")
            && links.contains("\"up\":true")
            && !links.contains("adapter:xmpp"))
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        up,
        "component link not up: {}",
        http_get(admin, "/links").await
    );
    // SIP alice -> XMPP: Prosody takes the stanza from the component (as
    // alice@<component domain>) and answers for its user; either way the outcome is
    // Prosody's, not a local failure.
    let m = Message::new(
        TransId(1),
        Address::parse("sip:alice@sip.test").unwrap(),
        Address::parse(&format!("xmpp:nobody-here@{xmpp_domain}")).unwrap(),
        "text/plain",
        b"hello from the gateway test".to_vec(),
    );
    let out = gw.ingress.submit("sip", Operation::Message(m)).await;
    println!("outcome from Prosody: {:?}", out.status);
    assert!(
        out.status.is_success() || matches!(out.status.code.as_u16(), 404 | 480 | 503),
        "unexpected outcome {:?}",
        out.status
    );
    assert_ne!(
        out.status.code,
        StatusCode::FORBIDDEN,
        "the router refused: {:?}",
        out.status
    );
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

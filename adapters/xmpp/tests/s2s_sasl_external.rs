//! SASL EXTERNAL with certificates both ways (RFC 6120 s6.4 and s13.7, XEP-0178) between
//! two gateways over real TCP and TLS. Dialback is made impossible (B cannot reach A's
//! authoritative server), so a message from A reaching B proves that B authenticated A by
//! its client certificate. Without trusting A's certificate B accepts nothing.

use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::Adapter;
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Message, Operation, TransId};
use cpim_xmpp::{start, Mode, XmppConfig};
use tokio::sync::mpsc;

mod common;

use common::{free_port, init_tracing, write_cert_pair, Rec};

fn cfg(
    domain: &str,
    port: u16,
    (cert, key): (String, String),
    trust: Vec<String>,
    route: (&str, String),
) -> XmppConfig {
    XmppConfig {
        mode: Mode::S2s {
            domains: vec![domain.into()],
            listen: format!("127.0.0.1:{port}"),
            cert: Some(cert),
            key: Some(key),
            dialback_secret: format!("secret-of-{domain}-only"),
            srv_overrides: [(route.0.to_string(), route.1)].into_iter().collect(),
            trust_roots: trust,
            require_tls: true,
            allow_dialback_without_tls: false,
        },
        delivery_timeout_secs: 3,
        reconnect_initial_ms: 50,
        reconnect_max_ms: 500,
        ping_timeout_secs: 2,
        ..XmppConfig::default()
    }
}

async fn send_a_to_b(trust_a_on_b: bool) -> (u16, Option<Operation>) {
    let dir = std::env::temp_dir().join(format!(
        "cpim-xmpp-sasl-{}-{trust_a_on_b}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let a_id = write_cert_pair(&dir, "a", &["a.test"]);
    let b_id = write_cert_pair(&dir, "b", &["b.test"]);
    let (a_port, b_port, dead) = (free_port(), free_port(), free_port());
    let a_cfg = cfg(
        "a.test",
        a_port,
        a_id.clone(),
        vec![b_id.0.clone()],
        ("b.test", format!("127.0.0.1:{b_port}")),
    );
    let b_trust = if trust_a_on_b { vec![a_id.0] } else { vec![] };
    // B's way to a.test leads nowhere: no dialback verification can succeed.
    let b_cfg = cfg(
        "b.test",
        b_port,
        b_id,
        b_trust,
        ("a.test", format!("127.0.0.1:{dead}")),
    );
    let (a_in, _a_rx) = mpsc::unbounded_channel();
    let (b_in, mut b_rx) = mpsc::unbounded_channel();
    let ha = start(a_cfg, Arc::new(Rec(a_in))).await.unwrap();
    let hb = start(b_cfg, Arc::new(Rec(b_in))).await.unwrap();
    let out = ha
        .adapter()
        .deliver(Operation::Message(Message::new(
            TransId(1),
            Address::new(Scheme::Xmpp, Some("alice"), "a.test"),
            Address::new(Scheme::Xmpp, Some("bob"), "b.test"),
            "text/plain",
            "by certificate",
        )))
        .await;
    let got = tokio::time::timeout(Duration::from_secs(1), b_rx.recv())
        .await
        .ok()
        .flatten();
    ha.shutdown().await;
    hb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code.as_u16(), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0178_sasl_external_both_ways_without_dialback() {
    init_tracing();
    // (The delivery's own outcome cannot be confirmed: B answers the ordering ping on
    // its stream to A, which leads nowhere here.)
    let (_, got) = send_a_to_b(true).await;
    let Some(Operation::Message(m)) = got else {
        panic!("B got nothing: {got:?}")
    };
    assert_eq!(m.source.domain, "a.test");
    assert_eq!(m.body, b"by certificate");
    // B does not trust A's certificate: no EXTERNAL, dialback cannot be verified,
    // nothing arrives.
    let (code, got) = send_a_to_b(false).await;
    assert!(!(200..300).contains(&code), "{code}");
    assert!(got.is_none(), "{got:?}");
}

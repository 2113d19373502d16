//! Real-peer test of SASL EXTERNAL (RFC 6120 s6.4 and s13.7, XEP-0178) with Prosody, both
//! ways, with certificates: Prosody A trusts the gateway certificate `scripts/test` made
//! for it (`CPIM_PEER_PROSODY_GW_CERT` / `_KEY`), the gateway trusts Prosody's. In each
//! direction dialback is made impossible (the authoritative server cannot be reached), so
//! a message arriving proves the certificate authenticated the stream.
//!
//! Its own test binary: it needs the gateway's s2s address (`CPIM_PEER_PROSODY_S2S_GW`)
//! free, which the other Prosody s2s tests use.

use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::Adapter;
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Message, Operation, TransId};
use cpim_xmpp::{start, Mode, XmppConfig};
use tokio::sync::mpsc;

mod common;

use common::prosody::{env, Client};
use common::{free_port, init_tracing, Rec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_s2s_sasl_external_both_ways_with_certificates() {
    let Some(e) = env() else { return };
    let get = cpim_testkit::peer_env::var;
    let (Some(cert), Some(key)) = (
        get("CPIM_PEER_PROSODY_GW_CERT"),
        get("CPIM_PEER_PROSODY_GW_KEY"),
    ) else {
        panic!("scripts/test exports CPIM_PEER_PROSODY_GW_CERT and _KEY with the peers");
    };
    init_tracing();
    let cfg = |listen: String, prosody_at: String| XmppConfig {
        mode: Mode::S2s {
            domains: vec![e.gw_domain.clone()],
            listen,
            cert: Some(cert.clone()),
            key: Some(key.clone()),
            // Nobody else knows it: no dialback key of ours can be verified anywhere.
            dialback_secret: format!("sasl-only-{}", std::process::id()),
            srv_overrides: [(e.domain.clone(), prosody_at)].into_iter().collect(),
            trust_roots: vec![e.cert.clone()],
            require_tls: true,
            allow_dialback_without_tls: false,
        },
        delivery_timeout_secs: 10,
        reconnect_initial_ms: 100,
        reconnect_max_ms: 1000,
        ..XmppConfig::default()
    };
    let mut alice = Client::start(&e, &format!("alice@{}/sasl", e.domain), "alicepw").await;

    // Gateway -> Prosody. The gateway does not listen where Prosody looks for gw.test,
    // so Prosody cannot verify a dialback key: only our client certificate can do it.
    let (tx, _ops) = mpsc::unbounded_channel();
    let h = start(
        cfg(format!("127.0.0.1:{}", free_port()), e.s2s.clone()),
        Arc::new(Rec(tx)),
    )
    .await
    .expect("start s2s");
    let m = Message::new(
        TransId(1),
        Address::new(Scheme::Xmpp, Some("carol"), &e.gw_domain),
        Address::new(Scheme::Xmpp, Some("alice"), &e.domain),
        "text/plain",
        "by certificate to prosody",
    );
    // (Its outcome stays open: Prosody answers the ordering ping on its own stream to
    // gw.test, which leads nowhere here.)
    let a = h.adapter();
    tokio::spawn(async move { a.deliver(Operation::Message(m)).await });
    let got = alice
        .wait(|v| v["body"] == "by certificate to prosody", 20)
        .await;
    assert_eq!(got["from"], format!("carol@{}", e.gw_domain));
    h.shutdown().await;

    // Prosody -> gateway. The gateway's way to xmpp.test leads nowhere, so it cannot
    // verify Prosody's dialback key: only Prosody's client certificate can do it.
    let (tx, mut ops) = mpsc::unbounded_channel();
    let dead = format!("127.0.0.1:{}", free_port());
    let h = start(cfg(e.gw_listen.clone(), dead), Arc::new(Rec(tx)))
        .await
        .expect("start s2s on the gateway address");
    alice
        .cmd(serde_json::json!({"op": "message", "to": format!("dave@{}", e.gw_domain), "body": "by certificate to the gateway"}))
        .await;
    let m = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(Operation::Message(m)) = ops.recv().await {
                return m;
            }
        }
    })
    .await
    .expect("message from Prosody over a SASL EXTERNAL stream");
    assert_eq!(m.body, b"by certificate to the gateway");
    assert_eq!(m.source.domain, e.domain);
    h.shutdown().await;
}

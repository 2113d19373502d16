//! A remote XMPP domain the gateway cannot reach answers at once (RFC 7247 s7.1), not at
//! the delivery deadline: with the deadline far away, the outcome is the mapped status,
//! never the 408 waiting would give.
//! - a port where nothing listens (connection refused): 503, which the gateway's queue
//!   may keep (`queue.on_codes`);
//! - a name that does not resolve (no SRV, no address): 404, remote-server-not-found;
//! - the next message tries again (nothing remembers the failure).
//!
//! A peer that was up within the delivery timeout and now refuses is restarting: what
//! waits for it waits for the reconnection (`prosody_s2s_restart_queued_messages_arrive_
//! once_in_order` in `prosody_s2s.rs`).

use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::Adapter;
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Message, Operation, TransId};
use cpim_core::StatusCode;
use cpim_xmpp::{start, XmppConfig};
use tokio::sync::mpsc;

mod common;
use common::{free_port, init_tracing, plain_s2s, Rec};

fn message(n: u64, to_domain: &str) -> Operation {
    Operation::Message(Message::new(
        TransId(n),
        Address::new(Scheme::Sip, Some("alice"), "gw.test"),
        Address::new(Scheme::Xmpp, Some("romeo"), to_domain),
        "text/plain",
        "hi",
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_domains_fail_at_once_with_their_status_rfc7247_s7() {
    init_tracing();
    let closed = format!("127.0.0.1:{}", free_port());
    let cfg = XmppConfig {
        mode: plain_s2s(
            format!("127.0.0.1:{}", free_port()),
            &[
                ("closed.test", closed.as_str()),
                // `.invalid` never resolves (RFC 6761 s6.4).
                ("nowhere.test", "nowhere.invalid:5269"),
            ],
        ),
        delivery_timeout_secs: 600,
        ..XmppConfig::default()
    };
    let (in_tx, _inbound) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(Rec(in_tx))).await.unwrap();
    let xmpp = h.adapter();
    let within = Duration::from_secs(60);
    for n in 1..=2 {
        let out = tokio::time::timeout(within, xmpp.deliver(message(n, "closed.test")))
            .await
            .expect("an answer before the deadline");
        assert_eq!(out.status.code, StatusCode::SERVICE_UNAVAILABLE, "{out:?}");
        assert!(out.status.reason.contains("closed.test"), "{out:?}");
    }
    let out = tokio::time::timeout(within, xmpp.deliver(message(3, "nowhere.test")))
        .await
        .expect("an answer before the deadline");
    assert_eq!(out.status.code, StatusCode::NOT_FOUND, "{out:?}");
    h.shutdown().await;
}

//! End to end through the gateway as an XMPP server of its own (s2s, RFC 7247 s4, RFC 6120
//! with STARTTLS and Server Dialback XEP-0220/XEP-0185): the gateway serves the domain
//! `CPIM_PEER_PROSODY_S2S_GW_DOMAIN` (`gw.test`) for SIP and XMPP alike and listens at
//! `CPIM_PEER_PROSODY_S2S_GW`, where Prosody A's hermetic DNS sends s2s for that domain; it
//! reaches Prosody A through a static SRV override and trusts Prosody's self-signed
//! certificate (`CPIM_PEER_PROSODY_CERT`, else `$CPIM_PEER_DIR/prosody-a/certs/`). No
//! component: XMPP users write to SIP user `u@gw.test` as `u@gw.test`.
//!
//! The same flows as `gateway_component` (`common/flows.rs`): messages both ways in
//! text/plain and message/cpim, a SIP watcher of an XMPP user pending until approval then
//! active/open with changes, offline/online and unsubscribe, an XMPP watcher of a SIP user
//! seeing the PUBLISHed state; refusals mapped both ways (a nonexistent XMPP user is 404 for
//! SIP, an unknown SIP user `item-not-found` for XMPP). Skips (prints why) without
//! `CPIM_PEERS` or the certificate, and fails for that under `CI=true`.

mod common;

use common::flows::{self, Setup};
use common::*;
use cpim_interop::require_peers;
use cpim_testkit::TestGateway;

async fn run(user_prefix: &str, flow: flows::Flow) {
    run_as(unique(user_prefix), flow).await
}

async fn run_as(user: String, flow: flows::Flow) {
    let peers = require_peers!(Prosody);
    init_tracing();
    // One listener on the s2s route's address at a time.
    let _lock = component_lock().await;
    let Some(cert) = cpim_interop::peer_env::need(
        &[cpim_interop::peer_env::Peer::Prosody],
        prosody_cert(&peers),
        "Prosody's certificate is not found (CPIM_PEER_PROSODY_CERT / CPIM_PEER_DIR/prosody-a/certs)",
    ) else {
        return;
    };
    let gw = TestGateway::builder(s2s_config(&peers, &[&user], &cert))
        .keep_xmpp_listen()
        .start()
        .await
        .unwrap();
    let setup = Setup {
        peers: &peers,
        gw: &gw,
        sip_domain: peers.gateway_s2s.domain.clone(),
        jid_domain: peers.gateway_s2s.domain.clone(),
    };
    flow(&setup, &user).await;
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_messages_both_ways_plain_and_cpim() {
    run("sara", |s, u| Box::pin(flows::messages_both_ways(s, u))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_sip_watcher_of_xmpp_user_with_authorization() {
    run("tom", |s, u| {
        Box::pin(flows::sip_watcher_of_xmpp_user(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_xmpp_watcher_of_sip_user_sees_published_state() {
    run("uma", |s, u| {
        Box::pin(flows::xmpp_watcher_of_sip_user(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_refusals_mapped_both_ways() {
    run("vic", |s, u| Box::pin(flows::refusals_mapped(s, u))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_user_with_at_sign_round_trips_xep0106() {
    run_as(format!("{}@home", unique("hal")), |s, u| {
        Box::pin(flows::user_with_at_sign_both_ways(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_receipts_both_ways_with_their_ids_rfc5438_xep0184() {
    run("rolf", |s, u| Box::pin(flows::receipts_both_ways(s, u))).await;
}

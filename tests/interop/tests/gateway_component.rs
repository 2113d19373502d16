//! End to end through the gateway as Prosody's XEP-0114 component (acceptance tests):
//! a SIP user registered at the gateway (cpim-testkit's SIP UA, digest) and a slixmpp user
//! on the real Prosody (`CPIM_PEER_PROSODY_C2S`, `CPIM_PEER_PROSODY_COMPONENT*`). XMPP users
//! write to SIP user `u@sip.test` as `u@sip.xmpp.test` (the component domain, an alias).
//!
//! - messages both ways, text/plain and message/cpim (RFC 3862; the XMPP user gets the
//!   unwrapped payload, RFC 3922 s4 / RFC 7572), over SIP UDP and TCP;
//! - SIP watcher of an XMPP user (RFC 3856 / RFC 6665 / RFC 8048 s4-s5): the subscription
//!   stays pending until the XMPP user approves, then NOTIFY active with PIDF open; show and
//!   status changes, offline (closed) and online again; unsubscribe reaches the XMPP user;
//! - XMPP watcher of a SIP user: approved by the gateway's policy, the SIP user's PUBLISHed
//!   state (RFC 3903) arrives as presence with its note; a removed publication is
//!   unavailable; unsubscribe ends the subscription;
//! - a SIP user whose name holds an `@` writes to XMPP and gets the reply (XEP-0106);
//! - receipts both ways with their ids (RFC 5438 IMDN <-> XEP-0184, XEP-0359).
//!
//! Refusals in component mode against Prosody are in `gateway_errors`.
//! The flows are in `common/flows.rs` and run through `common/modes.rs` (shared with
//! `gateway_s2s` and the ejabberd runs `gateway_ejabberd_*`). Skips (prints why) without
//! `CPIM_PEERS`, fails for that under `CI=true`.

mod common;

use common::flows;
use common::modes::component;
use common::unique;
use cpim_interop::peer_env::Peer;

async fn run(user_prefix: &str, flow: flows::Flow) {
    component(Peer::Prosody, unique(user_prefix), flow).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_messages_both_ways_plain_and_cpim() {
    run("carol", |s, u| Box::pin(flows::messages_both_ways(s, u))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_sip_watcher_of_xmpp_user_with_authorization() {
    run("dan", |s, u| {
        Box::pin(flows::sip_watcher_of_xmpp_user(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_xmpp_watcher_of_sip_user_sees_published_state() {
    run("erin", |s, u| {
        Box::pin(flows::xmpp_watcher_of_sip_user(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_user_with_at_sign_round_trips_xep0106() {
    component(Peer::Prosody, format!("{}@home", unique("gina")), |s, u| {
        Box::pin(flows::user_with_at_sign_both_ways(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_receipts_both_ways_with_their_ids_rfc5438_xep0184() {
    run("rita", |s, u| Box::pin(flows::receipts_both_ways(s, u))).await;
}

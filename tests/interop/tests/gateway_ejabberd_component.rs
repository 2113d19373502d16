//! End to end through the gateway as ejabberd's XEP-0114 component (acceptance tests): the
//! flows of `gateway_component` (`common/flows.rs`) against the real ejabberd instead of
//! Prosody. A SIP user registered at the gateway (cpim-testkit's SIP UA, digest) and a
//! slixmpp user on ejabberd (`CPIM_PEER_EJABBERD_C2S`, `CPIM_PEER_EJABBERD_COMPONENT*`);
//! XMPP users write to SIP user `u@sip.test` as `u@sip.ejabberd.test` (the component
//! domain, an alias).
//!
//! - messages both ways, text/plain and message/cpim (RFC 3862; the XMPP user gets the
//!   unwrapped payload, RFC 3922 s4 / RFC 7572), over SIP UDP and TCP;
//! - SIP watcher of an XMPP user with authorization (RFC 3856 / RFC 6665 / RFC 8048 s4-s5,
//!   RFC 6121 s3.1): pending until the XMPP user approves, then active/open; show/status,
//!   offline and online; unsubscribe reaches the XMPP user;
//! - XMPP watcher of a SIP user (RFC 3903 PUBLISH -> presence with its note);
//! - refusals mapped both ways (RFC 7247 s7): a nonexistent ejabberd user is 404 for SIP,
//!   an unknown SIP user `item-not-found` for XMPP;
//! - a SIP user whose name holds an `@` writes to XMPP and gets the reply (XEP-0106);
//! - receipts both ways with their ids (RFC 5438 IMDN <-> XEP-0184, XEP-0359).
//!
//! Skips (prints why) without `CPIM_PEERS`, fails for that under `CI=true`.

mod common;

use common::flows;
use common::modes::component;
use common::unique;
use cpim_interop::peer_env::Peer;

async fn run(user_prefix: &str, flow: flows::Flow) {
    component(Peer::Ejabberd, unique(user_prefix), flow).await
}

/// RFC 3862, RFC 3922 s4 / RFC 7572: text/plain and message/cpim both ways over UDP and TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_component_messages_both_ways_plain_and_cpim() {
    run("carol", |s, u| Box::pin(flows::messages_both_ways(s, u))).await;
}

/// RFC 3856, RFC 6665, RFC 8048 s4-s5, RFC 6121 s3.1: pending until approved, then active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_component_sip_watcher_of_xmpp_user_with_authorization() {
    run("dan", |s, u| {
        Box::pin(flows::sip_watcher_of_xmpp_user(s, u))
    })
    .await;
}

/// RFC 3903 PUBLISH as XMPP presence (RFC 8048 s5), RFC 6121 s3.3 unsubscribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_component_xmpp_watcher_of_sip_user_sees_published_state() {
    run("erin", |s, u| {
        Box::pin(flows::xmpp_watcher_of_sip_user(s, u))
    })
    .await;
}

/// RFC 7247 s7: 404 for a nonexistent XMPP user, `item-not-found` for an unknown SIP user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_component_refusals_mapped_both_ways() {
    run("vic", |s, u| Box::pin(flows::refusals_mapped(s, u))).await;
}

/// XEP-0106 s4.3, RFC 7247 s6.2, RFC 3261 s19.1.2: an `@` in the SIP user name both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_component_user_with_at_sign_round_trips_xep0106() {
    component(
        Peer::Ejabberd,
        format!("{}@home", unique("gina")),
        |s, u| Box::pin(flows::user_with_at_sign_both_ways(s, u)),
    )
    .await;
}

/// RFC 5438 IMDN <-> XEP-0184 receipts, ids kept (XEP-0359, RFC 5438 s6.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_component_receipts_both_ways_with_their_ids_rfc5438_xep0184() {
    run("rita", |s, u| Box::pin(flows::receipts_both_ways(s, u))).await;
}
